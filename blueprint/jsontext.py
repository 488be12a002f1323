"""JSON text read strictly: errors at a line and column, no key twice, no value a file cannot hold.

Python's json reads more than JSON (NaN, Infinity), keeps the last of two equal keys, and makes
strings and numbers no file can hold (lone surrogates, 1e400 as infinity): each is refused here
with where it is, before the schema sees the data.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from blueprint.errors import ConfigError
from blueprint.paths import encodes_utf8


def pointer(parts) -> str:
    """A JSON pointer (RFC 6901) for a path of keys and indexes."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def parse(raw: bytes, label: str) -> Any:
    """The JSON value of a file's bytes (`label` names it in errors), every value one a file can hold."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{label}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}",
            hint="check for a missing comma or quote, or a trailing comma, just before this point",
        ) from None
    except _DuplicateKey as exc:
        where, at = _second_key(text)
        line, column = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
        raise ConfigError(
            f"{label}:{line}:{column}: {pointer(where)}: key {exc.key!r} appears twice in one object; "
            "JSON keeps only the last",
            hint="remove or merge one of them",
        ) from None
    except RecursionError:
        at = _too_deep(text)
        line, column = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
        raise ConfigError(
            f"{label}:{line}:{column}: invalid JSON: nested too deeply (level {DEPTH + 1} opens here)",
            hint="a config nests a few levels: look for brackets opened and never closed",
        ) from None
    except ValueError as exc:  # Python's own limits, e.g. an integer of thousands of digits
        raise ConfigError(f"{label}: invalid JSON: {exc}") from None
    _check_values(data, label)
    return data


# How deep a file is said to be nested too deeply once Python's parser runs out of recursion (at
# about 1000 levels): a config nests at most a handful.
DEPTH = 100
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _too_deep(text: str) -> int:
    """The offset of the first bracket opening level DEPTH + 1 (strings skipped whole)."""
    depth = 0
    for token in _TOKEN.finditer(text):
        if token[0] in "[{":
            depth += 1
            if depth > DEPTH:
                return token.start()
        elif token[0] in "]}":
            depth -= 1
    return 0


def _check_values(data: Any, label: str) -> None:
    """Values JSON can spell and no file can hold. JSON's \\ud800 escapes make strings that are not
    Unicode text (lone surrogates); a number beyond a float's range (1e400) is read as infinity,
    which litellm.yaml would say as .inf. One C-speed dump proves there are neither; only then is
    the culprit looked for."""
    try:
        json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(
            f"{label}: {_surrogate(data) or '/'}: not valid Unicode text (a lone \\ud800-\\udfff escape)"
        ) from None
    except ValueError:  # allow_nan: parse() refuses NaN, so an infinity
        raise ConfigError(
            f"{label}: {_infinite(data) or '/'}: too large for a number (beyond 1.8e308)",
            hint="`blueprint schema` gives the range of each number",
        ) from None


def _infinite(node: Any, path: tuple = ()) -> str | None:
    """The pointer of the first number that overflowed to infinity."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(value, float) and math.isinf(value):
            return pointer((*path, key))
        found = _infinite(value, (*path, key))
        if found:
            return found
    return None


def _surrogate(node: Any, path: tuple = ()) -> str | None:
    """The pointer of the first string (or key) holding a lone surrogate."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(key, str) and not key.isascii() and not encodes_utf8(key):
            return pointer((*path, key))
        if isinstance(value, str) and not encodes_utf8(value):
            return pointer((*path, key))
        found = _surrogate(value, (*path, key))
        if found:
            return found
    return None


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _second_key(text: str) -> tuple[tuple, int]:
    """Where the first key that repeats one of its object is: its path and its offset. Run only once
    json.loads has found one (its hook sees keys, not where they are), so the text is valid JSON."""
    from json.decoder import scanstring

    decoder = json.JSONDecoder()

    class Found(Exception):
        pass

    def blank(i: int) -> int:
        while text[i] in " \t\n\r":
            i += 1
        return i

    def value(i: int, path: tuple) -> int:
        i = blank(i)
        if text[i] == "{":
            seen: set[str] = set()
            i = blank(i + 1)
            while text[i] != "}":
                start = i
                key, i = scanstring(text, i + 1)
                if key in seen:
                    raise Found((*path, key), start)
                seen.add(key)
                i = value(blank(i) + 1, (*path, key))  # past the colon
                i = blank(i)
                i = blank(i + 1) if text[i] == "," else i
            return i + 1
        if text[i] == "[":
            index, i = 0, blank(i + 1)
            while text[i] != "]":
                i = blank(value(i, (*path, index)))
                i = blank(i + 1) if text[i] == "," else i
                index += 1
            return i + 1
        return decoder.raw_decode(text, i)[1]

    try:
        value(0, ())
    except Found as found:
        return found.args
    return (), 0


def _no_constant(name: str):
    # Python's json reads NaN and Infinity, which JSON does not have and no setting can use.
    raise ValueError(f"{name} is not a JSON value")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result
