"""A chapter's parameters: read from its ``parameters`` cell and checked before anything executes.

The cell holds only annotated assignments of literals, one per parameter::

    n_features: int = 5
    feature_probabilities: list[float] = [1.0, 0.3, 0.1]
    device: str = "cpu"

The annotation is the parameter's type. Supported: ``int``, ``float``, ``str``, ``bool``, ``list[T]``,
``dict[str, T]`` and ``T | None``. An ``int`` is accepted where a ``float`` is declared; a ``bool`` is
never accepted as a number.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext

PARAMETERS_TAG = "parameters"


class ParameterError(ValueError):
    """A parameters cell or a parameter value that the runner refuses."""


@dataclass(frozen=True)
class TypeSpec:
    """A parsed annotation: ``kind`` is one of int/float/str/bool/list/dict; ``item`` for containers."""

    kind: str
    item: TypeSpec | None = None
    optional: bool = False

    def __str__(self) -> str:
        base = (
            self.kind
            if self.item is None
            else f"{self.kind}[{'str, ' if self.kind == 'dict' else ''}{self.item}]"
        )
        return f"{base} | None" if self.optional else base

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        if self.kind == "float":
            return isinstance(value, int | float) and not isinstance(value, bool)
        if self.kind == "str":
            return isinstance(value, str)
        assert self.item is not None
        if self.kind == "list":
            return isinstance(value, list) and all(self.item.accepts(v) for v in value)
        if self.kind == "dict":
            return isinstance(value, dict) and all(
                isinstance(k, str) and self.item.accepts(v) for k, v in value.items()
            )
        raise AssertionError(self.kind)


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter of a chapter: its name, declared type and default value."""

    name: str
    type: TypeSpec
    default: Any


_SCALARS = {"int", "float", "str", "bool"}


def parse_annotation(node: ast.expr, where: str) -> TypeSpec:
    """Turn an annotation's AST into a :class:`TypeSpec` (see the module docstring for what is allowed)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [node.left, node.right]
        nones = [s for s in sides if isinstance(s, ast.Constant) and s.value is None]
        others = [s for s in sides if s not in nones]
        if len(nones) == 1 and len(others) == 1:
            inner = parse_annotation(others[0], where)
            return TypeSpec(inner.kind, inner.item, optional=True)
    if isinstance(node, ast.Name) and node.id in _SCALARS:
        return TypeSpec(node.id)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        if node.value.id == "list":
            return TypeSpec("list", parse_annotation(node.slice, where))
        if node.value.id == "dict" and isinstance(node.slice, ast.Tuple) and len(node.slice.elts) == 2:
            key, val = node.slice.elts
            if isinstance(key, ast.Name) and key.id == "str":
                return TypeSpec("dict", parse_annotation(val, where))
    raise ParameterError(
        f"{where}: unsupported type annotation {ast.unparse(node)!r}; use int, float, str, bool, "
        "list[T], dict[str, T] or T | None"
    )


def parse_parameters_source(source: str, where: str) -> dict[str, ParameterSpec]:
    """Parse the text of a parameters cell into specs, in order. ``where`` names it in errors."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ParameterError(f"{where}: parameters cell is not valid Python: {err}") from err
    specs: dict[str, ParameterSpec] = {}
    for stmt in tree.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value):
            raise ParameterError(
                f"{where}: line {stmt.lineno}: the parameters cell may only hold annotated assignments "
                f"like `steps: int = 100`, found {ast.unparse(stmt)!r}"
            )
        name = stmt.target.id
        type_spec = parse_annotation(stmt.annotation, f"{where}: parameter {name!r}")
        try:
            default = ast.literal_eval(stmt.value)
        except ValueError as err:
            raise ParameterError(f"{where}: default of {name!r} must be a literal") from err
        if not type_spec.accepts(default):
            raise ParameterError(f"{where}: default {default!r} of {name!r} is not a {type_spec}")
        if name in specs:
            raise ParameterError(f"{where}: parameter {name!r} is declared twice")
        specs[name] = ParameterSpec(name, type_spec, default)
    return specs


def read_chapter_parameters(path: Path) -> dict[str, ParameterSpec]:
    """Read the one cell tagged ``parameters`` of a jupytext chapter and parse it."""
    notebook = jupytext.read(path)
    cells = [c for c in notebook.cells if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(
            f"{path.name}: expected exactly one cell tagged 'parameters', found {len(cells)}"
        )
    return parse_parameters_source(cells[0].source, path.name)


def validate_overrides(
    overrides: dict[str, Any], specs: dict[str, ParameterSpec], where: str
) -> dict[str, Any]:
    """Check names and types of ``overrides`` against ``specs``; returns them unchanged if all are valid.

    Every problem is collected, so one run of the check reports all of them.
    """
    problems: list[str] = []
    allowed = ", ".join(specs) or "(none)"
    for name, value in overrides.items():
        spec = specs.get(name)
        if spec is None:
            problems.append(f"{where}: unknown parameter {name!r}; allowed: {allowed}")
        elif not spec.type.accepts(value):
            problems.append(
                f"{where}: parameter {name!r} must be {spec.type}, got {value!r} ({type(value).__name__})"
            )
    if problems:
        raise ParameterError("\n".join(problems))
    return dict(overrides)
