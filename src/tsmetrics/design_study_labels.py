"""The design study's label-error arm: LLM labels, a human validation subsample and PPI++.

What is simulated (per day, on the default design's sample)
-----------------------------------------------------------
Every unit of the default (calibrated Poisson PPS) sample gets an LLM label with
false-positive rate ``fpr`` and false-negative rate ``fnr`` (independent of everything else:
``f = 1`` with probability ``1 - fnr`` if the unit violates, ``fpr`` if not). A random
validation subsample gets a human label, taken as the truth: every certainty unit
(``pi_i = 1``) and each other sampled unit independently with probability ``validation_rate``
(the production overlap design, ``measure.label_correction_day``).

Estimators, side by side (:func:`tsmetrics.model_assisted.ppi_prevalence_poisson`)
----------------------------------------------------------------------------------
* ``llm_naive``: Horvitz-Thompson on the LLM labels. Its expectation is
  ``P (1 - fnr) + (1 - P) fpr`` (impression-weighted), not ``P``: at ``P = 0.1%``, ``fpr = 1%``
  and ``fnr = 10%`` it is ``0.01089``, 10.9 times the truth.
* ``human_only``: the two-phase estimator from the human labels alone (``lambda = 0``).
* ``ppi_corrected``: PPI++ with its power-tuned ``lambda`` (leave-one-out), design-unbiased,
  two-phase variance.

The gamma intervals use the mean weight of one more violating unit: ``x / (pi X)`` over the
uncertain sampled units for ``llm_naive``, ``x / (pi r X)`` over the uncertain validated units for
the other two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tsmetrics.gamma_interval import mean_uncertain_weight
from tsmetrics.model_assisted import ppi_prevalence_poisson

if TYPE_CHECKING:
    from tsmetrics.design_study import Day

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: The label-error arm's estimators, in report order.
LABEL_ESTIMATORS: tuple[str, ...] = ("ppi_corrected", "human_only", "llm_naive")


@dataclass(frozen=True)
class LabelErrorModel:
    """LLM error rates and the human validation rate of the uncertain sampled units."""

    fpr: float = 0.01
    fnr: float = 0.10
    validation_rate: float = 0.25

    def __post_init__(self) -> None:
        for name in ("fpr", "fnr"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name}: expected a rate in [0, 1), got {value!r}")
        if not 0.0 < self.validation_rate <= 1.0:
            raise ValueError(f"validation_rate: expected (0, 1], got {self.validation_rate!r}")

    def naive_expectation(self, prevalence: float) -> float:
        """``E(llm_naive) = P (1 - fnr) + (1 - P) fpr``."""
        return prevalence * (1.0 - self.fnr) + (1.0 - prevalence) * self.fpr


def label_estimates(
    day: Day,
    pi: FloatArray,
    selected: BoolArray,
    errors: LabelErrorModel,
    rng: np.random.Generator,
) -> dict[str, tuple[FloatArray, FloatArray, FloatArray, FloatArray]]:
    """Per estimator of :data:`LABEL_ESTIMATORS`: (estimate, variance, n, event weight), each of
    shape (P,), from one day's sample."""
    x, pis = day.impressions[selected], pi[selected]
    truth = day.violates[selected]
    u = rng.random(truth.shape)
    llm = np.where(truth, u >= errors.fnr, u < errors.fpr)
    rate = np.where(pis < 1.0, errors.validation_rate, 1.0)
    validated = rng.random(len(x)) < rate
    total = day.total_impressions
    weight_all = mean_uncertain_weight(x, pis, total)
    validated_uncertain = validated & (pis < 1.0)
    keep = validated_uncertain if validated_uncertain.any() else validated
    weight_validated = float(np.mean(x[keep] / (pis[keep] * rate[keep]))) / total
    out: dict[str, list[list[float]]] = {name: [[], [], [], []] for name in LABEL_ESTIMATORS}
    for p in range(truth.shape[1]):
        result = ppi_prevalence_poisson(
            x, llm[:, p], truth[:, p], validated, pis, total, validation_prob=rate
        )
        for name, estimate, weight in (
            ("ppi_corrected", result.corrected, weight_validated),
            ("human_only", result.human_only, weight_validated),
            ("llm_naive", result.naive, weight_all),
        ):
            for k, value in enumerate(
                (estimate.estimate, estimate.std_error**2, float(estimate.n_draws), weight)
            ):
                out[name][k].append(value)
    return {
        name: (np.array(e), np.array(v), np.array(n), np.array(w))
        for name, (e, v, n, w) in out.items()
    }
