"""The FastAPI application. ``create_app`` is a factory: the model is loaded once, at start-up.

Every client mistake becomes a 4xx JSON error that says what is wrong: 404 with the id for
unknown users and movies, 413 for an oversized body, 422 for anything the schema or the model's
rating scale rejects. Nothing a client sends is evaluated as code.

Handlers that compute (search, scoring, fold-in) are plain ``def`` functions: FastAPI runs them
in its thread pool, so the event loop keeps answering ``/health`` and accepting connections.
Every response carries security headers (``SECURITY_HEADERS``; no ``server`` banner). Ids are
the model's own type: integers for MovieLens, strings for a ratings file with string ids.
The interactive docs (``/docs``) are off unless ``docs=True``, and then served from the
``fastapi-offline`` package's local copy of Swagger UI, never from a CDN.
"""

from __future__ import annotations

import logging
import re
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from embedrec import __version__
from embedrec.errors import EmbedrecError
from embedrec.persistence import ModelBundle, load_model
from embedrec.foldin import top_for_new_user
from embedrec.recommender import (
    UnknownIdError, top_for_users, predict, similar_items, top_k,
)
from embedrec.serve import schemas as s
from embedrec.serve.search import TitleIndex

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MAX_BODY = 1 << 20  # bytes
MAX_HEADERS = 100  # header lines per request
MAX_HEADER_BYTES = 16 * 1024  # also h11's cap on an incomplete request head (serve/server.py)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
DOCS_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self'; "
            "img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"content-security-policy": CSP.encode(),
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-resource-policy": b"same-origin",
}


class SecurityHeaders:
    """Add ``SECURITY_HEADERS`` to every response, drop any ``server`` header, and refuse
    requests with more than ``MAX_HEADERS`` header lines or ``MAX_HEADER_BYTES`` (431): h11
    enforces its limit only on a head that arrives in several reads."""

    def __init__(self, app, docs_paths: tuple[str, ...] = ()):
        self.app, self.docs_paths = app, docs_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = DOCS_CSP.encode() if scope.get("path") in self.docs_paths else None

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in SECURITY_HEADERS and k.lower() != b"server"]
                extra = dict(SECURITY_HEADERS)
                if csp is not None:
                    extra[b"content-security-policy"] = csp
                message = dict(message, headers=headers + list(extra.items()))
            await send(message)

        headers = scope.get("headers") or ()
        too_big = sum(len(k) + len(v) + 4 for k, v in headers) > MAX_HEADER_BYTES
        if len(headers) > MAX_HEADERS or too_big:
            response = JSONResponse({"detail": f"request headers over {MAX_HEADERS} lines or "
                                               f"{MAX_HEADER_BYTES:,} bytes"}, 431)
            return await response(scope, receive, send_with_headers)
        await self.app(scope, receive, send_with_headers)


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


_INT_ID = re.compile(r"-?[0-9]{1,19}")


def _typed_id(ids: np.ndarray, raw: int | str, what: str):
    """A client's id in the model's id type; 422 when it cannot be one (e.g. "abc" for a model
    whose ids are integers)."""
    if ids.dtype.kind in "iu":
        if isinstance(raw, int):
            return raw
        text = raw.strip()
        if _INT_ID.fullmatch(text):  # ASCII digits only: "¹".isdigit() is True, int("¹") fails
            return int(text)
        raise HTTPException(422, f"{what} id {raw[:50]!r} is not a valid integer (this model's "
                                 "ids are integers)")
    return str(raw)


def _index(ids_map, raw: int | str, what: str) -> int:
    """The row of a client's id, or 404 naming it."""
    value = _typed_id(ids_map.ids, raw, what)
    idx = ids_map.index(value, missing=-1)
    if idx < 0:
        raise HTTPException(404, f"unknown {what} {value}")
    return idx


def _movie_index(bundle: ModelBundle, movie_id: int | str) -> int:
    return _index(bundle.item_map, movie_id, "movie")


PathId = Annotated[str, FastApiPath(max_length=s.MAX_ID_LEN, description="The model's own id.")]


def create_app(model_dir: str | Path | None = None, *, bundle: ModelBundle | None = None,
               cors_origins: tuple[str, ...] = (), max_body: int = MAX_BODY,
               docs: bool = False) -> FastAPI:
    """An app serving ``bundle``, or the model folder ``model_dir`` loaded at start-up.

    ``docs=True`` serves Swagger UI at ``/docs`` from the fastapi-offline package's local assets
    (an EmbedrecError when it is not installed); the OpenAPI schema is always at /openapi.json.
    """
    if (model_dir is None) == (bundle is None):
        raise ValueError("give exactly one of model_dir and bundle")
    docs_assets = _docs_assets() if docs else None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.bundle = bundle if bundle is not None else load_model(model_dir)
        info = app.state.bundle.item_info
        app.state.titles = None if info is None else TitleIndex(info["title"].astype(str).tolist())
        log.info("serving %s", app.state.bundle.name)
        yield

    app = FastAPI(title="embedrec", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Recommendations from an embedrec model: known users, new users "
                              "from a few ratings, similar movies, rating predictions.")
    app.add_middleware(BodyLimit, limit=max_body)
    app.add_middleware(SecurityHeaders, docs_paths=("/docs",) if docs else ())
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
    def movies(request: Request, b: Bundle,
               search: Annotated[str, Query(max_length=200, description="Title words (the first "
                                            "8 distinct words count).")] = "",
               limit: Annotated[int, Query(ge=1, le=s.MAX_K)] = 20):
        """Movies whose title holds every word of ``search`` (most rated first); without a
        search, the most rated movies."""
        counts = b.item_counts.astype(np.float64)
        titles = request.app.state.titles
        if search.strip() and b.item_info is not None and titles is not None:
            info = b.item_info
            mask = titles.search(search)
            hits = b.item_map.indices(np.asarray(info.index[mask]))
            hits = hits[hits >= 0]
            order = hits[np.argsort(-counts[hits], kind="stable")][:limit]
        elif search.strip():
            order = np.array([], dtype=np.int64)
        else:
            order = top_k(counts[None, :], limit)[0]
        return [_movie(b, int(i)) for i in order]

    @app.get("/movies/{movie_id}", response_model=s.Movie, responses=errors, tags=["movies"])
    def movie(b: Bundle, movie_id: PathId):
        return _movie(b, _movie_index(b, movie_id))

    @app.get("/movies/{movie_id}/similar", response_model=s.Similar, responses=errors,
             tags=["movies"])
    def similar(b: Bundle, movie_id: PathId, k: Annotated[int, Query(ge=1, le=s.MAX_K)] = 10):
        idx = _movie_index(b, movie_id)
        frame = similar_items(b, b.item_map.raw(idx), k)
        items = [_movie(b, int(b.item_map.index(m)), sc) for m, sc in zip(frame["movieId"], frame["score"])]
        return {"movie": _movie(b, idx), "items": items}

    @app.get("/users/{user_id}/recommendations", response_model=s.Recommendations,
             responses=errors, tags=["recommendations"])
    def user_recommendations(b: Bundle, user_id: PathId,
                             k: Annotated[int, Query(ge=1, le=s.MAX_K)] = 10):
        u = _index(b.user_map, user_id, "user")
        items, scores = top_for_users(b, np.array([u]), min(k, len(b.item_map)))
        keep = items[0] >= 0
        raw = b.user_map.raw(u)
        return {"user_id": raw.item() if hasattr(raw, "item") else raw,
                "items": [_movie(b, int(i), sc) for i, sc in zip(items[0][keep], scores[0][keep])]}

    @app.post("/recommendations", response_model=s.NewUserResponse, responses=errors,
              tags=["recommendations"])
    def new_user(b: Bundle, body: s.NewUserRequest):
        """Recommendations for someone the model has never seen, from their ratings (the
        model's movie parameters stay fixed: nothing is retrained)."""
        lo, hi = b.scale
        for r in body.ratings:
            if not lo <= r.rating <= hi:
                raise HTTPException(422, f"rating {r.rating:g} for {r.movie_id!r} is outside "
                                         f"the scale {lo:g} to {hi:g}")
        known, unknown = [], []
        for r in body.ratings:  # ids only: a string id is never taken for a title search
            value = _typed_id(b.item_map.ids, r.movie_id, "movie")
            idx = b.item_map.index(value, missing=-1)
            (known if idx >= 0 else unknown).append((value, idx, r.rating))
        if not known:
            raise HTTPException(422, f"none of the {len(body.ratings)} rated movies is known "
                                     "to the model")
        # the fold-in checks the scale and the movies' training ratings (errors become 422s)
        best, scores, fit = top_for_new_user(
            b, [(_plain_id(b.item_map.raw(idx)), rating) for _, idx, rating in known], body.k)
        return {"items": [_movie(b, int(i), sc) for i, sc in zip(best, scores)],
                "n_given": len(body.ratings), "n_used": fit.n_used,
                "unknown_movie_ids": [v for v, _, _ in unknown] + list(fit.unknown)}

    @app.post("/predict", response_model=s.PredictResponse, responses=errors,
              tags=["recommendations"])
    def predict_pairs(b: Bundle, body: s.PredictRequest):
        pairs = [(_plain_id(b.user_map.raw(_index(b.user_map, p.user_id, "user"))),
                  _plain_id(b.item_map.raw(_index(b.item_map, p.movie_id, "movie"))))
                 for p in body.pairs]
        values = predict(b, pairs, timestamp=body.timestamp)
        when = b.scored.default_time if body.timestamp is None else body.timestamp
        return {"predictions": [{"user_id": u, "movie_id": m, "rating": round(float(v), 4)}
                                for (u, m), v in zip(pairs, values)],
                # null when the model's time inputs are off (or it has none): it ignored it
                "timestamp": when if b.scored.default_time is not None else None}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if docs_assets is not None:
        _mount_docs(app, docs_assets)
    return app


def _plain_id(raw):
    return raw.item() if hasattr(raw, "item") else raw


def _docs_assets() -> Path:
    """The folder of Swagger UI's files shipped by the fastapi-offline package."""
    import importlib.util

    spec = importlib.util.find_spec("fastapi_offline")
    folder = Path(spec.origin).parent / "static" if spec and spec.origin else None
    if folder is None or not (folder / "swagger-ui-bundle.js").is_file():
        raise EmbedrecError("--docs serves Swagger UI from local files, which need the "
                            "fastapi-offline package (pip install fastapi-offline); embedrec "
                            "never loads the docs page from a CDN")
    return folder


def _mount_docs(app: FastAPI, assets: Path) -> None:
    from fastapi.openapi.docs import get_swagger_ui_html

    app.mount("/docs-static", StaticFiles(directory=assets), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs_page():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="embedrec API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon.png")
