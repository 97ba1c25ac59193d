"""Alerting checks on daily prevalence estimates.

Pure functions of floats returning a :class:`CheckResult`:

* :func:`limit_check` -- breach when we are confident the prevalence exceeds a policy limit
  (the confidence interval's lower bound is above the limit).
* :func:`day_over_day_check` -- one-sided two-sample z-test of a rise of the prevalence since
  the previous day, treating the two days' samples as independent.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

from scipy import stats

__all__ = ["CheckResult", "Outcome", "day_over_day_check", "limit_check"]

Outcome = Literal["pass", "breach", "skipped"]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check for one policy.

    Attributes
    ----------
    check_name : str
        ``"limit"`` or ``"day_over_day_rise"``.
    policy : str
        Policy the check was run for.
    statistic : float
        Test statistic (``ci_lower`` for the limit check, ``z`` for day-over-day); ``nan`` when
        skipped.
    threshold : float
        Value the statistic is compared with (the limit; the one-sided critical value
        ``z_{1-alpha}`` for day-over-day).
    p_value : float or None
        One-sided p-value when the check is a test, else ``None``.
    outcome : {"pass", "breach", "skipped"}
        Decision.
    details : dict
        Inputs and, for skipped checks, a ``"reason"``.
    """

    check_name: str
    policy: str
    statistic: float
    threshold: float
    p_value: float | None
    outcome: Outcome
    details: dict[str, Any] = field(default_factory=dict)


def _check_policy(policy: str) -> None:
    if not isinstance(policy, str) or not policy:
        raise ValueError(f"policy: expected a non-empty string, got {policy!r}")


def _as_float(name: str, value: float | None, *, allow_nan: bool) -> float:
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if value is None or not is_number:
        raise ValueError(f"{name}: expected a number, got {value!r}")
    out = float(value)
    if math.isinf(out) or (math.isnan(out) and not allow_nan):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return out


def limit_check(
    policy: str, estimate: float, ci_lower: float, ci_upper: float, limit: float
) -> CheckResult:
    """Check a prevalence estimate against a policy limit.

    Breach when ``ci_lower > limit``, i.e. the data are significant evidence (at the interval's
    one-sided level ``(1 - confidence) / 2``) that the prevalence exceeds the limit; otherwise
    pass. ``statistic = ci_lower``, ``threshold = limit``, ``p_value = None``.

    Parameters
    ----------
    policy : str
        Policy name.
    estimate : float
        Point estimate of the prevalence (reported in ``details``).
    ci_lower, ci_upper : float
        Confidence interval of the prevalence, ``ci_lower <= ci_upper``.
    limit : float
        Policy limit, a finite number ``>= 0``.

    Returns
    -------
    CheckResult
        ``outcome="skipped"`` when ``estimate``, ``ci_lower`` or ``ci_upper`` is NaN (no
        estimate available for the day).

    Raises
    ------
    ValueError
        On an empty policy, a non-finite or negative limit, infinite inputs or
        ``ci_lower > ci_upper``.
    """
    _check_policy(policy)
    est = _as_float("estimate", estimate, allow_nan=True)
    lower = _as_float("ci_lower", ci_lower, allow_nan=True)
    upper = _as_float("ci_upper", ci_upper, allow_nan=True)
    lim = _as_float("limit", limit, allow_nan=False)
    if lim < 0.0:
        raise ValueError(f"limit: expected a number >= 0, got {limit!r}")
    details: dict[str, Any] = {
        "estimate": est,
        "ci_lower": lower,
        "ci_upper": upper,
        "limit": lim,
    }
    if math.isnan(est) or math.isnan(lower) or math.isnan(upper):
        return CheckResult(
            check_name="limit",
            policy=policy,
            statistic=float("nan"),
            threshold=lim,
            p_value=None,
            outcome="skipped",
            details={**details, "reason": "no estimate (NaN input)"},
        )
    if lower > upper:
        raise ValueError(f"ci_lower: expected a value <= ci_upper ({upper!r}), got {lower!r}")
    return CheckResult(
        check_name="limit",
        policy=policy,
        statistic=lower,
        threshold=lim,
        p_value=None,
        outcome="breach" if lower > lim else "pass",
        details={**details, "margin": lower - lim},
    )


def day_over_day_check(
    policy: str,
    estimate: float,
    std_error: float,
    prev_estimate: float | None,
    prev_std_error: float | None,
    alpha: float = 0.01,
) -> CheckResult:
    """One-sided z-test of a day-over-day rise in prevalence.

    With today's estimate ``p_t`` (SE ``s_t``) and yesterday's ``p_{t-1}`` (SE ``s_{t-1}``),
    computed from independent samples::

        z = (p_t - p_{t-1}) / sqrt(s_t^2 + s_{t-1}^2),    p_value = 1 - Phi(z)

    Breach when ``p_value < alpha`` (equivalently ``z > z_{1-alpha}``, the reported
    ``threshold``), else pass. Skipped when there is no previous day (``prev_estimate`` or
    ``prev_std_error`` is ``None``), when any input is NaN, or when both standard errors are 0
    (the test is undefined).

    Parameters
    ----------
    policy : str
        Policy name.
    estimate, std_error : float
        Today's prevalence estimate and its standard error (``>= 0``).
    prev_estimate, prev_std_error : float or None
        Previous day's estimate and standard error, ``None`` when unavailable.
    alpha : float, default 0.01
        Significance level in ``(0, 1)``.

    Returns
    -------
    CheckResult
        ``statistic = z``, ``threshold = z_{1-alpha}``, ``p_value`` the one-sided p-value.

    Raises
    ------
    ValueError
        On an empty policy, ``alpha`` outside ``(0, 1)``, infinite inputs or negative standard
        errors.
    """
    _check_policy(policy)
    a = _as_float("alpha", alpha, allow_nan=False)
    if not 0.0 < a < 1.0:
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    threshold = float(stats.norm.isf(a))
    est = _as_float("estimate", estimate, allow_nan=True)
    se = _as_float("std_error", std_error, allow_nan=True)
    prev = (
        None if prev_estimate is None else _as_float("prev_estimate", prev_estimate, allow_nan=True)
    )
    prev_se = (
        None
        if prev_std_error is None
        else _as_float("prev_std_error", prev_std_error, allow_nan=True)
    )
    for name, value in (("std_error", se), ("prev_std_error", prev_se)):
        if value is not None and value < 0.0:
            raise ValueError(f"{name}: expected a number >= 0, got {value!r}")
    details: dict[str, Any] = {
        "estimate": est,
        "std_error": se,
        "prev_estimate": prev,
        "prev_std_error": prev_se,
        "alpha": a,
    }

    def skipped(reason: str) -> CheckResult:
        return CheckResult(
            check_name="day_over_day_rise",
            policy=policy,
            statistic=float("nan"),
            threshold=threshold,
            p_value=None,
            outcome="skipped",
            details={**details, "reason": reason},
        )

    if prev is None or prev_se is None:
        return skipped("no previous day")
    if any(math.isnan(v) for v in (est, se, prev, prev_se)):
        return skipped("NaN input")
    pooled = math.hypot(se, prev_se)
    if pooled == 0.0:
        return skipped("both standard errors are 0")
    z = (est - prev) / pooled
    p_value = float(stats.norm.sf(z))
    return CheckResult(
        check_name="day_over_day_rise",
        policy=policy,
        statistic=z,
        threshold=threshold,
        p_value=p_value,
        outcome="breach" if p_value < a else "pass",
        details={**details, "difference": est - prev, "pooled_std_error": pooled},
    )
