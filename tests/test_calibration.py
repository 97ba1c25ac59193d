"""Tests of tsmetrics.calibration: weighted isotonic and Platt calibration, versions, SQL.

References used below (each number's provenance is next to it):

* ``scipy.optimize.isotonic_regression`` (SciPy 1.17.1), the max-min formula of isotonic
  regression (Robertson, Wright & Dykstra 1988, *Order Restricted Statistical Inference*,
  Theorem 1.4.4) and a constrained least-squares solve with ``scipy.optimize.minimize``
  (SLSQP) for the weighted pool-adjacent-violators;
* ``sklearn.isotonic.IsotonicRegression`` (scikit-learn 1.9.1, test-only, skipped when absent)
  for the whole isotonic fit with ties and weights;
* ``statsmodels.api.GLM(..., family=Binomial(), freq_weights=w)`` (statsmodels 0.15.0,
  test-only, skipped when absent) and a direct ``scipy.optimize.minimize`` of the penalised
  objective for Platt scaling;
* a real Postgres (fixture ``conn``) for :meth:`Calibration.sql_expression`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import optimize, special, stats

from tsmetrics.calibration import (
    CALIBRATION_METHODS,
    DEFAULT_EPS,
    Calibration,
    IdentityParams,
    IsotonicParams,
    PlattParams,
    fit_calibration,
    fit_isotonic,
    fit_platt,
    identity_calibration,
    kish_effective_count,
    pool_adjacent_violators,
)
from tsmetrics.sampling import poisson_pps_inclusion, poisson_pps_select, size_measure

FloatArray = npt.NDArray[np.float64]

# --------------------------------------------------------------------------------------------
# Strategies (local to this module; candidates for tests/strategies.py)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Labelled:
    """Labelled sample units: score, 0/1 label, design weight."""

    scores: FloatArray
    labels: FloatArray
    weights: FloatArray


@st.composite
def labelled_units(draw: st.DrawFn, min_size: int = 1, max_size: int = 40) -> Labelled:
    """Scores either on a coarse grid (many ties) or arbitrary floats in [0, 1]."""
    n = draw(st.integers(min_size, max_size))
    grid = draw(st.booleans())
    score = (
        st.integers(0, 20).map(lambda k: k / 20)
        if grid
        else st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False)
    )
    scores = np.array(draw(st.lists(score, min_size=n, max_size=n)), dtype=np.float64)
    labels = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=np.float64)
    weights = np.array(
        draw(st.lists(st.floats(1e-3, 1e4), min_size=n, max_size=n)), dtype=np.float64
    )
    return Labelled(scores, labels, weights)


PREDICT_SCORES = st.lists(
    st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False), min_size=1, max_size=30
)
FITTERS: dict[str, Callable[..., Calibration]] = {"isotonic": fit_isotonic, "platt": fit_platt}


def _logit(s: FloatArray, eps: float = DEFAULT_EPS) -> FloatArray:
    sc = np.clip(s, eps, 1.0 - eps)
    return np.asarray(np.log(sc / (1.0 - sc)))


# --------------------------------------------------------------------------------------------
# Weighted pool-adjacent-violators against independent references
# --------------------------------------------------------------------------------------------


def _max_min_isotonic(y: FloatArray, w: FloatArray) -> FloatArray:
    """Isotonic regression by the max-min formula f_i = max_{j<=i} min_{k>=i} Av(j..k).

    Robertson, Wright & Dykstra (1988), Theorem 1.4.4; O(n^3), independent of PAV.
    """
    n = len(y)
    av = np.full((n, n), np.nan)  # av[j, k] = weighted mean of y[j..k], summed directly
    for j in range(n):
        for k in range(j, n):
            av[j, k] = np.sum(w[j : k + 1] * y[j : k + 1]) / np.sum(w[j : k + 1])
    return np.array([max(min(av[j, i:]) for j in range(i + 1)) for i in range(n)])


def test_pav_textbook_example() -> None:
    # scikit-learn 1.9.1 docstring of sklearn.isotonic.isotonic_regression:
    # isotonic_regression([5, 3, 1, 2, 8, 10, 7, 9, 6, 4]) ->
    # [2.75]*4 + [7.33]*6; by hand (5+3+1+2)/4 = 2.75 and (8+10+7+9+6+4)/6 = 44/6.
    got = pool_adjacent_violators([5, 3, 1, 2, 8, 10, 7, 9, 6, 4], np.ones(10))
    np.testing.assert_allclose(got, [2.75] * 4 + [44 / 6] * 6, rtol=1e-15)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-1e3, 1e3), st.floats(1e-3, 1e3)),
        min_size=1,
        max_size=25,
    )
)
def test_pav_matches_max_min_formula_and_scipy(pairs: list[tuple[float, float]]) -> None:
    y = np.array([p[0] for p in pairs])
    w = np.array([p[1] for p in pairs])
    got = pool_adjacent_violators(y, w)
    assert np.all(np.diff(got) >= 0.0)
    scale = 1e-12 * (1.0 + np.max(np.abs(y)))
    np.testing.assert_allclose(got, _max_min_isotonic(y, w), rtol=0, atol=scale)
    # SciPy 1.17.1: scipy.optimize.isotonic_regression(y, weights=w).x
    np.testing.assert_allclose(
        got, optimize.isotonic_regression(y, weights=w).x, rtol=0, atol=scale
    )


@pytest.mark.parametrize("seed", range(5))
def test_pav_is_the_weighted_l2_projection_slsqp(seed: int) -> None:
    """Tiny inputs: PAV equals argmin sum w (y - f)^2 s.t. f non-decreasing (SLSQP, 1e-6)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 6).astype(float) + rng.normal(0, 0.3, 6)
    w = rng.uniform(0.1, 5.0, 6)
    res = optimize.minimize(
        lambda f: float(np.sum(w * (y - f) ** 2)),
        x0=np.full(6, y.mean()),
        jac=lambda f: -2.0 * w * (y - f),
        constraints=[
            {
                "type": "ineq",
                "fun": lambda f: np.diff(f),
                "jac": lambda f: np.eye(6, k=1)[:5] - np.eye(6)[:5],
            }
        ],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert res.success, res.message
    np.testing.assert_allclose(pool_adjacent_violators(y, w), res.x, atol=1e-6)


@pytest.mark.parametrize("n", [20_000])
def test_pav_worst_case_is_fast_and_exact(n: int) -> None:
    """An increasing run ended by one very low value (one block merged per vectorised pass)."""
    y = np.concatenate((np.arange(n, dtype=float), [-1e9]))
    w = np.ones(n + 1)
    got = pool_adjacent_violators(y, w)
    np.testing.assert_allclose(got, optimize.isotonic_regression(y, weights=w).x, rtol=1e-12)
    # Alternating increases: many blocks, several vectorised passes.
    rng = np.random.default_rng(7)
    y2 = rng.normal(size=n) + np.linspace(0, 3, n)
    w2 = rng.uniform(0.01, 10.0, n)
    np.testing.assert_allclose(
        pool_adjacent_violators(y2, w2),
        optimize.isotonic_regression(y2, weights=w2).x,
        rtol=0,
        atol=1e-12,
    )


def test_fit_isotonic_matches_sklearn_with_ties_and_weights() -> None:
    sklearn_isotonic = pytest.importorskip("sklearn.isotonic")
    rng = np.random.default_rng(11)
    n = 3000
    scores = rng.integers(0, 400, n) / 400.0  # many ties (sklearn pools ties like we do)
    labels = (rng.random(n) < scores**2).astype(float)
    weights = rng.pareto(1.5, n) + 0.05
    cal = fit_isotonic(scores, labels, weights)
    # scikit-learn 1.9.1: IsotonicRegression(increasing=True).fit(s, y, sample_weight=w); its
    # predictions at the training scores are the PAV values (it interpolates only in between).
    ref = sklearn_isotonic.IsotonicRegression(increasing=True).fit(
        scores, labels, sample_weight=weights
    )
    expected = np.clip(ref.predict(scores), DEFAULT_EPS, 1.0 - DEFAULT_EPS)
    np.testing.assert_allclose(cal.predict(scores), expected, rtol=0, atol=1e-14)
    assert len(cal.params.thresholds) > 5


@settings(max_examples=80, deadline=None)
@given(labelled_units())
def test_isotonic_step_function_semantics(data: Labelled) -> None:
    """q(s) = PAV value at the largest training score <= s (the lowest one below all)."""
    cal = fit_isotonic(data.scores, data.labels, data.weights)
    uniq, inv = np.unique(data.scores, return_inverse=True)
    pooled_w = np.bincount(inv, weights=data.weights)
    pooled_y = np.bincount(inv, weights=data.weights * data.labels) / pooled_w
    fitted = np.clip(_max_min_isotonic(pooled_y, pooled_w), DEFAULT_EPS, 1 - DEFAULT_EPS)
    probe = np.concatenate((uniq, (uniq[:-1] + uniq[1:]) / 2, [0.0, 1.0]))
    k = np.maximum(np.searchsorted(uniq, probe, side="right") - 1, 0)
    np.testing.assert_allclose(cal.predict(probe), fitted[k], rtol=1e-12, atol=1e-15)
    # Tied scores share one q; the weighted mean of q equals the weighted mean label (PAV keeps
    # block sums) unless clipping moved a block.
    if np.all((fitted > DEFAULT_EPS) & (fitted < 1 - DEFAULT_EPS)):
        mean_q = np.sum(data.weights * cal.predict(data.scores)) / data.weights.sum()
        mean_y = np.sum(data.weights * data.labels) / data.weights.sum()
        assert mean_q == pytest.approx(mean_y, rel=1e-10, abs=1e-15)


# --------------------------------------------------------------------------------------------
# Platt scaling against statsmodels and scipy
# --------------------------------------------------------------------------------------------


def _platt_data(seed: int, n: int = 2000) -> tuple[FloatArray, FloatArray, FloatArray]:
    rng = np.random.default_rng(seed)
    scores = rng.beta(0.6, 4.0, n)
    labels = (rng.random(n) < special.expit(-0.7 + 1.3 * _logit(scores))).astype(float)
    weights = rng.lognormal(0.0, 1.0, n)
    return scores, labels, weights


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_platt_unpenalised_matches_statsmodels_glm(seed: int) -> None:
    sm = pytest.importorskip("statsmodels.api")
    scores, labels, weights = _platt_data(seed)
    cal = fit_platt(scores, labels, weights, ridge=0.0)
    # statsmodels 0.15.0: GLM(y, [1, logit(clip(s, 1e-6, 1 - 1e-6))], Binomial(),
    # freq_weights=w).fit(tol=1e-13) -- weighted maximum likelihood (scale-free in w).
    design = sm.add_constant(_logit(scores))
    ref = sm.GLM(labels, design, family=sm.families.Binomial(), freq_weights=weights).fit(tol=1e-13)
    assert isinstance(cal.params, PlattParams)
    np.testing.assert_allclose([cal.params.a, cal.params.b], ref.params, rtol=0, atol=1e-6)


def _penalised_objective(
    theta: FloatArray, x: FloatArray, y: FloatArray, w: FloatArray, ridge: float
) -> tuple[float, FloatArray]:
    wn = w * len(w) / w.sum()
    eta = theta[0] + theta[1] * x
    prior = np.array([0.0, 1.0])
    value = np.sum(wn * (np.logaddexp(0.0, eta) - y * eta)) + ridge / 2 * np.sum(
        (theta - prior) ** 2
    )
    r = wn * (special.expit(eta) - y)
    grad = np.array([r.sum(), (r * x).sum()]) + ridge * (theta - prior)
    return float(value), grad


@pytest.mark.parametrize(("seed", "ridge"), [(3, 0.1), (4, 1.0), (5, 25.0)])
def test_platt_penalised_matches_scipy_minimize(seed: int, ridge: float) -> None:
    scores, labels, weights = _platt_data(seed, n=500)
    cal = fit_platt(scores, labels, weights, ridge=ridge)
    x = _logit(scores)
    res = optimize.minimize(
        _penalised_objective,
        x0=np.array([0.0, 1.0]),
        args=(x, labels, weights, ridge),
        jac=True,
        method="BFGS",
        options={"gtol": 1e-11, "maxiter": 1000},
    )
    assert isinstance(cal.params, PlattParams)
    np.testing.assert_allclose([cal.params.a, cal.params.b], res.x, rtol=0, atol=1e-6)


def test_platt_separated_labels_need_the_ridge() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    labels = np.array([0, 0, 0, 1, 1, 1])
    weights = np.ones(6)
    with pytest.raises(ValueError, match="ridge"):
        fit_platt(scores, labels, weights, ridge=0.0)
    cal = fit_platt(scores, labels, weights)  # default ridge: finite, steep, monotone
    assert isinstance(cal.params, PlattParams)
    assert 1.0 < cal.params.b < 100.0
    q = cal.predict(scores)
    assert np.all(q[:3] < 0.2) and np.all(q[3:] > 0.8)
    with pytest.raises(ValueError, match="ridge"):
        fit_platt(scores, np.zeros(6), weights, ridge=0.0)  # single class: no finite MLE


def test_platt_anti_informative_score_gives_flat_calibration() -> None:
    """b >= 0: with labels decreasing in the score the fit is the penalised intercept only."""
    rng = np.random.default_rng(9)
    scores = rng.uniform(0.01, 0.99, 800)
    labels = (rng.random(800) < 0.4 - 0.3 * scores).astype(float)
    weights = rng.uniform(0.5, 2.0, 800)
    cal = fit_platt(scores, labels, weights, ridge=0.1)
    assert isinstance(cal.params, PlattParams)
    assert cal.params.b == 0.0
    wn = weights * 800 / weights.sum()
    # Stationarity of sum wn (expit(a) - y) + ridge a = 0, solved by scipy.optimize.brentq.
    a_ref = optimize.brentq(
        lambda a: np.sum(wn * (special.expit(a) - labels)) + 0.1 * a, -20, 20, xtol=1e-14
    )
    assert cal.params.a == pytest.approx(a_ref, abs=1e-9)
    assert np.ptp(cal.predict(np.linspace(0, 1, 11))) == 0.0


# --------------------------------------------------------------------------------------------
# Simulation: design weights remove the selection bias of a PPS sample
# --------------------------------------------------------------------------------------------

SIM_A, SIM_B, SIM_G = -1.0, 1.0, 0.7  # P(v | s, z) = expit(A + B logit(s) + G z)
SIM_BETA = (0.5, 6.0)  # score distribution of the population
SIM_BIN_PROBS = (0.5, 0.8, 0.95)  # score-quantile bin edges


def _true_link(s: FloatArray) -> FloatArray:
    """q(s) = E_z[expit(A + B logit(s) + G z)], z ~ N(0, 1), by 40-node Gauss-Hermite."""
    nodes, w = np.polynomial.hermite_e.hermegauss(40)
    return np.asarray(
        special.expit(SIM_A + SIM_B * _logit(s)[:, None] + SIM_G * nodes) @ (w / w.sum())
    )


@dataclass(frozen=True)
class LinkRecovery:
    """Monte Carlo mean error (and its SE) of a fit's summary against the target's summary."""

    mean: FloatArray
    se: FloatArray
    target: FloatArray


def link_recovery(
    reps: int = 40, seed: int = 20240601, n_pop: int = 20_000, n_sample: int = 1_500
) -> dict[tuple[str, bool], LinkRecovery]:
    """Simulate PPS samples and fit each method weighted (True) and unweighted (False).

    Summaries of a fitted q on the score distribution's 2,000 quantile nodes: its mean over the
    4 score-quantile bins cut at SIM_BIN_PROBS, and over all nodes (calibration-in-the-large).
    """
    nodes = stats.beta.ppf((np.arange(2000) + 0.5) / 2000, *SIM_BETA)
    bins = np.digitize(nodes, stats.beta.ppf(SIM_BIN_PROBS, *SIM_BETA))

    def summary(q: FloatArray) -> FloatArray:
        return np.append(np.bincount(bins, q) / np.bincount(bins), q.mean())

    q_nodes = _true_link(nodes)
    # Platt's target: the best logistic-in-logit(s) fit to q over the score density, i.e. the
    # weighted MLE with each node entered as a positive of weight q and a negative of 1 - q.
    platt_target = fit_platt(
        np.r_[nodes, nodes],
        np.r_[np.ones(2000), np.zeros(2000)],
        np.r_[q_nodes, 1 - q_nodes],
        ridge=0.0,
    )
    targets = {"isotonic": summary(q_nodes), "platt": summary(platt_target.predict(nodes))}
    rng = np.random.default_rng(seed)
    errors: dict[tuple[str, bool], list[FloatArray]] = {
        (m, wtd): [] for m in FITTERS for wtd in (True, False)
    }
    for _ in range(reps):
        s = rng.beta(*SIM_BETA, n_pop)
        z = rng.normal(size=n_pop)
        x = 100.0 * np.exp(z)
        v = (rng.random(n_pop) < special.expit(SIM_A + SIM_B * _logit(s) + SIM_G * z)).astype(float)
        pi = poisson_pps_inclusion(size_measure(x, s, 0.02), n_sample)
        k = poisson_pps_select(pi, rng)
        for method, fit in FITTERS.items():
            for weighted in (True, False):
                w = 1.0 / pi[k] if weighted else np.ones(len(k))
                q_hat = fit(s[k], v[k], w).predict(nodes)
                errors[(method, weighted)].append(summary(q_hat) - targets[method])
    out = {}
    for key, errs in errors.items():
        e = np.array(errs)
        out[key] = LinkRecovery(
            e.mean(axis=0), e.std(axis=0, ddof=1) / math.sqrt(reps), targets[key[0]]
        )
    return out


def test_weighted_fit_recovers_link_under_pps_unweighted_is_biased() -> None:
    """PPS on impressions x (floor + score); violation also rises with log impressions z.

    The sample over-represents high scores *and* high impressions, so at a given score its
    units violate more often than the population's: an unweighted fit over-estimates
    q(s) = P(v | s); the design-weighted fit (w = 1/pi) is consistent for it. Targets:
    isotonic -> the true link q(s) (monotone); Platt -> the population's best
    logistic-in-logit(s) approximation of q. Over 40 replications the weighted fits' mean
    errors lie within 4 Monte Carlo SEs plus an allowance of 10% of the truth for the
    estimators' own finite-sample bias (PAV's in the lowest score bin, the lower half of the
    scores with ~0.6% violating, is about -30%: no positive label there in most samples, so that
    bin is left out for isotonic); the unweighted fits' errors exceed the band in every bin but
    the lowest. Numbers are in docs/methods/calibration.md.
    """
    results = link_recovery()
    for method in FITTERS:
        checked = slice(1, None) if method == "isotonic" else slice(None)
        for weighted in (True, False):
            r = results[(method, weighted)]
            band = 4.0 * r.se + 0.10 * r.target
            if weighted:
                assert np.all(np.abs(r.mean[checked]) <= band[checked]), (method, r, band)
            else:  # biased upwards, beyond the band, except in the lowest score bin
                assert np.all(r.mean[1:] > band[1:]), (method, r, band)


# --------------------------------------------------------------------------------------------
# Invariants (Hypothesis): monotone, inside (0, 1), JSON round trip, versions
# --------------------------------------------------------------------------------------------


@settings(max_examples=75, deadline=None)
@given(labelled_units(), PREDICT_SCORES, st.sampled_from(sorted(FITTERS)))
def test_predictions_monotone_and_inside_unit_interval(
    data: Labelled, probe: list[float], method: str
) -> None:
    cal = FITTERS[method](data.scores, data.labels, data.weights)
    s = np.sort(np.concatenate((probe, data.scores, [0.0, 1.0])))
    q = cal.predict(s)
    assert np.all(np.diff(q) >= 0.0)
    assert np.all((q > 0.0) & (q < 1.0))
    assert np.all(q >= DEFAULT_EPS * (1 - 1e-9)) and np.all(q <= 1 - DEFAULT_EPS * (1 - 1e-9))


@settings(max_examples=75, deadline=None)
@given(labelled_units(), st.sampled_from(sorted(FITTERS)), st.randoms(use_true_random=False))
def test_json_round_trip_and_stable_version(data: Labelled, method: str, rnd: Any) -> None:
    days = [date(2025, 3, 2), "2025-03-01"]
    cal = FITTERS[method](data.scores, data.labels, data.weights, policy="adult", fitted_on=days)
    back = Calibration.from_json(cal.to_json())
    assert back == cal and back.to_json() == cal.to_json()
    assert back.fitted_on == ("2025-03-01", "2025-03-02")
    # Re-fitting the same labelled units, in another row order, gives the same version.
    order = list(range(len(data.scores)))
    rnd.shuffle(order)
    again = FITTERS[method](data.scores[order], data.labels[order], data.weights[order])
    assert again.version == cal.version and again.params == cal.params
    # Metadata does not enter the version, parameters do.
    assert replace(cal, policy="other", fitted_on=()).version == cal.version
    changes: list[Any] = [replace(cal.params, eps=1e-7)]
    if isinstance(cal.params, IsotonicParams):
        last = cal.params.values[-1]  # move the last value by one ulp, staying valid
        up, down = float(np.nextafter(last, 1.0)), float(np.nextafter(last, 0.0))
        new_last = up if up <= 1 - DEFAULT_EPS else down
        changes.append(replace(cal.params, values=(*cal.params.values[:-1], new_last)))
    else:
        assert isinstance(cal.params, PlattParams)
        changes.append(replace(cal.params, a=float(np.nextafter(cal.params.a, np.inf))))
    for changed in changes:
        assert replace(cal, params=changed).version != cal.version


def test_versions_identity_and_tampering() -> None:
    ident = identity_calibration("adult")
    assert ident.method == "identity" and ident.version.startswith("identity-")
    assert ident.version == identity_calibration("harassment").version
    assert identity_calibration(eps=1e-5).version != ident.version
    np.testing.assert_array_equal(ident.predict([0.0, 0.3, 1.0]), [1e-6, 0.3, 1 - 1e-6])
    data = json.loads(fit_platt(*_platt_data(0, 200)).to_json())
    data["params"]["a"] += 0.5
    with pytest.raises(ValueError, match="version"):
        Calibration.from_dict(data)
    del data["version"]
    assert Calibration.from_dict(data).params.a == data["params"]["a"]  # type: ignore[union-attr]
    assert sorted(CALIBRATION_METHODS) == ["identity", "isotonic", "platt"]
    assert fit_isotonic([0.1, 0.9], [0, 1], [1, 1], eps=1e-4).eps == 1e-4
    assert fit_platt([0.1, 0.9], [0, 1], [1, 1], eps=1e-4).eps == 1e-4


def test_predict_handles_missing_and_rejects_out_of_range() -> None:
    cal = fit_isotonic(*_platt_data(1, 300))
    q = cal.predict([[0.2, np.nan], [1.0, 0.0]])
    assert q.shape == (2, 2) and np.isnan(q[0, 1]) and not np.isnan(q[1]).any()
    for bad in ([1.5], [-0.1], [np.inf]):
        with pytest.raises(ValueError, match="scores"):
            cal.predict(bad)


# --------------------------------------------------------------------------------------------
# SQL expression inside a real Postgres
# --------------------------------------------------------------------------------------------


def _sql_q(conn: psycopg.Connection, cal: Calibration, scores: list[float | None]) -> FloatArray:
    expr = cal.sql_expression("score")
    rows = conn.execute(
        f"SELECT {expr} FROM unnest(%s::float8[]) WITH ORDINALITY AS t(score, k) ORDER BY k",
        (scores,),
    ).fetchall()
    return np.array([np.nan if r[0] is None else r[0] for r in rows], dtype=np.float64)


def _edge_scores(cal: Calibration, rng: np.random.Generator) -> list[float]:
    s = [0.0, 1.0, 5e-324, 1e-300, 1e-7, DEFAULT_EPS, 1 - DEFAULT_EPS, 1 - 1e-16]
    s += rng.random(300).tolist()
    if isinstance(cal.params, IsotonicParams):
        t = np.array(cal.params.thresholds)
        s += t.tolist() + np.nextafter(t, 0.0).tolist() + np.nextafter(t, 1.0).tolist()
    return [min(max(v, 0.0), 1.0) for v in s]


def test_sql_expression_equals_predict(conn: psycopg.Connection) -> None:
    rng = np.random.default_rng(5)
    scores, labels, weights = _platt_data(6, 3000)
    scores = np.round(scores, 5)
    calibrations = [
        fit_isotonic(scores, labels, weights),
        fit_platt(scores, labels, weights),
        fit_platt(scores, labels, weights, ridge=0.0, eps=1e-9),
        identity_calibration("adult"),
        fit_calibration([], [], []),
    ]
    for cal in calibrations:
        probe = _edge_scores(cal, rng)
        got = _sql_q(conn, cal, [*probe, None])
        expected = cal.predict(np.array([*probe, np.nan]))
        if isinstance(cal.params, PlattParams):  # ln/exp: libm vs numpy may differ in a last bit
            np.testing.assert_allclose(got, expected, rtol=1e-13, atol=0)
        else:  # comparisons and stored constants only: bit for bit
            np.testing.assert_array_equal(got, expected)
        assert np.isnan(got[-1])  # NULL score -> NULL q


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(labelled_units(), PREDICT_SCORES, st.sampled_from(sorted(FITTERS)))
def test_sql_expression_equals_predict_hypothesis(
    conn: psycopg.Connection, data: Labelled, probe: list[float], method: str
) -> None:
    cal = FITTERS[method](data.scores, data.labels, data.weights)
    s = [*probe, *data.scores.tolist()]
    got = _sql_q(conn, cal, s)  # type: ignore[arg-type]
    np.testing.assert_allclose(got, cal.predict(s), rtol=1e-13, atol=0)


def test_sql_expression_on_qualified_and_quoted_columns(conn: psycopg.Connection) -> None:
    cal = fit_isotonic(*_platt_data(2, 500))
    expr = cal.sql_expression('u."Risk Score"')
    got = conn.execute(f'SELECT {expr} FROM (SELECT 0.3::float4 AS "Risk Score") AS u').fetchone()
    assert got is not None
    assert got[0] == cal.predict([float(np.float32(0.3))])[0]  # float4 column cast to float8
    for bad in ("score; DROP TABLE x", "", "f(score)", "1score"):
        with pytest.raises(ValueError, match="column"):
            cal.sql_expression(bad)


CALIBRATED_Q = (
    "tsm.calibrated_q(double precision, text, double precision, double precision, "
    "double precision, double precision[], double precision[])"
)


def test_warehouse_function_calibrated_q_agrees(conn: psycopg.Connection) -> None:
    """The migrations' tsm.calibrated_q (stored-parameter form) gives predict's q too."""
    if conn.execute("SELECT to_regprocedure(%s)", (CALIBRATED_Q,)).fetchone() == (None,):
        pytest.skip("tsm.calibrated_q is not defined by the migrations")
    rng = np.random.default_rng(8)
    scores, labels, weights = _platt_data(7, 2000)
    for cal in (
        fit_isotonic(scores, labels, weights),
        fit_platt(scores, labels, weights),
        identity_calibration(),
    ):
        p = cal.params
        probe = _edge_scores(cal, rng)
        rows = conn.execute(
            "SELECT tsm.calibrated_q(score, %s, %s, %s, %s, %s, %s) "
            "FROM unnest(%s::float8[]) WITH ORDINALITY AS t(score, k) ORDER BY k",
            (
                cal.method,
                cal.eps,
                getattr(p, "a", None),
                getattr(p, "b", None),
                list(getattr(p, "thresholds", [])) or None,
                list(getattr(p, "values", [])) or None,
                probe,
            ),
        ).fetchall()
        got = np.array([r[0] for r in rows], dtype=np.float64)
        np.testing.assert_allclose(got, cal.predict(probe), rtol=1e-13, atol=0)


# --------------------------------------------------------------------------------------------
# Fallback rules, effective counts, validation
# --------------------------------------------------------------------------------------------


def test_kish_effective_count() -> None:
    assert kish_effective_count([2.0] * 7) == pytest.approx(7.0)
    assert kish_effective_count([1.0, 1.0, 2.0]) == pytest.approx(16 / 6)  # (1+1+2)^2 / (1+1+4)
    assert kish_effective_count([]) == 0.0
    assert kish_effective_count([1e300, 1e300]) == pytest.approx(2.0)


def _with_positives(n_pos: int, n_neg: int = 400) -> tuple[FloatArray, FloatArray, FloatArray]:
    rng = np.random.default_rng(n_pos)
    scores = np.r_[rng.uniform(0.3, 1.0, n_pos), rng.uniform(0.0, 0.7, n_neg)]
    labels = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    return scores, labels, np.ones(n_pos + n_neg)


@pytest.mark.parametrize(
    ("n_pos", "method"),
    [(0, "identity"), (9, "identity"), (10, "platt"), (49, "platt"), (50, "isotonic")],
)
def test_fallback_rules_by_effective_positives(n_pos: int, method: str) -> None:
    cal = fit_calibration(*_with_positives(n_pos), policy="adult", fitted_on=["2025-01-01"])
    assert cal.method == method
    assert (cal.n_labels, cal.n_positive, cal.effective_positives) == (400 + n_pos, n_pos, n_pos)
    assert cal.fitted_on == ("2025-01-01",)


def test_fallback_uses_effective_not_raw_counts() -> None:
    scores, labels, weights = _with_positives(60)
    weights[:60] = np.r_[np.full(10, 1000.0), np.ones(50)]  # 10 positives dominate the weight
    assert kish_effective_count(weights[:60]) < 20
    cal = fit_calibration(scores, labels, weights)
    assert cal.method == "platt" and cal.n_positive == 60
    assert cal.weighted_prevalence == pytest.approx(10050 / 10450)
    # The rarer class decides: many positives, few negatives.
    s2, y2, w2 = _with_positives(400, n_neg=30)
    assert fit_calibration(s2, y2, w2).method == "platt"
    assert fit_calibration(s2, y2, w2, min_positives_isotonic=25).method == "isotonic"


def test_fit_calibration_empty_is_identity() -> None:
    cal = fit_calibration([], [], [], policy="adult", fitted_on=[date(2025, 1, 1)])
    assert cal.method == "identity" and cal.n_labels == 0 and cal.weighted_prevalence is None


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"scores": [0.1, 1.2]}, "scores"),
        ({"scores": [0.1, np.nan]}, "scores"),
        ({"labels": [0, 2]}, "labels"),
        ({"weights": [1.0, 0.0]}, "weights"),
        ({"weights": [1.0]}, "inputs"),
        ({"scores": [], "labels": [], "weights": []}, "scores"),
        ({"eps": 0.5}, "eps"),
        ({"fitted_on": ["2025-13-01"]}, "fitted_on"),
        ({"fitted_on": "2025-01-01"}, "fitted_on"),
    ],
)
def test_fit_validation(kwargs: dict[str, Any], name: str) -> None:
    args: dict[str, Any] = {"scores": [0.1, 0.2], "labels": [0, 1], "weights": [1.0, 2.0]}
    args.update(kwargs)
    for fit in FITTERS.values():
        with pytest.raises(ValueError, match=name):
            fit(**args)


def test_other_validation() -> None:
    with pytest.raises(ValueError, match="ridge"):
        fit_platt([0.1, 0.2], [0, 1], [1, 1], ridge=-1.0)
    with pytest.raises(ValueError, match="min_positives_platt"):
        fit_calibration([0.1], [1], [1], min_positives_isotonic=5, min_positives_platt=6)
    with pytest.raises(ValueError, match="thresholds"):
        IsotonicParams(thresholds=(0.5, 0.2), values=(0.1, 0.2))
    with pytest.raises(ValueError, match="values"):
        IsotonicParams(thresholds=(0.1, 0.2), values=(0.2, 0.1))
    with pytest.raises(ValueError, match="values"):
        IsotonicParams(thresholds=(0.1,), values=(0.0,))
    with pytest.raises(ValueError, match="b"):
        PlattParams(a=0.0, b=-1.0)
    with pytest.raises(ValueError, match="eps"):
        IdentityParams(eps=0.0)
    with pytest.raises(ValueError, match="method"):
        Calibration.from_json('{"method": "beta", "params": {}}')
    with pytest.raises(ValueError, match="text"):
        Calibration.from_json("[1, 2]")
    with pytest.raises(ValueError, match="n_positive"):
        Calibration(params=IdentityParams(), n_labels=1, n_positive=2)
