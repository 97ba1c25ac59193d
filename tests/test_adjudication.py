"""Tests of tsmetrics.adjudication: majority vote and Dawid-Skene EM.

References used here
--------------------
* Dawid & Skene (1979), *Appl. Statist.* 28, 20-28: the anaesthesia data (Table 1) and the
  published estimates (Table 2: class probabilities and individual error rates, 2 decimals;
  Table 4: posterior class probabilities of the patients). The paper itself (JSTOR) was not
  reachable from the build machine. Table 1 is transcribed identically in two independent
  open-source implementations: ``generate_sample_data()`` of Dallas Card's reference
  implementation (github.com/dallascard/dawid_skene, ``dawid_skene.py``) and ``RAW_DATA`` of the
  JUnit test ``algorithms.dawidskene.DawidSkeneAlgorithmTest`` (author "LinX"; same 45 x 5
  array, "data from Table 1"); it is also the ``anesthesia`` data set of the R package rater
  1.3.2 (Pullin, Vukcevic). The 2-decimal estimates below are the expected values of that
  JUnit test (class probabilities, all 80 error rates, all 45 x 4 posteriors), which agree with
  the printed output of Dallas Card's implementation (kept as ``out/original_paper`` in
  github.com/alexandry-augustin/dawid_skene).
* Dallas Card's implementation (Python 2, same initialisation, eq. 3.1) printed its
  log-likelihood trace (``out/original_paper`` above, 9 decimals); we follow the same EM path.
* crowd-kit 1.4.2 (Toloka), ``crowdkit.aggregation.DawidSkene``, as an independent
  implementation. ``pip install crowd-kit --dry-run`` into the project venv would pull
  transformers, huggingface-hub, scikit-learn, pyarrow, nltk, so it was installed in a throwaway
  venv instead (``python3.11 -m venv /tmp/ck && /tmp/ck/bin/pip install crowd-kit``; numpy
  2.4.6, pandas 3.1.1) and its outputs are recorded below; crowd-kit is *not* a dependency.
  Call: ``DawidSkene(n_iter=3000, tol=-np.inf).fit(df)`` (``tol=-inf`` runs all 3000
  iterations, i.e. to the fixed point; the default ``tol=1e-5`` on its per-label ELBO stops the
  anaesthesia fit after 4 iterations), with ``df`` the long table (task, worker, label).
  crowd-kit clips error rates at 1e-10, so agreement is to ~1e-9.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsmetrics.adjudication import (
    DawidSkeneResult,
    MajorityVoteResult,
    dawid_skene,
    majority_vote,
)

Row = tuple[Hashable, Hashable, Hashable]

# --------------------------------------------------------------------------------------------
# Dawid & Skene (1979), Table 1: 45 patients, 5 observers (observer 1 rated every patient 3
# times), classes 1-4. DS_TABLE1[patient - 1][observer - 1] = that observer's ratings.
# --------------------------------------------------------------------------------------------
DS_TABLE1: list[list[list[int]]] = [
    [[1, 1, 1], [1], [1], [1], [1]],
    [[3, 3, 3], [4], [3], [3], [4]],
    [[1, 1, 2], [2], [1], [2], [2]],
    [[2, 2, 2], [3], [1], [2], [1]],
    [[2, 2, 2], [3], [2], [2], [2]],
    [[2, 2, 2], [3], [3], [2], [2]],
    [[1, 2, 2], [2], [1], [1], [1]],
    [[3, 3, 3], [3], [4], [3], [3]],
    [[2, 2, 2], [2], [2], [2], [3]],
    [[2, 3, 2], [2], [2], [2], [3]],
    [[4, 4, 4], [4], [4], [4], [4]],
    [[2, 2, 2], [3], [3], [4], [3]],
    [[1, 1, 1], [1], [1], [1], [1]],
    [[2, 2, 2], [3], [2], [1], [2]],
    [[1, 2, 1], [1], [1], [1], [1]],
    [[1, 1, 1], [2], [1], [1], [1]],
    [[1, 1, 1], [1], [1], [1], [1]],
    [[1, 1, 1], [1], [1], [1], [1]],
    [[2, 2, 2], [2], [2], [2], [1]],
    [[2, 2, 2], [1], [3], [2], [2]],
    [[2, 2, 2], [2], [2], [2], [2]],
    [[2, 2, 2], [2], [2], [2], [1]],
    [[2, 2, 2], [3], [2], [2], [2]],
    [[2, 2, 1], [2], [2], [2], [2]],
    [[1, 1, 1], [1], [1], [1], [1]],
    [[1, 1, 1], [1], [1], [1], [1]],
    [[2, 3, 2], [2], [2], [2], [2]],
    [[1, 1, 1], [1], [1], [1], [1]],
    [[1, 1, 1], [1], [1], [1], [1]],
    [[1, 1, 2], [1], [1], [2], [1]],
    [[1, 1, 1], [1], [1], [1], [1]],
    [[3, 3, 3], [3], [2], [3], [3]],
    [[1, 1, 1], [1], [1], [1], [1]],
    [[2, 2, 2], [2], [2], [2], [2]],
    [[2, 2, 2], [3], [2], [3], [2]],
    [[4, 3, 3], [4], [3], [4], [3]],
    [[2, 2, 1], [2], [2], [3], [2]],
    [[2, 3, 2], [3], [2], [3], [3]],
    [[3, 3, 3], [3], [4], [3], [2]],
    [[1, 1, 1], [1], [1], [1], [1]],
    [[1, 1, 1], [1], [1], [1], [1]],
    [[1, 2, 1], [2], [1], [1], [1]],
    [[2, 3, 2], [2], [2], [2], [2]],
    [[1, 2, 1], [1], [1], [1], [1]],
    [[2, 2, 2], [2], [2], [2], [2]],
]
DS_ROWS: list[Row] = [
    (patient + 1, observer + 1, rating)
    for patient, observers in enumerate(DS_TABLE1)
    for observer, ratings in enumerate(observers)
    for rating in ratings
]

# Dawid & Skene (1979) Table 2 (2 decimals, provenance in the module docstring).
PAPER_PRIORS = [0.40, 0.42, 0.11, 0.07]
PAPER_ERROR_RATES = [  # [observer][true class][response]
    [[0.89, 0.11, 0.00, 0.00], [0.07, 0.88, 0.05, 0.00],
     [0.00, 0.34, 0.66, 0.00], [0.00, 0.00, 0.56, 0.44]],
    [[0.83, 0.17, 0.00, 0.00], [0.05, 0.63, 0.31, 0.00],
     [0.00, 0.00, 1.00, 0.00], [0.00, 0.00, 0.00, 1.00]],
    [[1.00, 0.00, 0.00, 0.00], [0.11, 0.79, 0.11, 0.00],
     [0.00, 0.40, 0.20, 0.40], [0.00, 0.00, 0.67, 0.33]],
    [[0.94, 0.06, 0.00, 0.00], [0.05, 0.84, 0.10, 0.00],
     [0.00, 0.00, 0.80, 0.20], [0.00, 0.00, 0.33, 0.67]],
    [[1.00, 0.00, 0.00, 0.00], [0.16, 0.73, 0.11, 0.00],
     [0.00, 0.21, 0.79, 0.00], [0.00, 0.00, 0.33, 0.67]],
]  # fmt: skip
# Dawid & Skene (1979) Table 4 (2 decimals): every patient's posterior is one-hot on the class
# below except patients 7, 35 and 38.
PAPER_CLASSES = "142222132243121111222222112111131224233111212"
PAPER_POSTERIOR_NOT_ONE_HOT = {
    7: [0.98, 0.02, 0.00, 0.00],
    35: [0.00, 0.95, 0.05, 0.00],
    38: [0.00, 0.02, 0.98, 0.00],
}
# Dallas Card's dawid_skene.py on the same data: log-likelihood after iterations 1-15.
CARD_LOG_LIKELIHOOD_TRACE = [
    -205.091138294, -194.550952357, -193.159445492, -192.942423964, -192.90931016,
    -192.897593567, -192.893351421, -192.89180304, -192.891229496, -192.891014022,
    -192.890932178, -192.890900851, -192.8908888, -192.89088415, -192.890882351,
]  # fmt: skip

# crowd-kit 1.4.2 DawidSkene(n_iter=3000, tol=-np.inf) on the anaesthesia data (10 decimals).
CK_DS_PRIORS = [0.3995547529, 0.4219833919, 0.1117951885, 0.0666666667]
CK_DS_ERRORS = [  # errors_.loc[worker] transposed: [true class][response]
    [[0.8894883487, 0.1105116513, 0.0, 0.0], [0.0705854505, 0.8763799368, 0.0530346126, 0.0],
     [0.0, 0.3388215402, 0.6611784598, 0.0], [0.0, 0.0, 0.5555555555, 0.4444444444]],
    [[0.8342140831, 0.1657859168, 0.0, 0.0], [0.052706704, 0.6329461951, 0.314347101, 0.0],
     [0.0, 0.0, 0.9999999999, 0.0], [0.0, 0.0, 0.0, 0.9999999999]],
    [[1.0, 0.0, 0.0, 0.0], [0.1063778633, 0.788299403, 0.1053227338, 0.0],
     [0.0, 0.4036714143, 0.1987761952, 0.3975523905], [0.0, 0.0, 0.6666666666, 0.3333333333]],
    [[0.9444300399, 0.0555699601, 0.0, 0.0], [0.053671517, 0.8426268496, 0.1037016334, 0.0],
     [0.0, 0.0, 0.8012238047, 0.1987761952], [0.0, 0.0, 0.3333333333, 0.6666666666]],
    [[1.0, 0.0, 0.0, 0.0], [0.1590392301, 0.7345204927, 0.1064402772, 0.0],
     [0.0, 0.2091135111, 0.7908864889, 0.0], [0.0, 0.0, 0.3333333333, 0.6666666666]],
]  # fmt: skip
CK_DS_POSTERIOR = {  # probas_ of the patients that are not (nearly) one-hot
    7: [0.981020295, 0.018979705, 0.0, 0.0],
    30: [0.9991458754, 0.0008541246, 0.0, 0.0],
    35: [0.0, 0.947995202, 0.052004798, 0.0],
    38: [0.0, 0.0212004842, 0.9787995158, 0.0],
    42: [0.999806439, 0.000193561, 0.0, 0.0],
}
CK_DS_LABELS = "142222132243121111222222112111131224233111212"  # labels_, patients 1..45


def simulate_labels(
    seed: int,
    n_items: int,
    priors: Sequence[float],
    confusions: Sequence[Sequence[Sequence[float]]],
    p_label: float,
) -> tuple[list[Row], npt.NDArray[np.intp]]:
    """Long rows (item, labeler, label) drawn from the Dawid-Skene model, and the true classes.

    Item ``i`` ("t000", ...) has class ``truth[i]`` ~ priors; labeler ``j`` ("w0", ...) labels it
    with probability ``p_label``, drawing the label from row ``truth[i]`` of ``confusions[j]``.
    Only ``Generator.random`` is used (inverse-CDF draws), so the data are reproducible.
    """
    rng = np.random.default_rng(seed)
    prior_arr = np.asarray(priors, dtype=np.float64)
    conf = np.asarray(confusions, dtype=np.float64)
    n_lab, k = conf.shape[0], conf.shape[1]
    truth = np.minimum(
        np.searchsorted(np.cumsum(prior_arr), rng.random(n_items), side="right"), k - 1
    )
    present = rng.random((n_items, n_lab)) < p_label
    u = rng.random((n_items, n_lab))
    cum = np.cumsum(conf, axis=2)[np.arange(n_lab)[None, :], truth[:, None], :]
    labels = np.minimum((u[:, :, None] >= cum).sum(axis=2), k - 1)
    item, lab = np.nonzero(present)
    rows: list[Row] = [
        (f"t{i:03d}", f"w{j}", int(labels[i, j]))
        for i, j in zip(item.tolist(), lab.tolist(), strict=True)
    ]
    return rows, truth


# crowd-kit 1.4.2 on simulate_labels(20240605, 300, CK_SIM_PRIORS, CK_SIM_CONFUSIONS, 0.7):
# 822 labels on 298 items (2 items drew no label); DawidSkene(n_iter=3000, tol=-np.inf).
CK_SIM_PRIORS = [0.6, 0.3, 0.1]
CK_SIM_CONFUSIONS = [
    [[0.9, 0.08, 0.02], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]],
    [[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]],
    [[0.8, 0.2, 0.0], [0.3, 0.6, 0.1], [0.0, 0.4, 0.6]],
    [[0.6, 0.3, 0.1], [0.3, 0.5, 0.2], [0.2, 0.2, 0.6]],
]
CK_SIM_EST_PRIORS = [0.6522163, 0.224352104, 0.1234315959]
CK_SIM_EST_ERRORS = [
    [[0.9775317394, 0.0083401024, 0.0141281582], [0.0, 0.8053172367, 0.1946827633],
     [0.0, 0.6143690448, 0.3856309552]],
    [[0.6144258083, 0.2503567005, 0.1352174912], [0.3065548321, 0.6934451679, 0.0],
     [0.0, 0.3478907055, 0.6521092945]],
    [[0.777383494, 0.222616506, 0.0], [0.3135264107, 0.6864735893, 0.0],
     [0.1812625591, 0.1941229894, 0.6246144516]],
    [[0.625889768, 0.3157799324, 0.0583302996], [0.2525314574, 0.3505209444, 0.3969475981],
     [0.4673928988, 0.0545039473, 0.4781031539]],
]  # fmt: skip
CK_SIM_POSTERIOR = {  # the 6 items of largest posterior entropy
    "t003": [0.374422974, 0.288801462, 0.336775564],
    "t036": [0.374422974, 0.288801462, 0.336775564],
    "t038": [0.374422974, 0.288801462, 0.336775564],
    "t061": [0.4492853399, 0.4765705678, 0.0741440922],
    "t076": [0.2044132583, 0.4785050559, 0.3170816858],
    "t264": [0.4492853399, 0.4765705678, 0.0741440922],
}
CK_SIM_LABELS = (  # labels_ of the 298 items in sorted order
    "0000000000200112020000010000100010000000000001000022000000021202020100000101000002001001"
    "0010100101000201202000000100100000002000100101111110010100010001000021010011010010000002"
    "0110100000000101000201000021100000000101110000021110210010011100000000010010000010000110"
    "0001110000002010101101000101010122"
)


def _data(rows: Sequence[Row]) -> tuple[list[Hashable], list[Hashable], list[Hashable]]:
    items, labelers, labels = (list(col) for col in zip(*rows, strict=True))
    return items, labelers, labels


def _by_item(result: DawidSkeneResult | MajorityVoteResult, values: Any) -> dict[Hashable, Any]:
    return dict(zip(result.items, list(values), strict=True))


# --------------------------------------------------------------------------------------------
# (a) Dawid & Skene (1979) anaesthesia data: the published estimates
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ds_fit() -> DawidSkeneResult:
    frame = pd.DataFrame(DS_ROWS, columns=["item_id", "labeler_id", "label"])
    return dawid_skene(frame, tol=1e-12, max_iter=10_000)


def test_anaesthesia_data_shape() -> None:
    # 45 patients x (3 + 1 + 1 + 1 + 1) ratings; Dawid & Skene (1979) section 4.
    assert len(DS_ROWS) == 45 * 7
    frame = pd.DataFrame(DS_ROWS, columns=["item_id", "labeler_id", "label"])
    assert frame.groupby("labeler_id").size().tolist() == [135, 45, 45, 45, 45]


def test_anaesthesia_published_estimates(ds_fit: DawidSkeneResult) -> None:
    fit = ds_fit
    assert fit.converged
    assert fit.items == tuple(range(1, 46))
    assert fit.labelers == (1, 2, 3, 4, 5)
    assert fit.categories == (1, 2, 3, 4)
    half_unit = 0.005 + 1e-12  # printed to 2 decimals
    np.testing.assert_allclose(fit.priors, PAPER_PRIORS, rtol=0, atol=half_unit)
    np.testing.assert_allclose(fit.confusion, PAPER_ERROR_RATES, rtol=0, atol=half_unit)
    published = np.zeros((45, 4))
    published[np.arange(45), [int(c) - 1 for c in PAPER_CLASSES]] = 1.0
    for patient, row in PAPER_POSTERIOR_NOT_ONE_HOT.items():
        published[patient - 1] = row
    np.testing.assert_allclose(fit.posterior, published, rtol=0, atol=half_unit)
    assert "".join(str(c) for c in fit.labels) == PAPER_CLASSES


def test_anaesthesia_em_path_matches_card_trace() -> None:
    # Same start (eq. 3.1) and update order as Dallas Card's implementation: the log-likelihood
    # after each of the first 15 iterations agrees to its 9 printed decimals.
    fit = dawid_skene(_data(DS_ROWS), tol=1e-12, max_iter=15)
    assert fit.n_iter == 15 and not fit.converged
    np.testing.assert_allclose(fit.log_likelihood_trace, CARD_LOG_LIKELIHOOD_TRACE, atol=6e-9)
    assert fit.log_likelihood == fit.log_likelihood_trace[-1]


def test_anaesthesia_matches_crowd_kit(ds_fit: DawidSkeneResult) -> None:
    np.testing.assert_allclose(ds_fit.priors, CK_DS_PRIORS, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ds_fit.confusion, CK_DS_ERRORS, rtol=0, atol=1e-8)
    for patient, row in CK_DS_POSTERIOR.items():
        np.testing.assert_allclose(ds_fit.posterior[patient - 1], row, rtol=0, atol=1e-8)
    assert "".join(str(c) for c in ds_fit.labels) == CK_DS_LABELS
    # The log-likelihood at the fixed point is above Card's value at his (looser) stopping point.
    assert (
        CARD_LOG_LIKELIHOOD_TRACE[-1] < ds_fit.log_likelihood < CARD_LOG_LIKELIHOOD_TRACE[-1] + 2e-6
    )


def test_anaesthesia_majority_vote() -> None:
    # By hand from Table 1: patient 1 has 7 votes for class 1; patient 3 (1,1,2 | 2 | 1 | 2 | 2)
    # has 3 votes for 1 and 4 for 2; patient 36 (4,3,3 | 4 | 3 | 4 | 3) has 4 for 3, 3 for 4.
    mv = majority_vote(_data(DS_ROWS))
    frame = mv.to_frame()
    assert frame.loc[1, "label"] == 1 and frame.loc[1, "vote_share"] == 1.0
    assert frame.loc[3, "label"] == 2 and frame.loc[3, "vote_share"] == pytest.approx(4 / 7)
    assert frame.loc[36, "label"] == 3 and frame.loc[36, "vote_share"] == pytest.approx(4 / 7)
    assert frame["n_votes"].eq(7).all()
    # Patient 12 (2,2,2 | 3 | 3 | 4 | 3) is the only tie: 3 votes each for classes 2 and 3.
    assert mv.tied.nonzero()[0].tolist() == [11] and mv.labels[11] is None
    assert majority_vote(_data(DS_ROWS), tie_break="positive", positive_label=3).labels[11] == 3
    # Majority vote and Dawid-Skene (Table 4) differ on patients 2 (5 votes for 3, 2 for 4;
    # DS: 4, since observers 2 and 5 never say 4 for a class-3 patient), 12 (the tie; DS: 3)
    # and 36 (4 votes for 3, 3 for 4; DS: 4).
    differ = [p for p in range(1, 46) if mv.labels[p - 1] != int(PAPER_CLASSES[p - 1])]
    assert differ == [2, 12, 36]


def test_anaesthesia_labeler_accuracy_and_frames(ds_fit: DawidSkeneResult) -> None:
    expected = np.array(
        [sum(ds_fit.priors[k] * ds_fit.confusion[j, k, k] for k in range(4)) for j in range(5)]
    )
    np.testing.assert_allclose(ds_fit.labeler_accuracy, expected, rtol=1e-12)
    frame = ds_fit.to_frame()
    assert frame.shape == (45, 6) and list(frame.columns[:4]) == [1, 2, 3, 4]
    np.testing.assert_allclose(frame[[1, 2, 3, 4]].sum(axis=1), 1.0, rtol=1e-12)
    conf = ds_fit.confusion_frame()
    assert conf.shape == (20, 4)
    assert conf.loc[(3, 3), 4] == pytest.approx(ds_fit.confusion[2, 2, 3])


# --------------------------------------------------------------------------------------------
# (b) crowd-kit on a simulated data set
# --------------------------------------------------------------------------------------------


def test_simulated_data_matches_crowd_kit() -> None:
    rows, truth = simulate_labels(20240605, 300, CK_SIM_PRIORS, CK_SIM_CONFUSIONS, 0.7)
    # Guard: the same data crowd-kit was run on.
    assert len(rows) == 822
    assert np.bincount([r[2] for r in rows]).tolist() == [458, 255, 109]
    assert np.bincount(truth).tolist() == [197, 73, 30]
    fit = dawid_skene(_data(rows), tol=1e-13, max_iter=100_000)
    assert fit.converged and len(fit.items) == 298
    assert fit.labelers == ("w0", "w1", "w2", "w3")
    np.testing.assert_allclose(fit.priors, CK_SIM_EST_PRIORS, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fit.confusion, CK_SIM_EST_ERRORS, rtol=0, atol=1e-8)
    posterior = _by_item(fit, fit.posterior)
    for item, row in CK_SIM_POSTERIOR.items():
        np.testing.assert_allclose(posterior[item], row, rtol=0, atol=1e-8)
    assert "".join(str(c) for c in fit.labels) == CK_SIM_LABELS


# --------------------------------------------------------------------------------------------
# (c) Simulation: recovery of known confusion matrices; Dawid-Skene versus majority vote
# --------------------------------------------------------------------------------------------


def _pattern_probs(theta: npt.NDArray[np.float64], k: int, n_lab: int) -> npt.NDArray[np.float64]:
    """Probabilities of all k**n_lab label patterns (every labeler labels once)."""
    priors = np.append(theta[: k - 1], 1.0 - theta[: k - 1].sum())
    free = theta[k - 1 :].reshape(n_lab, k, k - 1)
    conf = np.concatenate([free, 1.0 - free.sum(axis=2, keepdims=True)], axis=2)
    patterns = np.array(list(itertools.product(range(k), repeat=n_lab)))
    joint = np.ones((len(patterns), k)) * priors
    for j in range(n_lab):
        joint *= conf[j][:, patterns[:, j]].T
    return joint.sum(axis=1)


def fisher_std_errors(
    priors: npt.NDArray[np.float64], conf: npt.NDArray[np.float64], n_items: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Asymptotic standard errors of the ML estimates of ``p_k`` (k < K-1) and ``pi_kl^(j)``
    (l < K-1): inverse Fisher information of the multinomial over label patterns, ``I = n sum_x
    (grad f_x)(grad f_x)^T / f_x`` (gradient by central differences; ``f`` is a polynomial)."""
    k, n_lab = priors.shape[0], conf.shape[0]
    theta = np.concatenate([priors[: k - 1], conf[:, :, : k - 1].ravel()])
    f = _pattern_probs(theta, k, n_lab)
    grad = np.empty((f.shape[0], theta.shape[0]))
    h = 1e-6
    for t in range(theta.shape[0]):
        step = np.zeros_like(theta)
        step[t] = h
        grad[:, t] = (
            _pattern_probs(theta + step, k, n_lab) - _pattern_probs(theta - step, k, n_lab)
        ) / (2 * h)
    info = n_items * (grad.T / f) @ grad
    se = np.sqrt(np.diag(np.linalg.inv(info)))
    return se[: k - 1], se[k - 1 :].reshape(n_lab, k, k - 1)


def _accuracies(
    priors: npt.NDArray[np.float64], conf: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """Exact accuracy of majority vote (ties split evenly) and of the Bayes rule (the posterior
    mode under the true parameters), by enumerating all label patterns."""
    k, n_lab = priors.shape[0], conf.shape[0]
    mv = bayes = 0.0
    for pattern in itertools.product(range(k), repeat=n_lab):
        joint = priors * np.prod([conf[j][:, pattern[j]] for j in range(n_lab)], axis=0)
        votes = np.bincount(pattern, minlength=k)
        top = np.flatnonzero(votes == votes.max())
        mv += float(joint[top].sum()) / top.size
        bayes += float(joint.max())
    return mv, bayes


# Three labelers, one good and two weak; binary (0 = ok, 1 = violating).
SIM_PRIORS = np.array([0.6, 0.4])
SIM_CONFUSIONS = np.array(
    [
        [[0.95, 0.05], [0.10, 0.90]],
        [[0.80, 0.20], [0.30, 0.70]],
        [[0.70, 0.30], [0.20, 0.80]],
    ]
)
# Rare violations (2%), the usual case in production.
RARE_PRIORS = np.array([0.98, 0.02])
RARE_CONFUSIONS = np.array(
    [
        [[0.99, 0.01], [0.10, 0.90]],
        [[0.97, 0.03], [0.20, 0.80]],
        [[0.95, 0.05], [0.30, 0.70]],
    ]
)


def test_fisher_std_errors_exceed_binomial() -> None:
    # Sanity check of the reference: not knowing the true classes costs information, so the
    # asymptotic SE of each error rate is above the binomial SE sqrt(pi (1 - pi) / (n p_k))
    # of the estimate one would get with the true classes known.
    n = 1000
    _, se = fisher_std_errors(SIM_PRIORS, SIM_CONFUSIONS, n)
    binomial = np.sqrt(SIM_CONFUSIONS * (1 - SIM_CONFUSIONS) / (n * SIM_PRIORS)[None, :, None])
    ratio = se / binomial[:, :, :1]
    assert np.all(ratio > 1.0) and np.all(ratio < 4.0)


@pytest.mark.parametrize(
    ("priors", "confusions", "n_items", "seeds"),
    [
        (SIM_PRIORS, SIM_CONFUSIONS, 1000, (11, 12, 13)),
        (RARE_PRIORS, RARE_CONFUSIONS, 3000, (21, 22)),
    ],
    ids=["balanced", "rare"],
)
def test_simulation_recovers_confusion_matrices(
    priors: npt.NDArray[np.float64],
    confusions: npt.NDArray[np.float64],
    n_items: int,
    seeds: tuple[int, ...],
) -> None:
    # Every estimate within 4 asymptotic standard errors of the truth (Fisher information of
    # the model, see fisher_std_errors); |z| > 4 has probability ~6e-5 per parameter.
    se_prior, se_conf = fisher_std_errors(priors, confusions, n_items)
    for seed in seeds:
        rows, _ = simulate_labels(seed, n_items, priors, confusions, 1.0)
        fit = dawid_skene(_data(rows), tol=1e-7, max_iter=20_000)
        assert fit.converged
        assert fit.categories == (0, 1)
        z_prior = (fit.priors[: len(priors) - 1] - priors[:-1]) / se_prior
        z_conf = (fit.confusion[:, :, :-1] - confusions[:, :, :-1]) / se_conf
        assert np.all(np.abs(z_prior) < 4.0), (seed, z_prior)
        assert np.all(np.abs(z_conf) < 4.0), (seed, z_conf)


def test_simulation_dawid_skene_beats_majority_vote() -> None:
    n = 1000
    mv_expected, bayes_expected = _accuracies(SIM_PRIORS, SIM_CONFUSIONS)
    # By enumeration: majority vote 0.9134, Bayes rule 0.9300.
    assert mv_expected == pytest.approx(0.9134, abs=5e-5)
    assert bayes_expected == pytest.approx(0.9300, abs=5e-5)
    tol = 4.0 * math.sqrt(0.25 / n)  # 4 binomial SEs of an accuracy (worst case p = 1/2)
    gaps = []
    for seed in (11, 12, 13):
        rows, truth = simulate_labels(seed, n, SIM_PRIORS, SIM_CONFUSIONS, 1.0)
        data = _data(rows)
        fit = dawid_skene(data, tol=1e-7, max_iter=20_000)
        mv = majority_vote(data)
        true_class = truth[[int(str(item)[1:]) for item in fit.items]]
        ds_accuracy = float(np.mean(fit.labels.astype(int) == true_class))
        mv_accuracy = float(np.mean(mv.labels.astype(int) == true_class))
        assert abs(ds_accuracy - bayes_expected) < tol
        assert abs(mv_accuracy - mv_expected) < tol
        assert ds_accuracy > mv_accuracy, (seed, ds_accuracy, mv_accuracy)
        gaps.append(ds_accuracy - mv_accuracy)
    # The mean gain is near the Bayes-versus-majority gap (0.0166); paired SE is ~0.004/sqrt(3).
    assert abs(float(np.mean(gaps)) - (bayes_expected - mv_expected)) < 0.015


def test_simulation_gold_clamping_helps_weak_labelers() -> None:
    # With 20% of the items' true classes known (SME gold), the estimates of the good labeler's
    # error rates (the worst determined, see test_fisher_std_errors_exceed_binomial) improve.
    errors_free, errors_gold = [], []
    for seed in (31, 32, 33, 34):
        rows, truth = simulate_labels(seed, 600, SIM_PRIORS, SIM_CONFUSIONS, 1.0)
        gold = {f"t{i:03d}": int(truth[i]) for i in range(0, 600, 5)}
        free = dawid_skene(_data(rows), tol=1e-7, max_iter=20_000)
        clamped = dawid_skene(_data(rows), gold=gold, tol=1e-7, max_iter=20_000)
        assert clamped.is_gold.sum() == 120
        gold_rows = clamped.posterior[clamped.is_gold]
        assert np.all(gold_rows.max(axis=1) == 1.0)
        assert [clamped.labels[clamped.items.index(item)] for item in gold] == list(gold.values())
        errors_free.append(np.abs(free.confusion[0] - SIM_CONFUSIONS[0]).max())
        errors_gold.append(np.abs(clamped.confusion[0] - SIM_CONFUSIONS[0]).max())
    assert np.mean(errors_gold) < np.mean(errors_free)


def _enriched_gold_table(
    seed: int, n_items: int = 3000, prevalence: float = 0.02, n_gold: int = 150
) -> tuple[list[Row], dict[Hashable, int]]:
    """The daily design in miniature: a primary labeler on every sampled item, an overlap
    labeler on 30%, and SME gold items that are half violating (enriched, not sampled)."""
    confusions = [[[0.99, 0.01], [0.10, 0.90]], [[0.995, 0.005], [0.05, 0.95]]]
    rows, _ = simulate_labels(seed, n_items, [1 - prevalence, prevalence], confusions, 1.0)
    rng = np.random.default_rng(seed + 1)
    overlap = {f"t{i:03d}" for i in np.nonzero(rng.random(n_items) < 0.3)[0]}
    rows = [r for r in rows if r[1] == "w0" or r[0] in overlap]
    gold: dict[Hashable, int] = {}
    for g in range(n_gold):
        truth = int(g % 2 == 0)
        gold[f"gold-{g}"] = truth
        for j, confusion in enumerate(confusions):
            said = int(rng.random() < confusion[truth][1])
            rows.append((f"gold-{g}", f"w{j}", said))
    return rows, gold


def test_enriched_gold_biases_the_priors_unless_kept_out_of_them() -> None:
    # 150 half-violating gold items among 3000 sampled items at 2% prevalence: counted in the
    # priors they pull p(violating) to about (60 + 75) / 3150 = 0.043; kept out (gold informs
    # the confusion matrices only) the prior estimates the sampled items' prevalence.
    inside, outside = [], []
    for seed in (41, 42, 43, 44):
        rows, gold = _enriched_gold_table(seed)
        with_gold = dawid_skene(_data(rows), gold=gold, smoothing=0.5, tol=1e-9, max_iter=5000)
        without = dawid_skene(
            _data(rows), gold=gold, smoothing=0.5, tol=1e-9, max_iter=5000, gold_in_priors=False
        )
        assert with_gold.converged and without.converged
        inside.append(with_gold.priors[1])
        outside.append(without.priors[1])
        # the prior is the mean posterior of the non-gold items (with the smoothing pseudo-count)
        sampled = ~without.is_gold
        expected = (without.posterior[sampled, 1].sum() + 0.5) / (sampled.sum() + 1.0)
        assert without.priors[1] == pytest.approx(expected, abs=1e-6)
    se = np.sqrt(0.02 * 0.98 / 3000)
    assert min(inside) > 0.035
    assert abs(np.mean(outside) - 0.02) < 4 * se / 2  # mean of 4 fits: SE / 2


# --------------------------------------------------------------------------------------------
# Exact small cases and an independent loop implementation
# --------------------------------------------------------------------------------------------


def test_all_gold_gives_empirical_confusion() -> None:
    # Every item gold: the MLE is the empirical confusion matrix and class shares, reached at
    # the first iteration (by hand: A says 0,0 on class 0 and 1,0 on class 1; B says 0,1 on
    # class 0 and 1,1 on class 1).
    items = [1, 2, 3, 4, 1, 2, 3, 4]
    labelers = ["A"] * 4 + ["B"] * 4
    labels = [0, 0, 1, 0, 0, 1, 1, 1]
    gold = {1: 0, 2: 0, 3: 1, 4: 1}
    fit = dawid_skene((items, labelers, labels), gold=gold)
    assert fit.converged and fit.n_iter == 2
    np.testing.assert_allclose(fit.priors, [0.5, 0.5])
    np.testing.assert_allclose(fit.confusion, [[[1, 0], [0.5, 0.5]], [[0.5, 0.5], [0, 1]]])
    np.testing.assert_array_equal(fit.posterior, [[1, 0], [1, 0], [0, 1], [0, 1]])
    assert fit.log_likelihood == pytest.approx(8 * math.log(0.5))
    # Laplace smoothing a = 1: (counts + 1) / (row total + 2), priors (2 + 1) / (4 + 2).
    smooth = dawid_skene((items, labelers, labels), gold=gold, smoothing=1.0)
    np.testing.assert_allclose(
        smooth.confusion, [[[0.75, 0.25], [0.5, 0.5]], [[0.5, 0.5], [0.25, 0.75]]]
    )
    np.testing.assert_allclose(smooth.priors, [0.5, 0.5])
    penalty = math.log(0.5) * 2 + sum(math.log(v) for v in smooth.confusion.ravel())
    assert smooth.log_likelihood_trace[-1] == pytest.approx(smooth.log_likelihood + penalty)


def test_unused_category_gets_zero_prior_and_uniform_rows() -> None:
    rows = [
        (1, "A", "ok"),
        (1, "B", "ok"),
        (2, "A", "spam"),
        (2, "B", "spam"),
        (3, "A", "ok"),
        (3, "B", "ok"),
    ]
    fit = dawid_skene(_data(rows), categories=["ok", "spam", "adult"])
    assert fit.categories == ("ok", "spam", "adult")
    assert fit.priors[2] == 0.0 and np.all(fit.posterior[:, 2] == 0.0)
    np.testing.assert_allclose(fit.confusion[:, 2, :], 1 / 3)


def _naive_dawid_skene(
    rows: Sequence[Row],
    categories: Sequence[Hashable],
    gold: dict[Hashable, Hashable],
    alpha: float,
    n_iter: int,
) -> tuple[
    dict[Hashable, list[float]], dict[Hashable, list[list[float]]], list[float], list[float]
]:
    """Dawid & Skene EM with plain Python loops over items, labels and classes (eqs. 2.3-2.5,
    3.1), as a check of the vectorised implementation."""
    k = len(categories)
    code = {c: i for i, c in enumerate(categories)}
    items = sorted({r[0] for r in rows})
    labelers = sorted({r[1] for r in rows})
    labels_of: dict[Hashable, list[tuple[Hashable, int]]] = {i: [] for i in items}
    for item, labeler, label in rows:
        labels_of[item].append((labeler, code[label]))
    post: dict[Hashable, list[float]] = {}
    for i in items:
        votes = [0.0] * k
        for _, lab in labels_of[i]:
            votes[lab] += 1.0
        post[i] = [v / sum(votes) for v in votes]
        if i in gold:
            post[i] = [1.0 if c == code[gold[i]] else 0.0 for c in range(k)]
    conf: dict[Hashable, list[list[float]]] = {}
    priors: list[float] = []
    trace: list[float] = []
    for _ in range(n_iter):
        counts = {j: [[alpha] * k for _ in range(k)] for j in labelers}
        for i in items:
            for j, lab in labels_of[i]:
                for c in range(k):
                    counts[j][c][lab] += post[i][c]
        conf = {
            j: [
                [v / sum(counts[j][c]) for v in counts[j][c]]
                if sum(counts[j][c]) > 0
                else [1.0 / k] * k
                for c in range(k)
            ]
            for j in labelers
        }
        priors = [
            (sum(post[i][c] for i in items) + alpha) / (len(items) + k * alpha) for c in range(k)
        ]
        log_lik = 0.0
        for i in items:
            joint = []
            for c in range(k):
                value = priors[c]
                for j, lab in labels_of[i]:
                    value *= conf[j][c][lab]
                joint.append(value)
            if i in gold:
                g = code[gold[i]]
                post[i] = [1.0 if c == g else 0.0 for c in range(k)]
                log_lik += math.log(joint[g])
            else:
                post[i] = [v / sum(joint) for v in joint]
                log_lik += math.log(sum(joint))
        if alpha > 0:
            log_lik += alpha * (
                sum(math.log(p) for p in priors)
                + sum(math.log(v) for j in labelers for row in conf[j] for v in row)
            )
        trace.append(log_lik)
    return post, conf, priors, trace


long_tables = st.lists(
    st.tuples(
        st.integers(0, 7),
        st.sampled_from(["r1", "r2", "r3", "r4"]),
        st.sampled_from(["a", "b", "c"]),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(
    rows=long_tables,
    alpha=st.sampled_from([0.0, 0.5]),
    gold_items=st.sets(st.integers(0, 7), max_size=3),
    data=st.data(),
)
def test_matches_naive_loop_implementation(
    rows: list[Row], alpha: float, gold_items: set[int], data: st.DataObject
) -> None:
    present = {r[0] for r in rows}
    gold = {i: data.draw(st.sampled_from(["a", "b", "c"])) for i in sorted(gold_items & present)}
    cats = ["a", "b", "c"]
    n_iter = 25
    fit = dawid_skene(
        _data(rows), categories=cats, gold=gold, smoothing=alpha, tol=1e-300, max_iter=n_iter
    )
    post, conf, priors, trace = _naive_dawid_skene(rows, cats, gold, alpha, fit.n_iter)
    np.testing.assert_allclose(fit.posterior, [post[i] for i in fit.items], rtol=0, atol=1e-9)
    np.testing.assert_allclose(fit.confusion, [conf[j] for j in fit.labelers], rtol=0, atol=1e-9)
    np.testing.assert_allclose(fit.priors, priors, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fit.log_likelihood_trace, trace, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------------------------
# (d) Properties: invariance to row order and to item ids; posteriors sum to 1; EM ascent
# --------------------------------------------------------------------------------------------

EM_SETTINGS = {"tol": 1e-9, "max_iter": 200}


@settings(max_examples=40, deadline=None)
@given(rows=long_tables, alpha=st.sampled_from([0.0, 0.1]), perm_seed=st.integers(0, 2**32 - 1))
def test_dawid_skene_row_order_invariance(rows: list[Row], alpha: float, perm_seed: int) -> None:
    order = np.random.default_rng(perm_seed).permutation(len(rows))
    shuffled = [rows[i] for i in order]
    a = dawid_skene(_data(rows), smoothing=alpha, **EM_SETTINGS)
    b = dawid_skene(_data(shuffled), smoothing=alpha, **EM_SETTINGS)
    assert a.items == b.items and a.labelers == b.labelers and a.categories == b.categories
    # Rows are put in a canonical order first, so the results are bit-identical.
    np.testing.assert_array_equal(a.posterior, b.posterior)
    np.testing.assert_array_equal(a.confusion, b.confusion)
    np.testing.assert_array_equal(a.log_likelihood_trace, b.log_likelihood_trace)
    assert list(a.labels) == list(b.labels)


@settings(max_examples=40, deadline=None)
@given(rows=long_tables, alpha=st.sampled_from([0.0, 0.1]), perm_seed=st.integers(0, 2**32 - 1))
def test_dawid_skene_item_relabelling_invariance(
    rows: list[Row], alpha: float, perm_seed: int
) -> None:
    # A bijection of item ids that changes their sort order (and their type).
    new_id = np.random.default_rng(perm_seed).permutation(8)
    renamed = [(f"item-{new_id[int(i)]}", j, label) for i, j, label in rows]
    a = dawid_skene(_data(rows), smoothing=alpha, **EM_SETTINGS)
    b = dawid_skene(_data(renamed), smoothing=alpha, **EM_SETTINGS)
    post_b = _by_item(b, b.posterior)
    for i, item in enumerate(a.items):
        other = post_b[f"item-{new_id[int(item)]}"]
        np.testing.assert_allclose(a.posterior[i], other, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.confusion, b.confusion, rtol=0, atol=1e-9)
    # 1e-9 like the other arrays: with two symmetric classes the priors differ by ~3e-11
    # between the two item orders (float sums in another order; hypothesis found one).
    np.testing.assert_allclose(a.priors, b.priors, rtol=0, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(rows=long_tables, alpha=st.sampled_from([0.0, 0.01, 1.0]))
def test_dawid_skene_probabilities_and_ascent(rows: list[Row], alpha: float) -> None:
    fit = dawid_skene(_data(rows), smoothing=alpha, **EM_SETTINGS)
    np.testing.assert_allclose(fit.posterior.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fit.confusion.sum(axis=2), 1.0, rtol=0, atol=1e-12)
    assert fit.priors.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(fit.posterior >= 0) and np.all(fit.confusion >= 0)
    if alpha > 0:
        assert np.all(fit.confusion > 0) and np.all(fit.priors > 0)
    trace = fit.log_likelihood_trace
    assert trace.shape == (fit.n_iter,)
    # EM never decreases its objective (up to rounding).
    assert np.all(np.diff(trace) >= -1e-9 * (1 + np.abs(trace[1:])))
    # The hard label is the posterior mode.
    mode = np.array([fit.categories.index(c) for c in fit.labels])
    assert np.all(fit.posterior[np.arange(len(fit.items)), mode] == fit.posterior.max(axis=1))


@settings(max_examples=60, deadline=None)
@given(
    rows=long_tables,
    tie_break=st.sampled_from(["unresolved", "positive", "accuracy"]),
    perm_seed=st.integers(0, 2**32 - 1),
)
def test_majority_vote_invariances(rows: list[Row], tie_break: Any, perm_seed: int) -> None:
    rng = np.random.default_rng(perm_seed)
    shuffled = [rows[i] for i in rng.permutation(len(rows))]
    new_id = rng.permutation(8)
    renamed = [(f"item-{new_id[int(i)]}", j, label) for i, j, label in shuffled]
    kwargs: dict[str, Any] = {
        "tie_break": tie_break,
        "positive_label": "b",
        "categories": ["a", "b", "c"],
    }
    a = majority_vote(_data(rows), **kwargs)
    b = majority_vote(_data(renamed), **kwargs)
    frame_b = b.to_frame()
    frame_a = a.to_frame()
    frame_a.index = pd.Index(
        [f"item-{new_id[int(i)]}" for i in frame_a.index], dtype=object, name="item_id"
    )
    pd.testing.assert_frame_equal(frame_a.sort_index(), frame_b.sort_index())
    # The label has the most votes; its share is its votes over all votes.
    for i in range(len(a.items)):
        top = a.counts[i].max()
        assert a.vote_share[i] == top / a.n_votes[i]
        if a.resolved[i]:
            assert a.counts[i, a.categories.index(a.labels[i])] == top
        assert a.tied[i] == (np.sum(a.counts[i] == top) > 1)
        assert a.resolved[i] or a.tied[i]


# --------------------------------------------------------------------------------------------
# Majority vote: tie rules by hand
# --------------------------------------------------------------------------------------------

MV_ROWS: list[Row] = [
    ("a", "r1", 1), ("a", "r2", 1), ("a", "r3", 0),  # 2-1: label 1, share 2/3
    ("b", "r1", 1), ("b", "r2", 0),  # tie between r1 and r2
    ("c", "r1", 0), ("c", "r2", 0), ("c", "r3", 0),  # unanimous 0
    ("d", "r3", 1), ("d", "r2", 0),  # tie between r3 and r2
]  # fmt: skip


def test_majority_vote_unresolved_ties() -> None:
    mv = majority_vote(_data(MV_ROWS))
    assert mv.items == ("a", "b", "c", "d") and mv.categories == (0, 1)
    assert list(mv.labels) == [1, None, 0, None]
    np.testing.assert_allclose(mv.vote_share, [2 / 3, 0.5, 1.0, 0.5])
    assert list(mv.tied) == [False, True, False, True]
    assert list(mv.resolved) == [True, False, True, False]
    # Estimated accuracy: agreement with the untied majorities (a: 1, c: 0):
    # r1 2/2, r2 2/2, r3 1/2.
    np.testing.assert_allclose(mv.labeler_accuracy, [1.0, 1.0, 0.5])


def test_majority_vote_positive_tie_rule() -> None:
    mv = majority_vote(_data(MV_ROWS), tie_break="positive", positive_label=1)
    assert list(mv.labels) == [1, 1, 0, 1] and mv.resolved.all()
    # K = 3: a tie between two classes neither of which is positive stays unresolved.
    rows = [("e", "r1", "x"), ("e", "r2", "y"), ("f", "r1", "x"), ("f", "r2", "z")]
    mv3 = majority_vote(_data(rows), tie_break="positive", positive_label="z")
    assert list(mv3.labels) == [None, "z"]


def test_majority_vote_accuracy_tie_rule() -> None:
    # Estimated accuracies r1 = r2 = 1.0, r3 = 0.5: on "b" the two most accurate labelers
    # disagree (unresolved); on "d" r2 (1.0) beats r3 (0.5).
    mv = majority_vote(_data(MV_ROWS), tie_break="accuracy")
    assert list(mv.labels) == [1, None, 0, 0]
    # Given accuracies: r1 on "b", r3 on "d".
    given_acc = majority_vote(
        _data(MV_ROWS), tie_break="accuracy", labeler_accuracy={"r1": 0.9, "r2": 0.8, "r3": 0.95}
    )
    assert list(given_acc.labels) == [1, 1, 0, 1]
    np.testing.assert_allclose(given_acc.labeler_accuracy, [0.9, 0.8, 0.95])
    # A labeler absent from the mapping ranks below all others: r2 wins "d".
    partial = majority_vote(
        _data(MV_ROWS), tie_break="accuracy", labeler_accuracy=pd.Series({"r1": 0.9, "r2": 0.8})
    )
    assert list(partial.labels) == [1, 1, 0, 0]
    assert math.isnan(partial.labeler_accuracy[2])


def test_majority_vote_repeats_missing_and_categories() -> None:
    rows: list[Row] = [
        ("f", "r1", 1),
        ("f", "r1", 1),
        ("f", "r2", 0),
        ("g", "r1", None),
        ("g", "r2", 0),
    ]
    mv = majority_vote(_data(rows), categories=[0, 1, 2])
    assert list(mv.labels) == [1, 0]  # r1's two labels of "f" are two votes
    np.testing.assert_allclose(mv.vote_share, [2 / 3, 1.0])
    assert mv.counts.tolist() == [[1, 2, 0], [1, 0, 0]]
    assert mv.n_missing == 1


def test_dataframe_and_tuple_inputs_agree() -> None:
    frame = pd.DataFrame(MV_ROWS, columns=["task", "worker", "answer"])
    from_frame = majority_vote(frame, columns=("task", "worker", "answer"), tie_break="accuracy")
    from_tuple = majority_vote(
        (frame["task"], frame["worker"].to_numpy(), frame["answer"].tolist()), tie_break="accuracy"
    )
    pd.testing.assert_frame_equal(from_frame.to_frame(), from_tuple.to_frame())
    ds_frame = dawid_skene(frame, columns=("task", "worker", "answer"))
    ds_tuple = dawid_skene(_data(MV_ROWS))
    np.testing.assert_array_equal(ds_frame.posterior, ds_tuple.posterior)


def test_mixed_type_ids_keep_first_appearance_order() -> None:
    rows: list[Row] = [("x", 1, "ok"), (2, 1, "spam"), (("t", 1), "LLM", "ok"), (2, "LLM", "spam")]
    mv = majority_vote(_data(rows))
    assert mv.items == ("x", 2, ("t", 1))
    assert mv.labelers == (1, "LLM")
    assert mv.categories == ("ok", "spam")


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tie_break": "coin"}, "^tie_break:"),
        ({"tie_break": "positive"}, "^positive_label:"),
        ({"tie_break": "positive", "positive_label": 7}, "^positive_label:"),
        ({"tie_break": "accuracy", "labeler_accuracy": {"r1": 1.5}}, "^labeler_accuracy:"),
        ({"tie_break": "accuracy", "labeler_accuracy": [0.5]}, "^labeler_accuracy:"),
        ({"categories": [0]}, "^labels:"),
        ({"categories": [0, 1, 1]}, "^categories:"),
        ({"categories": []}, "^categories:"),
    ],
)
def test_majority_vote_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        majority_vote(_data(MV_ROWS), **kwargs)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (([1, 2], ["a"], [0, 1]), "^data:"),
        (([1, None], ["a", "b"], [0, 1]), "^item_ids:"),
        (([1, 2], ["a", float("nan")], [0, 1]), "^labeler_ids:"),
        (([1, 2], ["a", "b"], [None, None]), "^data:"),
        (([1, 2], ["a", "b"], [[0], [1]]), "^labels:"),
        (([1, 2], ["a", "b"], "01"), "^labels:"),
        ("not a table", "^data:"),
        (pd.DataFrame({"item_id": [1], "label": [0]}), "^data:"),
    ],
)
def test_rejects_malformed_tables(data: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        majority_vote(data)
    with pytest.raises(ValueError, match=match):
        dawid_skene(data)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"smoothing": -1.0}, "^smoothing:"),
        ({"smoothing": float("nan")}, "^smoothing:"),
        ({"tol": 0.0}, "^tol:"),
        ({"max_iter": 0}, "^max_iter:"),
        ({"max_iter": 2.5}, "^max_iter:"),
        ({"gold": {"zz": 0}}, "^gold:"),
        ({"gold": {"a": None}}, "^gold:"),
        ({"gold": {"a": 5}, "categories": [0, 1]}, "^gold:"),
        ({"gold": ["a"]}, "^gold:"),
        ({"columns": ("a", "b")}, "^columns:"),
    ],
)
def test_dawid_skene_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    data: Any = _data(MV_ROWS)
    if "columns" in kwargs:
        data = pd.DataFrame(MV_ROWS, columns=["a", "b", "c"])
    with pytest.raises(ValueError, match=match):
        dawid_skene(data, **kwargs)


def test_max_iter_stops_without_convergence() -> None:
    fit = dawid_skene(_data(DS_ROWS), max_iter=3)
    assert fit.n_iter == 3 and not fit.converged
    assert fit.log_likelihood_trace.shape == (3,)


def test_results_are_read_only() -> None:
    fit = dawid_skene(_data(MV_ROWS))
    with pytest.raises(ValueError):
        fit.posterior[0, 0] = 0.5
    mv = majority_vote(_data(MV_ROWS))
    with pytest.raises(ValueError):
        mv.vote_share[0] = 0.0


@settings(max_examples=40, deadline=None)
@given(rows=long_tables, alpha=st.sampled_from([0.0, 0.5]), gold_items=st.sets(st.integers(0, 7)))
def test_gold_out_of_priors_keeps_em_ascending(
    rows: list[Row], alpha: float, gold_items: set[int]
) -> None:
    present = sorted({r[0] for r in rows})
    gold = {i: "a" for i in sorted(gold_items & set(present))}
    fit = dawid_skene(
        _data(rows),
        categories=["a", "b", "c"],
        gold=gold,
        smoothing=alpha,
        gold_in_priors=False,
        **EM_SETTINGS,
    )
    trace = fit.log_likelihood_trace
    assert np.all(np.diff(trace) >= -1e-9 * (1 + np.abs(trace[1:])))
    assert fit.priors.sum() == pytest.approx(1.0, abs=1e-12)
    if fit.converged and len(gold) < len(present):  # non-gold items' mean posterior: the prior
        free = ~fit.is_gold
        expected = (fit.posterior[free].sum(axis=0) + alpha) / (free.sum() + 3 * alpha)
        np.testing.assert_allclose(fit.priors, expected, rtol=0, atol=1e-6)
