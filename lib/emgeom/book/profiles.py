"""Run profiles: YAML files in ``ci/profiles/`` that map each chapter to its parameter values.

::

    description: Tiny parameters; every chapter in seconds. Used by `make test`.
    threads: 1
    shared:                       # optional: set once, handed to every chapter that declares the name
      organism_seeds: [0, 1, 2]
      d_model: 64
    chapters:
      01_toy_superposition: {steps: 200, n_seeds: 1}
      02_gradient_derivation: {}

Every chapter of the book must appear in every profile (with ``{}`` to keep its defaults), so a new
chapter cannot silently run at full size under ``smoke``. A chapter entry may name a ``variant``: the
chapter's source written for another kind of model (``notebooks/<variant>/<chapter>.py``, e.g.
``real_models``); its parameters are then checked against that source's parameters cell.

The ``shared`` section defines what several chapters must agree on (the organisms, the SAEs and their
seeds) once. Each name in it must be declared by at least one chapter, with a type every declaring
chapter accepts, and no chapter entry may set it again. A chapter receives the shared values of the
names its parameters cell declares, as papermill parameters like any other override, so they are part
of its cache key: changing a shared value re-runs exactly the chapters that read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emgeom.book.parameters import ParameterError, ParameterSpec, validate_overrides

_TOP_LEVEL = {"description", "threads", "shared", "chapters"}


@dataclass(frozen=True)
class Profile:
    """A validated profile: per-chapter parameters and the CPU thread count for kernels.

    ``chapters[c]`` is everything chapter ``c`` is executed with: the shared values of the names it
    declares, then its own entry; ``shared`` is the shared section as written.
    """

    name: str
    description: str
    threads: int
    chapters: dict[str, dict[str, Any]] = field(default_factory=dict)
    variants: dict[str, str] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)


def profile_path(profiles_dir: Path, name: str) -> Path:
    """The YAML file of profile ``name``; an unknown name lists the available ones."""
    path = profiles_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in profiles_dir.glob("*.yaml"))) or "(none)"
        raise ParameterError(f"unknown profile {name!r} (no {path}); available: {known}")
    return path


def load_profile(
    profiles_dir: Path,
    name: str,
    chapter_specs: dict[str, dict[str, ParameterSpec]],
    variant_specs: dict[str, dict[str, dict[str, ParameterSpec]]] | None = None,
) -> Profile:
    """Load profile ``name`` and validate it against every chapter's parameter specs (those of the
    chosen variant, ``variant_specs[chapter][variant]``, where an entry names one).

    Raises :class:`ParameterError` naming the profile, chapter and parameter for each problem found.
    """
    path = profile_path(profiles_dir, name)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParameterError(f"profile {name!r}: {path.name} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ParameterError(f"profile {name!r}: {path.name} must be a mapping")
    extra = set(raw) - _TOP_LEVEL
    if extra:
        raise ParameterError(f"profile {name!r}: unknown keys {sorted(extra)}; allowed: {sorted(_TOP_LEVEL)}")
    threads = raw.get("threads", 1)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ParameterError(f"profile {name!r}: threads must be a positive int, got {threads!r}")
    chapters = raw.get("chapters") or {}
    if not isinstance(chapters, dict):
        raise ParameterError(f"profile {name!r}: 'chapters' must map chapter names to parameters")
    shared = raw.get("shared") or {}
    if not isinstance(shared, dict):
        raise ParameterError(f"profile {name!r}: 'shared' must map parameter names to values")
    problems: list[str] = []
    unknown = sorted(set(chapters) - set(chapter_specs))
    if unknown:
        problems.append(
            f"profile {name!r}: unknown chapters {unknown}; chapters are: {', '.join(chapter_specs)}"
        )
    missing = [c for c in chapter_specs if c not in chapters]
    if missing:
        problems.append(f"profile {name!r}: no entry for chapters {missing} (use `{{}}` to keep defaults)")
    validated: dict[str, dict[str, Any]] = {}
    variants: dict[str, str] = {}
    declared_by: dict[str, Any] = {}
    for chapter, specs in chapter_specs.items():
        overrides = chapters.get(chapter) or {}
        if not isinstance(overrides, dict):
            problems.append(f"profile {name!r}, chapter {chapter!r}: parameters must be a mapping")
            continue
        if "variant" in overrides:
            overrides = dict(overrides)
            variant = overrides.pop("variant")
            known = (variant_specs or {}).get(chapter, {})
            if variant not in known:
                problems.append(
                    f"profile {name!r}, chapter {chapter!r}: unknown variant {variant!r}; "
                    f"available: {', '.join(sorted(known)) or '(none)'}"
                )
                continue
            variants[chapter], specs = variant, known[variant]
        repeated = sorted(set(overrides) & set(shared))
        if repeated:
            problems.append(
                f"profile {name!r}, chapter {chapter!r}: {repeated} are set in the 'shared' section; "
                "set them there only"
            )
        where = f"profile {name!r}, chapter {chapter!r}"
        reads = {k: v for k, v in shared.items() if k in specs}
        try:
            validate_overrides(reads, specs, f"{where} (from 'shared')")
            validated[chapter] = reads | validate_overrides(overrides, specs, where)
        except ParameterError as err:
            problems.append(str(err))
        declared_by.update(reads)
    unread = sorted(set(shared) - set(declared_by))
    if unread:
        problems.append(f"profile {name!r}: shared parameters {unread} are declared by no chapter")
    if problems:
        raise ParameterError("\n".join(problems))
    return Profile(name, str(raw.get("description", "")), threads, validated, variants, dict(shared))
