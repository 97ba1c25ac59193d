"""Tests of tsmetrics.label_studio.

Rendering and answer mapping run always. The round trip runs against a REAL Label Studio
server (label-studio==1.23.2 from PyPI, in its own virtualenv) that the ``label_studio`` fixture
starts on a free port with a temporary data directory; those tests carry the ``labelstudio``
marker and are skipped unless ``TSMETRICS_LABEL_STUDIO_VENV`` names that virtualenv::

    python3.11 -m venv /tmp/lsenv && /tmp/lsenv/bin/pip install label-studio==1.23.2
    TSMETRICS_LABEL_STUDIO_VENV=/tmp/lsenv pytest tests/test_label_studio.py -m labelstudio

The server is started as ops would start a test instance (``label-studio start --username
--password --user-token --enable-legacy-api-token``, see label_studio/server.py
``_create_user`` in 1.23.2); the personal access token is then created through the API
(``POST /api/token/``) and annotations are submitted as a human's browser does
(``POST /api/tasks/{id}/annotations/``).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

import psycopg
import pytest
from label_studio_server import (
    LS_VENV,
    USER,
    LabelStudioStartError,
    Server,
    running_label_studio,
)

from tsmetrics.errors import InvalidLabelError
from tsmetrics.label_studio import (
    NOTES_TAG,
    OBJECT_TAGS,
    LabelStudioAuthError,
    LabelStudioClient,
    LabelStudioError,
    LabelStudioQueue,
    answers_from_result,
    notes_from_result,
    project_title,
    render_instructions,
    render_label_config,
    task_data,
)
from tsmetrics.labeling import Label
from tsmetrics.prompts import PolicyText, SubPolicy, load_policies
from tsmetrics.vendor_queue import (
    VERDICTS,
    policy_set_version,
    record_human_answers,
    submit_pending_tasks,
)

POLICIES = tuple(load_policies().values())
IDS = [p.id for p in POLICIES]
labelstudio = pytest.mark.labelstudio
needs_server = pytest.mark.skipif(
    not LS_VENV, reason="set TSMETRICS_LABEL_STUDIO_VENV to a venv with label-studio==1.23.2"
)


def _record(unit_id: str, day: str = "2026-11-20", pins: int = 2) -> dict[str, Any]:
    components: list[dict[str, Any]] = [
        {"component_id": "q", "type": "user_query", "text": f"query <b>{unit_id}</b> & more"},
        {"component_id": "r", "type": "system_response", "text": f"response for {unit_id}"},
    ]
    for k in range(1, pins + 1):
        components.append(
            {
                "component_id": f"p{k}",
                "type": "pin_image",
                "pin_id": f"pin-{k}",
                "image_url": f"https://i.example.com/{unit_id}-{k}.jpg",
                "text": f"pin {k}",
            }
        )
    return {
        "unit_id": unit_id,
        "event_date": day,
        "surface": "search",
        "impressions": 50,
        "components": components,
    }


def _choice(name: str, value: str) -> dict[str, Any]:
    """One result item exactly as Label Studio's editor submits a Choices selection."""
    return {
        "from_name": name,
        "to_name": "unit_response",
        "type": "choices",
        "value": {"choices": [value]},
    }


def _full_result(violations: dict[str, str] | None = None) -> list[dict[str, Any]]:
    violations = violations or {}
    result = []
    for policy in IDS:
        if policy in violations:
            result += [
                _choice(policy, "violating"),
                _choice(f"{policy}__sub_policy", violations[policy]),
            ]
        else:
            result.append(_choice(policy, "not_violating"))
    return result


# --------------------------------------------------------------------------------------------
# Rendering and mapping (no server)
# --------------------------------------------------------------------------------------------


def test_label_config_has_one_verdict_block_and_one_sub_policy_block_per_policy() -> None:
    root = ET.fromstring(render_label_config(POLICIES))
    objects = {el.get("name"): el for el in root if el.tag in ("Text", "Image")}
    assert set(objects) == set(OBJECT_TAGS)
    assert objects["unit_query"].get("value") == "$query"
    assert objects["unit_response"].get("value") == "$response"
    assert objects["unit_images"].get("valueList") == "$images"
    blocks = {el.get("name"): el for el in root.iter("Choices")}
    assert list(blocks) == [n for p in IDS for n in (p, f"{p}__sub_policy")]
    for policy in POLICIES:
        verdict = blocks[policy.id]
        assert [c.get("value") for c in verdict] == list(VERDICTS)
        assert (verdict.get("choice"), verdict.get("required")) == ("single", "true")
        sub = blocks[f"{policy.id}__sub_policy"]
        assert [c.get("value") for c in sub] == list(policy.sub_policy_ids)
        assert [c.get("hint") for c in sub] == [s.definition for s in policy.sub_policies]
        assert (sub.get("visibleWhen"), sub.get("whenTagName"), sub.get("whenChoiceValue")) == (
            "choice-selected",
            policy.id,
            "violating",
        )
        assert verdict.get("toName") == sub.get("toName") == "unit_response"


def test_label_config_and_instructions_escape_policy_texts() -> None:
    tricky = PolicyText(
        id="spam",
        version=3,
        title='Spam & "scams" <b>',
        definition="Unwanted <script>alert(1)</script> content & links.",
        sub_policies=(SubPolicy("links", 'Says "click" & <goes>'),),
        positive_examples=("A <i>link</i> farm.",),
        negative_examples=("A real shop & its page.",),
    )
    root = ET.fromstring(render_label_config([tricky]))  # still well-formed XML
    headers = [el.get("value") for el in root.iter("Header")]
    assert 'Spam & "scams" <b> (spam, v3)' in headers
    assert next(root.iter("Choice")).tag == "Choice"
    assert [c.get("hint") for c in root.iter("Choice") if c.get("value") == "links"] == [
        'Says "click" & <goes>'
    ]
    instructions = render_instructions([tricky])
    assert "<script>" not in instructions and "&lt;script&gt;" in instructions
    assert "&lt;i&gt;link&lt;/i&gt;" in instructions


def test_policy_ids_must_not_clash_with_tag_names() -> None:
    clash = dataclasses.replace(POLICIES[0], id="unit_query")
    with pytest.raises(ValueError, match="unit_query"):
        render_label_config([clash])
    with pytest.raises(ValueError, match="at least one"):
        render_label_config([])


def test_task_data_carries_unit_id_and_every_config_variable() -> None:
    data = task_data(_record("u7"), "ps-abc")
    assert data["unit_id"] == "u7" and data["policy_version"] == "ps-abc"
    assert data["query"] == "query <b>u7</b> & more"
    assert data["pins"] == "[pin-1] pin 1\n[pin-2] pin 2"
    assert data["images"] == ["https://i.example.com/u7-1.jpg", "https://i.example.com/u7-2.jpg"]
    variables = {
        (el.get("value") or el.get("valueList") or "")[1:]
        for el in ET.fromstring(render_label_config(POLICIES)).iter()
        if (el.get("value") or el.get("valueList") or "").startswith("$")
    }
    assert variables <= set(data)
    bare = task_data({"unit_id": "u8", "surface": "home", "components": []}, "ps-abc")
    assert (bare["query"], bare["response"], bare["pins"], bare["images"]) == ("", "", "", [])


def test_project_title_names_the_policy_version_and_fits_label_studio() -> None:
    title = project_title(POLICIES)
    assert title == f"tsmetrics {policy_set_version(POLICIES)}" and len(title) <= 50
    with pytest.raises(ValueError, match="50"):
        project_title(POLICIES, prefix="x" * 40)


def test_answers_from_result_maps_choices_per_policy() -> None:
    answers = answers_from_result(_full_result({"harassment": "threats"}), POLICIES)
    assert [(a["policy"], a["is_violating"], a["sub_policy"]) for a in answers] == [
        (p, p == "harassment", "threats" if p == "harassment" else None) for p in IDS
    ]
    extra = [
        *_full_result(),
        {"from_name": "comment", "type": "textarea", "value": {"text": ["x"]}},
    ]
    assert len(answers_from_result(extra, POLICIES)) == len(IDS)  # other controls are ignored


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ("not a list", "expected a list"),
        ([], "missing verdict for 'adult'"),
        (_full_result()[:-1], "missing verdict for 'self_harm'"),
        ([*_full_result(), _choice("adult", "violating")], "two results for 'adult'"),
        (
            [
                {**_choice("adult", "x"), "value": {"choices": ["violating", "not_violating"]}},
                *_full_result()[1:],
            ],
            "expected exactly one choice",
        ),
        (
            [{"from_name": "adult", "type": "textarea", "value": {"text": ["yes"]}}],
            "not a choices result",
        ),
        ([_choice("adult", "violating"), *_full_result()[1:]], "missing sub-policy"),
        (
            [*_full_result(), _choice("adult__sub_policy", "nudity")],
            "sub-policy 'nudity' given but 'adult' is not_violating",
        ),
        ([_choice("adult", "Maybe"), *_full_result()[1:]], "invalid verdict 'Maybe'"),
    ],
)
def test_answers_from_result_rejects_malformed_annotations(result: Any, message: str) -> None:
    with pytest.raises(InvalidLabelError) as caught:
        answers_from_result(result, POLICIES)
    assert message in str(caught.value)


def test_client_needs_exactly_one_token_and_never_shows_it() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        LabelStudioClient("http://localhost:1")
    with pytest.raises(ValueError, match="exactly one"):
        LabelStudioClient("http://localhost:1", personal_access_token="a", legacy_token="b")
    with pytest.raises(ValueError, match="base_url"):
        LabelStudioClient("localhost:8080", legacy_token="abc")
    client = LabelStudioClient("http://localhost:1", legacy_token="s3cret-token-value")
    assert "s3cret" not in repr(client)
    # nothing listens on port 1: a transport error, reported without the token
    with pytest.raises(LabelStudioError) as caught:
        client.request("GET", "/api/projects/")
    assert "s3cret" not in str(caught.value) and caught.value.status is None
    client.close()


# --------------------------------------------------------------------------------------------
# A real Label Studio server
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    try:
        with running_label_studio(tmp_path_factory.mktemp("label_studio")) as server:
            yield server
    except LabelStudioStartError as error:
        pytest.fail(str(error))


def _pat_client(server: Server) -> LabelStudioClient:
    return LabelStudioClient(server.url, personal_access_token=server.personal_access_token)


def _queue(
    client: LabelStudioClient,
    prefix: str,
    policies: Sequence[PolicyText] = POLICIES,
    queue_id: str = "ls",
) -> LabelStudioQueue:
    return LabelStudioQueue(client, policies, queue_id=queue_id, title_prefix=prefix)


def _annotate(
    client: LabelStudioClient, task_id: int, result: Any, cancelled: bool = False
) -> None:
    client.request(
        "POST",
        f"/api/tasks/{task_id}/annotations/",
        json_body={"result": result, "was_cancelled": cancelled, "lead_time": 12.5},
        expected=(201,),
    )


def _insert_tasks(conn: psycopg.Connection, day: date, labeler: str, units: Sequence[str]) -> None:
    conn.execute("DELETE FROM tsm.labels WHERE event_date = %s", (day,))
    conn.execute("DELETE FROM tsm.label_tasks WHERE event_date = %s", (day,))
    for unit in units:
        conn.execute(
            "INSERT INTO tsm.label_tasks (event_date, unit_id, labeler_id, purpose, payload) "
            "VALUES (%s, %s, %s, 'primary', %s)",
            (day, unit, labeler, json.dumps(_record(unit, day.isoformat()))),
        )
    conn.commit()


@labelstudio
@needs_server
def test_round_trip_submit_annotate_collect_record(
    label_studio: Server, conn: psycopg.Connection
) -> None:
    day = date(2031, 5, 6)
    units = [f"20310506-{i:06d}" for i in range(1, 7)]
    _insert_tasks(conn, day, "ls_queue", units)
    prefix = f"tsm-{uuid.uuid4().hex[:6]}"
    client = _pat_client(label_studio)
    queue = _queue(client, prefix, queue_id="ls_queue")

    started = time.monotonic()
    assert submit_pending_tasks(conn, day.isoformat(), "ls_queue", queue) == 6
    assert submit_pending_tasks(conn, day.isoformat(), "ls_queue", queue) == 6  # again: no dup
    # a second worker (new client, legacy token) finds the same project and adds nothing
    other = _queue(
        LabelStudioClient(label_studio.url, legacy_token=label_studio.legacy_token), prefix
    )
    other.submit([_record(units[0], day.isoformat()), _record(units[0], day.isoformat())])
    assert other.ensure_project() == queue.ensure_project()
    tasks = queue.export_tasks()
    assert sorted(t["data"]["unit_id"] for t in tasks) == units
    submit_s = time.monotonic() - started
    task_of = {t["data"]["unit_id"]: t["id"] for t in tasks}
    assert tasks[0]["data"]["policy_version"] == queue.policy_version

    # humans annotate
    _annotate(client, task_of[units[0]], _full_result({"adult": "nudity"}))
    _annotate(client, task_of[units[1]], [*_full_result(), _choice("adult__sub_policy", "nudity")])
    time.sleep(0.01)
    _annotate(client, task_of[units[1]], _full_result())  # corrected: the latest one counts
    _annotate(client, task_of[units[2]], _full_result()[:1])  # incomplete
    _annotate(client, task_of[units[3]], [], cancelled=True)  # skipped
    _annotate(client, task_of[units[4]], [_choice("adult", "unsure"), *_full_result()[1:]])
    # units[5] is not annotated yet

    answers = {a.unit_id: a for a in queue.collect()}
    assert set(answers) == set(units[:5])
    assert answers[units[0]].labels == tuple(
        Label(p, p == "adult", "nudity" if p == "adult" else None, None) for p in IDS
    )
    assert answers[units[1]].labels == tuple(Label(p, False) for p in IDS)
    assert all(a.annotator == USER for a in answers.values())
    assert not answers[units[2]].ok
    assert "missing verdict for 'harassment'" in (answers[units[2]].error or "")
    assert answers[units[3]].error == "skipped by the annotator (no verdict)"
    assert "invalid verdict 'unsure' for 'adult'" in (answers[units[4]].error or "")
    assert answers[units[2]].ref.startswith(f"label_studio project {queue.ensure_project()} task")

    summary = record_human_answers(conn, day.isoformat(), "ls_queue", answers.values())
    assert (summary.labeled, summary.failed, summary.unchanged, summary.unmatched) == (2, 3, 0, 0)
    state = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT unit_id, status, attempts, last_error FROM tsm.label_tasks "
            "WHERE event_date = %s",
            (day,),
        ).fetchall()
    }
    labels = conn.execute(
        "SELECT unit_id, policy, is_violating, sub_policy FROM tsm.labels WHERE event_date = %s",
        (day,),
    ).fetchall()
    conn.commit()
    assert [s[:2] for u, s in sorted(state.items())] == [
        ("done", 1),
        ("done", 1),
        ("failed", 1),
        ("failed", 1),
        ("failed", 1),
        ("pending", 0),
    ]
    assert "skipped" in state[units[3]][2]
    assert sorted({row[0] for row in labels}) == units[:2]
    assert (units[0], "adult", True, "nudity") in labels

    # collecting again is idempotent; a later valid annotation fixes a failed task
    _annotate(client, task_of[units[2]], _full_result({"self_harm": "ideation"}))
    again = record_human_answers(conn, day.isoformat(), "ls_queue", queue.collect())
    assert (again.labeled, again.failed, again.unchanged) == (3, 0, 2)
    status = conn.execute(
        "SELECT status, attempts FROM tsm.label_tasks WHERE event_date = %s AND unit_id = %s",
        (day, units[2]),
    ).fetchone()
    conn.commit()
    assert status == ("done", 2)
    print(f"\nlabel studio startup {label_studio.startup_s:.1f}s, submit x3 {submit_s:.2f}s")


@labelstudio
@needs_server
def test_a_new_policy_version_gets_its_own_project(label_studio: Server) -> None:
    prefix = f"tsm-{uuid.uuid4().hex[:6]}"
    client = _pat_client(label_studio)
    old = _queue(client, prefix)
    old.submit([_record("v-1"), _record("v-2")])
    bumped = (dataclasses.replace(POLICIES[0], version=POLICIES[0].version + 1), *POLICIES[1:])
    new = _queue(client, prefix, bumped)
    assert new.title != old.title and new.policy_version in new.title
    new.submit([_record("v-1"), _record("v-2"), _record("v-3")])
    assert new.ensure_project() != old.ensure_project()
    assert sorted(t["data"]["unit_id"] for t in new.export_tasks()) == ["v-1", "v-2", "v-3"]
    assert sorted(t["data"]["unit_id"] for t in old.export_tasks()) == ["v-1", "v-2"]
    assert {t["data"]["policy_version"] for t in new.export_tasks()} == {new.policy_version}


@labelstudio
@needs_server
def test_a_project_whose_config_was_changed_is_refused(label_studio: Server) -> None:
    client = _pat_client(label_studio)
    queue = _queue(client, f"tsm-{uuid.uuid4().hex[:6]}")
    config = render_label_config(POLICIES).replace('value="not_violating"', 'value="fine"')
    client.request(
        "POST", "/api/projects/", json_body={"title": queue.title, "label_config": config}
    )
    with pytest.raises(LabelStudioError, match="differs from the policy texts"):
        queue.ensure_project()


@labelstudio
@needs_server
def test_legacy_tokens_work_only_while_the_organisation_allows_them(label_studio: Server) -> None:
    pat = _pat_client(label_studio)
    legacy = LabelStudioClient(label_studio.url, legacy_token=label_studio.legacy_token)
    assert legacy.request("GET", "/api/projects/") is not None
    settings = pat.request("GET", "/api/jwt/settings")
    try:
        pat.request(
            "POST", "/api/jwt/settings", json_body={**settings, "legacy_api_tokens_enabled": False}
        )
        with pytest.raises(LabelStudioAuthError) as caught:
            legacy.request("GET", "/api/projects/")
        assert caught.value.status == 401
        assert "legacy tokens are disabled by default" in str(caught.value)
        assert label_studio.legacy_token not in str(caught.value)
        assert pat.request("GET", "/api/projects/") is not None  # the PAT flow is unaffected
    finally:
        pat.request(
            "POST", "/api/jwt/settings", json_body={**settings, "legacy_api_tokens_enabled": True}
        )
    assert legacy.request("GET", "/api/projects/") is not None


@labelstudio
@needs_server
def test_personal_access_token_flow(label_studio: Server) -> None:
    client = _pat_client(label_studio)
    assert client.request("GET", "/api/projects/") is not None
    # an access token the server no longer accepts is replaced once, transparently
    client._access = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTl9.invalid"  # noqa: SLF001
    assert client.request("GET", "/api/projects/") is not None
    assert client._access != "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTl9.invalid"  # noqa: SLF001
    bad = label_studio.personal_access_token[:-6] + "AAAAAA"
    refused = LabelStudioClient(label_studio.url, personal_access_token=bad)
    with pytest.raises(LabelStudioAuthError) as caught:
        refused.request("GET", "/api/projects/")
    assert caught.value.status == 401 and bad not in str(caught.value)
    # a legacy token is not a personal access token
    wrong_kind = LabelStudioClient(
        label_studio.url, personal_access_token=label_studio.legacy_token
    )
    with pytest.raises(LabelStudioAuthError, match="refused"):
        wrong_kind.request("GET", "/api/projects/")


def test_notes_come_from_the_optional_text_area() -> None:
    root = ET.fromstring(render_label_config(POLICIES))
    (area,) = root.iter("TextArea")
    assert area.get("name") == NOTES_TAG and area.get("required") is None
    note = {"from_name": NOTES_TAG, "type": "textarea", "value": {"text": [" borderline ", ""]}}
    assert notes_from_result([*_full_result(), note]) == "borderline"
    assert notes_from_result(_full_result()) is None
    assert len(answers_from_result([*_full_result(), note], POLICIES)) == len(IDS)


@labelstudio
@needs_server
def test_the_trigger_signal_follows_the_project_counters_and_notes_are_kept(
    label_studio: Server,
) -> None:
    import asyncio

    from tsmetrics.label_wait import label_studio_signal

    client = _pat_client(label_studio)
    queue = _queue(client, f"tsm-{uuid.uuid4().hex[:6]}")
    queue.submit([_record("s-1"), _record("s-2")])
    spec = {"project_id": queue.ensure_project()}
    pat = {"host": label_studio.url, "password": label_studio.personal_access_token}
    legacy = {
        "host": label_studio.url,
        "password": label_studio.legacy_token,
        "extra": {"token_type": "legacy"},
    }
    before = asyncio.run(label_studio_signal(spec, pat))
    assert asyncio.run(label_studio_signal(spec, legacy)) == before
    assert asyncio.run(label_studio_signal(spec, pat)) == before  # nothing new: same signal
    task = next(t for t in queue.export_tasks() if t["data"]["unit_id"] == "s-1")
    note = {"from_name": NOTES_TAG, "type": "textarea", "value": {"text": ["a swimsuit"]}}
    _annotate(client, task["id"], [*_full_result(), note])
    assert asyncio.run(label_studio_signal(spec, pat)) != before
    (answer,) = queue.collect()
    assert answer.annotator == USER and {lab.notes for lab in answer.labels} == {"a swimsuit"}
    bad = {**pat, "password": label_studio.personal_access_token[:-6] + "AAAAAA"}
    with pytest.raises(LabelStudioError) as caught:
        asyncio.run(label_studio_signal(spec, bad))
    assert bad["password"] not in str(caught.value)
