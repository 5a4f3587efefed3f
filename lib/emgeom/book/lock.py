"""One runner per checkout: a file lock the operating system releases if its holder dies, and the pid
of the runner that holds it (so a second one can say whom it waits for)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from emgeom.book.layout import BookLayout
from emgeom.core.io import atomic_write_text, utc_timestamp


class RunnerBusy(RuntimeError):
    """Another runner holds this checkout's lock (raised only when asked not to wait)."""


@contextlib.contextmanager
def runner_lock(layout: BookLayout, wait: bool = True) -> Iterator[None]:
    """Hold this checkout's runner lock (a file lock the OS releases if its holder dies). If another
    runner holds it: wait, printing who holds it, or with ``wait=False`` raise :class:`RunnerBusy`."""
    from filelock import FileLock, Timeout

    layout.build_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(layout.lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        owner = _lock_owner(layout)
        if not wait:
            raise RunnerBusy(
                f"another runner ({owner}) holds {layout.root}; wait for it, or run without --no-wait"
            ) from None
        print(f"[emgeom.book] another runner ({owner}) holds this checkout: waiting for it", flush=True)
        lock.acquire()
        print("[emgeom.book] the other runner finished: starting", flush=True)
    try:
        atomic_write_text(layout.lock_owner_path, f"pid {os.getpid()}, started {utc_timestamp()}\n")
        yield
    finally:
        layout.lock_owner_path.unlink(missing_ok=True)
        lock.release()


def _lock_owner(layout: BookLayout) -> str:
    try:
        return layout.lock_owner_path.read_text().strip()
    except OSError:
        return "pid unknown"
