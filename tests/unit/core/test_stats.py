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
