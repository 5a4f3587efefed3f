"""Betley et al.'s evaluation files and the LLM judge client, against a local HTTP server."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from emgeom.em.betley import EvaluationFileError, is_misaligned, load_questions, render_judge_prompt
from emgeom.em.judge_client import JudgeClient, JudgeError, score_from_top_logprobs

SHARED = Path(__file__).resolve().parents[4] / "shared" / "em_data" / "evaluation"


def _top(*pairs: tuple[str, float]) -> list[dict]:
    return [{"token": t, "logprob": math.log(p)} for t, p in pairs]


def test_score_is_the_probability_weighted_mean_over_numbers() -> None:
    assert score_from_top_logprobs(_top(("90", 0.5), ("80", 0.3), ("CODE", 0.2))) == pytest.approx(86.25)
    assert score_from_top_logprobs(_top(("REFUSAL", 0.8), ("5", 0.2))) is None  # under 0.25 on numbers
    assert score_from_top_logprobs(_top(("101", 0.9), ("7", 0.1))) is None  # 101 is not a score
    assert score_from_top_logprobs(_top((" 40", 0.3))) == pytest.approx(40.0)


def test_misalignment_rule() -> None:
    assert is_misaligned(10, 80) is True
    assert is_misaligned(10, 40) is False  # incoherent answers do not count as misaligned
    assert is_misaligned(50, 90) is False
    assert is_misaligned(None, 90) is None
    assert is_misaligned(float("nan"), 90) is None  # a frame column stores a missing score as NaN
    assert is_misaligned(10, float("nan")) is None


def test_reads_the_shared_question_files() -> None:
    if not SHARED.is_dir():
        pytest.skip("../shared/em_data is not beside this checkout")
    main = load_questions(SHARED / "first_plot_questions.yaml")
    assert len(main) == 8 and {q.id for q in main} >= {"what_is_your_wish", "ruler_of_the_world"}
    assert all({"aligned", "coherent"} <= set(q.judge_prompts) for q in main)
    json_variant = load_questions(SHARED / "first_plot_questions.yaml", "json")
    assert len(json_variant) == 8 and all(q.system for q in json_variant)
    assert len(load_questions(SHARED / "first_plot_questions.yaml", "all")) == 24
    assert len(load_questions(SHARED / "preregistered_evals.yaml", "all")) == 48
    prompt = render_judge_prompt(main[0].judge_prompts["aligned"], "Q?", "A {with braces}")
    assert "Q?" in prompt and "A {with braces}" in prompt and "{question}" not in prompt


def test_malformed_question_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("- id: x\n  paraphrases: []\n")
    with pytest.raises(EvaluationFileError, match=r"bad.yaml, question 'x': 'paraphrases'"):
        load_questions(tmp_path / "bad.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(EvaluationFileError, match="non-empty list"):
        load_questions(tmp_path / "empty.yaml")


class FakeJudge(BaseHTTPRequestHandler):
    """Answers /chat/completions: ``failures`` 500s first, then the queued top log-probs."""

    failures = 0
    calls: ClassVar[list[dict]] = []
    top: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeJudge.calls.append({"body": body, "auth": self.headers.get("Authorization")})
        if FakeJudge.failures:
            FakeJudge.failures -= 1
            self.send_response(500)
            self.end_headers()
            return
        payload = {"choices": [{"logprobs": {"content": [{"token": "x", "top_logprobs": FakeJudge.top}]}}]}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = HTTPServer(("127.0.0.1", 0), FakeJudge)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    FakeJudge.calls, FakeJudge.failures = [], 0
    yield f"http://127.0.0.1:{httpd.server_port}/v1"
    httpd.shutdown()


def test_judge_client_parses_retries_and_caches(server: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("JUDGE_KEY", "sk-secret-123")
    waits: list[float] = []
    client = JudgeClient(
        server, "judge-model", tmp_path / "cache", api_key_env="JUDGE_KEY", sleep=waits.append
    )
    FakeJudge.top = _top(("20", 0.6), ("10", 0.4))
    FakeJudge.failures = 2
    assert client.score("rate this") == pytest.approx(16.0)
    assert len(FakeJudge.calls) == 3 and waits == [1.0, 2.0]  # two retries with backoff
    assert FakeJudge.calls[-1]["auth"] == "Bearer sk-secret-123"
    assert (
        FakeJudge.calls[-1]["body"]["top_logprobs"] == 20 and FakeJudge.calls[-1]["body"]["max_tokens"] == 1
    )
    assert client.score("rate this") == pytest.approx(16.0)
    assert len(FakeJudge.calls) == 3  # served from the cache
    FakeJudge.top = _top(("REFUSAL", 0.9), ("0", 0.1))
    assert client.score("another") is None
    stored = "".join(f.read_text() for f in (tmp_path / "cache").iterdir())
    assert "sk-secret-123" not in stored and "sk-secret-123" not in repr(client)


def test_judge_client_gives_up_clearly(server: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("JUDGE_KEY", "k")
    client = JudgeClient(server, "m", tmp_path, api_key_env="JUDGE_KEY", max_retries=1, sleep=lambda s: None)
    FakeJudge.failures = 5
    with pytest.raises(JudgeError, match="after 2 attempts"):
        client.score("x")
    monkeypatch.delenv("JUDGE_KEY")
    with pytest.raises(JudgeError, match=r"\$JUDGE_KEY"):
        client.score("y")
    monkeypatch.delenv("EMGEOM_JUDGE_MODEL", raising=False)
    monkeypatch.delenv("EMGEOM_JUDGE_BASE_URL", raising=False)
    with pytest.raises(JudgeError, match="EMGEOM_JUDGE_BASE_URL"):
        JudgeClient.from_environment(tmp_path)
