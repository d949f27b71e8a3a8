"""The reference experiment in Keras 3 (torch backend), as REFERENCE.md pins it down: the yardstick
of benchmarks/kernels.py. A benchmark dependency only (`pip install -e '.[bench]'`).

    KERAS_BACKEND=torch .venv/bin/python benchmarks/keras_reference.py [--models dot,biased,mlp]

Prints one JSON line per model: test RMSE and training seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
import pandas as pd
from keras import layers, regularizers


def load(root: Path):
    frame = pd.read_csv(root / "ml-latest-small" / "ratings.csv")
    users = np.unique(frame["userId"], return_inverse=True)[1]
    movies = np.unique(frame["movieId"], return_inverse=True)[1]
    x = np.stack([users, movies], axis=1)
    y = frame["rating"].to_numpy(np.float32)
    perm = np.random.RandomState(42).permutation(len(y))
    n_test = int(np.ceil(0.1 * len(y)))
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test], users.max() + 1, movies.max() + 1


def embedding(n, k):
    return layers.Embedding(n, k, embeddings_initializer="he_normal",
                            embeddings_regularizer=regularizers.l2(1e-6))


def build(name: str, n_users: int, n_movies: int, lo: float, hi: float, k: int = 50):
    user, movie = keras.Input(shape=(1,)), keras.Input(shape=(1,))
    u = layers.Flatten()(embedding(n_users, k)(user))
    m = layers.Flatten()(embedding(n_movies, k)(movie))
    if name == "mlp":
        x = layers.Concatenate()([u, m])
        x = layers.Dropout(0.05)(x)
        x = layers.Dense(10, kernel_initializer="he_normal")(x)
        x = layers.Activation("relu")(x)
        x = layers.Dropout(0.5)(x)
        x = layers.Dense(1, kernel_initializer="he_normal")(x)
        x = layers.Activation("sigmoid")(x)
        out = layers.Lambda(lambda s: s * (hi - lo) + lo)(x)
    else:
        out = layers.Dot(axes=1)([u, m])
        if name == "biased":
            bu = layers.Flatten()(embedding(n_users, 1)(user))
            bm = layers.Flatten()(embedding(n_movies, 1)(movie))
            x = layers.Add()([out, bu, bm])
            x = layers.Activation("sigmoid")(x)
            out = layers.Lambda(lambda s: s * (hi - lo) + lo)(x)
    model = keras.Model([user, movie], out)
    model.compile(loss="mean_squared_error", optimizer=keras.optimizers.Adam(learning_rate=1e-3))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="dot,biased,mlp")
    parser.add_argument("--data", default=os.environ.get("EMBEDREC_DATA", "../shared/data"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    x_train, y_train, x_test, y_test, n_users, n_movies = load(Path(args.data))
    lo, hi = float(min(y_train.min(), y_test.min())), float(max(y_train.max(), y_test.max()))
    for name in args.models.split(","):
        keras.utils.set_random_seed(args.seed)
        model = build(name, n_users, n_movies, lo, hi)
        start = time.perf_counter()
        model.fit([x_train[:, 0], x_train[:, 1]], y_train, batch_size=64, epochs=5, verbose=0,
                  validation_data=([x_test[:, 0], x_test[:, 1]], y_test))
        seconds = time.perf_counter() - start
        pred = model.predict([x_test[:, 0], x_test[:, 1]], batch_size=4096, verbose=0)[:, 0]
        rmse = float(np.sqrt(np.mean((pred - y_test) ** 2)))
        print(json.dumps({"model": name, "rmse": rmse, "train_seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
