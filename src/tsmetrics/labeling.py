"""Labeling: sampled units, as one unified record each, to labelers; their answers back as labels.

Dispatch is ``include/sql/dispatch_label_tasks.sql`` (idempotent, inside the warehouse). This
module holds the labeler interface, the simulated labeler, the validation every labeler's output
goes through, and the collection loop. A labeler's bad output is a failed attempt (recorded with
its reason and retried), never a "not violating" label.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg

from tsmetrics.errors import CollectionStopped, InvalidLabelError
from tsmetrics.simulate import VIOLATION_TOKEN_RE

MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Label:
    """One labeler's verdict on one unit for one policy.

    ``annotator`` (who answered: a human's id, or the LLM's model) and ``notes`` (free text: an
    LLM's rationale, an annotator's note) are provenance, not part of the verdict: equality
    ignores them.
    """

    policy: str
    is_violating: bool
    sub_policy: str | None = None
    confidence: float | None = None
    prompt_version: str | None = None
    model: str | None = None
    #: ids of the unit's components that violate the policy (None: no component verdicts)
    violating_components: tuple[str, ...] | None = None
    annotator: str | None = field(default=None, compare=False)
    notes: str | None = field(default=None, compare=False)


class Labeler(Protocol):
    """Anything that turns a unified unit record into one label per policy."""

    @property
    def labeler_id(self) -> str:
        """Stable id recorded with every label this labeler gives."""
        ...

    def label(
        self, record: Mapping[str, Any], policies: Sequence[str]
    ) -> Sequence[Mapping[str, Any]]:
        """Return raw answers: one mapping per policy with ``policy`` and ``is_violating``."""
        ...


@dataclass(frozen=True)
class SimulatedLabeler:
    """A SIMULATED labeler for demos and tests: reads the synthetic violation tokens that
    :mod:`tsmetrics.simulate` writes into component texts, and flips each verdict with
    probability ``error_rate`` (deterministically, from a hash of seed, unit and policy).
    """

    labeler_id: str
    error_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {self.error_rate}")

    def label(self, record: Mapping[str, Any], policies: Sequence[str]) -> list[dict[str, Any]]:
        found: dict[str, str] = {}
        carriers: dict[str, list[str]] = {}  # policy -> components with its token (the truth)
        ids = [str(c.get("component_id")) for c in record.get("components", [])]
        for component in record.get("components", []):
            for policy, sub_policy in VIOLATION_TOKEN_RE.findall(component.get("text") or ""):
                found.setdefault(policy, sub_policy)
                carriers.setdefault(policy, []).append(str(component.get("component_id")))
        answers = []
        for policy in policies:
            truth = policy in found
            uniform = self._uniform(str(record["unit_id"]), policy)
            flipped = uniform < self.error_rate
            verdict = truth != flipped
            components = carriers.get(policy, []) if truth else []
            if flipped:  # a false positive blames one component, a false negative none
                components = [ids[int(uniform / self.error_rate * len(ids))]] if verdict else []
            answers.append(
                {
                    "policy": policy,
                    "is_violating": verdict,
                    "sub_policy": found.get(policy) if verdict else None,
                    "confidence": 1.0 - self.error_rate,
                    "violating_components": components,
                }
            )
        return answers

    def _uniform(self, unit_id: str, policy: str) -> float:
        digest = hashlib.sha256(f"{self.seed}:{self.labeler_id}:{unit_id}:{policy}".encode())
        return int.from_bytes(digest.digest()[:8], "big") / 2**64


def validate_answers(
    answers: Any, policies: Sequence[str], component_ids: Sequence[str] | None = None
) -> list[Label]:
    """Turn a labeler's raw answers into labels, or raise :class:`InvalidLabelError`.

    Exactly one answer per requested policy, ``is_violating`` a real boolean, ``confidence`` in
    [0, 1] when given; ``violating_components``, when given, distinct ids of the unit's
    components (``component_ids``), non-empty exactly when ``is_violating`` (a unit violates
    iff a component does); ``annotator`` and ``notes`` (or an LLM's ``rationale``) text when
    given. Anything else is a failed attempt. A label without an annotator gets its ``model``
    (an LLM's labels name the model that gave them).
    """
    if not isinstance(answers, Sequence) or isinstance(answers, str | bytes):
        raise InvalidLabelError(f"expected a list of answers, got {type(answers).__name__}")
    labels: dict[str, Label] = {}
    for answer in answers:
        if not isinstance(answer, Mapping):
            raise InvalidLabelError(f"expected an answer object, got {answer!r}")
        policy = answer.get("policy")
        if not isinstance(policy, str) or policy not in policies:
            raise InvalidLabelError(f"answer for unknown policy {policy!r}")
        if policy in labels:
            raise InvalidLabelError(f"two answers for policy {policy!r}")
        verdict = answer.get("is_violating")
        if not isinstance(verdict, bool):
            raise InvalidLabelError(f"is_violating must be true or false, got {verdict!r}")
        confidence = answer.get("confidence")
        if confidence is not None and (
            isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
            or not 0.0 <= confidence <= 1.0
        ):
            raise InvalidLabelError(f"confidence must be in [0, 1], got {confidence!r}")
        components = _violating_components(answer, verdict, component_ids)
        sub_policy = answer.get("sub_policy")
        prompt_version, model = answer.get("prompt_version"), answer.get("model")
        notes = answer.get("notes", answer.get("rationale"))
        annotator = answer.get("annotator")
        for name, value in (("notes", notes), ("annotator", annotator)):
            if value is not None and not isinstance(value, str):
                raise InvalidLabelError(f"{name} must be text, got {value!r}")
        labels[policy] = Label(
            policy,
            verdict,
            None if sub_policy is None else str(sub_policy),
            None if confidence is None else float(confidence),
            None if prompt_version is None else str(prompt_version),
            None if model is None else str(model),
            components,
            annotator=annotator or (None if model is None else str(model)),
            notes=notes or None,
        )
    missing = [p for p in policies if p not in labels]
    if missing:
        raise InvalidLabelError(f"no answer for policies {missing}")
    return [labels[p] for p in policies]


def _violating_components(
    answer: Mapping[str, Any], verdict: bool, component_ids: Sequence[str] | None
) -> tuple[str, ...] | None:
    value = answer.get("violating_components")
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidLabelError(f"violating_components must be a list of ids, got {value!r}")
    if not all(isinstance(c, str) for c in value) or len(set(value)) != len(value):
        raise InvalidLabelError(f"violating_components must be distinct ids, got {value!r}")
    if component_ids is not None:
        unknown = [c for c in value if c not in component_ids]
        if unknown:
            raise InvalidLabelError(
                f"unknown component id {unknown[0]!r}: expected one of {list(component_ids)}"
            )
    if bool(value) != verdict:
        raise InvalidLabelError(
            f"is_violating {verdict} contradicts violating_components {list(value)!r}"
        )
    return tuple(value)


def _label_one(
    conn: psycopg.Connection,
    day: str,
    task_id: int,
    unit_id: str,
    labeler: Labeler,
    payload: Mapping[str, Any],
    policies: Sequence[str],
) -> bool:
    """One attempt at one task; True when it produced valid labels."""
    try:
        component_ids = [str(c.get("component_id")) for c in payload.get("components", [])]
        labels = validate_answers(labeler.label(payload, policies), policies, component_ids)
    except CollectionStopped:
        conn.rollback()  # not an attempt: the task stays as it was
        raise
    except Exception as error:  # any labeler failure is one failed attempt, never a label
        conn.execute(
            "UPDATE tsm.label_tasks SET attempts = attempts + 1, status = 'failed', "
            "last_error = %s WHERE task_id = %s",
            (f"{type(error).__name__}: {error}"[:1000], task_id),
        )
        conn.commit()
        return False
    with conn.transaction():
        conn.cursor().executemany(
            "INSERT INTO tsm.labels (event_date, unit_id, labeler_id, policy, is_violating, "
            "sub_policy, confidence, prompt_version, model, violating_components, annotator, "
            "notes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (event_date, unit_id, labeler_id, policy) DO UPDATE SET "
            "is_violating = EXCLUDED.is_violating, sub_policy = EXCLUDED.sub_policy, "
            "confidence = EXCLUDED.confidence, prompt_version = EXCLUDED.prompt_version, "
            "model = EXCLUDED.model, violating_components = EXCLUDED.violating_components, "
            "annotator = EXCLUDED.annotator, notes = EXCLUDED.notes, "
            "labeled_at = now()",
            [
                (
                    day,
                    unit_id,
                    labeler.labeler_id,
                    lab.policy,
                    lab.is_violating,
                    lab.sub_policy,
                    lab.confidence,
                    lab.prompt_version,
                    lab.model,
                    None if lab.violating_components is None else list(lab.violating_components),
                    lab.annotator,
                    lab.notes,
                )
                for lab in labels
            ],
        )
        conn.execute(
            "UPDATE tsm.label_tasks SET attempts = attempts + 1, status = 'done', "
            "last_error = NULL WHERE task_id = %s",
            (task_id,),
        )
    conn.commit()
    return True


@dataclass(frozen=True)
class CollectionSummary:
    labeled: int
    failed_attempts: int
    exhausted: int
    #: why collection stopped early (a labeler's cap), ``None`` when every task was tried
    stopped: str | None = None


def collect_labels(
    conn: psycopg.Connection,
    day: str,
    labelers: Mapping[str, Labeler],
    policies: Sequence[str],
    max_attempts: int = MAX_ATTEMPTS,
) -> CollectionSummary:
    """Label every open task of ``day`` whose labeler is in ``labelers``; idempotent.

    Done tasks are skipped (a re-run resumes where the last stopped). A task whose answer fails
    validation, or whose labeler raises, records a failed attempt with its reason; after
    ``max_attempts`` it stays ``failed`` and is reported as unlabeled. When a labeler raises
    :class:`~tsmetrics.errors.CollectionStopped` (its daily cap is reached), collection stops:
    the open tasks stay as they are (not attempted) and the summary says why.
    """
    labeled = failed = 0
    stopped: str | None = None
    for _ in range(max_attempts):
        tasks = conn.execute(
            "SELECT task_id, unit_id, labeler_id, payload FROM tsm.label_tasks "
            "WHERE event_date = %s AND status <> 'done' AND attempts < %s "
            "AND labeler_id = ANY(%s) ORDER BY task_id",
            (day, max_attempts, list(labelers)),
        ).fetchall()
        if not tasks:
            break
        try:
            for task_id, unit_id, labeler_id, payload in tasks:
                labeler = labelers[labeler_id]
                if _label_one(conn, day, task_id, unit_id, labeler, payload, policies):
                    labeled += 1
                else:
                    failed += 1
        except CollectionStopped as error:
            stopped = f"{type(error).__name__}: {error}"
            break
    exhausted_row = conn.execute(
        "SELECT count(*) FROM tsm.label_tasks WHERE event_date = %s AND status = 'failed' "
        "AND attempts >= %s",
        (day, max_attempts),
    ).fetchone()
    conn.commit()
    exhausted = int(exhausted_row[0]) if exhausted_row else 0
    return CollectionSummary(labeled, failed, exhausted, stopped)


__all__ = [
    "CollectionSummary",
    "Label",
    "Labeler",
    "SimulatedLabeler",
    "collect_labels",
    "validate_answers",
]
