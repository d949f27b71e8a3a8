"""Shared fixtures for the data-layer tests.

Every test runs hermetically: $EMBEDREC_DATA and $EMBEDREC_MIRROR are unset and $XDG_CACHE_HOME
points into the test's tmp_path, so nothing reads the user's cache or reaches the network.
Real MovieLens copies are used only through the ``ml_small`` / ``ml_100k`` fixtures, which skip
when $EMBEDREC_DATA (as it was when the session started) or the release folder is missing.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from embedrec.data import Ratings, load_movielens

# Read once, before any test's monkeypatching: where the real MovieLens copies live (CI sets it).
_REAL_ROOT = os.environ.get("EMBEDREC_DATA")

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)


# ---- hermetic environment -----------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _hermetic_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("EMBEDREC_DATA", raising=False)
    monkeypatch.delenv("EMBEDREC_MIRROR", raising=False)
    xdg = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    return xdg


# ---- small synthetic files ----------------------------------------------------------------------
@pytest.fixture
def write(tmp_path: Path):
    """write(name, text_or_bytes) -> Path: a file under tmp_path (text is written as UTF-8)."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    return _write


def _make_ratings(rows: list[tuple], *, timestamps: bool = True, **kwargs) -> Ratings:
    cols = ["user", "item", "rating"] + (["timestamp"] if timestamps else [])
    frame = pd.DataFrame([r[: len(cols)] for r in rows], columns=cols)
    return Ratings.from_frame(frame, **kwargs)


@pytest.fixture
def make_ratings():
    """make_ratings(rows, timestamps=True, **from_frame_kwargs): a Ratings from
    (user, item, rating[, timestamp]) tuples, in the given row order."""
    return _make_ratings


def ml100k_item_line(item: int, title: str, genres: tuple[str, ...]) -> str:
    flags = "|".join("1" if g in genres else "0" for g in ML100K_GENRES)
    return f"{item}|{title}|01-Jan-1995||http://example.invalid/{item}|{flags}\n"


# A tiny ml-100k: 3 users, 3 rated items (item 4 is listed but never rated), latin-1 titles.
TINY_100K_DATA = (
    "1\t1\t5\t874965758\n"
    "1\t2\t3\t876893171\n"
    "2\t1\t4\t878542960\n"
    "3\t3\t1\t876893119\n"
    "2\t3\t2\t889751712\n"
)
TINY_100K_ITEMS = (
    ml100k_item_line(1, "Toy Story (1995)", ("Animation", "Children's", "Comedy"))
    + ml100k_item_line(2, "Misérables, Les (1995)", ("Drama", "Musical"))
    + ml100k_item_line(3, "Nothing Listed (1990)", ())
    + ml100k_item_line(4, "Never Rated (1991)", ("Horror",))
).encode("latin-1")


class Tiny100k:
    """A tiny synthetic ml-100k release: as a folder, or as the bytes of a zip."""

    data = TINY_100K_DATA
    items = TINY_100K_ITEMS
    n_ratings, n_users, n_items, n_listed = 5, 3, 3, 4

    @staticmethod
    def zip_bytes(folder: str = "ml-100k") -> bytes:
        """A zip holding ``folder``/u.data and ``folder``/u.item."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"{folder}/u.data", TINY_100K_DATA)
            zf.writestr(f"{folder}/u.item", TINY_100K_ITEMS)
        return buf.getvalue()

    @staticmethod
    def write_folder(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "u.data").write_text(TINY_100K_DATA)
        (folder / "u.item").write_bytes(TINY_100K_ITEMS)
        return folder

    @staticmethod
    def md5(data: bytes) -> str:
        return hashlib.md5(data).hexdigest()


@pytest.fixture
def tiny_100k() -> type[Tiny100k]:
    return Tiny100k


# ---- a loopback HTTP mirror ---------------------------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requested: list[str]

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.requested.append(self.path)
        super().do_GET()


@dataclass
class Mirror:
    root: Path  # the folder being served
    url: str  # "http://127.0.0.1:PORT/"
    requested: list[str]  # request paths, in order


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    """A ThreadingHTTPServer on 127.0.0.1 (port 0) serving tmp_path/'mirror'."""
    root = tmp_path / "mirror"
    root.mkdir()
    requested: list[str] = []
    handler = type("Handler", (_QuietHandler,), {"requested": requested})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield Mirror(root=root, url=f"http://127.0.0.1:{server.server_address[1]}/",
                     requested=requested)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---- real MovieLens copies (CI: $EMBEDREC_DATA) -------------------------------------------------
def _real_folder(name: str, marker_file: str) -> Path:
    if not _REAL_ROOT:
        pytest.skip("EMBEDREC_DATA is not set; real MovieLens tests skipped")
    folder = Path(_REAL_ROOT) / name
    if not (folder / marker_file).is_file():
        pytest.skip(f"{folder}/{marker_file} not found; real MovieLens tests skipped")
    return folder


@pytest.fixture(scope="session")
def ml_small_dir() -> Path:
    return _real_folder("ml-latest-small", "ratings.csv")


@pytest.fixture(scope="session")
def ml_100k_dir() -> Path:
    return _real_folder("ml-100k", "u.data")


@pytest.fixture(scope="session")
def ml_small(ml_small_dir: Path) -> Ratings:
    return load_movielens("ml-latest-small", ml_small_dir, download=False)


@pytest.fixture(scope="session")
def ml_100k(ml_100k_dir: Path) -> Ratings:
    return load_movielens("ml-100k", ml_100k_dir, download=False)
