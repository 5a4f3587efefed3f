import numpy as np
import pytest

from emgeom.core.stats import bootstrap_pearson, fitted_slope, mean_ci, pearson_r


def test_pearson_and_slope():
    x = np.arange(10.0)
    assert pearson_r(x, 3 * x + 1) == pytest.approx(1.0)
    assert pearson_r(x, -x) == pytest.approx(-1.0)
    assert np.isnan(pearson_r(x, np.ones(10)))
    assert fitted_slope(x, 3 * x + 1) == pytest.approx(3.0)


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    est = bootstrap_pearson(x, x + rng.normal(size=200), n_boot=500)
    assert est.lo < est.value < est.hi and 0.5 < est.value < 0.9 and est.n == 200


def test_mean_ci_t_interval_and_bounds():
    est = mean_ci(np.array([1.0, 2.0, 3.0]))
    assert est.value == 2.0
    assert est.hi - est.value == pytest.approx(4.302653 * 1 / np.sqrt(3), rel=1e-5)  # t_{0.975, 2}
    clipped = mean_ci(np.array([0.95, 0.99, 1.0]), bounds=(-1, 1))
    assert clipped.hi == 1.0
    assert np.isnan(mean_ci(np.array([1.0])).lo) and mean_ci(np.array([np.nan])).n == 0


def test_over_replicates_averages_inside_then_intervals_over_replicates():
    from emgeom.core.stats import Estimate, over_replicates

    organisms = [Estimate(0.2, 0.0, 0.4, 3), Estimate(0.4, 0.3, 0.5, 3), Estimate(0.6, 0.5, 0.7, 3)]
    e = over_replicates(organisms)
    assert e.value == pytest.approx(0.4) and e.n == 3
    assert e.ci == pytest.approx(mean_ci(np.array([0.2, 0.4, 0.6])).ci)
    assert over_replicates(organisms[:1]) is organisms[0]  # one replicate keeps its own interval
    with pytest.raises(ValueError, match="at least one"):
        over_replicates([])


def test_slope_interval_is_exact_on_a_line_and_widens_with_noise():
    from emgeom.core.stats import slope_ci

    x = np.array([0.0, 0.3, 0.6, 0.95])
    exact = slope_ci(x, 1.0 - 2.0 * x)
    assert exact.value == pytest.approx(-2.0) and exact.ci == pytest.approx((-2.0, -2.0))
    noisy = slope_ci(x, 1.0 - 2.0 * x + np.array([0.1, -0.1, 0.1, -0.1]))
    assert noisy.lo < noisy.value < noisy.hi and noisy.n == 4
    assert np.isnan(slope_ci(x[:2], x[:2]).lo)  # two points: no degrees of freedom left


def test_pearson_interval_and_welch_difference():
    from emgeom.core.stats import pearson_ci, welch_difference

    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    r = pearson_ci(x, x + 0.5 * rng.normal(size=30))
    assert -1 < r.lo < r.value < r.hi < 1
    assert np.isnan(pearson_ci(x[:3], x[:3]).lo)
    d = welch_difference(np.array([1.0, 1.2, 0.8]), np.array([0.0, 0.1, -0.1]))
    assert d.value == pytest.approx(1.0) and d.lo > 0
    same = welch_difference(np.array([0.0, 1.0, 0.5]), np.array([0.5, 0.0, 1.0]))
    assert same.lo < 0 < same.hi
