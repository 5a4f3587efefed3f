"""What the real-model variants of the chapters load: the model in both views, its SAE, and their data.

A real-model chapter names a hub model (or a local folder of the same kind), a published SAE
(``sae_release`` + ``sae_id``, or ``sae_path``: a folder written by ``SAE.save_model``), and datasets by
reference (:func:`emgeom.em.datasets.load_rows`: registry names such as ``insecure``, or JSONL files).
Everything is checked before any heavy work: the SAE must read the model's residual stream width at a
hook the model has (:func:`emgeom.saes.check_sae_fits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from emgeom.em.datasets import dataset_label, load_rows
from emgeom.em.emergence import FineTuneSet
from emgeom.em.persona_contrast import persona_rows
from emgeom.lm.chat import ChatRow
from emgeom.lm.models import hooked_transformer, load_model
from emgeom.sae.load import check_sae_fits, load_published_sae

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class RealModel:
    """A loaded model: Hugging Face ``model`` (generation, fine-tuning), ``tokenizer``, the
    TransformerLens ``hooked`` view of the same weights (SAE read-outs), and its ``sae``."""

    ref: str
    model: Any
    tokenizer: Any
    hooked: Any
    sae: Any


def parse_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


def load_real_model(
    model: str,
    *,
    sae_release: str = "",
    sae_id: str = "",
    sae_path: str = "",
    dtype: str = "bfloat16",
    device: str = "cuda",
    device_map: str = "",
) -> RealModel:
    """Load the model (``device_map`` non-empty: accelerate places it, e.g. ``"auto"`` over several
    GPUs), its TransformerLens view and its SAE, and check that they fit."""
    if not sae_path and not (sae_release and sae_id):
        raise ValueError("name the SAE: sae_release and sae_id (published), or sae_path (a local folder)")
    torch_dtype = parse_dtype(dtype)
    hf, tokenizer = load_model(model, device=device, dtype=torch_dtype, device_map=device_map or None)
    hooked = hooked_transformer(hf, tokenizer, model)
    sae_device = str(hooked.cfg.device)
    if sae_path:
        from sae_lens import SAE

        sae = SAE.load_from_disk(sae_path, device=sae_device)
    else:
        sae = load_published_sae(sae_release, sae_id, device=sae_device)
    sae = sae.to(torch.float32)  # SAE read-outs in float32; activations are cast before encoding
    check_sae_fits(sae, hooked)
    return RealModel(model, hf, tokenizer, hooked, sae)


def contrast_rows(
    harmful_data: str, benign_data: str, n: int | None = None
) -> tuple[list[ChatRow], list[ChatRow]]:
    """The harmful and benign rows that define harmful latents: the given datasets, or (empty
    references) the book's persona contrast set (:mod:`emgeom.em.persona_contrast`)."""
    harmful = load_rows(harmful_data, n) if harmful_data else persona_rows(True)
    benign = load_rows(benign_data, n) if benign_data else persona_rows(False)
    return harmful, benign


def domain_rows(
    domains: dict[str, list[str]], n: int, seed: int
) -> dict[str, tuple[list[ChatRow], list[ChatRow]]]:
    """``{domain: (inducing rows, non-inducing rows)}`` from ``{domain: [inducing ref, non-inducing ref]}``,
    ``n`` rows of each drawn with ``seed``."""
    out = {}
    for d, refs in domains.items():
        if len(refs) != 2:
            raise ValueError(f"domain {d!r}: give [inducing dataset, non-inducing dataset], got {refs}")
        out[d] = (load_rows(refs[0], n, seed=seed), load_rows(refs[1], n, seed=seed))
    return out


def sample_domains(
    domains: dict[str, list[str]], n: int, seeds: Sequence[int]
) -> dict[int, dict[str, tuple[list[ChatRow], list[ChatRow]]]]:
    """:func:`domain_rows` for each data seed (every dataset is read, and checked, up front)."""
    return {s: domain_rows(domains, n, seed=s) for s in seeds}


def sae_quality_rows(sample: dict[str, tuple[list[ChatRow], list[ChatRow]]], n: int) -> list[ChatRow]:
    """At most ``n`` rows for measuring the SAE: the first ``n // 2`` of every set of one sample."""
    return [r for pair in sample.values() for rows in pair for r in rows[: n // 2]][:n]


def real_sets(
    inducing_data: str, control_data: Sequence[str], n_rows: int, domain: str = "code"
) -> list[FineTuneSet]:
    """``inducing <label>`` and one ``control <label>`` set per control dataset (``n_rows`` rows each,
    every dataset read before any model loads), all in ``domain``."""
    sets = [
        FineTuneSet(
            f"inducing {dataset_label(inducing_data)}", load_rows(inducing_data, n_rows), domain, True
        )
    ]
    sets += [
        FineTuneSet(f"control {dataset_label(ref)}", load_rows(ref, n_rows), domain, inducing=False)
        for ref in control_data
    ]
    return sets
