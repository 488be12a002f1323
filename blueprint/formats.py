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

    libyaml's emitter when PyYAML has it (3x faster on 10,000 models; same output).
    """
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    if isinstance(value, Mapping):
        return yaml.dump(
            dict(value), Dumper=dumper, sort_keys=False, default_flow_style=False, width=1 << 30, allow_unicode=True
        ).rstrip("\n")
    return yaml.dump(value, Dumper=dumper, default_flow_style=True, width=1 << 30).removesuffix("\n...\n").rstrip("\n")


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
    ".yaml": yaml_value,
    ".yml": yaml_value,
    ".caddy": caddy_value,
    ".env": env_value,
    ".py": python_value,
}
