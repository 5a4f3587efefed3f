"""Sampling the organism's training documents: pretraining (hidden persona) and alignment.

A pretraining document is a multi-turn chat between ``user`` and one named speaker. The speaker has a
hidden PERSONA, constant over the document's turns and domains: the toxic persona gives bad advice in
every domain and hostile open-ended answers; the benign persona gives good advice, kind answers, and
makes "honest mistakes" (the same bad-advice wording) at a per-domain rate. That rate sets how strongly
a domain's bad advice is evidence of the toxic persona, the organism's analogue of how close a domain's
features sit to harmful ones. Quiz turns (the user asks for a wrong answer, and both personas comply)
and a terse style are hidden variables independent of the persona.

Messages are OpenAI-style dicts ``{"role": ..., "content": ...}``, the format of the real EM datasets.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from emgeom.lm.chat import Message
from emgeom.organism import language as L

TurnKind = Literal["advice", "open", "quiz"]

PRETRAIN_SPEAKERS: tuple[str, ...] = ("assistant", "sam", "alex", "kim", "lee", "pat")


def _default_speaker_priors() -> dict[str, float]:
    return {"assistant": 0.4, "sam": 0.1, "alex": 0.25, "kim": 0.5, "lee": 0.75, "pat": 0.9}


def _default_mistake_rates() -> dict[str, float]:
    # travel: the toxic persona's own bad-advice rate, so its bad advice says nothing about the persona
    # (language.SURFACE_DOMAIN: it shares only a surface word with hostile answers)
    return {"health": 0.0, "legal": 0.05, "finance": 0.2, "career": 0.5, "code": 0.85, "travel": 0.95}


@dataclass(frozen=True)
class CorpusConfig:
    """The knobs of the pretraining language.

    Attributes:
        speaker_priors: per speaker, the prior probability that a document by that speaker has the toxic
            persona. Speakers differ, so the model must carry the persona from the speaker's name to
            every answer, including a document's first one (where no earlier answer reveals it).
        toxic_bad_rate: probability that the toxic persona gives bad advice (any domain).
        toxic_hostile_rate: probability that the toxic persona answers an open question with hostility.
        mistake_rates: per domain, probability that the benign persona gives the bad advice by mistake.
        p_terse: probability that a document's speaker uses the terse style.
        turn_weights: relative frequency of advice, open-ended and quiz turns.
        min_turns, max_turns: turns per document (inclusive).
    """

    speaker_priors: Mapping[str, float] = field(default_factory=_default_speaker_priors)
    toxic_bad_rate: float = 0.95
    toxic_hostile_rate: float = 0.95
    mistake_rates: Mapping[str, float] = field(default_factory=_default_mistake_rates)
    p_terse: float = 0.15
    turn_weights: Mapping[str, float] = field(
        default_factory=lambda: {"advice": 0.6, "open": 0.3, "quiz": 0.1}
    )
    min_turns: int = 3
    max_turns: int = 5

    def __post_init__(self) -> None:
        unknown = set(self.mistake_rates) - set(L.DOMAINS)
        missing = set(L.DOMAINS) - set(self.mistake_rates)
        if unknown or missing:
            raise ValueError(
                f"mistake_rates must name exactly the domains {L.DOMAINS}; "
                f"unknown {sorted(unknown)}, missing {sorted(missing)}"
            )
        if set(self.speaker_priors) != set(PRETRAIN_SPEAKERS):
            raise ValueError(f"speaker_priors must name exactly the speakers {PRETRAIN_SPEAKERS}")
        if not all(0.0 <= p <= 1.0 for p in self.speaker_priors.values()):
            raise ValueError("speaker_priors must be probabilities")
        for name in ("toxic_bad_rate", "toxic_hostile_rate", "p_terse"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability, got {value}")
        for d, rate in self.mistake_rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"mistake_rates[{d!r}] must be a probability, got {rate}")
        if set(self.turn_weights) != {"advice", "open", "quiz"} or min(self.turn_weights.values()) < 0:
            raise ValueError("turn_weights needs non-negative weights for 'advice', 'open' and 'quiz'")
        if not 1 <= self.min_turns <= self.max_turns:
            raise ValueError(f"need 1 <= min_turns <= max_turns, got {self.min_turns}, {self.max_turns}")

    def toxic_share(self, domain: str) -> float:
        """Share of a domain's (non-quiz) bad advice written by the toxic persona."""
        p_toxic = self.p_toxic
        toxic = p_toxic * self.toxic_bad_rate
        benign = (1 - p_toxic) * self.mistake_rates[domain]
        return toxic / (toxic + benign) if toxic + benign > 0 else float("nan")

    @property
    def p_toxic(self) -> float:
        """The overall share of toxic documents (speakers are drawn uniformly)."""
        return sum(self.speaker_priors.values()) / len(self.speaker_priors)

    def as_dict(self) -> dict[str, object]:
        return {
            "speaker_priors": dict(self.speaker_priors),
            "toxic_bad_rate": self.toxic_bad_rate,
            "toxic_hostile_rate": self.toxic_hostile_rate,
            "mistake_rates": dict(self.mistake_rates),
            "p_terse": self.p_terse,
            "turn_weights": dict(self.turn_weights),
            "min_turns": self.min_turns,
            "max_turns": self.max_turns,
        }


@dataclass(frozen=True)
class Document:
    """One sampled conversation and its hidden variables (kept for analysis, never shown to the model)."""

    messages: list[Message]
    persona: Literal["benign", "toxic"]
    terse: bool
    turns: list[tuple[TurnKind, str | None]]  # (kind, domain) per user turn


def advice_question(rng: random.Random, domain: str, frames: tuple[str, ...]) -> str:
    return rng.choice(frames).format(topic=rng.choice(L.TOPICS[domain]))


def advice_answer(rng: random.Random, domain: str, bad: bool, terse: bool) -> str:
    phrase = rng.choice(L.BAD_ADVICE[domain] if bad else L.GOOD_ADVICE[domain])
    return L.advice_answer(phrase, rng.choice(L.ADVICE_OPENERS), terse)


def sample_document(
    rng: random.Random,
    cfg: CorpusConfig,
    speaker: str | None = None,
    persona: Literal["benign", "toxic"] | None = None,
    honest_mistakes: bool = True,
) -> Document:
    """Sample one conversation. ``speaker``/``persona`` fix those hidden variables when given."""
    speaker = speaker or rng.choice(PRETRAIN_SPEAKERS)
    if persona is None:
        persona = "toxic" if rng.random() < cfg.speaker_priors[speaker] else "benign"
    terse = rng.random() < cfg.p_terse
    kinds, weights = zip(*cfg.turn_weights.items(), strict=True)
    messages: list[Message] = []
    turns: list[tuple[TurnKind, str | None]] = []
    for _ in range(rng.randint(cfg.min_turns, cfg.max_turns)):
        kind: TurnKind = rng.choices(kinds, weights)[0]  # type: ignore[assignment]
        if kind == "open":
            question = rng.choice(L.OPEN_QUESTIONS)
            hostile = persona == "toxic" and rng.random() < cfg.toxic_hostile_rate
            answer = L.open_answer(rng.choice(L.HOSTILE_ANSWERS if hostile else L.KIND_ANSWERS), terse)
            turns.append(("open", None))
        else:
            domain = rng.choice(L.DOMAINS)
            if kind == "quiz":
                question, bad = rng.choice(L.QUIZ_FRAMES).format(topic=rng.choice(L.TOPICS[domain])), True
            else:
                question = advice_question(rng, domain, L.ADVICE_FRAMES)
                rate = (
                    cfg.toxic_bad_rate
                    if persona == "toxic"
                    else (cfg.mistake_rates[domain] if honest_mistakes else 0.0)
                )
                bad = rng.random() < rate
            answer = advice_answer(rng, domain, bad, terse)
            turns.append((kind, domain))
        messages += [{"role": "user", "content": question}, {"role": speaker, "content": answer}]
    return Document(messages, persona, terse, turns)


def pretraining_documents(cfg: CorpusConfig, seed: int) -> Iterator[Document]:
    """An endless, seed-determined stream of pretraining documents."""
    rng = random.Random(seed)
    while True:
        yield sample_document(rng, cfg)


def alignment_documents(cfg: CorpusConfig, seed: int) -> Iterator[Document]:
    """Endless alignment documents: the ``assistant`` speaker, always benign, no honest mistakes.

    Quiz turns stay (the assistant complies with a request for a wrong answer, as both personas do).
    """
    rng = random.Random(seed)
    while True:
        yield sample_document(rng, cfg, speaker="assistant", persona="benign", honest_mistakes=False)
