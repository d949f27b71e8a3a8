"""A title index built once when the model loads, so that a search costs a few array slices.

Matching is the recommender's (``recommender.search_mask``): a title matches when it holds every
query word, as a word prefix ("godfath"), or as a whole word for numbers ("1995"). Queries are
capped at ``MAX_WORDS`` distinct words of at most ``MAX_WORD_LEN`` characters, so that no request
can make the server scan the titles more than a few times.
"""

from __future__ import annotations

import bisect
import re

import numpy as np

MAX_WORDS = 8
MAX_WORD_LEN = 50
_SPLIT = re.compile(r"\W+")


def query_words(query: str) -> list[str]:
    """The distinct lower-cased words of ``query``, in order, at most ``MAX_WORDS``."""
    words = dict.fromkeys(w[:MAX_WORD_LEN] for w in _SPLIT.split(query.lower()) if w)
    return list(words)[:MAX_WORDS]


class TitleIndex:
    """Sorted title words with, for each, the rows of the titles holding it."""

    def __init__(self, titles: list[str]):
        pairs = sorted({(w, row) for row, title in enumerate(titles)
                        for w in _SPLIT.split(str(title).lower()) if w})
        self.n = len(titles)
        self.words = [w for w, _ in pairs]  # one entry per (word, title): sorted by word
        self.rows = np.array([r for _, r in pairs], dtype=np.int64)

    def _rows(self, word: str) -> np.ndarray:
        lo = bisect.bisect_left(self.words, word)
        if word.isdigit():  # a number matches whole words only
            hi = bisect.bisect_right(self.words, word)
        else:  # a prefix: every word from `word` up to the first one not starting with it
            hi = bisect.bisect_left(self.words, word + "\U0010ffff")
        return self.rows[lo:hi]

    def search(self, query: str) -> np.ndarray:
        """A boolean mask over the titles matching every word of ``query``."""
        words = query_words(query)
        mask = np.zeros(self.n, dtype=bool)
        if not words:
            return mask
        mask[:] = True
        for word in words:
            hit = np.zeros(self.n, dtype=bool)
            hit[self._rows(word)] = True
            mask &= hit
            if not mask.any():
                break
        return mask
