"""One seed per scenario, split into named independent random streams.

`RandomStreams(seed).stream("arrivals")` always returns a generator whose sequence depends only
on the seed and the name: adding a new consumer never shifts the numbers another one draws,
so policy comparisons under the same seed share common random numbers.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["RandomStreams"]


def _name_key(name: str) -> int:
    # A stable hash (Python's hash() is salted per process).
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


class RandomStreams:
    """Named, independent `numpy.random.Generator`s derived from one seed."""

    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = seed
        self._streams: dict[str, np.random.Generator] = {}

    def stream(self, name: str) -> np.random.Generator:
        """The generator for `name`; the same object on every call within one simulation."""
        if name not in self._streams:
            seq = np.random.SeedSequence(entropy=self.seed, spawn_key=(_name_key(name),))
            self._streams[name] = np.random.Generator(np.random.PCG64(seq))
        return self._streams[name]
