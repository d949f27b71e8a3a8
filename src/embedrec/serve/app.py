"""The FastAPI application. ``create_app`` is a factory: the model is loaded once, at start-up.

Every client mistake becomes a 4xx JSON error that says what is wrong: 404 with the id for
unknown users and movies, 413 for an oversized body, 422 for anything the schema or the model's
rating scale rejects. Nothing a client sends is evaluated as code.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from embedrec import __version__
from embedrec.errors import EmbedrecError
from embedrec.persistence import ModelBundle, load_model
from embedrec.foldin import top_for_new_user
from embedrec.recommender import (
    UnknownIdError, _search_mask, _top_for_users, predict, similar_items, top_k, user_index,
)
from embedrec.serve import schemas as s

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MAX_BODY = 1 << 20  # bytes


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413.

    A declared Content-Length over the limit is refused before anything is read; a chunked body
    is read up to the limit (so at most ``limit`` bytes are ever held) and then replayed to the
    app, so the refusal does not depend on how the app reads its body.
    """

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._refuse(send)
        if length is not None or scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:  # a chunked body: read it here, counting
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, _replay([message]), send)
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await self._refuse(send)
        await self.app(scope, _replay([{"type": "http.request", "body": body}]), send)

    async def _refuse(self, send):
        response = JSONResponse({"detail": f"request body over {self.limit:,} bytes"}, 413)
        await response({"type": "http"}, None, send)


def _replay(messages: list[dict]):
    queue = list(messages)

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    return receive


def _plain(errors) -> list[dict]:
    """Validation errors without the client's input echoed back (it may not be valid JSON:
    NaN, Infinity, numbers too large for a float)."""
    keep = ("loc", "msg", "type")
    return [{k: (list(map(str, e[k])) if k == "loc" else str(e[k])) for k in keep if k in e}
            for e in errors]


def get_bundle(request: Request) -> ModelBundle:
    return request.app.state.bundle


Bundle = Annotated[ModelBundle, Depends(get_bundle)]


def _movie(bundle: ModelBundle, item: int, score: float | None = None) -> dict:
    raw = bundle.item_map.raw(item)
    raw = raw.item() if hasattr(raw, "item") else raw
    info = bundle.item_info
    known = info is not None and raw in info.index
    out = {"movie_id": raw, "title": str(info.at[raw, "title"]) if known else f"movie {raw}",
           "genres": [g for g in str(info.at[raw, "genres"]).split("|") if g] if known else [],
           "n_ratings": int(bundle.item_counts[item])}
    if score is not None:
        out["score"] = round(float(score), 4)
    return out


def _movie_index(bundle: ModelBundle, movie_id: int) -> int:
    idx = bundle.item_map.index(movie_id, missing=-1) if bundle.item_map.ids.dtype.kind in "iu" else -1
    if idx < 0:
        raise HTTPException(404, f"unknown movie {movie_id}")
    return idx


def create_app(model_dir: str | Path | None = None, *, bundle: ModelBundle | None = None,
               cors_origins: tuple[str, ...] = (), max_body: int = MAX_BODY) -> FastAPI:
    """An app serving ``bundle``, or the model folder ``model_dir`` loaded at start-up."""
    if (model_dir is None) == (bundle is None):
        raise ValueError("give exactly one of model_dir and bundle")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.bundle = bundle if bundle is not None else load_model(model_dir)
        log.info("serving %s", app.state.bundle.name)
        yield

    app = FastAPI(title="embedrec", version=__version__, lifespan=lifespan,
                  description="Recommendations from an embedrec model: known users, new users "
                              "from a few ratings, similar movies, rating predictions.")
    app.add_middleware(BodyLimit, limit=max_body)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["content-type"])

    @app.exception_handler(UnknownIdError)
    async def unknown(_: Request, exc: UnknownIdError):
        return JSONResponse({"detail": str(exc)}, 404)

    @app.exception_handler(EmbedrecError)
    async def refused(_: Request, exc: EmbedrecError):
        return JSONResponse({"detail": str(exc)}, 422)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _plain(exc.errors())}, 422)

    errors = {404: {"model": s.Error}, 422: {"model": s.Error}}

    @app.get("/health", response_model=s.Health, tags=["service"])
    async def health(b: Bundle):
        return {"status": "ok", "model": b.name}

    @app.get("/model", response_model=s.ModelInfo, tags=["service"])
    async def model_info(b: Bundle):
        m = b.manifest
        return {"model": b.name, "dataset": m.get("dataset"), "dataset_md5": m.get("dataset_md5"),
                "embedrec_version": m.get("embedrec_version", __version__),
                "format_version": m.get("format_version", 1), "rating_range": b.scale,
                "n_users": len(b.user_map), "n_items": len(b.item_map),
                "preset": (m.get("preset") or {}).get("name"), "metrics": m.get("metrics") or {},
                "predicts_ratings": b.scored.predicts_ratings, "loss": b.loss}

    @app.get("/movies", response_model=list[s.Movie], tags=["movies"])
    async def movies(b: Bundle,
                     search: Annotated[str, Query(max_length=200, description="Title words.")] = "",
                     limit: Annotated[int, Query(ge=1, le=s.MAX_K)] = 20):
        """Movies whose title holds every word of ``search`` (most rated first); without a
        search, the most rated movies."""
        counts = b.item_counts.astype(np.float64)
        if search.strip() and b.item_info is not None:
            info = b.item_info
            mask = _search_mask(info["title"].astype(str), search)
            hits = b.item_map.indices(np.asarray(info.index[mask]))
            hits = hits[hits >= 0]
            order = hits[np.argsort(-counts[hits], kind="stable")][:limit]
        elif search.strip():
            order = np.array([], dtype=np.int64)
        else:
            order = top_k(counts[None, :], limit)[0]
        return [_movie(b, int(i)) for i in order]

    @app.get("/movies/{movie_id}", response_model=s.Movie, responses=errors, tags=["movies"])
    async def movie(b: Bundle, movie_id: int):
        return _movie(b, _movie_index(b, movie_id))

    @app.get("/movies/{movie_id}/similar", response_model=s.Similar, responses=errors,
             tags=["movies"])
    async def similar(b: Bundle, movie_id: int, k: Annotated[int, Query(ge=1, le=s.MAX_K)] = 10):
        idx = _movie_index(b, movie_id)
        frame = similar_items(b, b.item_map.raw(idx), k)
        items = [_movie(b, int(b.item_map.index(m)), sc) for m, sc in zip(frame["movieId"], frame["score"])]
        return {"movie": _movie(b, idx), "items": items}

    @app.get("/users/{user_id}/recommendations", response_model=s.Recommendations,
             responses=errors, tags=["recommendations"])
    async def user_recommendations(b: Bundle, user_id: int,
                                   k: Annotated[int, Query(ge=1, le=s.MAX_K)] = 10):
        if b.user_map.ids.dtype.kind not in "iu" or user_id not in b.user_map:
            raise HTTPException(404, f"unknown user {user_id}")
        u = user_index(b, user_id)
        items, scores = _top_for_users(b, np.array([u]), min(k, len(b.item_map)))
        keep = items[0] >= 0
        return {"user_id": user_id,
                "items": [_movie(b, int(i), sc) for i, sc in zip(items[0][keep], scores[0][keep])]}

    @app.post("/recommendations", response_model=s.NewUserResponse, responses=errors,
              tags=["recommendations"])
    async def new_user(b: Bundle, body: s.NewUserRequest):
        """Recommendations for someone the model has never seen, from their ratings (the
        model's movie parameters stay fixed: nothing is retrained)."""
        # the fold-in checks the scale and recognises the movies (errors become 422s)
        best, scores, fit = top_for_new_user(b, [(r.movie_id, r.rating) for r in body.ratings],
                                             body.k)
        return {"items": [_movie(b, int(i), sc) for i, sc in zip(best, scores)],
                "n_given": fit.n_given, "n_used": fit.n_used, "unknown_movie_ids": fit.unknown}

    @app.post("/predict", response_model=s.PredictResponse, responses=errors,
              tags=["recommendations"])
    async def predict_pairs(b: Bundle, body: s.PredictRequest):
        for p in body.pairs:
            if p.user_id not in b.user_map:
                raise HTTPException(404, f"unknown user {p.user_id}")
            if p.movie_id not in b.item_map:
                raise HTTPException(404, f"unknown movie {p.movie_id}")
        values = predict(b, [(p.user_id, p.movie_id) for p in body.pairs])
        return {"predictions": [{"user_id": p.user_id, "movie_id": p.movie_id,
                                 "rating": round(float(v), 4)} for p, v in zip(body.pairs, values)]}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
