"""Structured (JSON) output from any chat backend: parse, validate against a schema, repair.

Servers that support guided decoding (vLLM, OpenAI) get the schema with the request (see
:class:`~personalization_env.llm.openai_backend.OpenAIBackend`); every reply is still parsed and
validated here, because guided decoding is not available everywhere (HF, some servers) and a
server can still return truncated text. A reply that fails is asked again once or twice with the
error named (a *repair*); repairs are counted on the backend (``backend.stats["repairs"]``).

The validator covers the JSON-schema subset the package's own schemas use: ``type`` (object,
array, string, integer, number, boolean, null, or a list of them), ``properties``, ``required``,
``additionalProperties: false``, ``enum``, ``items``, ``minLength``, ``maxItems``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Mapping, Sequence

from personalization_env.llm.base import ChatBackend, ChatRequest
from personalization_env.types import Message

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "integer": (int,), "number": (int, float),
    "boolean": (bool,), "null": (type(None),),
}


class StructuredOutputError(ValueError):
    """A reply that could not be parsed or validated, even after repairs."""


def validate(value: Any, schema: Mapping[str, Any], path: str = "$") -> None:
    """Raise :class:`StructuredOutputError` naming the first place where ``value`` breaks ``schema``."""
    t = schema.get("type")
    if t is not None:
        names = [t] if isinstance(t, str) else list(t)
        ok = False
        for n in names:
            types = _TYPES.get(n)
            if types is None:
                raise ValueError(f"schema type {n!r} at {path} is not supported")
            if isinstance(value, types) and not (n in ("integer", "number") and isinstance(value, bool)):
                ok = True
        if not ok:
            raise StructuredOutputError(f"{path}: expected {'/'.join(names)}, got {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise StructuredOutputError(f"{path}: {value!r} is not one of {list(schema['enum'])}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        raise StructuredOutputError(f"{path}: shorter than {schema['minLength']} characters")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for k in schema.get("required", ()):
            if k not in value:
                raise StructuredOutputError(f"{path}: missing required key {k!r}")
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                raise StructuredOutputError(f"{path}: unexpected key(s) {extra}")
        for k, sub in props.items():
            if k in value:
                validate(value[k], sub, f"{path}.{k}")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise StructuredOutputError(f"{path}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, v in enumerate(value):
                validate(v, schema["items"], f"{path}[{i}]")


def extract_json(text: str) -> Any:
    """The JSON value in a reply: the whole text, else the first ``{...}`` object in it (code fences
    and prose around it are ignored)."""
    s = text.strip()
    if s.startswith("```"):
        s = s.strip("`")
        s = s[s.find("\n") + 1:] if "\n" in s else s
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        pass
    start = s.find("{")
    while start != -1:
        depth, in_str, esc = 0, False, False
        for i in range(start, len(s)):
            c = s[i]
            if in_str:
                esc = (c == "\\") and not esc
                if c == '"' and not esc:
                    in_str = False
                continue
            if c == '"':
                in_str = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    try:
                        return json.loads(s[start:i + 1])
                    except json.JSONDecodeError:
                        break
        start = s.find("{", start + 1)
    raise StructuredOutputError(f"no JSON object in the reply: {text[:80]!r}")


def parse(text: str, schema: Mapping[str, Any]) -> Any:
    """Extract and validate (see :func:`extract_json`, :func:`validate`)."""
    value = extract_json(text)
    validate(value, schema)
    return value


def generate_json(backend: ChatBackend, requests: Sequence[ChatRequest], schema: Mapping[str, Any],
                  max_repairs: int = 2) -> list[Any]:
    """Ask ``backend`` for JSON following ``schema`` for each request; failed replies are asked again
    with the error named, up to ``max_repairs`` times each. Raises :class:`StructuredOutputError`
    when a reply is still invalid after that."""
    reqs = [r if r.response_format is not None else replace(r, response_format=dict(schema)) for r in requests]
    out: list[Any] = [None] * len(reqs)
    todo = list(range(len(reqs)))
    errors: dict[int, str] = {}
    for attempt in range(max_repairs + 1):
        if not todo:
            break
        batch = []
        for i in todo:
            r = reqs[i]
            if attempt:
                fix = Message("user", f"Your last reply was not valid: {errors[i]}. Reply again with only a JSON "
                                      f"object that follows this schema: {json.dumps(schema)}")
                seed = None if r.seed is None else r.seed + attempt
                r = replace(r, messages=(*r.messages, fix), seed=seed)
            batch.append(r)
        if attempt:
            backend.count("repairs", len(todo))
        replies = backend.generate(batch)
        left = []
        for i, resp in zip(todo, replies):
            try:
                out[i] = parse(resp.text, schema)
            except StructuredOutputError as e:
                errors[i] = str(e)
                left.append(i)
        todo = left
    if todo:
        raise StructuredOutputError(f"{len(todo)} repl{'y' if len(todo) == 1 else 'ies'} still invalid after "
                                    f"{max_repairs} repairs: {errors[todo[0]]}")
    return out
