"""One escaping layer per output format.

Every `{{ value }}` in a template passes through the `finalize` hook of its output's format
(plan.py gives each format its own Jinja environment), so no template can print a value raw: a
config value can become a value, never a new line, key, section or block.

- systemd / Quadlet units: no control characters (a newline would start a new directive), `%`
  doubled (systemd specifiers) and `$` doubled (Quadlet copies [Container] values into ExecStart=,
  where systemd expands variables); argument lists quoted word by word, because Quadlet splits
  Exec=, Environment=, EnvironmentFile= and PodmanArgs= into words (podman-systemd.unit(5)).
- YAML: emitted by PyYAML's serializer, never by string concatenation.
- Caddyfile: only tokens made of address characters; braces, quotes, spaces and `#` are refused.
- Environment files (podman --env-file): one line per variable, so no newline in a value.
- Python (the access log's filter): literals by repr(), which never end the expression.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import PurePath
from typing import Any

from blueprint.errors import RenderError
from blueprint.quadlet import InstanceName, Words

# What may not appear inside one line of any file blueprint writes or reads back: ASCII and C1
# control characters (newline, carriage return, NEL U+0085) and Unicode's line and paragraph
# separators, on which str.splitlines() and other readers end a line.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NEEDS_QUOTES = re.compile(r"[\s\"'\\;]")


def _check_line(value: str, what: str) -> str:
    bad = CONTROL.search(value)
    if bad:
        raise RenderError(
            f"{what}: {value[:40]!r} contains the control character {bad[0]!r}",
            hint="newlines and control characters cannot be written into this file",
        )
    return value


# ---- systemd units -------------------------------------------------------------------------


def _unit_escape(value: str) -> str:
    return value.replace("%", "%%").replace("$", "$$")


def unit_word(word: str) -> str:
    """One argument, quoted the way systemd and Quadlet split command lines."""
    word = _unit_escape(_check_line(str(word), "unit file"))
    if word == "" or _NEEDS_QUOTES.search(word):
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def unit_value(value: Any) -> str:
    """Jinja finalize for .container/.volume/.network/.service/.timer templates."""
    if isinstance(value, Words):
        return " ".join(unit_word(w) for w in value)
    if isinstance(value, InstanceName):
        return unit_value(str(value).removesuffix("%i")) + "%i"
    if isinstance(value, PurePath):
        return unit_word(str(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise RenderError(f"unit file: cannot write a {type(value).__name__} as a value")
    text = _check_line(value, "unit file")
    if text != text.strip() or text.endswith("\\"):
        # systemd strips surrounding whitespace and joins a line ending in \ with the next one.
        raise RenderError(f"unit file: {text[:40]!r} starts or ends with whitespace or a backslash")
    return _unit_escape(text)


# ---- YAML ----------------------------------------------------------------------------------


def yaml_value(value: Any) -> str:
    """Jinja finalize for YAML templates: every value is serialized by PyYAML.

    A mapping is written in block style, in its own order; any other value in flow style, keys
    sorted (as yaml.dump writes them). The same text yaml.dump writes, in a third of its time on
    10,000 models: the events go straight to libyaml's emitter (when PyYAML has it), which quotes
    and escapes every scalar as it sees fit, without building PyYAML's node tree first. No anchors:
    a value used twice is written twice.
    """
    import yaml

    block = isinstance(value, Mapping)
    events = _yaml_events(dict(value) if block else value, flow=not block)
    text = yaml.emit(
        (yaml.StreamStartEvent(), yaml.DocumentStartEvent(), *events, yaml.DocumentEndEvent(), yaml.StreamEndEvent()),
        Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
        width=1 << 30,
        allow_unicode=block,
    )
    return text.rstrip("\n") if block else text.removesuffix("\n...\n").rstrip("\n")


def _yaml_events(value: Any, *, flow: bool) -> Iterator[Any]:
    """PyYAML's serializer, for the values a config holds: a dict (its keys sorted in flow style),
    a list, and scalars as PyYAML's safe representer writes them; any other type is refused."""
    import yaml

    if isinstance(value, str):
        yield _yaml_scalar("tag:yaml.org,2002:str", value)
    elif isinstance(value, dict):
        yield yaml.MappingStartEvent(None, "tag:yaml.org,2002:map", True, flow_style=flow)
        for key, item in sorted(value.items()) if flow else value.items():
            yield from _yaml_events(key, flow=flow)
            yield from _yaml_events(item, flow=flow)
        yield yaml.MappingEndEvent()
    elif isinstance(value, list):
        yield yaml.SequenceStartEvent(None, "tag:yaml.org,2002:seq", True, flow_style=flow)
        for item in value:
            yield from _yaml_events(item, flow=flow)
        yield yaml.SequenceEndEvent()
    elif value is None or isinstance(value, (bool, int, float)):
        node = _yaml_representer().represent_data(value)
        yield _yaml_scalar(node.tag, node.value)
    else:
        raise RenderError(f"YAML: cannot write a {type(value).__name__} as a value")


@cache
def _yaml_representer() -> Any:
    import yaml

    return yaml.SafeDumper(None)


@cache
def _yaml_scalar(tag: str, text: str) -> Any:
    """A scalar's event, with the styles it may take: plain only where a reader would resolve the
    plain text to the same tag ("true" must be quoted to stay a string), quoted only for strings."""
    import yaml

    resolve = yaml.resolver.Resolver().resolve
    implicit = (
        resolve(yaml.ScalarNode, text, (True, False)) == tag,
        resolve(yaml.ScalarNode, text, (False, True)) == tag,
    )
    return yaml.ScalarEvent(None, tag, implicit, text)


# ---- Caddyfile -----------------------------------------------------------------------------

_CADDY_TOKEN = re.compile(r"[A-Za-z0-9._:/\[\]@-]+")


def caddy_value(value: Any) -> str:
    """Jinja finalize for Caddyfile templates: addresses and host:port tokens only."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, Words):
        return " ".join(caddy_value(w) for w in value)
    if not isinstance(value, str) or not _CADDY_TOKEN.fullmatch(value):
        raise RenderError(
            f"Caddyfile: {str(value)[:40]!r} is not a plain token",
            hint="site addresses and upstreams may hold letters, digits and . _ : / [ ] @ -",
        )
    return value


# ---- environment files ---------------------------------------------------------------------


def env_lines(text: str) -> Iterator[tuple[int, str, str | None]]:
    """(line number, name, value) for each variable of a KEY=VALUE file, read as Podman reads an
    --env-file: lines end at "\n" only (a trailing "\r" dropped), leading blanks and "#" comments
    skipped. A line that is not NAME=value has None as its value."""
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r").lstrip(" \t")
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        yield number, name, value if sep else None


def env_value(value: Any) -> str:
    """Jinja finalize for podman --env-file files: KEY=VALUE, one per line, taken literally."""
    text = str(value)
    if CONTROL.search(text):
        # Never echo the value: it is a secret.
        raise RenderError(
            "environment file: a value contains a newline or control character",
            hint="check the secrets with `blueprint secrets list`; set the bad one again",
        )
    return text


# ---- Python ----------------------------------------------------------------------------------


def python_value(value: Any) -> str:
    """Jinja finalize for Python templates: a literal (repr) of a string, number or tuple of them,
    which Python reads back as that value and nothing more."""
    if (isinstance(value, tuple) and all(isinstance(v, str | int) for v in value)) or isinstance(value, str | int):
        return repr(value)
    raise RenderError(f"{value!r}: only strings, numbers and tuples of them are written into Python")


# The escaping of each kind of output file, by its suffix.
FINALIZERS = {
    ".container": unit_value,
    ".volume": unit_value,
    ".network": unit_value,
    ".service": unit_value,
    ".timer": unit_value,
    ".conf": unit_value,  # a systemd drop-in
    ".yaml": yaml_value,
    ".yml": yaml_value,
    ".caddy": caddy_value,
    ".env": env_value,
    ".py": python_value,
}
