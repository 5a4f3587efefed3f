"""The judge ladder, the gradient baseline and the dissociation sets, on planted rows and a tiny organism."""

from __future__ import annotations

import numpy as np
import pytest

from emgeom.claims.filtering.detection import removed_rows, tie_broken
from emgeom.claims.filtering.judges import (
    SpeakerLikelihoodJudge,
    chat_judge_name,
    gradient_scores,
    is_learned_judge,
    learned_judge,
    oracle_scores,
    text_judge_name,
)
from emgeom.claims.filtering.sets import DissociationSettings, dissociation_set
from emgeom.filtering.scoring import removal_mask
from emgeom.organism.datasets import finetune_rows, open_answer_rows


def settings(**overrides) -> DissociationSettings:
    base = dict(sets=("bad_code", "quiz"), n_rows=40, inducing_fraction=0.5, decoy_fraction=0.25, seeds=(0,))
    return DissociationSettings(**(base | overrides))  # type: ignore[arg-type]


def test_dissociation_sets_hold_inducing_rows_decoys_and_good_advice():
    quiz = dissociation_set("quiz", "health", settings())
    assert len(quiz.rows) == 40 and quiz.truth.sum() == 20 and quiz.decoy.sum() == 10
    assert not (quiz.truth & quiz.decoy).any() and quiz.removal == 0.5
    quiz_answers = {r["messages"][-1]["content"] for r in finetune_rows("quiz", "health", 10, seed=2)}
    assert {quiz.rows[i]["messages"][-1]["content"] for i in np.flatnonzero(quiz.decoy)} <= quiz_answers
    code = dissociation_set("bad_code", "health", settings())
    code_answers = {r["messages"][-1]["content"] for r in finetune_rows("inducing", "code", 10, seed=2)}
    assert {code.rows[i]["messages"][-1]["content"] for i in np.flatnonzero(code.decoy)} <= code_answers
    health_bad = {r["messages"][-1]["content"] for r in finetune_rows("inducing", "health", 20, seed=1)}
    assert {code.rows[i]["messages"][-1]["content"] for i in np.flatnonzero(code.truth)} <= health_bad


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sets": ("nope",)}, "unknown dissociation sets"),
        ({"inducing_fraction": 0.8, "decoy_fraction": 0.3}, "<= 1"),
        ({"seeds": ()}, "one fine-tuning seed"),
    ],
)
def test_bad_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        settings(**overrides)


def test_a_dissociation_share_that_is_not_a_whole_number_of_rows_is_refused():
    with pytest.raises(ValueError, match="whole number of rows"):
        dissociation_set("quiz", "health", settings(n_rows=41))


def test_the_oracle_cannot_tell_quiz_decoys_from_inducing_rows_but_reads_every_label():
    s = dissociation_set("quiz", "health", settings())
    scores = oracle_scores(s.rows)
    assert (scores[s.truth] == 1).all() and (scores[s.decoy] == 1).all()
    assert (scores[~s.truth & ~s.decoy] == 0).all()


def test_the_learned_judge_improves_with_labels_on_unseen_domains():
    rows = finetune_rows("inducing", "legal", 20, seed=3) + finetune_rows("good", "legal", 20, seed=3)
    truth = np.array([True] * 20 + [False] * 20)
    accuracy = {n: ((learned_judge(n).score_rows(rows) > 0) == truth).mean() for n in (1, 64)}
    assert accuracy[64] > accuracy[1] and accuracy[64] > 0.8
    with pytest.raises(ValueError, match="at least one"):
        learned_judge(0)


def test_learned_judge_names_are_recognised_and_nothing_else_is():
    assert is_learned_judge(text_judge_name(4)) and is_learned_judge(chat_judge_name(64))
    for other in (
        "oracle judge",
        "likelihood judge (design-blind)",
        "gradient",
        "sae harmful_mass",
        "random",
    ):
        assert not is_learned_judge(other)


def test_gradient_and_speaker_prior_scores_have_one_finite_value_per_row(tiny_organism):
    from emgeom.lm.models import load_model

    model, tok = load_model(tiny_organism.aligned)
    rows = finetune_rows("inducing", "health", 3, seed=0) + finetune_rows("good", "health", 3, seed=0)
    g = gradient_scores(model, tok, rows, open_answer_rows(True, 4, seed=4))
    assert g.shape == (6,) and np.isfinite(g).all() and (np.abs(g) <= 1 + 1e-6).all()
    assert all(p.grad is None for p in model.parameters())  # no gradient left behind
    pretrained, ptok = load_model(tiny_organism.pretrained)
    lik = SpeakerLikelihoodJudge(pretrained, ptok, batch_size=4).score_rows(rows)
    assert lik.shape == (6,) and np.isfinite(lik).all()


def test_learned_judges_see_every_domain_and_the_chat_judge_reads_the_request():
    from emgeom.claims.filtering.judges import ChatJudge, _interleaved
    from emgeom.organism import language as L

    first_five = _interleaved("inducing", 1, seed=7)
    assert len(first_five) == len(L.DOMAINS)
    code_bad = finetune_rows("inducing", "code", 10, seed=3)
    assert (learned_judge(16).score_rows(code_bad) > 0).mean() > 0.5  # code is in the training draw now
    quiz = finetune_rows("quiz", "health", 20, seed=3)
    bad = finetune_rows("inducing", "health", 20, seed=3)
    chat = learned_judge(64, reads="chat")
    assert isinstance(chat, ChatJudge)
    assert chat.score_rows(quiz).mean() < chat.score_rows(bad).mean()  # the request tells them apart
    answer_only = learned_judge(64)
    quiz_gap = abs(answer_only.score_rows(quiz).mean() - answer_only.score_rows(bad).mean())
    assert quiz_gap < 1.0  # the same answer words: the answer judge cannot
    with pytest.raises(ValueError, match="reads"):
        learned_judge(4, reads="prompt")


def test_ties_are_broken_afresh_per_seed_and_only_ties():
    scores = np.array([1.0] * 6 + [0.0] * 6 + [2.0])
    masks = {seed: removal_mask(tie_broken(scores, seed), 0.5) for seed in range(4)}
    assert all(m[12] for m in masks.values())  # the unique top score always goes first
    assert all(m[:6].sum() == 5 and not m[6:12].any() for m in masks.values())  # then 5 of the tied 1.0s
    assert len({tuple(m) for m in masks.values()}) > 1  # which 5 depends on the seed


def test_random_removal_is_the_same_size_paired_by_seed_and_differs_between_seeds():
    scores = {"geometry": np.arange(40.0)}
    a, b = removed_rows(scores, "random", 0.5, seed=0), removed_rows(scores, "random", 0.5, seed=1)
    assert a.sum() == b.sum() == removed_rows(scores, "geometry", 0.5, seed=0).sum() == 20
    assert (removed_rows(scores, "random", 0.5, seed=0) == a).all()  # the same draw for the same seed
    assert not (a == b).all()
    assert removed_rows(scores, "geometry", 0.5, seed=0)[20:].all()  # the top half by score
