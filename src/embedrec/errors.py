"""Exceptions a user can act on. The CLI turns each into a one-line message."""

import re

# C0 and C1 control characters (escape, bell, newline ...), DEL, and the Unicode bidi overrides,
# which can rewrite or hide what a terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``text`` with control characters replaced by ``?``: safe to echo to a terminal."""
    return _CONTROL.sub("?", str(text))


class EmbedrecError(Exception):
    """Base class: something the user can fix (bad input, missing data, bad settings).

    The message can quote a file or an argument (names, values), so its control characters are
    replaced: it is always one printable line.
    """

    def __init__(self, message: object = "", *args: object):
        super().__init__(printable(message), *args)


class DataError(EmbedrecError):
    """A ratings or items file is missing, unreadable or malformed."""


class DownloadError(DataError):
    """A dataset could not be found locally nor downloaded and verified."""


class ConfigError(EmbedrecError):
    """Settings that contradict each other or are out of range."""


class TrainingError(EmbedrecError):
    """Training diverged (NaN or inf loss) or cannot start."""
