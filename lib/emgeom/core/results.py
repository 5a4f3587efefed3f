"""Recording a chapter's headline numbers.

A chapter calls :func:`record` for each number it wants the scorecard and outside checks to see. When
the chapter runs under the book runner, the runner tells it (through environment variables) where to
write; the runner then publishes ``_build/results/<chapter>.json`` only if the chapter succeeds::

    {"chapter": "02_gradient_derivation", "profile": "cpu",
     "results": {"first_order_pearson_r": {"value": 0.99, "ci": [0.98, 1.0], "n_seeds": 3, "note": "..."}}}

Run interactively (no runner), :func:`record` only keeps the value in memory and prints it.

Every result is *declared* once, beside the chapter that records it (``notebooks/<chapter>.results.yaml``,
read by :func:`load_declarations`): its meaning, unit and the scorecard claims it serves. Under the
runner, :func:`record` refuses a name that is not declared; the scorecard, the Build status page and the
tests read the same declarations.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emgeom.core.io import atomic_write_json
from emgeom.core.stats import Estimate

ENV_RESULTS_FILE = "EMGEOM_RESULTS_FILE"
ENV_CHAPTER = "EMGEOM_CHAPTER"
ENV_PROFILE = "EMGEOM_PROFILE"
ENV_DECLARATIONS = "EMGEOM_RESULTS_DECLARATIONS"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_DECLARED_NAME = re.compile(r"^[a-z][a-z0-9_]*(\{[a-z_]+\}[a-z0-9_]*)?$")
DECLARATION_SUFFIX = ".results.yaml"
_DECLARATION_KEYS = ("meaning", "unit", "claims", "sesoi", "sesoi_reason", "replicates")


class DeclarationError(ValueError):
    """A results declaration file is malformed, or a recorded name is not declared."""


@dataclass(frozen=True)
class ResultDeclaration:
    """What one recorded result means.

    Attributes:
        name: the result's name; it may hold one ``{placeholder}`` (e.g. ``similarity_gap_{domain}``),
            which stands for one result per domain (or set) the chapter studies.
        meaning: what the number is, in a sentence.
        unit: its unit or kind (``correlation``, ``fraction``, ``cosine``, ``seconds``, ...).
        claims: ids of the scorecard claims it serves (empty: a supporting number).
        sesoi: the smallest effect of interest, in the result's unit (a positive number), declared before
            any data: an interval inside ``±sesoi`` says the effect is absent; ``None`` for a result no
            verdict decides on.
        sesoi_reason: why the smallest effect of interest has that value.
        replicates: what the result's interval is over (``organisms``, ``seeds of one organism``,
            ``fine-tuning sets``, ...): a verdict decides only over organisms, the unit of replication.
    """

    name: str
    meaning: str
    unit: str
    claims: tuple[str, ...] = ()
    sesoi: float | None = None
    sesoi_reason: str = ""
    replicates: str = ""

    @property
    def placeholder(self) -> str | None:
        m = re.search(r"\{([a-z_]+)\}", self.name)
        return m.group(1) if m else None

    def expand(self, value: str) -> str:
        """The name with its placeholder filled with ``value``."""
        return self.name.replace("{" + (self.placeholder or "") + "}", value)

    def matches(self, name: str) -> bool:
        if self.placeholder is None:
            return name == self.name
        head, tail = self.name.split("{" + self.placeholder + "}")
        return re.fullmatch(re.escape(head) + r"[a-z0-9_]+" + re.escape(tail), name) is not None


def declaration_path(chapter_source: Path) -> Path:
    """``notebooks/<chapter>.results.yaml`` for ``notebooks/<chapter>.py`` (variants alike)."""
    return chapter_source.with_name(chapter_source.stem + DECLARATION_SUFFIX)


def load_declarations(path: Path) -> dict[str, ResultDeclaration]:
    """Read a chapter's declarations, checking every entry (a clear error names the file and entry)."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise DeclarationError(f"{path}: no results declaration for this chapter") from None
    except yaml.YAMLError as err:
        raise DeclarationError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(doc, dict) or not doc:
        raise DeclarationError(f"{path}: expected a mapping of result names to declarations")
    out = {}
    for name, entry in doc.items():
        where = f"{path}: {name!r}"
        if not isinstance(name, str) or not _DECLARED_NAME.match(name):
            raise DeclarationError(f"{where}: a name is snake_case with at most one {{placeholder}}")
        if not isinstance(entry, dict) or set(entry) - set(_DECLARATION_KEYS):
            raise DeclarationError(
                f"{where}: give meaning, unit and (optionally) claims, sesoi, sesoi_reason and replicates, "
                "nothing else"
            )
        meaning, unit, claims = entry.get("meaning"), entry.get("unit"), entry.get("claims", [])
        if (
            not isinstance(meaning, str)
            or not meaning.strip()
            or not isinstance(unit, str)
            or not unit.strip()
        ):
            raise DeclarationError(f"{where}: meaning and unit must be non-empty text")
        if not isinstance(claims, list) or not all(isinstance(c, str) for c in claims):
            raise DeclarationError(f"{where}: claims must be a list of claim ids")
        sesoi, reason, replicates = (
            entry.get("sesoi"),
            entry.get("sesoi_reason", ""),
            entry.get("replicates", ""),
        )
        if sesoi is not None:
            if isinstance(sesoi, bool) or not isinstance(sesoi, int | float) or not 0 < sesoi < math.inf:
                raise DeclarationError(f"{where}: sesoi must be a positive number, got {sesoi!r}")
            if not isinstance(reason, str) or not reason.strip():
                raise DeclarationError(f"{where}: a sesoi needs its sesoi_reason (why this value)")
            if not isinstance(replicates, str) or not replicates.strip():
                raise DeclarationError(f"{where}: a sesoi needs replicates (what its interval is over)")
        elif reason or replicates:
            raise DeclarationError(f"{where}: sesoi_reason and replicates go with a sesoi")
        out[name] = ResultDeclaration(
            name,
            meaning.strip(),
            unit.strip(),
            tuple(claims),
            None if sesoi is None else float(sesoi),
            reason.strip(),
            replicates.strip(),
        )
    return out


def find_declaration(declarations: Mapping[str, ResultDeclaration], name: str) -> ResultDeclaration | None:
    """The declaration of a recorded ``name``: its exact entry, else the most specific placeholder entry
    it matches (``similarity_gap_{domain}`` also matches ``similarity_gap_rowperm_pvalue_health``, whose
    own ``similarity_gap_rowperm_pvalue_{domain}`` wins: the longest fixed text)."""
    if name in declarations:
        return declarations[name]
    matching = [d for d in declarations.values() if d.matches(name)]
    return max(matching, key=lambda d: len(d.name), default=None)


def missing_results(
    declarations: Mapping[str, ResultDeclaration],
    recorded: Iterable[str],
    placeholder_values: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Declared results that were not recorded: every plain name; for a placeholder with known values
    (``{"domain": [...]}``) every value; for any other placeholder, at least one recorded instance
    that no plain declaration claims."""
    recorded = set(recorded)
    values = placeholder_values or {}
    plain = {d.name for d in declarations.values() if d.placeholder is None}
    missing = []
    for decl in declarations.values():
        if decl.placeholder is None:
            missing += [decl.name] if decl.name not in recorded else []
        elif decl.placeholder in values:
            missing += [n for n in (decl.expand(v) for v in values[decl.placeholder]) if n not in recorded]
        elif not any(decl.matches(n) for n in recorded - plain):
            missing.append(decl.name)
    return missing


def _check_declared(name: str) -> None:
    path = os.environ.get(ENV_DECLARATIONS)
    if path and find_declaration(load_declarations(Path(path)), name) is None:
        raise DeclarationError(
            f"result {name!r} is not declared in {path}: "
            "declare it (meaning, unit, claims) before recording it"
        )


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
    _check_declared(name)
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


def record_estimate(name: str, e: Estimate, note: str = "") -> None:
    """:func:`record` an estimate: its value and interval, and its ``n`` (at least 1) as the replicates."""
    record(name, e.value, ci=e.ci, n_seeds=max(e.n, 1), note=note)


def record_each(
    template: str,
    estimates: Mapping[str, Estimate],
    *,
    note: str = "",
    n_seeds: int | None = None,
) -> None:
    """:func:`record` one estimate per key, named ``template.format(key)`` (e.g.
    ``record_each("mechanism_pearson_r_{}", {"health": e, ...})``), with its interval and, unless
    ``n_seeds`` is given, its ``n`` as the number of seeds."""
    if "{}" not in template:
        raise ValueError(f"template {template!r} needs a '{{}}' for the key")
    for key, e in estimates.items():
        record(template.format(key), e.value, ci=e.ci, n_seeds=n_seeds or max(e.n, 1), note=note)


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
