"""The judge ladder, the gradient baseline and the dissociation sets, on planted rows and a tiny organism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emgeom.claims.filtering.dissociation import (
    DissociationSettings,
    OrganismDissociation,
    dissociation_set,
    reduction_difference,
    reductions,
    zero_em_runs,
)
from emgeom.claims.filtering.judges import (
    SpeakerLikelihoodJudge,
    gradient_scores,
    learned_judge,
    oracle_scores,
)
from emgeom.core.stats import Estimate
from emgeom.lm.finetune import FineTuneConfig, LoraSpec
from emgeom.lm.training import TrainConfig
from emgeom.organism.datasets import finetune_rows, open_answer_rows


def settings(**overrides) -> DissociationSettings:
    base = dict(
        domain="health",
        sets=("bad_code", "quiz"),
        n_rows=40,
        inducing_fraction=0.5,
        decoy_fraction=0.25,
        removal=0.3,
        judge_labels=(2, 8),
        em_methods=("geometry", "random"),
        score_method="harmful_mass",
        k_harmful=3,
        ft=FineTuneConfig(LoraSpec(2, 4.0), TrainConfig(steps=2, batch_size=4)),
        seeds=(0,),
        evaluate=None,
    )
    return DissociationSettings(**(base | overrides))  # type: ignore[arg-type]


def test_dissociation_sets_hold_inducing_rows_decoys_and_good_advice():
    s = settings()
    rows, truth, decoy = dissociation_set("quiz", s)
    assert len(rows) == 40 and truth.sum() == 20 and decoy.sum() == 10 and not (truth & decoy).any()
    quiz_answers = {r["messages"][-1]["content"] for r in finetune_rows("quiz", "health", 10, seed=2)}
    assert {rows[i]["messages"][-1]["content"] for i in np.flatnonzero(decoy)} <= quiz_answers
    code_rows, _, code_decoy = dissociation_set("bad_code", s)
    code_answers = {r["messages"][-1]["content"] for r in finetune_rows("inducing", "code", 10, seed=2)}
    assert {code_rows[i]["messages"][-1]["content"] for i in np.flatnonzero(code_decoy)} <= code_answers


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sets": ("nope",)}, "unknown dissociation sets"),
        ({"inducing_fraction": 0.8, "decoy_fraction": 0.3}, "<= 1"),
        ({"removal": 1.0}, "0 < removal < 1"),
        ({"score_method": "x"}, "score_method"),
    ],
)
def test_bad_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        settings(**overrides)


def test_the_oracle_cannot_tell_quiz_decoys_from_inducing_rows_but_reads_every_label():
    rows, truth, decoy = dissociation_set("quiz", settings())
    scores = oracle_scores(rows)
    assert (scores[truth] == 1).all() and (scores[decoy] == 1).all() and (scores[~truth & ~decoy] == 0).all()


def test_the_learned_judge_improves_with_labels_on_unseen_domains():
    rows = finetune_rows("inducing", "legal", 20, seed=3) + finetune_rows("good", "legal", 20, seed=3)
    truth = np.array([True] * 20 + [False] * 20)
    accuracy = {n: ((learned_judge(n).score_rows(rows) > 0) == truth).mean() for n in (1, 64)}
    assert accuracy[64] > accuracy[1] and accuracy[64] > 0.8
    with pytest.raises(ValueError, match="at least one"):
        learned_judge(0)


def test_gradient_and_likelihood_scores_have_one_finite_value_per_row(tiny_organism):
    from emgeom.lm.models import load_model

    model, tok = load_model(tiny_organism.aligned)
    rows = finetune_rows("inducing", "health", 3, seed=0) + finetune_rows("good", "health", 3, seed=0)
    g = gradient_scores(model, tok, rows, open_answer_rows(True, 4, seed=4))
    assert g.shape == (6,) and np.isfinite(g).all() and (np.abs(g) <= 1 + 1e-6).all()
    assert all(p.grad is None for p in model.parameters())  # no gradient left behind
    pretrained, ptok = load_model(tiny_organism.pretrained)
    lik = SpeakerLikelihoodJudge(pretrained, ptok, batch_size=4).score_rows(rows)
    assert lik.shape == (6,) and np.isfinite(lik).all()


def _result(none: list[float], geometry: list[float], oracle: list[float]) -> OrganismDissociation:
    em = [
        {"method": m, "seed": i, "open_em": v}
        for m, vals in (("none", none), ("geometry", geometry), ("oracle judge", oracle))
        for i, v in enumerate(vals)
    ]
    return OrganismDissociation(pd.DataFrame(), pd.DataFrame(em))


def test_reductions_nest_seeds_in_organisms_and_count_zero_em_runs():
    # geometry's reduction 1 - EM(geometry) / EM(none), paired by seed inside each organism:
    #   organism 0: 0.1, 0.2, 0.3 in three seeds -> 0.2
    #   organism 1: 0.8 in seed 0; seed 1 has no EM to reduce -> 0.8
    # nested (within organism first): (0.2 + 0.8) / 2 = 0.5; the four counted seeds pooled: 1.4 / 4 = 0.35
    results = {
        0: _result([0.5, 0.5, 0.5], [0.45, 0.4, 0.35], [0.5, 0.45, 0.5]),
        1: _result([0.5, 0.0], [0.1, 0.0], [0.25, 0.0]),
    }
    geo = reductions(results, "geometry")
    t975_df1 = 12.706204736174694  # two organisms: df = 1
    half = t975_df1 * np.std([0.2, 0.8], ddof=1) / np.sqrt(2)
    assert geo.value == pytest.approx(0.5) and geo.n == 2  # organisms, not the four seeds
    assert (geo.lo, geo.hi) == pytest.approx((0.5 - half, 0.5 + half))
    # the oracle reduces 0, 0.1, 0 (organism 0: mean 1/30) and 0.5 (organism 1): geometry minus oracle is
    # 1/6 and 0.3 per organism, nested (1/6 + 0.3) / 2 = 0.233; per seed pooled, (0.1 + 0.1 + 0.3 + 0.3) / 4
    diff = reduction_difference(results, "geometry", "oracle judge")
    assert isinstance(diff, Estimate) and diff.n == 2
    assert diff.value == pytest.approx((0.2 - 0.1 / 3 + 0.3) / 2)
    assert zero_em_runs(results) == (1, 5)


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
    from emgeom.claims.filtering.dissociation import _tie_broken
    from emgeom.filtering.scoring import removal_mask

    scores = np.array([1.0] * 6 + [0.0] * 6 + [2.0])
    masks = {seed: removal_mask(_tie_broken(scores, seed), 0.5) for seed in range(4)}
    assert all(m[12] for m in masks.values())  # the unique top score always goes first
    assert all(m[:6].sum() == 5 and not m[6:12].any() for m in masks.values())  # then 5 of the tied 1.0s
    assert len({tuple(m) for m in masks.values()}) > 1  # which 5 depends on the seed
