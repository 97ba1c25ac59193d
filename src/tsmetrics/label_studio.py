"""A human labeling queue on Label Studio, over its REST API (httpx).

:class:`LabelStudioQueue` implements :class:`tsmetrics.vendor_queue.HumanQueue`:

* **Project** -- one per (policy set, policy version): title ``"<prefix> <policy_version>"``
  (:func:`tsmetrics.vendor_queue.policy_set_version`, e.g. ``tsmetrics ps-3f9a1c2b7d01``; Label
  Studio caps titles at 50 characters). It is looked up by exact title (``GET /api/projects/``)
  and created when missing (``POST /api/projects/``) with the labeling config of
  :func:`render_label_config`, the policy texts as instructions shown before labeling, and one
  annotation per task. A project whose stored config differs from the rendered one is refused
  (:class:`LabelStudioError`): its answers could not be mapped safely.
* **Labeling config** -- the unit (meta line, query, response, Pin texts, images) and, per
  policy ``p``, a required single-choice block ``p`` (``violating`` / ``not_violating``) and a
  block ``p__sub_policy`` with the policy's sub-policies, shown and required only when ``p`` is
  ``violating``.
* **submit(records)** -- one task per unit, ``data`` = :func:`task_data` (carries ``unit_id``
  and the policy version). Units already in the project (read with the export API, all tasks)
  and repeated units of the input are skipped, so a unit is never imported twice; new ones go in
  chunks to ``POST /api/projects/{id}/import``.
* **collect()** -- ``GET /api/projects/{id}/export?exportType=JSON&download_all_tasks=true``;
  per task the most recently updated annotation that was not skipped is mapped to answers
  (:func:`answers_from_result`, then :func:`tsmetrics.labeling.validate_answers`). A task whose
  annotations were all skipped, or whose chosen annotation is malformed, is a failed answer
  with its reason; a task without annotation is not answered yet.

Authentication
--------------
Label Studio 1.23 has two token kinds (its "Access tokens" guide):

* **Personal access token (PAT, default and recommended)** -- a JWT *refresh* token, created
  once in the UI (Account & Settings > Personal Access Token) or with ``POST /api/token/``. The
  client exchanges it at ``POST /api/token/refresh/`` (``{"refresh": PAT}`` ->
  ``{"access": ...}``) for a short-lived access token (about 5 minutes) sent as
  ``Authorization: Bearer <access>``; it refreshes again before expiry and once on a 401.
* **Legacy token** -- ``Authorization: Token <token>``; disabled by default since 1.21/1.23.
  An admin enables it per organisation (Organization > Settings > Access Token Settings, or
  ``POST /api/jwt/settings`` with ``legacy_api_tokens_enabled``), or for new organisations by
  starting the server with ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true`` /
  ``--enable-legacy-api-token``. When disabled, every call answers 401 and the client raises
  :class:`LabelStudioAuthError` saying so.

Tokens never appear in exceptions, reprs or logs.

Failures
--------
Transport errors and unexpected HTTP statuses raise :class:`LabelStudioError` (``status`` set
when the server answered). Nothing is retried inside the client: submit and collect are
idempotent, so the Airflow task's retries are the retry policy.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

import httpx

from tsmetrics.errors import InvalidLabelError, TsmetricsError
from tsmetrics.labeling import validate_answers
from tsmetrics.prompts import PolicyText
from tsmetrics.vendor_queue import (
    VERDICTS,
    HumanAnswer,
    answers_from_choices,
    policy_set_version,
    record_view,
    sub_policy_column,
    unique_records,
)

__all__ = [
    "NOTES_TAG",
    "OBJECT_TAGS",
    "LabelStudioAuthError",
    "LabelStudioClient",
    "LabelStudioError",
    "LabelStudioQueue",
    "answers_from_result",
    "notes_from_result",
    "project_title",
    "render_instructions",
    "render_label_config",
    "task_data",
]

logger = logging.getLogger(__name__)

#: Names of the object tags that show the unit; every Choices block points at ``unit_response``.
OBJECT_TAGS: tuple[str, ...] = (
    "unit_meta",
    "unit_query",
    "unit_response",
    "unit_pins",
    "unit_images",
)
#: The optional free-text block of the labeling config; its text becomes the labels' ``notes``.
NOTES_TAG = "unit_notes"
_TITLE_MAX = 50  # Label Studio's PROJECT_TITLE_MAX_LEN
_REFRESH_MARGIN_S = 30.0


class LabelStudioError(TsmetricsError, RuntimeError):
    """A Label Studio call failed; ``status`` is the HTTP status when the server answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LabelStudioAuthError(LabelStudioError):
    """Label Studio refused the credentials (bad/revoked token, or legacy tokens disabled)."""


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _check_policies(policies: Sequence[PolicyText]) -> tuple[PolicyText, ...]:
    chosen = tuple(policies)
    if not chosen:
        raise ValueError("policies: expected at least one policy text, got none")
    names = {*OBJECT_TAGS, NOTES_TAG}
    for policy in chosen:
        for name in (policy.id, sub_policy_column(policy.id)):
            if name in names:
                raise ValueError(f"policies: tag name {name!r} is used twice")
            names.add(name)
    return chosen


def render_label_config(policies: Sequence[PolicyText]) -> str:
    """The Label Studio labeling config (XML) asking for one verdict per policy.

    The unit is shown as text (``$meta``, ``$query``, ``$response``, ``$pins``) and images
    (``$images``, a list of URLs). Per policy ``p``: ``<Choices name="p">`` with the choices
    ``violating`` / ``not_violating`` (single, required), then ``<Choices name="p__sub_policy">``
    with one choice per sub-policy (its definition as hint), visible and required only when
    ``p`` is ``violating``. Last, an optional ``<TextArea name="unit_notes">`` for the
    annotator's notes. Every attribute value is XML-escaped.
    """
    chosen = _check_policies(policies)
    lines = [
        "<View>",
        '  <Text name="unit_meta" value="$meta"/>',
        '  <Header value="User query"/>',
        '  <Text name="unit_query" value="$query"/>',
        '  <Header value="System response"/>',
        '  <Text name="unit_response" value="$response"/>',
        '  <Header value="Pins"/>',
        '  <Text name="unit_pins" value="$pins"/>',
        '  <Image name="unit_images" valueList="$images"/>',
    ]
    for policy in chosen:
        lines.append(
            f"  <Header value={quoteattr(f'{policy.title} ({policy.id}, v{policy.version})')}/>"
        )
        lines.append(
            f'  <Choices name={quoteattr(policy.id)} toName="unit_response" choice="single" '
            f'showInline="true" required="true">'
        )
        for verdict in VERDICTS:
            lines.append(f"    <Choice value={quoteattr(verdict)}/>")
        lines.append("  </Choices>")
        lines.append(
            f'  <Choices name={quoteattr(sub_policy_column(policy.id))} toName="unit_response" '
            f'choice="single" required="true" visibleWhen="choice-selected" '
            f'whenTagName={quoteattr(policy.id)} whenChoiceValue="violating">'
        )
        for sub in policy.sub_policies:
            lines.append(
                f"    <Choice value={quoteattr(sub.id)} hint={quoteattr(sub.definition)}/>"
            )
        lines.append("  </Choices>")
    lines.append('  <Header value="Notes (optional)"/>')
    lines.append(
        f'  <TextArea name="{NOTES_TAG}" toName="unit_response" maxSubmissions="1" '
        f'editable="true" rows="2"/>'
    )
    lines.append("</View>")
    return "\n".join(lines)


def render_instructions(policies: Sequence[PolicyText]) -> str:
    """The written policies as HTML (escaped), shown to annotators before they label."""
    parts: list[str] = []
    for policy in _check_policies(policies):
        e = html.escape
        parts.append(f"<h3>{e(policy.title)} ({e(policy.id)}, version {policy.version})</h3>")
        parts.append(f"<p>{e(policy.definition)}</p>")
        parts.append("<p>Sub-policies (pick one when violating):</p><ul>")
        parts += [f"<li><b>{e(s.id)}</b>: {e(s.definition)}</li>" for s in policy.sub_policies]
        parts.append("</ul><p>Violates:</p><ul>")
        parts += [f"<li>{e(x)}</li>" for x in policy.positive_examples]
        parts.append("</ul><p>Does not violate:</p><ul>")
        parts += [f"<li>{e(x)}</li>" for x in policy.negative_examples]
        parts.append("</ul>")
    return "\n".join(parts)


def project_title(policies: Sequence[PolicyText], prefix: str = "tsmetrics") -> str:
    """``"<prefix> <policy_version>"``; ValueError when longer than Label Studio's 50 chars."""
    title = f"{prefix} {policy_set_version(policies)}"
    if len(title) > _TITLE_MAX:
        raise ValueError(
            f"prefix: project title {title!r} is longer than Label Studio's {_TITLE_MAX} chars"
        )
    return title


def task_data(record: Mapping[str, Any], policy_version: str) -> dict[str, Any]:
    """Label Studio task ``data`` for one unified unit record.

    Keys: ``unit_id``, ``event_date``, ``surface``, ``policy_version``, ``meta`` (one line:
    unit, surface, day), ``query``, ``response``, ``pins`` and ``images`` (list of URLs) --
    every key the labeling config refers to, always present (empty when the unit has none).
    """
    view = record_view(record)
    return {
        "unit_id": view["unit_id"],
        "event_date": view["event_date"],
        "surface": view["surface"],
        "policy_version": policy_version,
        "meta": f"unit {view['unit_id']} | surface {view['surface']} | day {view['event_date']}",
        "query": view["query"],
        "response": view["response"],
        "pins": view["pin_texts"],
        "images": list(view["image_urls"]),
    }


def answers_from_result(result: Any, policies: Sequence[PolicyText]) -> list[dict[str, Any]]:
    """Map one annotation's ``result`` list to validated raw answers (one per policy).

    Reads the ``choices`` results whose ``from_name`` is a policy or its ``__sub_policy`` block
    (other results are ignored). A block with more than one choice, a result that is not a
    choices result, and everything :func:`tsmetrics.vendor_queue.answers_from_choices` rejects
    raise :class:`~tsmetrics.errors.InvalidLabelError` with the reasons.
    """
    chosen = _check_policies(policies)
    if not isinstance(result, list):
        raise InvalidLabelError(f"annotation result: expected a list, got {type(result).__name__}")
    wanted = {p.id for p in chosen} | {sub_policy_column(p.id) for p in chosen}
    picked: dict[str, Any] = {}
    for item in result:
        if not isinstance(item, Mapping) or item.get("from_name") not in wanted:
            continue
        name = item["from_name"]
        value = item.get("value")
        values = value.get("choices") if isinstance(value, Mapping) else None
        if item.get("type") != "choices" or not isinstance(values, list):
            raise InvalidLabelError(f"result for {name!r} is not a choices result")
        if name in picked:
            raise InvalidLabelError(f"two results for {name!r}")
        if len(values) != 1:
            raise InvalidLabelError(f"{name!r}: expected exactly one choice, got {values!r}")
        picked[name] = values[0]
    choices = {p.id: (picked.get(p.id), picked.get(sub_policy_column(p.id))) for p in chosen}
    return answers_from_choices(choices, chosen)


def notes_from_result(result: Any) -> str | None:
    """The annotator's notes in one annotation's ``result`` (the ``unit_notes`` text area),
    stripped, or None when there are none."""
    texts: list[str] = []
    for item in result if isinstance(result, list) else []:
        if isinstance(item, Mapping) and item.get("from_name") == NOTES_TAG:
            value = item.get("value")
            text = value.get("text") if isinstance(value, Mapping) else None
            if isinstance(text, list):
                texts += [t for t in text if isinstance(t, str)]
            elif isinstance(text, str):
                texts.append(text)
    joined = "\n".join(t.strip() for t in texts if t.strip())
    return joined or None


# --------------------------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------------------------


def _jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (not verified: only used to refresh in time)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp")
        return float(exp) if isinstance(exp, int | float) else None
    except (IndexError, ValueError, TypeError):
        return None


class LabelStudioClient:
    """Minimal authenticated Label Studio REST client.

    Parameters
    ----------
    base_url : str
        Server root, e.g. ``http://localhost:8080``.
    personal_access_token : str, optional
        A PAT (JWT refresh token); exchanged for short-lived Bearer access tokens.
    legacy_token : str, optional
        A legacy token (``Authorization: Token``); the organisation must allow legacy tokens.
        Exactly one of the two must be given.
    timeout : float
        Seconds per HTTP call (the export of a large project can take a while).
    transport : httpx.BaseTransport, optional
        For tests or proxies.
    """

    def __init__(
        self,
        base_url: str,
        *,
        personal_access_token: str | None = None,
        legacy_token: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: expected an http(s) URL, got {base_url!r}")
        if (personal_access_token is None) == (legacy_token is None):
            raise ValueError(
                "personal_access_token, legacy_token: give exactly one of the two tokens"
            )
        token = personal_access_token if personal_access_token is not None else legacy_token
        if not isinstance(token, str) or not token.strip():
            raise ValueError("token: expected a non-empty string")
        if timeout <= 0:
            raise ValueError(f"timeout: expected a positive number of seconds, got {timeout}")
        self.base_url = base_url.rstrip("/")
        self.auth_kind = "pat" if personal_access_token is not None else "legacy"
        self._token = token.strip()
        self._access: str | None = None
        self._access_expiry: float | None = None
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, follow_redirects=False
        )

    def __repr__(self) -> str:
        return f"LabelStudioClient(base_url={self.base_url!r}, auth={self.auth_kind!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabelStudioClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _redact(self, text: str) -> str:
        for secret in (self._token, self._access):
            if secret:
                text = text.replace(secret, "[redacted]")
        return text

    def refresh_access_token(self) -> None:
        """Exchange the PAT for a new access token (``POST /api/token/refresh/``)."""
        if self.auth_kind != "pat":
            raise ValueError("refresh_access_token: only for personal access tokens")
        try:
            response = self._http.post("/api/token/refresh/", json={"refresh": self._token})
        except httpx.HTTPError as error:
            raise LabelStudioError(
                f"POST /api/token/refresh/: {type(error).__name__}: {self._redact(str(error))}"
            ) from None
        if response.status_code != 200:
            raise LabelStudioAuthError(
                f"POST /api/token/refresh/: HTTP {response.status_code}: the personal access "
                f"token was refused (revoked, expired, or personal access tokens disabled): "
                f"{self._redact(response.text[:300])}",
                response.status_code,
            )
        access = response.json().get("access")
        if not isinstance(access, str) or not access:
            raise LabelStudioAuthError("POST /api/token/refresh/: no access token in the reply")
        self._access = access
        self._access_expiry = _jwt_expiry(access)

    def _authorization(self) -> str:
        if self.auth_kind == "legacy":
            return f"Token {self._token}"
        if (
            self._access is None
            or self._access_expiry is not None
            and self._access_expiry - time.time() < _REFRESH_MARGIN_S
        ):
            self.refresh_access_token()
        return f"Bearer {self._access}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        expected: Sequence[int] = (200, 201),
    ) -> Any:
        """Send one authenticated call and return the decoded JSON body (None when empty)."""
        for attempt in range(2):
            try:
                response = self._http.request(
                    method,
                    path,
                    params=params,
                    json=json_body,
                    headers={"Authorization": self._authorization()},
                )
            except httpx.HTTPError as error:
                raise LabelStudioError(
                    f"{method} {path}: {type(error).__name__}: {self._redact(str(error))}"
                ) from None
            if response.status_code == 401 and self.auth_kind == "pat" and attempt == 0:
                self._access = None  # expired early or revoked: refresh once and retry
                continue
            break
        if response.status_code in (401, 403):
            hint = (
                " (legacy tokens are disabled by default since Label Studio 1.21: enable them "
                "for the organisation or use a personal access token)"
                if self.auth_kind == "legacy"
                else ""
            )
            raise LabelStudioAuthError(
                f"{method} {path}: HTTP {response.status_code}{hint}: "
                f"{self._redact(response.text[:300])}",
                response.status_code,
            )
        if response.status_code not in expected:
            raise LabelStudioError(
                f"{method} {path}: HTTP {response.status_code}: "
                f"{self._redact(response.text[:500])}",
                response.status_code,
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise LabelStudioError(
                f"{method} {path}: HTTP {response.status_code} with a non-JSON body",
                response.status_code,
            ) from None


# --------------------------------------------------------------------------------------------
# The queue
# --------------------------------------------------------------------------------------------


def _normalise_xml(text: str) -> str:
    return " ".join(text.split())


class LabelStudioQueue:
    """Human labeling through a Label Studio project (see the module docs).

    Parameters
    ----------
    client : LabelStudioClient
        Authenticated client (PAT or legacy token).
    policies : sequence of PolicyText
        Policies to label, in the order the config shows them.
    queue_id : str
        Stable id of the queue (``labeler_id`` of its tasks and labels).
    title_prefix : str
        Start of the project title; the policy version follows.
    import_chunk : int
        Tasks per import call.
    """

    def __init__(
        self,
        client: LabelStudioClient,
        policies: Sequence[PolicyText],
        *,
        queue_id: str = "label_studio",
        title_prefix: str = "tsmetrics",
        import_chunk: int = 500,
    ) -> None:
        if not isinstance(queue_id, str) or not queue_id:
            raise ValueError(f"queue_id: expected a non-empty string, got {queue_id!r}")
        if import_chunk < 1:
            raise ValueError(f"import_chunk: expected a positive integer, got {import_chunk}")
        self._policies = _check_policies(policies)
        self._client = client
        self._queue_id = queue_id
        self._version = policy_set_version(self._policies)
        self.title = project_title(self._policies, title_prefix)
        self.label_config = render_label_config(self._policies)
        self._import_chunk = import_chunk
        self._project_id: int | None = None

    @property
    def queue_id(self) -> str:
        return self._queue_id

    @property
    def policy_version(self) -> str:
        return self._version

    # -- project --------------------------------------------------------------------------

    def find_project(self) -> int | None:
        """Id of the project titled :attr:`title`, or None."""
        page = 1
        while True:
            body = self._client.request(
                "GET",
                "/api/projects/",
                params={"title": self.title, "page": page, "page_size": 100},
            )
            projects = body.get("results", []) if isinstance(body, Mapping) else body
            for project in projects:
                if project.get("title") == self.title:
                    stored = project.get("label_config") or ""
                    if _normalise_xml(stored) != _normalise_xml(self.label_config):
                        raise LabelStudioError(
                            f"project {project.get('id')} ({self.title!r}) has a labeling config "
                            f"that differs from the policy texts; refusing to use it"
                        )
                    return int(project["id"])
            if not isinstance(body, Mapping) or not body.get("next"):
                return None
            page += 1

    def ensure_project(self) -> int:
        """The project's id, creating the project when it does not exist yet."""
        if self._project_id is not None:
            return self._project_id
        found = self.find_project()
        if found is None:
            versions = ", ".join(f"{p.id} v{p.version}" for p in self._policies)
            created = self._client.request(
                "POST",
                "/api/projects/",
                json_body={
                    "title": self.title,
                    "description": (
                        f"tsmetrics human labeling queue {self._queue_id}; policy_version "
                        f"{self._version}; policies: {versions}"
                    ),
                    "label_config": self.label_config,
                    "expert_instruction": render_instructions(self._policies),
                    "show_instruction": True,
                    "show_skip_button": True,
                    "maximum_annotations": 1,
                },
            )
            found = int(created["id"])
            logger.info("label studio: created project %s (%s)", found, self.title)
        self._project_id = found
        return found

    # -- tasks ----------------------------------------------------------------------------

    def export_tasks(self) -> list[dict[str, Any]]:
        """Every task of the project with its data and annotations (JSON export)."""
        project = self.ensure_project()
        body = self._client.request(
            "GET",
            f"/api/projects/{project}/export",
            params={"exportType": "JSON", "download_all_tasks": "true"},
        )
        if not isinstance(body, list):
            raise LabelStudioError(f"export of project {project}: expected a list of tasks")
        return body

    def submitted_units(self) -> set[str]:
        """Unit ids already in the project."""
        units = set()
        for task in self.export_tasks():
            data = task.get("data")
            if isinstance(data, Mapping) and isinstance(data.get("unit_id"), str):
                units.add(data["unit_id"])
        return units

    def submit(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Import the records' units that are not in the project yet (one task each)."""
        views = unique_records(records)
        if not views:
            return
        existing = self.submitted_units()
        new = [
            task_data(record, self._version)
            for record in _records_by_unit(records, [v["unit_id"] for v in views])
            if str(record["unit_id"]) not in existing
        ]
        project = self.ensure_project()
        for start in range(0, len(new), self._import_chunk):
            chunk = new[start : start + self._import_chunk]
            body = self._client.request(
                "POST", f"/api/projects/{project}/import", json_body=[{"data": d} for d in chunk]
            )
            count = body.get("task_count") if isinstance(body, Mapping) else None
            if count is not None and count != len(chunk):
                raise LabelStudioError(
                    f"import into project {project}: sent {len(chunk)} tasks, "
                    f"server created {count}"
                )
        logger.info(
            "label studio: project %s: %d new tasks, %d already there",
            project,
            len(new),
            len(views) - len(new),
        )

    def _user_emails(self) -> dict[int, str]:
        """User id -> email (``GET /api/users/``); empty when the token may not list users."""
        try:
            body = self._client.request("GET", "/api/users/")
        except LabelStudioAuthError:
            raise
        except LabelStudioError:
            return {}
        users = body.get("results", []) if isinstance(body, Mapping) else body or []
        return {
            int(u["id"]): str(u["email"])
            for u in users
            if isinstance(u, Mapping) and isinstance(u.get("id"), int) and u.get("email")
        }

    def collect(self) -> list[HumanAnswer]:
        """Answers of every annotated task (valid or failed), ordered by unit id."""
        project = self.ensure_project()
        users = self._user_emails()
        answers: dict[str, HumanAnswer] = {}
        for task in self.export_tasks():
            data = task.get("data")
            unit_id = data.get("unit_id") if isinstance(data, Mapping) else None
            if not isinstance(unit_id, str) or not unit_id:
                continue
            annotations = [a for a in task.get("annotations") or [] if isinstance(a, Mapping)]
            if not annotations:
                continue
            kept = [a for a in annotations if not a.get("was_cancelled")]
            ref_base = f"label_studio project {project} task {task.get('id')}"
            if not kept:
                last = max(annotations, key=_annotation_order)
                answers[unit_id] = HumanAnswer(
                    unit_id,
                    error="skipped by the annotator (no verdict)",
                    annotator=_annotator(last, users),
                    ref=f"{ref_base} annotation {last.get('id')}",
                )
                continue
            chosen = max(kept, key=_annotation_order)
            ref = f"{ref_base} annotation {chosen.get('id')}"
            try:
                raw = answers_from_result(chosen.get("result"), self._policies)
                notes = notes_from_result(chosen.get("result"))
                raw = [{**a, "notes": notes} for a in raw]
                labels = tuple(validate_answers(raw, [p.id for p in self._policies]))
            except InvalidLabelError as error:
                answers[unit_id] = HumanAnswer(
                    unit_id,
                    error=f"malformed annotation: {error}",
                    annotator=_annotator(chosen, users),
                    ref=ref,
                )
                continue
            answers[unit_id] = HumanAnswer(
                unit_id, labels, annotator=_annotator(chosen, users), ref=ref
            )
        return [answers[u] for u in sorted(answers)]


def _records_by_unit(
    records: Sequence[Mapping[str, Any]], unit_ids: Sequence[str]
) -> list[Mapping[str, Any]]:
    first: dict[str, Mapping[str, Any]] = {}
    for record in records:
        first.setdefault(str(record["unit_id"]), record)
    return [first[u] for u in unit_ids]


def _annotation_order(annotation: Mapping[str, Any]) -> tuple[str, int]:
    stamp = annotation.get("updated_at") or annotation.get("created_at") or ""
    ident = annotation.get("id")
    return str(stamp), ident if isinstance(ident, int) else -1


def _annotator(annotation: Mapping[str, Any], users: Mapping[int, str]) -> str | None:
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        email = who.get("email")
        who = email if email else who.get("id")
    if isinstance(who, int) and not isinstance(who, bool):
        return users.get(who, str(who))
    return None if who is None else str(who)
