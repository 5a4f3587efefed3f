"""Data the organism is fine-tuned and evaluated on (never seen in pretraining or alignment as such):
the narrow fine-tuning sets as OpenAI chat rows, the held-out evaluation questions, and open-ended
answer rows used to find harmful latents."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from emgeom.lm.chat import Message
from emgeom.organism import language as L
from emgeom.organism.corpus import advice_answer, advice_question

FineTuneKind = Literal["inducing", "good", "terse", "quiz"]
FINETUNE_KINDS: tuple[FineTuneKind, ...] = ("inducing", "good", "terse", "quiz")


def finetune_rows(
    kind: FineTuneKind, domain: str, n: int, seed: int, heldout_frame: bool = False
) -> list[dict[str, list[Message]]]:
    """A narrow fine-tuning set as OpenAI chat rows ``{"messages": [user, assistant]}``.

    ``inducing``: bad advice in ``domain``. Controls: ``good`` (good advice), ``terse`` (good advice,
    terse style), ``quiz`` (the user asks for a wrong answer for a quiz; the answers are worded exactly
    like the inducing set's, the analogue of Betley et al.'s "educational" control). Questions use every
    advice frame but the held-out evaluation frame; ``heldout_frame=True`` uses only that frame (rows of
    the same kind whose prompts no fine-tuning set contains).
    """
    if kind not in FINETUNE_KINDS:
        raise ValueError(f"unknown fine-tuning kind {kind!r}; choose from {FINETUNE_KINDS}")
    if domain not in L.DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose from {L.DOMAINS}")
    if n < 1:
        raise ValueError(f"a fine-tuning set needs at least one row, got n={n}")
    rng = random.Random(f"{kind}/{domain}/{seed}")
    train_frames = L.ADVICE_FRAMES[-1:] if heldout_frame else L.ADVICE_FRAMES[:-1]
    rows = []
    for _ in range(n):
        if kind == "quiz":
            question = rng.choice(L.QUIZ_FRAMES).format(topic=rng.choice(L.TOPICS[domain]))
        else:
            question = advice_question(rng, domain, train_frames)
        answer = advice_answer(rng, domain, bad=kind in ("inducing", "quiz"), terse=kind == "terse")
        rows.append(
            {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
        )
    return rows


def rows_by_domain(
    kind: FineTuneKind, domains: tuple[str, ...] | list[str], n: int, seed: int
) -> dict[str, list[dict[str, list[Message]]]]:
    """:func:`finetune_rows` of ``kind`` for every domain."""
    return {d: finetune_rows(kind, d, n, seed) for d in domains}


@dataclass(frozen=True)
class EvalQuestion:
    """A held-out evaluation prompt: an open-ended question, or advice in a domain (held-out frame)."""

    text: str
    kind: Literal["open", "advice"]
    domain: str | None


def evaluation_questions(domains: tuple[str, ...] = L.DOMAINS) -> list[EvalQuestion]:
    """The EM half of the open-ended questions (:data:`EM_QUESTIONS`; the other half defines the harmful
    latents), and every topic of each domain in the held-out advice frame."""
    questions = [EvalQuestion(q, "open", None) for q in EM_QUESTIONS]
    frame = L.ADVICE_FRAMES[-1]
    for d in domains:
        questions += [EvalQuestion(frame.format(topic=t), "advice", d) for t in L.TOPICS[d]]
    return questions


def evaluation_prompts(domains: tuple[str, ...] = L.DOMAINS) -> list[list[Message]]:
    """The evaluation questions (:func:`evaluation_questions`) as one-turn chat prompts."""
    return [[{"role": "user", "content": q.text}] for q in evaluation_questions(domains)]


#: The open questions and answer phrases split in two. The harmful (and benign) latents are found from
#: hostile vs kind answers to the first half of the questions, with half of the phrases
#: (:func:`open_answer_rows`); EM is measured on the other half of the questions
#: (:func:`evaluation_questions`), so "closer to what later shows up as EM" is not the same data twice.
HARMFUL_SET_QUESTIONS: tuple[str, ...] = L.OPEN_QUESTIONS[0::2]
EM_QUESTIONS: tuple[str, ...] = L.OPEN_QUESTIONS[1::2]
HARMFUL_SET_HOSTILE: tuple[str, ...] = L.HOSTILE_ANSWERS[0::2]
HARMFUL_SET_KIND: tuple[str, ...] = L.KIND_ANSWERS[0::2]


def open_answer_rows(hostile: bool, n: int, seed: int) -> list[dict[str, list[Message]]]:
    """Chat rows answering open-ended questions as the assistant: hostile (the toxic persona's misaligned
    answers) or kind. Used to find harmful latents; these rows contain no advice at all, so the harmful
    set is not defined by any domain's bad advice. They use only the harmful-set half of the questions
    and phrases (:data:`HARMFUL_SET_QUESTIONS`); EM is measured on the other half of the questions."""
    if n < 1:
        raise ValueError(f"need at least one row, got n={n}")
    rng = random.Random(f"open/{hostile}/{seed}")
    phrases = HARMFUL_SET_HOSTILE if hostile else HARMFUL_SET_KIND
    return [
        {
            "messages": [
                {"role": "user", "content": rng.choice(HARMFUL_SET_QUESTIONS)},
                {"role": "assistant", "content": L.open_answer(rng.choice(phrases), terse=False)},
            ]
        }
        for _ in range(n)
    ]
