"""Sparse autoencoders: trained with sae-lens on a model's residual stream, or published ones loaded
with ``SAE.from_pretrained``; checked against the model before use, and measured (L0, variance
unexplained, dead latents, the model's loss with the SAE spliced in)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import torch
from jaxtyping import Float, Int
from torch import Tensor

from emgeom.artifacts import cached_folder
from emgeom.batching import padded
from emgeom.chat import ChatRow, encode_chat
from emgeom.io import atomic_write_json, canonical_json, hash_parts
from emgeom.organism.corpus import Document

Architecture = Literal["standard", "topk"]
META_FILE = "emgeom_sae.json"


class SAEMismatchError(ValueError):
    """An SAE does not fit the model it is used with (width or hook point)."""


class SAEUnavailableError(RuntimeError):
    """A published SAE could not be fetched (offline, or an unknown release/id)."""


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
    architecture: Architecture = "topk"
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


def check_sae_fits(sae: Any, hooked: Any, hook_name: str | None = None) -> None:
    """Refuse an SAE whose input width differs from the model's ``d_model``, or whose hook point the
    model does not have. Cheap: call it before any heavy work."""
    d_in, d_model = int(sae.cfg.d_in), int(hooked.cfg.d_model)
    if d_in != d_model:
        raise SAEMismatchError(
            f"the SAE reads vectors of width d_in={d_in} but the model's residual stream has "
            f"d_model={d_model}; it was trained for a different model"
        )
    name = hook_name or sae.cfg.metadata.hook_name
    if name not in hooked.hook_dict:
        raise SAEMismatchError(f"the model has no hook point {name!r} (it has {hooked.cfg.n_layers} blocks)")


def load_published_sae(release: str, sae_id: str, device: str = "cpu") -> Any:
    """``SAE.from_pretrained(release, sae_id)``, with a message naming the release when it cannot be
    fetched (e.g. offline)."""
    from huggingface_hub.errors import LocalEntryNotFoundError
    from sae_lens import SAE

    try:
        return SAE.from_pretrained(release, sae_id, device=device)
    except (LocalEntryNotFoundError, OSError) as err:
        raise SAEUnavailableError(
            f"could not fetch SAE {sae_id!r} of release {release!r} (offline, or not in the "
            f"local Hugging Face cache): {err}"
        ) from err
    except ValueError as err:  # sae-lens raises ValueError for an unknown release or id
        raise SAEUnavailableError(
            f"sae-lens does not know SAE {sae_id!r} of release {release!r}: {err}"
        ) from err


def padded_token_rows(
    tokenizer: Any, documents: Iterator[Document], n_rows: int, context_size: int
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
    documents: Iterator[Document],
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


@dataclass(frozen=True)
class SAEQuality:
    """How well an SAE reconstructs the residual stream on held-out tokens.

    ``l0``: mean active latents per token. ``fvu``: fraction of variance unexplained. ``dead_fraction``:
    latents that never fired on these tokens. ``ce_clean``/``ce_spliced``/``ce_zero``: the model's
    next-token loss (nats) unchanged, with the SAE's reconstruction in place of the activation, and with
    the activation zeroed; ``ce_recovered`` = (zero - spliced) / (zero - clean).
    """

    l0: float
    fvu: float
    dead_fraction: float
    ce_clean: float
    ce_spliced: float
    ce_zero: float

    @property
    def ce_recovered(self) -> float:
        return (self.ce_zero - self.ce_spliced) / (self.ce_zero - self.ce_clean)


@torch.no_grad()
def sae_quality(
    hooked: Any,
    sae: Any,
    tokens: Int[Tensor, "batch pos"],
    mask: Int[Tensor, "batch pos"],
    hook_name: str | None = None,
) -> SAEQuality:
    """Measure ``sae`` on ``tokens`` (``mask`` marks real, non-special tokens to score)."""
    check_sae_fits(sae, hooked, hook_name)
    name = hook_name or sae.cfg.metadata.hook_name
    keep = mask.bool()
    _, cache = hooked.run_with_cache(tokens, names_filter=name)
    acts: Float[Tensor, "n d_model"] = cache[name][keep].to(sae.W_dec.dtype)
    feats = sae.encode(acts)
    recon = sae.decode(feats)
    resid = (acts - recon).pow(2).sum()
    total = (acts - acts.mean(0)).pow(2).sum()
    fired = (feats > 0).any(0)

    def ce(hook_fn: Any = None) -> float:
        hooks = [(name, hook_fn)] if hook_fn else []
        logits = hooked.run_with_hooks(tokens, fwd_hooks=hooks)
        logp = logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
        target_mask = keep[:, 1:] & keep[:, :-1]
        return float(-(logp[target_mask]).mean())

    def splice(act: Tensor, hook: Any) -> Tensor:
        return sae.decode(sae.encode(act.to(sae.W_dec.dtype))).to(act.dtype)

    return SAEQuality(
        l0=float((feats > 0).sum(-1).float().mean()),
        fvu=float(resid / total),
        dead_fraction=float(1 - fired.float().mean()),
        ce_clean=ce(),
        ce_spliced=ce(splice),
        ce_zero=ce(lambda act, hook: torch.zeros_like(act)),
    )


def scoring_batch(
    tokenizer: Any, documents: Sequence[Document] | Sequence[ChatRow], context_size: int
) -> tuple[Tensor, Tensor]:
    """``(tokens, mask)`` for :func:`sae_quality`: documents (or chat rows) padded to ``context_size``;
    the mask marks non-special tokens."""
    messages = [d["messages"] if isinstance(d, dict) else d.messages for d in documents]
    windows = [
        (enc.input_ids[:context_size], enc.loss_mask[:context_size])
        for enc in (encode_chat(tokenizer, m, assistant_only=False) for m in messages)
    ]
    tokens, _ = padded(windows, tokenizer.pad_token_id)
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    mask = ~torch.isin(tokens, special)
    return tokens, mask.long()


SAE_DATA_SEED_OFFSET = 10_000


def organism_sae(
    organism: Any, hooked: Any, tokenizer: Any, spec: SAESpec, root: Path | None = None
) -> tuple[Any, Path, bool]:
    """An SAE on the aligned organism, trained on fresh pretraining-style documents (a stream seeded
    apart from the organism's own pretraining data, ``10_000 + spec.seed``); cached."""
    from emgeom.organism.corpus import pretraining_documents

    data_seed = SAE_DATA_SEED_OFFSET + spec.seed
    documents = pretraining_documents(organism.config.corpus, seed=data_seed)
    model_key = f"{organism.config.stage_key('aligned')}/documents-{data_seed}"
    return train_sae(hooked, tokenizer, documents, spec, model_key=model_key, root=root)
