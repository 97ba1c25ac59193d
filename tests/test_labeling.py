"""Tests of tsmetrics.labeling: the simulated labeler, answer validation and label collection
(against the real warehouse: tsm.label_tasks and tsm.labels)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import psycopg
import pytest

from tsmetrics.errors import InvalidLabelError
from tsmetrics.labeling import (
    MAX_ATTEMPTS,
    Label,
    SimulatedLabeler,
    collect_labels,
    validate_answers,
)
from tsmetrics.simulate import SimulationConfig, simulate_day, violation_token

POLICIES = ["adult", "harassment", "self_harm", "misinformation"]


def _payload(unit_id: str, day: date, texts: Sequence[str]) -> dict[str, Any]:
    """A unified record shaped like dispatch_label_tasks.sql's payload."""
    components: list[dict[str, Any]] = [
        {"component_id": "q", "type": "user_query", "text": texts[0]},
        {"component_id": "r", "type": "system_response", "text": texts[1]},
    ]
    for k, text in enumerate(texts[2:], start=1):
        components.append(
            {
                "component_id": f"p{k}",
                "type": "pin_image",
                "pin_id": f"pin-{k}",
                "image_url": f"https://i.example.com/pins/pin-{k}.jpg",
                "text": text,
            }
        )
    return {
        "unit_id": unit_id,
        "event_date": day.isoformat(),
        "surface": "search",
        "impressions": 100,
        "components": components,
    }


VIOLATING = _payload(
    "u-1",
    date(2030, 3, 1),
    [
        "query " + violation_token("harassment", "threats"),
        "response",
        "pin caption " + violation_token("adult", "nudity"),
        "pin caption " + violation_token("adult", "nudity"),
    ],
)
TRUTH = {"adult": "nudity", "harassment": "threats"}
CARRIERS = {"adult": ["p1", "p2"], "harassment": ["q"]}  # components carrying the tokens


def _answers(
    policies: Sequence[str] = POLICIES, **overrides: dict[str, Any]
) -> list[dict[str, Any]]:
    out = []
    for p in policies:
        answer: dict[str, Any] = {"policy": p, "is_violating": False, "confidence": 0.9}
        answer.update(overrides.get(p, {}))
        out.append(answer)
    return out


# --------------------------------------------------------------------------------------------
# SimulatedLabeler
# --------------------------------------------------------------------------------------------


def test_simulated_labeler_without_errors_reads_the_truth() -> None:
    answers = SimulatedLabeler("a", error_rate=0.0).label(VIOLATING, POLICIES)
    assert answers == [
        {
            "policy": p,
            "is_violating": p in TRUTH,
            "sub_policy": TRUTH.get(p),
            "confidence": 1.0,
            "violating_components": CARRIERS.get(p, []),
        }
        for p in POLICIES
    ]
    ids = [c["component_id"] for c in VIOLATING["components"]]
    assert validate_answers(answers, POLICIES, ids) == [
        Label(p, p in TRUTH, TRUTH.get(p), 1.0, violating_components=tuple(CARRIERS.get(p, [])))
        for p in POLICIES
    ]


def test_component_verdicts_are_validated() -> None:
    ids = ["q", "r", "p1"]
    ok = _answers(adult={"is_violating": True, "violating_components": ["p1"]})
    assert validate_answers(ok, POLICIES, ids)[0].violating_components == ("p1",)
    for bad, match in (
        ({"is_violating": True, "violating_components": ["p7"]}, "unknown component id 'p7'"),
        ({"is_violating": True, "violating_components": []}, "contradicts"),
        ({"is_violating": False, "violating_components": ["q"]}, "contradicts"),
        ({"is_violating": True, "violating_components": ["q", "q"]}, "distinct"),
        ({"is_violating": True, "violating_components": "q"}, "list of ids"),
    ):
        with pytest.raises(InvalidLabelError, match=match):
            validate_answers(_answers(adult=bad), POLICIES, ids)


def test_a_false_positive_blames_one_component_a_false_negative_none() -> None:
    answers = SimulatedLabeler("a", error_rate=1.0).label(VIOLATING, POLICIES)
    ids = [c["component_id"] for c in VIOLATING["components"]]
    for answer in answers:
        if answer["is_violating"]:  # every verdict flipped: these are false positives
            assert len(answer["violating_components"]) == 1
            assert answer["violating_components"][0] in ids
        else:
            assert answer["violating_components"] == []
    validate_answers(answers, POLICIES, ids)  # consistent, so valid


def test_simulated_labeler_with_error_rate_one_flips_everything() -> None:
    answers = SimulatedLabeler("a", error_rate=1.0).label(VIOLATING, POLICIES)
    assert [a["is_violating"] for a in answers] == [p not in TRUTH for p in POLICIES]
    assert all(a["sub_policy"] is None for a in answers)
    assert all(a["confidence"] == 0.0 for a in answers)


def test_simulated_labeler_is_deterministic() -> None:
    units = [_payload(f"u-{i}", date(2030, 3, 1), ["q", "r", "p"]) for i in range(400)]

    def verdicts(labeler: SimulatedLabeler) -> list[bool]:
        return [a["is_violating"] for u in units for a in labeler.label(u, POLICIES)]

    first = verdicts(SimulatedLabeler("a", error_rate=0.3, seed=1))
    assert first == verdicts(SimulatedLabeler("a", error_rate=0.3, seed=1))
    # Nothing violates, so every True is a flip: about error_rate of them.
    assert 0.25 < sum(first) / len(first) < 0.35
    assert first != verdicts(SimulatedLabeler("a", error_rate=0.3, seed=2))
    assert first != verdicts(SimulatedLabeler("b", error_rate=0.3, seed=1))


def test_simulated_labeler_reproduces_simulated_unit_truth() -> None:
    sim = simulate_day(date(2030, 3, 2), 9, SimulationConfig(n_interactions=3000))
    labeler = SimulatedLabeler("a")
    found = set()
    for record in sim.records:
        payload = {"unit_id": record["interaction_id"], "components": record["components"]}
        for answer in labeler.label(payload, POLICIES):
            if answer["is_violating"]:
                found.add((record["interaction_id"], answer["policy"], answer["sub_policy"]))
    assert found == set(sim.unit_truth)
    assert found, "the simulated day should contain violations"


def test_simulated_labeler_reads_policy_names_with_digits() -> None:
    payload = _payload("u-9", date(2030, 3, 1), ["q " + violation_token("csam2", "general"), "r"])
    answers = SimulatedLabeler("a").label(payload, ["csam2"])
    assert answers[0]["is_violating"] is True


def test_simulated_labeler_rejects_bad_error_rate() -> None:
    with pytest.raises(ValueError):
        SimulatedLabeler("a", error_rate=1.5)
    with pytest.raises(ValueError):
        SimulatedLabeler("a", error_rate=-0.1)


# --------------------------------------------------------------------------------------------
# validate_answers
# --------------------------------------------------------------------------------------------


def test_validate_answers_accepts_valid_answers_in_policy_order() -> None:
    answers = list(reversed(_answers(adult={"is_violating": True, "sub_policy": "nudity"})))
    answers[0].pop("confidence")  # confidence is optional
    labels = validate_answers(answers, POLICIES)
    assert [lab.policy for lab in labels] == POLICIES
    assert labels[0] == Label("adult", True, "nudity", 0.9)
    assert labels[-1] == Label("misinformation", False, None, None)
    assert validate_answers(tuple(_answers()), POLICIES)[1].confidence == 0.9


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (None, "expected a list"),
        ("adult: no", "expected a list"),
        ({"policy": "adult", "is_violating": False}, "expected a list"),
        (42, "expected a list"),
        (["adult"], "expected an answer object"),
        (_answers(POLICIES[:3]), "no answer for policies ['misinformation']"),
        ([], "no answer for policies"),
        (_answers() + _answers(["adult"]), "two answers for policy 'adult'"),
        (_answers() + _answers(["violence"]), "unknown policy 'violence'"),
        (_answers(adult={"policy": None}), "unknown policy None"),
        (_answers(adult={"is_violating": "yes"}), "is_violating must be true or false"),
        (_answers(adult={"is_violating": 1}), "is_violating must be true or false"),
        (_answers(adult={"is_violating": 0}), "is_violating must be true or false"),
        (_answers(adult={"is_violating": None}), "is_violating must be true or false"),
        (
            [{k: v for k, v in a.items() if k != "is_violating"} for a in _answers()],
            "is_violating must be true or false",
        ),
        (_answers(adult={"confidence": 1.5}), "confidence must be in [0, 1]"),
        (_answers(adult={"confidence": -0.1}), "confidence must be in [0, 1]"),
        (_answers(adult={"confidence": float("nan")}), "confidence must be in [0, 1]"),
        (_answers(adult={"confidence": "high"}), "confidence must be in [0, 1]"),
    ],
)
def test_validate_answers_rejects_malformed_output(answers: Any, message: str) -> None:
    with pytest.raises(InvalidLabelError) as info:
        validate_answers(answers, POLICIES)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_validate_answers_rejects_bool_confidence() -> None:
    with pytest.raises(InvalidLabelError):
        validate_answers(_answers(adult={"confidence": True}), POLICIES)


# --------------------------------------------------------------------------------------------
# collect_labels (real warehouse)
# --------------------------------------------------------------------------------------------


class FlakyLabeler:
    """Wraps the simulated labeler; malformed output (or an exception) for chosen units."""

    def __init__(self, labeler_id: str, bad: Mapping[str, str], fail_first: set[str]) -> None:
        self.labeler_id = labeler_id
        self.inner = SimulatedLabeler(labeler_id)
        self.bad = dict(bad)
        self.fail_first = set(fail_first)
        self.calls: dict[str, int] = {}

    def label(self, record: Mapping[str, Any], policies: Sequence[str]) -> Any:
        unit_id = str(record["unit_id"])
        self.calls[unit_id] = self.calls.get(unit_id, 0) + 1
        answers = self.inner.label(record, policies)
        if unit_id in self.fail_first and self.calls[unit_id] == 1:
            raise TimeoutError("labeling service timed out")
        kind = self.bad.get(unit_id)
        if kind == "yes":
            answers[0]["is_violating"] = "yes"
        elif kind == "missing":
            answers = answers[:-1]
        elif kind == "not_a_list":
            return {"verdict": "fine"}
        elif kind == "raises":
            raise RuntimeError("labeler crashed")
        return answers


def _insert_tasks(
    conn: psycopg.Connection, day: date, labeler_id: str, payloads: Sequence[dict[str, Any]]
) -> None:
    with conn.transaction():
        conn.execute("DELETE FROM tsm.labels WHERE event_date = %s", (day,))
        conn.execute("DELETE FROM tsm.label_tasks WHERE event_date = %s", (day,))
        for payload in payloads:
            conn.execute(
                "INSERT INTO tsm.label_tasks (event_date, unit_id, labeler_id, purpose, payload) "
                "VALUES (%s, %s, %s, 'primary', %s::jsonb)",
                (day, payload["unit_id"], labeler_id, json.dumps(payload)),
            )


def _tasks(conn: psycopg.Connection, day: date) -> dict[tuple[str, str], tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT unit_id, labeler_id, status, attempts, last_error FROM tsm.label_tasks "
        "WHERE event_date = %s",
        (day,),
    ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def _labels(conn: psycopg.Connection, day: date) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT unit_id, labeler_id, policy, is_violating, sub_policy, confidence, labeled_at "
        "FROM tsm.labels WHERE event_date = %s ORDER BY unit_id, labeler_id, policy",
        (day,),
    ).fetchall()


def test_collect_labels_records_failures_and_never_labels_them(conn: psycopg.Connection) -> None:
    day = date(2030, 3, 10)
    texts_violating = ["q " + violation_token("self_harm", "ideation"), "r", "p"]
    payloads = [
        _payload(f"u-{i:02d}", day, texts_violating if i % 3 == 0 else ["q", "r", "p"])
        for i in range(12)
    ]
    bad = {"u-01": "yes", "u-04": "missing", "u-07": "not_a_list", "u-10": "raises"}
    flaky = {"u-02", "u-05"}
    _insert_tasks(conn, day, "lab_a", payloads)
    # A task for a labeler that is not collected this run stays untouched.
    with conn.transaction():
        conn.execute(
            "INSERT INTO tsm.label_tasks (event_date, unit_id, labeler_id, purpose, payload) "
            "VALUES (%s, 'u-00', 'lab_other', 'overlap', %s::jsonb)",
            (day, json.dumps(payloads[0])),
        )

    labeler = FlakyLabeler("lab_a", bad, flaky)
    summary = collect_labels(conn, day.isoformat(), {"lab_a": labeler}, POLICIES)

    good = [p["unit_id"] for p in payloads if p["unit_id"] not in bad]
    assert summary.labeled == len(good)
    assert summary.failed_attempts == MAX_ATTEMPTS * len(bad) + len(flaky)
    assert summary.exhausted == len(bad)

    tasks = _tasks(conn, day)
    expected_errors = {
        "u-01": "InvalidLabelError: is_violating must be true or false, got 'yes'",
        "u-04": "InvalidLabelError: no answer for policies ['misinformation']",
        "u-07": "InvalidLabelError: expected a list of answers, got dict",
        "u-10": "RuntimeError: labeler crashed",
    }
    for unit_id, error in expected_errors.items():
        assert tasks[(unit_id, "lab_a")] == ("failed", MAX_ATTEMPTS, error)
        assert labeler.calls[unit_id] == MAX_ATTEMPTS
    for unit_id in good:
        attempts = 2 if unit_id in flaky else 1
        assert tasks[(unit_id, "lab_a")] == ("done", attempts, None)
    assert tasks[("u-00", "lab_other")] == ("pending", 0, None)

    labels = _labels(conn, day)
    assert {row[0] for row in labels} == set(good), "a failed task must never become a label"
    assert len(labels) == len(good) * len(POLICIES)
    for unit_id, labeler_id, policy, is_violating, sub_policy, confidence, _ in labels:
        violating = int(unit_id[2:]) % 3 == 0 and policy == "self_harm"
        assert labeler_id == "lab_a"
        assert (is_violating, sub_policy, confidence) == (
            violating,
            "ideation" if violating else None,
            1.0,
        )

    # A re-run resumes: done tasks are not relabeled, exhausted ones are not retried.
    calls_before = dict(labeler.calls)
    again = collect_labels(conn, day.isoformat(), {"lab_a": labeler}, POLICIES)
    assert (again.labeled, again.failed_attempts, again.exhausted) == (0, 0, len(bad))
    assert labeler.calls == calls_before
    assert _tasks(conn, day) == tasks
    assert _labels(conn, day) == labels


def test_collect_labels_respects_max_attempts(conn: psycopg.Connection) -> None:
    day = date(2030, 3, 11)
    payloads = [_payload(f"v-{i}", day, ["q", "r", "p"]) for i in range(3)]
    _insert_tasks(conn, day, "lab_a", payloads)
    labeler = FlakyLabeler("lab_a", {"v-1": "yes"}, set())
    summary = collect_labels(conn, day.isoformat(), {"lab_a": labeler}, POLICIES, max_attempts=1)
    assert (summary.labeled, summary.failed_attempts, summary.exhausted) == (2, 1, 1)
    assert _tasks(conn, day)[("v-1", "lab_a")][:2] == ("failed", 1)
    # A later run with more attempts allowed retries the failed task (and only it).
    labeler.bad.clear()
    summary = collect_labels(conn, day.isoformat(), {"lab_a": labeler}, POLICIES, max_attempts=3)
    assert (summary.labeled, summary.failed_attempts, summary.exhausted) == (1, 0, 0)
    assert _tasks(conn, day)[("v-1", "lab_a")] == ("done", 2, None)
    assert labeler.calls == {"v-0": 1, "v-1": 2, "v-2": 1}
    assert len(_labels(conn, day)) == 3 * len(POLICIES)


def test_validate_answers_keeps_annotator_and_notes_as_provenance() -> None:
    answers = _answers(
        adult={"is_violating": True, "sub_policy": "nudity", "rationale": "nude", "model": "m-1"}
    )
    labels = validate_answers(answers, POLICIES)
    assert (labels[0].notes, labels[0].annotator) == ("nude", "m-1")  # an LLM's: its model
    assert labels[0] == Label("adult", True, "nudity", 0.9, None, "m-1")  # equality: the verdict
    human = validate_answers(_answers(adult={"annotator": "sme@x", "notes": "clear"}), POLICIES)
    assert (human[0].annotator, human[0].notes) == ("sme@x", "clear")
    assert (human[1].annotator, human[1].notes) == (None, None)
    with pytest.raises(InvalidLabelError, match="notes must be text"):
        validate_answers(_answers(adult={"notes": 3}), POLICIES)
