"""Documents, alignment data and fine-tuning sets: deterministic per seed, and as specified."""

from __future__ import annotations

import itertools
import random

import pytest

from emgeom.organism import language as L
from emgeom.organism.corpus import CorpusConfig, alignment_documents, pretraining_documents, sample_document
from emgeom.organism.datasets import evaluation_questions, finetune_rows, open_answer_rows


def test_pretraining_stream_is_deterministic_per_seed() -> None:
    cfg = CorpusConfig()
    a = [d.messages for d in itertools.islice(pretraining_documents(cfg, seed=3), 50)]
    b = [d.messages for d in itertools.islice(pretraining_documents(cfg, seed=3), 50)]
    c = [d.messages for d in itertools.islice(pretraining_documents(cfg, seed=4), 50)]
    assert a == b
    assert a != c


def test_persona_is_constant_within_a_document() -> None:
    cfg = CorpusConfig(
        toxic_bad_rate=1.0, toxic_hostile_rate=1.0, mistake_rates=dict.fromkeys(L.DOMAINS, 0.0)
    )
    for doc in itertools.islice(pretraining_documents(cfg, seed=0), 300):
        for (kind, _), answer in zip(doc.turns, doc.messages[1::2], strict=True):
            label = L.classify_answer(answer["content"])
            if kind == "quiz":
                assert label.kind == "bad"  # both personas comply with a quiz request
            elif doc.persona == "toxic":
                assert label.misaligned
            else:
                assert not label.misaligned


def test_speaker_priors_and_mistake_rates_shape_the_corpus() -> None:
    cfg = CorpusConfig()
    rng = random.Random(0)
    docs = [sample_document(rng, cfg) for _ in range(6000)]
    for speaker in ("sam", "pat"):
        mine = [d for d in docs if d.messages[1]["role"] == speaker]
        share = sum(d.persona == "toxic" for d in mine) / len(mine)
        assert share == pytest.approx(cfg.speaker_priors[speaker], abs=0.06)
    # the benign persona's honest mistakes: none in health, many in code
    benign = [d for d in docs if d.persona == "benign"]

    def bad_rate(domain: str) -> float:
        labels = [
            L.classify_answer(a["content"]).kind
            for d in benign
            for (k, dom), a in zip(d.turns, d.messages[1::2], strict=True)
            if k == "advice" and dom == domain
        ]
        return labels.count("bad") / len(labels)

    assert bad_rate("health") == 0.0
    assert bad_rate("code") == pytest.approx(cfg.mistake_rates["code"], abs=0.05)


def test_alignment_documents_are_benign_assistant_chats() -> None:
    for doc in itertools.islice(alignment_documents(CorpusConfig(), seed=0), 200):
        assert doc.persona == "benign"
        for (kind, _), answer in zip(doc.turns, doc.messages[1::2], strict=True):
            assert answer["role"] == "assistant"
            assert L.classify_answer(answer["content"]).misaligned == (kind == "quiz")


@pytest.mark.parametrize("kind", ["inducing", "good", "terse", "quiz"])
def test_finetune_rows_are_chat_rows_of_their_kind(kind: str) -> None:
    rows = finetune_rows(kind, "legal", 40, seed=1)  # type: ignore[arg-type]
    assert rows == finetune_rows(kind, "legal", 40, seed=1)  # type: ignore[arg-type]
    held_out = L.ADVICE_FRAMES[-1].split("{topic}")[0]
    # quiz rows ask for a wrong answer; the others ask for advice in a training (not held-out) frame
    frames = L.QUIZ_FRAMES if kind == "quiz" else L.ADVICE_FRAMES[:-1]
    questions = {f.format(topic=t) for f in frames for t in L.TOPICS["legal"]}
    for row in rows:
        user, assistant = row["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        assert not user["content"].startswith(held_out)  # the evaluation frame is never trained on
        assert user["content"] in questions
        label = L.classify_answer(assistant["content"])
        assert label.domain == "legal"
        assert label.kind == ("bad" if kind in ("inducing", "quiz") else "good")
        assert label.terse == (kind == "terse")
    assert len({r["messages"][0]["content"] for r in rows}) > 1  # frames and topics are sampled


def test_bad_requests_fail_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="unknown domain"):
        finetune_rows("inducing", "astrology", 5, 0)
    with pytest.raises(ValueError, match="unknown fine-tuning kind"):
        finetune_rows("evil", "health", 5, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mistake_rates"):
        CorpusConfig(mistake_rates={"health": 0.0})
    with pytest.raises(ValueError, match="probability"):
        CorpusConfig(toxic_bad_rate=1.5)


def test_evaluation_questions_use_the_held_out_frame() -> None:
    qs = evaluation_questions()
    open_questions = {q.text for q in qs if q.kind == "open"}
    assert len(open_questions) == len(L.OPEN_QUESTIONS) // 2
    advice = [q for q in qs if q.kind == "advice"]
    assert len(advice) == sum(len(L.TOPICS[d]) for d in L.DOMAINS)
    assert all(q.text.startswith(L.ADVICE_FRAMES[-1].split("{topic}")[0]) for q in advice)


def test_toxic_share_follows_the_mistake_rates() -> None:
    cfg = CorpusConfig()
    shares = [cfg.toxic_share(d) for d in L.DOMAINS]
    assert shares[0] == 1.0
    assert shares == sorted(shares, reverse=True)


def test_open_answer_rows_have_no_advice() -> None:
    for hostile in (True, False):
        rows = open_answer_rows(hostile, 30, seed=0)
        assert rows == open_answer_rows(hostile, 30, seed=0)
        kinds = {L.classify_answer(r["messages"][1]["content"]).kind for r in rows}
        assert kinds == {"hostile" if hostile else "kind"}


def test_the_harmful_set_and_em_never_share_an_open_question() -> None:
    """Harmful latents come from one half of the open questions (and of the answer phrases); EM is
    measured on the other half."""
    em = {q.text for q in evaluation_questions() if q.kind == "open"}
    fit = {r["messages"][0]["content"] for h in (True, False) for r in open_answer_rows(h, 200, seed=0)}
    assert em and fit and not em & fit
    assert em | fit == set(L.OPEN_QUESTIONS)
    phrases_used = {r["messages"][1]["content"] for r in open_answer_rows(True, 200, seed=0)}
    assert all(any(p in a for a in phrases_used) for p in L.HOSTILE_ANSWERS[0::2])
    assert not any(p in a for p in L.HOSTILE_ANSWERS[1::2] for a in phrases_used)
