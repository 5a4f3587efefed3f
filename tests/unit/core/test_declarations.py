"""Results declarations: read and checked, matched to recorded names, enforced by record()."""

from __future__ import annotations

from pathlib import Path

import pytest

from emgeom.core import results
from emgeom.core.results import (
    DeclarationError,
    ResultDeclaration,
    find_declaration,
    load_declarations,
    missing_results,
)

GOOD = """
gap_{domain}:
  meaning: the gap in one domain
  unit: cosine
  claims: [geometry]
gap_full:
  meaning: the pooled gap
  unit: cosine
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ch.results.yaml"
    path.write_text(text)
    return path


def test_declarations_are_read_and_matched(tmp_path: Path) -> None:
    decls = load_declarations(write(tmp_path, GOOD))
    assert decls["gap_{domain}"] == ResultDeclaration(
        "gap_{domain}", "the gap in one domain", "cosine", ("geometry",)
    )
    assert find_declaration(decls, "gap_health") is decls["gap_{domain}"]
    assert find_declaration(decls, "gap_full") is decls["gap_full"]  # a plain name wins over the pattern
    assert find_declaration(decls, "gaps_health") is None
    assert decls["gap_{domain}"].expand("code") == "gap_code"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gap: [1, 2]", "give meaning, unit"),
        ("gap:\n  meaning: m\n", "meaning and unit must be non-empty"),
        ("gap:\n  meaning: m\n  unit: u\n  extra: 1\n", "nothing else"),
        ("Gap:\n  meaning: m\n  unit: u\n", "snake_case"),
        ("gap_{a}_{b}:\n  meaning: m\n  unit: u\n", "at most one"),
        ("gap:\n  meaning: m\n  unit: u\n  claims: geometry\n", "list of claim ids"),
        ("gap: [", "not valid YAML"),
        ("", "expected a mapping"),
    ],
)
def test_malformed_declarations_name_the_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DeclarationError, match=message) as err:
        load_declarations(path)
    assert str(path) in str(err.value)


def test_a_missing_declaration_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DeclarationError, match="no results declaration"):
        load_declarations(tmp_path / "absent.results.yaml")


def test_record_refuses_an_undeclared_name_under_the_runner(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(results.ENV_DECLARATIONS, str(write(tmp_path, GOOD)))
    monkeypatch.setenv(results.ENV_RESULTS_FILE, str(tmp_path / "out.json"))
    results.record("gap_health", 0.3)
    results.record("gap_full", 0.2)
    with pytest.raises(DeclarationError, match="'typo_gap' is not declared"):
        results.record("typo_gap", 0.1)
    assert "typo_gap" not in (tmp_path / "out.json").read_text()


def test_missing_results_expands_known_placeholders(tmp_path: Path) -> None:
    decls = load_declarations(write(tmp_path, GOOD))
    assert missing_results(decls, {"gap_full", "gap_a"}, {"domain": ["a", "b"]}) == ["gap_b"]
    assert missing_results(decls, {"gap_full", "gap_a"}) == []
    assert missing_results(decls, {"gap_full"}) == ["gap_{domain}"]
    assert missing_results(decls, {"gap_a"}) == ["gap_full"]
