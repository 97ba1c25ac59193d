"""A real local HTTP server speaking the OpenAI chat-completions protocol, for tests.

``POST /v1/chat/completions`` with ``Authorization: Bearer <api_key>`` and a JSON body. The
request is validated like OpenAI does (model, messages and their content parts, temperature,
max_tokens, response_format; a strict json_schema must list every property as required and
forbid additional ones; json_object needs the word "json" in the messages) and answered with a
``chat.completion`` object (``id``, ``object``, ``created``, ``model``, ``choices[0].message``
with ``content`` and ``refusal``, ``finish_reason``, ``usage``). Invalid requests get OpenAI-style
error bodies (400 ``invalid_request_error``, 401 ``invalid_api_key``, 404 ``model_not_found``).

Behaviour is scripted per request with :meth:`OpenAIServer.script` (a queue; GOOD when empty):

* ``GOOD``: the "model" reads the ``[[violates:policy/sub]]`` tokens that
  :mod:`tsmetrics.simulate` writes into unit texts (``VIOLATION_TOKEN_RE``) from the user
  message and answers every requested policy (the json_schema's properties, or ``policies``
  in json_object mode) with a schema-conforming object;
* ``UNKNOWN_COMPONENT`` (a violating component id the unit does not have),
* ``MALFORMED_JSON``, ``UNKNOWN_POLICY`` (an extra category), ``UNKNOWN_SUB_POLICY``,
  ``SCHEMA_VIOLATION`` (confidence 1.7), ``REFUSAL`` (``message.refusal`` set, content null),
  ``REFUSAL_TEXT`` (an apology instead of JSON), ``TRUNCATED`` (content cut,
  ``finish_reason`` "length");
* ``RATE_LIMITED`` (429 with ``Retry-After`` and/or ``retry-after-ms``), ``SERVER_ERROR`` (500),
  ``SLOW`` (sleeps ``delay_s`` before a good answer), ``ECHO_AUTH`` (401 whose message quotes the
  Authorization header it received, as some servers do).

Every request is recorded (headers, parsed body, arrival time, status sent, behaviour used).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tsmetrics.simulate import VIOLATION_TOKEN_RE

GOOD = "good"
MALFORMED_JSON = "malformed_json"
UNKNOWN_POLICY = "unknown_policy"
UNKNOWN_SUB_POLICY = "unknown_sub_policy"
UNKNOWN_COMPONENT = "unknown_component"
SCHEMA_VIOLATION = "schema_violation"
REFUSAL = "refusal"
REFUSAL_TEXT = "refusal_text"
TRUNCATED = "truncated"
RATE_LIMITED = "rate_limited"
SERVER_ERROR = "server_error"
SLOW = "slow"
ECHO_AUTH = "echo_auth"

CHAT_PATH = "/v1/chat/completions"
_SCHEMA_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ROLES = {"system", "developer", "user", "assistant"}


@dataclass(frozen=True)
class Step:
    """One scripted reply."""

    kind: str = GOOD
    retry_after: str | None = None  # Retry-After header value (RATE_LIMITED)
    retry_after_ms: str | None = None  # retry-after-ms header value (RATE_LIMITED)
    delay_s: float = 0.0  # SLOW: sleep before answering


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float  # time.monotonic()
    status: int = 0
    kind: str = ""


class RequestInvalid(Exception):
    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


@dataclass
class OpenAIServer:
    host: str
    port: int
    model: str = "test-labeler-1"
    api_key: str = "sk-test-0123456789abcdef"
    supports_json_schema: bool = True
    policies: dict[str, list[str]] = field(default_factory=dict)  # for json_object mode
    requests: list[RecordedRequest] = field(default_factory=list)
    _script: list[Step] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def script(self, *steps: Step | str) -> None:
        """Queue replies for the next requests (strings are behaviour kinds)."""
        with self._lock:
            self._script.extend(s if isinstance(s, Step) else Step(s) for s in steps)

    def next_step(self) -> Step:
        with self._lock:
            return self._script.pop(0) if self._script else Step(GOOD)

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == CHAT_PATH]

    def next_id(self) -> str:
        with self._lock:
            return f"chatcmpl-test{next(self._ids):06d}"


# ---- request validation ----------------------------------------------------------------


def _check_strict_schema(schema: Any, where: str) -> None:
    """OpenAI strict mode: every object lists all properties as required, no additional ones."""
    if isinstance(schema, list):
        for k, item in enumerate(schema):
            _check_strict_schema(item, f"{where}[{k}]")
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "object":
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            raise RequestInvalid(
                400,
                f"Invalid schema for response_format: In context={where}, "
                "'additionalProperties' is required to be supplied and to be false.",
                "invalid_json_schema",
                "response_format",
            )
        if sorted(schema.get("required", [])) != sorted(props):
            raise RequestInvalid(
                400,
                f"Invalid schema for response_format: In context={where}, 'required' is "
                "required to be supplied and to be an array including every key in properties.",
                "invalid_json_schema",
                "response_format",
            )
    for key, value in schema.items():
        if isinstance(value, dict | list):
            _check_strict_schema(value, f"{where}.{key}")


def _message_texts(messages: Sequence[Mapping[str, Any]], role: str | None = None) -> list[str]:
    texts = []
    for message in messages:
        if role is not None and message["role"] != role:
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p["text"] for p in content if p.get("type") == "text")
    return texts


def validate_request(server: OpenAIServer, headers: Mapping[str, str], body: Any) -> None:
    if headers.get("authorization") != f"Bearer {server.api_key}":
        raise RequestInvalid(401, "Incorrect API key provided.", "invalid_api_key")
    if not isinstance(body, dict):
        raise RequestInvalid(400, "The request body must be a JSON object.", "invalid_body")
    if body.get("model") != server.model:
        raise RequestInvalid(
            404, f"The model `{body.get('model')}` does not exist.", "model_not_found", "model"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestInvalid(
            400, "'messages' must be a non-empty array.", "invalid_value", "messages"
        )
    for k, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise RequestInvalid(
                400, f"Invalid role in messages[{k}].", "invalid_value", "messages"
            )
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list) or not content:
            raise RequestInvalid(
                400, f"Invalid content in messages[{k}].", "invalid_value", "messages"
            )
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            ok = (kind == "text" and isinstance(part.get("text"), str)) or (
                kind == "image_url"
                and isinstance(part.get("image_url"), dict)
                and isinstance(part["image_url"].get("url"), str)
                and message["role"] == "user"
            )
            if not ok:
                raise RequestInvalid(
                    400, f"Invalid content part in messages[{k}]: {part!r}.", "invalid_value"
                )
    temperature = body.get("temperature", 1)
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise RequestInvalid(400, "Invalid 'temperature'.", "invalid_type", "temperature")
    if not 0 <= temperature <= 2:
        raise RequestInvalid(400, "Invalid 'temperature'.", "invalid_value", "temperature")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise RequestInvalid(400, "Invalid 'max_tokens'.", "invalid_value", "max_tokens")
    fmt = body.get("response_format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") not in {"text", "json_object", "json_schema"}:
        raise RequestInvalid(400, "Invalid 'response_format'.", "invalid_value", "response_format")
    if fmt["type"] == "json_object":
        if not any("json" in t.lower() for t in _message_texts(messages)):
            raise RequestInvalid(
                400,
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'.",
                "invalid_value",
                "messages",
            )
    if fmt["type"] == "json_schema":
        if not server.supports_json_schema:
            raise RequestInvalid(
                400, "response_format type 'json_schema' is not supported.", "unsupported"
            )
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not _SCHEMA_NAME_RE.match(str(spec.get("name", ""))):
            raise RequestInvalid(
                400, "Invalid 'response_format.json_schema.name'.", "invalid_value"
            )
        if not isinstance(spec.get("schema"), dict):
            raise RequestInvalid(400, "Missing 'response_format.json_schema.schema'.", "missing")
        if spec.get("strict"):
            _check_strict_schema(spec["schema"], "root")


# ---- the "model" -------------------------------------------------------------------------


def requested_policies(server: OpenAIServer, body: Mapping[str, Any]) -> dict[str, list[str]]:
    """Policy -> sub-policies the request asks for (from the json_schema, else the server's)."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        props = fmt["json_schema"]["schema"]["properties"]
        out = {}
        for policy, spec in props.items():
            options = spec["properties"]["sub_policy"].get("anyOf", [])
            enums = [o["enum"] for o in options if "enum" in o]
            out[policy] = list(enums[0]) if enums else []
        return out
    return {p: list(s) for p, s in server.policies.items()}


def _component_tokens(body: Mapping[str, Any]) -> dict[str, list[str]]:
    """Policy -> ids of the components whose text carries its token (the unit's data lines are
    one JSON object per component)."""
    carriers: dict[str, list[str]] = {}
    for text in _message_texts(body["messages"], role="user"):
        for line in text.splitlines():
            try:
                shown = json.loads(line)
            except ValueError:
                continue
            if isinstance(shown, dict) and "component_id" in shown:
                for policy, _ in VIOLATION_TOKEN_RE.findall(str(shown.get("text") or "")):
                    if shown["component_id"] not in carriers.setdefault(policy, []):
                        carriers[policy].append(shown["component_id"])
    return carriers


def _asks_for_components(body: Mapping[str, Any]) -> bool:
    fmt = body.get("response_format") or {}
    if fmt.get("type") != "json_schema":
        return "violating_components" in json.dumps(body["messages"])
    props = fmt["json_schema"]["schema"]["properties"]
    return any("violating_components" in spec["properties"] for spec in props.values())


def good_answer(server: OpenAIServer, body: Mapping[str, Any]) -> dict[str, Any]:
    """Verdicts from the simulator's violation tokens in the user message's texts (and the
    violating components, when the schema asks for them)."""
    found: dict[str, str] = {}
    for text in _message_texts(body["messages"], role="user"):
        for policy, sub in VIOLATION_TOKEN_RE.findall(text):
            found.setdefault(policy, sub)
    carriers = _component_tokens(body) if _asks_for_components(body) else None
    answer = {}
    for policy in requested_policies(server, body):
        violating = policy in found
        answer[policy] = {
            "is_violating": violating,
            "sub_policy": found[policy] if violating else None,
            "confidence": 0.97 if violating else 0.99,
            "rationale": (
                f"A component carries a {policy} violation marker."
                if violating
                else f"Nothing in the unit matches the {policy} policy."
            ),
        }
        if carriers is not None:
            answer[policy]["violating_components"] = carriers.get(policy, [])
    return answer


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def completion_for(server: OpenAIServer, body: Mapping[str, Any], step: Step) -> dict[str, Any]:
    answer = good_answer(server, body)
    first = next(iter(answer))
    finish = "stop"
    refusal: str | None = None
    content: str | None
    if step.kind == MALFORMED_JSON:
        content = json.dumps(answer)[:-1] + ', "adult": {"is_violating": tru'
    elif step.kind == UNKNOWN_POLICY:
        answer["spam"] = {
            "is_violating": True,
            "sub_policy": None,
            "confidence": 0.9,
            "rationale": "Looks like spam.",
        }
        content = json.dumps(answer)
    elif step.kind == UNKNOWN_SUB_POLICY:
        answer[first] = {**answer[first], "is_violating": True, "sub_policy": "gore"}
        content = json.dumps(answer)
    elif step.kind == UNKNOWN_COMPONENT:
        answer[first] = {
            **answer[first],
            "is_violating": True,
            "sub_policy": None,
            "violating_components": ["p99"],
        }
        content = json.dumps(answer)
    elif step.kind == SCHEMA_VIOLATION:
        answer[first] = {**answer[first], "confidence": 1.7}
        content = json.dumps(answer)
    elif step.kind == REFUSAL:
        content = None
        refusal = "I'm sorry, I can't assist with that request."
    elif step.kind == REFUSAL_TEXT:
        content = "I'm sorry, but I can't help with classifying this content."
    elif step.kind == TRUNCATED:
        content = json.dumps(answer)[:40]
        finish = "length"
    else:
        content = json.dumps(answer)
    prompt_tokens = _tokens(json.dumps(body["messages"]))
    completion_tokens = (
        int(body.get("max_tokens") or 16) if finish == "length" else _tokens(content or "")
    )
    return {
        "id": server.next_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": server.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _error_body(message: str, kind: str, code: str | None, param: str | None = None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}
    ).encode()


def _handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to deliver

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                body: Any = json.loads(raw or b"null")
            except json.JSONDecodeError:
                body = None
            request = RecordedRequest(self.path, headers, body, time.monotonic())
            server.record(request)
            if self.path != CHAT_PATH:
                request.status = 404
                self._send(404, _error_body("Not found.", "invalid_request_error", None))
                return
            try:
                validate_request(server, headers, body)
            except RequestInvalid as invalid:
                request.status, request.kind = invalid.status, "invalid"
                kind = "invalid_request_error"
                self._send(
                    invalid.status, _error_body(invalid.message, kind, invalid.code, invalid.param)
                )
                return
            step = server.next_step()
            request.kind = step.kind
            if step.kind == RATE_LIMITED:
                extra = {}
                if step.retry_after is not None:
                    extra["Retry-After"] = step.retry_after
                if step.retry_after_ms is not None:
                    extra["retry-after-ms"] = step.retry_after_ms
                request.status = 429
                message = "Rate limit reached for requests. Please try again later."
                self._send(429, _error_body(message, "requests", "rate_limit_exceeded"), extra)
                return
            if step.kind == SERVER_ERROR:
                request.status = 500
                message = "The server had an error while processing your request."
                self._send(500, _error_body(message, "server_error", None))
                return
            if step.kind == ECHO_AUTH:
                request.status = 401
                message = f"Invalid credentials in header: {headers.get('authorization')}"
                self._send(401, _error_body(message, "invalid_request_error", "invalid_api_key"))
                return
            if step.kind == SLOW:
                time.sleep(step.delay_s)
            request.status = 200
            self._send(200, json.dumps(completion_for(server, body, step)).encode())

        def log_message(self, *args: Any) -> None:
            return

    return Handler


@contextmanager
def running_openai_server(**kwargs: Any) -> Iterator[OpenAIServer]:
    """Start a chat-completions server on 127.0.0.1 (a free port); stop it on exit."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = OpenAIServer("127.0.0.1", httpd.server_address[1], **kwargs)
    httpd.RequestHandlerClass = _handler(state)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
