"""Exceptions a user can act on. The CLI turns each into a one-line message."""


class EmbedrecError(Exception):
    """Base class: something the user can fix (bad input, missing data, bad settings)."""


class DataError(EmbedrecError):
    """A ratings or items file is missing, unreadable or malformed."""


class DownloadError(DataError):
    """A dataset could not be found locally nor downloaded and verified."""


class ConfigError(EmbedrecError):
    """Settings that contradict each other or are out of range."""


class TrainingError(EmbedrecError):
    """Training diverged (NaN or inf loss) or cannot start."""
