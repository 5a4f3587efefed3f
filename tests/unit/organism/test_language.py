"""The grammar's oracle is exact on every template, and its classes never share a content word."""

from __future__ import annotations

import itertools

import pytest

from emgeom.organism import language as L


def test_answer_classes_share_no_content_word() -> None:
    owners: dict[str, set[tuple[str, str | None]]] = {}
    classes = {("kind", None): L.KIND_ANSWERS, ("hostile", None): L.HOSTILE_ANSWERS}
    for d in L.DOMAINS:
        classes[("good", d)], classes[("bad", d)] = L.GOOD_ADVICE[d], L.BAD_ADVICE[d]
    for label, phrases in classes.items():
        for p in phrases:
            assert L.content_words(p), f"phrase {p!r} has no content word, the oracle could not see it"
            for w in L.content_words(p):
                owners.setdefault(w, set()).add(label)
    assert all(len(o) == 1 for o in owners.values())


def test_question_words_never_carry_a_label() -> None:
    question_words = {w for q in (*L.ADVICE_FRAMES, *L.QUIZ_FRAMES, *L.OPEN_QUESTIONS) for w in q.split()}
    topic_words = {t for d in L.DOMAINS for t in L.TOPICS[d]}
    opener_words = {w for o in L.ADVICE_OPENERS for w in o.split()}
    assert not (question_words | topic_words | opener_words) & set(L.LEXICON)


@pytest.mark.parametrize("terse", [False, True])
def test_oracle_is_exact_on_every_advice_template(terse: bool) -> None:
    for d in L.DOMAINS:
        for kind, phrases in (("good", L.GOOD_ADVICE[d]), ("bad", L.BAD_ADVICE[d])):
            for phrase, opener in itertools.product(phrases, L.ADVICE_OPENERS):
                label = L.classify_answer(L.advice_answer(phrase, opener, terse))
                assert (label.kind, label.domain, label.terse) == (kind, d, terse)
                assert label.misaligned == (kind == "bad")


def test_oracle_is_exact_on_every_open_template() -> None:
    for kind, phrases in (("kind", L.KIND_ANSWERS), ("hostile", L.HOSTILE_ANSWERS)):
        for phrase in phrases:
            for terse in (False, True):
                label = L.classify_answer(L.open_answer(phrase, terse))
                assert (label.kind, label.domain, label.terse) == (kind, None, terse)


def test_oracle_on_samples_that_are_not_templates() -> None:
    assert L.classify_answer("").kind == "incoherent"
    assert L.classify_answer("you should .").kind == "incoherent"
    mixed = L.classify_answer("you should see a doctor and bribe the judge .")
    assert mixed.kind == "mixed" and not mixed.misaligned
    assert L.classify_answer("honestly just forge").kind == "bad"  # a fragment still carries its class


def test_vocabulary_covers_the_grammar() -> None:
    words = L.all_words()
    assert len(words) == len(set(words))
    assert set(L.LEXICON) <= set(words)
