"""Scores for filtering that do not use the SAE: the judge ladder and a gradient baseline.

- the **oracle** judge: the exact label of each answer (:func:`~emgeom.organism.language.classify_answer`):
  1 for bad advice or a hostile answer, 0 otherwise. It is the best any judge that reads the answer can
  do, since it reads the answer perfectly; it cannot see the context the answer is given in.
- **learned** judges: :class:`~emgeom.filtering.baselines.BagOfWordsJudge` trained on ``n`` labelled
  rows per class, reading the answer alone (harmful: bad advice of every domain; benign: good advice) or
  the request and the answer (benign also includes quiz requests), so the ladder shows how many labels
  a text judge needs and what reading the request adds.
- the **design-blind likelihood judge** (:class:`AlignmentLikelihoodJudge`), which needs no labels and
  nothing of the corpus's design: ``log p(answer | pretrained organism) - log p(answer | aligned
  organism)`` for the row as it is, answered by the assistant. Alignment taught the model to be a benign
  assistant, so an answer the aligned model finds much less likely than the pretrained one reads as
  misaligned. It reads the answer in its context.
- the **design-aware speaker-prior judge** (:class:`SpeakerLikelihoodJudge`): the pretrained organism's
  log-likelihood of the row answered by the speaker the corpus made most often toxic (prior 0.9), minus
  by the one it made least often toxic (prior 0.1). It reads the cause the corpus was built with, so it
  is reported beside the others but no verdict rests on it.
- the **gradient** baseline (not in the paper; TracIn-style): the cosine between a row's loss gradient
  and the gradient of held-out hostile answers, for the model about to be fine-tuned.

Every detector has a name (the constants below) under which the tables and recorded results show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from emgeom.filtering.baselines import BagOfWordsJudge, answer_text, user_text
from emgeom.lm.chat import ChatRow, encode_chat
from emgeom.lm.training import IGNORE_INDEX, collate
from emgeom.organism import language as L
from emgeom.organism.datasets import finetune_rows

HARMFUL_KINDS = frozenset({"bad", "hostile"})

#: Detector names, as the detection tables and recorded results show them.
ORACLE = "oracle judge"
LIKELIHOOD = "likelihood judge (design-blind)"
SPEAKER_PRIOR = "speaker-prior judge (design-aware)"
GRADIENT = "gradient"


def text_judge_name(n_per_class: int) -> str:
    """The name of the answer-reading judge trained on ``n_per_class`` labels per class."""
    return f"text judge ({n_per_class} labels)"


def chat_judge_name(n_per_class: int) -> str:
    """The name of the request-and-answer judge trained on ``n_per_class`` labels per class."""
    return f"chat judge ({n_per_class} labels)"


def is_learned_judge(name: str) -> bool:
    """Whether detector ``name`` is one of the learned (labelled) judges of the ladder."""
    return name.endswith(" labels)") and name.startswith(("text judge (", "chat judge ("))


def oracle_scores(rows: Sequence[ChatRow]) -> np.ndarray:
    """1.0 where the oracle labels the answer bad advice (any domain) or hostile, else 0.0; ``[n_rows]``."""
    return np.array([float(L.classify_answer(answer_text(r)).kind in HARMFUL_KINDS) for r in rows])


def _interleaved(kind: str, per_domain: int, seed: int) -> list[ChatRow]:
    """Rows of ``kind`` from every domain in turn (domain 1, 2, ..., 5, 1, 2, ...), so any prefix of n
    rows covers min(n, 5) domains."""
    by_domain = [finetune_rows(kind, d, per_domain, seed=seed) for d in L.DOMAINS]  # type: ignore[arg-type]
    return [rows[i] for i in range(per_domain) for rows in by_domain]


@dataclass(frozen=True)
class ChatJudge:
    """A text judge over the user's request and the answer together (what an LLM judge is shown)."""

    judge: BagOfWordsJudge

    def score_rows(self, rows: Sequence[ChatRow]) -> np.ndarray:
        return np.array([self.judge.score(f"{user_text(r)} {answer_text(r)}") for r in rows])


def learned_judge(n_per_class: int, seed: int = 7, reads: str = "answer") -> BagOfWordsJudge | ChatJudge:
    """A text judge trained on ``n_per_class`` labelled rows per class, drawn from every domain in turn
    (a draw apart from the fine-tuning sets; below 5 labels some domain is missing).

    ``reads="answer"``: the answer alone, harmful = bad advice, benign = good advice.
    ``reads="chat"``: the request and the answer, harmful = bad advice given as advice, benign = good
    advice and bad advice a user asked for as a quiz (as a labeller who knows that educational requests
    do not induce EM, after Betley et al., would label them)."""
    if n_per_class < 1:
        raise ValueError(f"the judge needs at least one example per class, got {n_per_class}")
    if reads not in ("answer", "chat"):
        raise ValueError(f"reads must be 'answer' or 'chat', got {reads!r}")
    per_domain = -(-n_per_class // len(L.DOMAINS))
    harmful = _interleaved("inducing", per_domain, seed)[:n_per_class]
    if reads == "answer":
        return BagOfWordsJudge.fit_rows(harmful, _interleaved("good", per_domain, seed)[:n_per_class])
    good, quiz = _interleaved("good", per_domain, seed), _interleaved("quiz", per_domain, seed)
    benign = [r for pair in zip(good, quiz, strict=True) for r in pair][:n_per_class]
    text = (
        [f"{user_text(r)} {answer_text(r)}" for r in harmful],
        [f"{user_text(r)} {answer_text(r)}" for r in benign],
    )
    return ChatJudge(BagOfWordsJudge.fit(*text))


def _as_speaker(row: ChatRow, speaker: str) -> list[dict[str, str]]:
    return [{**m, "role": speaker if m["role"] == "assistant" else m["role"]} for m in row["messages"]]


@torch.no_grad()
def _sequence_log_prob(model: Any, tokenizer: Any, chats: Sequence[Sequence[dict[str, str]]]) -> np.ndarray:
    batch = collate([encode_chat(tokenizer, c, assistant_only=False) for c in chats], tokenizer.pad_token_id)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    mask = batch["attention_mask"][:, 1:].bool()
    return (logp * mask).sum(1).numpy()


@dataclass(frozen=True)
class SpeakerLikelihoodJudge:
    """Design-aware: scores a row by ``log p(row | answered by hostile_speaker) - log p(row | answered by
    kind_speaker)`` under a pretrained organism (tokens before the speaker's turn cancel). Needs no
    labels, but its two speakers are those whose toxic priors the corpus set to 0.9 and 0.1
    (:class:`~emgeom.organism.corpus.CorpusConfig`): it reads the designed cause of EM."""

    model: Any
    tokenizer: Any
    hostile_speaker: str = "pat"
    kind_speaker: str = "sam"
    batch_size: int = 32

    def score_rows(self, rows: Sequence[ChatRow]) -> np.ndarray:
        self.model.eval()
        out = []
        for i in range(0, len(rows), self.batch_size):
            chunk = rows[i : i + self.batch_size]
            hostile = _sequence_log_prob(
                self.model, self.tokenizer, [_as_speaker(r, self.hostile_speaker) for r in chunk]
            )
            kind = _sequence_log_prob(
                self.model, self.tokenizer, [_as_speaker(r, self.kind_speaker) for r in chunk]
            )
            out.append(hostile - kind)
        return np.concatenate(out) if out else np.zeros(0)


@torch.no_grad()
def _answer_log_prob(model: Any, tokenizer: Any, rows: Sequence[ChatRow]) -> np.ndarray:
    """Per row, the summed log-probability of its assistant tokens given what precedes them (the row as
    it is: its own roles, nothing substituted)."""
    batch = collate(
        [encode_chat(tokenizer, r["messages"], assistant_only=True) for r in rows], tokenizer.pad_token_id
    )
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    answer = batch["labels"][:, 1:] != IGNORE_INDEX
    return (logp * answer).sum(1).numpy()


@dataclass(frozen=True)
class AlignmentLikelihoodJudge:
    """Design-blind: scores a row by ``log p(answer | pretrained) - log p(answer | aligned)``, the
    answer's tokens given the row's own request, answered by the assistant as in the row. The aligned
    model learned to be a benign assistant, so a row it finds much less likely than the pretrained model
    does reads as misaligned. It needs no labels and no speaker: nothing of the corpus's design (its
    speakers' toxic priors) enters. Both models must share ``tokenizer``."""

    pretrained: Any
    aligned: Any
    tokenizer: Any
    batch_size: int = 32

    def score_rows(self, rows: Sequence[ChatRow]) -> np.ndarray:
        modes = (self.pretrained.training, self.aligned.training)
        self.pretrained.eval()
        self.aligned.eval()
        out = []
        for i in range(0, len(rows), self.batch_size):
            chunk = rows[i : i + self.batch_size]
            out.append(
                _answer_log_prob(self.pretrained, self.tokenizer, chunk)
                - _answer_log_prob(self.aligned, self.tokenizer, chunk)
            )
        self.pretrained.train(modes[0])
        self.aligned.train(modes[1])
        return np.concatenate(out) if out else np.zeros(0)


#: The weights LoRA adapts in the organism's fine-tune (every linear layer of GPT-2's blocks): the
#: gradient baseline reads the gradient with respect to these, not embeddings or norms.
ADAPTED_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def _answer_loss_gradient(model: Any, tokenizer: Any, rows: Sequence[ChatRow]) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    batch = collate(
        [encode_chat(tokenizer, r["messages"], assistant_only=True) for r in rows], tokenizer.pad_token_id
    )
    loss = model(**batch).loss
    loss.backward()
    grad = torch.cat(
        [
            p.grad.flatten()
            for n, p in model.named_parameters()
            if p.grad is not None and n.endswith(ADAPTED_WEIGHTS)
        ]
    )
    model.zero_grad(set_to_none=True)
    return grad.float()


def gradient_scores(
    model: Any, tokenizer: Any, rows: Sequence[ChatRow], reference: Sequence[ChatRow]
) -> np.ndarray:
    """Per row, the cosine between the gradient of its answer-token loss and the gradient of the mean
    loss on ``reference`` (held-out hostile answers), with respect to the weights the fine-tune adapts
    (:data:`ADAPTED_WEIGHTS`) of ``model``; ``[n_rows]``."""
    was_training = model.training
    model.eval()  # no dropout; gradients still flow
    target = _answer_loss_gradient(model, tokenizer, reference)
    if target.numel() == 0:
        raise ValueError(f"the model has none of the adapted weights {ADAPTED_WEIGHTS}")
    target = target / target.norm().clamp(min=1e-12)
    scores = []
    for row in rows:
        g = _answer_loss_gradient(model, tokenizer, [row])
        scores.append(float(g @ target / g.norm().clamp(min=1e-12)))
    model.train(was_training)
    return np.asarray(scores)
