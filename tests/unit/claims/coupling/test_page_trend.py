"""Page's trend test (emgeom.core.stats.page_trend) on cases computed by hand: the L statistic, its exact
p from every permutation of the ranks within each block, ties, missing blocks, and the Monte-Carlo
route; and agreement with scipy's exact p where scipy's (no ties, at least 3 treatments) applies."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from emgeom.core.stats import page_trend


def test_one_block_of_three_by_hand() -> None:
    # the six orderings of ranks (1, 2, 3) give sum j * rank_j = 14, 13, 13, 11, 11, 10
    perfect = page_trend(np.array([[0.1, 0.5, 0.9]]))
    assert perfect.statistic == 14 and perfect.maximum == 14 and perfect.exact
    assert perfect.p == pytest.approx(1 / 6)
    one_swap = page_trend(np.array([[0.5, 0.1, 0.9]]))  # ranks (2, 1, 3): L = 2 + 2 + 9
    assert one_swap.statistic == 13 and one_swap.p == pytest.approx(3 / 6)
    reversed_ = page_trend(np.array([[0.9, 0.5, 0.1]]))
    assert reversed_.statistic == 10 and reversed_.p == pytest.approx(1.0)


def test_perfectly_ordered_blocks_give_the_largest_l_and_the_smallest_p() -> None:
    n, k = 3, 4
    values = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.1, 0.2, 0.3], [-5.0, 0.0, 5.0, 9.0]])
    t = page_trend(values)
    assert (t.n_blocks, t.k) == (n, k)
    assert t.statistic == t.maximum == n * (1 + 4 + 9 + 16)  # 90
    assert t.p == pytest.approx(1 / math.factorial(k) ** n)  # only the identity in every block


def test_one_adjacent_swap_by_hand() -> None:
    # the third block has its last two treatments swapped: its share is 29, not 30 (L = 89). L >= 89
    # happens when every block is in order (1 way) or exactly one block has one adjacent pair swapped
    # (3 blocks x 3 adjacent pairs), out of 24**3 equally likely orderings.
    values = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 4.0, 3.0]])
    t = page_trend(values)
    assert t.statistic == 89
    assert t.p == pytest.approx(10 / 24**3)


def test_ties_are_conditioned_on_and_a_missing_block_is_left_out() -> None:
    # a block with every value tied adds 2 * (1 + 2 + 3) = 12 whatever the permutation: it moves L but
    # not p; a block with a NaN is dropped
    ordered = np.array([[1.0, 2.0, 3.0]] * 3)
    with_ties = np.vstack([ordered, [[0.0, 0.0, 0.0]], [[1.0, np.nan, 2.0]]])
    t = page_trend(with_ties)
    assert t.n_blocks == 4
    assert t.statistic == 3 * 14 + 12
    assert t.p == pytest.approx(1 / 6**3)
    # a partial tie: ranks (1.5, 1.5, 3) take 3 distinct orderings; L = 1.5 + 3 + 9 = 13.5 is the largest
    partial = page_trend(np.array([[0.0, 0.0, 1.0]]))
    assert partial.statistic == pytest.approx(13.5) and partial.p == pytest.approx(1 / 3)


def test_all_tied_gives_p_one_and_nothing_to_test_gives_nan() -> None:
    assert page_trend(np.zeros((4, 3))).p == pytest.approx(1.0)
    assert math.isnan(page_trend(np.empty((0, 3))).p)
    assert math.isnan(page_trend(np.ones((3, 1))).statistic)
    with pytest.raises(ValueError, match="blocks, treatments"):
        page_trend(np.ones(4))


@pytest.mark.parametrize(("n", "k", "seed"), [(2, 3, 0), (3, 4, 1), (5, 4, 2), (2, 6, 3), (6, 3, 4)])
def test_the_exact_p_agrees_with_scipy_without_ties(n: int, k: int, seed: int) -> None:
    values = np.random.default_rng(seed).normal(size=(n, k))
    ours, theirs = page_trend(values), sps.page_trend_test(values, method="exact")
    assert ours.statistic == pytest.approx(theirs.statistic)
    assert ours.p == pytest.approx(theirs.pvalue)


def test_monte_carlo_when_the_orderings_are_too_many() -> None:
    ordered = np.tile(np.arange(9.0), (3, 1))  # 9! orderings per block: above the exact limit
    t = page_trend(ordered, n_permutations=999, seed=0)
    assert not t.exact and t.statistic == t.maximum
    assert t.p == pytest.approx(1 / 1000)  # no permutation reaches the maximum
    noise = page_trend(np.random.default_rng(0).normal(size=(3, 5)), n_permutations=4000, exact_limit=10)
    exact = page_trend(np.random.default_rng(0).normal(size=(3, 5)))
    assert not noise.exact and exact.exact
    assert noise.p == pytest.approx(exact.p, abs=0.03)
