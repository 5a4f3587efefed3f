"""The artifacts a build needs before its chapters run (organisms, and SAEs on them), planned from the
chapters' parameters, so the runner can build them as separate steps: several at once, and beside the
chapters that need none.

A chapter names its organisms and SAEs by parameters (``organism_seeds``, ``d_model``, ...,
``coupling_mistake_rates``, ``sae_width``, ...), the same names the profile's ``shared`` section sets.
This module turns those names into the same configs the chapters build with
(:class:`~emgeom.organism.family.OrganismFamily`, the one place parameter names become configs), so
a chapter that runs after its jobs finds every artifact in the
cache. A chapter run on its own (``papermill``) still builds what it needs itself: the jobs only move
that work earlier and side by side, they do not change what is built.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class ArtifactJob:
    """One artifact to build before the chapters that read it.

    Attributes:
        name: what the build log and the report call it (e.g. ``organism 1``, ``SAE 0 on organism 1``).
        kind: ``"organism"`` or ``"sae"``.
        organism: the organism's config (for an SAE, the organism it is trained on).
        sae: the SAE's spec (``None`` for an organism).
        needs: names of the jobs that must finish first (an SAE needs its organism).
    """

    name: str
    kind: str
    organism: Any
    sae: Any = None
    needs: tuple[str, ...] = field(default_factory=tuple)


def chapter_organisms(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The organisms a chapter with these parameters reads, by job name: the replicates of
    ``organism_seeds`` (or the one of ``organism_seed``, for a chapter that studies one organism) and the
    coupling sweep of ``coupling_mistake_rates`` on each of ``coupling_organism_seeds``; none for a
    chapter that declares no organism (the toy and real-model chapters)."""
    if "d_model" not in parameters:
        return {}
    from emgeom.organism.family import OrganismFamily

    family = OrganismFamily.from_parameters(parameters)
    out: dict[str, Any] = {}
    seeds = parameters.get(
        "organism_seeds", [parameters["organism_seed"]] if "organism_seed" in parameters else []
    )
    for seed, cfg in (family.organism_configs(seeds) if seeds else {}).items():
        out[f"organism {seed}"] = cfg
    if "coupling_mistake_rates" in parameters:
        domain, rates = parameters["coupling_domain"], parameters["coupling_mistake_rates"]
        for seed in parameters["coupling_organism_seeds"]:
            for rate, cfg in family.coupling_configs(seed, domain, rates).items():
                out[f"organism {seed}, {domain} mistakes {rate:g}"] = cfg
    return out


def chapter_sae_specs(parameters: Mapping[str, Any]) -> list[Any]:
    """The SAE specs a chapter with these parameters reads (one per ``sae_seeds``, or the one of
    ``sae_seed`` for a chapter that reads a single SAE), none without SAEs."""
    seeds = parameters.get("sae_seeds", [parameters["sae_seed"]] if "sae_seed" in parameters else [])
    if "sae_width" not in parameters or not seeds:
        return []
    from emgeom.organism.family import OrganismFamily

    return OrganismFamily.from_parameters(parameters).sae_specs(seeds)


def plan_artifacts(
    chapters: Mapping[str, Mapping[str, Any]],
) -> tuple[list[ArtifactJob], dict[str, set[str]]]:
    """Jobs for every organism and SAE the given chapters read (each once, however many chapters read
    it), and for each chapter the names of the jobs it must wait for.

    ``chapters`` maps a chapter to the full parameter values it will run with. Organisms that two job
    names describe identically (the coupling sweep's default rate is a replicate) are built once, under
    the first name.
    """
    jobs: dict[str, ArtifactJob] = {}
    by_key: dict[str, str] = {}  # organism cache key -> job name
    needs: dict[str, set[str]] = {}
    for chapter, parameters in chapters.items():
        wanted: set[str] = set()
        specs = chapter_sae_specs(parameters)
        widths = list(parameters.get("sae_check_widths", [])) if specs else []
        for i, (name, cfg) in enumerate(chapter_organisms(parameters).items()):
            # the width check trains extra SAEs on the first organism only
            extra = [replace(specs[0], d_sae=w) for w in widths] if i == 0 else []
            key = cfg.stage_key("aligned")
            organism_job = by_key.setdefault(key, name)
            jobs.setdefault(organism_job, ArtifactJob(organism_job, "organism", cfg))
            wanted.add(organism_job)
            for spec in [*specs, *extra]:
                sae_job, n = f"SAE {spec.seed} on {organism_job}", 2
                if spec.d_sae != specs[0].d_sae:
                    sae_job = f"SAE {spec.seed} ({spec.d_sae} latents) on {organism_job}"
                while sae_job in jobs and jobs[sae_job].sae != spec:  # another chapter's SAE of this seed
                    sae_job, n = f"SAE {spec.seed} ({n}) on {organism_job}", n + 1
                jobs.setdefault(sae_job, ArtifactJob(sae_job, "sae", cfg, spec, (organism_job,)))
                wanted.add(sae_job)
        needs[chapter] = wanted
    return list(jobs.values()), needs


def run_artifact_job(job: ArtifactJob, environment: Mapping[str, str]) -> str:
    """Build one job's artifact (or find it cached) in this process, with ``environment`` set (artifact
    root, thread count); returns ``""`` on success, the error text otherwise."""
    os.environ.update(environment)
    from emgeom.lm.training import configure_threads
    from emgeom.organism.build import build_organism
    from emgeom.organism.study import load_subject

    configure_threads()
    start = time.perf_counter()
    try:
        if job.kind == "organism":
            build_organism(job.organism, progress=False)
        else:
            load_subject(job.organism, [job.sae], progress=False)
    except Exception as err:  # reported by the runner, which stops the chapters that need it
        return f"{job.name} failed after {time.perf_counter() - start:.0f} s: {type(err).__name__}: {err}"
    return ""
