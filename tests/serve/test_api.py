"""The API through a real uvicorn server on 127.0.0.1, including every bad-input rule."""

import json

import pytest


def test_health_and_model(client):
    assert client.get("/health").json() == {"status": "ok", "model": "biased"}
    info = client.get("/model").json()
    assert info["model"] == "biased" and info["rating_range"] == [0.5, 5.0]
    assert info["n_users"] == 120 and info["n_items"] == 300 and info["format_version"] == 2


def test_movies_search_and_lookup(client):
    popular = client.get("/movies", params={"limit": 5}).json()
    counts = [m["n_ratings"] for m in popular]
    assert len(popular) == 5 and counts == sorted(counts, reverse=True)
    title_word = popular[0]["title"].split()[0]
    hits = client.get("/movies", params={"search": title_word.lower()}).json()
    assert hits and all(title_word.lower() in m["title"].lower() for m in hits)
    one = client.get(f"/movies/{popular[0]['movie_id']}").json()
    assert one == popular[0] and isinstance(one["genres"], list)
    assert client.get("/movies", params={"search": "zzzz no such"}).json() == []


def test_known_user_recommendations(client):
    body = client.get("/users/1/recommendations", params={"k": 7}).json()
    assert body["user_id"] == 1 and len(body["items"]) == 7
    scores = [m["score"] for m in body["items"]]
    assert scores == sorted(scores, reverse=True) and all(0.5 <= s <= 5.0 for s in scores)


def test_new_user_fold_in(client):
    movies = client.get("/movies", params={"limit": 3}).json()
    ratings = [{"movie_id": m["movie_id"], "rating": r} for m, r in zip(movies, (5, 4.5, 1))]
    body = client.post("/recommendations", json={"ratings": ratings + [{"movie_id": 999999,
                                                                         "rating": 3}]}).json()
    assert len(body["items"]) == 10 and body["n_given"] == 4 and body["n_used"] == 3
    assert body["unknown_movie_ids"] == [999999]
    assert not {m["movie_id"] for m in movies} & {m["movie_id"] for m in body["items"]}


def test_similar_and_predict(client):
    movie = client.get("/movies", params={"limit": 1}).json()[0]
    body = client.get(f"/movies/{movie['movie_id']}/similar", params={"k": 4}).json()
    assert body["movie"]["movie_id"] == movie["movie_id"] and len(body["items"]) == 4
    assert all(-1.0 <= m["score"] <= 1.0 for m in body["items"])
    pred = client.post("/predict", json={"pairs": [{"user_id": 1, "movie_id": movie["movie_id"]}]})
    value = pred.json()["predictions"][0]
    assert pred.status_code == 200 and 0.5 <= value["rating"] <= 5.0


@pytest.mark.parametrize("method, path, kwargs, status, message", [
    ("get", "/users/987654/recommendations", {}, 404, "unknown user 987654"),
    ("get", "/movies/987654", {}, 404, "unknown movie 987654"),
    ("get", "/movies/987654/similar", {}, 404, "unknown movie 987654"),
    ("get", "/users/1/recommendations", {"params": {"k": 0}}, 422, "greater than or equal to 1"),
    ("get", "/users/1/recommendations", {"params": {"k": 101}}, 422, "less than or equal to 100"),
    ("get", "/users/abc/recommendations", {}, 422, "valid integer"),
    ("get", "/movies", {"params": {"limit": 1000}}, 422, "less than or equal to 100"),
    ("get", "/movies", {"params": {"search": "x" * 201}}, 422, "at most 200 characters"),
    ("post", "/recommendations", {"json": {"ratings": []}}, 422, "at least 1 item"),
    ("post", "/recommendations", {"json": {"ratings": [{"movie_id": 1, "rating": 4}] * 1001}},
     422, "at most 1000 items"),
    ("post", "/recommendations", {"json": {"ratings": [{"movie_id": 1, "rating": 4}], "k": 500}},
     422, "less than or equal to 100"),
    ("post", "/recommendations", {"json": {"ratings": [{"movie_id": 1, "rating": 9}]}},
     422, "outside the scale 0.5 to 5"),
    ("post", "/recommendations", {"json": {"ratings": [{"movie_id": 999999, "rating": 4}]}},
     422, "none of the 1 rated movies is known"),
    ("post", "/recommendations", {"json": {"ratings": [{"movie_id": 1, "rating": 4, "x": 1}]}},
     422, "Extra inputs are not permitted"),
    ("post", "/recommendations", {"content": b"{not json", "headers": {"content-type": "application/json"}},
     422, "JSON decode error"),
    ("post", "/predict", {"json": {"pairs": [{"user_id": 987654, "movie_id": 1}]}}, 404,
     "unknown user 987654"),
    ("post", "/predict", {"json": {"pairs": [{"user_id": 1, "movie_id": "one"}]}}, 422,
     "valid integer"),
    ("post", "/predict", {"json": {"pairs": [{"user_id": 1, "movie_id": 1}] * 1001}}, 422,
     "at most 1000 items"),
])
def test_bad_input_gets_a_clear_4xx(client, method, path, kwargs, status, message):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    assert message in json.dumps(response.json())


def test_oversized_body_is_refused(client):
    response = client.post("/recommendations", content=b" " * (2 << 20),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413 and "request body over" in response.json()["detail"]


def test_no_cors_unless_configured(client, model_dir):
    origin = {"Origin": "http://example.test"}
    assert "access-control-allow-origin" not in client.get("/health", headers=origin).headers
    import httpx

    from embedrec.serve import create_app
    from tests.serve.conftest import LiveServer

    with LiveServer(create_app(model_dir, cors_origins=("http://example.test",))) as other:
        allowed = httpx.get(f"{other.url}/health", headers=origin)
        assert allowed.headers["access-control-allow-origin"] == "http://example.test"


def test_page_and_assets_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>embedrec" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no external assets
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200


def test_openapi_documents_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/model", "/movies", "/movies/{movie_id}", "/movies/{movie_id}/similar",
            "/users/{user_id}/recommendations", "/recommendations", "/predict"} <= set(paths)


@pytest.mark.parametrize("raw", [
    b'{"ratings":[{"movie_id":1,"rating":4}],"k":NaN}',
    b'{"ratings":[{"movie_id":1,"rating":4}],"k":1e400}',
    b'{"ratings":[{"movie_id":Infinity,"rating":4}]}',
])
def test_non_json_numbers_are_422_not_500(client, raw):
    response = client.post("/recommendations", content=raw,
                           headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"]


def test_oversized_chunked_body_is_413(client):
    def chunks():
        for _ in range(20):
            yield b" " * 100_000

    response = client.post("/recommendations", content=chunks(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
