"""Sphinx extension: the book's math is typeset by a MathJax copied into the build, never a CDN (issue #23).

Sphinx's default ``mathjax_path`` is a CDN URL, so a downloaded or air-gapped copy of ``_build/html``
showed raw LaTeX. ``_config.yml`` sets ``mathjax_path`` to a file under ``mathjax/``, which Sphinx makes
relative to ``_static/`` on every page (``../_static/mathjax/...`` one folder down), and this extension
copies the MathJax files into ``_build/html/_static/mathjax`` when an HTML build finishes.

The files are MathJax 3.2.2 as shipped by the ``sphinx-mathjax-offline`` package (a pinned dependency in
``pyproject.toml`` and ``requirements.lock``, so ``make book`` installs it from the package registry).
That package's own Sphinx extension is not used: it forces ``mathjax_path`` to ``tex-chtml.js`` whatever
the configuration says, and copies every MathJax bundle (24 MB). This one copies the configured bundle
and the component folders MathJax loads from beside it on demand (TeX extensions such as
``\\boldsymbol``, the menu, the accessibility tools, the other output's fonts): about 11 MB.

A ``mathjax_path`` that is a URL, or that names no file of the installed MathJax, stops the build.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError

PACKAGE = "sphinx-mathjax-offline"
PREFIX = "mathjax/"  # mathjax_path is relative to _static/; the files land in _static/mathjax/


def mathjax_source() -> Path:
    """The installed MathJax folder (the one whose files the build copies)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise ExtensionError(
            f"offline_mathjax: the {PACKAGE} package is not installed; "
            "install the pinned one with `pip install -r requirements.lock`"
        )
    return Path(spec.origin).parent / "static" / "mathjax"


def bundled_file(mathjax_path: str) -> Path:
    """The file of the installed MathJax that ``mathjax_path`` names; an error if it names none."""
    if "://" in mathjax_path or mathjax_path.startswith("//") or not mathjax_path.startswith(PREFIX):
        raise ExtensionError(
            f"offline_mathjax: mathjax_path = {mathjax_path!r} must name a file under {PREFIX!r} "
            "(the MathJax copied into _static), not a URL: the book must typeset math offline"
        )
    source = mathjax_source()
    path = source / mathjax_path.removeprefix(PREFIX)
    if not path.is_file():
        found = sorted(p.name for p in source.glob("*.js"))
        raise ExtensionError(f"offline_mathjax: {path} does not exist; the bundles are {found}")
    return path


def _copy_if_changed(src: str, dst: str) -> str:
    """shutil.copy2, skipping a file already copied (same size and time: copy2 keeps the time)."""
    s = os.stat(src)
    try:
        d = os.stat(dst)
    except FileNotFoundError:
        pass
    else:
        if (s.st_size, int(s.st_mtime)) == (d.st_size, int(d.st_mtime)):
            return dst
    return shutil.copy2(src, dst)


def copy_mathjax(outdir: Path, mathjax_path: str) -> Path:
    """Copy the bundle ``mathjax_path`` names, and every component folder, into ``outdir/_static``."""
    source = mathjax_source()
    entry = bundled_file(mathjax_path)
    dest = outdir / "_static" / "mathjax"
    dest.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_dir():
            shutil.copytree(item, dest / item.name, dirs_exist_ok=True, copy_function=_copy_if_changed)
    target = dest / entry.relative_to(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    _copy_if_changed(str(entry), str(target))
    return target


def _check_config(app: Sphinx, config: Config) -> None:
    bundled_file(config.mathjax_path)


def _build_finished(app: Sphinx, exc: Exception | None) -> None:
    if exc is None and app.builder.format == "html":
        copy_mathjax(Path(app.outdir), app.config.mathjax_path)


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx.ext.mathjax")
    app.connect("config-inited", _check_config)
    app.connect("build-finished", _build_finished)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
