"""Tests of tsmetrics.control_charts (standardize, CUSUM and EWMA charts, run lengths).

Run lengths are checked against Montgomery's Table 9.3 (CUSUM), Lucas & Saccucci (1990) (EWMA)
and independent integral-equation solutions; simulation tolerances are in Monte Carlo SEs.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from tolerances import within

from tsmetrics.control_charts import (
    CusumChart,
    EwmaChart,
    average_run_length,
    cusum,
    ewma,
    poisson_normal_scores,
    standardize,
)

FloatArray = npt.NDArray[np.float64]

# --------------------------------------------------------------------------------------------
# Independent ARL oracles (integral equations solved by Gauss-Legendre quadrature, the method of
# Crowder 1987 / Lucas & Saccucci 1990), used to check the simulations beyond rounded tables.
# --------------------------------------------------------------------------------------------


def _ewma_arl_integral(lam: float, big_l: float, delta: float, limits: str, n: int = 120) -> float:
    """Zero-state ARL of a two-sided EWMA chart; exact limits by propagating the density."""
    x, w = np.polynomial.legendre.leggauss(n)
    c_inf = big_l * math.sqrt(lam / (2.0 - lam))

    def kernel(frm: FloatArray, to: FloatArray) -> FloatArray:
        out: FloatArray = stats.norm.pdf((to[None, :] - (1.0 - lam) * frm[:, None]) / lam - delta)
        return out / lam

    u, wu = c_inf * x, c_inf * w
    remaining = np.linalg.solve(np.eye(n) - kernel(u, u) * wu[None, :], np.ones(n))
    if limits == "asymptotic":
        return float(1.0 + (stats.norm.pdf(u / lam - delta) / lam * wu) @ remaining)
    arl, t = 1.0, 1
    c = c_inf * math.sqrt(1.0 - (1.0 - lam) ** 2)
    v, wv = c * x, c * w
    density = stats.norm.pdf(v / lam - delta) / lam  # alive sub-density at t = 1
    while (1.0 - lam) ** (2 * t) > 1e-15:
        arl += float(density @ wv)  # P(RL > t)
        t += 1
        c = c_inf * math.sqrt(1.0 - (1.0 - lam) ** (2 * t))
        v_next, wv_next = c * x, c * w
        density = (density * wv) @ kernel(v, v_next)
        v, wv = v_next, wv_next
    # Limits have converged: add E[sum_{j >= t} 1{RL > j}] with the asymptotic solution.
    remaining_v = 1.0 + (kernel(v, u) * wu[None, :]) @ remaining
    return float(arl + (density * wv) @ remaining_v)


def _cusum_one_sided_arl_integral(k: float, h: float, delta: float, n: int = 120) -> float:
    """Zero-state ARL of the upper CUSUM (Page's integral equation with the atom at 0)."""
    x, w = np.polynomial.legendre.leggauss(n)
    v, wv = h * (x + 1.0) / 2.0, h * w / 2.0
    nodes = np.concatenate([[0.0], v])
    mat = np.empty((n + 1, n + 1))
    mat[:, 0] = stats.norm.cdf(-nodes + k - delta)
    mat[:, 1:] = stats.norm.pdf(v[None, :] - nodes[:, None] + k - delta) * wv[None, :]
    sol = np.linalg.solve(np.eye(n + 1) - mat, np.ones(n + 1))
    return float(sol[0])


# --------------------------------------------------------------------------------------------
# standardize, cusum, ewma
# --------------------------------------------------------------------------------------------


def _cusum_naive(z: list[float], k: float) -> tuple[list[float], list[float]]:
    up, lo, cp, cm = [], [], 0.0, 0.0
    for x in z:
        cp = max(0.0, x - k + cp)
        cm = max(0.0, -x - k + cm)
        up.append(cp)
        lo.append(cm)
    return up, lo


def test_standardize() -> None:
    z = standardize([0.012, 0.008], [0.001, 0.002], 0.01)
    np.testing.assert_allclose(z, [2.0, -1.0])
    z2 = standardize([0.012], [0.003], 0.01, between_day_variance=16e-6)
    np.testing.assert_allclose(z2, [0.4])
    with pytest.raises(ValueError, match="std_errors: expected positive values"):
        standardize([0.01], [0.0], 0.01)
    with pytest.raises(ValueError, match="estimates: expected finite values"):
        standardize([np.nan], [0.1], 0.01)
    with pytest.raises(ValueError, match="target: expected a shape broadcastable"):
        standardize([0.01, 0.02], [0.1, 0.1], [0.0, 0.0, 0.0])


def test_cusum_hand_worked() -> None:
    # k = 0.5, h = 2: C+ = .5, 2.0, .5, .5, 3.0 (first > 2 at index 4; 2.0 is not > 2)
    #                 C- = 0, 0, .5, 0, 0
    res = cusum([1.0, 2.0, -1.0, 0.5, 3.0], k=0.5, h=2.0)
    np.testing.assert_allclose(res.upper, [0.5, 2.0, 0.5, 0.5, 3.0])
    np.testing.assert_allclose(res.lower, [0.0, 0.0, 0.5, 0.0, 0.0])
    assert int(res.first_signal) == 4
    assert res.signals.tolist() == [False, False, False, False, True]
    low = cusum([-1.0, -2.0, -1.5, 5.0], k=0.5, h=2.0)
    assert int(low.first_signal) == 2  # C- = .5, 2.0, 3.0
    assert int(cusum([-1.0, -2.0, -1.5], k=0.5, h=2.0, sides="upper").first_signal) == -1
    assert int(cusum([0.0, 0.1], k=0.5, h=4.0).first_signal) == -1


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=80),
    st.floats(0.0, 1.5),
    st.floats(0.1, 6.0),
)
def test_cusum_matches_the_recursion(z: list[float], k: float, h: float) -> None:
    res = cusum(z, k=k, h=h)
    up, lo = _cusum_naive(z, k)
    np.testing.assert_allclose(res.upper, up, atol=1e-9)
    np.testing.assert_allclose(res.lower, lo, atol=1e-9)
    assert np.all(res.upper >= 0.0) and np.all(res.lower >= 0.0)
    sig = [i for i, (a, b) in enumerate(zip(up, lo, strict=True)) if a > h + 1e-9 or b > h + 1e-9]
    sig_loose = [
        i for i, (a, b) in enumerate(zip(up, lo, strict=True)) if a > h - 1e-9 or b > h - 1e-9
    ]
    first = int(res.first_signal)
    if first == -1:
        assert not sig
    else:  # equal to the naive one up to rounding exactly at h
        assert (sig_loose[0] if sig_loose else -1) <= first <= (sig[0] if sig else 10**9)


def test_cusum_and_ewma_vectorised_over_series() -> None:
    rng = np.random.default_rng(8)
    z = rng.standard_normal((5, 60)) + 0.7
    c = cusum(z, 0.5, 4.0)
    e = ewma(z, 0.2, 2.86)
    assert c.first_signal.shape == (5,) and e.first_signal.shape == (5,)
    for i in range(5):
        ci = cusum(z[i], 0.5, 4.0)
        np.testing.assert_allclose(c.upper[i], ci.upper)
        assert c.first_signal[i] == int(ci.first_signal)
        ei = ewma(z[i], 0.2, 2.86)
        np.testing.assert_allclose(e.statistic[i], ei.statistic)
        assert e.first_signal[i] == int(ei.first_signal)


def test_ewma_matches_the_recursion_and_exact_limits() -> None:
    rng = np.random.default_rng(9)
    z = rng.standard_normal(50)
    lam, big_l = 0.1, 2.7
    res = ewma(z, lam, big_l)
    w, naive = 0.0, []
    for x in z:
        w = lam * x + (1 - lam) * w
        naive.append(w)
    np.testing.assert_allclose(res.statistic, naive, rtol=1e-12, atol=1e-15)
    t = np.arange(1, 51)
    exact = big_l * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * t)))
    np.testing.assert_allclose(res.limit, exact, rtol=1e-12)
    assert res.limit[0] == pytest.approx(big_l * lam)  # sd(w_1) = lam
    asym = ewma(z, lam, big_l, limits="asymptotic")
    np.testing.assert_allclose(asym.limit, big_l * math.sqrt(lam / (2 - lam)))
    manual = np.flatnonzero(np.abs(res.statistic) > res.limit)
    assert int(res.first_signal) == (manual[0] if manual.size else -1)
    # lam = 1 is a Shewhart chart with limits +-L.
    shewhart = ewma([0.5, -2.9, 3.1], 1.0, 3.0)
    np.testing.assert_allclose(shewhart.statistic, [0.5, -2.9, 3.1])
    assert int(shewhart.first_signal) == 2
    assert int(ewma([0.5, -2.9, 3.1], 1.0, 2.8, sides="upper").first_signal) == 2
    assert int(ewma([0.5, -2.9, 3.1], 1.0, 2.8, sides="lower").first_signal) == 1


def test_ewma_exact_limits_give_a_constant_false_alarm_rate() -> None:
    """Exact limits: P(|w_t| > c_t) = 2 (1 - Phi(L)) at every t under the null."""
    rng = np.random.default_rng(10)
    n, horizon, big_l = 40_000, 40, 2.0
    res = ewma(rng.standard_normal((n, horizon)), 0.1, big_l)
    outside = res.signals.mean(axis=0)  # per time point
    nominal = 2 * float(stats.norm.sf(big_l))
    mc_se = math.sqrt(nominal * (1 - nominal) / n)
    assert np.all(np.abs(outside - nominal) <= 4 * mc_se)
    asym = ewma(rng.standard_normal((n, horizon)), 0.1, big_l, limits="asymptotic")
    assert asym.signals[:, 0].mean() < nominal / 10  # asymptotic limits too wide early on


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: cusum([1.0, np.nan]), "z: expected finite values"),
        (lambda: cusum([]), "z: expected at least 1 time point"),
        (lambda: cusum(1.0), "z: expected an array with >= 1 dimension"),
        (lambda: cusum([1.0], k=-0.1), r"k: expected a number in \[0"),
        (lambda: cusum([1.0], h=0.0), r"h: expected a number in \(0"),
        (lambda: cusum([1.0], sides="up"), "sides: expected one of"),  # type: ignore[arg-type]
        (lambda: ewma([1.0], lam=0.0), r"lam: expected a number in \(0.0, 1.0\]"),
        (lambda: ewma([1.0], lam=1.5), r"lam: expected a number in \(0.0, 1.0\]"),
        (lambda: ewma([1.0], L=-1.0), r"L: expected a number in \(0"),
        (lambda: ewma([1.0], limits="steady"), "limits: expected one of"),  # type: ignore[arg-type]
        (lambda: CusumChart(h=math.inf), "h: expected a finite number"),
    ],
)
def test_chart_validation(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


# --------------------------------------------------------------------------------------------
# average_run_length vs Montgomery Table 9.3 (CUSUM), Table 9.11 / Lucas & Saccucci (EWMA)
# --------------------------------------------------------------------------------------------

# Tolerance: 4 Monte Carlo SEs (sd(RL) / sqrt(n_sims), estimated from the same simulation) plus
# half a unit of the table's last printed digit.


@pytest.mark.parametrize(
    ("h", "shift", "table", "slack", "n_sims"),
    [
        (4.0, 0.0, 168.0, 0.5, 20_000),  # SE ~ 1.2 -> tolerance ~ 5 (3%)
        (5.0, 0.0, 465.0, 0.5, 20_000),  # SE ~ 3.3 -> tolerance ~ 13.6 (3%)
        (4.0, 1.0, 8.38, 0.005, 20_000),  # SE ~ 0.033 -> tolerance ~ 0.14
        (5.0, 1.0, 10.4, 0.05, 20_000),  # SE ~ 0.04 -> tolerance ~ 0.21
    ],
)
def test_cusum_arl_matches_montgomery_table_9_3(
    h: float, shift: float, table: float, slack: float, n_sims: int
) -> None:
    rng = np.random.default_rng(int(h * 10 + shift))
    est = average_run_length(CusumChart(k=0.5, h=h), shift, n_sims, horizon=200_000, rng=rng)
    assert est.n_censored == 0 and est.n_sims == n_sims
    within(est.arl, table, est.std_error, slack=slack)
    assert est.std_error == pytest.approx(est.sdrl / math.sqrt(n_sims))


def test_one_sided_cusum_arl_matches_integral_equation() -> None:
    # Upper CUSUM, k = 0.5, h = 4: ARL0 = 335.4 (twice the two-sided value, 168).
    oracle = _cusum_one_sided_arl_integral(0.5, 4.0, 0.0)
    assert oracle == pytest.approx(335.37, abs=0.05)
    assert _cusum_one_sided_arl_integral(0.5, 4.0, 1.0) == pytest.approx(8.38, abs=0.005)
    rng = np.random.default_rng(41)
    est = average_run_length(CusumChart(0.5, 4.0, sides="upper"), 0.0, 10_000, rng=rng)
    within(est.arl, oracle, est.std_error)


@pytest.mark.parametrize(
    ("big_l", "shift", "table"),
    [
        (2.814, 0.0, 500.0),  # Montgomery Table 9.11 (Lucas & Saccucci 1990), lam = 0.10
        (2.814, 1.0, 10.3),
    ],
)
def test_ewma_arl_matches_lucas_saccucci(big_l: float, shift: float, table: float) -> None:
    oracle = _ewma_arl_integral(0.1, big_l, shift, "asymptotic")
    assert oracle == pytest.approx(table, abs=0.5 if shift == 0 else 0.05)
    rng = np.random.default_rng(int(100 * big_l + shift))
    est = average_run_length(EwmaChart(0.1, big_l, limits="asymptotic"), shift, 20_000, rng=rng)
    assert est.n_censored == 0
    within(est.arl, table, est.std_error, slack=0.5 if shift == 0 else 0.05)
    within(est.arl, oracle, est.std_error)


def test_ewma_arl_with_l_2_7_is_about_370_not_500() -> None:
    # lam = 0.1 with L = 2.7 is the common textbook example, but its ARL0 is ~369, not 500
    # (L = 2.814 gives 500). Checked against the integral-equation value.
    oracle = _ewma_arl_integral(0.1, 2.7, 0.0, "asymptotic")
    assert oracle == pytest.approx(369.0, abs=0.5)
    est = average_run_length(
        EwmaChart(0.1, 2.7, limits="asymptotic"), 0.0, 20_000, rng=np.random.default_rng(27)
    )
    within(est.arl, oracle, est.std_error)


@pytest.mark.parametrize(("big_l", "shift"), [(2.814, 0.0), (2.814, 1.0)])
def test_ewma_exact_limits_arl_matches_density_propagation(big_l: float, shift: float) -> None:
    # Exact limits: narrower at the start -> earlier false alarms (ARL0 486 instead of 500) and
    # faster detection of a shift present from the start (8.2 instead of 10.3).
    oracle = _ewma_arl_integral(0.1, big_l, shift, "exact")
    asym = _ewma_arl_integral(0.1, big_l, shift, "asymptotic")
    assert oracle < asym
    rng = np.random.default_rng(int(1000 * big_l + shift))
    est = average_run_length(EwmaChart(0.1, big_l), shift, 20_000, rng=rng)
    within(est.arl, oracle, est.std_error)


def test_average_run_length_censoring_reproducibility_and_validation() -> None:
    chart = CusumChart(0.5, 5.0)
    short = average_run_length(chart, 0.0, 500, horizon=50, rng=np.random.default_rng(1))
    assert short.n_censored > 400 and short.arl <= 50
    a = average_run_length(chart, 0.5, 300, rng=np.random.default_rng(2))
    b = average_run_length(chart, 0.5, 300, rng=np.random.default_rng(2))
    assert a == b
    with pytest.raises(ValueError, match="chart: expected a CusumChart or an EwmaChart"):
        average_run_length("cusum", rng=np.random.default_rng(0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rng: expected a numpy.random.Generator"):
        average_run_length(chart, rng=np.random.RandomState(0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_sims: expected an integer >= 2"):
        average_run_length(chart, 0.0, 1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="horizon: expected an integer >= 1"):
        average_run_length(chart, 0.0, 10, 0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="shift: expected a finite number"):
        average_run_length(chart, math.nan, 10, rng=np.random.default_rng(0))


# --------------------------------------------------------------------------------------------
# Normal scores of rare-event estimates
# --------------------------------------------------------------------------------------------


def test_poisson_normal_scores_are_the_mid_p_at_integer_counts() -> None:
    """At ``x = k w`` the score's probability is within 0.04 of the exact mid-p
    ``P(K < k) + P(K = k) / 2`` of ``K ~ Poisson(lam)`` for ``lam >= 0.7`` (0.01 from 5 on), and
    a day without an event is close to ``Phi^-1(exp(-lam) / 2)``."""
    for lam, tol in ((0.7, 0.04), (2.0, 0.025), (5.0, 0.01), (50.0, 0.002)):
        weight = 3e-4
        k = np.arange(0, int(4 * lam + 10))
        z = poisson_normal_scores(k * weight, lam * weight, lam * weight * weight)
        mid_p = stats.poisson.cdf(k - 1, lam) + stats.poisson.pmf(k, lam) / 2
        assert np.max(np.abs(stats.norm.cdf(z) - mid_p)) < tol, lam
        assert np.all(np.diff(z) > 0)  # strictly increasing in the count
    z0 = poisson_normal_scores([0.0], 0.7, 0.7)[0]
    assert z0 == pytest.approx(stats.norm.ppf(math.exp(-0.7) / 2), abs=0.05)


def test_poisson_normal_scores_tend_to_the_linear_standardization() -> None:
    """With ``lam = 1e6`` events the scores are the linear z up to the skewness correction
    ``(z^2 - 1) / (6 sqrt(lam))`` (Cornish-Fisher), 0.004 at ``z = 5``."""
    z_linear = np.array([-2.0, 0.0, 2.0, 5.0])
    x = 0.01 + 1e-5 * z_linear
    z = poisson_normal_scores(x, 0.01, 1e-10)  # lam = mean^2 / variance = 1e6
    np.testing.assert_allclose(z, z_linear, atol=5e-3)
    assert (
        poisson_normal_scores([-1.0], 0.01, 1e-8)[0] == poisson_normal_scores([0.0], 0.01, 1e-8)[0]
    )
    far = poisson_normal_scores([1.0], 1e-4, 1e-10)  # 1e4 standard deviations above
    assert np.isfinite(far).all() and far[0] > 30


@pytest.mark.parametrize("lam", [2.0, 5.0, 20.0])
def test_poisson_normal_scores_of_poisson_counts_are_standard_normal(lam: float) -> None:
    """Scaled Poisson counts (the model): scores with mean 0 and sd 1 within 0.02, and upper
    tails P(z > 2), P(z > 3) within 60% of the normal's (a count's scores are discrete: the
    tail mass jumps from atom to atom), 400,000 draws."""
    rng = np.random.default_rng(int(lam * 10))
    weight = 2e-5
    z = poisson_normal_scores(rng.poisson(lam, 400_000) * weight, lam * weight, lam * weight**2)
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1.0) < 0.02
    for cut in (2.0, 3.0):
        assert float((z > cut).mean()) == pytest.approx(stats.norm.sf(cut), rel=0.6), cut


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([0.1], 0.0, 1.0), "mean"),
        (([0.1], 1.0, 0.0), "variance"),
        (([0.1], math.nan, 1.0), "mean"),
        (([math.inf], 1.0, 1.0), "values"),
        (([math.nan], 1.0, 1.0), "values"),
    ],
)
def test_poisson_normal_scores_validation(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        poisson_normal_scores(*args)  # type: ignore[arg-type]
