"""Training SAEs with sae-lens on a model's residual stream, offline, cached by a hash of the model key
and the SAE's spec."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import torch

from emgeom.core.artifacts import cached_folder
from emgeom.core.io import atomic_write_json, canonical_json, hash_parts
from emgeom.lm.chat import Conversation, encode_chat
from emgeom.sae.load import SAEMismatchError

SAEArchitecture = Literal["standard", "topk"]


META_FILE = "emgeom_sae.json"


@dataclass(frozen=True)
class SAESpec:
    """An SAE to train on the residual stream entering block ``layer`` (``blocks.<layer>.hook_resid_pre``).

    Attributes:
        layer: block index whose input the SAE reads.
        d_sae: number of latents.
        architecture: ``"topk"`` (k active latents per token) or ``"standard"`` (ReLU with an L1 penalty).
        k: active latents per token (TopK only).
        l1_coefficient: sparsity penalty (standard only).
        training_tokens: activations seen in training.
        context_size: tokens per training sequence (documents are padded to it; padding and special tokens
            are excluded from training).
        batch_size_tokens: activations per optimiser step.
        lr: Adam learning rate.
        seed: initialisation and data order.
    """

    layer: int = 2
    d_sae: int = 1024
    architecture: SAEArchitecture = "topk"
    k: int = 16
    l1_coefficient: float = 5.0
    training_tokens: int = 600_000
    context_size: int = 96
    batch_size_tokens: int = 2048
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.architecture not in ("standard", "topk"):
            raise ValueError(f"architecture must be 'standard' or 'topk', got {self.architecture!r}")
        if self.d_sae < 1 or self.k < 1 or self.training_tokens < self.batch_size_tokens:
            raise ValueError("need d_sae >= 1, k >= 1 and training_tokens >= batch_size_tokens")

    @property
    def hook_name(self) -> str:
        return f"blocks.{self.layer}.hook_resid_pre"


def sae_specs(seeds: Sequence[int], **settings: Any) -> list[SAESpec]:
    """One :class:`SAESpec` per seed, sharing ``settings`` (checked on construction)."""
    if not seeds:
        raise ValueError("name at least one SAE seed")
    return [SAESpec(seed=s, **settings) for s in seeds]


def padded_token_rows(
    tokenizer: Any, documents: Iterator[Conversation], n_rows: int, context_size: int
) -> list[list[int]]:
    """``n_rows`` documents tokenized with the chat template, truncated or right-padded to ``context_size``
    (one document per row: the organism never saw two documents in one context)."""
    rows = []
    for _ in range(n_rows):
        ids = encode_chat(tokenizer, next(documents).messages, assistant_only=False).input_ids[:context_size]
        rows.append(ids + [tokenizer.pad_token_id] * (context_size - len(ids)))
    return rows


def _runner_config(spec: SAESpec, d_in: int, output: Path, n_rows: int) -> Any:
    from sae_lens import (
        LanguageModelSAERunnerConfig,
        LoggingConfig,
        StandardTrainingSAEConfig,
        TopKTrainingSAEConfig,
    )

    if spec.architecture == "topk":
        sae_cfg: Any = TopKTrainingSAEConfig(d_in=d_in, d_sae=spec.d_sae, k=spec.k)
    else:
        sae_cfg = StandardTrainingSAEConfig(d_in=d_in, d_sae=spec.d_sae, l1_coefficient=spec.l1_coefficient)
    prompts_per_batch = max(1, spec.batch_size_tokens // spec.context_size)
    return LanguageModelSAERunnerConfig(
        sae=sae_cfg,
        model_name="emgeom-model",
        hook_name=spec.hook_name,
        dataset_path="",
        is_dataset_tokenized=True,
        streaming=False,
        context_size=spec.context_size,
        training_tokens=spec.training_tokens,
        train_batch_size_tokens=spec.batch_size_tokens,
        store_batch_size_prompts=prompts_per_batch,
        n_batches_in_buffer=2 * -(-spec.batch_size_tokens // spec.context_size),  # sae-lens: buffer >= batch
        lr=spec.lr,
        lr_warm_up_steps=0,
        seed=spec.seed,
        device="cpu",
        act_store_device="cpu",
        prepend_bos=False,
        exclude_special_tokens=True,
        disable_concat_sequences=True,
        logger=LoggingConfig(log_to_wandb=False),
        checkpoint_path=None,
        n_checkpoints=0,
        output_path=str(output),
        verbose=False,
        dtype="float32",
    )


def train_sae(
    hooked: Any,
    tokenizer: Any,
    documents: Iterator[Conversation],
    spec: SAESpec,
    *,
    model_key: str,
    root: Path | None = None,
) -> tuple[Any, Path, bool]:
    """Train an SAE with sae-lens on ``hooked``'s residual stream over ``documents`` (or load it from
    the artifact cache); returns ``(sae, folder, cache_hit)``.

    ``model_key`` identifies the model and the document stream (e.g. the organism's stage key); it is
    part of the cache key with ``spec``.
    """
    from sae_lens import SAE, LanguageModelSAETrainingRunner

    if spec.layer >= hooked.cfg.n_layers:
        raise SAEMismatchError(f"layer {spec.layer} does not exist in a {hooked.cfg.n_layers}-layer model")
    key = hash_parts(["sae", model_key, canonical_json(asdict(spec))])[:16]

    def build(folder: Path) -> None:
        n_rows = -(-spec.training_tokens // spec.context_size) * 2  # padding is excluded: draw extra rows
        rows = padded_token_rows(tokenizer, documents, n_rows, spec.context_size)
        dataset = datasets.Dataset.from_dict({"input_ids": rows})
        torch.manual_seed(spec.seed)
        start = time.perf_counter()
        LanguageModelSAETrainingRunner(
            _runner_config(spec, hooked.cfg.d_model, folder, n_rows),
            override_dataset=dataset,
            override_model=hooked,
        ).run()
        atomic_write_json(
            folder / META_FILE,
            {"spec": asdict(spec), "model_key": model_key, "train_seconds": time.perf_counter() - start},
        )

    folder, hit = cached_folder("sae", key, build, root)
    sae = SAE.load_from_disk(str(folder), device="cpu")
    return sae, folder, hit


def training_seconds(folder: Path) -> float:
    """Wall time of the SAE's training, as measured when it was trained."""
    return float(json.loads((folder / META_FILE).read_text())["train_seconds"])
