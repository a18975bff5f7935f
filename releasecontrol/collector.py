"""Python's cyclic garbage collector, kept out of the way of bulk work.

Reference counting frees almost everything this code allocates; the cyclic collector runs
whenever enough container objects have been allocated, and a full collection walks the whole
heap. Building an emergency rollback's 10,000 flag states, or a gate monitor tick's 5,000
evaluations, allocates enough to trigger several of them, each finding nothing to free: a
third of the rollback's time at 10,000 flags.

- `collector_paused()` holds automatic collections for the length of a block (nested and
  concurrent blocks in one process share the pause; the last one out resumes them, and no
  collection is forced then).
- `collector_settle()`, called once a process has loaded its code (wsgi.py, the Celery
  worker's process start), moves everything alive by then into the permanent generation, so
  later full collections walk only what requests allocate. It also keeps forked processes
  from copying the pages that a collection of the shared objects would write to.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

_lock = threading.Lock()
_holders = 0
_resume = False

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic cyclic collection inside the block (one process-wide pause)."""
    global _holders, _resume
    with _lock:
        if _holders == 0:
            _resume = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _resume:
                gc.enable()


def with_collector_paused(function: Callable[P, R]) -> Callable[P, R]:
    """The decorator form of collector_paused()."""

    @wraps(function)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        with collector_paused():
            return function(*args, **kwargs)

    return paused


def collector_settle() -> None:
    """Collect once, then exempt every object alive now from later full collections."""
    gc.collect()
    gc.freeze()
