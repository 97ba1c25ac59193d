"""Sampling designs for impression-weighted prevalence, and the Horvitz-Thompson estimator.

Population and size measure
---------------------------
A day's population has one unit per interaction, with impressions ``x_i >= 0`` and a risk
``r_i`` in ``[0, 1]`` (the largest model score over policies). Designs that favour units with
high reach and high risk use the size measure :func:`size_measure`
``size_i = x_i * (floor + r_i)``; the ``floor > 0`` keeps every unit with impressions selectable.

Designs and the estimator to pair with each
-------------------------------------------
* Poisson PPS -- :func:`poisson_pps_inclusion` then :func:`poisson_pps_select` (simulation) or
  :func:`hash_poisson_pps_select` / ``include/sql/sample_poisson_pps.sql`` (production):
  independent Bernoulli(``pi_i``) selections, ``pi_i = min(1, c size_i)``, ``sum pi_i = n``.
  Estimator: :func:`horvitz_thompson_prevalence` with ``inclusion_prob = pi_i``.
* Priority sampling -- :func:`priority_sample`: exactly ``n`` units, pseudo-inclusion
  probability ``min(1, size_i / tau)`` given the threshold ``tau``. Estimator:
  :func:`horvitz_thompson_prevalence` with the sample's ``inclusion_prob``.
* PPS with replacement -- :func:`pps_with_replacement`: ``n`` multinomial draws with
  ``p_i = size_i / sum size`` (the production ``sample_pps_wr.sql``). Estimator:
  ``estimation.hansen_hurwitz_prevalence`` with per-draw ``selection_prob = p_i``.
* Simple random sampling without replacement -- :func:`srs_without_replacement` (the
  validation control): ``pi_i = n / N``. Estimator: :func:`horvitz_thompson_prevalence` with
  ``inclusion_prob = n / N`` (its Poisson-form variance is slightly conservative here).

Deterministic selection in the warehouse
----------------------------------------
``include/sql/sample_poisson_pps.sql`` selects unit ``i`` iff ``u_i < pi_i`` with
``u_i = tsm.hash_uniform(seed || ':' || day || ':' || unit_id)``. :func:`hash_uniforms`
reproduces those uniforms bit for bit in Python (a vectorised port of PostgreSQL's
``hashtextextended``, i.e. Bob Jenkins' lookup3 ``hash_bytes_extended`` with seed 0, on the
UTF-8 bytes of the key, for a little-endian server and a deterministic collation), so
:func:`hash_poisson_pps_select` returns exactly the warehouse's selection. Simulations use
:func:`poisson_pps_select` with a numpy Generator instead.

References
----------
Horvitz, D. G. and Thompson, D. J. (1952). A generalization of sampling without replacement from a
finite universe. *Journal of the American Statistical Association* 47(260), 663-685.

Hajek, J. (1964). Asymptotic theory of rejective sampling with varying probabilities from a finite
population. *Annals of Mathematical Statistics* 35(4), 1491-1523.

Sarndal, C.-E., Swensson, B. and Wretman, J. (1992). *Model Assisted Survey Sampling*. Springer.
Chapter 2 (the pi estimator) and Chapter 3 (Poisson sampling and its variance estimator).

Tille, Y. (2006). *Sampling Algorithms*. Springer. (Inclusion probabilities proportional to size
with certainty units.)

Duffield, N., Lund, C. and Thorup, M. (2007). Priority sampling for estimation of arbitrary subset
sums. *Journal of the ACM* 54(6), Article 32.

Hansen, M. H. and Hurwitz, W. N. (1943). On the theory of sampling from finite populations.
*Annals of Mathematical Statistics* 14(4), 333-362.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from tsmetrics.estimation import (
    PrevalenceEstimate,
    effective_sample_size,
    interval_function,
)

__all__ = [
    "PrioritySample",
    "hash_poisson_pps_select",
    "hash_uniforms",
    "horvitz_thompson_prevalence",
    "poisson_pps_inclusion",
    "poisson_pps_select",
    "pps_with_replacement",
    "priority_sample",
    "size_measure",
    "srs_without_replacement",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
RandomState = np.random.Generator | int

# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _rng(rng: RandomState) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng: expected a numpy Generator or an integer seed, got {rng!r}")


def _float_1d(name: str, values: npt.ArrayLike, *, allow_nan: bool = False) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected an array of numbers, got {values!r}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got shape {arr.shape}")
    bad = np.isinf(arr) if allow_nan else ~np.isfinite(arr)
    if np.any(bad):
        raise ValueError(f"{name}: expected finite values, got {int(bad.sum())} non-finite")
    return arr


def _nonnegative(name: str, arr: FloatArray) -> None:
    if np.any(arr < 0.0):
        raise ValueError(f"{name}: expected values >= 0, got minimum {float(np.nanmin(arr))!r}")


def _count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _sizes(size: npt.ArrayLike) -> FloatArray:
    arr = _float_1d("size", size)
    _nonnegative("size", arr)
    return arr


# --------------------------------------------------------------------------------------------
# Size measure and Poisson PPS
# --------------------------------------------------------------------------------------------


def size_measure(impressions: npt.ArrayLike, risk: npt.ArrayLike, floor: float) -> FloatArray:
    """Size measure ``size_i = x_i * (floor + r_i)`` of the risk-weighted designs.

    Missing risks (NaN) are imputed by the impression-weighted mean risk of the units whose risk
    is known, ``sum_obs x_i r_i / sum_obs x_i`` (0 when no unit with impressions has a known
    risk), so with ``floor > 0`` a unit has ``size_i > 0`` exactly when ``x_i > 0``.

    Parameters
    ----------
    impressions : array_like, shape (N,)
        Impressions ``x_i >= 0``.
    risk : array_like, shape (N,)
        Risk ``r_i`` in ``[0, 1]``, NaN when missing.
    floor : float
        Size floor ``> 0`` (``size_floor`` of the SQL designs).

    Returns
    -------
    numpy.ndarray
        ``size_i >= 0``, shape (N,).

    Raises
    ------
    ValueError
        On shapes that differ, negative or non-finite impressions, risk outside ``[0, 1]`` or
        infinite, or ``floor`` not a finite number ``> 0``.
    """
    x = _float_1d("impressions", impressions)
    _nonnegative("impressions", x)
    r = _float_1d("risk", risk, allow_nan=True)
    if r.shape != x.shape:
        raise ValueError(f"risk: expected shape {x.shape} (one per unit), got {r.shape}")
    known = ~np.isnan(r)
    if np.any((r[known] < 0.0) | (r[known] > 1.0)):
        raise ValueError(
            f"risk: expected values in [0, 1] or NaN, got range "
            f"[{float(r[known].min())!r}, {float(r[known].max())!r}]"
        )
    if not (isinstance(floor, int | float | np.floating) and math.isfinite(floor) and floor > 0):
        raise ValueError(f"floor: expected a finite number > 0, got {floor!r}")
    weight = float(x[known].sum())
    fill = float(np.dot(x[known], r[known]) / weight) if weight > 0.0 else 0.0
    return x * (float(floor) + np.where(known, r, fill))


def sqrt_calibrated_size(
    impressions: npt.ArrayLike,
    q: npt.ArrayLike,
    imputed: npt.ArrayLike,
    relative_floor: float,
) -> FloatArray:
    """Size ``x_i sqrt(sum_p max(q_ip, phi Pbar_p) / Pbar_p^2)`` of the default design.

    ``q_ip`` is unit ``i``'s calibrated probability of violating policy ``p``
    (:mod:`tsmetrics.calibration`); where the unit's risk was imputed (no score), ``q_ip`` is
    replaced by the impression-weighted mean ``q`` of the units with a score (the calibrated
    prevalence: a missing score says nothing about the unit). ``Pbar_p = sum x q_p / sum x``
    and ``phi`` is the relative floor. For one policy the size is ``x sqrt(max(q, phi Pbar))``,
    which minimises the anticipated variance ``sum x^2 q (1 - pi) / pi`` of the Horvitz-Thompson
    estimator under Poisson sampling for a given expected sample size (Sarndal, Swensson &
    Wretman 1992, Sec. 12.2, with ``q`` as the model); for several policies it minimises the sum
    of their anticipated *relative* variances. The floor bounds the loss when the model misses
    a unit's risk: such a unit keeps at least ``sqrt(phi)`` times the size of an average unit.
    Mirrors ``tsm.unit_sizes(day, 'sqrt_calibrated', phi)`` (migration 0004).

    Parameters
    ----------
    impressions : array_like, shape (N,)
        ``x_i > 0``.
    q : array_like, shape (N, P)
        Calibrated probabilities in ``(0, 1)``.
    imputed : array_like of bool, shape (N, P)
        Whether the unit's risk for the policy was imputed.
    relative_floor : float
        ``phi > 0``.

    Returns
    -------
    numpy.ndarray
        Sizes, shape (N,).
    """
    x = _float_1d("impressions", impressions)
    qq = np.asarray(q, dtype=np.float64)
    miss = np.asarray(imputed, dtype=bool)
    if qq.ndim != 2 or qq.shape[0] != len(x) or miss.shape != qq.shape:
        raise ValueError(
            f"q, imputed: expected shape ({len(x)}, P), got {qq.shape} and {miss.shape}"
        )
    if not (np.all(np.isfinite(qq)) and np.all((qq > 0.0) & (qq < 1.0))):
        raise ValueError("q: expected probabilities in (0, 1)")
    if not (math.isfinite(relative_floor) and relative_floor > 0.0):
        raise ValueError(f"relative_floor: expected a finite number > 0, got {relative_floor!r}")
    observed = np.where(miss, 0.0, x[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        fill = (observed * qq).sum(0) / observed.sum(0)
    fill = np.where(np.isfinite(fill), fill, qq.min(axis=0))
    filled = np.where(miss, fill[None, :], qq)
    pbar = (x[:, None] * filled).sum(0) / x.sum()
    floored = np.maximum(filled, relative_floor * pbar[None, :])
    out: FloatArray = x * np.sqrt((floored / (pbar * pbar)[None, :]).sum(axis=1))
    return out


def poisson_pps_inclusion(size: npt.ArrayLike, expected_n: float) -> FloatArray:
    """Inclusion probabilities ``pi_i = min(1, c size_i)`` with ``sum_i pi_i = expected_n``.

    Units whose ``c size_i`` would exceed 1 become certainty units (``pi_i = 1``) and ``c`` is
    re-solved on the others. The fixed point of that iterative capping is computed exactly in
    one pass: with sizes sorted decreasingly ``s_(1) >= s_(2) >= ...`` and tail sums
    ``R_k = sum_{j > k} s_(j)``, the number of certainty units is the smallest ``k`` with
    ``s_(k+1) (n - k) < R_k`` (the condition is monotone in ``k``; tied sizes are capped
    together) and ``c = (n - k) / R_k``. ``include/sql/sample_poisson_pps.sql`` uses the same
    rule with window functions.

    Pair with :func:`poisson_pps_select` (or :func:`hash_poisson_pps_select`) and estimate with
    :func:`horvitz_thompson_prevalence`.

    Parameters
    ----------
    size : array_like, shape (N,)
        Size measures ``>= 0``; units of size 0 get ``pi_i = 0``.
    expected_n : float
        Expected sample size ``n``, ``0 < n <= `` number of units with positive size.

    Returns
    -------
    numpy.ndarray
        ``pi_i`` in ``(0, 1]`` for positive sizes, 0 otherwise.

    Raises
    ------
    ValueError
        On negative or non-finite sizes, or ``expected_n`` not in ``(0, #positive sizes]``.

    References
    ----------
    Tille (2006), *Sampling Algorithms*; Sarndal, Swensson & Wretman (1992), Chapter 3.
    """
    s = _sizes(size)
    n_pos = int(np.count_nonzero(s > 0.0))
    if (
        isinstance(expected_n, bool)
        or not isinstance(expected_n, int | float | np.integer | np.floating)
        or not (0.0 < float(expected_n) <= n_pos)
    ):
        raise ValueError(
            f"expected_n: expected a number in (0, {n_pos}] (units with positive size), "
            f"got {expected_n!r}"
        )
    n = float(expected_n)
    order = np.argsort(-s, kind="stable")
    sorted_s = s[order]
    tail = np.cumsum(sorted_s[::-1])[::-1]  # tail[j] = sum of sorted_s[j:], accurate for tiny tails
    ranks = np.arange(len(s), dtype=np.float64)  # k = number of larger units
    not_capped = (sorted_s * (n - ranks) < tail) & (sorted_s > 0.0)
    pi = np.zeros_like(s)
    if not np.any(not_capped):  # n equals the number of positive sizes: all certain
        pi[s > 0.0] = 1.0
        return pi
    k = int(np.argmax(not_capped))
    scale = (n - k) / float(tail[k])
    sorted_pi = np.minimum(1.0, sorted_s * scale)
    sorted_pi[:k] = 1.0
    pi[order] = sorted_pi
    return pi


def poisson_pps_select(inclusion_prob: npt.ArrayLike, rng: RandomState) -> IntArray:
    """Poisson sample: unit ``i`` is selected independently with probability ``pi_i``.

    Selects ``i`` iff ``u_i < pi_i`` with independent ``u_i ~ U(0, 1)`` from ``rng``. The
    sample size is random with mean ``sum pi_i`` and variance ``sum pi_i (1 - pi_i)``; the
    joint inclusion probabilities are ``pi_i pi_j``. Estimate with
    :func:`horvitz_thompson_prevalence`. For the warehouse's deterministic selection use
    :func:`hash_poisson_pps_select`.

    Parameters
    ----------
    inclusion_prob : array_like, shape (N,)
        ``pi_i`` in ``[0, 1]`` (e.g. from :func:`poisson_pps_inclusion`).
    rng : numpy.random.Generator or int
        Generator, or seed of ``numpy.random.default_rng``.

    Returns
    -------
    numpy.ndarray of int64
        Sorted indices of the selected units.
    """
    pi = _inclusion_probs(inclusion_prob, allow_zero=True)
    u = _rng(rng).random(len(pi))
    return np.flatnonzero(u < pi).astype(np.int64)


def _inclusion_probs(values: npt.ArrayLike, *, allow_zero: bool) -> FloatArray:
    pi = _float_1d("inclusion_prob", values)
    bad = (pi < 0.0 if allow_zero else pi <= 0.0) | (pi > 1.0)
    if np.any(bad):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise ValueError(
            f"inclusion_prob: expected values in {interval}, got {pi[bad][:5].tolist()} "
            f"({int(bad.sum())} out of range)"
        )
    return pi


# --------------------------------------------------------------------------------------------
# Deterministic uniforms identical to tsm.hash_uniform (PostgreSQL hashtextextended)
# --------------------------------------------------------------------------------------------

_U32 = np.uint32


def _rot(x: npt.NDArray[np.uint32], k: int) -> npt.NDArray[np.uint32]:
    return (x << _U32(k)) | (x >> _U32(32 - k))


def _lookup3_extended(keys: list[bytes]) -> npt.NDArray[np.uint64]:
    """PostgreSQL ``hash_bytes_extended(key, len, seed=0)`` of equally long keys (little endian).

    Port of src/common/hashfn.c (Bob Jenkins' lookup3): returns ``(b << 32) | c``.
    """
    length = len(keys[0])
    m = len(keys)
    n_blocks = max((length + 11) // 12, 1)
    buf = np.zeros((m, 12 * n_blocks), dtype=np.uint8)
    if length:
        buf[:, :length] = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(m, length)
    words = buf.view("<u4").astype(_U32)
    init = _U32((0x9E3779B9 + length + 3923095) & 0xFFFFFFFF)
    a = np.full(m, init, dtype=_U32)
    b = a.copy()
    c = a.copy()
    full, rest = divmod(length, 12)
    with np.errstate(over="ignore"):
        for j in range(full):
            a += words[:, 3 * j]
            b += words[:, 3 * j + 1]
            c += words[:, 3 * j + 2]
            # mix(a, b, c)
            a -= c
            a ^= _rot(c, 4)
            c += b
            b -= a
            b ^= _rot(a, 6)
            a += c
            c -= b
            c ^= _rot(b, 8)
            b += a
            a -= c
            a ^= _rot(c, 16)
            c += b
            b -= a
            b ^= _rot(a, 19)
            a += c
            c -= b
            c ^= _rot(b, 4)
            b += a
        if rest:  # last 1..11 bytes (zero padded); the lowest byte of c is not used
            a += words[:, 3 * full]
            b += words[:, 3 * full + 1]
            c += words[:, 3 * full + 2] << _U32(8)
        # final(a, b, c)
        c ^= b
        c -= _rot(b, 14)
        a ^= c
        a -= _rot(c, 11)
        b ^= a
        b -= _rot(a, 25)
        c ^= b
        c -= _rot(b, 16)
        a ^= c
        a -= _rot(c, 4)
        b ^= a
        b -= _rot(a, 14)
        c ^= b
        c -= _rot(b, 24)
    return (b.astype(np.uint64) << np.uint64(32)) | c.astype(np.uint64)


def _hash_key_parts(day: date | str, seed: int | str) -> tuple[str, str]:
    if isinstance(day, date):
        day_text = day.isoformat()
    else:
        try:
            day_text = date.fromisoformat(str(day)).isoformat()
        except ValueError:
            raise ValueError(f"day: expected a date or 'YYYY-MM-DD', got {day!r}") from None
    if isinstance(seed, bool):
        raise ValueError(f"seed: expected an integer (or its decimal text), got {seed!r}")
    try:
        seed_text = str(int(seed))
    except (TypeError, ValueError):
        raise ValueError(f"seed: expected an integer (or its decimal text), got {seed!r}") from None
    return day_text, seed_text


def hash_uniforms(unit_ids: Sequence[str], day: date | str, seed: int | str) -> FloatArray:
    """The deterministic uniforms of the warehouse, ``tsm.hash_uniform(seed:day:unit_id)``.

    ``u_i = ((h_i & (2^52 - 1)) + 0.5) / 2^52`` with ``h_i = hashtextextended(key_i, 0)`` and
    ``key_i = seed || ':' || day || ':' || unit_id`` -- bit-identical to the SQL function of
    migration 0002 (PostgreSQL's lookup3 hash of the key's UTF-8 bytes, little-endian server,
    deterministic collation). ``day`` is rendered ``YYYY-MM-DD`` and ``seed`` as a decimal
    integer, as ``sample_poisson_pps.sql`` does (``to_char(day, 'YYYY-MM-DD')``,
    ``seed::bigint::text``).

    Parameters
    ----------
    unit_ids : sequence of str
        Unit ids.
    day : datetime.date or str
        The day (``YYYY-MM-DD`` when a string).
    seed : int or str
        Design seed (an integer or its decimal text).

    Returns
    -------
    numpy.ndarray
        ``u_i`` in ``(0, 1)``, shape (len(unit_ids),).
    """
    day_text, seed_text = _hash_key_parts(day, seed)
    if isinstance(unit_ids, str) or not all(isinstance(u, str) for u in unit_ids):
        raise ValueError(f"unit_ids: expected a sequence of str, got {unit_ids!r:.80}")
    prefix = f"{seed_text}:{day_text}:"
    keys = [(prefix + u).encode("utf-8") for u in unit_ids]
    lengths = np.fromiter((len(k) for k in keys), dtype=np.int64, count=len(keys))
    hashes = np.zeros(len(keys), dtype=np.uint64)
    for length in np.unique(lengths):
        idx = np.flatnonzero(lengths == length)
        hashes[idx] = _lookup3_extended([keys[i] for i in idx])
    low52 = hashes & np.uint64((1 << 52) - 1)
    return (low52.astype(np.float64) + 0.5) / float(1 << 52)


def hash_poisson_pps_select(
    inclusion_prob: npt.ArrayLike, unit_ids: Sequence[str], day: date | str, seed: int | str
) -> IntArray:
    """The warehouse's Poisson selection in Python: indices ``i`` with ``u_i < pi_i``.

    ``u_i`` from :func:`hash_uniforms`; with ``pi_i`` from :func:`poisson_pps_inclusion` on the
    same sizes this reproduces ``include/sql/sample_poisson_pps.sql`` (up to units whose
    ``u_i`` lies within rounding error of ``pi_i``). Inclusion probabilities and estimator as in
    :func:`poisson_pps_select`.

    Returns
    -------
    numpy.ndarray of int64
        Sorted indices of the selected units.
    """
    pi = _inclusion_probs(inclusion_prob, allow_zero=True)
    if len(unit_ids) != len(pi):
        raise ValueError(
            f"unit_ids: expected {len(pi)} ids (one per inclusion_prob), got {len(unit_ids)}"
        )
    return np.flatnonzero(hash_uniforms(unit_ids, day, seed) < pi).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Other designs
# --------------------------------------------------------------------------------------------


def srs_without_replacement(n_units: int, n: int, rng: RandomState) -> IntArray:
    """Simple random sample of ``n`` distinct units out of ``N`` (the validation control).

    Inclusion probabilities ``pi_i = n / N`` for every unit, joint ``n (n-1) / (N (N-1))``.
    Estimate with :func:`horvitz_thompson_prevalence` (``inclusion_prob = n / N``). Its
    Poisson-form variance estimator has expectation ``N^2 (1 - f) mean(y^2) / n`` instead of
    the exact ``N^2 (1 - f) S_y^2 / n`` (``f = n / N``): conservative by the ``ybar^2`` term,
    i.e. by a relative ``~P / (1 - P)`` for a 0/1-type variable, negligible at low prevalence.

    Parameters
    ----------
    n_units : int
        Population size ``N >= 1``.
    n : int
        Sample size, ``1 <= n <= N``.
    rng : numpy.random.Generator or int
        Generator, or seed of ``numpy.random.default_rng``.

    Returns
    -------
    numpy.ndarray of int64
        Sorted indices of the ``n`` selected units.
    """
    population = _count("n_units", n_units, 1)
    size = _count("n", n, 1)
    if size > population:
        raise ValueError(f"n: expected at most n_units = {population}, got {size}")
    return np.sort(_rng(rng).choice(population, size=size, replace=False)).astype(np.int64)


def pps_with_replacement(size: npt.ArrayLike, n: int, rng: RandomState) -> IntArray:
    """``n`` independent draws with probability proportional to size (multinomial).

    Each draw picks unit ``i`` with ``p_i = size_i / sum_j size_j``; the number of hits of unit
    ``i`` is Binomial(n, p_i). This is the production design of ``sample_pps_wr.sql``; estimate
    with ``estimation.hansen_hurwitz_prevalence`` (per draw ``selection_prob = p_i``).

    Parameters
    ----------
    size : array_like, shape (N,)
        Size measures ``>= 0``, not all 0.
    n : int
        Number of draws ``>= 1``.
    rng : numpy.random.Generator or int
        Generator, or seed of ``numpy.random.default_rng``.

    Returns
    -------
    numpy.ndarray of int64
        The unit index of each draw, in draw order (length ``n``; repeats possible).
    """
    s = _sizes(size)
    draws = _count("n", n, 1)
    total = float(s.sum())
    if total <= 0.0:
        raise ValueError("size: expected at least one positive size, got all 0")
    return _rng(rng).choice(len(s), size=draws, replace=True, p=s / total).astype(np.int64)


@dataclass(frozen=True)
class PrioritySample:
    """A priority sample (Duffield, Lund & Thorup 2007).

    Attributes
    ----------
    indices : numpy.ndarray of int64
        Sorted indices of the selected units.
    threshold : float
        ``tau``, the ``(n+1)``-th largest priority (0 when every positive unit is selected).
    inclusion_prob : numpy.ndarray
        Per selected unit, ``min(1, size_i / tau)`` (1 when ``tau == 0``); HT weights are
        ``1 / inclusion_prob = max(size_i, tau) / size_i``.
    """

    indices: IntArray
    threshold: float
    inclusion_prob: FloatArray

    @property
    def weights(self) -> FloatArray:
        """Horvitz-Thompson weights ``max(size_i, tau) / size_i``."""
        return 1.0 / self.inclusion_prob


def priority_sample(size: npt.ArrayLike, n: int, rng: RandomState) -> PrioritySample:
    """Priority sampling: the ``n`` units of largest priority ``q_i = size_i / u_i``.

    With ``u_i ~ U(0, 1]`` independent, keep the ``n`` largest priorities and let ``tau`` be the
    ``(n+1)``-th largest. Conditionally on ``tau`` a unit is selected iff ``size_i / u_i > tau``,
    i.e. with pseudo-inclusion probability ``min(1, size_i / tau)``; the Horvitz-Thompson
    estimator ``sum_S y_i / min(1, size_i / tau)`` is unbiased for ``Y`` and
    ``sum_S y_i^2 (1 - pi_i) / pi_i^2`` unbiased for its variance (Duffield et al. 2007), so
    estimate with :func:`horvitz_thompson_prevalence` and ``inclusion_prob`` of the result.
    The sample size is exactly ``n`` (fewer only when fewer than ``n + 1`` units have positive
    size: then every positive unit is selected with probability 1).

    Parameters
    ----------
    size : array_like, shape (N,)
        Size measures ``>= 0``; units of size 0 are never selected.
    n : int
        Sample size ``>= 1``.
    rng : numpy.random.Generator or int
        Generator, or seed of ``numpy.random.default_rng``.

    Returns
    -------
    PrioritySample

    References
    ----------
    Duffield, Lund & Thorup (2007), *J. ACM* 54(6), Article 32.
    """
    s = _sizes(size)
    k = _count("n", n, 1)
    u = 1.0 - _rng(rng).random(len(s))  # in (0, 1]
    positive = np.flatnonzero(s > 0.0)
    if k >= len(positive):
        return PrioritySample(
            indices=positive.astype(np.int64),
            threshold=0.0,
            inclusion_prob=np.ones(len(positive), dtype=np.float64),
        )
    priority = s[positive] / u[positive]
    top = np.argpartition(-priority, k)  # top[:k] are the k largest, top[k] the (k+1)-th
    tau = float(priority[top[k]])
    chosen = np.sort(positive[top[:k]]).astype(np.int64)
    return PrioritySample(
        indices=chosen, threshold=tau, inclusion_prob=np.minimum(1.0, s[chosen] / tau)
    )


# --------------------------------------------------------------------------------------------
# Horvitz-Thompson estimator
# --------------------------------------------------------------------------------------------


def horvitz_thompson_prevalence(
    violating_impressions: npt.ArrayLike,
    inclusion_prob: npt.ArrayLike,
    total_impressions: float,
    *,
    confidence: float = 0.95,
    ci_method: str = "wilson_kg",
    event_weight: float | None = None,
) -> PrevalenceEstimate:
    """Horvitz-Thompson estimate of prevalence ``P = Y / X`` from a Poisson-type sample.

    One entry per *selected unit* ``i`` (no repeats), with ``y_i`` its violating impressions and
    ``pi_i`` its inclusion probability::

        Y_hat = sum_S y_i / pi_i,                      P_hat = Y_hat / X
        v(Y_hat) = sum_S (1 - pi_i) y_i^2 / pi_i^2,    SE(P_hat) = sqrt(v) / X

    ``Y_hat`` is unbiased under any design with these ``pi_i``; ``v`` is the unbiased variance
    estimator under Poisson sampling (independent selections, Sarndal et al. 1992, Chapter 3)
    and under priority sampling with ``pi_i = min(1, size_i / tau)`` (Duffield et al. 2007).
    Certainty units (``pi_i = 1``) contribute no variance. The interval is
    ``estimation.interval_function(ci_method, event_weight)(P_hat, v / X^2, n, confidence)`` with
    ``n`` the number of selected units (Korn-Graubard effective sample size for the ``_kg``
    methods).

    Parameters
    ----------
    violating_impressions : array_like, shape (n,)
        Per selected unit: its impressions if it violates the policy, else 0.
    inclusion_prob : array_like, shape (n,)
        Per selected unit: ``pi_i`` in ``(0, 1]``.
    total_impressions : float
        Known total impressions ``X > 0`` of the population.
    confidence : float, default 0.95
        Confidence level in ``(0, 1)``.
    ci_method : str, default "wilson_kg"
        Name of a method in ``estimation.CI_METHODS``, or of
        ``gamma_interval.EVENT_WEIGHT_CI_METHODS`` (``"gamma_tcz"``, ``"gamma_midp"``: the gamma
        intervals for rare events of :mod:`tsmetrics.gamma_interval`).
    event_weight : float, optional
        Required with the gamma intervals: the weight ``x / (pi X)`` of one more violating unit
        (:func:`tsmetrics.gamma_interval.mean_uncertain_weight`).

    Returns
    -------
    estimation.PrevalenceEstimate
        ``n_draws`` and ``n_distinct_units`` are the number of selected units.

    Raises
    ------
    ValueError
        On arrays of different lengths, an empty sample, ``pi_i`` outside ``(0, 1]``, negative
        or non-finite ``y_i``, ``X <= 0``, ``confidence`` outside ``(0, 1)`` or an unknown
        ``ci_method``.

    References
    ----------
    Horvitz & Thompson (1952), *JASA* 47, 663-685; Sarndal, Swensson & Wretman (1992),
    *Model Assisted Survey Sampling*, Chapters 2-3.
    """
    y = _float_1d("violating_impressions", violating_impressions)
    _nonnegative("violating_impressions", y)
    pi = _inclusion_probs(inclusion_prob, allow_zero=False)
    if len(y) != len(pi):
        raise ValueError(
            f"inputs: expected arrays of equal length (one per selected unit), got "
            f"{len(y)} violating_impressions and {len(pi)} inclusion_prob"
        )
    n = len(y)
    if n < 1:
        raise ValueError("n: expected at least 1 selected unit, got 0")
    total = float(total_impressions)
    if not math.isfinite(total) or total <= 0.0:
        raise ValueError(
            f"total_impressions: expected a finite number > 0, got {total_impressions!r}"
        )
    if not (isinstance(confidence, int | float | np.floating) and 0.0 < confidence < 1.0):
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    interval = interval_function(ci_method, event_weight)

    with np.errstate(over="ignore", invalid="ignore"):
        z = y / pi
        y_hat = float(z.sum())
        v_total = float(np.sum((1.0 - pi) * z * z))
    if not (math.isfinite(y_hat) and math.isfinite(v_total)):
        raise ValueError(
            "inclusion_prob: expected probabilities large enough for y/pi and its variance to "
            f"be finite, got an estimated total {y_hat!r} and variance {v_total!r}"
        )
    estimate = y_hat / total
    variance = max(v_total / total**2, 0.0)
    lower, upper = interval(max(estimate, 0.0), variance, n, float(confidence))
    ess = effective_sample_size(estimate, variance, n)
    p = min(estimate, 1.0)
    deff = None if (variance <= 0.0 or p <= 0.0 or p >= 1.0 or ess <= 0.0) else n / ess
    return PrevalenceEstimate(
        estimate=float(estimate),
        std_error=float(math.sqrt(variance)),
        ci_lower=float(lower),
        ci_upper=float(upper),
        ci_method=ci_method,
        confidence=float(confidence),
        n_draws=n,
        n_distinct_units=n,
        n_positive_draws=int(np.count_nonzero(y > 0.0)),
        effective_sample_size=float(ess),
        design_effect=None if deff is None else float(deff),
        event_weight=None if event_weight is None else float(event_weight),
    )
