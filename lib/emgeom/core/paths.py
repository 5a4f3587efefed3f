"""Where a checkout of the book is: the folder with ``_toc.yml`` and ``notebooks/`` at or above a path.

It lives in the lowest layer because both the artifact cache (which defaults to the checkout's
``_build/artifacts``) and the book runner need it."""

from __future__ import annotations

from pathlib import Path


def find_checkout(start: Path | None = None) -> Path | None:
    """The book checkout containing ``start`` (default: the working directory), or ``None``."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "_toc.yml").is_file() and (candidate / "notebooks").is_dir():
            return candidate
    return None
