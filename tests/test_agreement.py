"""Tests of tsmetrics.agreement (Cohen's kappa)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import rater_pairs

from tsmetrics.agreement import KappaResult, cohen_kappa


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
