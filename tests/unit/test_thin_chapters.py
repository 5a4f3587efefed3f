"""Chapters 3 onwards and their real-model variants are thin: prose, a parameters cell, one call per step.
No function or class definitions, lambdas, loops or comprehensions in their code cells: study loops
and aggregations live in lib/ (with tests)."""

from __future__ import annotations

import ast
from pathlib import Path

import jupytext
import pytest

from emgeom.book.layout import BookLayout

LAYOUT = BookLayout(Path(__file__).resolve().parents[2])
THIN = [c for c in LAYOUT.chapters() if int(c[:2]) >= 3]
SOURCES = [LAYOUT.chapter_source(c) for c in THIN] + [
    LAYOUT.chapter_source(c, v) for c, variants in LAYOUT.variants().items() for v in variants
]
FORBIDDEN = (
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.comprehension,
)


def code_constructs(path: Path) -> list[str]:
    """``kind: code`` of every forbidden construct in the chapter's code cells."""
    found = []
    for cell in jupytext.read(path).cells:
        if cell.cell_type == "code":
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, FORBIDDEN):
                    found.append(f"{type(node).__name__}: {ast.unparse(node)[:60]}")
    return found


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_chapter_has_no_loops_or_definitions(source: Path) -> None:
    assert code_constructs(source) == []


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_imports_are_hidden_and_parameters_shown(source: Path) -> None:
    cells = [c for c in jupytext.read(source).cells if c.cell_type == "code"]
    tags = [c.metadata.get("tags", []) for c in cells]
    assert "parameters" in tags[0] and "hide-input" not in tags[0]
    assert "hide-input" in tags[1]
    assert all(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.parse(cells[1].source).body)


def test_the_check_sees_a_loop(tmp_path: Path) -> None:
    planted = tmp_path / "03_x.py"
    planted.write_text("# %%\nx = [s for s in seeds]\n\n# %%\nfor d in domains:\n    pass\n")
    assert [f.split(":")[0] for f in code_constructs(planted)] == ["comprehension", "For"]
