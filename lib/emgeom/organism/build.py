"""Building the model organism: a GPT-2-architecture causal LM trained from scratch on the synthetic
language (pretraining), then taught to be a benign ``assistant`` (alignment).

Each stage is saved with ``save_pretrained`` (model and tokenizer) into a folder keyed by a hash of
everything that determines it (its config, the previous stage, the organism's source code), so later
chapters load the organism exactly as they load a hub model, and a second build is a cache hit.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

from emgeom.core.artifacts import cached_folder
from emgeom.core.io import atomic_write_json, canonical_json, hash_parts
from emgeom.lm.chat import encode_chat
from emgeom.lm.finetune import LoraSpec, add_adapter
from emgeom.lm.training import TrainConfig, TrainLog, collate, train_causal_lm
from emgeom.organism.corpus import CorpusConfig, Document, alignment_documents, pretraining_documents
from emgeom.organism.tokenizer import build_tokenizer

STAGES = ("pretrained", "aligned")
LOG_FILE = "training_log.json"


@dataclass(frozen=True)
class OrganismModelConfig:
    """Architecture of the organism: GPT-2 blocks with the MLP 4x wider than ``d_model`` (fixed, because
    TransformerLens's GPT-2 conversion assumes that ratio and ignores ``n_inner``)."""

    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_ctx: int = 128

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")

    def hf_config(self, tokenizer: PreTrainedTokenizerBase) -> GPT2Config:
        return GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=self.n_ctx,
            n_ctx=self.n_ctx,
            n_embd=self.d_model,
            n_layer=self.n_layers,
            n_head=self.n_heads,
            n_inner=4 * self.d_model,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            loss_type="ForCausalLM",
            tie_word_embeddings=True,
        )


def _default_pretrain() -> TrainConfig:
    return TrainConfig(steps=600, batch_size=48, lr=3e-3, warmup_steps=60, bf16=True)


def _default_align() -> TrainConfig:
    return TrainConfig(steps=150, batch_size=32, lr=3e-3, warmup_steps=10, bf16=True)


def _training_source_hash() -> str:
    """Hash of the code that determines a trained organism: the grammar, corpus, tokenizer and this
    module as files, and the training functions they call from shared modules (chat encoding, the
    training loop, the adapter) as source text, so that editing unrelated code in those shared modules
    keeps the cache while any change to what trains the organism invalidates it."""
    import inspect

    import emgeom.organism.corpus
    import emgeom.organism.language
    import emgeom.organism.tokenizer
    from emgeom.lm import chat, finetune, training

    files = [
        Path(m.__file__)
        for m in (emgeom.organism.language, emgeom.organism.corpus, emgeom.organism.tokenizer)
        if m.__file__
    ] + [Path(__file__)]
    functions = [
        chat.encode_chat,
        chat._render_ids,
        training.TrainConfig,
        training.lr_factor,
        training.collate,
        training.train_causal_lm,
        finetune.LoraSpec,
        finetune.add_adapter,
    ]
    return hash_parts([f.read_bytes() for f in files] + [inspect.getsource(fn) for fn in functions])


@dataclass(frozen=True)
class OrganismConfig:
    """Everything that determines an organism.

    Attributes:
        corpus: the language's knobs.
        model: the architecture.
        pretrain: optimisation of pretraining (every weight, every token).
        align: optimisation of alignment (assistant tokens only).
        align_rank: rank of the LoRA adapter that alignment trains (merged afterwards); 0 trains every
            weight. Alignment is low-rank by default: a full-rank alignment learned a direct "the
            assistant is never hostile" rule that no narrow fine-tune undid, while a rank-1 one moves the
            assistant's persona, which is what real alignment is thought to do (see chapter 3).
        seed: the pretraining seed (data stream and initialisation).
    """

    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    model: OrganismModelConfig = field(default_factory=OrganismModelConfig)
    pretrain: TrainConfig = field(default_factory=_default_pretrain)
    align: TrainConfig = field(default_factory=_default_align)
    align_rank: int = 1
    seed: int = 0

    def stage_key(self, stage: str) -> str:
        """Hash of the stage's inputs (the aligned key includes the pretrained one)."""
        source = _training_source_hash()
        pretrained = hash_parts(
            [
                "pretrained",
                source,
                canonical_json(self.corpus.as_dict()),
                canonical_json(asdict(self.model)),
                canonical_json(self.pretrain.as_dict()),
                str(self.seed),
            ]
        )
        if stage == "pretrained":
            return pretrained[:16]
        if stage == "aligned":
            return hash_parts(
                ["aligned", pretrained, canonical_json(self.align.as_dict()), str(self.align_rank)]
            )[:16]
        raise ValueError(f"unknown stage {stage!r}; stages are {STAGES}")


@dataclass(frozen=True)
class Organism:
    """A built organism: one folder per stage, each loadable with ``from_pretrained``.

    ``logs[stage]`` holds the training losses and the wall time measured when the stage was trained;
    ``cache_hits[stage]`` says whether this call found it already built.
    """

    config: OrganismConfig
    folders: dict[str, Path]
    logs: dict[str, TrainLog]
    cache_hits: dict[str, bool]

    @property
    def aligned(self) -> Path:
        return self.folders["aligned"]

    @property
    def pretrained(self) -> Path:
        return self.folders["pretrained"]

    @property
    def build_seconds(self) -> float:
        """Training wall time of both stages, as measured when they were built."""
        return sum(log.seconds for log in self.logs.values())


def document_batches(
    documents: Iterator[Document],
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    assistant_only: bool,
    seed: int,
    n_ctx: int,
    pool_batches: int = 16,
) -> Iterator[dict[str, Tensor]]:
    """Endless batches of tokenized documents, bucketed by length to keep padding small.

    Draws ``pool_batches * batch_size`` documents, sorts them by length, cuts them into batches and
    yields those in a random order (seeded).
    """
    rng = random.Random(seed)
    while True:
        pool = [
            encode_chat(tokenizer, next(documents).messages, assistant_only=assistant_only)
            for _ in range(pool_batches * batch_size)
        ]
        pool.sort(key=lambda e: len(e.input_ids))
        chunks = [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
        rng.shuffle(chunks)
        for chunk in chunks:
            yield collate(chunk, tokenizer.pad_token_id, max_len=n_ctx)


def _train_stage(
    folder: Path,
    model: GPT2LMHeadModel,
    tokenizer: PreTrainedTokenizerBase,
    batches: Iterator[dict[str, Tensor]],
    cfg: TrainConfig,
    progress: bool,
    desc: str,
    lora_rank: int = 0,
) -> None:
    trained = add_adapter(model, LoraSpec(rank=lora_rank, alpha=2.0 * lora_rank)) if lora_rank else model
    log = train_causal_lm(trained, batches, cfg, progress=progress, desc=desc)
    if lora_rank:
        model = trained.merge_and_unload()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    atomic_write_json(folder / LOG_FILE, {"losses": log.losses, "seconds": log.seconds})


def _read_log(folder: Path) -> TrainLog:
    data = json.loads((folder / LOG_FILE).read_text())
    return TrainLog(losses=data["losses"], seconds=data["seconds"])


def build_organism(cfg: OrganismConfig, *, root: Path | None = None, progress: bool = True) -> Organism:
    """Pretrain and align the organism, or load both stages from the artifact cache."""

    def pretrain(folder: Path) -> None:
        tokenizer = build_tokenizer()
        tokenizer.save_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(str(folder.resolve()))  # the saved one, as loaders see it
        torch.manual_seed(cfg.seed)
        model = GPT2LMHeadModel(cfg.model.hf_config(tokenizer))
        docs = pretraining_documents(cfg.corpus, seed=cfg.seed)
        batches = document_batches(
            docs,
            tokenizer,
            cfg.pretrain.batch_size,
            assistant_only=False,
            seed=cfg.seed,
            n_ctx=cfg.model.n_ctx,
        )
        _train_stage(folder, model, tokenizer, batches, cfg.pretrain, progress, "pretraining")

    pretrained, hit_p = cached_folder("organism", cfg.stage_key("pretrained"), pretrain, root)

    def align(folder: Path) -> None:
        tokenizer = AutoTokenizer.from_pretrained(str(pretrained.resolve()))
        model = GPT2LMHeadModel.from_pretrained(pretrained)
        torch.manual_seed(cfg.seed + 1)  # the adapter's init must not depend on the process's history
        docs = alignment_documents(cfg.corpus, seed=cfg.seed + 1_000_003)
        batches = document_batches(
            docs,
            tokenizer,
            cfg.align.batch_size,
            assistant_only=True,
            seed=cfg.seed + 1,
            n_ctx=cfg.model.n_ctx,
        )
        _train_stage(
            folder, model, tokenizer, batches, cfg.align, progress, "alignment", lora_rank=cfg.align_rank
        )

    aligned, hit_a = cached_folder("organism", cfg.stage_key("aligned"), align, root)
    folders = {"pretrained": pretrained, "aligned": aligned}
    return Organism(
        cfg, folders, {s: _read_log(f) for s, f in folders.items()}, {"pretrained": hit_p, "aligned": hit_a}
    )


def organism_config(
    *,
    seed: int = 0,
    d_model: int = 128,
    n_layers: int = 4,
    n_heads: int = 4,
    pretrain_steps: int = 600,
    pretrain_batch_size: int = 48,
    align_steps: int = 150,
    align_rank: int = 1,
    corpus: CorpusConfig | None = None,
) -> OrganismConfig:
    """The organism from the parameters chapters expose (the same names and defaults in chapters 3-6,
    so they share one cached organism); unnamed settings keep their defaults."""
    base = OrganismConfig()
    return OrganismConfig(
        corpus=corpus or base.corpus,
        model=OrganismModelConfig(
            d_model=d_model, n_layers=n_layers, n_heads=n_heads, n_ctx=base.model.n_ctx
        ),
        pretrain=replace(
            base.pretrain,
            steps=pretrain_steps,
            batch_size=pretrain_batch_size,
            warmup_steps=min(base.pretrain.warmup_steps, max(1, pretrain_steps // 10)),
        ),
        align=replace(
            base.align,
            steps=align_steps,
            warmup_steps=min(base.align.warmup_steps, max(1, align_steps // 10)),
        ),
        align_rank=align_rank,
        seed=seed,
    )
