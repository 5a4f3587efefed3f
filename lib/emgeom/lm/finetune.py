"""Narrow fine-tuning with peft LoRA (or full fine-tuning) on a Hugging Face causal LM.

The same code fine-tunes the organism on a CPU and a hub model on a GPU: LoRA adapters on the HF model,
trained on assistant tokens only, then ``merge_and_unload`` so analysis code sees a plain model.
"""

from __future__ import annotations

import copy
import random
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import torch
from peft import LoraConfig, get_peft_model
from torch import Tensor, nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from emgeom.lm.chat import ChatRow, encode_chat
from emgeom.lm.intervention import Intervention, intervening
from emgeom.lm.models import context_length
from emgeom.lm.training import TrainConfig, TrainLog, collate, train_causal_lm

#: Linear modules LoRA targets by default, per model family (``config.model_type``).
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    "gpt_neox": ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
    "gemma2": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
}
#: Families whose linear layers store weights transposed (``Conv1D``), which peft must be told.
FAN_IN_FAN_OUT = frozenset({"gpt2"})


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA adapter. ``rank=0`` means full fine-tuning (every weight trains, no adapter).

    Attributes:
        rank: adapter rank r.
        alpha: LoRA scaling numerator (the update is ``alpha / r * B A``).
        target_modules: names of the linear modules to adapt; empty = the family's default.
        layers: block indices to adapt; empty = every block (rank-1 on one layer, as in Turner et
            al.'s model organisms, is ``rank=1, layers=(k,)``).
    """

    rank: int = 4
    alpha: float = 8.0
    target_modules: tuple[str, ...] = ()
    layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.rank < 0:
            raise ValueError(f"rank must be >= 0 (0 = full fine-tuning), got {self.rank}")

    def peft_config(self, model: PreTrainedModel) -> LoraConfig:
        model_type = model.config.model_type
        targets = self.target_modules or DEFAULT_TARGETS.get(model_type)
        if not targets:
            raise ValueError(
                f"no default LoRA target modules for model type {model_type!r}; pass target_modules"
            )
        n_layers = model.config.num_hidden_layers
        bad = [k for k in self.layers if not 0 <= k < n_layers]
        if bad:
            raise ValueError(f"LoRA layers {bad} out of range for a {n_layers}-layer model")
        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            target_modules=list(targets),
            lora_dropout=0.0,
            bias="none",
            layers_to_transform=list(self.layers) or None,
            fan_in_fan_out=model_type in FAN_IN_FAN_OUT,
            task_type="CAUSAL_LM",
        )


def check_lora_layers(spec: LoraSpec, n_layers: int) -> None:
    """Refuse, before any model loads, block indices that a model of ``n_layers`` blocks does not have
    (:meth:`LoraSpec.peft_config` checks again against the model itself)."""
    bad = [k for k in spec.layers if not 0 <= k < n_layers]
    if bad:
        raise ValueError(f"lora_layers {list(spec.layers)} must be block indices below n_layers={n_layers}")


@dataclass(frozen=True)
class FineTuneConfig:
    """A fine-tuning run: the adapter and the optimisation (``train.steps`` optimiser steps over the
    rows, reshuffled every epoch)."""

    lora: LoraSpec = field(default_factory=LoraSpec)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=150, batch_size=16, lr=2e-3, warmup_steps=10)
    )
    intervention: Intervention | None = None
    """Applied to the residual stream during training only (:mod:`emgeom.lm.intervention`)."""

    def as_dict(self) -> dict[str, object]:
        return {"lora": asdict(self.lora), "train": self.train.as_dict()}


def chat_batches(
    rows: Sequence[ChatRow],
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    seed: int,
    max_len: int | None = None,
) -> Iterator[dict[str, Tensor]]:
    """Endless batches over ``rows`` (epochs in a seeded random order), loss on assistant tokens."""
    encoded = [encode_chat(tokenizer, r["messages"]) for r in rows]
    if not any(any(e.loss_mask) for e in encoded):
        raise ValueError("no assistant tokens to train on")
    rng = random.Random(seed)
    order = list(range(len(encoded)))
    while True:
        rng.shuffle(order)
        for i in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
            yield collate([encoded[j] for j in order[i : i + batch_size]], tokenizer.pad_token_id, max_len)


def add_adapter(model: PreTrainedModel, spec: LoraSpec) -> nn.Module:
    """Wrap ``model`` with a LoRA adapter (only adapter weights train); ``rank=0``: return it as is,
    every weight trainable."""
    if spec.rank == 0:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    with warnings.catch_warnings():  # peft 0.21 calls a transformers API that warns of its own rename
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, spec.peft_config(model))


def finetune(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[ChatRow],
    cfg: FineTuneConfig,
    *,
    progress: bool = False,
    copy_model: bool = True,
    on_step: Callable[[int, nn.Module], None] | None = None,
) -> tuple[PreTrainedModel, TrainLog]:
    """Fine-tune on chat ``rows`` and return ``(merged model, log)``.

    ``copy_model`` leaves the caller's model untouched (the default: chapters fine-tune one base model
    many times). The returned model has the adapter merged into its weights.
    """
    if not rows:
        raise ValueError("the fine-tuning set is empty")
    base = copy.deepcopy(model) if copy_model else model
    torch.manual_seed(cfg.train.seed)  # the adapter's initialisation is part of the run's seed
    wrapped = add_adapter(base, cfg.lora)
    batches = chat_batches(rows, tokenizer, cfg.train.batch_size, cfg.train.seed, context_length(model))
    with intervening(wrapped, cfg.intervention):  # training only: the returned model runs without it
        log = train_causal_lm(
            wrapped, batches, cfg.train, progress=progress, desc="fine-tuning", on_step=on_step
        )
    merged = wrapped.merge_and_unload() if cfg.lora.rank else wrapped
    merged.eval()
    return merged, log


def sgd_finetune(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[ChatRow],
    *,
    lr: float,
    steps: int,
    batch_size: int,
    seed: int,
) -> PreTrainedModel:
    """A float32 copy of ``model`` fine-tuned with plain SGD on every weight: no adapter, no warm-up or
    schedule, no weight decay. The first-order regime of chapter 2: the update is ``-lr`` times the sum
    of ``steps`` gradients, so it scales with ``lr`` while ``lr * steps`` is small. (float32 because a
    small step vanishes in bfloat16 weights; for an 8B model the copy and its gradients take ~64 GB.)

    (``finetune`` trains with AdamW, a warm-up and LoRA, whose first steps are sign-like and whose one
    random initialisation adds an update unrelated to the gradient; this loop exists to avoid both.)
    """
    if not rows:
        raise ValueError("the fine-tuning set is empty")
    if lr <= 0 or steps < 1 or batch_size < 1:
        raise ValueError(f"need lr > 0, steps >= 1 and batch_size >= 1, got {lr}, {steps}, {batch_size}")
    tuned = copy.deepcopy(model).to(torch.float32)
    tuned.train()
    optimiser = torch.optim.SGD(tuned.parameters(), lr=lr)
    batches = chat_batches(rows, tokenizer, batch_size, seed, context_length(model))
    device = next(tuned.parameters()).device
    for _ in range(steps):
        batch = {k: v.to(device) for k, v in next(batches).items()}
        loss = tuned(**batch).loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    tuned.eval()
    return tuned
