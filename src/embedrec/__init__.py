"""embedrec: embedding recommenders for explicit ratings, compared fairly."""

__version__ = "0.1.0"
