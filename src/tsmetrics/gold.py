"""SME gold items: a gold set with known answers, injected blind into every labeler's queue.

A gold item is a unit an SME has labelled: surface, components (as in a unit record) and the
correct verdict per policy. The set lives in ``tsm.gold_items``, loaded from a JSONL file
(:func:`load_gold_file`, ``tsmetrics gold load FILE``). At dispatch,
``include/sql/inject_gold_tasks.sql`` adds ``round(n r / (1 - r))`` gold tasks to each
labeler's queue (``n`` the labeler's sampled units, ``r`` = ``labeling.gold.rate``, so that a
share ``r`` of the queue is gold), least-shown items first, in a hash order that changes daily.
A gold task's record has exactly the shape of a sampled unit's (``unit_id`` = its blind
queue key, the day, surface, impressions, components), so neither an LLM nor a human can tell
it apart; in the warehouse it is ``purpose = 'gold'`` with ``unit_id = 'gold:<gold_id>'``, which
is never in ``tsm.samples``, so gold labels never enter an estimate.

Each day, every labeler's labels on its gold tasks are scored against the SME answers
(:func:`gold_confusion`): a 2x2 confusion matrix per labeler and policy, accuracy with its
binomial standard error ``sqrt(a (1 - a) / n)``, sensitivity ``TP / (TP + FN)`` and specificity
``TN / (TN + FP)``. Gold items are not a probability sample of the day's units (SMEs pick
them, usually enriched in violations), so these rates describe the labeler on the gold
distribution: sensitivity and specificity transfer to the sampled units when errors depend only
on the true class (the Dawid-Skene assumption), accuracy does not.

Gold file format (UTF-8 JSON Lines, one item per line)::

    {"gold_id": "g-0001", "surface": "search", "impressions": 120,
     "components": [{"component_id": "q", "type": "user_query", "text": "..."},
                    {"component_id": "p1", "type": "pin_image", "pin_id": "pin-1",
                     "image_url": "https://...", "text": "caption"}],
     "answers": {"adult": {"is_violating": true, "sub_policy": "nudity"},
                 "harassment": {"is_violating": false, "sub_policy": null}},
     "notes": "why (optional)", "active": true}

``impressions`` (default 1) and ``notes`` are optional; ``answers`` covers at least one
policy (a policy without an SME answer is not scored); ``active: false`` retires an item.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tsmetrics.errors import TsmetricsError

COMPONENT_TYPES = ("user_query", "system_response", "pin_image")
_COMPONENT_KEYS = ("component_id", "type", "text", "pin_id", "image_url")
_ITEM_KEYS = {"gold_id", "surface", "impressions", "components", "answers", "notes", "active"}
_MAX_PROBLEMS = 50


class GoldFileError(TsmetricsError, ValueError):
    """A gold file cannot be loaded; the message lists every problem (``file:line: reason``)."""


@dataclass(frozen=True)
class GoldAnswer:
    """The SME's verdict for one policy."""

    is_violating: bool
    sub_policy: str | None = None


@dataclass(frozen=True)
class GoldItem:
    """One gold item: a unit with known answers."""

    gold_id: str
    surface: str
    components: tuple[Mapping[str, str], ...]
    answers: Mapping[str, GoldAnswer]
    impressions: int = 1
    notes: str | None = None
    active: bool = True

    def to_row(self, source: str) -> dict[str, Any]:
        answers = {
            p: {"is_violating": a.is_violating, "sub_policy": a.sub_policy}
            for p, a in sorted(self.answers.items())
        }
        content = {
            "surface": self.surface,
            "components": [dict(c) for c in self.components],
            "impressions": self.impressions,
            "answers": answers,
            "notes": self.notes,
            "active": self.active,
        }
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        return {
            "gold_id": self.gold_id,
            "surface": self.surface,
            "components": Jsonb(content["components"]),
            "impressions": self.impressions,
            "answers": Jsonb(answers),
            "notes": self.notes,
            "active": self.active,
            "source": source,
            "content_sha256": digest,
        }


def _component(raw: Any, where: str, seen: set[str]) -> tuple[dict[str, str], list[str]]:
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        return {}, [f"{where}: expected an object, got {type(raw).__name__}"]
    unknown = sorted(set(raw) - set(_COMPONENT_KEYS))
    if unknown:
        problems.append(f"{where}: unknown keys {unknown}")
    out: dict[str, str] = {}
    for key in _COMPONENT_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            problems.append(f"{where}.{key}: expected text, got {value!r}")
            continue
        out[key] = value
    cid = out.get("component_id", "")
    if not cid.strip():
        problems.append(f"{where}: missing component_id")
    elif cid in seen:
        problems.append(f"{where}: duplicate component_id {cid!r}")
    seen.add(cid)
    if out.get("type") not in COMPONENT_TYPES:
        problems.append(
            f"{where}.type: expected one of {list(COMPONENT_TYPES)}, got {raw.get('type')!r}"
        )
    return out, problems


def parse_gold_item(
    raw: Any, policies: Mapping[str, Sequence[str]]
) -> tuple[GoldItem | None, list[str]]:
    """One gold item from its parsed JSON, or None and every problem found.

    ``policies`` maps each policy id to its sub-policy ids (the run configuration's).
    """
    if not isinstance(raw, Mapping):
        return None, [f"expected a JSON object, got {type(raw).__name__}"]
    problems: list[str] = []
    unknown = sorted(set(raw) - _ITEM_KEYS)
    if unknown:
        problems.append(f"unknown keys {unknown} (expected some of {sorted(_ITEM_KEYS)})")
    gold_id = raw.get("gold_id")
    if not isinstance(gold_id, str) or not gold_id.strip():
        problems.append(f"gold_id: expected non-empty text, got {gold_id!r}")
    surface = raw.get("surface")
    if not isinstance(surface, str) or not surface.strip():
        problems.append(f"surface: expected non-empty text, got {surface!r}")
    impressions = raw.get("impressions", 1)
    if isinstance(impressions, bool) or not isinstance(impressions, int) or impressions < 1:
        problems.append(f"impressions: expected a whole number >= 1, got {impressions!r}")
    components_raw = raw.get("components")
    components: list[dict[str, str]] = []
    if not isinstance(components_raw, list) or not components_raw:
        problems.append("components: expected a non-empty list")
    else:
        seen: set[str] = set()
        for k, item in enumerate(components_raw):
            component, bad = _component(item, f"components[{k}]", seen)
            components.append(component)
            problems += bad
    answers: dict[str, GoldAnswer] = {}
    answers_raw = raw.get("answers")
    if not isinstance(answers_raw, Mapping) or not answers_raw:
        problems.append("answers: expected an object with at least one policy")
    else:
        for policy, answer in answers_raw.items():
            where = f"answers.{policy}"
            if policy not in policies:
                problems.append(f"{where}: unknown policy (expected one of {sorted(policies)})")
                continue
            if not isinstance(answer, Mapping) or set(answer) - {"is_violating", "sub_policy"}:
                problems.append(f"{where}: expected {{is_violating, sub_policy}}, got {answer!r}")
                continue
            verdict, sub = answer.get("is_violating"), answer.get("sub_policy")
            if not isinstance(verdict, bool):
                problems.append(f"{where}.is_violating: expected true or false, got {verdict!r}")
            elif verdict and sub not in policies[policy]:
                problems.append(
                    f"{where}.sub_policy: expected one of {list(policies[policy])}, got {sub!r}"
                )
            elif not verdict and sub is not None:
                problems.append(f"{where}.sub_policy: must be null when not violating")
            else:
                answers[policy] = GoldAnswer(verdict, sub)
    notes = raw.get("notes")
    if notes is not None and not isinstance(notes, str):
        problems.append(f"notes: expected text, got {notes!r}")
    active = raw.get("active", True)
    if not isinstance(active, bool):
        problems.append(f"active: expected true or false, got {active!r}")
    if problems:
        return None, problems
    assert isinstance(gold_id, str) and isinstance(surface, str)
    return (
        GoldItem(
            gold_id.strip(),
            surface,
            tuple(components),
            answers,
            int(impressions),
            notes,
            bool(active),
        ),
        [],
    )


def parse_gold_file(path: str | Path, policies: Mapping[str, Sequence[str]]) -> list[GoldItem]:
    """Every item of a gold file, or :class:`GoldFileError` listing every bad line.

    All or nothing: a gold set with a wrong answer is worse than none, so one bad line rejects
    the file (nothing is loaded) and the error names each problem as ``file:line: reason``.
    A ``gold_id`` on two lines is an error too.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise GoldFileError(f"{source}: cannot read the gold file: {error}") from None
    items: list[GoldItem] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"{source.name}:{number}: not valid JSON: {error.msg}")
            continue
        item, bad = parse_gold_item(raw, policies)
        problems += [f"{source.name}:{number}: {reason}" for reason in bad]
        if item is not None:
            if item.gold_id in first_line:
                problems.append(
                    f"{source.name}:{number}: gold_id {item.gold_id!r} already on line "
                    f"{first_line[item.gold_id]}"
                )
                continue
            first_line[item.gold_id] = number
            items.append(item)
    if problems:
        shown = problems[:_MAX_PROBLEMS]
        more = len(problems) - len(shown)
        raise GoldFileError(
            f"{source}: {len(problems)} problem(s), nothing loaded:\n"
            + "\n".join(shown)
            + (f"\n... and {more} more" if more else "")
        )
    if not items:
        raise GoldFileError(f"{source}: no gold items in the file")
    return items


def load_gold_items(conn: psycopg.Connection, items: Sequence[GoldItem], source: str) -> int:
    """Upsert ``items`` into ``tsm.gold_items``; returns how many rows were new or changed.

    Idempotent: an unchanged item (same content hash) is left as it is.
    """
    changed = 0
    with conn.transaction():
        for item in items:
            cursor = conn.execute(
                """
                INSERT INTO tsm.gold_items (gold_id, surface, components, impressions, answers,
                    notes, active, source, content_sha256)
                VALUES (%(gold_id)s, %(surface)s, %(components)s, %(impressions)s, %(answers)s,
                    %(notes)s, %(active)s, %(source)s, %(content_sha256)s)
                ON CONFLICT (gold_id) DO UPDATE SET surface = EXCLUDED.surface,
                    components = EXCLUDED.components, impressions = EXCLUDED.impressions,
                    answers = EXCLUDED.answers, notes = EXCLUDED.notes, active = EXCLUDED.active,
                    source = EXCLUDED.source, content_sha256 = EXCLUDED.content_sha256,
                    updated_at = now()
                WHERE tsm.gold_items.content_sha256 <> EXCLUDED.content_sha256
                """,
                item.to_row(source),
            )
            changed += cursor.rowcount
    conn.commit()
    return changed


def load_gold_file(
    conn: psycopg.Connection, path: str | Path, policies: Mapping[str, Sequence[str]]
) -> int:
    """Validate a gold file (:func:`parse_gold_file`) and upsert it; new or changed items."""
    return load_gold_items(conn, parse_gold_file(path, policies), str(path))


@dataclass(frozen=True)
class Confusion:
    """A labeler's 2x2 confusion matrix for one policy against a reference (counts, or expected
    counts for a model-based reference), with its derived rates (None when undefined)."""

    labeler_id: str
    policy: str
    true_positive: float
    false_positive: float
    false_negative: float
    true_negative: float

    @property
    def n_items(self) -> float:
        return self.true_positive + self.false_positive + self.false_negative + self.true_negative

    @property
    def accuracy(self) -> float | None:
        n = self.n_items
        return None if n <= 0 else (self.true_positive + self.true_negative) / n

    @property
    def accuracy_se(self) -> float | None:
        a, n = self.accuracy, self.n_items
        return None if a is None else math.sqrt(a * (1 - a) / n)

    @property
    def sensitivity(self) -> float | None:
        positives = self.true_positive + self.false_negative
        return None if positives <= 0 else self.true_positive / positives

    @property
    def specificity(self) -> float | None:
        negatives = self.true_negative + self.false_positive
        return None if negatives <= 0 else self.true_negative / negatives

    def to_row(self, day: date, reference: str) -> dict[str, Any]:
        return {
            "event_date": day,
            "policy": self.policy,
            "labeler_id": self.labeler_id,
            "reference": reference,
            "n_items": self.n_items,
            "true_positive": self.true_positive,
            "false_positive": self.false_positive,
            "false_negative": self.false_negative,
            "true_negative": self.true_negative,
            "accuracy": self.accuracy,
            "accuracy_se": self.accuracy_se,
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
        }


def gold_confusion(conn: psycopg.Connection, start: date, end: date) -> list[Confusion]:
    """Per labeler and policy: labels on gold tasks of days ``start..end`` against the SME
    answers (policies the SME answered only)."""
    rows = conn.execute(
        """
        SELECT t.labeler_id, l.policy,
            count(*) FILTER (WHERE l.is_violating AND (g.answers -> l.policy ->> 'is_violating')::boolean),
            count(*) FILTER (WHERE l.is_violating AND NOT (g.answers -> l.policy ->> 'is_violating')::boolean),
            count(*) FILTER (WHERE NOT l.is_violating AND (g.answers -> l.policy ->> 'is_violating')::boolean),
            count(*) FILTER (WHERE NOT l.is_violating AND NOT (g.answers -> l.policy ->> 'is_violating')::boolean)
        FROM tsm.label_tasks AS t
        JOIN tsm.labels AS l
            ON l.event_date = t.event_date AND l.unit_id = t.unit_id AND l.labeler_id = t.labeler_id
        JOIN tsm.gold_items AS g ON g.gold_id = t.gold_id
        WHERE t.purpose = 'gold' AND t.event_date BETWEEN %s AND %s AND g.answers ? l.policy
        GROUP BY t.labeler_id, l.policy
        ORDER BY t.labeler_id, l.policy
        """,  # noqa: E501
        (start, end),
    ).fetchall()
    return [Confusion(r[0], r[1], *(float(x) for x in r[2:])) for r in rows]


def gold_answers(conn: psycopg.Connection, day: date) -> dict[tuple[str, str], bool]:
    """(gold task unit id, policy) -> the SME verdict, for the gold tasks of ``day``."""
    rows = conn.execute(
        """
        SELECT DISTINCT t.unit_id, a.key, (a.value ->> 'is_violating')::boolean
        FROM tsm.label_tasks AS t
        JOIN tsm.gold_items AS g ON g.gold_id = t.gold_id
        CROSS JOIN LATERAL jsonb_each(g.answers) AS a
        WHERE t.event_date = %s AND t.purpose = 'gold'
        """,
        (day,),
    ).fetchall()
    return {(r[0], r[1]): bool(r[2]) for r in rows}


__all__ = [
    "COMPONENT_TYPES",
    "Confusion",
    "GoldAnswer",
    "GoldFileError",
    "GoldItem",
    "gold_answers",
    "gold_confusion",
    "load_gold_file",
    "load_gold_items",
    "parse_gold_file",
    "parse_gold_item",
]
