"""Recording a chapter's headline numbers.

A chapter calls :func:`record` for each number it wants the scorecard and outside checks to see. When
the chapter runs under the book runner, the runner tells it (through environment variables) where to
write; the runner then publishes ``_build/results/<chapter>.json`` only if the chapter succeeds::

    {"chapter": "02_gradient_derivation", "profile": "cpu",
     "results": {"first_order_pearson_r": {"value": 0.99, "ci": [0.98, 1.0], "n_seeds": 3, "note": "..."}}}

Run interactively (no runner), :func:`record` only keeps the value in memory and prints it.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emgeom.core.io import atomic_write_json

ENV_RESULTS_FILE = "EMGEOM_RESULTS_FILE"
ENV_CHAPTER = "EMGEOM_CHAPTER"
ENV_PROFILE = "EMGEOM_PROFILE"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class RecordedResult:
    """One headline number. ``value`` is None when the run could not compute it (e.g. NaN)."""

    value: float | None
    ci: tuple[float, float] | None
    n_seeds: int
    note: str


_session: dict[str, RecordedResult] = {}


def _finite_or_none(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def record(
    name: str,
    value: float,
    *,
    ci: tuple[float, float] | None = None,
    n_seeds: int = 1,
    note: str = "",
) -> None:
    """Record headline number ``name`` (snake_case) with an optional 95% CI ``(lo, hi)``.

    A non-finite value or CI bound is stored as ``null`` (the run did not produce it); it is never
    replaced by a made-up number. :func:`session_results` returns what was recorded.
    """
    if not _NAME.match(name):
        raise ValueError(f"result name {name!r} must be snake_case (letters, digits, underscores)")
    if not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"n_seeds for {name!r} must be a positive int, got {n_seeds!r}")
    interval = None
    if ci is not None:
        lo, hi = (_finite_or_none(c) for c in ci)
        interval = None if lo is None or hi is None else (lo, hi)
    result = RecordedResult(_finite_or_none(value), interval, n_seeds, note)
    _session[name] = result
    target = os.environ.get(ENV_RESULTS_FILE)
    if target:
        _write(Path(target), name, result)
    shown = "n/a" if result.value is None else f"{result.value:.4g}"
    ci_text = "" if interval is None else f" (95% CI {interval[0]:.4g} to {interval[1]:.4g})"
    print(f"recorded {name} = {shown}{ci_text}, n_seeds={n_seeds}")


def _write(path: Path, name: str, result: RecordedResult) -> None:
    doc: dict[str, Any] = (
        json.loads(path.read_text())
        if path.exists()
        else {
            "chapter": os.environ.get(ENV_CHAPTER, ""),
            "profile": os.environ.get(ENV_PROFILE, ""),
            "results": {},
        }
    )
    entry = asdict(result)
    entry["ci"] = list(result.ci) if result.ci is not None else None
    doc["results"][name] = entry
    atomic_write_json(path, doc)


def session_results() -> dict[str, RecordedResult]:
    """What this process recorded so far (a copy)."""
    return dict(_session)


def load_results(results_dir: Path) -> dict[str, dict[str, Any]]:
    """All published results files under ``results_dir``, keyed by chapter."""
    out: dict[str, dict[str, Any]] = {}
    for file in sorted(results_dir.glob("*.json")):
        doc = json.loads(file.read_text())
        out[doc["chapter"]] = doc
    return out
