"""Before a profile executes anything: can every model, SAE, dataset and judge it names be had?

The real-model profiles name hub models, published SAEs, datasets by URL and an LLM judge. Without hub
access the first chapter would fail minutes in, deep in a stack trace; the preflight checks them all
first and fails with one message naming each thing it could not get and why.

What a chapter needs is read from its parameters, by name:

- ``model``: a hub id or a local folder (``"organism"`` is built locally and needs nothing);
- ``sae_release`` + ``sae_id``: a published SAE (skipped when ``sae_path`` names a local folder);
- ``inducing_data``, ``noninducing_data``, ``control_data``, ``harmful_data``, ``benign_data``,
  ``questions``, and the values of ``domains`` (``{domain: [inducing, non-inducing]}``): dataset
  references (registry names or files; empty = built in);
- ``questions`` also means the chapter asks the LLM judge, whose settings must be in the environment.

For a hub model only ``config.json`` is fetched (it proves access, gated licences included); for an SAE,
its files (they are needed anyway). With ``HF_HUB_OFFLINE=1`` (the Makefile's default) nothing is
fetched and only the local Hugging Face cache counts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emgeom.lm.models import ModelUnavailableError, hub_offline, resolve_ref

DATASET_PARAMETERS = (
    "inducing_data",
    "noninducing_data",
    "control_data",
    "harmful_data",
    "benign_data",
    "questions",
)
JUDGE_ENVIRONMENT = ("EMGEOM_JUDGE_BASE_URL", "EMGEOM_JUDGE_MODEL", "OPENAI_API_KEY")


class PreflightError(RuntimeError):
    """Something a profile needs cannot be had; the message lists every such thing."""


@dataclass(frozen=True)
class Requirement:
    """One thing a profile needs: ``kind`` is model / sae / dataset / judge; ``chapters`` need it."""

    kind: str
    name: str
    chapters: tuple[str, ...]


def requirements(parameters: Mapping[str, Mapping[str, Any]]) -> list[Requirement]:
    """What the chapters need, from ``{chapter: full parameter values}``, each thing once."""
    found: dict[tuple[str, str], list[str]] = {}

    def need(kind: str, name: str, chapter: str) -> None:
        chapters = found.setdefault((kind, name), [])
        if chapter not in chapters:
            chapters.append(chapter)

    for chapter, p in parameters.items():
        if isinstance(p.get("model"), str) and p["model"] not in ("", "organism"):
            need("model", p["model"], chapter)
        if p.get("sae_release") and p.get("sae_id") and not p.get("sae_path"):
            need("sae", f"{p['sae_release']}/{p['sae_id']}", chapter)
        refs: list[str] = []
        for key in DATASET_PARAMETERS:
            value = p.get(key) or []
            refs += [value] if isinstance(value, str) else list(value)
        if isinstance(p.get("domains"), dict):
            refs += [ref for pair in p["domains"].values() for ref in pair]
        for ref in refs:
            need("dataset", ref, chapter)
        if p.get("questions"):
            need("judge", "LLM judge", chapter)
    return [Requirement(kind, name, tuple(chs)) for (kind, name), chs in found.items()]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def check_model(ref: str) -> str | None:
    """``None`` if the model's config can be had, else why not."""
    try:
        if Path(resolve_ref(ref)).is_dir():
            return None
    except ModelUnavailableError as err:
        return str(err)
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    if hub_offline():
        if isinstance(try_to_load_from_cache(ref, "config.json"), str):
            return None
        return "not in the local Hugging Face cache, and HF_HUB_OFFLINE=1 forbids downloading it"
    try:
        hf_hub_download(ref, "config.json", etag_timeout=10)
    except Exception as err:  # gated, not found, or no network: each says so in its message
        return f"could not fetch its config.json ({_first_line(err)})"
    return None


def check_sae(name: str) -> str | None:
    """``None`` if the published SAE ``release/sae_id`` is known to sae-lens and its files can be had."""
    from huggingface_hub import snapshot_download
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    release, _, sae_id = name.partition("/")
    directory = get_pretrained_saes_directory()
    if release not in directory:
        return "sae-lens does not know this release"
    lookup = directory[release]
    if sae_id not in lookup.saes_map:
        return f"release {release!r} has no SAE {sae_id!r}"
    pattern = f"{lookup.saes_map[sae_id]}/*"
    try:
        snapshot_download(
            lookup.repo_id, allow_patterns=[pattern], local_files_only=hub_offline(), etag_timeout=10
        )
    except Exception as err:
        where = (
            "not in the local Hugging Face cache (HF_HUB_OFFLINE=1)" if hub_offline() else "could not fetch"
        )
        return f"{where}: {lookup.repo_id}/{pattern} ({_first_line(err)})"
    return None


def check_dataset(ref: str) -> str | None:
    from emgeom.em.datasets import dataset_path

    try:
        dataset_path(ref, timeout_seconds=15)
    except Exception as err:
        return str(err)
    return None


def check_judge(_: str) -> str | None:
    missing = [v for v in JUDGE_ENVIRONMENT if not os.environ.get(v)]
    return f"set {', '.join(missing)} (an OpenAI-compatible chat API with logprobs)" if missing else None


CHECKS: dict[str, Callable[[str], str | None]] = {
    "model": check_model,
    "sae": check_sae,
    "dataset": check_dataset,
    "judge": check_judge,
}


def preflight(parameters: Mapping[str, Mapping[str, Any]], profile: str) -> list[Requirement]:
    """Check every requirement of the chapters; raise :class:`PreflightError` listing all failures."""
    needed = requirements(parameters)
    problems = []
    for req in needed:
        why = CHECKS[req.kind](req.name)
        if why is not None:
            problems.append(f"  - {req.kind} {req.name!r} (chapters {', '.join(req.chapters)}): {why}")
    if problems:
        raise PreflightError(
            f"profile {profile!r} needs {len(problems)} thing(s) this machine cannot get; "
            "nothing was executed:\n" + "\n".join(problems)
        )
    return needed
