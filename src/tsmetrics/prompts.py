"""Versioned policy texts and the prompt that asks an LLM to label one unit.

Policy texts
------------
One YAML file per policy in ``src/tsmetrics/policy_texts/`` (``<id>.yaml``) holds the written
policy a labeler applies: ``id``, ``version`` (a positive integer, bumped on every change that
the policy team approves), ``title``, ``definition``, ``sub_policies`` (``id`` + ``definition``
each), ``positive_examples`` and ``negative_examples``. :func:`load_policies` validates every
file (errors name the file and the field) and returns frozen :class:`PolicyText` objects; given
the run configuration's policy -> sub-policy map it also checks that both agree.

Prompt
------
A template (``src/tsmetrics/prompt_templates/label_unit_v2.j2``) is rendered in a sandboxed Jinja2
environment with ``StrictUndefined`` and no autoescaping. It defines three blocks: ``system``
(the policies, the rules and the answer format), ``user`` (the unit) and ``image_caption`` (the
text part placed before each Pin image). :func:`render_messages` returns OpenAI chat messages:
the system message, then one user message whose content parts are the unit's text and, per Pin
with an image, a caption part followed by an ``image_url`` part.

The unit's texts are data, never instructions: the user block places them between the lines
``<unit_data>`` and ``</unit_data>``, one JSON object per component, with every string a JSON
literal in which ``<``, ``>`` and ``&`` are written as ``\\u003c``, ``\\u003e``, ``\\u0026``. No
unit text can therefore close the data block or start a line of its own, and each line decodes
back to exactly the component it came from.

Versioning
----------
``prompt_version = "<template name>-<12 hex digits>"``, the digits being the start of the
SHA-256 of the template's text and, in prompt order, each policy's id, version and full text
(definition, sub-policies and examples). Editing the template or any policy text therefore
yields a new version, while the unit being labeled does not change it. Every label an LLM
labeler gives records the ``prompt_version`` it was produced under (see
:mod:`tsmetrics.llm_labeler`). Templates are single files (``include``/``import`` are disabled),
so the hash covers everything that shapes the prompt.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from tsmetrics.errors import TsmetricsError

__all__ = [
    "DEFAULT_TEMPLATE",
    "DATA_CLOSE",
    "DATA_OPEN",
    "PolicyText",
    "PolicyTextError",
    "PromptTemplate",
    "PromptTemplateError",
    "RESPONSE_SCHEMA_NAME",
    "RenderedPrompt",
    "SubPolicy",
    "default_policy_dir",
    "default_template_dir",
    "label_response_schema",
    "load_policies",
    "load_template",
    "parse_policy",
    "prompt_version",
    "render_messages",
]

DEFAULT_TEMPLATE = "label_unit_v2.j2"
#: Lines that open and close the unit's data in the user message.
DATA_OPEN = "<unit_data>"
DATA_CLOSE = "</unit_data>"
#: Name of the structured-output schema sent as ``response_format.json_schema.name``.
RESPONSE_SCHEMA_NAME = "unit_labels"

_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_POLICY_FIELDS = (
    "id",
    "version",
    "title",
    "definition",
    "sub_policies",
    "positive_examples",
    "negative_examples",
)
_SUB_POLICY_FIELDS = ("id", "definition")
_REQUIRED_BLOCKS = ("system", "user", "image_caption")
# Characters escaped in unit data: delimiters cannot appear, and each component stays one line
# (json.dumps with ensure_ascii=False leaves U+2028/U+2029 raw; splitlines() would break on them).
_DATA_ESCAPES = (
    ("&", "\\u0026"),
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
    ("\x85", "\\u0085"),
)


class PolicyTextError(TsmetricsError, ValueError):
    """A policy text file is missing, malformed, or disagrees with the run configuration."""


class PromptTemplateError(TsmetricsError, ValueError):
    """A prompt template cannot be loaded or lacks one of the required blocks."""


@dataclass(frozen=True)
class SubPolicy:
    """One sub-policy: its id (as in ``config/policies.yaml``) and written definition."""

    id: str
    definition: str


@dataclass(frozen=True)
class PolicyText:
    """The written policy a labeler applies (one ``policy_texts/<id>.yaml`` file).

    Attributes
    ----------
    id : str
        Policy id, equal to the file's stem and to a policy of ``config/policies.yaml``.
    version : int
        Version of the text (>= 1); bump it on every approved change.
    title, definition : str
        Short title and the full written policy.
    sub_policies : tuple of SubPolicy
        The policy's sub-policies; a violating label names one of them.
    positive_examples, negative_examples : tuple of str
        Descriptions of content that does / does not violate the policy.
    """

    id: str
    version: int
    title: str
    definition: str
    sub_policies: tuple[SubPolicy, ...]
    positive_examples: tuple[str, ...]
    negative_examples: tuple[str, ...]

    @property
    def sub_policy_ids(self) -> tuple[str, ...]:
        return tuple(sub.id for sub in self.sub_policies)

    def canonical(self) -> dict[str, Any]:
        """The policy as plain data, in a fixed key order (what :func:`prompt_version` hashes)."""
        return {
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "definition": self.definition,
            "sub_policies": [{"id": s.id, "definition": s.definition} for s in self.sub_policies],
            "positive_examples": list(self.positive_examples),
            "negative_examples": list(self.negative_examples),
        }


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt template: its file name (e.g. ``label_unit_v1.j2``) and its full text."""

    name: str
    text: str

    @property
    def stem(self) -> str:
        return self.name.removesuffix(".j2")


@dataclass(frozen=True)
class RenderedPrompt:
    """Chat messages for one unit, the prompt version, and the answer's JSON schema."""

    messages: tuple[dict[str, Any], ...]
    prompt_version: str
    response_schema: dict[str, Any]


# --------------------------------------------------------------------------------------------
# Policy texts
# --------------------------------------------------------------------------------------------


def default_policy_dir() -> Path:
    """The package's ``policy_texts`` directory."""
    return Path(str(resources.files("tsmetrics").joinpath("policy_texts")))


def default_template_dir() -> Path:
    """The package's ``prompt_templates`` directory."""
    return Path(str(resources.files("tsmetrics").joinpath("prompt_templates")))


def _text_field(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise PolicyTextError(f"{where}: field {key!r}: expected a non-empty string, got {value!r}")
    return value.strip()


def _id_field(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise PolicyTextError(
            f"{where}: field {key!r}: expected an id of lower-case letters, digits and "
            f"underscores (starting with a letter), got {value!r}"
        )
    return value


def _check_fields(raw: Any, fields: Sequence[str], where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise PolicyTextError(f"{where}: expected a mapping, got {type(raw).__name__}")
    missing = [f for f in fields if f not in raw]
    if missing:
        raise PolicyTextError(f"{where}: missing required field {missing[0]!r}")
    unknown = sorted(str(k) for k in raw if k not in fields)
    if unknown:
        raise PolicyTextError(f"{where}: unknown field {unknown[0]!r} (allowed: {list(fields)})")
    return raw


def _examples(raw: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw[key]
    if not isinstance(value, list) or not value:
        raise PolicyTextError(f"{where}: field {key!r}: expected a non-empty list of strings")
    out = []
    for k, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise PolicyTextError(
                f"{where}: field {key!r}[{k}]: expected a non-empty string, got {item!r}"
            )
        out.append(item.strip())
    return tuple(out)


def parse_policy(raw: Any, source: str, expected_id: str | None = None) -> PolicyText:
    """Validate one parsed policy document; ``source`` names it in error messages."""
    doc = _check_fields(raw, _POLICY_FIELDS, source)
    policy_id = _id_field(doc, "id", source)
    if expected_id is not None and policy_id != expected_id:
        raise PolicyTextError(
            f"{source}: field 'id': expected {expected_id!r} (the file name), got {policy_id!r}"
        )
    version = doc["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise PolicyTextError(
            f"{source}: field 'version': expected an integer >= 1, got {version!r}"
        )
    subs_raw = doc["sub_policies"]
    if not isinstance(subs_raw, list) or not subs_raw:
        raise PolicyTextError(
            f"{source}: field 'sub_policies': expected a non-empty list of {{id, definition}}"
        )
    subs: list[SubPolicy] = []
    for k, sub_raw in enumerate(subs_raw):
        where = f"{source}: field 'sub_policies'[{k}]"
        sub_doc = _check_fields(sub_raw, _SUB_POLICY_FIELDS, where)
        sub_id = _id_field(sub_doc, "id", where)
        if sub_id in {s.id for s in subs}:
            raise PolicyTextError(f"{where}: duplicate sub-policy id {sub_id!r}")
        subs.append(SubPolicy(sub_id, _text_field(sub_doc, "definition", where)))
    return PolicyText(
        id=policy_id,
        version=version,
        title=_text_field(doc, "title", source),
        definition=_text_field(doc, "definition", source),
        sub_policies=tuple(subs),
        positive_examples=_examples(doc, "positive_examples", source),
        negative_examples=_examples(doc, "negative_examples", source),
    )


def load_policies(
    directory: str | Path | None = None,
    expected: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, PolicyText]:
    """Load and validate every ``<id>.yaml`` policy text of ``directory``.

    Parameters
    ----------
    directory : path, optional
        Directory of policy files; the package's ``policy_texts`` by default.
    expected : mapping of policy id to sub-policy ids, optional
        The run configuration's policies (``{p.name: p.sub_policies for p in config.policies}``).
        When given, the files must cover exactly these policies, each with exactly these
        sub-policies, and the result follows this order.

    Returns
    -------
    dict of str to PolicyText
        Policy texts by id (file-name order, or the order of ``expected``).

    Raises
    ------
    PolicyTextError
        With the file and field at fault: unreadable YAML, a missing/unknown/ill-typed field, an
        ``id`` that differs from the file name, duplicate sub-policies, or a disagreement with
        ``expected``.
    """
    folder = Path(directory) if directory is not None else default_policy_dir()
    if not folder.is_dir():
        raise PolicyTextError(f"directory: {str(folder)!r} is not a directory")
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise PolicyTextError(f"directory: no *.yaml policy files in {str(folder)!r}")
    policies: dict[str, PolicyText] = {}
    for path in files:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise PolicyTextError(f"{path.name}: not valid YAML: {error}") from None
        policy = parse_policy(raw, path.name, expected_id=path.stem)
        policies[policy.id] = policy
    if expected is None:
        return policies
    wanted = {name: tuple(subs) for name, subs in expected.items()}
    missing = [name for name in wanted if name not in policies]
    if missing:
        raise PolicyTextError(
            f"{missing[0]}.yaml: missing: no policy text for policy {missing[0]!r}"
        )
    extra = [name for name in policies if name not in wanted]
    if extra:
        raise PolicyTextError(
            f"{extra[0]}.yaml: field 'id': policy {extra[0]!r} is not in the run configuration"
        )
    for name, subs in wanted.items():
        have = policies[name].sub_policy_ids
        if set(have) != set(subs) or len(have) != len(subs):
            raise PolicyTextError(
                f"{name}.yaml: field 'sub_policies': expected ids {sorted(subs)} "
                f"(run configuration), got {sorted(have)}"
            )
    return {name: policies[name] for name in wanted}


# --------------------------------------------------------------------------------------------
# Template, schema, version, rendering
# --------------------------------------------------------------------------------------------


def _as_data(value: Any) -> str:
    """JSON-encode ``value`` with ``<``, ``>`` and ``&`` as unicode escapes (still valid JSON)."""
    text = json.dumps(value, ensure_ascii=False)
    for char, escape in _DATA_ESCAPES:
        text = text.replace(char, escape)
    return text


def _as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        loader=None,  # no include/import/extends: the template's own text is all there is
    )
    env.filters["as_data"] = _as_data
    env.filters["as_json"] = _as_json
    return env


def load_template(
    name: str = DEFAULT_TEMPLATE, directory: str | Path | None = None
) -> PromptTemplate:
    """Read prompt template ``name`` from ``directory`` (the package's templates by default).

    Raises :class:`PromptTemplateError` when the file is missing, is not valid Jinja, or lacks one
    of the blocks ``system``, ``user`` and ``image_caption``.
    """
    folder = Path(directory) if directory is not None else default_template_dir()
    path = folder / name
    if not path.is_file():
        raise PromptTemplateError(f"name: no template {name!r} in {str(folder)!r}")
    template = PromptTemplate(name, path.read_text(encoding="utf-8"))
    _compile(template)
    return template


def _compile(template: PromptTemplate) -> jinja2.Template:
    try:
        compiled = _environment().from_string(template.text)
    except jinja2.TemplateSyntaxError as error:
        raise PromptTemplateError(
            f"{template.name}: line {error.lineno}: {error.message}"
        ) from None
    missing = [b for b in _REQUIRED_BLOCKS if b not in compiled.blocks]
    if missing:
        raise PromptTemplateError(f"{template.name}: missing block {missing[0]!r}")
    return compiled


def label_response_schema(
    policies: Sequence[PolicyText], component_ids: Sequence[str] | None = None
) -> dict[str, Any]:
    """JSON schema of the answer: one object per policy (OpenAI strict structured outputs).

    Each policy maps to ``{"is_violating": bool, "sub_policy": one of the policy's sub-policy ids
    or null, "confidence": number in [0, 1], "rationale": string}``, and with ``component_ids``
    (the unit's components) also ``"violating_components"``: an array of those ids (the
    components that violate the policy; component-level prevalence); every object lists all its
    properties as required and forbids others, as strict mode demands.
    """
    if not policies:
        raise ValueError("policies: expected at least one policy text, got none")
    properties: dict[str, Any] = {}
    for policy in policies:
        answer: dict[str, Any] = {
            "is_violating": {"type": "boolean"},
            "sub_policy": {
                "anyOf": [
                    {"type": "string", "enum": list(policy.sub_policy_ids)},
                    {"type": "null"},
                ]
            },
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "rationale": {"type": "string"},
        }
        if component_ids is not None:
            answer["violating_components"] = {
                "type": "array",
                "items": {"type": "string", "enum": list(component_ids)},
            }
        properties[policy.id] = {
            "type": "object",
            "properties": answer,
            "required": list(answer),
            "additionalProperties": False,
        }
    return {
        "type": "object",
        "properties": properties,
        "required": [policy.id for policy in policies],
        "additionalProperties": False,
    }


def prompt_version(template: PromptTemplate, policies: Sequence[PolicyText]) -> str:
    """``"<template stem>-<sha256[:12]>"`` of the template text and the policies, in order."""
    digest = hashlib.sha256()
    digest.update(b"template\0" + template.text.encode("utf-8") + b"\0")
    for policy in policies:
        digest.update(
            b"policy\0" + json.dumps(policy.canonical(), ensure_ascii=False).encode() + b"\0"
        )
    return f"{template.stem}-{digest.hexdigest()[:12]}"


def _unit_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a unified unit record (``dispatch_label_tasks.sql``) the prompt shows."""
    if not isinstance(record, Mapping):
        raise ValueError(f"record: expected a mapping, got {type(record).__name__}")
    surface = record.get("surface")
    if not isinstance(surface, str) or not surface:
        raise ValueError(f"record['surface']: expected a non-empty string, got {surface!r}")
    raw_components = record.get("components")
    if not isinstance(raw_components, Sequence) or isinstance(raw_components, str | bytes):
        raise ValueError(f"record['components']: expected a list, got {raw_components!r}")
    if not raw_components:
        raise ValueError("record['components']: expected at least one component, got none")
    components = []
    for k, comp in enumerate(raw_components):
        where = f"record['components'][{k}]"
        if not isinstance(comp, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {comp!r}")
        shown: dict[str, Any] = {}
        for key in ("component_id", "type"):
            value = comp.get(key)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{where}['{key}']: expected a non-empty string, got {value!r}")
            shown[key] = value
        for key in ("pin_id", "text", "image_url"):
            value = comp.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{where}['{key}']: expected a string or null, got {value!r}")
        if comp.get("pin_id") is not None:
            shown["pin_id"] = comp["pin_id"]
        if comp.get("text") is not None:
            shown["text"] = comp["text"]
        components.append({"shown": shown, "image_url": comp.get("image_url")})
    return {"surface": surface, "components": components}


def render_messages(
    record: Mapping[str, Any],
    policies: Sequence[PolicyText],
    template: PromptTemplate | None = None,
    include_images: bool = True,
) -> RenderedPrompt:
    """Render the chat messages that ask for ``record``'s labels under ``policies``.

    Parameters
    ----------
    record : mapping
        A unified unit record as built by ``include/sql/dispatch_label_tasks.sql``: ``surface``
        and ``components`` (each ``component_id``, ``type``, optional ``text``, ``pin_id``,
        ``image_url``). Impressions and ids are not shown to the model.
    policies : sequence of PolicyText
        Policies to label, in the order the prompt lists them.
    template : PromptTemplate, optional
        Defaults to :data:`DEFAULT_TEMPLATE` from the package.
    include_images : bool
        Attach each Pin's ``image_url`` as an ``image_url`` content part (set False for
        text-only models).

    Returns
    -------
    RenderedPrompt
        ``messages`` = ``[system, user]`` (user content is a list of ``text``/``image_url``
        parts), the :func:`prompt_version`, and the :func:`label_response_schema`.
    """
    chosen = template if template is not None else load_template()
    compiled = _compile(chosen)
    unit = _unit_view(record)
    schema = label_response_schema(
        policies, [c["shown"]["component_id"] for c in unit["components"]]
    )
    variables: dict[str, Any] = {
        "policies": list(policies),
        "policy_ids": [p.id for p in policies],
        "response_schema": schema,
        "unit": {
            "surface": unit["surface"],
            "components": [c["shown"] for c in unit["components"]],
        },
        "data_open": DATA_OPEN,
        "data_close": DATA_CLOSE,
    }

    def block(name: str, extra: Mapping[str, Any] | None = None) -> str:
        context = compiled.new_context({**variables, **(extra or {})})
        return "".join(compiled.blocks[name](context)).strip()

    parts: list[dict[str, Any]] = [{"type": "text", "text": block("user")}]
    if include_images:
        for comp in unit["components"]:
            if comp["image_url"]:
                parts.append(
                    {"type": "text", "text": block("image_caption", {"component": comp["shown"]})}
                )
                parts.append({"type": "image_url", "image_url": {"url": comp["image_url"]}})
    messages = (
        {"role": "system", "content": block("system")},
        {"role": "user", "content": parts},
    )
    return RenderedPrompt(messages, prompt_version(chosen, policies), schema)
