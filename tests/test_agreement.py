"""Tests of tsmetrics.agreement: Cohen's kappa, multi-rater agreement, labeler accuracy.

Reference values from other software were computed once in a throwaway virtualenv outside the
project (statsmodels, krippendorff and irrCAC are *not* project dependencies) and are recorded
next to each number with the package, version and call.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Hashable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import rater_pairs, rating_matrices

from tsmetrics.agreement import (
    AccuracyResult,
    AlphaResult,
    BootstrapResult,
    ConfusionResult,
    FleissKappaResult,
    GwetAC1Result,
    KappaResult,
    PercentAgreementResult,
    bootstrap_ci,
    cohen_kappa,
    confusion,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha_nominal,
    labeler_accuracy,
    percent_agreement,
)


def _from_table(table: list[list[int]]) -> tuple[list[int], list[int]]:
    """Label lists of two raters reproducing a contingency table (rows: rater A)."""
    a: list[int] = []
    b: list[int] = []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            a += [i] * count
            b += [j] * count
    return a, b


def test_two_by_two_worked_example() -> None:
    # Worked example of the Wikipedia article "Cohen's kappa" (50 grant proposals, two readers):
    # a = 20 (yes, yes), b = 5 (A yes, B no), c = 10 (A no, B yes), d = 15 (no, no); kappa = 0.4.
    # By hand: p_o = (20 + 15) / 50 = 0.7; rater A yes 25/50 = 0.5, rater B yes 30/50 = 0.6;
    # p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    # SE (Fleiss, Cohen & Everitt 1969), p_1. = 0.5, p_.1 = 0.6, p_2. = 0.5, p_.2 = 0.4:
    # A = 0.4 (1 - 1.1 * 0.6)^2 + 0.3 (1 - 0.9 * 0.6)^2 = 0.04624 + 0.06348 = 0.10972
    # B = 0.6^2 [0.1 (0.6 + 0.5)^2 + 0.2 (0.4 + 0.5)^2] = 0.36 * 0.283 = 0.10188
    # C = (0.4 - 0.5 * 0.6)^2 = 0.01
    # var = (0.10972 + 0.10188 - 0.01) / (50 * 0.5^2) = 0.016128; SE = 0.1269961
    a, b = _from_table([[20, 5], [10, 15]])
    res = cohen_kappa(a, b)
    assert res.kappa == pytest.approx(0.4, abs=1e-12)
    assert res.percent_agreement == pytest.approx(0.7, abs=1e-12)
    assert res.expected_agreement == pytest.approx(0.5, abs=1e-12)
    assert res.n_items == 50
    assert res.std_error == pytest.approx(math.sqrt(0.016128), rel=1e-10)
    # Reference: statsmodels 0.15.0 statsmodels.stats.inter_rater.cohens_kappa(table).std_kappa
    # computed in a throwaway virtualenv (not a project dependency).
    assert res.std_error == pytest.approx(0.12699606293110033, rel=1e-12)


def test_three_category_example_against_reference_implementations() -> None:
    # Reference values computed in a throwaway virtualenv (not project dependencies):
    # statsmodels 0.15.0 cohens_kappa(table) -> kappa 0.7811447811447811,
    #   std_kappa 0.05530215719042473;
    # scikit-learn 1.9.1 cohen_kappa_score(a, b) -> 0.7811447811447811.
    a, b = _from_table([[22, 2, 2], [3, 14, 3], [1, 2, 51]])
    res = cohen_kappa(a, b)
    assert res.kappa == pytest.approx(0.7811447811447811, rel=1e-12)
    assert res.std_error == pytest.approx(0.05530215719042473, rel=1e-12)
    assert res.percent_agreement == pytest.approx(87 / 100)
    assert res.n_items == 100


def test_perfect_agreement() -> None:
    labels = ["spam", "ok", "adult", "ok", "spam"]
    res = cohen_kappa(labels, list(labels))
    assert res.kappa == 1.0
    assert res.std_error == 0.0
    assert res.percent_agreement == 1.0


def test_constant_equal_raters_kappa_undefined() -> None:
    # p_o = p_e = 1: kappa = 0 / 0 is undefined -> nan, no ZeroDivisionError.
    res = cohen_kappa(["ok"] * 10, ["ok"] * 10)
    assert math.isnan(res.kappa)
    assert math.isnan(res.std_error)
    assert res.percent_agreement == 1.0
    assert res.expected_agreement == 1.0
    assert res.n_items == 10


def test_constant_different_raters() -> None:
    res = cohen_kappa(["x"] * 4, ["y"] * 4)
    assert res.kappa == 0.0
    assert res.percent_agreement == 0.0
    assert res.expected_agreement == 0.0


def test_one_constant_rater_gives_zero_kappa_and_zero_standard_error() -> None:
    # B always says "ok": p_e = p_A(ok) * 1 = p_o, so kappa = 0 for every sample -> SE 0
    # (A + B - C cancels exactly; rounding noise is not reported as a positive SE).
    res = cohen_kappa(["ok", "ok", "spam", "ok", None, "ok", "spam"], ["ok"] * 7)
    assert res.kappa == pytest.approx(0.0, abs=1e-15)
    assert res.std_error == 0.0


def test_complete_disagreement_two_balanced_categories_gives_minus_one() -> None:
    res = cohen_kappa([0, 1, 0, 1], [1, 0, 1, 0])
    assert res.kappa == pytest.approx(-1.0)


def test_accepts_numpy_arrays_tuples_and_none_labels() -> None:
    a = np.array(["a", "b", "a", "c"])
    b = np.array(["a", "b", "c", "c"])
    assert cohen_kappa(a, b) == cohen_kappa(list(a), list(b))
    res = cohen_kappa([("x", 1), None, ("x", 1)], [("x", 1), None, None])
    assert res.n_items == 3
    assert res.percent_agreement == pytest.approx(2 / 3)


def test_result_is_frozen() -> None:
    res = cohen_kappa([1, 2], [1, 2])
    assert isinstance(res, KappaResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.kappa = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        ([], [], "n_items"),
        ([1, 2], [1], "same length"),
        (np.zeros((2, 2)), np.zeros((2, 2)), "1-d"),
        ([[1], [2]], [1, 2], "hashable"),
        ("abc", "abd", "string"),
        (5, [1], "sequence"),
    ],
)
def test_validation(a: object, b: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cohen_kappa(a, b)  # type: ignore[arg-type]


def _relabel(labels: list[Hashable]) -> list[Hashable]:
    return [("relabelled", repr(label)) for label in labels]


@settings(max_examples=150, deadline=None)
@given(pair=rater_pairs())
def test_symmetric_in_raters(pair: tuple[list[Hashable], list[Hashable]]) -> None:
    a, b = pair
    ab, ba = cohen_kappa(a, b), cohen_kappa(b, a)
    if math.isnan(ab.kappa):
        assert math.isnan(ba.kappa)
        return
    assert ba.kappa == pytest.approx(ab.kappa, abs=1e-12)
    assert ba.std_error == pytest.approx(ab.std_error, rel=1e-9, abs=1e-12)
    assert ba.percent_agreement == ab.percent_agreement
    assert ba.expected_agreement == pytest.approx(ab.expected_agreement, abs=1e-15)


@settings(max_examples=150, deadline=None)
@given(pair=rater_pairs(), seed=st.integers(0, 2**32 - 1))
def test_invariant_to_relabelling_and_item_order(
    pair: tuple[list[Hashable], list[Hashable]], seed: int
) -> None:
    a, b = pair
    base = cohen_kappa(a, b)
    perm = np.random.default_rng(seed).permutation(len(a))
    relabelled = cohen_kappa(_relabel([a[i] for i in perm]), _relabel([b[i] for i in perm]))
    if math.isnan(base.kappa):
        assert math.isnan(relabelled.kappa)
        return
    assert relabelled.kappa == pytest.approx(base.kappa, abs=1e-12)
    assert relabelled.std_error == pytest.approx(base.std_error, rel=1e-9, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(pair=rater_pairs())
def test_bounds(pair: tuple[list[Hashable], list[Hashable]]) -> None:
    res = cohen_kappa(*pair)
    assert 0.0 <= res.percent_agreement <= 1.0
    assert 0.0 <= res.expected_agreement <= 1.0 + 1e-12
    assert res.n_items == len(pair[0])
    if not math.isnan(res.kappa):
        assert -1.0 - 1e-12 <= res.kappa <= 1.0 + 1e-12
        assert res.std_error >= 0.0


# ============================================================================================
# Multi-rater agreement: reference data sets
# ============================================================================================

# Fleiss (1971), Table 1: psychiatric diagnoses of 30 subjects by 6 raters each (categories
# 1 depression, 2 personality disorder, 3 schizophrenia, 4 neurosis, 5 other), transcribed as
# `diagnoses` in statsmodels' statsmodels/stats/tests/test_inter_rater.py (ratings sorted
# within each subject: different raters rated different subjects, so columns are not raters).
DIAGNOSES = [
    [4, 4, 4, 4, 4, 4],
    [2, 2, 2, 5, 5, 5],
    [2, 3, 3, 3, 3, 5],
    [5, 5, 5, 5, 5, 5],
    [2, 2, 2, 4, 4, 4],
    [1, 1, 3, 3, 3, 3],
    [3, 3, 3, 3, 5, 5],
    [1, 1, 3, 3, 3, 4],
    [1, 1, 4, 4, 4, 4],
    [5, 5, 5, 5, 5, 5],
    [1, 4, 4, 4, 4, 4],
    [1, 2, 4, 4, 4, 4],
    [2, 2, 2, 3, 3, 3],
    [1, 4, 4, 4, 4, 4],
    [2, 2, 4, 4, 4, 5],
    [3, 3, 3, 3, 3, 5],
    [1, 1, 1, 4, 5, 5],
    [1, 1, 1, 1, 1, 2],
    [2, 2, 4, 4, 4, 4],
    [1, 3, 3, 5, 5, 5],
    [5, 5, 5, 5, 5, 5],
    [2, 4, 4, 4, 4, 4],
    [2, 2, 4, 5, 5, 5],
    [1, 1, 4, 4, 4, 4],
    [1, 4, 4, 4, 4, 5],
    [2, 2, 2, 2, 2, 4],
    [1, 1, 1, 1, 5, 5],
    [2, 2, 4, 4, 4, 4],
    [1, 3, 3, 3, 3, 3],
    [5, 5, 5, 5, 5, 5],
]

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C (nominal data,
# any number of observers, missing data): observers A-D (columns) x units 1-12 (rows), None =
# not coded. The same data are irrCAC's `cac.raw4raters` (Gwet 2014).
KRIPPENDORFF_2011: list[list[int | None]] = [
    [1, 1, None, 1],
    [2, 2, 3, 2],
    [3, 3, 3, 3],
    [3, 3, 3, 3],
    [2, 2, 2, 2],
    [1, 2, 3, 4],
    [4, 4, 4, 4],
    [1, 1, 2, 1],
    [2, 2, 2, 2],
    [None, 5, 5, 5],
    [None, None, 1, 1],
    [None, 3, None, None],
]

# 3 coders x 15 units example of the `krippendorff` package's docstring (alpha nominal 0.691),
# as items x raters.
KRIPPENDORFF_3X15: list[list[int | None]] = [
    [None, 1, None],
    [None, None, None],
    [None, 2, 2],
    [None, 1, 1],
    [None, 3, 3],
    [3, 3, 4],
    [4, 4, 4],
    [1, 3, None],
    [2, None, 2],
    [1, None, 1],
    [1, None, 1],
    [3, None, 3],
    [3, None, 3],
    [None, None, None],
    [3, None, 4],
]

# irrCAC's `distrib.6raters` (K. L. Gwet's R package irrCAC, README of github.com/kgwet/irrCAC):
# number of the 6 raters of each of 15 subjects choosing each category.
DISTRIB_6RATERS_CATEGORIES = [
    "Depression",
    "Personality.Disorder",
    "Schizophrenia",
    "Neurosis",
    "Other",
]
DISTRIB_6RATERS = [
    [0, 0, 0, 6, 0],
    [0, 3, 0, 0, 3],
    [0, 1, 4, 0, 1],
    [0, 0, 0, 0, 6],
    [0, 3, 0, 3, 0],
    [2, 0, 4, 0, 0],
    [0, 0, 4, 0, 2],
    [2, 0, 3, 1, 0],
    [2, 0, 0, 4, 0],
    [0, 0, 0, 0, 6],
    [1, 0, 0, 5, 0],
    [1, 1, 0, 4, 0],
    [0, 3, 3, 0, 0],
    [1, 0, 0, 5, 0],
    [0, 2, 0, 3, 1],
]

# irrCAC's `cont3x3abstractors`: 2 abstractors x 100 pregnancies (rows: abstractor 1).
CONT3X3_CATEGORIES = ["Ectopic", "AIU", "NIU"]
CONT3X3 = [[13, 0, 0], [0, 20, 7], [0, 4, 56]]

# statsmodels' `anxiety` (statsmodels/stats/tests/test_inter_rater.py; irr's data set of the same
# name): 20 subjects x 3 raters, ratings 1-6.
ANXIETY = [
    [3, 3, 2],
    [3, 6, 1],
    [3, 4, 4],
    [4, 6, 4],
    [5, 2, 3],
    [5, 4, 2],
    [2, 2, 1],
    [3, 4, 6],
    [5, 3, 1],
    [2, 3, 1],
    [2, 2, 1],
    [6, 3, 2],
    [1, 3, 3],
    [5, 3, 3],
    [2, 2, 1],
    [2, 2, 1],
    [1, 1, 3],
    [2, 3, 3],
    [4, 3, 2],
    [3, 4, 2],
]


def _rows_from_distribution(counts: list[list[int]], labels: list[str]) -> list[list[str]]:
    """Raw ratings reproducing a subjects x categories table of counts (any rater order)."""
    return [[lab for lab, c in zip(labels, row, strict=True) for _ in range(c)] for row in counts]


def _rows_from_table(table: list[list[int]], labels: list[str]) -> list[list[str]]:
    """Two-rater items x raters rows reproducing a contingency table (rows: rater 1)."""
    a, b = _from_table(table)
    return [[labels[i], labels[j]] for i, j in zip(a, b, strict=True)]


def _scott_pi(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Scott's (1955) pi for two raters, computed directly (independent of the module)."""
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    cats = set(a) | set(b)
    p_e = sum(((a.count(c) + b.count(c)) / (2 * n)) ** 2 for c in cats)
    return (p_o - p_e) / (1 - p_e)


# ============================================================================================
# Published and reference values
# ============================================================================================


def test_fleiss_kappa_fleiss_1971_example() -> None:
    res = fleiss_kappa(DIAGNOSES)
    assert isinstance(res, FleissKappaResult)
    # Fleiss (1971) reports kappa = .430 for these data.
    assert round(res.kappa, 3) == 0.430
    # statsmodels 0.15.0: fleiss_kappa(aggregate_raters(diagnoses)[0]) -> 0.43024452006014074
    assert res.kappa == pytest.approx(0.43024452006014074, rel=1e-12)
    assert res.n_items == 30
    assert res.n_ratings_per_item == 6
    assert res.categories == (1, 2, 3, 4, 5)
    # P_bar = 5/9 and P_e = sum_j p_j^2 with category totals (26, 26, 30, 55, 43) / 180.
    assert res.observed_agreement == pytest.approx(5 / 9, rel=1e-14)
    assert res.expected_agreement == pytest.approx((26**2 + 26**2 + 30**2 + 55**2 + 43**2) / 180**2)
    # Null SE of Fleiss, Nee & Landis (1979) by hand in exact fractions, p_j = t_j / 180:
    # sum p_j q_j = 12637/16200, [(sum p q)^2 - sum p q (q - p)] = 42692509/262440000,
    # var0 = 2 / (30 * 6 * 5) * 42692509/262440000 / (12637/16200)^2 = 42692509/71862196050.
    p = [Fraction(t, 180) for t in (26, 26, 30, 55, 43)]
    pq = [x * (1 - x) for x in p]
    s = sum(pq)
    var0 = (
        Fraction(2, 30 * 6 * 5)
        * (s * s - sum(a * (1 - 2 * x) for a, x in zip(pq, p, strict=True)))
        / s**2
    )
    assert var0 == Fraction(42692509, 71862196050)
    assert res.std_error == pytest.approx(math.sqrt(var0), rel=1e-12)
    assert res.z == pytest.approx(res.kappa / res.std_error)
    assert round(res.z, 2) == 17.65
    assert res.p_value < 1e-60
    assert res.category_std_error == pytest.approx(math.sqrt(2 / (30 * 6 * 5)), rel=1e-14)


def test_fleiss_category_kappa_equals_kappa_of_the_dichotomised_ratings() -> None:
    # Fleiss (1971): kappa_j is the kappa of the two-category data "j" versus "not j".
    res = fleiss_kappa(DIAGNOSES)
    for j, cat in enumerate(res.categories):
        dichotomised = [[rating == cat for rating in row] for row in DIAGNOSES]
        assert res.category_kappa[j] == pytest.approx(fleiss_kappa(dichotomised).kappa, abs=1e-12)
    # Regression values (the identity above is the independent check).
    assert [round(k, 3) for k in res.category_kappa] == [0.245, 0.245, 0.520, 0.471, 0.566]


def test_krippendorff_2011_worked_example() -> None:
    res = krippendorff_alpha_nominal(KRIPPENDORFF_2011)
    assert isinstance(res, AlphaResult)
    # Krippendorff (2011), section C: alpha_nominal = 0.743.
    assert round(res.alpha, 3) == 0.743
    # krippendorff 0.9.0: krippendorff.alpha(reliability_data=<observers x units, np.nan
    # missing>, level_of_measurement="nominal") -> 0.743421052631579
    assert res.alpha == pytest.approx(0.743421052631579, rel=1e-12)
    # 40 pairable values in the 11 units coded at least twice (unit 12 has a single value).
    assert res.n_pairable == 40
    assert res.n_items == 11
    assert res.observed_disagreement == pytest.approx(8 / 40, rel=1e-14)
    # Gwet's linearised SE. irrCAC (R) README, krippen.alpha.raw(cac.raw4raters): coeff.val
    # 0.74342, coeff.se 0.14557, pa 0.805, pe 0.24. irrCAC 0.4.4 (Python port):
    # CAC(pandas.DataFrame(<units x raters, NaN missing>), digits=15).krippendorff()["est"]
    # -> se 0.145573886984835.
    assert round(res.alpha, 5) == 0.74342
    assert round(res.std_error, 5) == 0.14557
    assert res.std_error == pytest.approx(0.145573886984835, rel=1e-9)


def test_krippendorff_alpha_three_coders_fifteen_units() -> None:
    # krippendorff 0.9.0 docstring example (3 coders x 15 units, nominal):
    # krippendorff.alpha(reliability_data=..., level_of_measurement="nominal") -> 0.691358...,
    # recomputed in the throwaway venv: 0.691358024691358.
    res = krippendorff_alpha_nominal(KRIPPENDORFF_3X15)
    assert res.alpha == pytest.approx(0.691358024691358, rel=1e-12)
    assert res.n_items == 12  # units 2 and 14 are uncoded, unit 1 has a single value
    assert res.n_pairable == 26


def test_gwet_ac1_and_percent_agreement_on_krippendorff_data_match_irrcac() -> None:
    res = gwet_ac1(KRIPPENDORFF_2011)
    assert isinstance(res, GwetAC1Result)
    # irrCAC (R, K. L. Gwet) README, gwet.ac1.raw(cac.raw4raters): pa 0.8181818,
    # pe 0.1903212, coeff.val 0.77544, coeff.se 0.14295.
    assert round(res.ac1, 5) == 0.77544
    assert round(res.std_error, 5) == 0.14295
    assert round(res.observed_agreement, 7) == 0.8181818
    assert round(res.expected_agreement, 7) == 0.1903212
    # irrCAC 0.4.4 (Python): CAC(df, digits=15).gwet()["est"] -> coefficient_value
    # 0.775444068126995, se 0.142949950640765, pe 0.190321180555556.
    assert res.ac1 == pytest.approx(0.775444068126995, rel=1e-12)
    assert res.std_error == pytest.approx(0.142949950640765, rel=1e-9)
    assert res.expected_agreement == pytest.approx(0.190321180555556, rel=1e-12)
    assert res.n_items == 12
    assert res.categories == (1, 2, 3, 4, 5)

    pa = percent_agreement(KRIPPENDORFF_2011)
    assert isinstance(pa, PercentAgreementResult)
    # irrCAC (R) README, pa.coeff.raw(cac.raw4raters): coeff.val 0.8181818, coeff.se 0.12561.
    assert pa.agreement == pytest.approx(9 / 11, rel=1e-14)
    assert round(pa.std_error, 5) == 0.12561
    assert pa.n_items == 11
    assert pa.n_raters == 4


def test_distribution_of_six_raters_matches_irrcac() -> None:
    rows = _rows_from_distribution(DISTRIB_6RATERS, DISTRIB_6RATERS_CATEGORIES)
    # irrCAC (R) README on distrib.6raters:
    # gwet.ac1.dist    -> coeff 0.4448007, stderr 0.08418757, pa 0.5511111, pe 0.1914815
    # fleiss.kappa.dist -> coeff 0.4139265, pa 0.5511111, pe 0.2340741
    # krippen.alpha.dist -> coeff 0.4204384
    ac1 = gwet_ac1(rows)
    assert round(ac1.ac1, 7) == 0.4448007
    assert round(ac1.std_error, 8) == 0.08418757
    assert round(ac1.observed_agreement, 7) == 0.5511111
    assert round(ac1.expected_agreement, 7) == 0.1914815
    kappa = fleiss_kappa(rows)
    assert round(kappa.kappa, 7) == 0.4139265
    assert round(kappa.expected_agreement, 7) == 0.2340741
    # fleiss.kappa.dist -> stderr 0.08119291 (Gwet's linearised variance, not the null SE)
    assert round(kappa.sampling_std_error, 8) == 0.08119291
    assert kappa.sampling_std_error != pytest.approx(kappa.std_error, rel=0.05)
    assert round(krippendorff_alpha_nominal(rows).alpha, 7) == 0.4204384


def test_two_rater_table_matches_irrcac() -> None:
    rows = _rows_from_table(CONT3X3, CONT3X3_CATEGORIES)
    # irrCAC (R) README on cont3x3abstractors (2 raters, 100 items):
    # scott2.table 0.7962397, krippen2.table 0.7972585, gwet.ac1.table 0.8493305 (se 0.04321747),
    # pa2.table 0.89 (se 0.03128898), kappa2.table 0.7964094 (se 0.05891072).
    scott = fleiss_kappa(rows)
    assert round(scott.kappa, 7) == 0.7962397  # Fleiss' kappa is Scott's pi here
    # scott2.table -> coeff.se 0.05905473 (table formula: divided by n, not n - 1, see below)
    assert round(scott.sampling_std_error * math.sqrt(99 / 100), 8) == 0.05905473
    assert round(krippendorff_alpha_nominal(rows).alpha, 7) == 0.7972585
    ac1 = gwet_ac1(rows)
    assert round(ac1.ac1, 7) == 0.8493305
    # The 2-rater table formulas divide the variance by n, the raw-data ones (used here) by
    # n - 1: the standard errors differ by the factor sqrt(n / (n - 1)) exactly.
    assert round(ac1.std_error * math.sqrt(99 / 100), 8) == 0.04321747
    pa = percent_agreement(rows)
    assert pa.agreement == pytest.approx(0.89, rel=1e-14)
    assert round(pa.std_error * math.sqrt(99 / 100), 8) == 0.03128898
    a, b = _from_table(CONT3X3)
    ck = cohen_kappa(a, b)
    assert round(ck.kappa, 7) == 0.7964094
    assert round(ck.std_error, 8) == 0.05891072


def test_diagnoses_agree_with_irrcac_python_port() -> None:
    # irrCAC 0.4.4: CAC(pandas.DataFrame(diagnoses), digits=15) -> gwet(): coefficient_value
    # 0.447884515844564, se 0.055662141681618; krippendorff(): 0.433409828282029,
    # se 0.054198935515333; fleiss(): pa 0.555555555555556, pe 0.219938271604938.
    ac1 = gwet_ac1(DIAGNOSES)
    assert ac1.ac1 == pytest.approx(0.447884515844564, rel=1e-12)
    assert ac1.std_error == pytest.approx(0.055662141681618, rel=1e-11)
    alpha = krippendorff_alpha_nominal(DIAGNOSES)
    assert alpha.alpha == pytest.approx(0.433409828282029, rel=1e-12)
    assert alpha.std_error == pytest.approx(0.054198935515333, rel=1e-11)
    assert percent_agreement(DIAGNOSES).agreement == pytest.approx(5 / 9, rel=1e-14)


def test_fleiss_and_cohen_agree_with_statsmodels() -> None:
    # statsmodels 0.15.0, statsmodels.stats.inter_rater:
    # fleiss_kappa(aggregate_raters(anxiety)[0]) -> -0.04107648725212462
    assert fleiss_kappa(ANXIETY).kappa == pytest.approx(-0.04107648725212462, rel=1e-12)
    # Per pair of raters (i, j):
    #   fleiss_kappa(aggregate_raters(anxiety[:, [i, j]])[0])           -> Scott's pi
    #   cohens_kappa(to_table(anxiety[:, [i, j]])[0]).kappa, .std_kappa -> Cohen's kappa, SE
    statsmodels_values = {
        (0, 1): (0.09677419354838707, 0.11949685534591192, 0.11927129716314591),
        (1, 2): (-0.04746317512274956, -0.006289308176100635, 0.10157283828529293),
        (0, 2): (-0.20443740095087173, -0.16564417177914112, 0.0822501534356879),
    }
    for (i, j), (scott, kappa, se) in statsmodels_values.items():
        a = [row[i] for row in ANXIETY]
        b = [row[j] for row in ANXIETY]
        assert fleiss_kappa([[x, y] for x, y in zip(a, b, strict=True)]).kappa == pytest.approx(
            scott, rel=1e-12
        )
        assert _scott_pi(a, b) == pytest.approx(scott, rel=1e-12)
        ck = cohen_kappa(a, b)
        assert ck.kappa == pytest.approx(kappa, rel=1e-12)
        assert ck.std_error == pytest.approx(se, rel=1e-12)
    # R irr 0.84, kappa2(anxiety[, 2:3]) -> 0.006289308 with a minus sign (as recorded in
    # statsmodels' test_inter_rater.py, ck_w1.value = -0.006289308).
    assert round(cohen_kappa([r[1] for r in ANXIETY], [r[2] for r in ANXIETY]).kappa, 9) == (
        -0.006289308
    )


# ============================================================================================
# Relations between the coefficients
# ============================================================================================


@settings(max_examples=40, deadline=None)
@given(rows=rating_matrices(min_raters=2, max_raters=2))
def test_two_raters_fleiss_is_scott_pi_and_alpha_is_its_small_sample_correction(
    rows: list[list[Hashable]],
) -> None:
    a = [r[0] for r in rows]
    b = [r[1] for r in rows]
    kappa = fleiss_kappa(rows)
    alpha = krippendorff_alpha_nominal(rows)
    pa = percent_agreement(rows)
    assert pa.agreement == pytest.approx(cohen_kappa(a, b).percent_agreement, abs=1e-14)
    if len(set(a) | set(b)) < 2:
        assert math.isnan(kappa.kappa)
        assert math.isnan(alpha.alpha)
        return
    pi = _scott_pi(a, b)
    assert kappa.kappa == pytest.approx(pi, abs=1e-12)
    # 1 - alpha = (n.. - 1) / n.. (1 - pi) with n.. = 2N pairable values.
    n_values = 2 * len(rows)
    assert alpha.alpha == pytest.approx(pi + (1 - pi) / n_values, abs=1e-12)


def test_two_raters_alpha_approaches_scott_pi_for_large_n() -> None:
    rng = np.random.default_rng(20240601)
    gaps = []
    for n in (50, 500, 5000):
        truth = rng.integers(0, 3, size=n)
        noisy = np.where(rng.random(n) < 0.7, truth, rng.integers(0, 3, size=n))
        rows = np.column_stack([truth, noisy])
        pi = fleiss_kappa(rows).kappa
        alpha = krippendorff_alpha_nominal(rows).alpha
        gaps.append(alpha - pi)
        assert 0.0 < alpha - pi <= 1.0 / (2 * n)
    assert gaps[0] > gaps[1] > gaps[2]


@settings(max_examples=40, deadline=None)
@given(rows=rating_matrices(min_raters=2, max_raters=6))
def test_complete_data_alpha_from_fleiss_kappa(rows: list[list[Hashable]]) -> None:
    # Same observed agreement; D_e(alpha) = n.. / (n.. - 1) * (1 - P_e), with n.. = N n.
    kappa = fleiss_kappa(rows)
    alpha = krippendorff_alpha_nominal(rows)
    assert alpha.observed_disagreement == pytest.approx(1 - kappa.observed_agreement, abs=1e-12)
    if math.isnan(kappa.kappa):
        assert math.isnan(alpha.alpha)
        return
    n_values = len(rows) * len(rows[0])
    assert 1 - alpha.alpha == pytest.approx(
        (n_values - 1) / n_values * (1 - kappa.kappa), abs=1e-12
    )
    assert -1 / (len(rows[0]) - 1) - 1e-12 <= kappa.kappa <= 1 + 1e-12
    assert kappa.std_error > 0


def test_fleiss_allows_different_raters_per_item() -> None:
    # 4 raters in the pool, each item rated by 2 of them (None elsewhere): Fleiss' design.
    rows = [
        ["a", "a", None, None],
        [None, "b", "b", None],
        ["a", None, None, "b"],
        [None, None, "b", "b"],
        ["b", None, "a", None],
    ]
    compact = [[v for v in row if v is not None] for row in rows]
    assert fleiss_kappa(rows) == fleiss_kappa(compact)
    assert fleiss_kappa(rows).n_ratings_per_item == 2


# ============================================================================================
# Invariants
# ============================================================================================


def _values(rows: Any, categories: list[Hashable] | None = None) -> dict[str, float]:
    """Every coefficient and standard error of the multi-rater functions."""
    pa = percent_agreement(rows)
    alpha = krippendorff_alpha_nominal(rows)
    ac1 = gwet_ac1(rows, categories=categories)
    return {
        "pa": pa.agreement,
        "pa_se": pa.std_error,
        "alpha": alpha.alpha,
        "alpha_se": alpha.std_error,
        "ac1": ac1.ac1,
        "ac1_se": ac1.std_error,
    }


def _has_pairable_item(rows: list[list[Hashable]]) -> bool:
    return any(sum(v is not None for v in row) >= 2 for row in rows)


def _assert_same(left: dict[str, float], right: dict[str, float]) -> None:
    assert left.keys() == right.keys()
    for key, value in left.items():
        if math.isnan(value):
            assert math.isnan(right[key]), key
        else:
            assert right[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


@settings(max_examples=40, deadline=None)
@given(rows=rating_matrices(missing=True), seed=st.integers(0, 2**32 - 1))
def test_invariant_to_item_and_rater_order(rows: list[list[Hashable]], seed: int) -> None:
    assume(_has_pairable_item(rows))
    rng = np.random.default_rng(seed)
    item_order = rng.permutation(len(rows))
    rater_order = rng.permutation(len(rows[0]))
    shuffled = [[rows[i][j] for j in rater_order] for i in item_order]
    _assert_same(_values(rows), _values(shuffled))


@settings(max_examples=40, deadline=None)
@given(rows=rating_matrices(missing=True))
def test_invariant_to_relabelling_categories(rows: list[list[Hashable]]) -> None:
    assume(_has_pairable_item(rows))
    relabelled = [[None if v is None else ("policy", repr(v)) for v in row] for row in rows]
    _assert_same(_values(rows), _values(relabelled))


@settings(max_examples=40, deadline=None)
@given(rows=rating_matrices(), seed=st.integers(0, 2**32 - 1))
def test_fleiss_invariant_to_order_and_relabelling(rows: list[list[Hashable]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    shuffled = [
        [rows[i][j] for j in rng.permutation(len(rows[0]))] for i in rng.permutation(len(rows))
    ]
    relabelled = [[("x", repr(v)) for v in row] for row in shuffled]
    base, other = fleiss_kappa(rows), fleiss_kappa(relabelled)
    if math.isnan(base.kappa):
        assert math.isnan(other.kappa)
        return
    assert other.kappa == pytest.approx(base.kappa, abs=1e-12)
    assert other.std_error == pytest.approx(base.std_error, rel=1e-9)
    by_label = dict(zip(other.categories, other.category_kappa, strict=True))
    for cat, value in zip(base.categories, base.category_kappa, strict=True):
        assert by_label[("x", repr(cat))] == pytest.approx(value, abs=1e-12, nan_ok=True)


@settings(max_examples=40, deadline=None)
@given(
    n_items=st.integers(1, 25),
    n_raters=st.integers(2, 6),
    labels=st.lists(st.sampled_from(["ok", "spam", "adult", 7]), min_size=1, max_size=25),
)
def test_perfect_agreement_gives_one(n_items: int, n_raters: int, labels: list[Hashable]) -> None:
    truth = [labels[i % len(labels)] for i in range(n_items)]
    rows = [[t] * n_raters for t in truth]
    assert percent_agreement(rows).agreement == 1.0
    assert gwet_ac1(rows, categories=["ok", "spam", "adult", 7]).ac1 == 1.0
    if len(set(truth)) >= 2:
        assert fleiss_kappa(rows).kappa == 1.0
        assert krippendorff_alpha_nominal(rows).alpha == 1.0
        assert gwet_ac1(rows).ac1 == 1.0
    else:
        # A single category: kappa and alpha are 0/0 (undefined), AC1 too without categories.
        assert math.isnan(fleiss_kappa(rows).kappa)
        assert math.isnan(krippendorff_alpha_nominal(rows).alpha)
        assert math.isnan(gwet_ac1(rows).ac1)


@settings(max_examples=40, deadline=None)
@given(rows=rating_matrices(missing=True))
def test_multi_rater_bounds(rows: list[list[Hashable]]) -> None:
    assume(_has_pairable_item(rows))
    pa = percent_agreement(rows)
    assert 0.0 <= pa.agreement <= 1.0
    alpha = krippendorff_alpha_nominal(rows)
    ac1 = gwet_ac1(rows)
    for value in (alpha.alpha, ac1.ac1):
        assert math.isnan(value) or value <= 1.0 + 1e-12
    for se in (pa.std_error, alpha.std_error, ac1.std_error):
        assert math.isnan(se) or se >= 0.0
    if not math.isnan(ac1.ac1):
        assert 0.0 <= ac1.expected_agreement <= 1.0 / len(ac1.categories) + 1e-12


def test_missing_markers_none_nan_and_dataframes_are_equivalent() -> None:
    as_none = KRIPPENDORFF_2011
    as_nan = np.array(
        [[np.nan if v is None else float(v) for v in row] for row in as_none], dtype=np.float64
    )
    as_frame = pd.DataFrame(as_nan, columns=["A", "B", "C", "D"])
    as_strings = pd.DataFrame(
        [[None if v is None else f"c{v}" for v in row] for row in as_none], dtype="string"
    )
    as_object = np.array(as_none, dtype=object)
    reference = _values(as_none)
    for variant in (as_nan, as_frame, as_strings, as_object):
        _assert_same(reference, _values(variant))
    # An unrated item changes nothing (items nobody rated are dropped).
    _assert_same(reference, _values([*as_none, [None, None, None, None]]))


def test_gwet_ac1_number_of_categories() -> None:
    # Unused but available categories change p_e = sum pi_k (1 - pi_k) / (q - 1).
    observed = gwet_ac1(KRIPPENDORFF_2011)
    same = gwet_ac1(KRIPPENDORFF_2011, categories=[5, 4, 3, 2, 1])
    assert same.ac1 == pytest.approx(observed.ac1, abs=1e-14)
    assert same.categories == (5, 4, 3, 2, 1)
    wider = gwet_ac1(KRIPPENDORFF_2011, categories=[1, 2, 3, 4, 5, 6])
    assert wider.expected_agreement == pytest.approx(observed.expected_agreement * 4 / 5)
    assert wider.ac1 > observed.ac1
    one_category = gwet_ac1([["ok", "ok"], ["ok", "ok"]])
    assert math.isnan(one_category.ac1)
    assert math.isnan(one_category.std_error)
    assert one_category.observed_agreement == 1.0
    # With the category set given, a unanimous single category is perfect agreement.
    assert gwet_ac1([["ok", "ok"], ["ok", "ok"]], categories=["ok", "spam"]).ac1 == 1.0


def test_undefined_coefficients_are_nan() -> None:
    rows = [["ok", "ok", "ok"]] * 5
    kappa = fleiss_kappa(rows)
    assert math.isnan(kappa.kappa)
    assert math.isnan(kappa.std_error)
    assert math.isnan(kappa.z)
    assert math.isnan(kappa.p_value)
    assert kappa.observed_agreement == 1.0
    assert kappa.expected_agreement == 1.0
    alpha = krippendorff_alpha_nominal(rows)
    assert math.isnan(alpha.alpha)
    assert alpha.expected_disagreement == 0.0
    # A single rated item: no standard error.
    single = percent_agreement([["ok", "spam"]])
    assert single.agreement == 0.0
    assert math.isnan(single.std_error)


def test_results_are_frozen_and_expose_estimate() -> None:
    results: list[Any] = [
        percent_agreement(DIAGNOSES),
        fleiss_kappa(DIAGNOSES),
        krippendorff_alpha_nominal(DIAGNOSES),
        gwet_ac1(DIAGNOSES),
        labeler_accuracy([1, 2], [1, 1]),
    ]
    expected = [
        results[0].agreement,
        results[1].kappa,
        results[2].alpha,
        results[3].ac1,
        results[4].accuracy,
    ]
    for res, value in zip(results, expected, strict=True):
        assert res.estimate == value
        field = dataclasses.fields(res)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(res, field, 0.0)


# ============================================================================================
# Input validation
# ============================================================================================

MULTI_RATER_FUNCTIONS = [percent_agreement, fleiss_kappa, krippendorff_alpha_nominal, gwet_ac1]


@pytest.mark.parametrize("function", MULTI_RATER_FUNCTIONS)
@pytest.mark.parametrize(
    ("ratings", "match"),
    [
        ([], "at least 1 item"),
        ([["a"], ["b"]], "at least 2 raters"),
        (np.array(["a", "b"]), "2-d"),
        (np.zeros((2, 2, 2)), "2-d"),
        ("ab", "single string"),
        (5, "2-d items x raters matrix, got int"),
        ([1, 2, 3], "sequence of rows"),
        (["ab", "cd"], "sequence of ratings"),
        ([["a", "b"], ["a"]], "same number of raters"),
        ([[["x"], "a"], ["a", "a"]], "hashable"),
        ([[None, None], [np.nan, None]], "at least 1 non-missing"),
        ([["a", None], [None, "b"]], "2 or more ratings|at least 2 ratings per item"),
    ],
)
def test_multi_rater_validation(function: Any, ratings: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        function(ratings)


def test_fleiss_validation() -> None:
    with pytest.raises(ValueError, match="same number of non-missing ratings.*between 2 and 3"):
        fleiss_kappa([["a", "b", None], ["a", "a", "b"]])
    with pytest.raises(ValueError, match="at least 2 ratings per item, got 1"):
        fleiss_kappa([["a", None], [None, "b"]])


@pytest.mark.parametrize(
    ("categories", "match"),
    [
        (["a"], "among the categories"),
        (["a", "b", "a"], "distinct"),
        (["a", "b", None], "non-missing"),
        ([], "at least 1 category"),
        ("ab", "single string"),
    ],
)
def test_gwet_categories_validation(categories: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gwet_ac1([["a", "b"], ["b", "b"]], categories=categories)


# ============================================================================================
# Bootstrap
# ============================================================================================


def test_bootstrap_is_reproducible_and_contains_the_estimate() -> None:
    def run(seed: int) -> BootstrapResult:
        return bootstrap_ci(
            fleiss_kappa,
            DIAGNOSES,
            n_resamples=300,
            confidence=0.95,
            rng=np.random.default_rng(seed),
        )

    first, again, other = run(7), run(7), run(8)
    assert isinstance(first, BootstrapResult)
    assert first == again
    assert (first.low, first.high) != (other.low, other.high)
    assert first.estimate == fleiss_kappa(DIAGNOSES).kappa
    assert first.low <= first.estimate <= first.high
    assert first.n_resamples == first.n_valid == 300
    assert first.confidence == 0.95
    # The percentile interval is roughly estimate -/+ 1.96 bootstrap standard errors here.
    assert first.high - first.low == pytest.approx(2 * 1.96 * first.std_error, rel=0.3)


@pytest.mark.parametrize(
    "metric",
    [
        krippendorff_alpha_nominal,
        functools.partial(gwet_ac1, categories=[1, 2, 3, 4, 5]),
        percent_agreement,
    ],
)
def test_bootstrap_accepts_every_multi_rater_result(metric: Any) -> None:
    res = bootstrap_ci(metric, KRIPPENDORFF_2011, n_resamples=150, rng=np.random.default_rng(11))
    assert res.estimate == metric(KRIPPENDORFF_2011).estimate
    assert res.low <= res.estimate <= res.high
    assert res.n_valid == 150
    assert res.std_error > 0
    assert res == bootstrap_ci(
        metric, KRIPPENDORFF_2011, n_resamples=150, rng=np.random.default_rng(11)
    )


def test_bootstrap_interval_narrows_with_confidence_and_accepts_plain_floats() -> None:
    def pooled_cohen(rows: np.ndarray) -> float:
        return cohen_kappa(rows[:, 0].tolist(), rows[:, 1].tolist()).kappa

    rows = _rows_from_table(CONT3X3, CONT3X3_CATEGORIES)
    wide = bootstrap_ci(pooled_cohen, rows, n_resamples=400, rng=np.random.default_rng(1))
    narrow = bootstrap_ci(
        pooled_cohen, rows, n_resamples=400, confidence=0.5, rng=np.random.default_rng(1)
    )
    assert wide.low <= narrow.low <= narrow.high <= wide.high
    assert wide.estimate == pytest.approx(0.7964094021839719, rel=1e-12)
    # Bootstrap SE close to the analytic Fleiss-Cohen-Everitt SE (0.0589).
    assert wide.std_error == pytest.approx(0.05891072, rel=0.25)


def test_bootstrap_skips_undefined_replicates() -> None:
    # Only one of 4 items disagrees, so many resamples hold one category: kappa is nan there.
    rows = [["a", "a"], ["a", "a"], ["a", "a"], ["a", "b"]]
    res = bootstrap_ci(fleiss_kappa, rows, n_resamples=200, rng=np.random.default_rng(3))
    assert 0 < res.n_valid < res.n_resamples
    assert not math.isnan(res.low)
    all_nan = bootstrap_ci(
        lambda rows: float("nan"), rows, n_resamples=5, rng=np.random.default_rng(3)
    )
    assert all_nan.n_valid == 0
    assert math.isnan(all_nan.low)
    assert math.isnan(all_nan.high)
    assert math.isnan(all_nan.std_error)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rng": np.random.RandomState(0)}, "rng: expected a numpy.random.Generator"),
        ({"rng": 42}, "rng: expected a numpy.random.Generator"),
        ({"n_resamples": 0}, "n_resamples"),
        ({"n_resamples": True}, "n_resamples"),
        ({"n_resamples": 2.5}, "n_resamples"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0}, "confidence"),
        ({"metric": lambda rows: "high"}, "metric: expected a function returning a number"),
        ({"metric": 3}, "metric: expected a callable"),
        ({"ratings": [["a"]]}, "at least 2 raters"),
    ],
)
def test_bootstrap_validation(kwargs: dict[str, Any], match: str) -> None:
    call: dict[str, Any] = {
        "metric": fleiss_kappa,
        "ratings": DIAGNOSES,
        "n_resamples": 10,
        "confidence": 0.9,
        "rng": np.random.default_rng(0),
    }
    call.update(kwargs)
    metric = call.pop("metric")
    ratings = call.pop("ratings")
    with pytest.raises(ValueError, match=match):
        bootstrap_ci(metric, ratings, **call)


# ============================================================================================
# Labeler accuracy and confusion matrix
# ============================================================================================


@pytest.mark.parametrize(
    ("successes", "n", "statsmodels_low", "statsmodels_high", "newcombe"),
    [
        # statsmodels 0.15.0: proportion_confint(x, n, alpha=0.05, method="wilson");
        # newcombe: the 4-decimal Wilson limits Newcombe (1998, Statist. Med. 17, Table I)
        # gives for these examples.
        (81, 263, 0.2552885198782742, 0.36620957698280004, (0.2553, 0.3662)),
        (15, 148, 0.06238639953073628, 0.16048724172330803, (0.0624, 0.1605)),
        (0, 20, 0.0, 0.1611251580528194, (0.0, 0.1611)),
        (1, 29, 0.006113214292762667, 0.17175521879320294, (0.0061, 0.1718)),
    ],
)
def test_labeler_accuracy_wilson_interval(
    successes: int,
    n: int,
    statsmodels_low: float,
    statsmodels_high: float,
    newcombe: tuple[float, float],
) -> None:
    gold = ["violating"] * n
    labels = ["violating"] * successes + ["ok"] * (n - successes)
    res = labeler_accuracy(labels, gold)
    assert isinstance(res, AccuracyResult)
    assert res.accuracy == successes / n
    assert res.n_correct == successes
    assert res.n_items == n
    assert res.low == pytest.approx(statsmodels_low, rel=1e-10, abs=1e-15)
    assert res.high == pytest.approx(statsmodels_high, rel=1e-10)
    assert (round(res.low, 4), round(res.high, 4)) == newcombe
    assert res.std_error == pytest.approx(math.sqrt(res.accuracy * (1 - res.accuracy) / n))


def test_labeler_accuracy_missing_labels_and_confidence() -> None:
    labels = ["spam", None, "ok", "spam", float("nan"), "ok"]
    gold = ["spam", "spam", "spam", None, "ok", "ok"]
    res = labeler_accuracy(labels, gold, confidence=0.9)
    assert res.n_items == 3
    assert res.n_missing == 3
    assert res.n_correct == 2
    assert res.confidence == 0.9
    perfect = labeler_accuracy(["a", "b"], ["a", "b"])
    assert perfect.high == 1.0
    assert perfect.std_error == 0.0
    assert (
        labeler_accuracy(["a"] * 30, ["a"] * 30, confidence=0.5).low
        > labeler_accuracy(["a"] * 30, ["a"] * 30).low
    )


@pytest.mark.parametrize(
    ("labels", "gold", "kwargs", "match"),
    [
        (["a"], ["a", "b"], {}, "gold: expected the same length"),
        ([None], ["a"], {}, "at least 1 item with both labels"),
        ("ab", ["a", "b"], {}, "single string"),
        ([["a"]], ["a"], {}, "hashable"),
        (["a"], ["a"], {"confidence": 1.5}, "confidence"),
    ],
)
def test_labeler_accuracy_validation(
    labels: Any, gold: Any, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        labeler_accuracy(labels, gold, **kwargs)


def test_confusion_per_policy_precision_recall() -> None:
    # LLM versus human reviewers on 10 items (one unscored: the LLM abstained).
    llm = ["spam", "spam", "ok", "ok", "hate", "spam", "ok", "ok", None, "ok"]
    human = ["spam", "ok", "ok", "ok", "hate", "hate", "ok", "spam", "ok", "ok"]
    res = confusion(llm, human, ["ok", "spam", "hate", "adult"])
    assert isinstance(res, ConfusionResult)
    assert res.categories == ("ok", "spam", "hate", "adult")
    # rows: human (reference), columns: LLM (prediction)
    assert res.matrix.tolist() == [
        [4, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 1, 0],
        [0, 0, 0, 0],
    ]
    assert res.n_items == 9
    assert res.n_missing == 1
    assert res.accuracy == pytest.approx(6 / 9)
    np.testing.assert_allclose(res.precision, [4 / 5, 1 / 3, 1.0, np.nan])
    np.testing.assert_allclose(res.recall, [4 / 5, 1 / 2, 1 / 2, np.nan])
    np.testing.assert_allclose(res.f1, [0.8, 0.4, 2 / 3, np.nan])
    assert res.support.tolist() == [5, 2, 2, 0]
    # binomial SEs over each share's denominator: predicted (5, 3, 1, 0), support (5, 2, 2, 0)
    np.testing.assert_allclose(
        res.precision_std_error,
        [math.sqrt(0.8 * 0.2 / 5), math.sqrt((1 / 3) * (2 / 3) / 3), 0.0, np.nan],
    )
    np.testing.assert_allclose(
        res.recall_std_error,
        [math.sqrt(0.8 * 0.2 / 5), math.sqrt(0.25 / 2), math.sqrt(0.25 / 2), np.nan],
    )
    assert res.accuracy == pytest.approx(labeler_accuracy(llm, human).accuracy)
    frame = res.to_frame()
    assert frame.loc["ok", "recall_std_error"] == pytest.approx(math.sqrt(0.8 * 0.2 / 5))
    assert list(frame.index) == ["ok", "spam", "hate", "adult"]
    assert frame.loc["spam", "predicted"] == 3
    with pytest.raises(ValueError, match="read-only"):
        res.matrix[0, 0] = 99


def test_confusion_zero_precision_and_recall_give_zero_f1() -> None:
    res = confusion(["a", "b"], ["b", "a"], ["a", "b"])
    assert res.precision.tolist() == [0.0, 0.0]
    assert res.recall.tolist() == [0.0, 0.0]
    assert res.f1.tolist() == [0.0, 0.0]
    assert res.accuracy == 0.0


@settings(max_examples=40, deadline=None)
@given(pair=rater_pairs(min_items=1, max_items=40))
def test_confusion_consistent_with_cohen_kappa(
    pair: tuple[list[Hashable], list[Hashable]],
) -> None:
    pred, ref = pair
    # None is a label for cohen_kappa but a missing value here: keep items without None.
    kept = [(p, r) for p, r in zip(pred, ref, strict=True) if p is not None and r is not None]
    assume(kept)
    p = [x for x, _ in kept]
    r = [y for _, y in kept]
    cats = list(dict.fromkeys(p + r))
    res = confusion(p, r, cats)
    assert res.matrix.sum() == len(kept)
    assert res.accuracy == pytest.approx(cohen_kappa(p, r).percent_agreement, abs=1e-14)
    assert res.support.sum() == len(kept)
    for values in (res.precision, res.recall, res.f1):
        finite = values[~np.isnan(values)]
        assert ((finite >= 0) & (finite <= 1)).all()


@pytest.mark.parametrize(
    ("pred", "ref", "categories", "match"),
    [
        (["a"], ["a", "b"], ["a", "b"], "labels_ref: expected the same length"),
        (["c"], ["a"], ["a", "b"], "labels_pred: expected labels among the categories"),
        (["a"], ["c"], ["a", "b"], "labels_ref: expected labels among the categories"),
        (["a"], ["a"], ["a", "a"], "distinct"),
        (["a"], ["a"], [], "at least 1 category"),
        ([None], ["a"], ["a"], "at least 1 item with both labels"),
    ],
)
def test_confusion_validation(pred: Any, ref: Any, categories: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        confusion(pred, ref, categories)


def test_fleiss_sampling_standard_error_covers_in_simulation() -> None:
    """Gwet's linearised SE of Fleiss' kappa is a sampling SE: over 400 simulated studies (60
    items x 4 raters, 3 categories, true per-item agreement structure fixed) its mean is within
    15% of the simulated SD of kappa, and 95% Wald intervals cover the mean kappa of a large
    study about 95% of the time (within 4 binomial SEs); the null SE is much smaller here."""
    rng = np.random.default_rng(12)
    shares = np.array([0.6, 0.3, 0.1])

    def study(n_items: int) -> list[list[int]]:
        # each item has a true category; each rater reports it with probability 0.7, else a
        # draw from the shares (a latent-class model with agreement well above chance)
        truth = rng.choice(3, size=n_items, p=shares)
        keep = rng.random((n_items, 4)) < 0.7
        noise = rng.choice(3, size=(n_items, 4), p=shares)
        return np.where(keep, truth[:, None], noise).tolist()

    target = fleiss_kappa(study(200_000)).kappa
    results = [fleiss_kappa(study(60)) for _ in range(400)]
    kappas = np.array([r.kappa for r in results])
    ses = np.array([r.sampling_std_error for r in results])
    assert float(ses.mean()) == pytest.approx(float(kappas.std(ddof=1)), rel=0.15)
    covered = float(np.mean(np.abs(kappas - target) <= 1.959964 * ses))
    assert abs(covered - 0.95) <= 4 * math.sqrt(0.95 * 0.05 / 400)
    assert float(np.mean([r.std_error for r in results])) < 0.8 * float(ses.mean())
