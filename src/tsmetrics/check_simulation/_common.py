"""Types, check names, constants and random streams shared by the check simulation."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Draws = npt.NDArray[Any]  # positions (T, n) with replacement, or selection indicators (T, M)
History = dict[tuple[str, str], dict[date, tuple[float, float]]]
Overall = dict[date, dict[str, tuple[float, float, float, float]]]

CHECKS: tuple[str, ...] = (
    "limit",
    "day_over_day_rise",
    "baseline_change",
    "baseline_rise_all",
    "cusum",
)
"""The simulated production checks, in :func:`tsmetrics.prevalence_checks.prevalence_checks`
order (agreement and pipeline-health checks are not simulated)."""

POPULATION_DAY = date(2026, 1, 1)
"""Day simulated for the fixed population (its seed is the run seed)."""
START_DAY = date(2026, 1, 1)
"""First simulated sample day (dates only order the history)."""
DETECTION_POWER = 0.9
"""Target same-day detection probability."""

# Random streams: default_rng([seed, stream, replication]).
_STREAM_NULL = 1
_STREAM_DETECT = 2
_STREAM_DETECT_BLIND = 3
_STREAM_RELABEL = 10
_STREAM_CALIBRATE = 20
_STREAM_GRID = 100
_STREAM_RUN_LENGTH = 200

_HEAD_RE = re.compile(r'^\{"interaction_id": "([^"]+)", "event_ts": "[^"]+", "surface": "([^"]+)"')
