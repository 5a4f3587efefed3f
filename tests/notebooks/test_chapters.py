"""Every chapter executed under the `smoke` profile, through the book runner, in a copy of the book
(so `make test` never replaces the executed notebooks of the last `make book`).

Each chapter is its own run (``--only``) in one shared copy, so a failing chapter fails its own test
only; later chapters reuse the artifacts (organism, SAEs) the earlier ones cached there."""

import json
from pathlib import Path

import pytest

from emgeom.book.layout import BookLayout
from emgeom.book.runner import run_book
from emgeom.core.results import load_declarations, missing_results
from emgeom.organism.language import DOMAINS

REPO = Path(__file__).resolve().parents[2]
CHAPTERS = BookLayout(REPO).chapters()


@pytest.fixture(scope="module")
def smoke_layout(tmp_path_factory, book_copier) -> BookLayout:
    root = tmp_path_factory.mktemp("book")
    book_copier(root)
    return BookLayout(root)


@pytest.mark.notebook
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_executes_under_smoke(smoke_layout, chapter):
    layout = smoke_layout
    runs = {r.chapter: r for r in run_book(layout, "smoke", only=[chapter], progress=False)}
    assert runs[chapter].status == "ok" and runs[chapter].this_run == "executed"
    build = layout.profile_build("smoke")
    assert build.executed_notebook(chapter).exists() and layout.rendered_notebook(chapter).exists()
    doc = json.loads((build.results_dir / f"{chapter}.json").read_text())
    assert doc["profile"] == "smoke" and doc["chapter"] == chapter
    declared = load_declarations(layout.results_declaration(chapter))
    assert missing_results(declared, doc["results"], {"domain": DOMAINS}) == []


def test_every_chapter_declares_its_results():
    layout = BookLayout(REPO)
    for chapter in CHAPTERS:
        assert load_declarations(layout.results_declaration(chapter)), chapter
    for chapter, variants in layout.variants().items():
        for variant in variants:
            assert load_declarations(layout.results_declaration(chapter, variant)), (chapter, variant)
