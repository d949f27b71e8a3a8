"""Data: the MovieLens registry, loading, the immutable Ratings dataset and splits."""

from embedrec.data.dataset import IdMap, Ratings
from embedrec.data.load import load_movielens, load_ratings_file
from embedrec.data.registry import RELEASES, Release, get_release
from embedrec.data.split import Split, kfold, make_split, random_split, time_split, user_holdout

__all__ = [
    "IdMap", "Ratings", "RELEASES", "Release", "Split", "get_release", "kfold", "load_movielens",
    "load_ratings_file", "make_split", "random_split", "time_split", "user_holdout",
]
