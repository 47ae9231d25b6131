"""Pausing Python's cyclic garbage collector around bulk work (batches and cleanups)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_PAUSE_LOCK = threading.Lock()
_PAUSES = {"running": 0, "was_enabled": 0}
"""How many pauses run now (in any thread), and whether the collector was on before the
first: process-wide, as the collector is."""


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch or a cleanup runs.

    Both allocate tens of thousands of short-lived objects while the session holds thousands of
    ORM objects; every full collection they trigger walks all of those (up to half of a
    10 000-row cleanup, a fifth of a 5 000-row batch). Reference counting still frees what is
    not in a cycle; the collector runs again when the last concurrent pause ends (counted, so
    threads that overlap restore it once, as they found it).
    """
    with _PAUSE_LOCK:
        if _PAUSES["running"] == 0:
            _PAUSES["was_enabled"] = int(gc.isenabled())
            gc.disable()
        _PAUSES["running"] += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _PAUSES["running"] -= 1
            if _PAUSES["running"] == 0 and _PAUSES["was_enabled"]:
                gc.enable()


def freeze_survivors() -> bool:
    """Move every object alive now into the collector's permanent generation (``gc.freeze``),
    so later full collections skip them; False, doing nothing, when something else already
    froze objects (their ``gc.unfreeze`` stays theirs).

    A test run's modules, fixtures and collected items live until the run ends, yet every full
    collection during the tests walks all of them again (about 45 ms a pass on a small suite).
    """
    if gc.get_freeze_count():
        return False
    gc.freeze()
    return True


def unfreeze_survivors() -> None:
    """Give the frozen objects back to the collector (they are collectable again)."""
    gc.unfreeze()
