"""Where trained artifacts live, and how they are written so that an interrupted run never leaves a
corrupt one: each is a folder named by a hash of its config, built in a temporary sibling and renamed
into place only when complete, under a file lock so that two processes never build (or replace) the
same artifact at once."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from emgeom.core.paths import find_checkout

ENV_ARTIFACTS_DIR = "EMGEOM_ARTIFACTS_DIR"
COMPLETE_MARKER = ".complete"


def artifact_root() -> Path:
    """``$EMGEOM_ARTIFACTS_DIR`` (the book runner sets it to ``_build/artifacts``); otherwise the
    book's ``_build/artifacts`` when run inside the repository, else ``~/.cache/emgeom``."""
    if os.environ.get(ENV_ARTIFACTS_DIR):
        return Path(os.environ[ENV_ARTIFACTS_DIR])
    checkout = find_checkout()
    return checkout / "_build" / "artifacts" if checkout else Path.home() / ".cache" / "emgeom"


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file()


def _lock_path(final: Path) -> Path:
    return final.parent / f".{final.name}.lock"


def cached_folder(
    kind: str, key: str, build: Callable[[Path], None], root: Path | None = None
) -> tuple[Path, bool]:
    """Return ``(folder, hit)`` for the artifact ``<root>/<kind>/<key>``, building it if absent.

    ``build(tmp)`` writes the artifact into an empty temporary folder; on success the folder is marked
    complete and renamed into place (atomic on one file system). On any error, Ctrl-C included, the
    temporary folder is removed and nothing is left under the final name.

    Processes that ask for the same artifact at once are safe: a file lock beside the folder lets one
    build it while the others wait, then find it complete (the lock is released by the OS if its holder
    dies). A complete folder is never removed or replaced, so a process reading it is never disturbed.
    Temporary folders of this key left by a killed build are removed before building.
    """
    final = (root or artifact_root()) / kind / key
    if is_complete(final):
        return final, True
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(_lock_path(final)):
        if is_complete(final):  # another process built it while this one waited
            return final, True
        for stale in final.parent.glob(f".{key}.*.tmp"):  # a killed build's leftovers (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".tmp", dir=final.parent))
        try:
            build(tmp)
            (tmp / COMPLETE_MARKER).write_text("ok\n")
            if final.exists():  # incomplete (no marker): nobody reads it, and we hold the lock
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final, False
