"""Load: read blueprint-config.json (strict JSON: jsontext.py), check it against the schema, fill in the defaults.

Everything after this module receives checked data and never checks it again. Semantic rules that
a JSON Schema cannot express (references between sections) live in model/rules.py, run before the
typed stack is built, and raise the same ConfigError with a JSON pointer.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from blueprint import credentials, jsontext
from blueprint.errors import ConfigError, FileRefused
from blueprint.jsontext import pointer
from blueprint.paths import CONFIG_NAME, check_relative, encodes_utf8, resource
from blueprint.reading import MAX_CONFIG, read_regular, size

SCHEMA_PATH = resource("schemas") / "blueprint-config.schema.json"


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with every default filled in, and where it came from."""

    source: str
    raw: bytes
    data: dict[str, Any]


def load(path: Path | str, *, label: str | None = None) -> LoadedConfig:
    """Read, parse, validate and complete a config file: a regular file of at most MAX_CONFIG."""
    path = Path(path)
    label = label or shown(path)
    if not encodes_utf8(str(path)):
        raise ConfigError(f"{label}: the file's name is not valid UTF-8", hint="rename it: the backup units name it")
    try:
        raw = read_regular(path, MAX_CONFIG, label=label)
    except FileNotFoundError:
        check_relative(path)
        raise ConfigError(
            f"{label}: no such file",
            hint=f"pass --config PATH, or run blueprint where {CONFIG_NAME} is",
        ) from None
    except FileRefused as exc:
        raise ConfigError(exc.message, hint=f"give the path of a JSON file of at most {size(MAX_CONFIG)}") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read: {exc.strerror}") from None
    return loads(raw, label=label)


def shown(path: Path) -> str:
    """A path as messages print it; bytes that are not UTF-8 are shown escaped, never raised on."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def loads(raw: bytes | str, *, label: str = CONFIG_NAME) -> LoadedConfig:
    if isinstance(raw, str):
        raw = raw.encode()
    data = jsontext.parse(raw, label)
    validate(data, label)
    return LoadedConfig(source=label, raw=raw, data=with_defaults(data))


@cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def _validator():
    import jsonschema

    base = jsonschema.validators.validator_for(schema())
    cls = jsonschema.validators.extend(
        base,
        validators={"pattern": _pattern},
        # 4000.0 is a number, not a port: it would be written as "4000.0" into the units.
        type_checker=base.TYPE_CHECKER.redefine(
            "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
        ),
    )
    # The schema has no recursive references: inlined once, a config with 10,000 models is checked
    # without 25,000 reference lookups.
    return cls(_inline(schema()))


@cache
def _ecma(pattern: str) -> re.Pattern:
    """A schema pattern as ECMA-262 (JSON Schema's regex dialect) reads it, where a final $ is the
    end of the text; Python's $ also matches before a final newline."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator, pattern: str, instance: Any, schema: dict):
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not _ecma(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _inline(node: Any) -> Any:
    if isinstance(node, dict):
        node = _resolve(node) if "$ref" in node else node
        return {key: _inline(value) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline(item) for item in node]
    return node


def validate(data: Any, label: str) -> None:
    """Raise ConfigError naming the field of the most relevant schema violation."""
    import jsonschema

    errors = list(_validator().iter_errors(data))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    # best_match descends into anyOf branches; for a model given as neither a string nor an
    # object the branch errors say less than the oneOf itself.
    while error.parent is not None and error.parent.validator == "anyOf" and error.validator == "type":
        error = error.parent
    raise ConfigError(f"{label}: {pointer(error.absolute_path) or '/'}: {_describe(error)}", hint=_hint(error))


def _describe(error) -> str:
    custom = error.schema.get("x-error") if isinstance(error.schema, dict) else None
    value = error.instance
    if custom and isinstance(value, str) and re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", value):
        return f'write the reference with braces, as "${{{value[1:]}}}"'  # shell spelling: $NAME
    if custom:
        return _with_example(custom, error)
    shown = _short(value, url=_node_at(error.absolute_path).get("$ref") == "#/$defs/url")
    match error.validator:
        case "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            extra = sorted(set(value) - set(allowed)) if isinstance(value, dict) else []
            names = ", ".join(repr(e) for e in extra)
            return f"unknown key {names}; expected one of: {', '.join(allowed)}"
        case "required":
            return error.message.replace("is a required property", "is required")
        case "enum":
            options = ", ".join(json.dumps(o) for o in error.validator_value)
            return f"{shown} is not one of: {options}"
        case "type":
            expected = error.validator_value
            expected = " or ".join(expected) if isinstance(expected, list) else expected
            got = "null" if value is None else f"{_json_type(value)} {shown}"
            return f"expected {_article(expected)}, got {got}"
        case "pattern":
            expected = error.schema.get("x-expected")
            return f"{shown} is not valid" + (f": expected {expected}" if expected else "")
        case "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum":
            return f"{shown} is out of range: {_bounds(error.schema)}"
        case "minItems":
            return "must not be empty" if error.validator_value == 1 else error.message
        case "uniqueItems":
            return f"has duplicates: {shown}"
        case "propertyNames":
            return f"{shown} has an invalid key: {error.message}"
        case "maxLength":
            return f"is longer than {error.validator_value} characters"
    return error.message


def _with_example(text: str, error) -> str:
    """An x-error or x-hint with the field's own example (x-example) for NAME: the password of a
    managed Redis is not an ${OPENAI_API_KEY}. {ENTRY} in an example is the name of the entry that
    holds the field, as a variable writes it (anthropic's api_key: ANTHROPIC_API_KEY)."""
    example = error.schema.get("x-example")
    if not example:
        return text
    path = list(error.absolute_path)
    entry = str(path[-2]) if len(path) > 1 else ""
    example = example.replace("{ENTRY}", re.sub(r"[^A-Z0-9_]", "_", entry.upper()) or "PROVIDER")
    return re.sub(r"\bNAME\b", example, text)


def _bounds(schema: Mapping[str, Any]) -> str:
    """A number's allowed range in words: "expected 1 to 65535", "expected more than 0"."""
    low, high = schema.get("minimum"), schema.get("maximum")
    above, below = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if low is not None and high is not None:
        return f"expected {low} to {high}"
    words = [
        *([f"at least {low}"] if low is not None else []),
        *([f"more than {above}"] if above is not None else []),
        *([f"at most {high}"] if high is not None else []),
        *([f"less than {below}"] if below is not None else []),
    ]
    return "expected " + " and ".join(words)


def _hint(error) -> str | None:
    if isinstance(error.schema, dict) and error.schema.get("x-hint"):
        return _with_example(error.schema["x-hint"], error)
    if error.validator == "additionalProperties":
        return "`blueprint schema` prints every key with its description"
    return None


def _article(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _short(value: Any, *, url: bool = False) -> str:
    """A value as an error prints it, cut at 60 characters. A URL field's credentials are masked,
    those of a value the schema refuses too (a password holding a space or a quote); so are those
    of every string of an object or array: given where the schema wants another type, no schema
    says which of them are URLs. Masked in the JSON text, which C has written, however deep."""
    text = json.dumps(credentials.masked(value) if url and isinstance(value, str) else value, ensure_ascii=True)
    if isinstance(value, (dict, list)):
        text = _JSON_STRING.sub(lambda found: json.dumps(credentials.masked(json.loads(found[0]))), text)
    return text if len(text) <= 60 else text[:57] + "..."


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of the config with every schema default filled in, recursively.

    Defaults follow a disabled service: a service's default `requires` names only enabled ones,
    and the response cache is off by default without Redis, so disabling Redis is one edit. What
    the config gives is kept as written (and refused if it needs a disabled service)."""
    filled = _fill(copy.deepcopy(data), schema())

    def given(section: str, key: str) -> bool:
        return isinstance(data.get(section), dict) and key in data[section]

    def on(section: str) -> bool:
        return not isinstance(filled.get(section), dict) or filled[section].get("enabled", True)

    for name, section in filled.items():
        if isinstance(section, dict) and "requires" in section and not given(name, "requires"):
            section["requires"] = [other for other in section["requires"] if on(other)]
    if isinstance(filled.get("cache"), dict) and not given("cache", "enabled") and not on("litellm_redis"):
        filled["cache"]["enabled"] = False
    return filled


def fields(data: Any, definition: str) -> Iterator[tuple[tuple, Any]]:
    """Every value of a validated config the schema checks as `#/$defs/<definition>` (every URL,
    say), with its path: a rule about a kind of value reaches each field of that kind, those the
    schema gains later too."""
    ref = f"#/$defs/{definition}"

    def walk(value: Any, node: dict[str, Any], path: tuple) -> Iterator[tuple[tuple, Any]]:
        if node.get("$ref") == ref:
            yield path, value
            return
        node = _resolve(node)
        if isinstance(value, dict):
            properties, extra = node.get("properties", {}), node.get("additionalProperties")
            for key, sub in value.items():
                below = properties.get(key, extra)
                if isinstance(below, dict):
                    yield from walk(sub, below, (*path, key))
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for index, item in enumerate(value):
                yield from walk(item, node["items"], (*path, index))

    yield from walk(data, schema(), ())


def _node_at(path) -> dict[str, Any]:
    """The schema of the value at `path`, its $ref kept (which definition it is of); {} where the
    schema says nothing of it."""
    node: Any = schema()
    for part in path:
        node = _resolve(node)
        if isinstance(part, int):
            node = node.get("items")
        else:
            node = node.get("properties", {}).get(part, node.get("additionalProperties"))
        if not isinstance(node, dict):
            return {}
    return node


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target = schema()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _fill(value: Any, node: dict[str, Any]) -> Any:
    node = _resolve(node)
    if isinstance(value, dict):
        properties = node.get("properties", {})
        for key, sub in properties.items():
            sub = _resolve(sub)
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = _fill(value[key], sub)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value.keys() - properties.keys():
                value[key] = _fill(value[key], extra)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        return [_fill(item, node["items"]) for item in value]
    return value
