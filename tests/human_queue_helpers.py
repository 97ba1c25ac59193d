"""Test-side humans and gold sets for the human-queue tests: a gold file in the documented
format, a "vendor" that answers the outbox files the DAG wrote, and a DAG run in a thread."""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from tsmetrics.local_airflow import run_day_subprocess
from tsmetrics.simulate import VIOLATION_TOKEN_RE, violation_token
from tsmetrics.vendor_queue import sub_policy_column

POLICIES = ("adult", "harassment", "self_harm", "misinformation")


def write_gold_file(path: Path, n_violating: int = 12, n_clean: int = 12, n_hard: int = 4) -> Path:
    """A gold set: ``n_violating`` items whose text carries an adult/nudity token (SME: adult
    violating), ``n_clean`` clean items, and ``n_hard`` items without any token that the SME
    judged harassment/insults (labelers reading tokens miss them: sensitivity < 1)."""
    lines = []
    for k in range(n_violating + n_clean + n_hard):
        kind = "v" if k < n_violating else "c" if k < n_violating + n_clean else "h"
        token = f" {violation_token('adult', 'nudity')}" if kind == "v" else ""
        text = f"synthetic query {900_000 + k} about fashion{token}"
        answers: dict[str, Any] = {p: {"is_violating": False, "sub_policy": None} for p in POLICIES}
        if kind == "v":
            answers["adult"] = {"is_violating": True, "sub_policy": "nudity"}
        if kind == "h":
            answers["harassment"] = {"is_violating": True, "sub_policy": "insults"}
        lines.append(
            json.dumps(
                {
                    "gold_id": f"g-{k:04d}",
                    "surface": "search",
                    "impressions": 40 + k,
                    "components": [
                        {"component_id": "q", "type": "user_query", "text": text},
                        {
                            "component_id": "r",
                            "type": "system_response",
                            "text": f"synthetic response {900_000 + k} suggesting ideas",
                        },
                        {
                            "component_id": "p1",
                            "type": "pin_image",
                            "pin_id": f"pin-{810_000_000 + k}",
                            "image_url": f"https://i.example.com/pins/pin-{810_000_000 + k}.jpg",
                            "text": f"synthetic pin pin-{810_000_000 + k} caption: fashion",
                        },
                    ],
                    "answers": answers,
                }
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def answers_from_text(text: str) -> dict[str, tuple[str, str]]:
    """What a careful test human answers: the simulator's violation tokens in the unit's text."""
    found: dict[str, str] = {}
    for policy, sub in VIOLATION_TOKEN_RE.findall(text):
        found.setdefault(policy, sub)
    return {p: ("violating", found[p]) if p in found else ("not_violating", "") for p in POLICIES}


class VendorHuman:
    """Answers the rows of a vendor queue's outbox files into its inbox, like a BPO would."""

    def __init__(self, root: Path, annotator: str = "vendor-agent-1") -> None:
        self.root = root
        self.annotator = annotator
        self.returned = 0

    def outbox_rows(self) -> tuple[list[str], list[dict[str, str]]]:
        header: list[str] = []
        rows: list[dict[str, str]] = []
        for path in sorted((self.root / "outbox").glob("*.csv")):
            with path.open(encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                header = list(reader.fieldnames or [])
                rows += list(reader)
        return header, rows

    def rows_of(self, day: date, timeout: float = 900.0) -> tuple[list[str], list[dict[str, str]]]:
        """The outbox rows of ``day``, once the DAG has exported them (sorted by key)."""
        deadline = time.monotonic() + timeout
        while True:
            if list((self.root / "outbox").glob("*.manifest.json")):
                header, rows = self.outbox_rows()
                mine = [r for r in rows if r["event_date"] == day.isoformat()]
                if mine:
                    return header, sorted(mine, key=lambda r: r["unit_id"])
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no batch for {day} in {self.root / 'outbox'} after {timeout} s"
                )
            time.sleep(0.5)

    def answer(self, rows: Sequence[dict[str, str]], header: Sequence[str]) -> Path:
        """Fill and return ``rows`` as one new CSV file in the inbox."""
        out = []
        for row in rows:
            filled = dict(row)
            text = " ".join(row[c] for c in ("query", "response", "pin_texts"))
            for policy, (verdict, sub) in answers_from_text(text).items():
                filled[policy] = verdict
                filled[sub_policy_column(policy)] = sub
            filled["annotator"] = self.annotator
            filled["notes"] = "checked"
            out.append(filled)
        self.returned += 1
        path = self.root / "inbox" / f"return-{self.returned:03d}.csv"
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(header))
            writer.writeheader()
            writer.writerows(out)
        tmp.rename(path)
        return path


class DagRunThread(threading.Thread):
    """``run_day_subprocess`` in a background thread; ``join_checked`` re-raises its error."""

    def __init__(
        self, env: dict[str, str], day: date, log: Path, conf: dict[str, Any] | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.env, self.day, self.log, self.conf = env, day, log, conf
        self.error: BaseException | None = None
        self.seconds = 0.0

    def run(self) -> None:
        started = time.monotonic()
        try:
            run_day_subprocess(self.env, self.day, self.log, self.conf)
        except BaseException as error:  # re-raised in the test thread
            self.error = error
        self.seconds = time.monotonic() - started

    def join_checked(self, timeout: float = 1800.0) -> None:
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError(f"DAG run for {self.day} still running after {timeout} s")
        if self.error is not None:
            raise self.error


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout} s")
        time.sleep(0.5)
