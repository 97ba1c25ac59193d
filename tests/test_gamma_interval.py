"""Gamma intervals for rare weighted events (tsmetrics.gamma_interval): published numbers, an
independent mid-p Poisson computation, asht's Monte Carlo definition, and invariants.

Provenance of the references
----------------------------
* Definition of the mid-p gamma interval: R package ``asht`` (M. P. Fay), ``R/wspoissonTest.R``
  at commit 7948eff3b0eb001b8cda87e545257639df3f6fbe of github.com/michaelpfay/asht: with
  ``y = sum(w x)``, ``v = sum(x w^2)``, ``y* = y + wm``, ``v* = v + wm^2`` the limits are the
  ``alpha/2`` and ``1 - alpha/2`` roots of ``Fmid(t) = 0.5 pgamma(t, y*^2/v*, scale = v*/y*) +
  0.5 pgamma(t, y^2/v, scale = v/y)`` (``uniroot``), at ``y = 0`` ``c(0, qgamma(1 - 2 alpha/2,
  ...))``; its Monte Carlo variant (``nmc > 0``) takes the quantiles of ``T = B G_L + (1 - B) G_U``,
  ``B ~ Bernoulli(1/2)``. Reference: Fay & Kim (2017), Biometrical Journal 59(2), 377-387. The
  file's comments call ``wspoissonTest(xfive, 10^5*ntotal/(nfive*sum(ntotal)),
  nullValue=173.0817, midp=TRUE, ...)`` on its example data: 173.0817 is the two-sided 95% mid-p
  upper limit (``wm = max(w)``) computed here.
* Exact (Garwood) Poisson limits for 4 events, 95%: ``1.089865, 10.24153`` -- the example of
  ``survival::cipoisson`` (R package survival, help page ``cipoisson``), and
  ``chi^2_{0.975, 10} / 2 = 20.4832 / 2`` from chi-square tables.
* Zero events, 95% upper limit: ``3.689`` (exact) and ``2.996`` (``pois.daly``; the mid-p limit
  ``-ln 0.05``) -- R package epitools, help page ``pois.exact``.
* The mid-p exact Poisson interval (Lancaster 1961; Berry & Armitage 1995) is computed here
  independently by test inversion on the Poisson distribution (``scipy.stats.poisson``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats
from strategies import CONFIDENCES, WeightedEvents, weighted_events

from tsmetrics.estimation import CI_METHODS, interval_function
from tsmetrics.gamma_interval import (
    EVENT_WEIGHT_CI_METHODS,
    GAMMA_METHOD,
    GAMMA_MIDP_METHOD,
    gamma_interval,
    gamma_midp_bounds,
    gamma_midp_interval,
    model_event_scale,
)
from tsmetrics.sampling import horvitz_thompson_prevalence


def midp_poisson_interval(k: int, confidence: float) -> tuple[float, float]:
    """Mid-p exact Poisson limits for ``k`` events by test inversion (independent of gammas):
    ``P(N > k) + P(N = k)/2 = alpha/2`` (lower; 0 when ``k = 0``) and
    ``P(N < k) + P(N = k)/2 = alpha/2`` (upper), ``N ~ Poisson(mu)``."""
    half = (1.0 - confidence) / 2.0
    hi = 10.0 * k + 50.0

    def upper_tail(mu: float) -> float:
        return float(stats.poisson.sf(k, mu) + 0.5 * stats.poisson.pmf(k, mu)) - half

    def lower_tail(mu: float) -> float:
        below = stats.poisson.cdf(k - 1, mu) if k > 0 else 0.0
        return float(below + 0.5 * stats.poisson.pmf(k, mu)) - half

    lower = 0.0 if k == 0 else optimize.brentq(upper_tail, 1e-12, hi, xtol=1e-14, rtol=1e-13)
    upper = optimize.brentq(lower_tail, 1e-12, hi, xtol=1e-14, rtol=1e-13)
    return lower, upper


# --------------------------------------------------------------------------------------------
# Published numbers and independent computations
# --------------------------------------------------------------------------------------------


def test_gamma_tcz_equal_weights_is_the_exact_poisson_interval_of_survival_cipoisson() -> None:
    w = 1e-4  # 4 events of weight w: y = 4 w, v = 4 w^2
    lower, upper = gamma_interval(4 * w, 4 * w * w, w, 0.95)
    assert lower / w == pytest.approx(1.089865, abs=5e-7)
    # survival prints 10.24153 (its root-finder's tolerance); the Garwood limit
    # qchisq(0.975, 10) / 2 = 20.4832 / 2 (chi-square tables) is 10.2416: agree to 1e-4
    assert upper / w == pytest.approx(10.24153, abs=1e-4)
    assert upper / w == pytest.approx(20.4832 / 2, abs=1e-4)


def test_zero_events_upper_limits_match_epitools() -> None:
    w = 1e-4
    assert gamma_interval(0.0, 0.0, w, 0.95) == (0.0, pytest.approx(3.689 * w, abs=5e-4 * w))
    assert gamma_midp_interval(0.0, 0.0, w, 0.95) == (0.0, pytest.approx(2.996 * w, abs=5e-4 * w))
    assert gamma_midp_interval(0.0, 0.0, w, 0.95)[1] == pytest.approx(-math.log(0.05) * w)


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, 5, 7, 10, 20, 50, 200])
def test_midp_gamma_equal_weights_is_the_midp_poisson_interval(k: int, confidence: float) -> None:
    w = 1e-6
    lower, upper = gamma_midp_interval(k * w, k * w * w, w, confidence)
    ref_lower, ref_upper = midp_poisson_interval(k, confidence)
    assert lower / w == pytest.approx(ref_lower, rel=1e-9, abs=1e-12)
    assert upper / w == pytest.approx(ref_upper, rel=1e-9)


# asht's example data: Down's syndrome births in Michigan 1950-1964, mothers with 5+ children
# (Fay & Feuer 1997, Table II; example of asht::wspoissonTest).
XFIVE = np.array([0, 8, 63, 112, 262, 295], dtype=float)
NFIVE = np.array([327, 30666, 123419, 149919, 104088, 34392], dtype=float)
NTOTAL = np.array([319933, 931318, 786511, 488235, 237863, 61313], dtype=float)


def test_midp_gamma_matches_ashts_monte_carlo_definition_on_its_example() -> None:
    """asht's nmc > 0 branch: quantiles of T = B G_L + (1 - B) G_U with wm = max(w)."""
    w = NTOTAL / (NFIVE * NTOTAL.sum())
    y, v, wm = float(np.sum(w * XFIVE)), float(np.sum(XFIVE * w * w)), float(w.max())
    lower, upper = gamma_midp_interval(y, v, wm, 0.95)
    rng = np.random.default_rng(104011)
    m = 2_000_000
    pick_lower = rng.random(m) < 0.5
    g_l = rng.gamma(y * y / v, v / y, m)
    g_u = rng.gamma((y + wm) ** 2 / (v + wm * wm), (v + wm * wm) / (y + wm), m)
    t = np.where(pick_lower, g_l, g_u)
    mc_lower, mc_upper = np.quantile(t, [0.025, 0.975])
    # MC quantile SE ~ sqrt(p(1-p)/m)/density: about 1e-3 relative here
    assert lower == pytest.approx(mc_lower, rel=3e-3)
    assert upper == pytest.approx(mc_upper, rel=3e-3)
    # the mid-p upper limit is below the conventional gamma (Fay-Feuer, wm = max w) one; the
    # lower is not nested here: with wm = max w (a stratum of 327 births) G_U has shape ~ 1 and
    # is not stochastically above G_L, so F_mid's lower quantile is below G_L's
    ff_lower, ff_upper = gamma_interval(y, v, wm, 0.95)
    assert lower < ff_lower < y < upper < ff_upper
    # asht's source comments test the midp p-value at nullValue = 173.0817 (per 100,000) on
    # this example: the two-sided 95% mid-p upper limit, to the 7 digits given
    assert y * 1e5 == pytest.approx(75.529007, rel=1e-7)
    assert upper * 1e5 == pytest.approx(173.0817, abs=5e-5)


def test_vectorised_bounds_equal_the_scalar_interval() -> None:
    rng = np.random.default_rng(5)
    y = np.concatenate([[0.0, 0.0, 1e-4], rng.uniform(0, 0.01, 50)])
    v = np.concatenate([[0.0, 1e-9, 0.0], (y[3:] * rng.uniform(1e-5, 1e-2, 50))])
    w = rng.uniform(1e-5, 1e-3, len(y))
    lower, upper = gamma_midp_bounds(y, v, w, 0.9)
    for i in range(len(y)):
        # to the bisection tolerance (a batch runs until its slowest element has converged)
        expected = gamma_midp_interval(y[i], v[i], w[i], 0.9)
        assert (lower[i], upper[i]) == pytest.approx(expected, rel=1e-13, abs=1e-300)


def test_zero_variance_with_events_is_a_point_mass_at_the_estimate() -> None:
    """Every violating unit a certainty unit: G_L is a point mass at y, F_mid jumps by 1/2."""
    y, w = 0.004, 0.001
    lower, upper = gamma_midp_interval(y, 0.0, w, 0.95)
    g_u = stats.gamma((y + w) ** 2 / (w * w), scale=w * w / (y + w))
    assert lower == pytest.approx(min(y, g_u.ppf(0.05)), rel=1e-10)
    assert upper == pytest.approx(max(y, g_u.ppf(0.95)), rel=1e-10)


def test_registry_and_dispatch() -> None:
    assert set(EVENT_WEIGHT_CI_METHODS) == {GAMMA_METHOD, GAMMA_MIDP_METHOD}
    assert not set(EVENT_WEIGHT_CI_METHODS) & set(CI_METHODS)
    bound = interval_function(GAMMA_MIDP_METHOD, 1e-3)
    assert bound(0.002, 1e-6, 10, 0.95) == gamma_midp_interval(0.002, 1e-6, 1e-3, 0.95)
    assert interval_function("wilson_kg") is CI_METHODS["wilson_kg"]
    with pytest.raises(ValueError, match="event_weight: required"):
        interval_function(GAMMA_MIDP_METHOD)
    with pytest.raises(ValueError, match="ci_method: expected one of"):
        interval_function("gamma")
    result = horvitz_thompson_prevalence(
        [0.0, 30.0, 0.0], [0.5, 0.2, 1.0], 10_000.0, ci_method=GAMMA_MIDP_METHOD, event_weight=0.01
    )
    assert result.ci_method == GAMMA_MIDP_METHOD
    expected = gamma_midp_interval(0.015, 0.8 * 150.0**2 / 1e8, 0.01, 0.95)
    assert (result.ci_lower, result.ci_upper) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((math.nan, 0.0, 0.1, 0.95), "estimate"),
        ((0.1, -1.0, 0.1, 0.95), "variance"),
        ((0.1, 0.01, 0.0, 0.95), "event_weight"),
        ((0.1, 0.01, 0.1, 1.0), "confidence"),
    ],
)
def test_bad_input_is_rejected(args: tuple[float, float, float, float], match: str) -> None:
    for interval in EVENT_WEIGHT_CI_METHODS.values():
        with pytest.raises(ValueError, match=match):
            interval(*args)


# --------------------------------------------------------------------------------------------
# Invariants (hypothesis)
# --------------------------------------------------------------------------------------------

METHODS = st.sampled_from(sorted(EVENT_WEIGHT_CI_METHODS))


@settings(max_examples=300, deadline=None)
@given(events=weighted_events(), method=METHODS, confidence=CONFIDENCES)
def test_interval_contains_the_estimate_and_has_a_positive_upper_bound(
    events: WeightedEvents, method: str, confidence: float
) -> None:
    lower, upper = EVENT_WEIGHT_CI_METHODS[method](
        events.estimate, events.variance, events.event_weight, confidence
    )
    assert 0.0 <= lower <= events.estimate <= upper <= 1.0
    assert upper > 0.0
    if events.estimate == 0.0:
        assert lower == 0.0


@settings(max_examples=200, deadline=None)
@given(
    events=weighted_events(),
    method=METHODS,
    levels=st.lists(CONFIDENCES, min_size=2, max_size=2, unique=True).map(sorted),
)
def test_interval_is_monotone_in_confidence(
    events: WeightedEvents, method: str, levels: list[float]
) -> None:
    interval = EVENT_WEIGHT_CI_METHODS[method]
    narrow = interval(events.estimate, events.variance, events.event_weight, levels[0])
    wide = interval(events.estimate, events.variance, events.event_weight, levels[1])
    assert wide[0] <= narrow[0] * (1 + 1e-12) and narrow[1] <= wide[1] * (1 + 1e-12)


@settings(max_examples=100, deadline=None)
@given(
    k=st.integers(0, 300),
    log_w=st.floats(-8.0, -3.0),
    confidence=st.floats(0.5, 0.999),
)
def test_midp_reduces_to_the_midp_poisson_interval_for_equal_weights(
    k: int, log_w: float, confidence: float
) -> None:
    w = 10.0**log_w
    lower, upper = gamma_midp_interval(k * w, k * w * w, w, confidence)
    ref_lower, ref_upper = midp_poisson_interval(k, confidence)
    assert lower / w == pytest.approx(ref_lower, rel=1e-8, abs=1e-10)
    assert upper / w == pytest.approx(ref_upper, rel=1e-8)


@settings(max_examples=200, deadline=None)
@given(events=weighted_events(), confidence=CONFIDENCES)
def test_midp_upper_bound_at_zero_events_is_minus_log_alpha_weights(
    events: WeightedEvents, confidence: float
) -> None:
    lower, upper = gamma_midp_interval(0.0, 0.0, events.event_weight, confidence)
    assert lower == 0.0
    assert upper == pytest.approx(-math.log(1.0 - confidence) * events.event_weight, rel=1e-9)


def test_model_event_scale() -> None:
    w = np.array([1e-4, 2e-4, 4e-4, 1e-3])
    certain = np.array([False, False, False, True])
    # equal weights: the weight itself, whatever the model says
    assert model_event_scale(np.full(3, 5e-4), np.zeros(3, bool), [0.1, 0.5, 0.2]) == (
        pytest.approx(5e-4)
    )
    # an uninformative model: the size-biased mean weight of the uncertain units, >= their mean
    flat = float(model_event_scale(w, certain, np.full(4, 0.01)))
    assert flat == pytest.approx((1e-8 + 4e-8 + 16e-8) / 7e-4)
    assert flat >= w[:3].mean()
    # per policy: a model that puts the risk on the small weights gives a small scale
    q = np.array([[0.5, 0.01], [0.01, 0.01], [0.001, 0.5], [0.9, 0.9]])
    scale = model_event_scale(w, certain, q)
    assert scale.shape == (2,) and scale[0] < w[:3].mean() < scale[1]
    # no expected event among the uncertain units: the mean weight
    assert model_event_scale(w, certain, np.zeros(4)) == pytest.approx(w[:3].mean())
    with pytest.raises(ValueError, match="event_weights"):
        model_event_scale(w, certain[:2], q)
