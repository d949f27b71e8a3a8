"""Request and response bodies of the service (pydantic): the limits live here."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_K = 100
MAX_ITEMS = 1_000  # ratings or pairs per request
MovieId = Annotated[int, Field(ge=0, le=2**62, description="A MovieLens movieId.")]
UserId = Annotated[int, Field(ge=0, le=2**62, description="A MovieLens userId.")]
K = Annotated[int, Field(ge=1, le=MAX_K, description="How many movies to return.")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Movie(BaseModel):
    movie_id: int | str = Field(description="The movie's id in the training data.")
    title: str
    genres: list[str]
    n_ratings: int = Field(description="Ratings of this movie in the training data.")


class ScoredMovie(Movie):
    score: float = Field(description="Predicted rating (or, for cosine similarity, -1 to 1).")


class Rated(Strict):
    movie_id: MovieId
    rating: float = Field(description="On the model's rating scale (see GET /model).")


class NewUserRequest(Strict):
    ratings: list[Rated] = Field(min_length=1, max_length=MAX_ITEMS)
    k: K = 10


class NewUserResponse(BaseModel):
    items: list[ScoredMovie]
    n_given: int
    n_used: int = Field(description="Ratings of movies the model knows.")
    unknown_movie_ids: list[int]


class Recommendations(BaseModel):
    user_id: int | str
    items: list[ScoredMovie]


class Similar(BaseModel):
    movie: Movie
    items: list[ScoredMovie]


class Pair(Strict):
    user_id: UserId
    movie_id: MovieId


class PredictRequest(Strict):
    pairs: list[Pair] = Field(min_length=1, max_length=MAX_ITEMS)


class Prediction(BaseModel):
    user_id: int
    movie_id: int
    rating: float


class PredictResponse(BaseModel):
    predictions: list[Prediction]


class ModelInfo(BaseModel):
    model: str
    dataset: str | None
    dataset_md5: str | None
    embedrec_version: str
    format_version: int
    rating_range: tuple[float, float]
    n_users: int
    n_items: int
    preset: str | None
    metrics: dict
    predicts_ratings: bool = True  # False: scores rank movies but are not ratings
    loss: str | None = None  # training loss of a torch model


class Health(BaseModel):
    status: str
    model: str


class Error(BaseModel):
    detail: str
