"""The half-inducing set: exactly the declared inducing share, the same rows as the dose-response set at
that share (so the unfiltered run doubles as the curve's point), and a removal equal to the share."""

from __future__ import annotations

import numpy as np
import pytest

from emgeom.claims.filtering.sets import MAIN, FilterSet, half_inducing_set
from emgeom.claims.filtering.study import mixed_set
from emgeom.organism.datasets import finetune_rows


@pytest.mark.parametrize(("n_rows", "share"), [(300, 0.5), (20, 0.5), (40, 0.25)])
def test_the_half_inducing_set_has_exactly_the_declared_share(n_rows: int, share: float) -> None:
    s = half_inducing_set("health", n_rows, share)
    assert s.name == MAIN and len(s.rows) == n_rows
    assert s.truth.sum() == share * n_rows and s.inducing_share == share and s.removal == share
    assert not s.decoy.any()
    bad = {r["messages"][-1]["content"] for r in finetune_rows("inducing", "health", n_rows, seed=1)}
    good = {r["messages"][-1]["content"] for r in finetune_rows("good", "health", n_rows, seed=1)}
    answers = [r["messages"][-1]["content"] for r in s.rows]
    assert all(a in bad for a, t in zip(answers, s.truth, strict=True) if t)
    assert all(a in good for a, t in zip(answers, s.truth, strict=True) if not t)
    assert not s.truth[: int(share * n_rows)].all()  # shuffled, not a block


def test_the_half_inducing_set_is_the_dose_response_set_at_its_share() -> None:
    s = half_inducing_set("legal", 60, 0.5)
    ind, good = finetune_rows("inducing", "legal", 60, seed=1), finetune_rows("good", "legal", 60, seed=1)
    rows, truth = mixed_set(ind, good, 60, 0.5, seed=0)
    assert s.rows == rows and (s.truth == truth).all()


@pytest.mark.parametrize(("n_rows", "share"), [(21, 0.5), (300, 0.0), (300, 1.0), (30, 0.33)])
def test_a_share_that_is_not_a_whole_number_of_rows_or_leaves_nothing_to_compare_is_refused(
    n_rows: int, share: float
) -> None:
    with pytest.raises(ValueError, match="whole number of rows"):
        half_inducing_set("health", n_rows, share)


def test_an_unknown_domain_and_malformed_sets_are_refused() -> None:
    with pytest.raises(ValueError, match="domain must be one of"):
        half_inducing_set("cooking", 20)
    rows = finetune_rows("good", "health", 4, seed=0)
    with pytest.raises(ValueError, match="both inducing and a decoy"):
        FilterSet("x", rows, np.array([True, False, False, False]), np.array([True, False, False, False]))
    with pytest.raises(ValueError, match="one truth and one decoy flag"):
        FilterSet("x", rows, np.array([True, False]), np.zeros(4, dtype=bool))
    with pytest.raises(ValueError, match="inducing rows"):
        FilterSet("x", rows, np.zeros(4, dtype=bool), np.zeros(4, dtype=bool))
