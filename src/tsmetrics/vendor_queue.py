"""Human labeling queues: shared types, warehouse glue, and the file-based vendor (BPO) queue.

Human labels arrive over hours, so a human backend is asynchronous (:class:`HumanQueue`):
``submit(records)`` sends unified unit records (``include/sql/dispatch_label_tasks.sql``) and
returns at once; ``collect()`` returns every completed answer known so far, as
:class:`HumanAnswer` objects. Both are idempotent: a unit is never sent twice to the same queue
for the same policy version, and collecting twice returns the same answers (so an Airflow retry
is always safe). A malformed result is a *failed answer* with its reason, never a "not
violating" label; valid answers have gone through :func:`tsmetrics.labeling.validate_answers`.

Backends: :class:`VendorQueue` (this module: CSV/JSONL batch files exchanged with a vendor) and
:class:`tsmetrics.label_studio.LabelStudioQueue` (Label Studio's REST API).
:func:`submit_pending_tasks` and :func:`record_human_answers` connect any of them to the
warehouse (``tsm.label_tasks`` / ``tsm.labels``).

Policy version
--------------
:func:`policy_set_version` names the set of written policies a human applies:
``"ps-" + sha256(canonical texts, sorted by policy id)[:12]``. Any change of a policy text
(definition, sub-policies, examples, version number) gives a new version, hence a new Label
Studio project and new vendor batches; units already sent under the old version are sent again
under the new one, never twice under the same one.

Answer format (both backends)
-----------------------------
Per policy a verdict, ``violating`` or ``not_violating``, and a sub-policy: one of the policy's
sub-policy ids when violating, nothing when not violating. A missing or unknown verdict, a
violating verdict without a (known) sub-policy, or a sub-policy next to ``not_violating`` is a
malformed answer (:func:`answers_from_choices`).

Vendor queue layout (one directory per queue)
---------------------------------------------
* ``outbox/<batch_id>.csv``, ``outbox/<batch_id>.jsonl`` -- one row per unit: ``batch_id``,
  ``policy_version``, ``unit_id``, ``event_date``, ``surface``, ``query``, ``response``,
  ``pin_texts``, ``image_urls``, ``annotator``, ``confidence`` (a number in [0, 1]) and
  ``notes`` (optional, for the vendor) and, per policy ``p``,
  the empty columns ``p`` (verdict) and ``p__sub_policy``.
* ``outbox/<batch_id>.manifest.json`` -- batch id, queue id, policy version and policies, unit
  count and ids, columns, allowed values, and name, size and sha256 of both files. Written
  last: a batch exists once its manifest does.
* ``inbox/`` -- where ops drop the vendor's returned ``.csv`` / ``.jsonl`` files.
* ``imported/<sha256>.json`` -- the import report of each distinct returned file (keyed by the
  sha256 of its bytes, so re-importing the same file changes nothing), beside a copy of the file.

Returned rows are validated one by one; a rejected row carries its reasons (see
:meth:`VendorQueue.import_return`), and ``rows_read = accepted + rejected`` always holds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg

from tsmetrics.errors import InvalidLabelError, TsmetricsError
from tsmetrics.labeling import Label, validate_answers
from tsmetrics.prompts import PolicyText

__all__ = [
    "BASE_COLUMNS",
    "AcceptedRow",
    "VERDICTS",
    "BatchManifest",
    "HumanAnswer",
    "HumanQueue",
    "ImportReport",
    "RecordSummary",
    "RejectedRow",
    "VendorFileError",
    "VendorQueue",
    "answers_from_choices",
    "policy_set_version",
    "record_human_answers",
    "record_view",
    "submit_pending_tasks",
    "unique_records",
    "sub_policy_column",
]

logger = logging.getLogger(__name__)

#: The two verdict values a human gives per policy.
VERDICTS: tuple[str, str] = ("violating", "not_violating")
#: Columns of a vendor batch file before the per-policy answer columns.
BASE_COLUMNS: tuple[str, ...] = (
    "batch_id",
    "policy_version",
    "unit_id",
    "event_date",
    "surface",
    "query",
    "response",
    "pin_texts",
    "image_urls",
    "annotator",
    "confidence",
    "notes",
)
_REQUIRED_RETURN_COLUMNS = ("batch_id", "policy_version", "unit_id")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TEXT_COLUMNS = frozenset({"surface", "query", "response", "pin_texts", "image_urls"})
_RETURN_SUFFIXES = (".csv", ".jsonl")


class VendorFileError(TsmetricsError, ValueError):
    """A returned vendor file cannot be read as a whole (encoding, format, missing columns)."""


# --------------------------------------------------------------------------------------------
# Shared types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HumanAnswer:
    """One completed human answer for one unit: labels (one per policy) or a failure reason.

    Attributes
    ----------
    unit_id : str
        The unit answered.
    labels : tuple of Label
        One validated label per policy, in policy order; empty when the answer failed.
    error : str or None
        Why the answer is unusable (malformed, skipped, ...); None for a valid answer.
    annotator : str or None
        Who answered, when the backend says so (Label Studio user, vendor's annotator column).
    ref : str
        Where the answer came from (annotation id, file and line), for audit and idempotency.
    """

    unit_id: str
    labels: tuple[Label, ...] = ()
    error: str | None = None
    annotator: str | None = None
    ref: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.unit_id, str) or not self.unit_id:
            raise ValueError(f"unit_id: expected a non-empty string, got {self.unit_id!r}")
        if (self.error is None) == (not self.labels):
            raise ValueError("a HumanAnswer has either labels (valid) or an error (failed)")

    @property
    def ok(self) -> bool:
        """True for a valid answer (labels), False for a failed one (error)."""
        return self.error is None


class HumanQueue(Protocol):
    """An asynchronous human labeling backend (Label Studio, a vendor's files, ...)."""

    @property
    def queue_id(self) -> str:
        """Stable id of the queue, used as ``labeler_id`` of its tasks and labels."""
        ...

    @property
    def policy_version(self) -> str:
        """:func:`policy_set_version` of the policies this queue asks about."""
        ...

    def submit(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Send unit records; units already sent under this policy version are skipped."""
        ...

    def collect(self) -> list[HumanAnswer]:
        """Every completed answer known now (valid or failed), one per answered unit."""
        ...


def policy_set_version(policies: Sequence[PolicyText]) -> str:
    """``"ps-<12 hex>"``: start of the sha256 of the policies' canonical texts, sorted by id."""
    if not policies:
        raise ValueError("policies: expected at least one policy text, got none")
    ids = [p.id for p in policies]
    if len(set(ids)) != len(ids):
        raise ValueError(f"policies: duplicate policy ids in {ids}")
    digest = hashlib.sha256()
    for policy in sorted(policies, key=lambda p: p.id):
        digest.update(json.dumps(policy.canonical(), ensure_ascii=False).encode("utf-8") + b"\0")
    return f"ps-{digest.hexdigest()[:12]}"


def sub_policy_column(policy_id: str) -> str:
    """Name of a policy's sub-policy column / choice block: ``<policy>__sub_policy``."""
    return f"{policy_id}__sub_policy"


def _normalise_value(value: str) -> str:
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


def answers_from_choices(
    choices: Mapping[str, tuple[Any, Any]], policies: Sequence[PolicyText]
) -> list[dict[str, Any]]:
    """Turn per-policy ``(verdict, sub_policy)`` choices into validated raw answers.

    Parameters
    ----------
    choices : mapping of policy id to (verdict, sub_policy)
        ``verdict`` is ``"violating"`` or ``"not_violating"`` (case, surrounding blanks and
        ``-``/space vs ``_`` are ignored); ``sub_policy`` is a sub-policy id, or None / ``""``.
    policies : sequence of PolicyText
        The policies asked about, in answer order.

    Returns
    -------
    list of dict
        One ``{"policy", "is_violating", "sub_policy", "confidence": None}`` per policy,
        already accepted by :func:`tsmetrics.labeling.validate_answers`.

    Raises
    ------
    InvalidLabelError
        Naming every problem: a missing or unknown verdict, a violating verdict without a
        sub-policy or with an unknown one, a sub-policy next to ``not_violating``.
    """
    problems: list[str] = []
    answers: list[dict[str, Any]] = []
    for policy in policies:
        verdict_raw, sub_raw = choices.get(policy.id, (None, None))
        if verdict_raw is None or (isinstance(verdict_raw, str) and not verdict_raw.strip()):
            problems.append(f"missing verdict for {policy.id!r}")
            continue
        if not isinstance(verdict_raw, str) or _normalise_value(verdict_raw) not in VERDICTS:
            problems.append(
                f"invalid verdict {verdict_raw!r} for {policy.id!r} "
                f"(expected violating or not_violating)"
            )
            continue
        violating = _normalise_value(verdict_raw) == "violating"
        has_sub = sub_raw is not None and not (isinstance(sub_raw, str) and not sub_raw.strip())
        sub_policy: str | None = None
        if violating:
            allowed = ", ".join(policy.sub_policy_ids)
            if not has_sub:
                problems.append(
                    f"missing sub-policy for violating {policy.id!r} (expected one of {allowed})"
                )
                continue
            if not isinstance(sub_raw, str) or _normalise_value(sub_raw) not in set(
                policy.sub_policy_ids
            ):
                problems.append(
                    f"unknown sub-policy {sub_raw!r} for {policy.id!r} (expected one of {allowed})"
                )
                continue
            sub_policy = _normalise_value(sub_raw)
        elif has_sub:
            problems.append(f"sub-policy {sub_raw!r} given but {policy.id!r} is not_violating")
            continue
        answers.append(
            {
                "policy": policy.id,
                "is_violating": violating,
                "sub_policy": sub_policy,
                "confidence": None,
            }
        )
    if problems:
        raise InvalidLabelError("; ".join(problems))
    validate_answers(answers, [p.id for p in policies])
    return answers


def _labels(
    answers: Sequence[Mapping[str, Any]], policies: Sequence[PolicyText]
) -> tuple[Label, ...]:
    return tuple(validate_answers(answers, [p.id for p in policies]))


def record_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """The human-facing view of a unified unit record.

    Returns ``unit_id``, ``event_date``, ``surface``, ``query`` (the ``user_query`` texts),
    ``response`` (the ``system_response`` texts), ``pin_texts`` (one ``[pin_id] text`` line per
    Pin) and ``image_urls`` (list), in component order; texts of one kind are separated by a blank
    line. Raises ``ValueError`` naming the field when the record is not a unit record.
    """
    if not isinstance(record, Mapping):
        raise ValueError(f"record: expected a mapping, got {type(record).__name__}")
    unit_id = record.get("unit_id")
    if not isinstance(unit_id, str) or not unit_id:
        raise ValueError(f"record['unit_id']: expected a non-empty string, got {unit_id!r}")
    components = record.get("components")
    if not isinstance(components, Sequence) or isinstance(components, str | bytes):
        raise ValueError(f"record['components'] of unit {unit_id!r}: expected a list")
    query: list[str] = []
    response: list[str] = []
    pins: list[str] = []
    images: list[str] = []
    for k, comp in enumerate(components):
        if not isinstance(comp, Mapping):
            raise ValueError(f"record['components'][{k}] of unit {unit_id!r}: expected a mapping")
        for key in ("text", "image_url", "pin_id", "type"):
            value = comp.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(
                    f"record['components'][{k}]['{key}'] of unit {unit_id!r}: "
                    f"expected a string, got {value!r}"
                )
        kind = comp.get("type")
        text = comp.get("text")
        if kind == "user_query" and text:
            query.append(text)
        elif kind == "system_response" and text:
            response.append(text)
        elif kind == "pin_image":
            if text:
                pins.append(f"[{comp.get('pin_id') or comp.get('component_id') or k}] {text}")
            if comp.get("image_url"):
                images.append(str(comp["image_url"]))
    event_date = record.get("event_date")
    return {
        "unit_id": unit_id,
        "event_date": "" if event_date is None else str(event_date),
        "surface": str(record.get("surface") or ""),
        "query": "\n\n".join(query),
        "response": "\n\n".join(response),
        "pin_texts": "\n".join(pins),
        "image_urls": images,
    }


def unique_records(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Views of ``records``, first occurrence of each unit id only, input order kept."""
    if isinstance(records, Mapping | str | bytes) or not isinstance(records, Sequence):
        raise ValueError(f"records: expected a list of unit records, got {type(records).__name__}")
    seen: set[str] = set()
    views = []
    for record in records:
        view = record_view(record)
        if view["unit_id"] not in seen:
            seen.add(view["unit_id"])
            views.append(view)
    return views


# --------------------------------------------------------------------------------------------
# Warehouse glue
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordSummary:
    """What :func:`record_human_answers` did.

    ``labeled``: valid answers written as labels (task ``done``); ``failed``: new failed attempts
    recorded (task ``failed`` with the reason); ``unchanged``: failures already recorded with the
    same reason, or failures for tasks already done; ``unmatched``: answers with no task of
    that day and labeler.
    """

    labeled: int
    failed: int
    unchanged: int
    unmatched: int


def submit_pending_tasks(
    conn: psycopg.Connection, day: str, labeler_id: str, queue: HumanQueue
) -> int:
    """Submit every not-done task of ``day`` for ``labeler_id`` to ``queue``; returns the count.

    The queue skips units it already has, so this is safe to run every hour.
    """
    rows = conn.execute(
        "SELECT payload FROM tsm.label_tasks WHERE event_date = %s AND labeler_id = %s "
        "AND status <> 'done' ORDER BY task_id",
        (day, labeler_id),
    ).fetchall()
    conn.commit()
    if rows:
        queue.submit([row[0] for row in rows])
    return len(rows)


def record_human_answers(
    conn: psycopg.Connection, day: str, labeler_id: str, answers: Iterable[HumanAnswer]
) -> RecordSummary:
    """Write collected answers of ``day``'s tasks for ``labeler_id``; idempotent.

    A valid answer upserts one ``tsm.labels`` row per policy (``labeler_id`` = the queue's id,
    ``annotator`` = the answer's, ``confidence`` and ``notes`` when the backend gave them) and
    marks the task ``done``. A failed answer marks a not-done task
    ``failed`` with ``last_error = "<ref>: <error>"`` and counts one attempt, unless that same
    error is already recorded (re-collecting the same bad annotation does not count twice).
    A failed answer never becomes a label, and never overrides a done task.
    """
    labeled = failed = unchanged = unmatched = 0
    for answer in answers:
        row = conn.execute(
            "SELECT task_id, status, last_error FROM tsm.label_tasks "
            "WHERE event_date = %s AND unit_id = %s AND labeler_id = %s",
            (day, answer.unit_id, labeler_id),
        ).fetchone()
        if row is None:
            unmatched += 1
            continue
        task_id, status, last_error = row
        if answer.ok:
            with conn.transaction():
                conn.cursor().executemany(
                    "INSERT INTO tsm.labels (event_date, unit_id, labeler_id, policy, "
                    "is_violating, sub_policy, confidence, annotator, notes) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (event_date, unit_id, labeler_id, policy) DO UPDATE SET "
                    "is_violating = EXCLUDED.is_violating, sub_policy = EXCLUDED.sub_policy, "
                    "confidence = EXCLUDED.confidence, annotator = EXCLUDED.annotator, "
                    "notes = EXCLUDED.notes, labeled_at = now()",
                    [
                        (
                            day,
                            answer.unit_id,
                            labeler_id,
                            lab.policy,
                            lab.is_violating,
                            lab.sub_policy,
                            lab.confidence,
                            answer.annotator or lab.annotator,
                            lab.notes,
                        )
                        for lab in answer.labels
                    ],
                )
                conn.execute(
                    "UPDATE tsm.label_tasks SET status = 'done', last_error = NULL, "
                    "attempts = attempts + CASE WHEN status = 'done' THEN 0 ELSE 1 END "
                    "WHERE task_id = %s",
                    (task_id,),
                )
            labeled += 1
            continue
        reason = f"{answer.ref}: {answer.error}"[:1000]
        if status == "done" or last_error == reason:
            unchanged += 1
            continue
        conn.execute(
            "UPDATE tsm.label_tasks SET attempts = attempts + 1, status = 'failed', "
            "last_error = %s WHERE task_id = %s",
            (reason, task_id),
        )
        failed += 1
    conn.commit()
    return RecordSummary(labeled, failed, unchanged, unmatched)


# --------------------------------------------------------------------------------------------
# Vendor file queue
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchManifest:
    """A batch exported to the vendor (the content of ``<batch_id>.manifest.json``).

    ``files`` maps a format (``"csv"``, ``"jsonl"``) to ``{"name", "bytes", "sha256"}``.
    """

    batch_id: str
    queue_id: str
    policy_version: str
    unit_count: int
    unit_ids: tuple[str, ...]
    columns: tuple[str, ...]
    files: Mapping[str, Mapping[str, Any]]
    created_at: str
    path: Path

    @classmethod
    def load(cls, path: Path) -> BatchManifest:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            batch_id=raw["batch_id"],
            queue_id=raw["queue_id"],
            policy_version=raw["policy_version"],
            unit_count=int(raw["unit_count"]),
            unit_ids=tuple(raw["unit_ids"]),
            columns=tuple(raw["columns"]),
            files=raw["files"],
            created_at=raw["created_at"],
            path=path,
        )


@dataclass(frozen=True)
class RejectedRow:
    """A returned row that was not accepted: its line (1-based, where the row starts), unit id
    when readable, and every reason."""

    line: int
    unit_id: str | None
    reason: str


@dataclass(frozen=True)
class AcceptedRow:
    """A returned row that became one valid answer per policy."""

    line: int
    unit_id: str
    answers: tuple[Mapping[str, Any], ...]
    annotator: str | None = None


@dataclass(frozen=True)
class ImportReport:
    """The outcome of importing one returned file.

    ``rows_read == len(accepted) + len(rejected)`` always (checked on construction). A file that
    cannot be read at all has ``file_error`` set and no rows. ``already_imported`` is True when
    the same bytes were imported before: the stored report is returned and nothing changes.
    """

    file_name: str
    sha256: str
    policy_version: str
    rows_read: int
    accepted: tuple[AcceptedRow, ...]
    rejected: tuple[RejectedRow, ...]
    ignored_columns: tuple[str, ...] = ()
    file_error: str | None = None
    imported_at: str = ""
    already_imported: bool = False

    def __post_init__(self) -> None:
        if self.rows_read != len(self.accepted) + len(self.rejected):
            raise ValueError(
                f"rows_read ({self.rows_read}) != accepted ({len(self.accepted)}) + "
                f"rejected ({len(self.rejected)})"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "file_name": self.file_name,
            "sha256": self.sha256,
            "policy_version": self.policy_version,
            "imported_at": self.imported_at,
            "rows_read": self.rows_read,
            "file_error": self.file_error,
            "ignored_columns": list(self.ignored_columns),
            "accepted": [
                {
                    "line": a.line,
                    "unit_id": a.unit_id,
                    "annotator": a.annotator,
                    "answers": [dict(x) for x in a.answers],
                }
                for a in self.accepted
            ],
            "rejected": [
                {"line": r.line, "unit_id": r.unit_id, "reason": r.reason} for r in self.rejected
            ],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], already_imported: bool) -> ImportReport:
        return cls(
            file_name=raw["file_name"],
            sha256=raw["sha256"],
            policy_version=raw["policy_version"],
            rows_read=int(raw["rows_read"]),
            accepted=tuple(
                AcceptedRow(a["line"], a["unit_id"], tuple(a["answers"]), a.get("annotator"))
                for a in raw["accepted"]
            ),
            rejected=tuple(
                RejectedRow(r["line"], r["unit_id"], r["reason"]) for r in raw["rejected"]
            ),
            ignored_columns=tuple(raw.get("ignored_columns", ())),
            file_error=raw.get("file_error"),
            imported_at=raw.get("imported_at", ""),
            already_imported=already_imported,
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _optional_confidence(raw: Any) -> tuple[float | None, str | None]:
    """A returned row's optional ``confidence`` (a number in [0, 1]) or why it is invalid."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, None
    if isinstance(raw, bool):
        return None, f"invalid confidence {raw!r} (expected a number in [0, 1])"
    try:
        value = float(raw.strip()) if isinstance(raw, str) else float(raw)
    except (TypeError, ValueError):
        return None, f"invalid confidence {raw!r} (expected a number in [0, 1])"
    if not 0.0 <= value <= 1.0:
        return None, f"invalid confidence {raw!r} (expected a number in [0, 1])"
    return value, None


def _cell(value: str) -> str:
    """A CSV cell safe to open in a spreadsheet: text starting like a formula gets a ``'``."""
    return "'" + value if value.startswith(_FORMULA_START) else value


class VendorQueue:
    """A human labeling queue run by a vendor (BPO) through batch files; see the module docs.

    Parameters
    ----------
    root : path
        The queue's directory (``outbox/``, ``inbox/``, ``imported/`` are created inside).
    policies : sequence of PolicyText
        Policies to label, in column order.
    queue_id : str
        Stable id of the queue (the ``labeler_id`` of its tasks and labels).
    """

    def __init__(
        self, root: str | Path, policies: Sequence[PolicyText], queue_id: str = "vendor"
    ) -> None:
        if not isinstance(queue_id, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", queue_id):
            raise ValueError(
                f"queue_id: expected 1-64 letters, digits, '_', '.', '-', got {queue_id!r}"
            )
        self._policies = tuple(policies)
        self._version = policy_set_version(self._policies)
        clash = [p.id for p in self._policies if p.id in BASE_COLUMNS]
        if clash:
            raise ValueError(f"policies: policy id {clash[0]!r} clashes with a base column name")
        self._queue_id = queue_id
        self.root = Path(root)
        self.outbox = self.root / "outbox"
        self.inbox = self.root / "inbox"
        self.imported = self.root / "imported"
        for folder in (self.outbox, self.inbox, self.imported):
            folder.mkdir(parents=True, exist_ok=True)

    # -- identity -------------------------------------------------------------------------

    @property
    def queue_id(self) -> str:
        return self._queue_id

    @property
    def policy_version(self) -> str:
        return self._version

    @property
    def policies(self) -> tuple[PolicyText, ...]:
        return self._policies

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns of exported (and returned) files, in order."""
        answer_cols: list[str] = []
        for policy in self._policies:
            answer_cols += [policy.id, sub_policy_column(policy.id)]
        return BASE_COLUMNS + tuple(answer_cols)

    # -- export ---------------------------------------------------------------------------

    def manifests(self) -> list[BatchManifest]:
        """Every exported batch of this queue and policy version, oldest first."""
        found = []
        for path in sorted(self.outbox.glob("*.manifest.json")):
            manifest = BatchManifest.load(path)
            if manifest.queue_id == self._queue_id and manifest.policy_version == self._version:
                found.append(manifest)
        return sorted(found, key=lambda m: (m.created_at, m.batch_id))

    def exported_units(self) -> dict[str, str]:
        """Unit id -> batch id of every unit exported under this policy version."""
        units: dict[str, str] = {}
        for manifest in self.manifests():
            for unit_id in manifest.unit_ids:
                units.setdefault(unit_id, manifest.batch_id)
        return units

    def submit(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Export the records not yet exported under this policy version (see
        :meth:`export_batch`)."""
        self.export_batch(records)

    def export_batch(self, records: Sequence[Mapping[str, Any]]) -> BatchManifest | None:
        """Write one batch (CSV, JSONL, manifest) of the records not exported before.

        Returns the batch's manifest, or None when every unit was already exported under this
        policy version (nothing is written). The batch id is
        ``<policy_version>-<sha256 of the sorted unit ids, 10 hex>``, so re-running an
        interrupted export rewrites the same batch.
        """
        views = unique_records(records)
        done = self.exported_units()
        fresh = [v for v in views if v["unit_id"] not in done]
        if not fresh:
            return None
        unit_ids = [v["unit_id"] for v in fresh]
        digest = _sha256("\n".join(sorted(unit_ids)).encode("utf-8"))[:10]
        batch_id = f"{self._version}-{digest}"
        columns = self.columns
        rows = []
        for view in fresh:
            row: dict[str, Any] = {c: "" for c in columns}
            row.update(
                {
                    "batch_id": batch_id,
                    "policy_version": self._version,
                    "unit_id": view["unit_id"],
                    "event_date": view["event_date"],
                    "surface": view["surface"],
                    "query": view["query"],
                    "response": view["response"],
                    "pin_texts": view["pin_texts"],
                    "image_urls": view["image_urls"],
                }
            )
            rows.append(row)
        csv_text = io.StringIO()
        writer = csv.writer(csv_text, lineterminator="\r\n")
        writer.writerow(columns)
        for row in rows:
            cells = []
            for c in columns:
                value = "\n".join(row[c]) if c == "image_urls" else str(row[c])
                cells.append(_cell(value) if c in _TEXT_COLUMNS else value)
            writer.writerow(cells)
        csv_bytes = csv_text.getvalue().encode("utf-8")
        answer_columns = set(columns[len(BASE_COLUMNS) :]) | {"annotator", "confidence", "notes"}
        jsonl_bytes = "".join(
            json.dumps(
                {c: None if c in answer_columns else row[c] for c in columns}, ensure_ascii=False
            )
            + "\n"
            for row in rows
        ).encode("utf-8")
        files: dict[str, dict[str, Any]] = {}
        for fmt, data in (("csv", csv_bytes), ("jsonl", jsonl_bytes)):
            name = f"{batch_id}.{fmt}"
            _atomic_write(self.outbox / name, data)
            files[fmt] = {"name": name, "bytes": len(data), "sha256": _sha256(data)}
        manifest_path = self.outbox / f"{batch_id}.manifest.json"
        created_at = datetime.now(UTC).isoformat(timespec="microseconds")
        manifest = {
            "batch_id": batch_id,
            "queue_id": self._queue_id,
            "policy_version": self._version,
            "policies": [
                {
                    "id": p.id,
                    "version": p.version,
                    "title": p.title,
                    "verdict_column": p.id,
                    "sub_policy_column": sub_policy_column(p.id),
                    "verdicts": list(VERDICTS),
                    "sub_policies": list(p.sub_policy_ids),
                }
                for p in self._policies
            ],
            "unit_count": len(unit_ids),
            "unit_ids": unit_ids,
            "columns": list(columns),
            "files": files,
            "created_at": created_at,
        }
        _atomic_write(
            manifest_path, (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode()
        )
        logger.info(
            "vendor queue %s: exported batch %s (%d units)", self._queue_id, batch_id, len(unit_ids)
        )
        return BatchManifest.load(manifest_path)

    # -- import ---------------------------------------------------------------------------

    def reports(self) -> list[ImportReport]:
        """Stored import reports of this policy version, in import order."""
        found = []
        for path in self.imported.glob("*.json"):
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("policy_version") == self._version:
                found.append(ImportReport.from_json(raw, already_imported=True))
        return sorted(found, key=lambda r: (r.imported_at, r.file_name))

    def import_return(self, path: str | Path) -> ImportReport:
        """Import one returned vendor file (``.csv`` or ``.jsonl``); idempotent by content.

        File-level problems (unreadable, not UTF-8, unknown suffix, a required column missing)
        give a report with ``file_error`` and no rows. Otherwise every data row is accepted or
        rejected with all its reasons: missing ``unit_id``; wrong or missing ``policy_version``
        (the queue's is :attr:`policy_version`); a unit never exported under this version
        (``unknown unit_id``); a ``batch_id`` that did not contain the unit; missing/invalid
        verdicts or sub-policies (:func:`answers_from_choices`); a unit on several rows of the
        file (all its rows are rejected); a unit already answered in an earlier file. Blank
        lines are not rows. The report is stored under ``imported/<sha256>.json``; importing
        the same bytes again returns it with ``already_imported=True`` and changes nothing.
        """
        source = Path(path)
        data = source.read_bytes()
        digest = _sha256(data)
        stored = self.imported / f"{digest}.json"
        if stored.exists():
            return ImportReport.from_json(json.loads(stored.read_text(encoding="utf-8")), True)
        report = self._parse_return(source.name, data, digest)
        _atomic_write(self.imported / f"{digest}{source.suffix.lower()}", data)
        _atomic_write(
            stored, (json.dumps(report.to_json(), ensure_ascii=False, indent=1) + "\n").encode()
        )
        logger.info(
            "vendor queue %s: imported %s: %d rows read, %d accepted, %d rejected%s",
            self._queue_id,
            source.name,
            report.rows_read,
            len(report.accepted),
            len(report.rejected),
            f" (file error: {report.file_error})" if report.file_error else "",
        )
        return report

    def collect(self) -> list[HumanAnswer]:
        """Import every new file in ``inbox/``, then return all answers of this policy version.

        Per unit: its accepted row (valid answer), else its latest rejected row (failed answer
        with the reasons). Rejected rows without a known unit id stay in the reports only.
        """
        for path in sorted(self.inbox.iterdir()):
            if path.is_file() and path.suffix.lower() in _RETURN_SUFFIXES:
                self.import_return(path)
        known = self.exported_units()
        accepted: dict[str, HumanAnswer] = {}
        failed: dict[str, HumanAnswer] = {}
        for report in self.reports():
            for row in report.accepted:
                accepted.setdefault(
                    row.unit_id,
                    HumanAnswer(
                        row.unit_id,
                        _labels(row.answers, self._policies),
                        annotator=row.annotator,
                        ref=f"{report.file_name}:{row.line}",
                    ),
                )
            for bad in report.rejected:
                if bad.unit_id in known:
                    failed[bad.unit_id] = HumanAnswer(
                        bad.unit_id, error=bad.reason, ref=f"{report.file_name}:{bad.line}"
                    )
        merged = {**failed, **accepted}
        return [merged[u] for u in sorted(merged)]

    # -- parsing --------------------------------------------------------------------------

    def _parse_return(self, name: str, data: bytes, digest: str) -> ImportReport:
        now = datetime.now(UTC).isoformat(timespec="microseconds")

        def file_failure(reason: str) -> ImportReport:
            return ImportReport(name, digest, self._version, 0, (), (), (), reason, now)

        suffix = Path(name).suffix.lower()
        if suffix not in _RETURN_SUFFIXES:
            return file_failure(f"unsupported file type {suffix!r} (expected .csv or .jsonl)")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            return file_failure(f"not UTF-8 text: {error}")
        try:
            rows, header = self._csv_rows(text) if suffix == ".csv" else self._jsonl_rows(text)
        except VendorFileError as error:
            return file_failure(str(error))
        required = list(_REQUIRED_RETURN_COLUMNS)
        for policy in self._policies:
            required += [policy.id, sub_policy_column(policy.id)]
        if header is not None:
            missing = [c for c in required if c not in header]
            if missing:
                return file_failure(f"missing required columns {missing}")
        if header is not None:
            seen_columns = list(header)
        else:
            seen_columns = []
            for _, values, _ in rows:
                seen_columns += [k for k in values if k not in seen_columns]
        ignored = tuple(c for c in seen_columns if c not in self.columns)

        exported = self.exported_units()
        previously: dict[str, str] = {}
        for report in self.reports():
            for row in report.accepted:
                previously.setdefault(row.unit_id, f"{report.file_name} (line {row.line})")

        parsed: list[tuple[int, str | None, list[str], AcceptedRow | None]] = []
        for line, values, problem in rows:
            if problem is not None:
                unit = values.get("unit_id") if values else None
                parsed.append(
                    (line, unit if isinstance(unit, str) and unit else None, [problem], None)
                )
                continue
            parsed.append(self._check_row(line, values, exported, previously))
        lines_of: dict[str, list[int]] = {}
        for line, unit_id, _, _ in parsed:
            if unit_id:
                lines_of.setdefault(unit_id, []).append(line)
        accepted: list[AcceptedRow] = []
        rejected: list[RejectedRow] = []
        for line, unit_id, reasons, ok in parsed:
            if unit_id and len(lines_of[unit_id]) > 1:
                reasons = [
                    f"unit_id {unit_id!r} appears on lines "
                    f"{', '.join(map(str, lines_of[unit_id]))} of this file",
                    *reasons,
                ]
            if reasons or ok is None:
                rejected.append(RejectedRow(line, unit_id, "; ".join(reasons)))
            else:
                accepted.append(ok)
        return ImportReport(
            name,
            digest,
            self._version,
            len(parsed),
            tuple(accepted),
            tuple(rejected),
            ignored,
            None,
            now,
        )

    def _check_row(
        self,
        line: int,
        values: Mapping[str, Any],
        exported: Mapping[str, str],
        previously: Mapping[str, str],
    ) -> tuple[int, str | None, list[str], AcceptedRow | None]:
        reasons: list[str] = []
        unit_raw = values.get("unit_id")
        unit_id = unit_raw.strip() if isinstance(unit_raw, str) and unit_raw.strip() else None
        if unit_id is None:
            reasons.append(
                "missing unit_id"
                if unit_raw in (None, "") or isinstance(unit_raw, str)
                else f"unit_id must be text, got {unit_raw!r}"
            )
        version = values.get("policy_version")
        version = version.strip() if isinstance(version, str) else version
        if not version:
            reasons.append("missing policy_version")
        elif version != self._version:
            reasons.append(f"wrong policy_version {version!r} (this queue's is {self._version!r})")
        if unit_id is not None and version == self._version:
            if unit_id not in exported:
                reasons.append(f"unknown unit_id {unit_id!r} (not in any exported batch)")
            else:
                batch = values.get("batch_id")
                batch = batch.strip() if isinstance(batch, str) else batch
                if not batch:
                    reasons.append("missing batch_id")
                elif batch != exported[unit_id]:
                    reasons.append(
                        f"unit_id {unit_id!r} is not in batch {batch!r} "
                        f"(it was exported in {exported[unit_id]!r})"
                    )
            if unit_id in previously:
                reasons.append(f"unit_id {unit_id!r} already answered in {previously[unit_id]}")
        choices = {
            p.id: (values.get(p.id), values.get(sub_policy_column(p.id))) for p in self._policies
        }
        answers: list[dict[str, Any]] = []
        try:
            answers = answers_from_choices(choices, self._policies)
        except InvalidLabelError as error:
            reasons.append(str(error))
        confidence, problem = _optional_confidence(values.get("confidence"))
        if problem:
            reasons.append(problem)
        notes = values.get("notes")
        if notes is not None and not isinstance(notes, str):
            reasons.append(f"notes must be text, got {notes!r}")
        elif isinstance(notes, str):
            notes = notes.strip() or None
        if reasons or unit_id is None:
            return line, unit_id, reasons, None
        answers = [{**a, "confidence": confidence, "notes": notes} for a in answers]
        annotator = values.get("annotator")
        annotator = annotator.strip() if isinstance(annotator, str) and annotator.strip() else None
        return line, unit_id, [], AcceptedRow(line, unit_id, tuple(answers), annotator)

    @staticmethod
    def _csv_rows(text: str) -> tuple[list[tuple[int, dict[str, Any], str | None]], list[str]]:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise VendorFileError("empty file: no header row") from None
        except csv.Error as error:
            raise VendorFileError(f"unreadable CSV header: {error}") from None
        header = [h.strip() for h in header]
        duplicated = sorted({h for h in header if header.count(h) > 1})
        if duplicated:
            raise VendorFileError(f"duplicate columns {duplicated} in the header")
        rows: list[tuple[int, dict[str, Any], str | None]] = []
        previous_end = reader.line_num
        while True:
            start = previous_end + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                raise VendorFileError(f"unreadable CSV at line {start}: {error}") from None
            previous_end = reader.line_num
            if all(not f.strip() for f in fields):
                continue  # a blank line (or a row of empty cells) is not a row
            values = dict(zip(header, fields, strict=False))
            if len(fields) != len(header):
                rows.append(
                    (start, values, f"row has {len(fields)} fields, header has {len(header)}")
                )
                continue
            rows.append((start, values, None))
        return rows, header

    @staticmethod
    def _jsonl_rows(text: str) -> tuple[list[tuple[int, dict[str, Any], str | None]], None]:
        rows: list[tuple[int, dict[str, Any], str | None]] = []
        # split on "\n" only: U+2028 and friends may occur raw inside JSON strings
        for number, raw in enumerate(text.split("\n"), start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as error:
                rows.append((number, {}, f"not valid JSON: {error.msg} (column {error.colno})"))
                continue
            if not isinstance(value, dict):
                rows.append((number, {}, f"expected a JSON object, got {type(value).__name__}"))
                continue
            rows.append((number, value, None))
        return rows, None
