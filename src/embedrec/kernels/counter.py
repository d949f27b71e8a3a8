"""Counter-based random numbers for dropout: the same draws from numpy and from numba kernels.

A draw is a pure function of (seed, call, element): the ``call``-th training forward pass of a
dropout layer seeded ``seed`` keeps element ``e`` (flat index into its (batch, width) input)
when ``draw(seed, call, e) >= threshold``. Each 64-bit hash gives four 16-bit draws. No state
is carried between calls, so a torch module and a compiled kernel that count calls alike draw
the same masks, on any number of threads.

``mix64`` is SplitMix64's finaliser. The functions are written so that numba compiles them as
they are (``register_jitable``; every constant a ``np.uint64``: mixing signed and unsigned
integers would make floats).
"""

from __future__ import annotations

import numpy as np
from numba.extending import register_jitable

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
STRIDE = np.uint64(0xD1B54A32D192ED03)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_S16, _LOW16, _TWO = np.uint64(16), np.uint64(0xFFFF), np.uint64(2)
_THREE = np.uint64(3)


@register_jitable
def mix64(x):
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@register_jitable
def call_key(seed, call):
    """The key of one forward call (``seed`` and ``call`` are non-negative integers)."""
    return mix64(np.uint64(seed) * GOLDEN + np.uint64(call))


@register_jitable
def word(key, element):
    """The 64-bit hash that holds the draws of ``element`` and its three neighbours."""
    return mix64(key + (np.uint64(element) >> _TWO) * STRIDE)


@register_jitable
def lane(hashed, element):
    """``element``'s 16-bit draw out of its ``word``."""
    return (hashed >> ((np.uint64(element) & _THREE) * _S16)) & _LOW16


@register_jitable
def draw(key, element):
    """The 16-bit draw of one element under a call's key (a scalar; numba compiles it)."""
    return lane(word(key, element), element)


def threshold(p: float) -> int:
    """Draws below this are dropped: p resolved to 1/65536."""
    return int(round(float(p) * 65536))


def keep_mask(seed: int, call: int, n: int, p: float) -> np.ndarray:
    """Which of ``n`` elements a dropout layer keeps at one call (numpy, vectorised)."""
    with np.errstate(over="ignore"):
        key = mix64(np.array([seed], dtype=np.uint64) * GOLDEN + np.uint64(call))[0]
        words = mix64(key + np.arange((n + 3) // 4, dtype=np.uint64) * STRIDE)
    draws = ((words[:, None] >> (np.arange(4, dtype=np.uint64) * _S16)) & _LOW16).reshape(-1)[:n]
    return draws >= threshold(p)
