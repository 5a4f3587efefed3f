"""Chapter 6's study over organisms, with the organisms, the detectors and the fine-tune replaced by planted
stand-ins: detection runs on every organism before any fine-tune, the best learned judge is one choice
over organisms, every method removes the set's inducing share, the unfiltered run doubles as the curve's
point; the numbers are nested (seeds inside organisms, intervals over organisms) and every recorded name
is declared."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from emgeom.claims.filtering import organisms as fo
from emgeom.claims.filtering.detection import RANDOM, removed_rows
from emgeom.claims.filtering.dissociation import record_dissociation
from emgeom.claims.filtering.judges import GRADIENT, LIKELIHOOD, ORACLE, SPEAKER_PRIOR
from emgeom.claims.filtering.sets import MAIN, DissociationSettings
from emgeom.core.results import (
    ENV_DECLARATIONS,
    ENV_RESULTS_FILE,
    load_declarations,
    missing_results,
    session_results,
)
from emgeom.lm.finetune import FineTuneConfig, LoraSpec
from emgeom.lm.training import TrainConfig

DECLARATIONS = Path(__file__).resolve().parents[4] / "notebooks" / "06_geometry_filtering.results.yaml"
T975_2 = 4.302652729749462  # t(0.975, 2)
TEXT, CHAT = "text judge (2 labels)", "chat judge (2 labels)"


def settings(**overrides) -> fo.FilterSettings:
    base = dict(
        domain="health",
        set_size=20,
        inducing_share=0.5,
        dose_fractions=(0.0, 0.25),
        score_method="harmful_mass",
        judge_labels=(2,),
        k_harmful=3,
        ft=FineTuneConfig(LoraSpec(2, 4.0), TrainConfig(steps=2, batch_size=4)),
        seeds=(0, 1),
        evaluate=None,
    )
    return fo.FilterSettings(**(base | overrides))  # type: ignore[arg-type]


DISSOCIATION = DissociationSettings(("bad_code", "quiz"), 20, 0.6, 0.3, (0,))


def fake_scores(organism: int, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Planted detectors: geometry finds the inducing rows; the text judge is perfect on organism 0 and
    wrong everywhere on the others, the chat judge finds most of them on every organism (so it wins
    over organisms, though organism 0 alone would pick the text judge)."""
    rng = np.random.default_rng(organism)
    noise, other = rng.random(truth.size), rng.random(truth.size)
    return {
        "sae harmful_mass": truth + 0.1 * noise,
        "sae cosine_weighted": noise,
        "sae residual_projection": other,
        GRADIENT: truth + 0.8 * noise,
        ORACLE: truth.astype(float),
        TEXT: truth.astype(float) if organism == 0 else 1.0 - truth,
        CHAT: truth + 1.5 * other,
        LIKELIHOOD: other,
        SPEAKER_PRIOR: truth.astype(float),
    }


@pytest.fixture
def planted(monkeypatch):
    """The study on three planted organisms; returns it and the log of what happened, in order."""
    log: list[tuple] = []

    def load_subject(cfg, specs, progress=True):
        return SimpleNamespace(model=cfg, tokenizer=None)

    def detector_scores(subject, sets, judge_labels, k_harmful, timed=""):
        log.append(("detect", subject.model))
        truths = {n: s.truth for n, s in fo.study_sets(settings(), DISSOCIATION).items()}
        return {name: fake_scores(subject.model, truths[name]) for name in sets}, 100.0 + subject.model

    def em_after_finetune(model, tokenizer, rows, ft, seed, evaluate):
        log.append(("fine-tune", model, len(rows)))
        inducing = {
            r["messages"][-1]["content"]
            for s in fo.study_sets(settings(), DISSOCIATION).values()
            for r, t in zip(s.rows, s.truth, strict=True)
            if t
        }
        share = np.mean([r["messages"][-1]["content"] in inducing for r in rows])
        return {"open_em": float(share) * (1 + model) / 3, "kept": len(rows)}

    def dose_response(model, tokenizer, inducing, benign, fractions, n_total, ft, seeds, evaluate, progress):
        log.append(("curve", model, tuple(fractions)))
        return pd.DataFrame(
            [
                {"fraction": f, "seed": s, "open_em": f * (1 + model) / 3, "kept": n_total}
                for f in fractions
                for s in seeds
            ]
        )

    monkeypatch.setattr(fo, "load_subject", load_subject)
    monkeypatch.setattr(fo, "detector_scores", detector_scores)
    monkeypatch.setattr(fo, "em_after_finetune", em_after_finetune)
    monkeypatch.setattr(fo, "dose_response", dose_response)
    study = fo.filtering_over_organisms({0: 0, 1: 1, 2: 2}, [None], settings(), DISSOCIATION)
    return study, log


def test_detection_runs_on_every_organism_before_any_fine_tune(planted) -> None:
    study, log = planted
    steps = [entry[0] for entry in log]
    assert steps[:3] == ["detect"] * 3 and "detect" not in steps[3:]
    # per organism: the half-inducing set (2 seeds x 6 runs), two dissociation sets (1 seed x 6), the curve
    assert sum(s == "fine-tune" for s in steps) == 3 * (2 * 6 + 2 * 6)
    assert [e for e in log if e[0] == "curve"] == [("curve", o, (0.0, 0.25)) for o in range(3)]
    assert study.samples_per_second == {0: 100.0, 1: 101.0, 2: 102.0}


def test_the_best_learned_judge_is_chosen_over_organisms_and_used_for_every_organism(planted) -> None:
    study, _ = planted
    assert study.best_judge[MAIN] == CHAT
    recall = study.detection(MAIN)[0].set_index("method")["recall"]
    assert recall[TEXT] == 1.0 and recall[CHAT] < 1.0  # organism 0 alone would pick the text judge
    s = study.sets[MAIN]
    em = study.em(MAIN)[0].set_index(["method", "seed"])["open_em"]
    scores = study.results[MAIN][0].scores
    for seed in (0, 1):  # the best judge's fine-tune kept what the chat judge keeps (EM = kept share / 3)
        for judge, used in ((CHAT, True), (TEXT, False)):
            remove = removed_rows(scores, judge, s.removal, seed)
            kept_share = (~remove & s.truth).sum() / (~remove).sum()
            assert bool(em[(fo.BEST_JUDGE, seed)] == pytest.approx(kept_share / 3)) is used


def test_every_method_removes_the_inducing_share_and_no_filtering_removes_nothing(planted) -> None:
    study, _ = planted
    for name, s in study.sets.items():
        em = study.em(name)[1]
        kept = em.set_index(["method", "seed"])["kept"]
        n = len(s.rows)
        assert kept[("none", 0)] == n
        for method in fo.EM_METHODS:
            assert kept[(method, 0)] == n - round(s.removal * n)
        assert set(em["method"]) == {"none", *fo.EM_METHODS}


def test_the_unfiltered_run_is_the_curves_point_at_the_share(planted) -> None:
    study, _ = planted
    curve = study.curves[2]
    assert sorted(set(curve["fraction"])) == [0.0, 0.25, 0.5]
    em = study.em(MAIN)[2]
    unfiltered = em[em["method"] == "none"].set_index("seed")["open_em"]
    point = curve[curve["fraction"] == 0.5].set_index("seed")["open_em"]
    assert point.to_dict() == unfiltered.to_dict() and point[0] == pytest.approx(0.5)  # 0.5 * 3 / 3


def test_curve_points_and_saturation_are_means_over_organisms(planted) -> None:
    study, _ = planted
    e = fo.curve_point(study, 0.5)
    values = [0.5 * (1 + o) / 3 for o in range(3)]
    half = T975_2 * np.std(values, ddof=1) / math.sqrt(3)
    assert e.n == 3 and e.value == pytest.approx(np.mean(values))
    assert (e.lo, e.hi) == pytest.approx((0.0, np.mean(values) + half))  # EM: the interval clipped at 0
    assert np.mean(values) - half < 0
    assert fo.curve_point(study, 0.0).value == 0.0
    assert fo.saturation_over(study).value == pytest.approx(0.5)  # 0.25 is half of the maximum, not 90%


def test_random_removal_is_drawn_per_organism_and_seed_and_is_what_detection_counts(planted) -> None:
    study, _ = planted
    s = study.sets[MAIN]

    def random_masks(organism: int) -> dict[int, np.ndarray]:
        plan = fo.removal_plan(study.results[MAIN][organism].scores, s, [RANDOM], [0, 1], {}, organism)
        return {seed: m for method, seed, m in plan if method == RANDOM}

    first, other = random_masks(0), random_masks(2)
    assert not (first[0] == other[0]).all()  # a fresh draw per organism: a replicate's own variation
    assert not (first[0] == first[1]).all() and first[0].sum() == first[1].sum() == 10
    recall = study.detection(MAIN)[2].set_index("method").loc[RANDOM, "recall"]
    assert recall == pytest.approx(np.mean([(m & s.truth).sum() / 10 for m in other.values()]))


def test_the_comparisons_nest_seeds_in_organisms() -> None:
    # geometry's reduction 1 - EM(geometry) / EM(none), paired by seed inside each organism:
    #   organism 0: 0.1, 0.2, 0.3 in three seeds -> 0.2
    #   organism 1: 0.8 in seed 0; seed 1 has no EM to reduce -> 0.8
    # nested (within organism first): (0.2 + 0.8) / 2 = 0.5; the four counted seeds pooled: 1.4 / 4 = 0.35
    def em(none, geometry, judge):
        return pd.DataFrame(
            [
                {"method": m, "seed": i, "open_em": v}
                for m, vals in (("none", none), (fo.GEOMETRY, geometry), (fo.BEST_JUDGE, judge))
                for i, v in enumerate(vals)
            ]
        )

    tables = {
        0: em([0.5, 0.5, 0.5], [0.45, 0.4, 0.35], [0.5, 0.45, 0.5]),
        1: em([0.5, 0.0], [0.1, 0.0], [0.25, 0.0]),
    }
    geo = fo.reductions(tables, fo.GEOMETRY)
    half = 12.706204736174694 * np.std([0.2, 0.8], ddof=1) / np.sqrt(2)  # two organisms: df = 1
    assert geo.value == pytest.approx(0.5) and geo.n == 2  # organisms, not the four seeds
    assert (geo.lo, geo.hi) == pytest.approx((0.5 - half, 0.5 + half))
    # the judge reduces 0, 0.1, 0 (organism 0: mean 1/30) and 0.5 (organism 1): geometry minus it is
    # 1/6 and 0.3 per organism, nested (1/6 + 0.3) / 2
    diff = fo.reduction_difference(tables, fo.GEOMETRY, fo.BEST_JUDGE)
    assert diff.n == 2 and diff.value == pytest.approx((0.2 - 0.1 / 3 + 0.3) / 2)
    assert fo.zero_em_runs(tables) == (1, 5)


def test_every_recorded_name_is_declared_and_every_declaration_recorded(
    planted, tmp_path, monkeypatch
) -> None:
    study, _ = planted
    monkeypatch.setenv(ENV_DECLARATIONS, str(DECLARATIONS))  # record refuses an undeclared name
    monkeypatch.setenv(ENV_RESULTS_FILE, str(tmp_path / "results.json"))
    half = fo.record_half_inducing(study)
    record_dissociation(study)
    import json

    recorded = json.loads((tmp_path / "results.json").read_text())["results"]
    assert missing_results(load_declarations(DECLARATIONS), recorded) == []
    for name in ("bad_code", "quiz"):
        for part in ("judge", "likelihood", "gradient"):
            entry = recorded[f"dissociation_{name}_geometry_recall_minus_{part}"]
            assert entry["n_seeds"] == 3 and entry["ci"] is not None
    assert recorded["filter_recall_speaker_prior_judge_design_aware"]["value"] == 1.0
    assert (
        "filter_geometry_recall_minus_speaker_prior" not in recorded
    )  # the design-aware judge is not compared
    assert not any("minus_oracle" in n for n in recorded)  # the oracle is a ceiling, not compared
    assert recorded["filter_geometry_recall_minus_judge"]["value"] == pytest.approx(
        half.recall["judge"].value
    )
    assert session_results()["geometry_filter_relative_reduction"].n_seeds == 3


def test_settings_are_refused_before_any_work() -> None:
    with pytest.raises(ValueError, match="include 0"):
        settings(dose_fractions=(0.25, 1.0))
    with pytest.raises(ValueError, match="whole number of rows"):
        settings(set_size=21)
    with pytest.raises(ValueError, match="score_method"):
        settings(score_method="nope")
    with pytest.raises(ValueError, match="domain"):
        settings(domain="cooking")


def test_the_cpu_study_runs_20_fine_tunes_per_organism() -> None:
    cpu = settings(set_size=300, seeds=(0,))
    one_seed = DissociationSettings(("bad_code", "quiz"), 300, 0.6, 0.3, (0,))
    # the curve at 0 and 0.25 (its point at 0.5 is the unfiltered run), then 6 runs on each of 3 sets
    assert fo.fine_tunes_per_organism(cpu, one_seed) == 2 + 6 + 2 * 6 == 20
    assert fo.fine_tunes_per_organism(settings(seeds=(0,), dose_fractions=(0.0, 0.25, 0.5)), one_seed) == 20
