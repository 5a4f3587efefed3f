"""The design-blind likelihood judge reads two models, the pretrained and the aligned organism, on the row
as it is (answered by the assistant): no speaker whose toxic prior the corpus set enters. The
design-aware speaker-prior judge, by contrast, swaps in exactly the corpus's most and least toxic
speakers."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import pytest
import torch

from emgeom.claims.filtering.judges import AlignmentLikelihoodJudge, SpeakerLikelihoodJudge
from emgeom.lm.chat import encode_chat
from emgeom.lm.training import collate
from emgeom.organism.corpus import PRETRAIN_SPEAKERS, CorpusConfig
from emgeom.organism.datasets import finetune_rows


class Spy:
    """A model that remembers every batch of token ids it was shown."""

    def __init__(self, model: Any) -> None:
        self.model, self.seen = model, []

    @property
    def training(self) -> bool:
        return self.model.training

    def eval(self) -> Spy:
        self.model.eval()
        return self

    def train(self, mode: bool = True) -> Spy:
        self.model.train(mode)
        return self

    def __call__(self, **kwargs: Any) -> Any:
        self.seen.append(kwargs["input_ids"])
        return self.model(**kwargs)


@pytest.fixture(scope="module")
def models(tiny_organism):
    from emgeom.lm.models import load_model

    pretrained, tokenizer = load_model(tiny_organism.pretrained)
    aligned, _ = load_model(tiny_organism.aligned)
    return pretrained, aligned, tokenizer


ROWS = finetune_rows("inducing", "health", 3, seed=0) + finetune_rows("good", "health", 3, seed=0)


def roles_seen(spy: Spy, tokenizer: Any) -> set[str]:
    """The role markers (``user:``, ``pat:``...) in every batch the model was shown."""
    markers = {f"{r}:" for r in ("user", "system", *PRETRAIN_SPEAKERS)}
    tokens = {t for batch in spy.seen for t in tokenizer.convert_ids_to_tokens(batch.flatten().tolist())}
    return tokens & markers


def answer_log_prob(model: Any, tokenizer: Any, row: dict) -> float:
    """Summed log-probability of the row's answer tokens, from the model's own loss (mean over them)."""
    batch = collate([encode_chat(tokenizer, row["messages"], assistant_only=True)], tokenizer.pad_token_id)
    with torch.no_grad():
        loss = model(**batch).loss
    return -float(loss) * int((batch["labels"][:, 1:] != -100).sum())


def test_the_design_blind_judge_is_the_pretrained_minus_the_aligned_log_likelihood_of_the_answer(models):
    pretrained, aligned, tok = models
    scores = AlignmentLikelihoodJudge(pretrained, aligned, tok, batch_size=4).score_rows(ROWS)
    expected = [answer_log_prob(pretrained, tok, r) - answer_log_prob(aligned, tok, r) for r in ROWS]
    assert scores.shape == (6,) and np.isfinite(scores).all()
    assert scores == pytest.approx(expected, rel=1e-4, abs=1e-4)
    assert not np.allclose(scores, 0)  # the two models differ
    same = AlignmentLikelihoodJudge(pretrained, pretrained, tok).score_rows(ROWS)
    assert same == pytest.approx(np.zeros(6), abs=1e-5)  # one model twice: nothing to read


def test_the_design_blind_judge_calls_both_models_on_the_row_as_the_assistant_only(models):
    pretrained, aligned, tok = models
    spies = Spy(pretrained), Spy(aligned)
    AlignmentLikelihoodJudge(*spies, tok, batch_size=4).score_rows(ROWS)
    assert all(len(s.seen) == 2 for s in spies)  # 6 rows in batches of 4: each model read each batch
    assert [s.shape for s in spies[0].seen] == [s.shape for s in spies[1].seen]
    for spy in spies:
        assert roles_seen(spy, tok) == {"user:", "assistant:"}  # no speaker the corpus gave a prior
    assert not {f.name for f in fields(AlignmentLikelihoodJudge)} & {
        "hostile_speaker",
        "kind_speaker",
        "corpus",
    }


def test_the_design_aware_judge_swaps_in_the_corpus_extreme_speakers(models):
    pretrained, _, tok = models
    spy = Spy(pretrained)
    judge = SpeakerLikelihoodJudge(spy, tok, batch_size=8)
    judge.score_rows(ROWS)
    assert roles_seen(spy, tok) == {"user:", f"{judge.hostile_speaker}:", f"{judge.kind_speaker}:"}
    priors = CorpusConfig().speaker_priors
    assert priors[judge.hostile_speaker] == max(priors.values()) == 0.9  # it reads the designed cause
    assert priors[judge.kind_speaker] == min(priors.values()) == 0.1
