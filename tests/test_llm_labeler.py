"""Tests of tsmetrics.llm_labeler end to end against a real local chat-completions server
(tests/openai_server.py), and of label collection through the real warehouse."""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import random
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import jsonschema
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai_server import (
    ECHO_AUTH,
    GOOD,
    MALFORMED_JSON,
    RATE_LIMITED,
    REFUSAL,
    REFUSAL_TEXT,
    SCHEMA_VIOLATION,
    SERVER_ERROR,
    SLOW,
    TRUNCATED,
    UNKNOWN_COMPONENT,
    UNKNOWN_POLICY,
    UNKNOWN_SUB_POLICY,
    OpenAIServer,
    Step,
    running_openai_server,
)

from tsmetrics.config import load_config
from tsmetrics.errors import InvalidLabelError
from tsmetrics.labeling import Label, SimulatedLabeler, collect_labels, validate_answers
from tsmetrics.llm_labeler import (
    AttemptRecord,
    LabelBudget,
    LabelBudgetExceeded,
    LLMConfig,
    LLMLabeler,
    LLMLabelError,
    LLMRequestError,
    backoff_delay,
    parse_answer,
    parse_retry_after,
)
from tsmetrics.prompts import label_response_schema, load_policies, render_messages
from tsmetrics.simulate import SimulationConfig, simulate_day, violation_token

CONFIG = load_config()
POLICIES = CONFIG.policy_names
TEXTS = load_policies(expected={p.name: p.sub_policies for p in CONFIG.policies})
API_KEY = "sk-test-SECRET-7f3a9c0d5e1b2468"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    policies = {p.name: list(p.sub_policies) for p in CONFIG.policies}
    with running_openai_server(api_key=API_KEY, policies=policies) as srv:
        yield srv


def _config(server: OpenAIServer, **overrides: Any) -> LLMConfig:
    base: dict[str, Any] = {
        "base_url": server.base_url,
        "model": server.model,
        "api_key": API_KEY,
        "timeout_s": 5.0,
        "max_retries": 3,
        "max_tokens": 600,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
    }
    return LLMConfig(**{**base, **overrides})


def _labeler(server: OpenAIServer, **overrides: Any) -> LLMLabeler:
    budget = overrides.pop("budget", None)
    return LLMLabeler("llm_test", _config(server, **overrides), TEXTS, budget=budget, seed=7)


def _payload(unit_id: str, texts: list[str], surface: str = "search") -> dict[str, Any]:
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
        "event_date": "2041-06-01",
        "surface": surface,
        "impressions": 10,
        "components": components,
    }


VIOLATING = _payload(
    "u-1",
    [
        "query " + violation_token("harassment", "threats"),
        "response",
        "pin caption " + violation_token("adult", "nudity"),
    ],
)
CLEAN = _payload("u-2", ["best sourdough starter", "Feed it daily.", "a jar of starter"])


# --------------------------------------------------------------------------------------------
# Good answers, the request on the wire, the audit record
# --------------------------------------------------------------------------------------------


def test_labels_simulated_units_like_the_truth_through_a_real_server(
    server: OpenAIServer,
) -> None:
    sim = simulate_day(date(2041, 6, 1), 5, SimulationConfig(n_interactions=400))
    violating = {iid for iid, _, _ in sim.unit_truth}
    records = [r for r in sim.records if r["interaction_id"] in violating][:8]
    records += [r for r in sim.records if r["interaction_id"] not in violating][:4]
    assert len(records) == 12 and len(violating) >= 8
    reference = SimulatedLabeler("truth")
    with _labeler(server) as labeler:
        for raw in records:
            payload = {
                "unit_id": raw["interaction_id"],
                "surface": raw["surface"],
                "components": [
                    {
                        k: c[k]
                        for k in ("component_id", "type", "text", "pin_id", "image_url")
                        if k in c
                    }
                    for c in raw["components"]
                ],
            }
            answers = labeler.label(payload, POLICIES)
            expected = reference.label(payload, POLICIES)
            assert [
                (a["is_violating"], a["sub_policy"], a["violating_components"]) for a in answers
            ] == [(e["is_violating"], e["sub_policy"], e["violating_components"]) for e in expected]
            ids = [c["component_id"] for c in payload["components"]]
            assert validate_answers(answers, POLICIES, ids) == [
                Label(
                    a["policy"],
                    a["is_violating"],
                    a["sub_policy"],
                    a["confidence"],
                    a["prompt_version"],
                    server.model,
                    tuple(a["violating_components"]),
                )
                for a in answers
            ]
    assert len(server.chat_requests()) == 12
    assert all(r.ok and r.http_status == 200 for r in labeler.attempts)


def test_request_follows_the_chat_completions_protocol(server: OpenAIServer) -> None:
    config = _config(server, prompt_usd_per_1k=0.5, completion_usd_per_1k=2.0)
    seen: list[AttemptRecord] = []
    labeler = LLMLabeler("llm_test", config, TEXTS, on_attempt=seen.append)
    answers = labeler.label(VIOLATING, POLICIES)
    rendered = render_messages(VIOLATING, list(TEXTS.values()))

    (request,) = server.chat_requests()
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    body = request.body
    assert body["model"] == server.model
    assert body["temperature"] == 0 and body["max_tokens"] == 600
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "unit_labels",
            "strict": True,
            "schema": label_response_schema(
                list(TEXTS.values()), [c["component_id"] for c in VIOLATING["components"]]
            ),
        },
    }
    assert body["response_format"]["json_schema"]["schema"] == rendered.response_schema
    assert body["messages"] == json.loads(json.dumps(list(rendered.messages)))
    assert [p["type"] for p in body["messages"][1]["content"]] == ["text", "text", "image_url"]

    by_policy = {a["policy"]: a for a in answers}
    assert by_policy["adult"]["sub_policy"] == "nudity"
    assert by_policy["harassment"]["sub_policy"] == "threats"
    assert not by_policy["self_harm"]["is_violating"]
    assert {a["prompt_version"] for a in answers} == {rendered.prompt_version}
    assert {a["model"] for a in answers} == {server.model}

    (record,) = labeler.attempts
    assert seen == [record]
    reply = json.loads(record.raw_response or "")
    assert reply["object"] == "chat.completion" and reply["id"].startswith("chatcmpl-")
    assert record.ok and record.http_status == 200 and record.finish_reason == "stop"
    assert record.prompt_version == rendered.prompt_version and record.unit_id == "u-1"
    assert record.model == server.model and record.attempt == 1
    assert record.prompt_tokens == reply["usage"]["prompt_tokens"]
    assert record.completion_tokens == reply["usage"]["completion_tokens"]
    assert not record.usage_estimated
    assert record.cost_usd == pytest.approx(
        record.prompt_tokens / 1000 * 0.5 + record.completion_tokens / 1000 * 2.0
    )
    assert labeler.budget.cost_used_usd == pytest.approx(record.cost_usd)
    assert labeler.budget.labels_used == 1
    assert 0 < record.latency_ms < 5000


def test_json_object_fallback_for_servers_without_structured_outputs() -> None:
    policies = {p.name: list(p.sub_policies) for p in CONFIG.policies}
    with running_openai_server(
        api_key=API_KEY, policies=policies, supports_json_schema=False
    ) as srv:
        strict = _labeler(srv)
        with pytest.raises(LLMRequestError) as info:
            strict.label(VIOLATING, POLICIES)
        assert info.value.reason == "http_error" and "HTTP 400" in str(info.value)
        assert len(srv.chat_requests()) == 1  # a 400 is not retried
        fallback = _labeler(srv, response_format="json_object")
        answers = fallback.label(VIOLATING, POLICIES)
        assert srv.chat_requests()[-1].body["response_format"] == {"type": "json_object"}
        assert [a["is_violating"] for a in answers] == [True, True, False, False]
        # The answer is still checked against the schema here: a bad one fails.
        srv.script(UNKNOWN_SUB_POLICY)
        with pytest.raises(LLMLabelError, match="unknown_sub_policy"):
            fallback.label(VIOLATING, POLICIES)


# --------------------------------------------------------------------------------------------
# Unusable answers: failed attempts with a reason, never labels
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (MALFORMED_JSON, "non_json"),
        (UNKNOWN_POLICY, "unknown_policy"),
        (UNKNOWN_SUB_POLICY, "unknown_sub_policy"),
        (UNKNOWN_COMPONENT, "unknown_component"),
        (SCHEMA_VIOLATION, "schema_violation"),
        (REFUSAL, "refusal"),
        (REFUSAL_TEXT, "refusal"),
        (TRUNCATED, "truncated"),
    ],
)
def test_unusable_answer_is_a_failed_attempt_with_its_reason(
    server: OpenAIServer, kind: str, reason: str
) -> None:
    labeler = _labeler(server)
    server.script(kind)
    with pytest.raises(LLMLabelError) as info:
        labeler.label(CLEAN, POLICIES)
    error = info.value
    assert isinstance(error, InvalidLabelError)  # what the collection loop records as failed
    assert error.reason == reason and str(error).startswith(reason)
    copy = pickle.loads(pickle.dumps(error))  # survives a trip between processes
    assert (copy.reason, str(copy), copy.record) == (error.reason, str(error), error.record)
    assert len(server.chat_requests()) == 1  # not retried inside the call
    (record,) = labeler.attempts
    assert error.record == record
    assert record.error_reason == reason and record.http_status == 200
    assert record.raw_response is not None and record.completion_tokens is not None
    assert labeler.budget.labels_used == 0 and labeler.budget.cost_used_usd == 0.0
    if kind == TRUNCATED:
        assert record.finish_reason == "length"
    # The same labeler labels the next unit normally.
    assert len(labeler.label(CLEAN, POLICIES)) == len(POLICIES)


def _insert_task(conn: psycopg.Connection, day: date, labeler_id: str, payload: Any) -> None:
    with conn.transaction():
        conn.execute("DELETE FROM tsm.labels WHERE event_date = %s", (day,))
        conn.execute("DELETE FROM tsm.label_tasks WHERE event_date = %s", (day,))
        conn.execute(
            "INSERT INTO tsm.label_tasks (event_date, unit_id, labeler_id, purpose, payload) "
            "VALUES (%s, %s, %s, 'primary', %s::jsonb)",
            (day, payload["unit_id"], labeler_id, json.dumps(payload)),
        )


def test_collection_records_malformed_answers_as_failed_attempts(
    server: OpenAIServer, conn: psycopg.Connection
) -> None:
    day = date(2041, 6, 2)
    labeler = _labeler(server)
    _insert_task(conn, day, labeler.labeler_id, VIOLATING)
    server.script(MALFORMED_JSON, MALFORMED_JSON, MALFORMED_JSON)
    summary = collect_labels(conn, day.isoformat(), {labeler.labeler_id: labeler}, POLICIES)
    assert (summary.labeled, summary.failed_attempts, summary.exhausted) == (0, 3, 1)
    status, attempts, last_error = conn.execute(
        "SELECT status, attempts, last_error FROM tsm.label_tasks WHERE event_date = %s", (day,)
    ).fetchone() or (None, None, None)
    assert (status, attempts) == ("failed", 3)
    assert last_error.startswith("LLMLabelError: non_json")
    n_labels = conn.execute("SELECT count(*) FROM tsm.labels WHERE event_date = %s", (day,))
    assert (n_labels.fetchone() or [None])[0] == 0  # never a "not violating" label

    _insert_task(conn, day, labeler.labeler_id, VIOLATING)
    server.script(REFUSAL)
    summary = collect_labels(conn, day.isoformat(), {labeler.labeler_id: labeler}, POLICIES)
    assert (summary.labeled, summary.failed_attempts, summary.exhausted) == (1, 1, 0)
    rows = conn.execute(
        "SELECT policy, is_violating, sub_policy FROM tsm.labels WHERE event_date = %s "
        "ORDER BY policy",
        (day,),
    ).fetchall()
    assert rows == [
        ("adult", True, "nudity"),
        ("harassment", True, "threats"),
        ("misinformation", False, None),
        ("self_harm", False, None),
    ]
    assert [r.error_reason for r in labeler.attempts[-2:]] == ["refusal", None]


# --------------------------------------------------------------------------------------------
# Retries, backoff, Retry-After, timeouts
# --------------------------------------------------------------------------------------------


def _gaps(server: OpenAIServer) -> list[float]:
    times = [r.received_at for r in server.chat_requests()]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_retry_after_seconds_is_honoured(server: OpenAIServer) -> None:
    # Backoff alone would wait ~0.01 s: only the header explains a 1 s gap.
    labeler = _labeler(server)
    server.script(Step(RATE_LIMITED, retry_after="1"), GOOD)
    answers = labeler.label(VIOLATING, POLICIES)
    assert len(answers) == len(POLICIES)
    (gap,) = _gaps(server)
    assert 1.0 <= gap < 3.0
    first, second = labeler.attempts
    assert first.error_reason == "rate_limited" and first.http_status == 429
    assert first.retry_after_s == 1.0 and first.next_delay_s == 1.0
    assert "rate_limit_exceeded" in (first.raw_response or "")
    assert second.ok and second.attempt == 2


def test_retry_after_ms_takes_precedence(server: OpenAIServer) -> None:
    # Backoff would wait >= 1 s and Retry-After says 2 s: a ~0.25 s gap shows retry-after-ms won.
    labeler = _labeler(server, backoff_base_s=2.0, backoff_max_s=2.0)
    server.script(Step(RATE_LIMITED, retry_after="2", retry_after_ms="250"), GOOD)
    labeler.label(CLEAN, POLICIES)
    (gap,) = _gaps(server)
    assert 0.25 <= gap < 0.9
    assert labeler.attempts[0].next_delay_s == 0.25


def test_retry_after_beyond_the_limit_is_not_waited_for(server: OpenAIServer) -> None:
    labeler = _labeler(server, max_retry_after_s=5.0)
    server.script(Step(RATE_LIMITED, retry_after="120"))
    t0 = time.monotonic()
    with pytest.raises(LLMRequestError) as info:
        labeler.label(CLEAN, POLICIES)
    assert time.monotonic() - t0 < 2.0
    assert info.value.reason == "rate_limited" and "exceeds max_retry_after_s" in str(info.value)
    assert len(server.chat_requests()) == 1


def test_server_errors_back_off_exponentially_with_jitter(server: OpenAIServer) -> None:
    labeler = _labeler(server, backoff_base_s=0.2, backoff_max_s=1.0)
    server.script(SERVER_ERROR, SERVER_ERROR, GOOD)
    labeler.label(CLEAN, POLICIES)
    rng = random.Random(7)  # the labeler's seed: the same jitter draws
    expected = [backoff_delay(k, 0.2, 1.0, rng.random()) for k in range(2)]
    assert [r.next_delay_s for r in labeler.attempts] == [*expected, None]
    assert 0.1 <= expected[0] <= 0.2 and 0.2 <= expected[1] <= 0.4
    gaps = _gaps(server)
    assert len(gaps) == 2
    for gap, delay in zip(gaps, expected, strict=True):
        assert delay <= gap < delay + 1.0
    assert [r.error_reason for r in labeler.attempts] == ["server_error", "server_error", None]


def test_retries_run_out(server: OpenAIServer) -> None:
    labeler = _labeler(server, max_retries=2)
    server.script(SERVER_ERROR, Step(RATE_LIMITED, retry_after="0"), SERVER_ERROR, GOOD)
    with pytest.raises(LLMRequestError) as info:
        labeler.label(CLEAN, POLICIES)
    assert info.value.reason == "server_error" and "gave up after 3 attempts" in str(info.value)
    assert [r.error_reason for r in info.value.records] == [
        "server_error",
        "rate_limited",
        "server_error",
    ]
    assert len(server.chat_requests()) == 3
    assert labeler.budget.labels_used == 0


def test_slow_server_times_out_and_is_retried(server: OpenAIServer) -> None:
    labeler = _labeler(server, timeout_s=0.3, max_retries=1)
    server.script(Step(SLOW, delay_s=1.0), GOOD)
    t0 = time.monotonic()
    answers = labeler.label(VIOLATING, POLICIES)
    assert len(answers) == len(POLICIES)
    assert time.monotonic() - t0 < 1.0  # did not wait for the slow reply
    first, second = labeler.attempts
    assert first.error_reason == "timeout" and first.http_status is None
    assert 250 <= first.latency_ms < 900
    assert second.ok
    server.script(Step(SLOW, delay_s=1.0), Step(SLOW, delay_s=1.0))
    with pytest.raises(LLMRequestError) as info:
        labeler.label(VIOLATING, POLICIES)
    assert info.value.reason == "timeout"


def test_unreachable_server_is_a_connection_error(server: OpenAIServer) -> None:
    config = _config(server, base_url=f"http://127.0.0.1:{_closed_port()}/v1", max_retries=1)
    with pytest.raises(LLMRequestError) as info:
        LLMLabeler("llm_test", config, TEXTS).label(CLEAN, POLICIES)
    assert info.value.reason == "connection_error"
    assert [r.error_reason for r in info.value.records] == ["connection_error"] * 2


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_client_errors_are_not_retried(server: OpenAIServer) -> None:
    labeler = _labeler(server, model="no-such-model")
    with pytest.raises(LLMRequestError) as info:
        labeler.label(CLEAN, POLICIES)
    assert info.value.reason == "http_error" and "HTTP 404" in str(info.value)
    assert "model_not_found" in str(info.value)
    assert len(server.chat_requests()) == 1


# --------------------------------------------------------------------------------------------
# Budget
# --------------------------------------------------------------------------------------------


def test_label_cap_stops_labelling_before_any_request(server: OpenAIServer) -> None:
    labeler = _labeler(server, max_labels=2)
    labeler.label(CLEAN, POLICIES)
    server.script(MALFORMED_JSON)  # a failed attempt is not a label
    with pytest.raises(LLMLabelError):
        labeler.label(CLEAN, POLICIES)
    labeler.label(VIOLATING, POLICIES)
    with pytest.raises(LabelBudgetExceeded, match="label cap reached: 2 of max_labels=2"):
        labeler.label(CLEAN, POLICIES)
    assert len(server.chat_requests()) == 3


def test_cost_cap_counts_every_attempt(server: OpenAIServer) -> None:
    probe = _labeler(server, prompt_usd_per_1k=1.0, completion_usd_per_1k=3.0)
    probe.label(CLEAN, POLICIES)
    cost = probe.attempts[0].cost_usd
    assert cost > 0
    budget = LabelBudget(max_cost_usd=3.5 * cost)
    labeler = _labeler(server, prompt_usd_per_1k=1.0, completion_usd_per_1k=3.0, budget=budget)
    server.script(TRUNCATED)  # charged (max_tokens completion tokens) although it is no label
    with pytest.raises(LLMLabelError):
        labeler.label(CLEAN, POLICIES)
    assert budget.labels_used == 0 and budget.cost_used_usd == labeler.attempts[0].cost_usd > cost
    n_labeled = 0
    with pytest.raises(LabelBudgetExceeded, match="cost cap reached"):
        for _ in range(10):
            n_sent = len(server.chat_requests())
            labeler.label(CLEAN, POLICIES)
            n_labeled += 1
    assert len(server.chat_requests()) == n_sent  # the refused call sent nothing
    costs = [r.cost_usd for r in labeler.attempts]
    assert sum(costs) >= budget.max_cost_usd  # stopped only once the cap was reached ...
    assert sum(costs[:-1]) < budget.max_cost_usd  # ... and overshot by at most one request
    assert budget.labels_used == n_labeled >= 1
    assert budget.cost_used_usd == pytest.approx(sum(costs))


def test_budget_carries_over_what_the_day_already_used(server: OpenAIServer) -> None:
    budget = LabelBudget(max_labels=100, labels_used=100)
    with pytest.raises(LabelBudgetExceeded):
        _labeler(server, budget=budget).label(CLEAN, POLICIES)
    assert server.chat_requests() == []
    shared = LabelBudget(max_labels=2)
    first, second = _labeler(server, budget=shared), _labeler(server, budget=shared)
    first.label(CLEAN, POLICIES)
    second.label(CLEAN, POLICIES)
    with pytest.raises(LabelBudgetExceeded):
        first.label(CLEAN, POLICIES)
    assert len(server.chat_requests()) == 2


def test_collection_stops_at_the_budget_and_loses_nothing(
    server: OpenAIServer, conn: psycopg.Connection
) -> None:
    day = date(2041, 6, 3)
    labeler = _labeler(server, budget=LabelBudget(max_labels=0))
    _insert_task(conn, day, labeler.labeler_id, CLEAN)
    summary = collect_labels(conn, day.isoformat(), {labeler.labeler_id: labeler}, POLICIES)
    assert summary.stopped is not None and summary.stopped.startswith("LabelBudgetExceeded")
    assert (summary.labeled, summary.failed_attempts) == (0, 0)
    row = conn.execute(
        "SELECT status, attempts FROM tsm.label_tasks WHERE event_date = %s", (day,)
    ).fetchone()
    assert row == ("pending", 0)
    assert server.chat_requests() == []


# --------------------------------------------------------------------------------------------
# The API key never leaks
# --------------------------------------------------------------------------------------------


def test_api_key_never_appears_in_logs_errors_or_audit(
    server: OpenAIServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Airflow's logging configuration (loaded by other tests in the same process) may disable
    # or detach existing loggers: re-enable the HTTP stack's so its records are captured too.
    for name in ("httpx", "httpcore", "httpcore.http11", "httpcore.connection"):
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    labeler = _labeler(server, timeout_s=0.3, max_retries=1)
    errors: list[BaseException] = []
    labeler.label(VIOLATING, POLICIES)
    for steps in (
        [ECHO_AUTH],
        [MALFORMED_JSON],
        [SERVER_ERROR, SERVER_ERROR],
        [Step(SLOW, delay_s=0.6), Step(SLOW, delay_s=0.6)],
        [REFUSAL],
    ):
        server.script(*steps)
        with pytest.raises((LLMLabelError, LLMRequestError)) as info:
            labeler.label(VIOLATING, POLICIES)
        errors.append(info.value)
    echo = [r for r in labeler.attempts if r.http_status == 401]
    assert len(echo) == 1 and "[redacted]" in (echo[0].raw_response or "")  # it was sent back
    assert server.chat_requests()[0].headers["authorization"].endswith(API_KEY)
    assert caplog.records, "the failures should have been logged"
    assert any(r.name.startswith("httpx") for r in caplog.records)
    for record in caplog.records:
        assert API_KEY not in record.getMessage()
    assert API_KEY not in caplog.text
    for error in errors:
        assert API_KEY not in str(error) and API_KEY not in repr(error)
        assert API_KEY not in repr(getattr(error, "records", None))
    for attempt in labeler.attempts:
        assert API_KEY not in json.dumps(attempt.to_dict())
    assert API_KEY not in repr(labeler.config) and API_KEY not in repr(labeler)


# --------------------------------------------------------------------------------------------
# Configuration from an Airflow connection
# --------------------------------------------------------------------------------------------


def test_config_from_a_plain_dict_connection(server: OpenAIServer) -> None:
    conn = {
        "conn_type": "openai",
        "host": server.base_url,
        "password": API_KEY,
        "extra": json.dumps(
            {
                "model": server.model,
                "timeout": 7,
                "max_retries": 2,
                "max_tokens": 300,
                "response_format": "json_object",
                "include_images": False,
                "prompt_usd_per_1k": 0.15,
                "completion_usd_per_1k": 0.6,
                "max_labels": 5000,
                "max_cost_usd": 20,
            }
        ),
    }
    config = LLMConfig.from_connection(conn)
    assert config.base_url == server.base_url and config.api_key == API_KEY
    assert (config.timeout_s, config.max_retries, config.max_tokens) == (7, 2, 300)
    assert config.response_format == "json_object" and config.include_images is False
    assert (config.max_labels, config.max_cost_usd) == (5000, 20)
    assert config.temperature == 0.0
    answers = LLMLabeler("llm_test", config, TEXTS).label(VIOLATING, POLICIES)
    assert [a["is_violating"] for a in answers] == [True, True, False, False]
    body = server.chat_requests()[-1].body
    assert len(body["messages"][1]["content"]) == 1  # no image parts


def test_config_from_an_airflow_connection_uri_form() -> None:
    from airflow.sdk import Connection

    conn = Connection.from_json(
        json.dumps(
            {
                "conn_type": "openai",
                "host": "api.openai.com",
                "port": 443,
                "schema": "v1",
                "password": API_KEY,
                "extra": {"model": "gpt-4o-2024-08-06"},
            }
        ),
        conn_id="llm_labeler",
    )
    config = LLMConfig.from_connection(conn)
    assert config.base_url == "https://api.openai.com:443/v1"
    assert config.chat_url == "https://api.openai.com:443/v1/chat/completions"
    assert config.model == "gpt-4o-2024-08-06" and config.api_key == API_KEY
    # The URI form of AIRFLOW_CONN_<ID>: the path becomes conn.schema, the query the extra.
    uri = Connection.from_uri(
        f"openai://:{API_KEY}@api.openai.com:443/v1?model=gpt-4o-mini", conn_id="llm_labeler"
    )
    assert LLMConfig.from_connection(uri) == dataclasses.replace(config, model="gpt-4o-mini")
    ollama = LLMConfig.from_connection(
        {
            "host": "ollama",
            "port": 11434,
            "schema": "v1",
            "extra": {"model": "llava", "scheme": "http"},
        }
    )
    assert ollama.base_url == "http://ollama:11434/v1" and ollama.api_key == ""
    provider_style = LLMConfig.from_connection(
        {
            "password": API_KEY,
            "extra": {
                "model": "m",
                "openai_client_kwargs": {"base_url": "http://vllm:8000/v1/", "timeout": 9},
            },
        }
    )
    assert provider_style.base_url == "http://vllm:8000/v1" and provider_style.timeout_s == 9


@pytest.mark.parametrize(
    ("conn", "fragment"),
    [
        ({"host": "http://x/v1", "extra": {}}, "missing required key 'model'"),
        ({"host": "http://x/v1", "extra": {"model": "m", "modle": 1}}, "unknown key 'modle'"),
        ({"host": "http://x/v1", "extra": "{not json"}, "conn.extra: expected a JSON object"),
        ({"host": "http://x/v1", "schema": "v1", "extra": {"model": "m"}}, "must be empty"),
        ({"extra": {"model": "m"}}, "conn.host"),
        ({"host": "x", "extra": {"model": "m", "scheme": "ftp"}}, "base_url"),
        ({"host": "http://x/v1", "extra": {"model": "m", "temperature": 3}}, "temperature"),
        ({"host": "http://x/v1", "extra": {"model": "m", "max_retries": -1}}, "max_retries"),
        ({"host": "http://x/v1", "extra": {"model": "m", "response_format": "x"}}, "response_f"),
    ],
)
def test_config_rejects_bad_connections(conn: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        LLMConfig.from_connection({**conn, "password": API_KEY})
    assert fragment in str(info.value)
    assert API_KEY not in str(info.value)


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    retry=st.integers(0, 80),
    base=st.floats(0.0, 10.0),
    cap=st.floats(0.0, 100.0),
    u=st.floats(0.0, 1.0, exclude_max=True),
)
def test_backoff_delay_is_between_half_and_all_of_the_capped_step(
    retry: int, base: float, cap: float, u: float
) -> None:
    step = min(cap, base * 2.0 ** min(retry, 64))
    delay = backoff_delay(retry, base, cap, u)
    assert step / 2 <= delay <= step + 1e-12
    assert delay <= cap + 1e-12
    assert backoff_delay(retry, base, cap, 0.0) == pytest.approx(step / 2)


def test_backoff_delay_doubles_until_the_cap() -> None:
    assert [backoff_delay(k, 1.0, 10.0, 0.999999) for k in range(6)] == pytest.approx(
        [1.0, 2.0, 4.0, 8.0, 10.0, 10.0], rel=1e-5
    )
    with pytest.raises(ValueError, match="retry"):
        backoff_delay(-1, 1.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="u"):
        backoff_delay(0, 1.0, 1.0, 1.5)


def test_parse_retry_after_forms() -> None:
    now = datetime(2041, 6, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after({"retry-after": "3"}, now) == 3.0
    assert parse_retry_after({"retry-after": "1.5"}, now) == 1.5
    assert parse_retry_after({"retry-after": "-4"}, now) == 0.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}, now) == 0.25
    # RFC 9110 section 10.2.3 HTTP-date form.
    assert parse_retry_after({"retry-after": "Fri, 01 Jun 2041 12:00:30 GMT"}, now) == 30.0
    assert parse_retry_after({"retry-after": "Fri, 01 Jun 2041 11:00:00 GMT"}, now) == 0.0
    assert parse_retry_after({"retry-after": "soon"}, now) is None
    assert parse_retry_after({}, now) is None


ANSWER_VALUES = st.one_of(
    st.booleans(),
    st.none(),
    st.sampled_from(["nudity", "threats", "gore", ""]),
    st.floats(-0.5, 1.5, allow_nan=False),
    st.integers(-1, 2),
)


@st.composite
def near_answers(draw: st.DrawFn) -> dict[str, Any]:
    """Answers that are mostly valid, with random single-field corruptions."""
    out: dict[str, Any] = {}
    for policy in draw(st.permutations(["adult", "harassment"])):
        violating = draw(st.booleans())
        subs = list(TEXTS[policy].sub_policy_ids)
        entry: dict[str, Any] = {
            "is_violating": violating,
            "sub_policy": draw(st.sampled_from(subs)) if violating else None,
            "confidence": draw(st.floats(0.0, 1.0)),
            "rationale": "r",
        }
        if draw(st.booleans()):
            key = draw(st.sampled_from([*entry, "extra"]))
            if draw(st.booleans()) and key in entry:
                entry.pop(key)
            else:
                entry[key] = draw(ANSWER_VALUES)
        out[policy] = entry
    if draw(st.integers(0, 9)) == 0:
        out.pop(draw(st.sampled_from(sorted(out))))
    if draw(st.integers(0, 9)) == 0:
        out["spam"] = dict(out.get("adult", {}))
    return out


@settings(max_examples=300, deadline=None)
@given(answer=near_answers())
def test_parse_answer_agrees_with_a_reference_json_schema_validator(answer: dict[str, Any]) -> None:
    texts = [TEXTS["adult"], TEXTS["harassment"]]
    # Reference: python-jsonschema 4.26.0, Draft202012Validator(label_response_schema(texts)).
    schema_ok = jsonschema.Draft202012Validator(label_response_schema(texts)).is_valid(answer)
    # parse_answer additionally rejects a sub-policy named with a non-violating verdict.
    consistent = all(
        not isinstance(v, dict) or v.get("is_violating") is not False or v.get("sub_policy") is None
        for v in answer.values()
    )
    try:
        parsed = parse_answer(json.dumps(answer), texts)
    except LLMLabelError as error:
        assert not (schema_ok and consistent), error
        assert error.reason in {"schema_violation", "unknown_policy", "unknown_sub_policy"}
    else:
        assert schema_ok and consistent
        assert [p["policy"] for p in parsed] == ["adult", "harassment"]
