"""Control charts on standardized daily values: tabular CUSUM, EWMA and their run lengths.

* :func:`standardize` -- ``z_t = (x_t - mu0) / sqrt(s_t^2 + tau^2)``.
* :func:`poisson_normal_scores` -- normal scores of right-skewed rare-event estimates under a
  moment-matched scaled-Poisson in-control model (mid-p probability integral transform), so
  that the charts' normal-theory run lengths hold for rare policies too.
* :func:`cusum`, :func:`ewma` -- the tabular (Page 1954) CUSUM and the EWMA chart (Roberts 1959)
  on standardized values, with :class:`CusumChart` and :class:`EwmaChart`.
* :func:`average_run_length` -- run-length simulation (in-control ``ARL0``, out-of-control
  ``ARL1``), checked in the tests against Montgomery's tables and integral equations.

Everything random takes an explicit :class:`numpy.random.Generator`.

References
----------
Page, E. S. (1954). Continuous inspection schemes. *Biometrika* 41(1/2), 100-115.

Roberts, S. W. (1959). Control chart tests based on geometric moving averages.
*Technometrics* 1(3), 239-250.

Lucas, J. M. and Saccucci, M. S. (1990). Exponentially weighted moving average control schemes:
properties and enhancements. *Technometrics* 32(1), 1-12.

Montgomery, D. C. (2019). *Introduction to Statistical Quality Control*, 8th ed., Wiley,
chapter 9 (tabular CUSUM, Table 9.3; EWMA, Table 9.11).

Quesenberry, C. P. (1991). SPC Q charts for start-up processes and short or long runs.
*Journal of Quality Technology* 23(3), 213-224 (charting normal scores ``Phi^-1(F(x))``).

Lancaster, H. O. (1961). Significance tests in discrete distributions. *JASA* 56, 223-234
(the mid-p value).

Fay, M. P. and Feuer, E. J. (1997). Confidence intervals for directly standardized rates: a
method based on the gamma distribution. *Statistics in Medicine* 16, 791-801 (the
moment-matched scaled Poisson / gamma model of a weighted sum of rare events).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike
from scipy import signal, special, stats

from tsmetrics.validation import (
    float_array,
    integer_at_least,
    one_of,
    real_in_range,
    require_nonnegative,
)

__all__ = [
    "CusumChart",
    "CusumResult",
    "EwmaChart",
    "EwmaResult",
    "RunLengthEstimate",
    "Sides",
    "average_run_length",
    "cusum",
    "ewma",
    "poisson_normal_scores",
    "standardize",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

Sides = Literal["both", "upper", "lower"]

_SIDES = ("both", "upper", "lower")
_EWMA_LIMITS = ("exact", "asymptotic")


# --------------------------------------------------------------------------------------------
# Control charts
# --------------------------------------------------------------------------------------------


def standardize(
    estimates: ArrayLike,
    std_errors: ArrayLike,
    target: ArrayLike,
    *,
    between_day_variance: float = 0.0,
) -> FloatArray:
    """Standardize daily estimates: ``z_t = (x_t - mu0) / sqrt(s_t^2 + tau^2)``.

    Under the in-control model ``x_t ~ N(mu0, s_t^2 + tau^2)`` independently, ``z_t`` is
    i.i.d. N(0, 1), so the charts' textbook run lengths apply whatever the day-to-day precision.
    A shift ``delta`` of the prevalence is a shift of ``delta / sqrt(s_t^2 + tau^2)`` of
    ``z_t``: larger on days with more precise estimates. When ``mu0`` is itself estimated (e.g.
    a baseline mean) the ``z_t`` share its error and the in-control run length is more variable
    than the known-parameter value.

    Parameters
    ----------
    estimates, std_errors : array_like of float
        ``x_t`` and ``s_t`` (``>= 0``), same shape, time along the last axis.
    target : array_like of float
        ``mu0``, broadcast against ``estimates``.
    between_day_variance : float, default 0.0
        ``tau^2 >= 0``, real day-to-day variation of the prevalence to treat as in control.

    Returns
    -------
    ndarray of float

    Raises
    ------
    ValueError
        On non-finite inputs, mismatched shapes, negative standard errors, a zero total
        variance or a negative ``between_day_variance``.
    """
    x = float_array("estimates", estimates, allow_nan=False)
    s = float_array("std_errors", std_errors, allow_nan=False)
    mu0 = float_array("target", target, allow_nan=False)
    if s.shape != x.shape:
        raise ValueError(f"std_errors: expected shape {x.shape} (as estimates), got {s.shape}")
    try:
        np.broadcast_shapes(mu0.shape, x.shape)
    except ValueError:
        raise ValueError(
            f"target: expected a shape broadcastable to {x.shape}, got {mu0.shape}"
        ) from None
    require_nonnegative("std_errors", s)
    tau2 = real_in_range("between_day_variance", between_day_variance, low=0.0, high=math.inf)
    var = s * s + tau2
    if np.any(var <= 0.0):
        raise ValueError(
            "std_errors: expected positive values (or between_day_variance > 0), got "
            f"{int((var <= 0.0).sum())} zero standard error(s)"
        )
    out: FloatArray = (x - mu0) / np.sqrt(var)
    return out


def poisson_normal_scores(values: ArrayLike, mean: float, variance: float) -> FloatArray:
    """Normal scores of rare-event estimates under a moment-matched scaled-Poisson model.

    A daily Horvitz-Thompson prevalence estimate of a rare policy is a sum of a few large
    positive terms ``y_i / (pi_i X)``: right-skewed, with an atom at 0 on days whose sample holds
    no violating unit. Standardizing it linearly, ``(x - mu0) / sigma0``, gives far more values
    above +3 than a normal variable has, and a CUSUM's upper arm on them false-alarms far more
    often than its normal-theory ARL says. This transform charts normal scores instead. The
    in-control model is the scaled Poisson with the given first two moments (Fay & Feuer's
    gamma model of a weighted sum of rare events, with Kish's effective number of events)::

        X = w K,   K ~ Poisson(lam),   lam = mean^2 / variance,   w = variance / mean,

    ``lam`` the effective number of violating units a day's sample holds. A value ``x`` is
    ``k = x / w`` effective events; its mid-p probability (Lancaster 1961),
    ``u = P(K < k) + P(K = k) / 2``, is interpolated for non-integer ``k`` by the regularised
    upper incomplete gamma function ``u = Q(k + 1/2, lam)`` (for integer ``k``,
    ``P(K < k) = Q(k, lam)`` and ``P(K <= k) = Q(k + 1, lam)``), and::

        z = Phi^-1(u)

    Properties: as ``lam`` grows ``z -> (x - mean) / sqrt(variance)`` (the linear
    standardization); a day with no event gets ``z = Phi^-1(Q(1/2, lam))``, close to the exact
    mid-p ``Phi^-1(exp(-lam) / 2)``, instead of the very negative linear value; under the model
    ``E[u] = 1/2`` and ``z`` is close to N(0, 1), with a variance below 1 when ``lam`` is under
    about 1 (discreteness: conservative for a chart). The model assumes equal event weights; a
    heavier-tailed weight distribution leaves some excess in the upper tail, which the checks
    simulation measures (``docs/checks_proof.md``).

    Parameters
    ----------
    values : array_like of float
        Estimates ``x`` (finite); negative values count as 0 events.
    mean, variance : float
        In-control mean and variance of one value, both ``> 0`` (e.g. a baseline's mean
        estimate and the mean of its squared standard errors).

    Returns
    -------
    ndarray of float
        ``z``, the shape of ``values``; finite (``|z| <= 37``).

    Raises
    ------
    ValueError
        On non-finite values or a mean or variance that is not a finite number ``> 0``.

    References
    ----------
    Quesenberry (1991), *J. Quality Technology* 23, 213-224; Lancaster (1961), *JASA* 56,
    223-234; Fay & Feuer (1997), *Statistics in Medicine* 16, 791-801.
    """
    x = float_array("values", values, allow_nan=False)
    mu = real_in_range("mean", mean, low=0.0, high=math.inf, closed="neither")
    var = real_in_range("variance", variance, low=0.0, high=math.inf, closed="neither")
    lam, weight = mu * mu / var, var / mu
    shape = np.maximum(x, 0.0) / weight + 0.5
    lower = special.gammaincc(shape, lam)  # u, accurate when small
    upper = special.gammainc(shape, lam)  # 1 - u, accurate when small
    tiny = 1e-300
    out: FloatArray = np.where(
        lower < 0.5,
        stats.norm.ppf(np.maximum(lower, tiny)),
        stats.norm.isf(np.maximum(upper, tiny)),
    )
    return out


@dataclass(frozen=True)
class CusumChart:
    """Tabular CUSUM on standardized values (Montgomery ch. 9.1), see :func:`cusum`.

    Attributes
    ----------
    k : float, default 0.5
        Reference value (allowance) in standard deviations, ``>= 0``; ``k = delta / 2`` is
        optimal for detecting a shift of ``delta``.
    h : float, default 5.0
        Decision interval in standard deviations, ``> 0``.
    sides : {"both", "upper", "lower"}, default "both"
        Which side signals: both (two-sided), ``C+`` only (rises) or ``C-`` only (falls).
    """

    k: float = 0.5
    h: float = 5.0
    sides: Sides = "both"

    def __post_init__(self) -> None:
        real_in_range("k", self.k, low=0.0, high=math.inf)
        real_in_range("h", self.h, low=0.0, high=math.inf, closed="right")
        one_of("sides", self.sides, _SIDES)


@dataclass(frozen=True)
class EwmaChart:
    """EWMA chart on standardized values (Roberts 1959; Montgomery ch. 9.2), see :func:`ewma`.

    Attributes
    ----------
    lam : float, default 0.1
        Smoothing constant ``lambda`` in ``(0, 1]``.
    L : float, default 2.814
        Width of the control limits in standard deviations of the EWMA statistic, ``> 0``
        (``lam=0.1, L=2.814`` gives an in-control ARL of about 500 with asymptotic limits,
        Lucas & Saccucci 1990).
    limits : {"exact", "asymptotic"}, default "exact"
        Exact time-varying limits ``L sqrt(lam / (2 - lam) (1 - (1 - lam)^(2t)))`` or their
        limit ``L sqrt(lam / (2 - lam))`` (the ARL tables of Lucas & Saccucci use the latter).
    sides : {"both", "upper", "lower"}, default "both"
        Which limit signals.
    """

    lam: float = 0.1
    L: float = 2.814
    limits: Literal["exact", "asymptotic"] = "exact"
    sides: Sides = "both"

    def __post_init__(self) -> None:
        real_in_range("lam", self.lam, low=0.0, high=1.0, closed="right")
        real_in_range("L", self.L, low=0.0, high=math.inf, closed="right")
        one_of("limits", self.limits, _EWMA_LIMITS)
        one_of("sides", self.sides, _SIDES)


@dataclass(frozen=True, eq=False)
class CusumResult:
    """Result of :func:`cusum`.

    Attributes
    ----------
    upper, lower : ndarray of float
        ``C+_t`` and ``C-_t`` (both ``>= 0``), shape of ``z``.
    first_signal : ndarray of int
        Index along the last axis of the first signal (``C+_t > h`` or ``C-_t > h``, as
        ``sides`` says); ``-1`` when there is none. Shape ``z.shape[:-1]`` (0-d for one
        series; the run length is ``first_signal + 1``).
    chart : CusumChart
        The parameters.
    """

    upper: FloatArray
    lower: FloatArray
    first_signal: IntArray
    chart: CusumChart

    @property
    def signals(self) -> BoolArray:
        """Boolean array (shape of ``z``): where the chart is out of control."""
        return _cusum_signal(self.upper, self.lower, self.chart)


@dataclass(frozen=True, eq=False)
class EwmaResult:
    """Result of :func:`ewma`.

    Attributes
    ----------
    statistic : ndarray of float
        ``w_t``, shape of ``z``.
    limit : ndarray of float
        Control limit ``c_t`` (the limits are ``+-c_t``), shape ``(T,)``.
    first_signal : ndarray of int
        Index along the last axis of the first point outside the limits (per ``sides``),
        ``-1`` when there is none; shape ``z.shape[:-1]``.
    chart : EwmaChart
        The parameters.
    """

    statistic: FloatArray
    limit: FloatArray
    first_signal: IntArray
    chart: EwmaChart

    @property
    def signals(self) -> BoolArray:
        """Boolean array (shape of ``z``): where the statistic is outside the limits."""
        return _ewma_signal(self.statistic, self.limit, self.chart)


def _cusum_block(
    z: FloatArray, k: float, c_plus0: FloatArray, c_minus0: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """``C+`` and ``C-`` along the last axis from the starting values ``c_plus0, c_minus0``.

    The recursion ``C_t = max(0, C_{t-1} + y_t)`` (Lindley) unrolls to
    ``C_t = S_t - min(-C_0, min_{1<=s<=t} S_s)`` with ``S_t = y_1 + ... + y_t``; vectorised.
    """
    s_up = np.cumsum(z - k, axis=-1)
    upper = s_up - np.minimum(np.minimum.accumulate(s_up, axis=-1), -c_plus0[..., None])
    s_lo = np.cumsum(-z - k, axis=-1)
    lower = s_lo - np.minimum(np.minimum.accumulate(s_lo, axis=-1), -c_minus0[..., None])
    return upper, lower


def _cusum_signal(upper: FloatArray, lower: FloatArray, chart: CusumChart) -> BoolArray:
    if chart.sides == "upper":
        return upper > chart.h
    if chart.sides == "lower":
        return lower > chart.h
    out: BoolArray = (upper > chart.h) | (lower > chart.h)
    return out


def _ewma_limits(chart: EwmaChart, t0: int, n: int) -> FloatArray:
    """Control limits at times ``t0 + 1, ..., t0 + n``."""
    asym = chart.L * math.sqrt(chart.lam / (2.0 - chart.lam))
    if chart.limits == "asymptotic" or chart.lam == 1.0:
        return np.full(n, asym)
    t = np.arange(t0 + 1, t0 + n + 1, dtype=np.float64)
    # 1 - (1 - lam)^(2t), accurately for small lam.
    frac = -np.expm1(2.0 * t * math.log1p(-chart.lam))
    out: FloatArray = asym * np.sqrt(frac)
    return out


def _ewma_block(z: FloatArray, lam: float, w0: FloatArray) -> FloatArray:
    """``w_t = lam z_t + (1 - lam) w_{t-1}`` along the last axis from ``w0`` (an IIR filter)."""
    out, _ = signal.lfilter(
        [lam], [1.0, -(1.0 - lam)], z, axis=-1, zi=((1.0 - lam) * w0)[..., None]
    )
    return np.asarray(out, dtype=np.float64)


def _ewma_signal(w: FloatArray, limit: FloatArray, chart: EwmaChart) -> BoolArray:
    if chart.sides == "upper":
        return w > limit
    if chart.sides == "lower":
        return w < -limit
    out: BoolArray = np.abs(w) > limit
    return out


def _first_true(signals: BoolArray) -> IntArray:
    first = np.argmax(signals, axis=-1)
    out: IntArray = np.where(signals.any(axis=-1), first, -1).astype(np.int64)
    return out


def _series(name: str, z: ArrayLike) -> FloatArray:
    arr = float_array(name, z, allow_nan=False, min_ndim=1)
    if arr.shape[-1] == 0:
        raise ValueError(f"{name}: expected at least 1 time point, got shape {arr.shape}")
    return arr


def cusum(z: ArrayLike, k: float = 0.5, h: float = 5.0, *, sides: Sides = "both") -> CusumResult:
    """Tabular (Page 1954) two-sided CUSUM on standardized values.

    With ``z_t = (x_t - mu0) / sigma_t`` (see :func:`standardize`), ``C+_0 = C-_0 = 0``::

        C+_t = max(0, z_t - k + C+_{t-1})
        C-_t = max(0, -z_t - k + C-_{t-1})

    and the chart signals at the first ``t`` with ``C+_t > h`` or ``C-_t > h``. ``C+``
    accumulates evidence of an upward shift of at least about ``2k`` standard deviations, ``C-``
    of a downward one. There is no restart after a signal (the paths go on as defined).

    Null distribution: with ``z_t`` i.i.d. N(0, 1) the run length (``first_signal + 1``) has a
    roughly geometric distribution; its mean (ARL) for ``k = 0.5`` is 168 for ``h = 4`` and 465
    for ``h = 5`` two-sided (Montgomery Table 9.3; about twice that one-sided), and 8.38 / 10.4
    for a 1-sigma shift. See :func:`average_run_length`.

    Parameters
    ----------
    z : array_like of float, shape ``(..., T)``
        Standardized values, time along the last axis (several series at once allowed).
        Finite; drop or impute missing days beforehand.
    k : float, default 0.5
        Reference value, ``>= 0``.
    h : float, default 5.0
        Decision interval, ``> 0``.
    sides : {"both", "upper", "lower"}, default "both"
        Which side counts as a signal (both paths are always returned).

    Returns
    -------
    CusumResult

    Raises
    ------
    ValueError
        On non-finite ``z``, an empty series or invalid parameters.

    References
    ----------
    Page (1954), *Biometrika* 41, 100-115; Montgomery (2019), *Introduction to Statistical
    Quality Control*, 8th ed., section 9.1 and Table 9.3.
    """
    chart = CusumChart(k=k, h=h, sides=sides)
    arr = _series("z", z)
    zeros = np.zeros(arr.shape[:-1])
    upper, lower = _cusum_block(arr, chart.k, zeros, zeros)
    return CusumResult(
        upper=upper,
        lower=lower,
        first_signal=_first_true(_cusum_signal(upper, lower, chart)),
        chart=chart,
    )


def ewma(
    z: ArrayLike,
    lam: float = 0.1,
    L: float = 2.814,
    *,
    limits: Literal["exact", "asymptotic"] = "exact",
    sides: Sides = "both",
) -> EwmaResult:
    """EWMA control chart (Roberts 1959) on standardized values with exact control limits.

    With ``z_t`` standardized (in-control mean 0, variance 1) and ``w_0 = 0``::

        w_t = lam z_t + (1 - lam) w_{t-1}
        c_t = L sqrt(lam / (2 - lam) (1 - (1 - lam)^(2t)))

    ``c_t / L`` is the exact standard deviation of ``w_t`` for i.i.d. unit-variance ``z``, so
    ``w_t / (c_t / L)`` is N(0, 1) at every ``t`` under the null; the chart signals at the first
    ``|w_t| > c_t``. ``limits="asymptotic"`` uses ``c_inf = L sqrt(lam / (2 - lam))``
    throughout, as in the ARL tables.

    Null distribution: for ``lam = 0.1``, ``L = 2.814`` (asymptotic limits) the in-control ARL is
    about 500 and about 10.3 for a 1-sigma shift (Lucas & Saccucci 1990; Montgomery Table 9.11).
    Exact limits are narrower at the start, so false alarms come somewhat earlier and the
    in-control ARL is a little smaller; see :func:`average_run_length`.

    Parameters
    ----------
    z : array_like of float, shape ``(..., T)``
        Standardized values, time along the last axis; finite.
    lam : float, default 0.1
        Smoothing constant in ``(0, 1]`` (``lam = 1`` is a Shewhart chart).
    L : float, default 2.814
        Limit width, ``> 0``.
    limits : {"exact", "asymptotic"}, default "exact"
    sides : {"both", "upper", "lower"}, default "both"

    Returns
    -------
    EwmaResult

    Raises
    ------
    ValueError
        On non-finite ``z``, an empty series or invalid parameters.

    References
    ----------
    Roberts (1959), *Technometrics* 1, 239-250; Lucas & Saccucci (1990), *Technometrics* 32,
    1-12; Montgomery (2019), section 9.2 and Table 9.11.
    """
    chart = EwmaChart(lam=lam, L=L, limits=limits, sides=sides)
    arr = _series("z", z)
    w = _ewma_block(arr, chart.lam, np.zeros(arr.shape[:-1]))
    limit = _ewma_limits(chart, 0, arr.shape[-1])
    return EwmaResult(
        statistic=w,
        limit=limit,
        first_signal=_first_true(_ewma_signal(w, limit, chart)),
        chart=chart,
    )


@dataclass(frozen=True)
class RunLengthEstimate:
    """Result of :func:`average_run_length`.

    Attributes
    ----------
    arl : float
        Mean run length over the simulations (a lower bound when ``n_censored > 0``: censored
        runs count as ``horizon``).
    std_error : float
        Monte Carlo standard error of ``arl``, ``sdrl / sqrt(n_sims)``.
    sdrl : float
        Standard deviation of the run length.
    median : float
        Median run length.
    n_sims : int
        Number of simulated charts.
    n_censored : int
        Runs without a signal within ``horizon`` steps.
    horizon : int
        Longest run simulated.
    shift : float
        Mean of the simulated ``z_t``.
    """

    arl: float
    std_error: float
    sdrl: float
    median: float
    n_sims: int
    n_censored: int
    horizon: int
    shift: float


_SIM_BLOCK_ELEMENTS = 1 << 22  # about 32 MB of normal draws per block


def average_run_length(
    chart: CusumChart | EwmaChart,
    shift: float = 0.0,
    n_sims: int = 10_000,
    horizon: int = 100_000,
    *,
    rng: np.random.Generator,
) -> RunLengthEstimate:
    """Average run length (ARL) of a control chart, by simulation.

    Simulates ``n_sims`` independent charts fed with ``z_t ~ N(shift, 1)`` i.i.d. from ``t = 1``
    (zero-state ARL: the shift is present from the start, the chart starts at 0) and records the
    run length ``RL``, the time of the first signal. ``shift = 0`` gives the in-control ``ARL0``
    (mean time to a false alarm), ``shift = delta`` the out-of-control ``ARL1`` for a shift of
    ``delta`` standard errors. ``arl`` is the mean of ``RL``, with Monte Carlo standard error
    ``sd(RL) / sqrt(n_sims)``; by the CLT ``arl`` is approximately normal around the true ARL.
    Runs longer than ``horizon`` are censored at ``horizon``.

    All charts are advanced together in blocks of time steps (vectorised across simulations and
    time); finished charts are dropped after each block.

    Parameters
    ----------
    chart : CusumChart or EwmaChart
        The chart.
    shift : float, default 0.0
        Mean of the standardized values.
    n_sims : int, default 10_000
        Number of simulated charts, ``>= 2``.
    horizon : int, default 100_000
        Longest run simulated, ``>= 1``.
    rng : numpy.random.Generator
        Source of randomness (results are reproducible for a seeded generator).

    Returns
    -------
    RunLengthEstimate

    Raises
    ------
    ValueError
        On an unknown chart type, a non-finite shift, ``n_sims < 2``, ``horizon < 1`` or
        ``rng`` not a :class:`numpy.random.Generator`.

    References
    ----------
    Brook, D. and Evans, D. A. (1972). An approach to the probability distribution of CUSUM run
    length. *Biometrika* 59(3), 539-549 (the Markov-chain alternative to simulation).
    """
    if not isinstance(chart, CusumChart | EwmaChart):
        raise ValueError(f"chart: expected a CusumChart or an EwmaChart, got {chart!r}")
    delta = real_in_range("shift", shift, low=-math.inf, high=math.inf)
    n = integer_at_least("n_sims", n_sims, minimum=2)
    t_max = integer_at_least("horizon", horizon, minimum=1)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")

    run_length = np.full(n, t_max, dtype=np.int64)
    censored = np.ones(n, dtype=bool)
    active = np.arange(n)
    state_a = np.zeros(n)  # C+ (CUSUM) or w (EWMA)
    state_b = np.zeros(n)  # C- (CUSUM)
    t0 = 0
    block = 16
    while active.size and t0 < t_max:
        b = min(block, t_max - t0, max(16, _SIM_BLOCK_ELEMENTS // active.size))
        x = rng.standard_normal((active.size, b))
        x += delta
        if isinstance(chart, CusumChart):
            upper, lower = _cusum_block(x, chart.k, state_a, state_b)
            sig = _cusum_signal(upper, lower, chart)
            last_a, last_b = upper[:, -1], lower[:, -1]
        else:
            w = _ewma_block(x, chart.lam, state_a)
            sig = _ewma_signal(w, _ewma_limits(chart, t0, b), chart)
            last_a, last_b = w[:, -1], state_b
        first = _first_true(sig)
        hit = first >= 0
        run_length[active[hit]] = t0 + first[hit] + 1
        censored[active[hit]] = False
        keep = ~hit
        active = active[keep]
        state_a = last_a[keep]
        state_b = last_b[keep]
        t0 += b
        block = min(2 * block, 4096)

    rl = run_length.astype(np.float64)
    sdrl = float(rl.std(ddof=1))
    return RunLengthEstimate(
        arl=float(rl.mean()),
        std_error=sdrl / math.sqrt(n),
        sdrl=sdrl,
        median=float(np.median(rl)),
        n_sims=n,
        n_censored=int(censored.sum()),
        horizon=t_max,
        shift=delta,
    )
