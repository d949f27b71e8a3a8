"""Issue 10's service items: security headers (26), no CDN docs (27), strict numbers (28), the
model's own id type (29), CPU work off the event loop and bounded searches (8), uvicorn limits
and slow clients (9). Servers run on 127.0.0.1 and stop themselves."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedrec.cli import main
from embedrec.data.dataset import Ratings
from embedrec.errors import EmbedrecError
from embedrec.persistence import save_model
from embedrec.presets import get_preset
from embedrec.recommender import search_mask
from embedrec.serve import create_app
from embedrec.serve.search import MAX_WORDS, TitleIndex, query_words
from embedrec.serve.server import GuardedH11Protocol, server_config
from tests.serve.conftest import LiveServer, _free_port
from embedrec.experiment import train_bundle

HAS_OFFLINE_DOCS = importlib.util.find_spec("fastapi_offline") is not None


# ---- 26: security headers, no banner ------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/health", "/static/app.js", "/movies/987654", "/nope"])
def test_every_response_has_security_headers_and_no_banner(client, path):
    response = client.get(path)
    h = response.headers
    assert h["x-content-type-options"] == "nosniff"
    assert h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "no-referrer"
    csp = h["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp and "http" not in csp
    assert "server" not in h


def test_refusals_carry_the_headers_too(client):
    response = client.post("/recommendations", content=b" " * (2 << 20),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["x-content-type-options"] == "nosniff" and "server" not in response.headers


# ---- 27: no docs from a CDN ---------------------------------------------------------------------
def test_docs_are_off_by_default_and_the_schema_stays(client):
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert "/health" in client.get("/openapi.json").json()["paths"]


@pytest.mark.skipif(HAS_OFFLINE_DOCS, reason="fastapi-offline is installed")
def test_docs_without_local_assets_is_a_one_line_error(model_dir, capsys):
    with pytest.raises(EmbedrecError, match="fastapi-offline"):
        create_app(model_dir, docs=True)
    assert main(["serve", "--model", str(model_dir), "--docs", "--port", str(_free_port())]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "never loads the docs page from a CDN" in lines[0]


@pytest.mark.skipif(not HAS_OFFLINE_DOCS, reason="fastapi-offline is not installed")
def test_docs_are_served_from_local_files(model_dir):
    with LiveServer(create_app(model_dir, docs=True)) as server:
        page = httpx.get(f"{server.url}/docs", timeout=10)
        assert page.status_code == 200 and "cdn" not in page.text.lower()
        assert httpx.get(f"{server.url}/docs-static/swagger-ui-bundle.js", timeout=10).status_code == 200


# ---- 28: strict numbers -------------------------------------------------------------------------
@pytest.mark.parametrize("body", [
    {"ratings": [{"movie_id": 1, "rating": True}]},
    {"ratings": [{"movie_id": 1, "rating": "4"}]},
    {"ratings": [{"movie_id": True, "rating": 4}]},
    {"ratings": [{"movie_id": 1.0, "rating": 4}]},
    {"ratings": [{"movie_id": 1, "rating": 4}], "k": True},
    {"ratings": [{"movie_id": 1, "rating": 4}], "k": "5"},
])
def test_booleans_and_numeric_strings_are_not_numbers(client, body):
    response = client.post("/recommendations", json=body)
    assert response.status_code == 422, response.text


def test_predict_refuses_a_boolean_id(client):
    response = client.post("/predict", json={"pairs": [{"user_id": True, "movie_id": 1}]})
    assert response.status_code == 422


# ---- 29: string ids -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def string_model(tmp_path_factory):
    rng = np.random.default_rng(3)
    users, items = rng.integers(0, 25, 600), rng.integers(0, 40, 600)
    frame = pd.DataFrame({"user": [f"u{u}" for u in users], "item": [f"m{i}" for i in items],
                          "rating": rng.integers(1, 11, 600) / 2.0})
    frame = frame.drop_duplicates(["user", "item"])
    info = pd.DataFrame({"title": [f"Film number {i}" for i in range(40)],
                         "genres": ["Drama"] * 40}, index=[f"m{i}" for i in range(40)])
    data = Ratings.from_frame(frame, scale=(0.5, 5.0), name="strings", item_info=info)
    bundle = train_bundle(data, "biased", get_preset("default").with_overrides(epochs=2), seed=0)
    folder = save_model(bundle, tmp_path_factory.mktemp("strings") / "model")
    with LiveServer(create_app(folder)) as server, httpx.Client(base_url=server.url,
                                                                  timeout=10) as c:
        yield c, frame


def test_a_string_id_model_answers_on_every_endpoint(string_model):
    c, frame = string_model
    listed = c.get("/movies", params={"limit": 3}).json()
    movie = listed[0]["movie_id"]
    assert isinstance(movie, str) and movie.startswith("m")
    assert c.get(f"/movies/{movie}").json()["movie_id"] == movie
    similar = c.get(f"/movies/{movie}/similar", params={"k": 3})
    assert similar.status_code == 200 and len(similar.json()["items"]) == 3
    user = frame["user"].iloc[0]
    recs = c.get(f"/users/{user}/recommendations", params={"k": 4})
    assert recs.status_code == 200 and recs.json()["user_id"] == user
    assert len(recs.json()["items"]) == 4
    seen = set(frame.loc[frame["user"] == user, "item"])
    assert not seen & {m["movie_id"] for m in recs.json()["items"]}
    new = c.post("/recommendations", json={"ratings": [{"movie_id": movie, "rating": 5},
                                                       {"movie_id": "nope", "rating": 1}], "k": 3})
    assert new.status_code == 200, new.text
    assert new.json()["n_used"] == 1 and new.json()["unknown_movie_ids"] == ["nope"]
    pred = c.post("/predict", json={"pairs": [{"user_id": user, "movie_id": movie}]})
    assert pred.status_code == 200, pred.text
    value = pred.json()["predictions"][0]
    assert value["user_id"] == user and value["movie_id"] == movie and 0.5 <= value["rating"] <= 5


def test_a_string_id_model_gives_404_for_unknown_ids(string_model):
    c, _ = string_model
    assert c.get("/movies/zzz").status_code == 404
    assert c.get("/users/zzz/recommendations").status_code == 404
    assert "unknown user zzz" in c.post(
        "/predict", json={"pairs": [{"user_id": "zzz", "movie_id": "m1"}]}).text
    # a title is not an id: never a title search on an id endpoint
    response = c.post("/recommendations", json={"ratings": [{"movie_id": "Film number 3",
                                                             "rating": 4}]})
    assert response.status_code == 422 and "none of the 1 rated movies is known" in response.text


@pytest.mark.parametrize("path", ["/users/%C2%B9/recommendations", "/movies/%D9%A3",
                                  "/movies/%EF%BC%95/similar"])
def test_unicode_digits_are_not_integer_ids(client, path):
    # "¹", "٣" and "５" pass str.isdigit() but int() refuses some of them: found by schemathesis
    response = client.get(path)
    assert response.status_code == 422 and "not a valid integer" in response.text


def test_an_integer_model_takes_ids_as_numeric_strings_too(client):
    movie = client.get("/movies", params={"limit": 1}).json()[0]["movie_id"]
    as_text = client.post("/predict", json={"pairs": [{"user_id": "1", "movie_id": str(movie)}]})
    as_int = client.post("/predict", json={"pairs": [{"user_id": 1, "movie_id": movie}]})
    assert as_text.status_code == 200 and as_text.json() == as_int.json()


# ---- 8: search bounded, CPU work off the event loop ---------------------------------------------
def test_search_words_are_capped_and_deduplicated():
    assert query_words("Toy toy STORY, story toy") == ["toy", "story"]
    assert query_words(" ".join(f"w{i}" for i in range(100))) == [f"w{i}" for i in range(MAX_WORDS)]
    assert query_words("...!!") == []


TITLES = ["Toy Story (1995)", "Toy Story 2 (1999)", "Godfather, The (1972)",
          "Schindler's List (1993)", "Amélie (2001)", "2001: A Space Odyssey (1968)",
          "Se7en (1995)", "x_men (2000)", "Léon: The Professional (1994)", "The The (2020)"]
WORDS = st.sampled_from(["toy", "to", "story", "199", "1995", "2001", "the", "god", "s", "list",
                         "am", "amé", "se7", "7", "x", "men", "x_m", "léon", "2", "zz", "'", "(",
                         "TOY", "Story,"])


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(WORDS, min_size=0, max_size=5).map(" ".join))
def test_title_index_matches_the_recommender_search(query):
    expected = search_mask(pd.Series(TITLES), query)
    assert np.array_equal(TitleIndex(TITLES).search(query), expected)


def test_computing_handlers_run_off_the_event_loop(model_dir, monkeypatch):
    app = create_app(model_dir)
    sync = {r.path for r in app.routes if getattr(r, "endpoint", None) is not None
            and not asyncio.iscoroutinefunction(r.endpoint)}
    assert {"/movies", "/movies/{movie_id}", "/movies/{movie_id}/similar",
            "/users/{user_id}/recommendations", "/recommendations", "/predict"} <= sync
    # behaviour: a search held up inside its handler does not stop /health from answering
    entered, release = threading.Event(), threading.Event()
    real = TitleIndex.search

    def slow_search(self, query):
        entered.set()
        release.wait(20)
        return real(self, query)

    monkeypatch.setattr(TitleIndex, "search", slow_search)
    with LiveServer(app) as server:
        results = []
        worker = threading.Thread(target=lambda: results.append(
            httpx.get(f"{server.url}/movies", params={"search": "a"}, timeout=30).status_code))
        worker.start()
        try:
            assert entered.wait(20)
            assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
        finally:
            release.set()
            worker.join(30)
        assert results == [200]


# ---- 9: uvicorn limits --------------------------------------------------------------------------
def _raw_request(port: int, head: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def test_oversized_or_too_many_headers_are_refused(live):
    big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
    assert _raw_request(live.port, big).split(b"\r\n")[0] in (
        b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 431 Request Header Fields Too Large")
    many = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n"
    assert _raw_request(live.port, many).startswith(b"HTTP/1.1 431")
    assert httpx.get(f"{live.url}/health", timeout=10).status_code == 200  # still serving


class _QuickTimeout(GuardedH11Protocol):
    header_timeout = 0.3


def test_a_slow_client_is_disconnected(model_dir):
    app = create_app(model_dir)
    server_cfg = server_config(app, host="127.0.0.1", port=_free_port(), http=_QuickTimeout)
    import uvicorn

    server = uvicorn.Server(server_cfg)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(1000):  # bounded wait for start-up
            if server.started:
                break
            time.sleep(0.02)
        assert server.started
        port = server_cfg.port
        for head in (b"", b"GET /health HTTP/1.1\r\nHost: x\r\n"):  # nothing; half a head
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(head)
                assert sock.recv(1024) == b""  # closed by the server, well before our timeout
        # a complete request within the limit is answered
        assert _raw_request(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
            b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(10)


def test_server_settings_are_the_documented_limits():
    cfg = server_config(object())
    assert cfg.h11_max_incomplete_event_size == 16 * 1024
    assert cfg.timeout_keep_alive == 5 and cfg.limit_concurrency == 64
    assert cfg.server_header is False and cfg.http is GuardedH11Protocol
