"""Agreement among any number of raters: percent agreement, Fleiss' kappa, Krippendorff's alpha
(nominal) and Gwet's AC1, each with its standard error."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np

from tsmetrics.agreement._inputs import (
    Ratings,
    _count_table,
    _pairwise_agreement_per_item,
    _require_pairable,
    _std_error_from_item_terms,
)

# --------------------------------------------------------------------------------------------
# Percent agreement
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PercentAgreementResult:
    """Pairwise percent agreement among raters.

    Attributes
    ----------
    agreement : float
        Mean over items (with at least 2 ratings) of the share of pairs of distinct ratings of
        the item that agree, in ``[0, 1]`` (a proportion, despite the name).
    std_error : float
        Linearised standard error (Gwet 2014); ``nan`` with fewer than 2 rated items.
    n_items : int
        Items with at least 2 ratings (those averaged).
    n_raters : int
        Number of raters (columns of the ratings matrix).
    """

    agreement: float
    std_error: float
    n_items: int
    n_raters: int

    @property
    def estimate(self) -> float:
        """The point estimate, :attr:`agreement` (used by :func:`bootstrap_ci`)."""
        return self.agreement


def percent_agreement(ratings: Ratings) -> PercentAgreementResult:
    """Pairwise percent agreement of an items x raters matrix; missing ratings allowed.

    Estimand: the probability that two distinct ratings of the same item, drawn at random from
    the ratings of a random item, are equal. With ``r_ik`` the number of ratings of item ``i``
    in category ``k``, ``r_i = sum_k r_ik`` and ``n'`` the number of items with ``r_i >= 2``::

        p_a,i = sum_k r_ik (r_ik - 1) / (r_i (r_i - 1))
        p_a   = (1 / n') sum_{i: r_i >= 2} p_a,i

    For two raters without missing ratings this is the share of items on which they agree
    (Cohen's ``p_o``). It is the ``p_a`` of Fleiss (1971) and Gwet (2008, 2014).

    Standard error (Gwet 2014, the variance of ``p_a`` in his ``pa.coeff.raw``), over the ``n``
    items with at least one rating, setting ``p_a,i* = (n / n') p_a,i`` (0 for single-rated
    items)::

        var(p_a) = sum_i (p_a,i* - p_a)^2 / (n (n - 1))

    (the usual ``s^2 / n`` when every item has 2 or more ratings).

    Parameters
    ----------
    ratings : items x raters matrix
        See the module docstring; ``None``/``NaN`` mark a missing rating.

    Returns
    -------
    PercentAgreementResult

    Raises
    ------
    ValueError
        When ``ratings`` is not a 2-d matrix with at least 2 columns, holds unhashable labels,
        or no item has 2 or more ratings.

    References
    ----------
    Fleiss (1971), *Psychol. Bull.* 76, 378-382; Gwet (2014), *Handbook of Inter-Rater
    Reliability*, 4th ed.
    """
    table = _count_table(ratings)
    counts = table.counts
    _require_pairable(counts)
    n = counts.shape[0]
    pairable = counts.sum(axis=1) >= 2
    n_pairable = int(pairable.sum())
    per_item = _pairwise_agreement_per_item(counts)
    p_a = float(per_item[pairable].sum()) / n_pairable
    terms = per_item * (n / n_pairable)
    return PercentAgreementResult(
        agreement=p_a,
        std_error=_std_error_from_item_terms(terms, p_a),
        n_items=n_pairable,
        n_raters=table.n_raters,
    )


# --------------------------------------------------------------------------------------------
# Fleiss' kappa
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FleissKappaResult:
    """Fleiss' (1971) kappa with its standard error under the null (Fleiss, Nee & Landis 1979).

    Attributes
    ----------
    kappa : float
        ``(P_bar - P_e) / (1 - P_e)``; ``nan`` when ``P_e == 1`` (every rating in one category).
    std_error : float
        Standard error *under the null hypothesis* ``kappa = 0`` (Fleiss, Nee & Landis 1979),
        for testing; it is not a standard error for a confidence interval (use
        :attr:`sampling_std_error` or :func:`bootstrap_ci`). ``nan`` when ``kappa`` is.
    z : float
        ``kappa / std_error``.
    p_value : float
        Two-sided p-value of ``z`` under the standard normal.
    observed_agreement : float
        ``P_bar``, the mean pairwise agreement per item (see :func:`percent_agreement`).
    expected_agreement : float
        ``P_e = sum_j p_j^2`` from the pooled category shares ``p_j``.
    categories : tuple of hashable
        Category labels, in the order of :attr:`category_kappa`.
    category_kappa : tuple of float
        Kappa of each category against all others (Fleiss 1971); ``nan`` for a category
        that was never or always used.
    category_std_error : float
        Standard error under the null of every category kappa,
        ``sqrt(2 / (N n (n - 1)))`` (Fleiss, Nee & Landis 1979).
    n_items : int
        Number of rated items ``N``.
    n_ratings_per_item : int
        Number ``n`` of ratings of every item.
    sampling_std_error : float
        Standard error of ``kappa`` for confidence intervals (not under the null): Gwet's (2014)
        linearised variance over the sample of items (see :func:`fleiss_kappa`); ``nan`` when
        ``kappa`` is undefined or there are fewer than 2 items.
    """

    kappa: float
    std_error: float
    z: float
    p_value: float
    observed_agreement: float
    expected_agreement: float
    categories: tuple[Hashable, ...]
    category_kappa: tuple[float, ...]
    category_std_error: float
    n_items: int
    n_ratings_per_item: int
    sampling_std_error: float = float("nan")

    @property
    def estimate(self) -> float:
        """The point estimate, :attr:`kappa` (used by :func:`bootstrap_ci`)."""
        return self.kappa


def fleiss_kappa(ratings: Ratings) -> FleissKappaResult:
    """Fleiss' (1971) kappa for ``n`` ratings per item, any raters, nominal categories.

    Estimand: chance-corrected agreement among ratings of the same item, where chance is the
    agreement expected if ratings were assigned at random with the pooled category shares.
    Raters need not be the same for every item, but every rated item must have the same number
    ``n >= 2`` of ratings (cells marked missing are allowed as long as that holds). With
    ``n_ij`` the number of ratings of item ``i`` in category ``j`` and ``N`` items::

        p_j   = sum_i n_ij / (N n)
        P_i   = (sum_j n_ij^2 - n) / (n (n - 1))
        P_bar = (1 / N) sum_i P_i,       P_e = sum_j p_j^2
        kappa = (P_bar - P_e) / (1 - P_e)

    For two raters this is Scott's (1955) pi. The category kappas are
    ``kappa_j = 1 - sum_i n_ij (n - n_ij) / (N n (n - 1) p_j q_j)`` with ``q_j = 1 - p_j``.

    Standard error under the null ``kappa = 0`` (Fleiss, Nee & Landis 1979, correcting Fleiss
    1971), for testing only::

        var0(kappa) = 2 / (N n (n - 1))
                      * [(sum_j p_j q_j)^2 - sum_j p_j q_j (q_j - p_j)] / (sum_j p_j q_j)^2
        var0(kappa_j) = 2 / (N n (n - 1))

    Standard error for confidence intervals (``sampling_std_error``): the linearisation of
    Gwet (2014, chapter 5; the variance irrCAC's ``fleiss.kappa.raw``/``.dist`` report), the items
    a simple random sample from a large population and the raters fixed::

        kappa_i  = (P_i - P_e) / (1 - P_e)
        pe_i     = sum_j n_ij p_j / n
        kappa_i* = kappa_i - 2 (1 - kappa) (pe_i - P_e) / (1 - P_e)
        var(kappa) = sum_i (kappa_i* - kappa)^2 / (N (N - 1))

    (the ``kappa_i*`` average to ``kappa``; the second term carries the variance of ``P_e``).

    Parameters
    ----------
    ratings : items x raters matrix
        See the module docstring. Items without any rating are dropped.

    Returns
    -------
    FleissKappaResult
        ``kappa``, ``std_error``, ``z`` and ``p_value`` are ``nan`` when every rating falls in
        one category (``P_e == 1``: kappa is ``0/0``).

    Raises
    ------
    ValueError
        When ``ratings`` is not a 2-d matrix with at least 2 columns, holds unhashable labels,
        or the rated items do not all have the same number (at least 2) of ratings.

    References
    ----------
    Fleiss (1971), *Psychol. Bull.* 76, 378-382; Fleiss, Nee & Landis (1979), *Psychol. Bull.*
    86, 974-977; Gwet, K. L. (2014), *Handbook of Inter-Rater Reliability*, 4th ed., chapter 5.
    """
    table = _count_table(ratings)
    counts = table.counts
    per_item = counts.sum(axis=1)
    n_lo, n_hi = int(per_item.min()), int(per_item.max())
    if n_lo != n_hi:
        raise ValueError(
            "ratings: expected the same number of non-missing ratings on every rated item "
            f"(Fleiss' kappa), got between {n_lo} and {n_hi}"
        )
    if n_lo < 2:
        raise ValueError(f"ratings: expected at least 2 ratings per item, got {n_lo}")
    n_items, n = counts.shape[0], n_lo
    total = n_items * n
    totals = counts.sum(axis=0)
    p = totals / total
    # From integer counts (exact), so that the value does not depend on item or category order.
    p_bar = float((counts * counts).sum() - total) / (total * (n - 1.0))
    p_e = float(np.dot(totals, totals)) / (float(total) * total)
    pq = p * (1.0 - p)
    denominator = n_items * n * (n - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        disagreeing = (counts * (n - counts)).sum(axis=0)
        category_kappa = np.where(pq > 0, 1.0 - disagreeing / (denominator * pq), np.nan)
    if p_e >= 1.0 - 1e-12:
        kappa = se = z = p_value = sampling_se = float("nan")
    else:
        kappa = (p_bar - p_e) / (1.0 - p_e)
        s = float(pq.sum())
        var0 = 2.0 / denominator * (s * s - float(np.sum(pq * (1.0 - 2.0 * p)))) / (s * s)
        se = math.sqrt(max(var0, 0.0))
        z = kappa / se if se > 0 else float("nan")
        # Two-sided normal tail: 2 * (1 - Phi(|z|)) = erfc(|z| / sqrt(2)).
        p_value = math.erfc(abs(z) / math.sqrt(2.0)) if math.isfinite(z) else float("nan")
        item_agreement = ((counts * counts).sum(axis=1) - n) / (n * (n - 1.0))
        item_kappa = (item_agreement - p_e) / (1.0 - p_e)
        item_chance = counts @ p / n
        terms = item_kappa - 2.0 * (1.0 - kappa) * (item_chance - p_e) / (1.0 - p_e)
        sampling_se = _std_error_from_item_terms(terms, kappa)
    return FleissKappaResult(
        kappa=float(kappa),
        std_error=float(se),
        z=float(z),
        p_value=p_value,
        observed_agreement=p_bar,
        expected_agreement=p_e,
        categories=table.categories,
        category_kappa=tuple(float(v) for v in category_kappa),
        category_std_error=math.sqrt(2.0 / denominator),
        n_items=n_items,
        n_ratings_per_item=n,
        sampling_std_error=float(sampling_se),
    )


# --------------------------------------------------------------------------------------------
# Krippendorff's alpha (nominal)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlphaResult:
    """Krippendorff's alpha for nominal data.

    Attributes
    ----------
    alpha : float
        ``1 - D_o / D_e``; ``nan`` when ``D_e == 0`` (all pairable values in one category).
    std_error : float
        Linearised standard error of Gwet (2014), conditional on the raters; ``nan`` with
        fewer than 2 pairable items or when ``alpha`` is ``nan``. Krippendorff recommends the
        bootstrap instead (see :func:`bootstrap_ci`).
    observed_disagreement : float
        ``D_o``, the off-diagonal share of the coincidence matrix.
    expected_disagreement : float
        ``D_e``, the disagreement expected from the pooled values.
    n_items : int
        Pairable items (items with at least 2 ratings).
    n_pairable : int
        Number ``n..`` of pairable values (ratings of pairable items).
    """

    alpha: float
    std_error: float
    observed_disagreement: float
    expected_disagreement: float
    n_items: int
    n_pairable: int

    @property
    def estimate(self) -> float:
        """The point estimate, :attr:`alpha` (used by :func:`bootstrap_ci`)."""
        return self.alpha


def krippendorff_alpha_nominal(ratings: Ratings) -> AlphaResult:
    """Krippendorff's alpha for nominal categories, from the coincidence matrix.

    Estimand: ``1 - D_o / D_e``, one minus the ratio of the observed to the chance-expected
    disagreement among pairable values (values of items with at least 2 ratings); missing
    ratings allowed. With ``n_uc`` the number of ratings of item ``u`` in category ``c`` and
    ``m_u = sum_c n_uc >= 2`` (Krippendorff 2011)::

        o_ck = sum_u n_uc (n_uk - [c == k]) / (m_u - 1)      (coincidence matrix)
        n_c  = sum_k o_ck,   n.. = sum_c n_c
        D_o  = sum_{c != k} o_ck / n..
        D_e  = sum_{c != k} n_c n_k / (n.. (n.. - 1))
        alpha = 1 - D_o / D_e = 1 - (n.. - 1) sum_{c != k} o_ck / sum_{c != k} n_c n_k

    For two raters and no missing ratings ``alpha = pi + (1 - pi) / (2 N)`` with Scott's pi
    (:func:`fleiss_kappa`) and ``N`` items, so it approaches pi as ``N`` grows.

    Standard error: alpha has no standard closed form and Krippendorff recommends the
    bootstrap (:func:`bootstrap_ci`). ``std_error`` is Gwet's (2014) linearisation,
    conditional on the raters, as published with his R package irrCAC 1.0
    (``krippen.alpha.raw``): with ``n`` pairable items, ``r_bar`` their mean number of
    ratings, ``pi_c = n_c / n..``, ``p_e = sum_c pi_c^2``, ``p_a' = 1 - D_o``,
    ``alpha' = (p_a' - p_e) / (1 - p_e)`` and ``p_a = (1 - 1/n..) p_a' + 1/n..`` (so that
    ``alpha = (p_a - p_e) / (1 - p_e)``)::

        p_a,u = sum_c n_uc (n_uc - 1) / (r_bar (m_u - 1)) - p_a (m_u - r_bar) / r_bar
        p_e,u = sum_c n_uc pi_c / r_bar - p_e (m_u - r_bar) / r_bar
        a_u   = (p_a,u - p_e) / (1 - p_e) - 2 (1 - alpha') (p_e,u - p_e) / (1 - p_e)
        var(alpha) = sum_u (a_u - alpha')^2 / (n (n - 1))

    (Later irrCAC code uses ``p_a'`` for ``p_a`` in ``p_a,u``; the two differ by ``O(1/n..)``
    and agree when every item has the same number of ratings, where ``var`` is that of
    Gwet's Fleiss-kappa linearisation.)

    Parameters
    ----------
    ratings : items x raters matrix
        See the module docstring; ``None``/``NaN`` mark a missing rating.

    Returns
    -------
    AlphaResult

    Raises
    ------
    ValueError
        When ``ratings`` is not a 2-d matrix with at least 2 columns, holds unhashable labels,
        or no item has 2 or more ratings.

    References
    ----------
    Krippendorff (2011), *Computing Krippendorff's Alpha-Reliability*; Gwet (2014),
    *Handbook of Inter-Rater Reliability*, 4th ed.
    """
    counts_all = _count_table(ratings).counts
    _require_pairable(counts_all)
    m_all = counts_all.sum(axis=1)
    counts = counts_all[m_all >= 2]
    m_u = counts.sum(axis=1)
    n_items = counts.shape[0]
    n_pairable = int(m_u.sum())
    n_c = counts.sum(axis=0)
    # Diagonal of the coincidence matrix, per unit: sum_c n_uc (n_uc - 1) / (m_u - 1).
    agree_u = (counts * (counts - 1)).sum(axis=1) / (m_u - 1.0)
    observed_agreement = float(agree_u.sum()) / n_pairable
    d_o = 1.0 - observed_agreement
    sum_sq = float(np.dot(n_c, n_c))
    d_e = (float(n_pairable) * n_pairable - sum_sq) / (n_pairable * (n_pairable - 1.0))
    if d_e <= 1e-12:
        return AlphaResult(
            alpha=float("nan"),
            std_error=float("nan"),
            observed_disagreement=d_o,
            expected_disagreement=d_e,
            n_items=n_items,
            n_pairable=n_pairable,
        )
    alpha = 1.0 - d_o / d_e

    # Gwet's (2014) linearised variance.
    r_bar = n_pairable / n_items
    pi = n_c / n_pairable
    p_e = sum_sq / (float(n_pairable) * n_pairable)
    alpha_prime = (observed_agreement - p_e) / (1.0 - p_e)
    p_a = (1.0 - 1.0 / n_pairable) * observed_agreement + 1.0 / n_pairable
    p_a_u = agree_u / r_bar - p_a * (m_u - r_bar) / r_bar
    p_e_u = (counts @ pi) / r_bar - p_e * (m_u - r_bar) / r_bar
    terms = (p_a_u - p_e) / (1.0 - p_e) - 2.0 * (1.0 - alpha_prime) * (p_e_u - p_e) / (1.0 - p_e)
    return AlphaResult(
        alpha=float(alpha),
        std_error=_std_error_from_item_terms(terms, alpha_prime),
        observed_disagreement=d_o,
        expected_disagreement=d_e,
        n_items=n_items,
        n_pairable=n_pairable,
    )


# --------------------------------------------------------------------------------------------
# Gwet's AC1
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GwetAC1Result:
    """Gwet's AC1 with its linearised standard error.

    Attributes
    ----------
    ac1 : float
        ``(p_a - p_e) / (1 - p_e)``; ``nan`` with fewer than 2 categories.
    std_error : float
        Linearised standard error (Gwet 2008, 2014), conditional on the raters; ``nan`` with
        fewer than 2 rated items or when ``ac1`` is ``nan``.
    observed_agreement : float
        ``p_a``, as in :func:`percent_agreement`.
    expected_agreement : float
        ``p_e = sum_k pi_k (1 - pi_k) / (q - 1)``.
    categories : tuple of hashable
        The ``q`` categories used for ``p_e``.
    n_items : int
        Rated items (items with at least one rating).
    n_raters : int
        Number of raters (columns of the ratings matrix).
    """

    ac1: float
    std_error: float
    observed_agreement: float
    expected_agreement: float
    categories: tuple[Hashable, ...]
    n_items: int
    n_raters: int

    @property
    def estimate(self) -> float:
        """The point estimate, :attr:`ac1` (used by :func:`bootstrap_ci`)."""
        return self.ac1


def gwet_ac1(ratings: Ratings, *, categories: Iterable[Hashable] | None = None) -> GwetAC1Result:
    """Gwet's (2008) AC1 for any number of raters and nominal categories; missing allowed.

    Estimand: agreement corrected for the chance agreement of raters who rate at random only
    on hard-to-classify items; unlike kappa it does not collapse when one category dominates.
    With ``r_ik`` the ratings of item ``i`` in category ``k``, ``r_i = sum_k r_ik``, ``n`` the
    items with ``r_i >= 1``, ``n'`` those with ``r_i >= 2`` and ``q`` categories::

        p_a  = (1 / n') sum_{i: r_i >= 2} sum_k r_ik (r_ik - 1) / (r_i (r_i - 1))
        pi_k = (1 / n) sum_i r_ik / r_i
        p_e  = sum_k pi_k (1 - pi_k) / (q - 1)
        AC1  = (p_a - p_e) / (1 - p_e)

    ``q`` counts the categories *available* to the raters: pass ``categories`` when some were
    not used, otherwise only the observed ones count (this changes ``p_e``).

    Standard error (Gwet 2008; Gwet 2014 as in his ``gwet.ac1.raw``), linearised, conditional
    on the raters, items a simple random sample, no finite-population correction::

        p_a,i  = sum_k r_ik (r_ik - 1) / (r_i (r_i - 1))        (0 if r_i < 2)
        p_e,i  = sum_k (r_ik / r_i) (1 - pi_k) / (q - 1)
        ac1_i  = (n / n') (p_a,i - p_e [r_i >= 2]) / (1 - p_e)
                 - 2 (1 - AC1) (p_e,i - p_e) / (1 - p_e)
        var(AC1) = sum_i (ac1_i - AC1)^2 / (n (n - 1))

    Parameters
    ----------
    ratings : items x raters matrix
        See the module docstring; ``None``/``NaN`` mark a missing rating.
    categories : sequence of hashable, optional
        All categories available to the raters; every label must be among them.

    Returns
    -------
    GwetAC1Result
        ``ac1`` and ``std_error`` are ``nan`` when ``q < 2`` (``p_e`` is ``0/0``).

    Raises
    ------
    ValueError
        When ``ratings`` is not a 2-d matrix with at least 2 columns, holds unhashable labels or
        labels outside ``categories``, or no item has 2 or more ratings.

    References
    ----------
    Gwet (2008), *Br. J. Math. Stat. Psychol.* 61, 29-48; Gwet (2014), *Handbook of
    Inter-Rater Reliability*, 4th ed.
    """
    table = _count_table(ratings, categories)
    counts = table.counts
    _require_pairable(counts)
    n, q = counts.shape
    r = counts.sum(axis=1).astype(np.float64)
    pairable = r >= 2
    n_pairable = int(pairable.sum())
    per_item = _pairwise_agreement_per_item(counts)
    p_a = float(per_item[pairable].sum()) / n_pairable
    if q < 2:
        return GwetAC1Result(
            ac1=float("nan"),
            std_error=float("nan"),
            observed_agreement=p_a,
            expected_agreement=float("nan"),
            categories=table.categories,
            n_items=n,
            n_raters=table.n_raters,
        )
    shares = counts / r[:, None]
    pi = shares.mean(axis=0)
    p_e = float(np.sum(pi * (1.0 - pi))) / (q - 1)
    ac1 = (p_a - p_e) / (1.0 - p_e)
    p_e_i = (shares @ (1.0 - pi)) / (q - 1)
    ac1_i = (n / n_pairable) * (per_item - p_e * pairable) / (1.0 - p_e)
    terms = ac1_i - 2.0 * (1.0 - ac1) * (p_e_i - p_e) / (1.0 - p_e)
    return GwetAC1Result(
        ac1=float(ac1),
        std_error=_std_error_from_item_terms(terms, ac1),
        observed_agreement=p_a,
        expected_agreement=p_e,
        categories=table.categories,
        n_items=n,
        n_raters=table.n_raters,
    )
