"""The book typesets math with a MathJax copied into the build, never one from a CDN (issue #23).

A browser check (book/running.md, "Math offline") shows the typeset math with the network cut; these
tests hold what it rests on: the configuration names a local MathJax that is installed, and a built page
loads it by a relative path.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
EXTENSION = REPO / "book" / "_ext" / "offline_mathjax.py"


def load_extension():
    spec = importlib.util.spec_from_file_location("offline_mathjax", EXTENSION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sphinx_config(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The Sphinx configuration Jupyter Book makes of ``_config.yml``."""
    from jupyter_book.config import get_final_config

    monkeypatch.setattr(sys, "path", [*sys.path])  # get_final_config appends the local extensions' folders
    config, _ = get_final_config(
        user_yaml=REPO / "_config.yml",
        cli_config={"latex_individualpages": False},
        sourcedir=REPO,
        raise_on_invalid=True,
    )
    return config


def test_config_names_a_local_mathjax_that_is_installed(sphinx_config: dict) -> None:
    mathjax_path = sphinx_config["mathjax_path"]
    assert "://" not in mathjax_path and not mathjax_path.startswith("//"), mathjax_path
    assert mathjax_path.startswith("mathjax/")
    assert "offline_mathjax" in sphinx_config["extensions"]
    assert (REPO / "book" / "_ext" / "offline_mathjax.py").is_file()

    ext = load_extension()
    bundle = ext.bundled_file(mathjax_path)  # raises if the pinned package is missing or lacks the file
    assert bundle.is_file() and bundle.stat().st_size > 100_000
    source = ext.mathjax_source()
    # what the bundle loads beside itself on demand, e.g. \boldsymbol's TeX extension
    assert (source / "input" / "tex" / "extensions" / "boldsymbol.js").is_file()


def test_a_url_mathjax_path_is_refused() -> None:
    from sphinx.errors import ExtensionError

    ext = load_extension()
    for path in ("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js", "//cdn/x.js", "tex-svg.js"):
        with pytest.raises(ExtensionError, match="not a URL"):
            ext.bundled_file(path)
    with pytest.raises(ExtensionError, match="does not exist"):
        ext.bundled_file("mathjax/no-such-bundle.js")


def test_built_page_loads_the_bundled_mathjax(tmp_path: Path) -> None:
    """A one-page book built with this repository's configuration (about 3 s)."""
    book = tmp_path / "book_copy"
    (book / "book" / "_ext").mkdir(parents=True)
    (book / "_config.yml").write_text((REPO / "_config.yml").read_text())
    (book / "book" / "_ext" / "offline_mathjax.py").write_text(EXTENSION.read_text())
    (book / "book" / "references.bib").write_text((REPO / "book" / "references.bib").read_text())
    (book / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")
    (book / "book" / "intro.md").write_text(
        "# Derivation\n\nInline $\\alpha$ and\n\n"
        "$$\n\\nabla_W L = \\sum_i \\boldsymbol{\\delta}_i x_i^\\top\n$$\n"
    )
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    done = subprocess.run(
        [str(jupyter_book), "build", str(book), "-W", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    html_dir = book / "_build" / "html"
    page = (html_dir / "book" / "intro.html").read_text()
    assert 'class="math notranslate nohighlight"' in page  # the display math is there, for MathJax
    scripts = re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", page)
    mathjax = [s for s in scripts if "mathjax" in s.lower()]
    configured = yaml.safe_load((REPO / "_config.yml").read_text())["sphinx"]["config"]["mathjax_path"]
    assert mathjax == [f"../_static/{configured}"], scripts
    assert (html_dir / "book" / mathjax[0]).resolve().is_file()
    assert (html_dir / "_static" / "mathjax" / "input" / "tex" / "extensions" / "boldsymbol.js").is_file()
    assert not [s for s in scripts if "://" in s or s.startswith("//")], scripts
    assert "cdn.jsdelivr" not in page and "mathjax@" not in page
