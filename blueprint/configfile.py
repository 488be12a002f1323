"""Writing the config file: a starter config (`blueprint init`), and one value changed in place
(`blueprint upgrade`) with every other byte of the file as the person wrote it, and a config put
back whole (`blueprint restore config`, an upgrade rolled back).

config.py reads the file; this module is the only one that writes it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from json.decoder import scanstring
from pathlib import Path
from typing import Any, NamedTuple

from blueprint.errors import BlueprintError, ConfigError
from blueprint.files import fsync_dir, write_atomic
from blueprint.folders import ensure_dir
from blueprint.model import providers as catalog
from blueprint.paths import resource

# ---- a starter config -------------------------------------------------------------------------------


class Starter(NamedTuple):
    data: bytes  # the config file
    placeholders: list[str]  # fields a person must still fill in (a render accepts them, a provider would not)
    keys: list[str]  # the secrets its providers need, to store with `blueprint secrets set`


def starter(names: Iterable[str]) -> Starter:
    """A config for these providers (default: Ollama on this machine)."""
    entries, placeholders, keys = {}, [], []
    for name in dict.fromkeys(names or ["ollama"]):  # each once, in the order given
        kind = catalog.lookup(name)
        if kind is None:
            raise ConfigError(
                f"--provider {name}: unknown provider", hint="one of " + ", ".join(catalog.provider_names())
            )
        entry: dict[str, Any] = {}
        for credential in kind.credentials:
            if credential.required:
                entry[credential.field] = f"${{{credential.env}}}"
                keys.append(credential.env)
        for field, value in kind.starter_fields.items():
            entry[field] = value
            if catalog.is_placeholder(value):
                placeholders.append(f"/llm_providers/{kind.name}/{field}")
        entries[kind.name] = {**entry, "models": list(kind.starter_models)}
    config = {"$schema": str(resource("schemas") / "blueprint-config.schema.json"), "llm_providers": entries}
    return Starter((json.dumps(config, indent=2) + "\n").encode(), placeholders, keys)


def create(path: Path, data: bytes) -> None:
    """Write a new file; an existing one (or a link, even a dangling one) is never replaced."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise BlueprintError(
            f"{path}: already exists; blueprint init never overwrites a config",
            hint="edit it, or run `blueprint init` in another folder",
        ) from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o644)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(path.parent)


# ---- one value in place ------------------------------------------------------------------------------


def with_value(raw: bytes, keys: tuple[str, ...], value: Any) -> bytes:
    """`raw` with the value at `keys` (object keys from the top) set, changing only that value's
    text (or inserting the member where it is missing) and keeping every other byte: upgrade
    checks them before it writes them (write)."""
    text = raw.decode("utf-8-sig")
    bom = raw[:3] if raw.startswith(b"\xef\xbb\xbf") else b""
    return bom + _with(text, keys, value).encode("utf-8")


def write(path: Path, data: bytes) -> None:
    """Replace the config at `path` atomically. A link is written through, to the file it names,
    and stays a link: a config kept with the dotfiles is edited there. The file keeps its mode
    (a new one is 0644)."""
    target = _through_links(path)
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
        ensure_dir(target.parent, 0o755)
    write_atomic(target, data, mode)


def _through_links(path: Path) -> Path:
    """The file `path` names once every symbolic link is followed (it may not exist yet)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # Python 3.11 raises RuntimeError for a loop, 3.13 OSError
        raise ConfigError(
            f"{path}: a symbolic link that leads back to itself", hint="point the link at your config file"
        ) from None


def _with(text: str, keys: tuple[str, ...], value: Any) -> str:
    spans = _spans(text)
    if keys in spans:
        start, end = spans[keys]
        return text[:start] + json.dumps(value) + text[end:]
    # Missing: insert the member into the nearest object that exists, nesting what is missing.
    depth = max(n for n in range(len(keys)) if keys[:n] in spans)
    for key in reversed(keys[depth + 1 :]):
        value = {key: value}
    start, end = spans[keys[:depth]]
    inside = text[start + 1 : end - 1]
    member = f"{json.dumps(keys[depth])}: {json.dumps(value)}"
    if not inside.strip():
        return text[: start + 1] + member + text[end - 1 :]
    gap = inside[: len(inside) - len(inside.lstrip())]  # the file's own indentation, kept
    return text[: start + 1] + gap + member + ("," if gap else ", ") + text[start + 1 :]


def _spans(text: str) -> dict[tuple[str, ...], tuple[int, int]]:
    """The (start, end) offsets of every value reached through object keys, keyed by those keys."""
    spans: dict[tuple[str, ...], tuple[int, int]] = {}
    decoder = json.JSONDecoder()

    def skip(at: int) -> int:
        while at < len(text) and text[at] in " \t\r\n":
            at += 1
        return at

    def value(at: int, keys: tuple[str, ...]) -> int:
        at = skip(at)
        # An array or a scalar is not addressed inside: the decoder finds its end.
        end = members(at + 1, keys) if text[at] == "{" else decoder.raw_decode(text, at)[1]
        spans[keys] = (at, end)
        return end

    def members(at: int, keys: tuple[str, ...]) -> int:
        at = skip(at)
        if text[at] == "}":
            return at + 1
        while True:
            key, at = scanstring(text, skip(at) + 1)
            at = skip(at) + 1  # the colon
            at = skip(value(at, (*keys, key)))
            if text[at] == "}":
                return at + 1
            at += 1  # the comma

    value(0, ())
    return spans
