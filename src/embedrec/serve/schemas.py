"""Request and response bodies of the service (pydantic): the limits live here."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_K = 100
MAX_ITEMS = 1_000  # ratings or pairs per request
MAX_ID_LEN = 200  # characters of a string id
# Ids are the model's own: integers (MovieLens) or strings (a ratings file with ids like "m15").
# Numbers are strict: true is not 1, "4" is not 4.
_IntId = Annotated[int, Field(strict=True, ge=-(2**63), le=2**63 - 1)]
_StrId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN)]
MovieId = Annotated[_IntId | _StrId, Field(description="A movie id, of the model's id type.")]
UserId = Annotated[_IntId | _StrId, Field(description="A user id, of the model's id type.")]
K = Annotated[int, Field(strict=True, ge=1, le=MAX_K, description="How many movies to return.")]
MAX_TIMESTAMP = 4_102_444_800  # 2100-01-01
Rating = Annotated[float, Field(strict=True, allow_inf_nan=False,
                                description="On the model's rating scale (see GET /model).")]


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
    rating: Rating


class NewUserRequest(Strict):
    ratings: list[Rated] = Field(min_length=1, max_length=MAX_ITEMS)
    k: K = 10


class NewUserResponse(BaseModel):
    items: list[ScoredMovie]
    n_given: int
    n_used: int = Field(description="Ratings of movies the model knows.")
    unknown_movie_ids: list[int | str]


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
    timestamp: int | None = Field(
        None, ge=0, le=MAX_TIMESTAMP, strict=True,
        description="When the ratings would be made (seconds since 1970, UTC). Default: the "
                    "latest rating the model was trained on. Used by models with time inputs "
                    "(hybrid_mf, hybrid_nn); others ignore it.")


class Prediction(BaseModel):
    user_id: int | str
    movie_id: int | str
    rating: float


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    timestamp: int | None = Field(description="The time the ratings were predicted for; null "
                                              "when the model has no time inputs or they are "
                                              "switched off.")


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
