"""Hypothesis strategies shared by the statistical tests."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st

CONFIDENCES = st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99, 0.999])


@dataclass(frozen=True)
class Draws:
    """Per-draw inputs of the Hansen-Hurwitz estimators (a PPS-with-replacement sample)."""

    violating_impressions: npt.NDArray[np.float64]
    impressions: npt.NDArray[np.float64]
    selection_prob: npt.NDArray[np.float64]
    total_impressions: float


@st.composite
def pps_draws(draw: st.DrawFn, min_draws: int = 2, max_draws: int = 40) -> Draws:
    """Random per-draw data: impressions, a violation flag and a selection probability.

    Violating impressions equal the impressions of violating draws and 0 otherwise; the known
    total is at least the largest impressions value (a population contains its drawn units).
    """
    n = draw(st.integers(min_draws, max_draws))
    impressions = np.array(
        draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n)), dtype=np.float64
    )
    violates = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    prob = np.array(
        draw(
            st.lists(
                st.floats(1e-6, 1.0, allow_nan=False, allow_infinity=False),
                min_size=n,
                max_size=n,
            )
        ),
        dtype=np.float64,
    )
    extra = draw(st.floats(0.0, 1e12, allow_nan=False, allow_infinity=False))
    total = float(impressions.max()) + 1.0 + extra
    return Draws(
        violating_impressions=np.where(violates, impressions, 0.0),
        impressions=impressions,
        selection_prob=prob,
        total_impressions=total,
    )


LABELS: st.SearchStrategy[Hashable] = st.one_of(
    st.sampled_from(["ok", "spam", "adult", "harassment"]),
    st.integers(-2, 2),
    st.none(),
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 1)),
)


@st.composite
def rater_pairs(
    draw: st.DrawFn, min_items: int = 1, max_items: int = 60
) -> tuple[list[Hashable], list[Hashable]]:
    """Two aligned label sequences (raters A and B) over a small mixed-type label set."""
    n = draw(st.integers(min_items, max_items))
    labels_a = draw(st.lists(LABELS, min_size=n, max_size=n))
    labels_b = draw(st.lists(LABELS, min_size=n, max_size=n))
    return labels_a, labels_b


# Labels of an items x raters ratings matrix: any hashable except the missing markers (None/NaN).
RATING_LABELS: tuple[Hashable, ...] = ("ok", "spam", "adult", "harassment", 3, -1, ("a", 1), 2.5)


@st.composite
def rating_matrices(
    draw: st.DrawFn,
    min_items: int = 1,
    max_items: int = 30,
    min_raters: int = 2,
    max_raters: int = 6,
    missing: bool = False,
    max_categories: int = 4,
) -> list[list[Hashable]]:
    """An items x raters matrix (list of rows) over a few mixed-type labels.

    With ``missing`` cells may be ``None`` (a missing rating). Labels come from a per-example
    pool of 1..``max_categories`` labels, so that agreement is not just chance-level noise.
    """
    n_items = draw(st.integers(min_items, max_items))
    n_raters = draw(st.integers(min_raters, max_raters))
    pool = draw(
        st.lists(st.sampled_from(RATING_LABELS), min_size=1, max_size=max_categories, unique=True)
    )
    label = st.sampled_from(pool)
    cell: st.SearchStrategy[Hashable] = (
        st.one_of(st.none(), label, label) if missing else label  # about 1/3 missing
    )
    return [draw(st.lists(cell, min_size=n_raters, max_size=n_raters)) for _ in range(n_items)]


@dataclass(frozen=True)
class WeightedEvents:
    """A weighted sum of rare events as the gamma intervals see it: ``y = sum_i w_i N_i`` over
    the sampled units, its variance estimate ``v = sum_i (1 - pi_i) w_i^2 N_i`` and the weight of
    one more event (the mean weight of the sampled units)."""

    estimate: float
    variance: float
    event_weight: float


@st.composite
def weighted_events(draw: st.DrawFn, max_units: int = 30) -> WeightedEvents:
    """Weights ``w_i`` over eight orders of magnitude, 0/1 event flags (all zero allowed) and
    inclusion probabilities in (0, 1]; scaled so the estimate stays a prevalence (< 1)."""
    n = draw(st.integers(1, max_units))
    log_w = draw(st.lists(st.floats(-9.0, -1.0), min_size=n, max_size=n))
    w = 10.0 ** np.array(log_w)
    events = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=np.float64)
    pi = np.array(draw(st.lists(st.floats(0.01, 1.0), min_size=n, max_size=n)))
    w = w / max(1.0, 2.0 * float(w.sum()))
    return WeightedEvents(
        estimate=float(np.sum(w * events)),
        variance=float(np.sum((1.0 - pi) * w * w * events)),
        event_weight=float(w.mean()),
    )
