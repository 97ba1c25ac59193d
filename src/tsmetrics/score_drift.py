"""Drift of the distribution of enforcement-model risk scores, impression-weighted.

* :func:`population_stability_index` -- PSI on baseline-quantile bins, with its chi-square null
  approximation.
* :func:`jensen_shannon_divergence` -- Jensen-Shannon divergence (base 2) of two binned
  distributions.

References
----------
Lin, J. (1991). Divergence measures based on the Shannon entropy. *IEEE Transactions on
Information Theory* 37(1), 145-151.

Yurdakul, B. (2018). *Statistical properties of population stability index*. PhD dissertation,
Western Michigan University.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike
from scipy import special, stats

from tsmetrics.validation import (
    float_array,
    integer_at_least,
    real_in_range,
    require_nonnegative,
)

__all__ = ["PSIResult", "jensen_shannon_divergence", "population_stability_index"]

FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# Score distribution drift
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PSIResult:
    """Result of :func:`population_stability_index`.

    Attributes
    ----------
    psi : float
        ``sum_b (c_b - a_b) ln(c_b / a_b)`` on the smoothed proportions.
    p_value : float
        Approximate p-value of "same distribution": ``P(chi2_{B-1} > psi / (1/n_a + 1/n_c))``
        with Kish effective sample sizes (see :func:`population_stability_index`).
    edges : ndarray of float
        Inner bin edges (``B - 1`` of them); bins are ``(-inf, e_1], (e_1, e_2], ...,
        (e_{B-1}, inf)``.
    baseline_proportions, current_proportions : ndarray of float
        ``a_b`` and ``c_b``, weighted, smoothed, each summing to 1.
    contributions : ndarray of float
        Per-bin terms ``(c_b - a_b) ln(c_b / a_b)`` (all ``>= 0``).
    n_eff_baseline, n_eff_current : float
        Kish effective sample sizes ``(sum w)^2 / sum w^2``.
    """

    psi: float
    p_value: float
    edges: FloatArray
    baseline_proportions: FloatArray
    current_proportions: FloatArray
    contributions: FloatArray
    n_eff_baseline: float
    n_eff_current: float


def _scores_and_weights(
    name: str, scores: ArrayLike, weights_name: str, weights: ArrayLike | None
) -> tuple[FloatArray, FloatArray]:
    x = float_array(name, scores, allow_nan=False, min_ndim=1)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-d array, got shape {x.shape}")
    if weights is None:
        return x, np.ones_like(x)
    w = float_array(weights_name, weights, allow_nan=False, min_ndim=1)
    if w.shape != x.shape:
        raise ValueError(f"{weights_name}: expected shape {x.shape} (as {name}), got {w.shape}")
    require_nonnegative(weights_name, w)
    if not w.sum() > 0.0:
        raise ValueError(f"{weights_name}: expected a positive total weight, got {w.sum()!r}")
    return x, w


def _weighted_quantile_edges(x: FloatArray, w: FloatArray, n_bins: int) -> FloatArray:
    """Inner edges at the weighted quantiles ``j / n_bins`` (inverted CDF), deduplicated."""
    order = np.argsort(x, kind="stable")
    xs, cw = x[order], np.cumsum(w[order])
    probs = np.arange(1, n_bins) / n_bins
    idx = np.searchsorted(cw, probs * cw[-1], side="left")
    edges: FloatArray = np.unique(xs[np.minimum(idx, xs.size - 1)])
    # The top edge at the maximum would leave an empty last bin for the baseline.
    return edges[edges < xs[-1]]


def population_stability_index(
    baseline_scores: ArrayLike,
    current_scores: ArrayLike,
    bins: int | ArrayLike = 10,
    *,
    baseline_weights: ArrayLike | None = None,
    current_weights: ArrayLike | None = None,
    epsilon: float = 1e-4,
) -> PSIResult:
    """Population stability index of a score distribution, impression-weighted.

    Bins are fixed on the baseline: with ``bins=B`` the inner edges are the weighted
    ``1/B, ..., (B-1)/B`` quantiles of the baseline scores (so each bin holds about ``1/B`` of
    the baseline impressions; tied scores can merge bins), or the given edges. Bins are
    ``(-inf, e_1], (e_1, e_2], ..., (e_{B-1}, inf)`` so every current score falls in one.
    With ``a_b`` and ``c_b`` the weighted shares of the baseline and current impressions in bin
    ``b``, empty bins are floored at ``epsilon`` and the shares renormalised, then::

        PSI = sum_b (c_b - a_b) ln(c_b / a_b)

    i.e. the symmetrised Kullback-Leibler (Jeffreys) divergence ``KL(c||a) + KL(a||c)`` of the
    binned distributions. Rule of thumb (Siddiqi 2006): < 0.1 stable, 0.1-0.25 moderate shift,
    > 0.25 major shift -- but PSI also grows with sampling noise on small samples.

    Null distribution: for two independent samples from the same distribution, of sizes
    ``n_a`` and ``n_c``, ``PSI / (1/n_a + 1/n_c)`` is asymptotically chi-square with ``B - 1``
    degrees of freedom (Yurdakul 2018), also with baseline-quantile bins. With weights, ``n``
    is replaced by Kish's effective size ``(sum w)^2 / sum w^2`` (an approximation, fair for
    weights unrelated to the scores); the p-value ignores the ``epsilon`` floor, so it is only
    meaningful when the bins are well filled.

    Parameters
    ----------
    baseline_scores, current_scores : array_like of float, 1-d
        Scores of the baseline and current periods (finite).
    bins : int or array_like of float, default 10
        Number of baseline-quantile bins (``>= 2``) or the inner edges (strictly increasing).
    baseline_weights, current_weights : array_like of float, optional
        Impressions per score (``>= 0``, positive total); unweighted when omitted.
    epsilon : float, default 1e-4
        Floor for empty bins' shares, in ``(0, 0.01]``.

    Returns
    -------
    PSIResult

    Raises
    ------
    ValueError
        On empty or non-finite scores, bad weights, fewer than 2 bins (e.g. a constant
        baseline), non-increasing edges or an invalid ``epsilon``.

    References
    ----------
    Siddiqi, N. (2006). *Credit Risk Scorecards*. Wiley. Yurdakul (2018), PhD dissertation,
    Western Michigan University. Kish, L. (1965). *Survey Sampling*. Wiley.
    """
    xa, wa = _scores_and_weights(
        "baseline_scores", baseline_scores, "baseline_weights", baseline_weights
    )
    xc, wc = _scores_and_weights(
        "current_scores", current_scores, "current_weights", current_weights
    )
    eps = real_in_range("epsilon", epsilon, low=0.0, high=0.01, closed="right")
    if isinstance(bins, numbers.Integral) and not isinstance(bins, bool):
        n_bins = integer_at_least("bins", bins, minimum=2)
        edges = _weighted_quantile_edges(xa, wa, n_bins)
        if edges.size == 0:
            raise ValueError(
                "bins: expected at least 2 distinct baseline-quantile bins, got 1 "
                "(the baseline scores are constant)"
            )
    else:
        edges = float_array("bins", bins, allow_nan=False, min_ndim=1)
        if edges.ndim != 1 or edges.size == 0 or np.any(np.diff(edges) <= 0.0):
            raise ValueError(
                f"bins: expected an integer >= 2 or strictly increasing 1-d edges, got {bins!r}"
            )
    n_total = edges.size + 1

    def shares(x: FloatArray, w: FloatArray) -> FloatArray:
        hist = np.bincount(np.searchsorted(edges, x, side="left"), weights=w, minlength=n_total)
        prop = np.maximum(hist / hist.sum(), eps)
        out: FloatArray = prop / prop.sum()
        return out

    a = shares(xa, wa)
    c = shares(xc, wc)
    contributions = (c - a) * np.log(c / a)
    psi = float(contributions.sum())
    n_a = float(wa.sum() ** 2 / (wa * wa).sum())
    n_c = float(wc.sum() ** 2 / (wc * wc).sum())
    p_value = float(stats.chi2.sf(psi / (1.0 / n_a + 1.0 / n_c), n_total - 1))
    return PSIResult(
        psi=psi,
        p_value=p_value,
        edges=edges,
        baseline_proportions=a,
        current_proportions=c,
        contributions=contributions,
        n_eff_baseline=n_a,
        n_eff_current=n_c,
    )


def jensen_shannon_divergence(p: ArrayLike, q: ArrayLike) -> float:
    """Jensen-Shannon divergence (base 2) of two discrete distributions, in ``[0, 1]``.

    With ``M = (P + Q) / 2``::

        JSD(P, Q) = KL(P || M) / 2 + KL(Q || M) / 2 = H(M) - (H(P) + H(Q)) / 2

    in bits (``0 log 0 = 0``). Symmetric, 0 iff ``P = Q``, 1 iff the supports are disjoint;
    its square root is a metric, :func:`scipy.spatial.distance.jensenshannon` with ``base=2``.

    Null distribution: for proportions estimated from two independent samples of sizes ``n_p``
    and ``n_q`` from the same distribution over ``B`` categories, ``8 ln(2) JSD / (1/n_p + 1/n_q)``
    is asymptotically chi-square with ``B - 1`` degrees of freedom (near ``P = Q``, ``JSD`` in nats
    is about an eighth of the Jeffreys divergence, i.e. of the PSI).

    Parameters
    ----------
    p, q : array_like of float, 1-d
        Non-negative weights over the same categories (e.g. the binned shares of
        :class:`PSIResult`); each is normalised to sum to 1.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On mismatched lengths, negative or non-finite entries or a zero total.

    References
    ----------
    Lin (1991), *IEEE Trans. Inf. Theory* 37, 145-151.
    """
    pa = float_array("p", p, allow_nan=False, min_ndim=1)
    qa = float_array("q", q, allow_nan=False, min_ndim=1)
    if pa.ndim != 1 or pa.size == 0:
        raise ValueError(f"p: expected a non-empty 1-d array, got shape {pa.shape}")
    if qa.shape != pa.shape:
        raise ValueError(f"q: expected shape {pa.shape} (as p), got {qa.shape}")
    for name, arr in (("p", pa), ("q", qa)):
        require_nonnegative(name, arr)
        if not arr.sum() > 0.0:
            raise ValueError(f"{name}: expected a positive total, got {arr.sum()!r}")
    pn = pa / pa.sum()
    qn = qa / qa.sum()
    # KL(P || M) = sum p log(2p / (p + q)) = sum rel_entr(2p, p + q) / 2: the ratio is formed
    # without halving p + q, so a subnormal share (whose half underflows to 0) gives its ~0
    # term instead of an infinite one.
    both = pn + qn
    nats = 0.25 * (special.rel_entr(2.0 * pn, both).sum() + special.rel_entr(2.0 * qn, both).sum())
    return float(min(max(nats / math.log(2.0), 0.0), 1.0))
