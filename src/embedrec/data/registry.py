"""The MovieLens releases embedrec knows: where they live, how they are laid out, how to parse them.

Facts come from each release's README (see the project's MOVIELENS notes). The data itself is never
shipped with embedrec: the licence restricts redistribution, so it is downloaded and verified.
"""

from __future__ import annotations

from dataclasses import dataclass

BASE_URL = "https://files.grouplens.org/datasets/movielens/"
LICENCE = (
    "MovieLens data (GroupLens Research): research use only, no commercial use without "
    "permission; cite F. Maxwell Harper and Joseph A. Konstan, 2015, The MovieLens Datasets: "
    "History and Context, ACM TiiS 5(4):19. Redistribution only under the same terms "
    "(ml-10m: not at all)."
)


@dataclass(frozen=True, kw_only=True)
class TableFormat:
    """How one delimited text file of a release is parsed."""

    file: str  # file name inside the release folder
    sep: str  # field separator ("::" is handled without the slow python engine)
    header: bool  # first line holds column names
    encoding: str  # text encoding of the file
    columns: tuple[str, ...]  # embedrec's names for the columns, in file order


@dataclass(frozen=True, kw_only=True)
class Release:
    """One MovieLens release."""

    name: str  # registry name, e.g. "ml-latest-small"
    folder: str  # top folder inside the zip (ml-10m's is "ml-10M100K")
    md5: str | None  # md5 of the zip; None when the release changes (read the .md5 at download)
    ratings: TableFormat
    items: TableFormat
    scale: tuple[float, float]  # declared rating range
    n_ratings: int  # number of ratings the README announces
    genre_flags: tuple[str, ...] = ()  # ml-100k: one 0/1 column per genre instead of a list
    # md5 of the unpacked files, checked after a download: pins a release whose zip md5 is not
    # fixed, so that a mirror cannot serve anything else
    file_md5: tuple[tuple[str, str], ...] = ()

    @property
    def url(self) -> str:
        return f"{BASE_URL}{self.name}.zip"


_CSV_RATINGS = TableFormat(
    file="ratings.csv", sep=",", header=True, encoding="utf-8",
    columns=("user", "item", "rating", "timestamp"),
)
_CSV_MOVIES = TableFormat(
    file="movies.csv", sep=",", header=True, encoding="utf-8", columns=("item", "title", "genres")
)


def _dat(file: str, columns: tuple[str, ...], encoding: str) -> TableFormat:
    return TableFormat(file=file, sep="::", header=False, encoding=encoding, columns=columns)


_ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)

RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release(
            name="ml-latest-small", folder="ml-latest-small", md5=None,
            ratings=_CSV_RATINGS, items=_CSV_MOVIES, scale=(0.5, 5.0), n_ratings=100_836,
            # the 2018-09-26 release (the current one): ratings.csv and movies.csv
            file_md5=(("ratings.csv", "325a6f09399d1c45671f187505e1a100"),
                      ("movies.csv", "ed94fab72b62442ef8150d9446e000d6")),
        ),
        Release(
            name="ml-100k", folder="ml-100k", md5="0e33842e24a9c977be4e0107933c0723",
            ratings=TableFormat(
                file="u.data", sep="\t", header=False, encoding="utf-8",
                columns=("user", "item", "rating", "timestamp"),
            ),
            items=TableFormat(
                file="u.item", sep="|", header=False, encoding="latin-1",
                columns=("item", "title", "release_date", "video_release_date", "imdb_url")
                + _ML100K_GENRES,
            ),
            scale=(1.0, 5.0), n_ratings=100_000, genre_flags=_ML100K_GENRES,
        ),
        Release(
            name="ml-1m", folder="ml-1m", md5="c4d9eecfca2ab87c1945afe126590906",
            ratings=_dat("ratings.dat", ("user", "item", "rating", "timestamp"), "latin-1"),
            items=_dat("movies.dat", ("item", "title", "genres"), "latin-1"),
            scale=(1.0, 5.0), n_ratings=1_000_209,
        ),
        Release(
            name="ml-10m", folder="ml-10M100K", md5="ce571fd55effeba0271552578f2648bd",
            ratings=_dat("ratings.dat", ("user", "item", "rating", "timestamp"), "utf-8"),
            items=_dat("movies.dat", ("item", "title", "genres"), "utf-8"),
            scale=(0.5, 5.0), n_ratings=10_000_054,
        ),
        Release(
            name="ml-20m", folder="ml-20m", md5="cd245b17a1ae2cc31bb14903e1204af3",
            ratings=_CSV_RATINGS, items=_CSV_MOVIES, scale=(0.5, 5.0), n_ratings=20_000_263,
        ),
        Release(
            name="ml-25m", folder="ml-25m", md5="6b51fb2759a8657d3bfcbfc42b592ada",
            ratings=_CSV_RATINGS, items=_CSV_MOVIES, scale=(0.5, 5.0), n_ratings=25_000_095,
        ),
        Release(
            # One source only for this checksum: the live .md5 is read and must agree.
            name="ml-32m", folder="ml-32m", md5="d472be332d4daa821edc399621853b57",
            ratings=_CSV_RATINGS, items=_CSV_MOVIES, scale=(0.5, 5.0), n_ratings=32_000_204,
        ),
    )
}

DEFAULT_RELEASE = "ml-latest-small"


def get_release(name: str) -> Release:
    """Return the release called ``name`` or raise a DataError listing the known ones."""
    from embedrec.errors import DataError

    try:
        return RELEASES[name]
    except KeyError:
        known = ", ".join(RELEASES)
        raise DataError(f"unknown dataset {name!r}; known: {known} (or pass --data PATH)") from None
