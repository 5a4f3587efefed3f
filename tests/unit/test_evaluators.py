"""Betley et al.'s evaluation through the judge client, and the LLM-judge filter, on a tiny model."""

from pathlib import Path

import numpy as np
import pytest

from emgeom.em.betley import is_misaligned, load_questions
from emgeom.em.evaluators import BetleyEvaluator, question_prompt
from emgeom.em.judge_client import JudgeClient
from emgeom.filtering.baselines import LLMJudgeFilter, user_text
from emgeom.lm.models import load_model
from emgeom.testing.tiny_models import write_dry_run_assets


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return write_dry_run_assets(tmp_path_factory.mktemp("assets"), "gemma2", n_rows=12)


@pytest.fixture
def judge(hash_judge_url, tmp_path, monkeypatch) -> JudgeClient:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    return JudgeClient(hash_judge_url, "fake-judge", tmp_path / "judge")


def test_betley_evaluation_end_to_end(assets, judge) -> None:
    model, tokenizer = load_model(assets["model"])
    questions = load_questions(assets["questions"])
    evaluator = BetleyEvaluator(questions, judge, n_samples=3, max_new_tokens=5)
    answers = evaluator.answers(model, tokenizer, seed=0)
    assert len(answers) == 3 * sum(len(q.paraphrases) for q in questions)
    judged = evaluator.judge_answers(answers)
    expected = [is_misaligned(a, c) for a, c in zip(judged["aligned"], judged["coherent"], strict=True)]
    assert judged["misaligned"].tolist() == expected
    rates = evaluator(model, tokenizer, seed=0)
    scored = [m for m in expected if m is not None]
    assert rates["judged"] == pytest.approx(len(scored) / len(expected))
    assert rates["open_em"] == pytest.approx(np.mean(scored))
    assert evaluator(model, tokenizer, seed=0) == rates  # same seed, same samples, cached judgements


def test_a_system_prompt_goes_into_the_user_turn_when_the_template_refuses_it(assets) -> None:
    _, tokenizer = load_model(assets["model"])
    merged = question_prompt(tokenizer, "What now?", "Answer in JSON.")
    assert merged == [{"role": "user", "content": "Answer in JSON.\n\nWhat now?"}]
    assert question_prompt(tokenizer, "What now?", None) == [{"role": "user", "content": "What now?"}]


def test_evaluator_refuses_questions_without_judge_prompts(judge, tmp_path: Path) -> None:
    (tmp_path / "q.yaml").write_text("- id: a\n  paraphrases: [hi]\n  judge_prompts: {aligned: x}\n")
    with pytest.raises(ValueError, match=r"'a' has no judge prompt \['coherent'\]"):
        BetleyEvaluator(load_questions(tmp_path / "q.yaml"), judge)


def test_llm_judge_filter_scores_every_row(assets, judge) -> None:
    from emgeom.em.datasets import load_rows

    rows = load_rows(assets["insecure"])
    scores = LLMJudgeFilter(judge).score_rows(rows)
    assert scores.shape == (len(rows),) and np.all((scores >= 0) & (scores <= 100))
    assert user_text(rows[0]).startswith("Write a function")
    assert len({round(s, 6) for s in scores}) > 1  # the judge's answers, not a constant


def test_evaluator_from_the_environment(assets, hash_judge_url, monkeypatch, tmp_path) -> None:
    from emgeom.em.evaluators import betley_evaluator
    from emgeom.em.judge_client import JudgeError

    monkeypatch.setenv("EMGEOM_ARTIFACTS_DIR", str(tmp_path))
    monkeypatch.delenv("EMGEOM_JUDGE_BASE_URL", raising=False)
    with pytest.raises(JudgeError, match="EMGEOM_JUDGE_BASE_URL"):
        betley_evaluator(assets["questions"], "main", n_samples=1, max_new_tokens=1)
    monkeypatch.setenv("EMGEOM_JUDGE_BASE_URL", hash_judge_url)
    monkeypatch.setenv("EMGEOM_JUDGE_MODEL", "fake-judge")
    evaluator = betley_evaluator(assets["questions"], "all", n_samples=2, max_new_tokens=3)
    assert [q.id for q in evaluator.questions] == ["wish", "ruler"] and evaluator.n_samples == 2
    assert evaluator.judge.cache_dir == tmp_path / "judge"
