"""The scorecard reads only declared results, each declared as serving the claim that reads it, and
every claim is served by some declared result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emgeom.book.chapters import chapter_declarations
from emgeom.book.layout import BookLayout
from emgeom.book.pages.scorecard import CLAIMS, render_scorecard, serving
from emgeom.core.results import find_declaration, load_declarations

REPO = Path(__file__).resolve().parents[3]
LAYOUT = BookLayout(REPO)


def all_declarations() -> dict[str, dict[str, Any]]:
    """Declarations of every chapter and every chapter variant."""
    out: dict[str, dict[str, Any]] = chapter_declarations(LAYOUT, LAYOUT.chapters())
    for chapter, variants in LAYOUT.variants().items():
        for variant in variants:
            out[f"{variant}/{chapter}"] = load_declarations(LAYOUT.results_declaration(chapter, variant))
    return out


class Recording(dict):
    """Results that remember which names were asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


def test_every_claim_id_in_a_declaration_exists() -> None:
    ids = {c.id for c in CLAIMS}
    for chapter, decls in all_declarations().items():
        for d in decls.values():
            assert set(d.claims) <= ids, (chapter, d.name, d.claims)


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_a_claim_reads_only_results_declared_for_it(claim) -> None:
    decls = chapter_declarations(LAYOUT, LAYOUT.chapters())
    merged = {name: d for chapter in decls.values() for name, d in chapter.items()}
    results = Recording()
    # the geometry claims read the domains a build recorded: plant two, one of them the paper's
    results.update(
        {f"similarity_gap_excl_shared_{d}": {"value": 0.5, "ci": None} for d in ("health", "code", "travel")}
    )
    claim.judge(results)
    assert results.asked, f"{claim.id} reads no result"
    for name in results.asked:
        d = find_declaration(merged, name)
        assert d is not None, f"{claim.id} reads undeclared {name!r}"
        assert claim.id in d.claims, f"{name!r} is read by {claim.id} but not declared as serving it"
    assert serving(claim.id, decls)


def test_the_page_lists_the_results_behind_each_claim() -> None:
    decls = chapter_declarations(LAYOUT, LAYOUT.chapters())
    page = render_scorecard({}, "cpu", decls)
    assert "`similarity_gap_{domain}` (04_sae_geometry)" in page
    assert "`filter_vs_judge_difference` (06_geometry_filtering)" in page
