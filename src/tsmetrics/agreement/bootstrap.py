"""Percentile bootstrap interval of any agreement coefficient, resampling items."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import numpy.typing as npt

from tsmetrics.agreement._inputs import Ratings, _as_ratings_matrix

# --------------------------------------------------------------------------------------------
# Bootstrap over items
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile bootstrap interval of an agreement statistic.

    Attributes
    ----------
    estimate : float
        The statistic on the original ratings.
    low, high : float
        Percentile interval ``[(1 - confidence) / 2, (1 + confidence) / 2]`` quantiles of the
        valid (non-``nan``) bootstrap replicates; ``nan`` when none is valid.
    confidence : float
        Nominal coverage of ``[low, high]``.
    std_error : float
        Standard deviation of the valid replicates (``ddof=1``); ``nan`` with fewer than 2.
    n_resamples : int
        Number of bootstrap resamples drawn.
    n_valid : int
        Resamples whose statistic was not ``nan`` (e.g. kappa is undefined on a resample that
        holds one category only); the interval uses these alone.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    std_error: float
    n_resamples: int
    n_valid: int


def _metric_value(value: object) -> float:
    if isinstance(value, Real) and not isinstance(value, bool):
        return float(value)
    estimate = getattr(value, "estimate", None)
    if isinstance(estimate, Real) and not isinstance(estimate, bool):
        return float(estimate)
    raise ValueError(
        "metric: expected a function returning a number or a result with a numeric "
        f"'estimate' attribute, got {type(value).__name__}"
    )


def bootstrap_ci(
    metric: Callable[[npt.NDArray[Any]], object],
    ratings: Ratings,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    rng: np.random.Generator,
) -> BootstrapResult:
    """Percentile bootstrap confidence interval of an agreement statistic, resampling items.

    Estimand: the interval aims to cover the population value of ``metric`` for a population
    of items rated by these raters (raters held fixed). Each of ``n_resamples`` resamples draws
    ``N`` rows of ``ratings`` with replacement (``N`` = number of rows) and evaluates ``metric``
    on them; the interval is the pair of ``(1 -/+ confidence) / 2`` quantiles of the replicates
    (Efron & Tibshirani 1993, ch. 13; linear interpolation between order statistics). Replicates
    that are ``nan`` are left out and counted in ``n_valid``. The standard error reported is the
    standard deviation of the replicates.

    Parameters
    ----------
    metric : callable
        Called with a 2-d numpy array of rows of ``ratings`` (labels as given, missing cells
        kept); returns a number or a result with an ``estimate`` attribute, e.g.
        :func:`fleiss_kappa`, :func:`krippendorff_alpha_nominal`, :func:`gwet_ac1` or
        :func:`percent_agreement`. For :func:`gwet_ac1` fix the categories with
        ``functools.partial(gwet_ac1, categories=...)``, or a resample missing a rare category
        would change ``q``.
    ratings : items x raters matrix
        See the module docstring.
    n_resamples : int, default 2000
        Number of bootstrap resamples, at least 1.
    confidence : float, default 0.95
        Nominal coverage, in ``(0, 1)``.
    rng : numpy.random.Generator
        Source of randomness; the same seed gives the same interval.

    Returns
    -------
    BootstrapResult

    Raises
    ------
    ValueError
        On an invalid ``ratings`` matrix, ``n_resamples``, ``confidence``, ``rng`` or
        ``metric`` return value; errors raised by ``metric`` propagate.

    References
    ----------
    Efron & Tibshirani (1993), *An Introduction to the Bootstrap*, ch. 13.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer):
        raise ValueError(f"n_resamples: expected an integer >= 1, got {n_resamples!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples: expected an integer >= 1, got {n_resamples!r}")
    if not (isinstance(confidence, Real) and 0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    if not callable(metric):
        raise ValueError(f"metric: expected a callable, got {type(metric).__name__}")
    arr = _as_ratings_matrix(ratings)
    n = arr.shape[0]
    estimate = _metric_value(metric(arr))
    replicates = np.empty(int(n_resamples), dtype=np.float64)
    for b in range(int(n_resamples)):
        replicates[b] = _metric_value(metric(arr[rng.integers(0, n, size=n)]))
    valid = replicates[~np.isnan(replicates)]
    tail = (1.0 - float(confidence)) / 2.0
    if valid.size:
        low, high = (float(v) for v in np.quantile(valid, [tail, 1.0 - tail]))
    else:
        low = high = float("nan")
    return BootstrapResult(
        estimate=estimate,
        low=low,
        high=high,
        confidence=float(confidence),
        std_error=float(np.std(valid, ddof=1)) if valid.size >= 2 else float("nan"),
        n_resamples=int(n_resamples),
        n_valid=int(valid.size),
    )
