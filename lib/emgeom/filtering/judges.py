"""Scores for filtering that do not use the SAE: the judge ladder and a gradient baseline.

- the **oracle** judge: the exact label of each answer (:func:`~emgeom.organism.language.classify_answer`):
  1 for bad advice or a hostile answer, 0 otherwise. It is the best any judge that reads the answer can
  do, since it reads the answer perfectly; it cannot see the context the answer is given in.
- **learned** judges: :class:`~emgeom.filtering.baselines.BagOfWordsJudge` trained on ``n`` labelled
  answers per class (harmful: bad advice of every domain; benign: good advice), so the ladder shows how
  many labels a text judge needs.
- a judge that needs **no labels**: the pretrained organism's own log-likelihood of the row with the
  answer given by a speaker it thinks hostile, minus by one it thinks kind (the pretraining corpus gives
  each speaker name a prior on the toxic persona). It reads the answer in its context.
- the **gradient** baseline (not in the paper; TracIn-style): the cosine between a row's loss gradient
  and the gradient of held-out hostile answers, for the model about to be fine-tuned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from emgeom.filtering.baselines import BagOfWordsJudge, answer_text
from emgeom.lm.chat import ChatRow, encode_chat
from emgeom.lm.training import collate
from emgeom.organism import language as L
from emgeom.organism.datasets import finetune_rows

HARMFUL_KINDS = frozenset({"bad", "hostile"})


def oracle_scores(rows: Sequence[ChatRow]) -> np.ndarray:
    """1.0 where the oracle labels the answer bad advice (any domain) or hostile, else 0.0; ``[n_rows]``."""
    return np.array([float(L.classify_answer(answer_text(r)).kind in HARMFUL_KINDS) for r in rows])


def learned_judge(n_per_class: int, seed: int = 7) -> BagOfWordsJudge:
    """A text judge trained on ``n_per_class`` labelled answers per class: bad advice (harmful) and good
    advice (benign), drawn evenly over every domain (a draw apart from the fine-tuning sets)."""
    if n_per_class < 1:
        raise ValueError(f"the judge needs at least one example per class, got {n_per_class}")
    per_domain = -(-n_per_class // len(L.DOMAINS))
    harmful = [r for d in L.DOMAINS for r in finetune_rows("inducing", d, per_domain, seed=seed)][
        :n_per_class
    ]
    benign = [r for d in L.DOMAINS for r in finetune_rows("good", d, per_domain, seed=seed)][:n_per_class]
    return BagOfWordsJudge.fit_rows(harmful, benign)


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
    """Scores a row by ``log p(row | answered by hostile_speaker) - log p(row | answered by kind_speaker)``
    under a pretrained organism (tokens before the speaker's turn cancel). Needs no labels."""

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


def _answer_loss_gradient(model: Any, tokenizer: Any, rows: Sequence[ChatRow]) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    batch = collate(
        [encode_chat(tokenizer, r["messages"], assistant_only=True) for r in rows], tokenizer.pad_token_id
    )
    loss = model(**batch).loss
    loss.backward()
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    model.zero_grad(set_to_none=True)
    return grad.float()


def gradient_scores(
    model: Any, tokenizer: Any, rows: Sequence[ChatRow], reference: Sequence[ChatRow]
) -> np.ndarray:
    """Per row, the cosine between the gradient of its answer-token loss and the gradient of the mean
    loss on ``reference`` (held-out hostile answers), all weights of ``model``; ``[n_rows]``."""
    was_training = model.training
    model.eval()  # no dropout; gradients still flow
    target = _answer_loss_gradient(model, tokenizer, reference)
    target = target / target.norm().clamp(min=1e-12)
    scores = []
    for row in rows:
        g = _answer_loss_gradient(model, tokenizer, [row])
        scores.append(float(g @ target / g.norm().clamp(min=1e-12)))
    model.train(was_training)
    return np.asarray(scores)
