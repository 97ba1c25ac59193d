"""Cohen's (1960) kappa for two raters, with the Fleiss, Cohen & Everitt (1969) standard error."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np

from tsmetrics.agreement._inputs import _as_label_list


@dataclass(frozen=True)
class KappaResult:
    """Cohen's kappa with its large-sample standard error.

    Attributes
    ----------
    kappa : float
        ``(p_o - p_e) / (1 - p_e)``; ``nan`` when ``p_e == 1`` (undefined, see
        :func:`cohen_kappa`).
    std_error : float
        Large-sample standard error under the alternative (Fleiss, Cohen & Everitt 1969);
        ``nan`` when ``kappa`` is undefined.
    percent_agreement : float
        Observed agreement ``p_o``, the share of items both raters labelled alike, in ``[0, 1]``
        (a proportion, despite the name).
    expected_agreement : float
        Chance agreement ``p_e = sum_c p_{c.} p_{.c}`` from the raters' marginal distributions.
    n_items : int
        Number of items rated by both raters.
    """

    kappa: float
    std_error: float
    percent_agreement: float
    expected_agreement: float
    n_items: int


def cohen_kappa(labels_a: Iterable[Hashable], labels_b: Iterable[Hashable]) -> KappaResult:
    """Cohen's (1960) kappa for two raters labelling the same items on a nominal scale.

    Estimates chance-corrected agreement between two raters. With ``p_ij`` the share of items
    labelled ``i`` by rater A and ``j`` by rater B, ``p_i.`` and ``p_.j`` the marginal shares::

        p_o   = sum_i p_ii
        p_e   = sum_i p_i. p_.i
        kappa = (p_o - p_e) / (1 - p_e)

    Standard error: the large-sample variance *under the alternative* (not under the null
    ``kappa = 0``) of Fleiss, Cohen & Everitt (1969), which corrects Cohen's (1960)
    approximation ``p_o (1 - p_o) / (n (1 - p_e)^2)``::

        A = sum_i p_ii [1 - (p_i. + p_.i)(1 - kappa)]^2
        B = (1 - kappa)^2 sum_{i != j} p_ij (p_.i + p_j.)^2
        C = [kappa - p_e (1 - kappa)]^2
        var(kappa) = (A + B - C) / (n (1 - p_e)^2)

    Items are treated as a simple random sample; categories are the union of the labels used
    by either rater (categories used by nobody do not affect kappa).

    Parameters
    ----------
    labels_a, labels_b : sequence of hashable
        Labels of raters A and B, aligned by item (``labels_a[k]`` and ``labels_b[k]`` refer to
        the same item). Labels are compared with ``==``/hashing; ``NaN`` is not a safe label.

    Returns
    -------
    KappaResult
        When ``p_e == 1`` (both raters gave every item one and the same label) kappa is ``0/0``
        and undefined: ``kappa`` and ``std_error`` are ``nan`` while ``percent_agreement`` and
        ``expected_agreement`` are 1. Perfect agreement with ``p_e < 1`` gives kappa 1, SE 0.

    Raises
    ------
    ValueError
        When the sequences differ in length, are empty, are not 1-d or hold unhashable labels.

    References
    ----------
    Cohen (1960), *Educ. Psychol. Meas.* 20, 37-46; Fleiss, Cohen & Everitt (1969), *Psychol.
    Bull.* 72, 323-327.
    """
    a = _as_label_list("labels_a", labels_a)
    b = _as_label_list("labels_b", labels_b)
    if len(a) != len(b):
        raise ValueError(f"labels_b: expected the same length as labels_a ({len(a)}), got {len(b)}")
    n = len(a)
    if n == 0:
        raise ValueError("n_items: expected at least 1 item, got 0")

    categories = {label: code for code, label in enumerate(dict.fromkeys(a + b))}
    k = len(categories)
    codes_a = np.fromiter((categories[label] for label in a), dtype=np.intp, count=n)
    codes_b = np.fromiter((categories[label] for label in b), dtype=np.intp, count=n)
    table = np.zeros((k, k), dtype=np.float64)
    np.add.at(table, (codes_a, codes_b), 1.0)
    probs = table / n
    row = probs.sum(axis=1)  # p_i. (rater A)
    col = probs.sum(axis=0)  # p_.j (rater B)
    # From integer counts (exact), so that p_o and p_e do not depend on the category order.
    p_o = float(np.trace(table)) / n
    p_e = float(np.dot(table.sum(axis=1), table.sum(axis=0))) / (float(n) * n)

    if p_e >= 1.0 - 1e-12:
        # Both raters constant and equal: 0/0, kappa undefined.
        return KappaResult(
            kappa=float("nan"),
            std_error=float("nan"),
            percent_agreement=p_o,
            expected_agreement=p_e,
            n_items=n,
        )

    kappa = (p_o - p_e) / (1.0 - p_e)
    one_minus = 1.0 - kappa
    diag = np.diag(probs)
    term_a = float(np.sum(diag * (1.0 - (row + col) * one_minus) ** 2))
    off = probs * (col[:, None] + row[None, :]) ** 2  # p_ij (p_.i + p_j.)^2
    np.fill_diagonal(off, 0.0)
    term_b = one_minus**2 * float(off.sum())
    term_c = (kappa - p_e * one_minus) ** 2
    numerator = term_a + term_b - term_c
    # A + B - C cancels to 0 in degenerate tables (e.g. one rater constant); drop rounding noise.
    if numerator <= 64.0 * np.finfo(np.float64).eps * (term_a + term_b + term_c):
        numerator = 0.0
    variance = numerator / (n * (1.0 - p_e) ** 2)
    return KappaResult(
        kappa=float(kappa),
        std_error=float(np.sqrt(variance)),
        percent_agreement=p_o,
        expected_agreement=p_e,
        n_items=n,
    )
