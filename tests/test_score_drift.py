"""Tests of tsmetrics.score_drift (population stability index, Jensen-Shannon divergence)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon
from tolerances import within

from tsmetrics.score_drift import jensen_shannon_divergence, population_stability_index

# --------------------------------------------------------------------------------------------
# population_stability_index, jensen_shannon_divergence
# --------------------------------------------------------------------------------------------


def test_psi_hand_computed_with_explicit_edges() -> None:
    # Bins (-inf, .25], (.25, inf): baseline 1/2, 1/2; current 1/4, 3/4.
    res = population_stability_index([0.1, 0.2, 0.3, 0.4], [0.1, 0.35, 0.4, 0.45], bins=[0.25])
    expected = 0.25 * math.log(2.0) + 0.25 * math.log(1.5)
    assert res.psi == pytest.approx(expected)
    np.testing.assert_allclose(res.baseline_proportions, [0.5, 0.5])
    np.testing.assert_allclose(res.current_proportions, [0.25, 0.75])
    np.testing.assert_allclose(res.contributions.sum(), res.psi)
    # p-value: psi / (1/4 + 1/4) ~ chi2 with 1 df.
    assert res.p_value == pytest.approx(float(stats.chi2.sf(expected / 0.5, 1)))
    # Edge value 0.25 belongs to the lower bin (right-closed bins).
    on_edge = population_stability_index([0.25, 0.5], [0.25, 0.25], bins=[0.25])
    np.testing.assert_allclose(on_edge.current_proportions[0], 1.0 / (1.0 + 1e-4))


def test_psi_empty_bin_uses_epsilon() -> None:
    res = population_stability_index([0.1, 0.9], [0.1, 0.1], bins=[0.5], epsilon=1e-3)
    c = np.array([1.0, 1e-3]) / 1.001
    expected = float(np.sum((c - 0.5) * np.log(c / 0.5)))
    assert res.psi == pytest.approx(expected)
    assert math.isfinite(res.psi)


def test_psi_quantile_bins_weights_and_identity() -> None:
    rng = np.random.default_rng(21)
    base = rng.uniform(size=10_000)
    res = population_stability_index(base, base, bins=10)
    assert res.edges.size == 9
    np.testing.assert_allclose(res.baseline_proportions, 0.1, atol=1e-3)
    assert res.psi == pytest.approx(0.0, abs=1e-12) and res.p_value == pytest.approx(1.0)
    # Integer weights == repeating scores; scaling weights changes nothing but n_eff.
    cur = rng.beta(2, 3, size=300)
    w = rng.integers(1, 4, size=300).astype(float)
    weighted = population_stability_index(base, cur, bins=10, current_weights=w)
    repeated = population_stability_index(base, np.repeat(cur, w.astype(int)), bins=10)
    assert weighted.psi == pytest.approx(repeated.psi)
    scaled = population_stability_index(base, cur, bins=10, current_weights=7.5 * w)
    assert scaled.psi == pytest.approx(weighted.psi)
    assert weighted.n_eff_current == pytest.approx(w.sum() ** 2 / (w**2).sum())
    # Baseline weights move the quantile edges: each bin holds ~1/10 of the impressions.
    bw = np.where(base < 0.5, 3.0, 1.0)
    wq = population_stability_index(base, cur, bins=10, baseline_weights=bw)
    np.testing.assert_allclose(wq.baseline_proportions, 0.1, atol=2e-3)
    assert np.sum(wq.edges < 0.5) > 5


def test_psi_symmetric_with_fixed_edges_and_detects_a_shift() -> None:
    rng = np.random.default_rng(22)
    a, b = rng.normal(0, 1, 5000), rng.normal(0.3, 1, 5000)
    edges = np.linspace(-2, 2, 9)
    assert population_stability_index(a, b, edges).psi == pytest.approx(
        population_stability_index(b, a, edges).psi
    )
    shifted = population_stability_index(a, b, bins=10)
    same = population_stability_index(a, rng.normal(0, 1, 5000), bins=10)
    assert shifted.psi > 0.05 and shifted.p_value < 1e-10
    assert same.psi < 0.02 and same.p_value > 1e-3


@pytest.mark.parametrize("weighted", [False, True])
def test_psi_null_p_values_are_calibrated(weighted: bool) -> None:
    """Same distribution: P(p < 0.05) ~ 0.05 (chi-square approximation, Kish n_eff)."""
    rng = np.random.default_rng(23 + weighted)
    n_rep, n = 500, 2000
    rejections, scaled = 0, []
    for _ in range(n_rep):
        wa = rng.lognormal(0, 1, n) if weighted else None
        wc = rng.lognormal(0, 1, n) if weighted else None
        res = population_stability_index(
            rng.beta(2, 5, n), rng.beta(2, 5, n), 10, baseline_weights=wa, current_weights=wc
        )
        rejections += res.p_value < 0.05
        scaled.append(res.psi / (1 / res.n_eff_baseline + 1 / res.n_eff_current))
    within(rejections / n_rep, 0.05, math.sqrt(0.05 * 0.95 / n_rep))
    # chi2(9): mean 9, sd sqrt(18).
    within(float(np.mean(scaled)), 9.0, math.sqrt(18 / n_rep))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"baseline_scores": [1.0, 1.0, 1.0]}, "bins: expected at least 2 distinct"),
        ({"current_scores": []}, "current_scores: expected a non-empty 1-d array"),
        ({"current_scores": [0.1, np.nan]}, "current_scores: expected finite values"),
        ({"bins": 1}, "bins: expected an integer >= 2"),
        ({"bins": [0.5, 0.2]}, "bins: expected an integer >= 2 or strictly increasing"),
        ({"current_weights": [1.0]}, r"current_weights: expected shape \(3,\)"),
        ({"current_weights": [1.0, -1.0, 1.0]}, "current_weights: expected values >= 0"),
        ({"baseline_weights": [0.0, 0.0, 0.0]}, "baseline_weights: expected a positive total"),
        ({"epsilon": 0.0}, r"epsilon: expected a number in \(0.0, 0.01\]"),
    ],
)
def test_psi_validation(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "baseline_scores": [0.1, 0.5, 0.9],
        "current_scores": [0.2, 0.4, 0.6],
        "bins": 2,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        population_stability_index(**args)  # type: ignore[arg-type]


def test_jsd_known_values() -> None:
    assert jensen_shannon_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert jensen_shannon_divergence([0.3, 0.7], [0.3, 0.7]) == 0.0
    # M = (.75, .25): KL(P||M) = log2(4/3); KL(Q||M) = .5 log2(2/3) + .5 log2(2).
    expected = 0.5 * (math.log2(4 / 3) + 0.5 * math.log2(2 / 3) + 0.5)
    assert jensen_shannon_divergence([1, 0], [0.5, 0.5]) == pytest.approx(expected)
    assert expected == pytest.approx(0.311278, abs=1e-6)
    # Unnormalised inputs are normalised.
    assert jensen_shannon_divergence([2, 0], [3, 3]) == pytest.approx(expected)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        # scipy halves before dividing, so a subnormal share gives it inf (our own handling of
        # subnormals is tested separately)
        lambda n: st.tuples(
            *[st.lists(st.floats(0, 10, allow_subnormal=False), min_size=n, max_size=n)] * 2
        )
    )
)
def test_jsd_matches_scipy_symmetric_and_bounded(pq: tuple[list[float], list[float]]) -> None:
    p, q = pq
    if sum(p) <= 0 or sum(q) <= 0:
        return
    jsd = jensen_shannon_divergence(p, q)
    assert 0.0 <= jsd <= 1.0
    assert jsd == pytest.approx(jensen_shannon_divergence(q, p), abs=1e-12)
    assert jsd == pytest.approx(float(jensenshannon(p, q, base=2)) ** 2, abs=1e-9)
    assert jensen_shannon_divergence(p, p) == pytest.approx(0.0, abs=1e-12)


def test_jsd_null_scaling_is_chi_square() -> None:
    """8 ln(2) JSD / (1/n_p + 1/n_q) ~ chi2(B - 1) for two samples of one distribution."""
    rng = np.random.default_rng(31)
    probs, n, n_rep = np.array([0.1, 0.2, 0.3, 0.25, 0.15]), 5000, 2000
    counts_p = rng.multinomial(n, probs, size=n_rep)
    counts_q = rng.multinomial(n, probs, size=n_rep)
    stat = np.array(
        [
            8 * math.log(2) * jensen_shannon_divergence(a, b) / (2 / n)
            for a, b in zip(counts_p, counts_q, strict=True)
        ]
    )
    # chi2(4): mean 4, sd sqrt(8).
    within(float(stat.mean()), 4.0, math.sqrt(8 / n_rep))


@pytest.mark.parametrize(
    ("p", "q", "match"),
    [
        ([0.5, 0.5], [1.0], r"q: expected shape \(2,\)"),
        ([-0.1, 1.1], [0.5, 0.5], "p: expected values >= 0"),
        ([0.0, 0.0], [0.5, 0.5], "p: expected a positive total"),
        ([0.5, np.nan], [0.5, 0.5], "p: expected finite values"),
        ([], [], "p: expected a non-empty 1-d array"),
    ],
)
def test_jsd_validation(p: list[float], q: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        jensen_shannon_divergence(p, q)


def test_jsd_with_a_subnormal_share_is_about_zero() -> None:
    """A subnormal share (found by hypothesis): halving it underflows to 0, which must not turn
    a near-identical pair into 'disjoint supports' (JSD 1)."""
    assert jensen_shannon_divergence([0.0, 0.0, 1.0], [0.0, 5e-324, 1.0]) == pytest.approx(
        0.0, abs=1e-12
    )
