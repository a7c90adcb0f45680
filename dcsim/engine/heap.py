"""The cyclic garbage collector and a large world.

A 100,000-GPU world is millions of long-lived Python objects (the detailed network graph alone
has a node per GPU, NIC and switch chip, and a dict per link). CPython's collector runs a full
collection every so often, and each one traverses every tracked object: while such a world is
built, each traversal re-reads all that was built so far, and during the run each one costs
about a second of doing nothing. Measured on scenarios/frontier_100k.yaml with 20,000 jobs:
19 full collections, 9 s of a 53 s process (docs/performance.md).

So the world is built with the collector off (`building`), the run steps with everything that
existed before it frozen out of the collector's sight (`frozen`: `gc.freeze`, then
`gc.unfreeze` after, so that a long session's old worlds stay collectable), and the command
line (dcsim/cli/__init__.py) freezes what is left before the process exits, so that the
interpreter's last collection does not traverse it either. None of this changes a result: the
collector only frees memory that nothing refers to.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["building", "frozen"]


@contextmanager
def building() -> Iterator[None]:
    """No collection while the block runs (what it builds lives on)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@contextmanager
def frozen() -> Iterator[None]:
    """Collections inside the block skip every object that existed before it; afterwards
    those objects are collectable again. Left alone if something else froze objects."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
