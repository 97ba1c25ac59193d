"""Tests of the pure parts of tsmetrics.measure (the LLM-versus-human scores of agreement_day)."""

from __future__ import annotations

import numpy as np

from tsmetrics.measure import _versus_reference


def test_llm_versus_human_scores() -> None:
    llm = np.array([True, True, False, False, True, False, False, False])
    human = np.array([True, False, False, False, True, True, False, False])
    scores = {m: (v, se) for m, v, se in _versus_reference(llm, human)}
    assert scores["disagreement_rate"][0] == 2 / 8
    assert scores["precision"][0] == 2 / 3 and scores["recall"][0] == 2 / 3
    assert scores["precision"][1] == np.sqrt((2 / 3) * (1 / 3) / 3)
