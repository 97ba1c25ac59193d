"""A labeler backed by an OpenAI-compatible chat-completions server (OpenAI, vLLM, Ollama, ...).

:class:`LLMLabeler` implements :class:`tsmetrics.labeling.Labeler`: for one unified unit record
it renders the prompt of :mod:`tsmetrics.prompts`, sends ``POST {base_url}/chat/completions``
(``Authorization: Bearer <api_key>``) over httpx with ``temperature`` 0 and a structured-output
``response_format``, and turns the reply into one answer per policy. Every HTTP attempt yields an
:class:`AttemptRecord` (model, prompt version, raw response, latency, tokens, cost, HTTP status,
error reason), kept in :attr:`LLMLabeler.attempts` and handed to ``on_attempt``.

Failures
--------
* Transient transport failures -- HTTP 429 (``rate_limited``), 5xx (``server_error``), client
  timeouts (``timeout``) and connection errors (``connection_error``) -- are retried up to
  ``max_retries`` times. The wait before retry ``k`` (0-based) honours the server's
  ``retry-after-ms`` / ``Retry-After`` (seconds or HTTP date) when given, and is otherwise
  exponential with equal jitter: ``min(backoff_max_s, backoff_base_s * 2**k) * (1 + u) / 2``,
  ``u ~ U[0, 1)`` (:func:`backoff_delay`). A ``Retry-After`` beyond ``max_retry_after_s`` is not
  waited for. When retries run out, or on any other HTTP status (``http_error``, e.g. 400 or
  401), :class:`LLMRequestError` is raised.
* A 200 reply whose answer cannot be used is a failed attempt, never a "not violating" label:
  :class:`LLMLabelError` (an :class:`~tsmetrics.errors.InvalidLabelError`) with ``reason`` one of
  ``refusal`` (``message.refusal`` set, ``finish_reason == "content_filter"``, or refusal text
  instead of JSON), ``truncated`` (``finish_reason == "length"``), ``non_json``,
  ``schema_violation``, ``unknown_policy``, ``unknown_sub_policy``, or ``invalid_response`` (the
  body is not a chat completion). It is not retried inside the call: the collection loop of
  :mod:`tsmetrics.labeling` records it and retries the task later.
* Budget: before every request the :class:`LabelBudget` is checked; once ``max_labels`` units
  are labelled or ``max_cost_usd`` is spent (``prompt_tokens / 1000 * prompt_usd_per_1k +
  completion_tokens / 1000 * completion_usd_per_1k``, summed over all attempts) it raises
  :class:`LabelBudgetExceeded` without sending anything, so the task stays pending. The cost cap
  is checked before a request whose cost is not yet known: spending can exceed the cap by at most
  the cost of one request.

The API key is never logged, never part of an exception's text, of a ``repr`` or of an audit
record: any text taken from a server reply has it replaced by ``[redacted]``.

Concurrency
-----------
The labeler is sequential: one request at a time per call. It is safe to share between a few
threads (the budget and the audit list are locked), but the intended bound on concurrent
requests to the LLM server is an Airflow pool on the labeling task (``pool="llm_labeler"``,
slots = the number of concurrent requests the server or the rate limit allows).
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from tsmetrics.errors import CollectionStopped, InvalidLabelError, TsmetricsError
from tsmetrics.prompts import (
    RESPONSE_SCHEMA_NAME,
    PolicyText,
    PromptTemplate,
    load_template,
    render_messages,
)

__all__ = [
    "OUTPUT_REASONS",
    "REQUEST_REASONS",
    "RESPONSE_FORMATS",
    "AttemptRecord",
    "LLMConfig",
    "LLMLabelError",
    "LLMLabeler",
    "LLMRequestError",
    "LabelBudget",
    "LabelBudgetExceeded",
    "backoff_delay",
    "parse_answer",
    "parse_retry_after",
]

logger = logging.getLogger(__name__)

#: Reasons of a failed attempt whose HTTP exchange succeeded but whose answer is unusable.
OUTPUT_REASONS: tuple[str, ...] = (
    "refusal",
    "truncated",
    "non_json",
    "schema_violation",
    "unknown_policy",
    "unknown_sub_policy",
    "unknown_component",
    "invalid_response",
)
#: Reasons of a failed HTTP exchange; the first four are retried.
REQUEST_REASONS: tuple[str, ...] = (
    "rate_limited",
    "server_error",
    "timeout",
    "connection_error",
    "http_error",
)
_RETRYABLE = frozenset(REQUEST_REASONS[:4])
#: Values of :attr:`LLMConfig.response_format`.
RESPONSE_FORMATS: tuple[str, ...] = ("json_schema", "json_object")
_ANSWER_KEYS = ("is_violating", "sub_policy", "confidence", "rationale")
_REFUSAL_OPENINGS = (
    "i'm sorry",
    "i am sorry",
    "sorry, ",
    "i can't",
    "i cannot",
    "i can not",
    "i won't",
    "i will not",
    "i'm unable",
    "i am unable",
    "i'm not able",
    "i am not able",
    "as an ai",
)
_REDACTED = "[redacted]"
_MAX_DETAIL = 300


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class LLMLabelError(InvalidLabelError):
    """The server answered, but the answer is not a valid label (a failed attempt).

    ``reason`` is one of :data:`OUTPUT_REASONS`; ``record`` the attempt's audit record.
    """

    def __init__(self, reason: str, detail: str, record: AttemptRecord | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.record = record

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.detail, self.record))


class LLMRequestError(TsmetricsError, ConnectionError):
    """No usable HTTP reply: retries exhausted or a non-retryable status.

    ``reason`` is one of :data:`REQUEST_REASONS`; ``records`` the audit records of the attempts.
    """

    def __init__(self, reason: str, detail: str, records: Sequence[AttemptRecord] = ()) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.records = tuple(records)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.detail, self.records))


class LabelBudgetExceeded(CollectionStopped):
    """The day's label or cost cap is reached: stop dispatching; the task was not attempted."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

# Connection ``extra`` key -> LLMConfig field.
_EXTRA_FIELDS: dict[str, str] = {
    "model": "model",
    "timeout": "timeout_s",
    "max_retries": "max_retries",
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "response_format": "response_format",
    "include_images": "include_images",
    "backoff_base": "backoff_base_s",
    "backoff_max": "backoff_max_s",
    "max_retry_after": "max_retry_after_s",
    "prompt_usd_per_1k": "prompt_usd_per_1k",
    "completion_usd_per_1k": "completion_usd_per_1k",
    "max_labels": "max_labels",
    "max_cost_usd": "max_cost_usd",
}
# Keys of the Airflow OpenAI provider's ``openai_client_kwargs`` that are understood.
_CLIENT_KWARGS = {"base_url": "base_url", "timeout": "timeout_s", "max_retries": "max_retries"}


def _field_of(conn: Any, key: str) -> Any:
    if isinstance(conn, Mapping):
        return conn.get(key)
    return getattr(conn, key, None)


def _extra_of(conn: Any) -> dict[str, Any]:
    extra = getattr(conn, "extra_dejson", None) if not isinstance(conn, Mapping) else None
    if extra is None:
        extra = _field_of(conn, "extra")
    if extra is None or extra == "":
        return {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError:
            raise ValueError("conn.extra: expected a JSON object, got invalid JSON") from None
    if not isinstance(extra, Mapping):
        raise ValueError(f"conn.extra: expected a JSON object, got {type(extra).__name__}")
    return dict(extra)


def _number(name: str, value: Any, low: float, high: float = math.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{name}: expected a number in [{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class LLMConfig:
    """How to reach the LLM server and how to use it.

    Attributes
    ----------
    base_url : str
        API root, e.g. ``https://api.openai.com/v1``, ``http://vllm:8000/v1``,
        ``http://ollama:11434/v1``; requests go to ``{base_url}/chat/completions``.
    model : str
        Model name as the server knows it.
    api_key : str
        Bearer token; empty sends no ``Authorization`` header. Never shown by ``repr``.
    timeout_s : float
        Client timeout of one request (connect, read, write and pool), seconds.
    max_retries : int
        Retries after the first attempt on 429, 5xx, timeouts and connection errors.
    temperature : float
        Sampling temperature (0: the most likely answer; labels should be reproducible).
    max_tokens : int
        Completion token limit; an answer cut by it is a ``truncated`` failure.
    response_format : {"json_schema", "json_object"}
        ``json_schema``: strict structured output with :func:`tsmetrics.prompts.
        label_response_schema`; ``json_object``: JSON mode only, for servers without
        structured outputs (the schema is still in the prompt and checked here).
    include_images : bool
        Send Pin images as ``image_url`` parts (False for text-only models).
    backoff_base_s, backoff_max_s : float
        Exponential backoff: base and cap of the wait between retries, seconds.
    max_retry_after_s : float
        Longest ``Retry-After`` waited for; a longer one ends the call with ``rate_limited``.
    prompt_usd_per_1k, completion_usd_per_1k : float
        Prices per 1,000 prompt / completion tokens, for the cost cap.
    max_labels : int or None
        Cap on units labelled by one :class:`LabelBudget` (a day's run).
    max_cost_usd : float or None
        Cap on the cost of all attempts of one :class:`LabelBudget`.
    """

    base_url: str
    model: str
    api_key: str = field(default="", repr=False)
    timeout_s: float = 60.0
    max_retries: int = 4
    temperature: float = 0.0
    max_tokens: int = 1024
    response_format: str = "json_schema"
    include_images: bool = True
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 60.0
    prompt_usd_per_1k: float = 0.0
    completion_usd_per_1k: float = 0.0
    max_labels: int | None = None
    max_cost_usd: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.base_url, str) or not self.base_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError(f"base_url: expected an http(s) URL, got {self.base_url!r}")
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model: expected a non-empty string, got {self.model!r}")
        if not isinstance(self.api_key, str):
            raise ValueError("api_key: expected a string")
        _number("timeout_s", self.timeout_s, 1e-3)
        _number("temperature", self.temperature, 0.0, 2.0)
        _number("backoff_base_s", self.backoff_base_s, 0.0)
        _number("backoff_max_s", self.backoff_max_s, 0.0)
        _number("max_retry_after_s", self.max_retry_after_s, 0.0)
        _number("prompt_usd_per_1k", self.prompt_usd_per_1k, 0.0)
        _number("completion_usd_per_1k", self.completion_usd_per_1k, 0.0)
        for name in ("max_retries", "max_tokens"):
            value = getattr(self, name)
            low = 0 if name == "max_retries" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
        if self.response_format not in RESPONSE_FORMATS:
            raise ValueError(
                f"response_format: expected one of {RESPONSE_FORMATS}, got {self.response_format!r}"
            )
        if not isinstance(self.include_images, bool):
            raise ValueError(f"include_images: expected a boolean, got {self.include_images!r}")
        if self.max_labels is not None and (
            isinstance(self.max_labels, bool)
            or not isinstance(self.max_labels, int)
            or self.max_labels < 0
        ):
            raise ValueError(f"max_labels: expected an integer >= 0, got {self.max_labels!r}")
        if self.max_cost_usd is not None:
            _number("max_cost_usd", self.max_cost_usd, 0.0)

    @property
    def chat_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @classmethod
    def from_connection(cls, conn: Any) -> LLMConfig:
        """Build the configuration from an Airflow connection, or a plain dict of its fields.

        ``conn`` is an Airflow ``Connection`` (only its attributes are read; Airflow is not
        imported) or a mapping with the same keys. Mapping:

        * ``host`` -- the API root. Either a full URL (``http://vllm:8000/v1``; then ``port``
          and ``schema`` must be empty) or a host name, completed as
          ``{extra.scheme or "https"}://{host}[:{port}][/{schema}]``, so that the URI form
          ``openai://:KEY@api.openai.com:443/v1`` (host ``api.openai.com``, port 443, schema
          ``v1``) works. ``extra.openai_client_kwargs.base_url`` is used when ``host`` is empty.
        * ``password`` -- the API key (may be empty for servers without authentication).
        * ``login`` -- ignored.
        * ``extra`` (JSON) -- ``model`` (required), and optionally ``timeout``, ``max_retries``,
          ``temperature``, ``max_tokens``, ``response_format``, ``include_images``,
          ``backoff_base``, ``backoff_max``, ``max_retry_after``, ``prompt_usd_per_1k``,
          ``completion_usd_per_1k``, ``max_labels``, ``max_cost_usd``, ``scheme``; an
          ``openai_client_kwargs`` object (Airflow OpenAI provider) may give ``base_url``,
          ``timeout`` and ``max_retries``. Unknown keys are an error (typos would otherwise be
          silently ignored).
        """
        extra = _extra_of(conn)
        client_kwargs = extra.pop("openai_client_kwargs", None) or {}
        scheme = extra.pop("scheme", "https")
        if not isinstance(client_kwargs, Mapping):
            raise ValueError("conn.extra.openai_client_kwargs: expected a JSON object")
        unknown = sorted(set(extra) - set(_EXTRA_FIELDS)) + sorted(
            f"openai_client_kwargs.{k}" for k in set(client_kwargs) - set(_CLIENT_KWARGS)
        )
        if unknown:
            raise ValueError(
                f"conn.extra: unknown key {unknown[0]!r} (known: {sorted(_EXTRA_FIELDS)}, "
                "scheme, openai_client_kwargs)"
            )
        kwargs: dict[str, Any] = {
            _CLIENT_KWARGS[k]: v for k, v in client_kwargs.items() if k != "base_url"
        }
        kwargs.update({_EXTRA_FIELDS[k]: v for k, v in extra.items()})
        if "model" not in kwargs:
            raise ValueError("conn.extra: missing required key 'model'")
        host = _field_of(conn, "host") or ""
        port = _field_of(conn, "port")
        schema = _field_of(conn, "schema") or ""
        if not host:
            base_url = client_kwargs.get("base_url") or ""
            if not base_url:
                raise ValueError("conn.host: expected the API root URL or host name, got nothing")
        elif "://" in host:
            if port or schema:
                raise ValueError(
                    "conn.host: a full URL was given, so conn.port and conn.schema must be empty"
                )
            base_url = host
        else:
            base_url = f"{scheme}://{host}" + (f":{int(port)}" if port else "")
            base_url += f"/{schema.strip('/')}" if schema.strip("/") else ""
        return cls(
            base_url=str(base_url).rstrip("/"), api_key=_field_of(conn, "password") or "", **kwargs
        )


# --------------------------------------------------------------------------------------------
# Budget, audit record, retry helpers
# --------------------------------------------------------------------------------------------


@dataclass
class LabelBudget:
    """A day's cap on labelled units and spent dollars, shared by the calls that draw on it.

    ``labels_used`` / ``cost_used_usd`` may start from what earlier runs of the day used (e.g.
    summed from the stored audit records), so that a re-run does not get a fresh allowance.
    """

    max_labels: int | None = None
    max_cost_usd: float | None = None
    labels_used: int = 0
    cost_used_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def check(self) -> None:
        """Raise :class:`LabelBudgetExceeded` when a cap is reached."""
        with self._lock:
            if self.max_labels is not None and self.labels_used >= self.max_labels:
                raise LabelBudgetExceeded(
                    f"label cap reached: {self.labels_used} of max_labels={self.max_labels}"
                )
            if self.max_cost_usd is not None and self.cost_used_usd >= self.max_cost_usd:
                raise LabelBudgetExceeded(
                    f"cost cap reached: ${self.cost_used_usd:.4f} of "
                    f"max_cost_usd=${self.max_cost_usd:.4f}"
                )

    def charge(self, cost_usd: float) -> None:
        with self._lock:
            self.cost_used_usd += cost_usd

    def count_label(self) -> None:
        with self._lock:
            self.labels_used += 1


@dataclass(frozen=True)
class AttemptRecord:
    """Audit record of one HTTP attempt (successful or not).

    ``raw_response`` is the response body as received (API key redacted), ``None`` when no
    response arrived; ``error_reason`` is ``None`` for a usable answer, else one of
    :data:`OUTPUT_REASONS` or :data:`REQUEST_REASONS`; ``next_delay_s`` the wait before the
    next attempt when one follows. ``usage_estimated`` is True when the server sent no
    ``usage`` and the tokens were estimated (prompt: request bytes / 4; completion:
    ``max_tokens``) for the cost cap.
    """

    labeler_id: str
    unit_id: str | None
    model: str
    prompt_version: str
    attempt: int
    started_at: str
    latency_ms: float
    http_status: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    usage_estimated: bool
    cost_usd: float
    finish_reason: str | None
    raw_response: str | None
    error_reason: str | None
    error_detail: str | None
    retry_after_s: float | None
    next_delay_s: float | None

    @property
    def ok(self) -> bool:
        return self.error_reason is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def backoff_delay(retry: int, base_s: float, cap_s: float, u: float) -> float:
    """Wait before retry ``retry`` (0-based): ``min(cap, base * 2**retry) * (1 + u) / 2``.

    Exponential backoff with "equal jitter": uniformly between half and all of the exponential
    step, given ``u`` in [0, 1). Never more than ``cap_s``.
    """
    if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
        raise ValueError(f"retry: expected an integer >= 0, got {retry!r}")
    _number("base_s", base_s, 0.0)
    _number("cap_s", cap_s, 0.0)
    _number("u", u, 0.0, 1.0)
    step = min(cap_s, base_s * 2.0 ** min(retry, 64))
    return step * (1.0 + u) / 2.0


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    ``None`` when absent or unreadable; never negative. ``headers`` lookup must be
    case-insensitive (``httpx.Headers`` is).
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000.0
            if math.isfinite(value):
                return max(0.0, value)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
        return max(0.0, value) if math.isfinite(value) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# --------------------------------------------------------------------------------------------
# Answer parsing
# --------------------------------------------------------------------------------------------


def _looks_like_refusal(text: str) -> bool:
    return text.strip().lower().replace("\u2019", "'").startswith(_REFUSAL_OPENINGS)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


def parse_answer(
    content: str | None,
    policies: Sequence[PolicyText],
    component_ids: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Check an answer's text against :func:`tsmetrics.prompts.label_response_schema`.

    Returns one answer per policy, in the order of ``policies``: ``policy``, ``is_violating``,
    ``sub_policy``, ``confidence``, ``rationale``. Raises :class:`LLMLabelError` with reason
    ``non_json`` (empty, not JSON, or not an object), ``refusal`` (refusal text instead of JSON),
    ``unknown_policy`` (a key that is not a requested policy), ``unknown_sub_policy`` (a
    sub-policy the policy does not have), ``unknown_component`` (with ``component_ids``: a
    violating component id that is not one of the unit's) or ``schema_violation`` (anything else
    the schema forbids, a sub-policy given with a non-violating verdict, and component verdicts
    that contradict the unit verdict: a unit violates iff some component does). With
    ``component_ids`` every answer carries ``violating_components``.
    """
    keys = _ANSWER_KEYS if component_ids is None else (*_ANSWER_KEYS, "violating_components")
    if content is None or not content.strip():
        raise LLMLabelError("non_json", "empty answer")
    try:
        data = json.loads(content)
    except json.JSONDecodeError as error:
        if _looks_like_refusal(content):
            raise LLMLabelError("refusal", f"refusal text: {_short(content.strip())!r}") from None
        raise LLMLabelError("non_json", f"{error.msg} at char {error.pos}") from None
    if not isinstance(data, dict):
        raise LLMLabelError("non_json", f"expected a JSON object, got {type(data).__name__}")
    by_id = {p.id: p for p in policies}
    unknown = [key for key in data if key not in by_id]
    if unknown:
        raise LLMLabelError("unknown_policy", f"answer for unknown policy {unknown[0]!r}")
    answers = []
    for policy in policies:
        if policy.id not in data:
            raise LLMLabelError("schema_violation", f"no answer for policy {policy.id!r}")
        entry = data[policy.id]
        where = f"answer for {policy.id!r}"
        if not isinstance(entry, dict):
            raise LLMLabelError("schema_violation", f"{where}: expected an object, got {entry!r}")
        missing = [k for k in keys if k not in entry]
        if missing:
            raise LLMLabelError("schema_violation", f"{where}: missing key {missing[0]!r}")
        extra = [k for k in entry if k not in keys]
        if extra:
            raise LLMLabelError("schema_violation", f"{where}: unexpected key {extra[0]!r}")
        verdict = entry["is_violating"]
        if not isinstance(verdict, bool):
            raise LLMLabelError(
                "schema_violation", f"{where}: is_violating must be true or false, got {verdict!r}"
            )
        sub_policy = entry["sub_policy"]
        if sub_policy is not None:
            if not isinstance(sub_policy, str):
                raise LLMLabelError(
                    "schema_violation",
                    f"{where}: sub_policy must be a string or null, got {sub_policy!r}",
                )
            if sub_policy not in policy.sub_policy_ids:
                raise LLMLabelError(
                    "unknown_sub_policy",
                    f"{where}: sub_policy {sub_policy!r} is not one of "
                    f"{list(policy.sub_policy_ids)}",
                )
            if not verdict:
                raise LLMLabelError(
                    "schema_violation",
                    f"{where}: sub_policy {sub_policy!r} given with is_violating false",
                )
        confidence = entry["confidence"]
        if (
            isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
            or not 0.0 <= confidence <= 1.0
        ):
            raise LLMLabelError(
                "schema_violation", f"{where}: confidence must be in [0, 1], got {confidence!r}"
            )
        rationale = entry["rationale"]
        if not isinstance(rationale, str):
            raise LLMLabelError(
                "schema_violation", f"{where}: rationale must be a string, got {rationale!r}"
            )
        answer: dict[str, Any] = {
            "policy": policy.id,
            "is_violating": verdict,
            "sub_policy": sub_policy,
            "confidence": float(confidence),
            "rationale": rationale,
        }
        if component_ids is not None:
            answer["violating_components"] = _component_verdicts(
                entry["violating_components"], verdict, component_ids, where
            )
        answers.append(answer)
    return answers


def _component_verdicts(
    value: Any, verdict: bool, component_ids: Sequence[str], where: str
) -> list[str]:
    """Validated ``violating_components``: a list of distinct ids of the unit's components,
    non-empty exactly when the unit verdict is violating."""
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise LLMLabelError(
            "schema_violation",
            f"{where}: violating_components must be a list of ids, got {value!r}",
        )
    unknown = [c for c in value if c not in component_ids]
    if unknown:
        raise LLMLabelError(
            "unknown_component",
            f"{where}: violating component {unknown[0]!r} is not one of {list(component_ids)}",
        )
    if len(set(value)) != len(value):
        raise LLMLabelError("schema_violation", f"{where}: violating_components repeats an id")
    if bool(value) != verdict:
        raise LLMLabelError(
            "schema_violation",
            f"{where}: is_violating {verdict} contradicts violating_components {value!r}",
        )
    return list(value)


# --------------------------------------------------------------------------------------------
# The labeler
# --------------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    record: AttemptRecord
    answers: list[dict[str, Any]] | None = None
    error: LLMLabelError | None = None


class LLMLabeler:
    """Labels units with an OpenAI-compatible chat-completions server.

    Parameters
    ----------
    labeler_id : str
        Id recorded with every label (e.g. ``"llm_gpt4o_v1"``).
    config : LLMConfig
        Server, model and limits (see :meth:`LLMConfig.from_connection`).
    policy_texts : mapping of str to PolicyText
        Written policies (:func:`tsmetrics.prompts.load_policies`); every policy asked for in
        :meth:`label` must be here.
    template : PromptTemplate, optional
        Prompt template; ``label_unit_v2.j2`` by default.
    budget : LabelBudget, optional
        The day's caps; by default one built from ``config.max_labels`` / ``max_cost_usd``.
    on_attempt : callable, optional
        Called with every :class:`AttemptRecord` (e.g. to store it); the records are also kept
        in :attr:`attempts`.
    seed : int, optional
        Seed of the backoff jitter.
    transport : httpx.BaseTransport, optional
        Passed to ``httpx.Client`` (e.g. to add proxies or mTLS); default: httpx's.
    """

    def __init__(
        self,
        labeler_id: str,
        config: LLMConfig,
        policy_texts: Mapping[str, PolicyText],
        template: PromptTemplate | None = None,
        *,
        budget: LabelBudget | None = None,
        on_attempt: Callable[[AttemptRecord], None] | None = None,
        seed: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not isinstance(labeler_id, str) or not labeler_id:
            raise ValueError(f"labeler_id: expected a non-empty string, got {labeler_id!r}")
        if not isinstance(config, LLMConfig):
            raise ValueError(f"config: expected an LLMConfig, got {type(config).__name__}")
        self._labeler_id = labeler_id
        self.config = config
        self.policy_texts = dict(policy_texts)
        self.template = template if template is not None else load_template()
        self.budget = (
            budget if budget is not None else LabelBudget(config.max_labels, config.max_cost_usd)
        )
        self.on_attempt = on_attempt
        self.attempts: list[AttemptRecord] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        headers = {"Accept": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(config.timeout_s), transport=transport
        )

    @property
    def labeler_id(self) -> str:
        return self._labeler_id

    def __repr__(self) -> str:
        return f"LLMLabeler({self._labeler_id!r}, model={self.config.model!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LLMLabeler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- helpers ------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        key = self.config.api_key
        return text.replace(key, _REDACTED) if key else text

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.config.response_format == "json_object":
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {"name": RESPONSE_SCHEMA_NAME, "strict": True, "schema": schema},
        }

    def _cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens / 1000.0 * self.config.prompt_usd_per_1k
            + completion_tokens / 1000.0 * self.config.completion_usd_per_1k
        )

    def _texts(self, policies: Sequence[str]) -> list[PolicyText]:
        if isinstance(policies, str) or not policies:
            raise ValueError(f"policies: expected a non-empty list of policy ids, got {policies!r}")
        missing = [p for p in policies if p not in self.policy_texts]
        if missing:
            raise ValueError(f"policies: no policy text for {missing[0]!r}")
        return [self.policy_texts[p] for p in policies]

    # ---- one attempt --------------------------------------------------------------------

    def _attempt(
        self,
        body: dict[str, Any],
        texts: Sequence[PolicyText],
        unit_id: str | None,
        version: str,
        attempt: int,
        component_ids: Sequence[str] | None = None,
    ) -> _Outcome:
        started = datetime.now(UTC).isoformat()
        common: dict[str, Any] = {
            "labeler_id": self._labeler_id,
            "unit_id": unit_id,
            "model": self.config.model,
            "prompt_version": version,
            "attempt": attempt,
            "started_at": started,
            "retry_after_s": None,
            "next_delay_s": None,
        }
        empty: dict[str, Any] = {
            "prompt_tokens": None,
            "completion_tokens": None,
            "usage_estimated": False,
            "cost_usd": 0.0,
            "finish_reason": None,
        }
        t0 = time.perf_counter()
        try:
            response = self._client.post(self.config.chat_url, json=body)
        except httpx.TimeoutException as error:
            latency = (time.perf_counter() - t0) * 1000.0
            record = AttemptRecord(
                **common,
                **empty,
                latency_ms=latency,
                http_status=None,
                raw_response=None,
                error_reason="timeout",
                error_detail=self._redact(f"{type(error).__name__} after {latency:.0f} ms"),
            )
            return _Outcome(record)
        except httpx.TransportError as error:
            latency = (time.perf_counter() - t0) * 1000.0
            record = AttemptRecord(
                **common,
                **empty,
                latency_ms=latency,
                http_status=None,
                raw_response=None,
                error_reason="connection_error",
                error_detail=self._redact(f"{type(error).__name__}: {error}"),
            )
            return _Outcome(record)
        latency = (time.perf_counter() - t0) * 1000.0
        raw = self._redact(response.text)
        status = response.status_code
        if status != 200:
            reason = (
                "rate_limited"
                if status == 429
                else "server_error"
                if status >= 500
                else "http_error"
            )
            record = AttemptRecord(
                **{**common, "retry_after_s": parse_retry_after(response.headers)},
                **empty,
                latency_ms=latency,
                http_status=status,
                raw_response=raw,
                error_reason=reason,
                error_detail=f"HTTP {status}: {_short(raw)}",
            )
            return _Outcome(record)
        return self._read_completion(common, latency, raw, texts, body, component_ids)

    def _read_completion(
        self,
        common: dict[str, Any],
        latency: float,
        raw: str,
        texts: Sequence[PolicyText],
        body: dict[str, Any],
        component_ids: Sequence[str] | None = None,
    ) -> _Outcome:
        finish: str | None = None
        usage: Any = None
        problem: LLMLabelError | None = None
        answers: list[dict[str, Any]] | None = None
        try:
            payload = json.loads(raw)
            choice = payload["choices"][0]
            message = choice["message"]
            finish = choice.get("finish_reason")
            usage = payload.get("usage")
            if not isinstance(message, dict):
                raise TypeError("message is not an object")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
            problem = LLMLabelError("invalid_response", f"not a chat completion: {error!r}")
            message = {}
        if problem is None:
            content = message.get("content")
            if message.get("refusal"):
                problem = LLMLabelError("refusal", f"refusal: {_short(str(message['refusal']))!r}")
            elif finish == "content_filter":
                problem = LLMLabelError("refusal", "finish_reason content_filter")
            elif finish == "length":
                problem = LLMLabelError(
                    "truncated", f"finish_reason length (max_tokens={self.config.max_tokens})"
                )
            elif content is not None and not isinstance(content, str):
                problem = LLMLabelError("invalid_response", "message.content is not a string")
            else:
                try:
                    answers = parse_answer(content, texts, component_ids)
                except LLMLabelError as error:
                    problem = error
        prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        completion_tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        estimated = not (isinstance(prompt_tokens, int) and isinstance(completion_tokens, int))
        if estimated:
            prompt_tokens = math.ceil(len(json.dumps(body)) / 4)
            completion_tokens = self.config.max_tokens
        cost = self._cost(int(prompt_tokens or 0), int(completion_tokens or 0))
        record = AttemptRecord(
            **common,
            latency_ms=latency,
            http_status=200,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            usage_estimated=estimated,
            cost_usd=cost,
            finish_reason=finish,
            raw_response=raw,
            error_reason=problem.reason if problem else None,
            error_detail=self._redact(problem.detail) if problem else None,
        )
        if problem is not None:
            return _Outcome(
                record, error=LLMLabelError(problem.reason, record.error_detail or "", record)
            )
        return _Outcome(record, answers=answers)

    def _keep(self, record: AttemptRecord) -> None:
        with self._lock:
            self.attempts.append(record)
        if self.on_attempt is not None:
            self.on_attempt(record)

    # ---- the Labeler protocol -----------------------------------------------------------

    def label(self, record: Mapping[str, Any], policies: Sequence[str]) -> list[dict[str, Any]]:
        """Label one unified unit record under ``policies``.

        Returns one answer per policy (``policy``, ``is_violating``, ``sub_policy``,
        ``confidence``, ``rationale``, ``prompt_version``, ``model``), ready for
        :func:`tsmetrics.labeling.validate_answers`.

        Raises
        ------
        LabelBudgetExceeded
            Before sending anything, when the budget's cap is reached.
        LLMLabelError
            The answer is unusable (see :data:`OUTPUT_REASONS`); one failed attempt.
        LLMRequestError
            No usable HTTP reply after the retries, or a non-retryable HTTP status.
        ValueError
            Bad arguments (no policy text for a policy, malformed record).
        """
        texts = self._texts(policies)
        rendered = render_messages(record, texts, self.template, self.config.include_images)
        component_ids = [str(c["component_id"]) for c in record["components"]]
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": list(rendered.messages),
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            "response_format": self._response_format(rendered.response_schema),
        }
        unit_id = None if record.get("unit_id") is None else str(record["unit_id"])
        version = rendered.prompt_version
        records: list[AttemptRecord] = []
        for attempt in range(1, self.config.max_retries + 2):
            self.budget.check()
            outcome = self._attempt(body, texts, unit_id, version, attempt, component_ids)
            rec = outcome.record
            self.budget.charge(rec.cost_usd)
            if outcome.answers is not None:
                self.budget.count_label()
                self._keep(rec)
                return [
                    {**a, "prompt_version": version, "model": self.config.model}
                    for a in outcome.answers
                ]
            if outcome.error is not None:
                self._keep(rec)
                logger.warning(
                    "LLM labeler %s: unusable answer for unit %s (%s): %s",
                    self._labeler_id,
                    unit_id,
                    rec.error_reason,
                    rec.error_detail,
                )
                raise outcome.error
            reason = rec.error_reason or "http_error"
            retries_left = self.config.max_retries + 1 - attempt
            too_long = (
                rec.retry_after_s is not None and rec.retry_after_s > self.config.max_retry_after_s
            )
            if reason not in _RETRYABLE or retries_left <= 0 or too_long:
                records.append(rec)
                self._keep(rec)
                why = (
                    f"Retry-After {rec.retry_after_s:.1f}s exceeds max_retry_after_s"
                    if too_long
                    else "not retryable"
                    if reason not in _RETRYABLE
                    else f"gave up after {attempt} attempts"
                )
                logger.error(
                    "LLM labeler %s: request for unit %s failed (%s, HTTP %s): %s",
                    self._labeler_id,
                    unit_id,
                    reason,
                    rec.http_status,
                    why,
                )
                raise LLMRequestError(reason, f"{why}; last: {rec.error_detail}", records)
            delay = (
                rec.retry_after_s
                if rec.retry_after_s is not None
                else backoff_delay(
                    attempt - 1,
                    self.config.backoff_base_s,
                    self.config.backoff_max_s,
                    self._rng.random(),
                )
            )
            rec = AttemptRecord(**{**rec.to_dict(), "next_delay_s": delay})
            records.append(rec)
            self._keep(rec)
            logger.warning(
                "LLM labeler %s: attempt %d for unit %s failed (%s, HTTP %s); retrying in %.2fs",
                self._labeler_id,
                attempt,
                unit_id,
                reason,
                rec.http_status,
                delay,
            )
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover
