"""Compare and apply: one walk over the planned files and the disk, several sinks.

Each file is classified (chezmoi's model): create, identical, modified (ours and unedited: safe to
update), conflict (edited by hand since blueprint wrote it, or never written by blueprint) or
orphan (written by blueprint, no longer planned: removed). `render --dry-run`, `diff`, `status`
and `check` are this walk with a writer that writes nothing.

What blueprint wrote is recorded in a manifest (path -> sha256) under $XDG_STATE_HOME, outside the
unit directory so Quadlet never sees it. Before writing, the manifest records the hashes about to
be written too, so a render killed half-way leaves files that the next render still recognises.
"""

from __future__ import annotations

import difflib
import json
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blueprint.errors import ConflictError
from blueprint.files import digest, ensure_dir, fsync_dir, read_bytes, write_atomic
from blueprint.paths import Paths
from blueprint.render import SECRET_MODE, PlannedFile

CREATE, IDENTICAL, MODIFIED, CONFLICT, ORPHAN = "create", "identical", "modified", "conflict", "orphan"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Change:
    path: Path
    status: str
    planned: PlannedFile | None = None
    current: bytes | None = None
    reason: str = ""

    @property
    def secret(self) -> bool:
        if self.planned is not None:
            return self.planned.secret
        return self.path.suffix == ".env"

    @property
    def writes(self) -> bool:
        return self.status in (CREATE, MODIFIED) or (self.status == CONFLICT and self.planned is not None)


# ---- manifest ------------------------------------------------------------------------------


@dataclass
class Manifest:
    """What blueprint wrote: path -> the hashes of content it put there."""

    path: Path
    files: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, paths: Paths) -> Manifest:
        raw = read_bytes(paths.manifest)
        if raw is None:
            return cls(paths.manifest)
        try:
            data = json.loads(raw)
            files = {p: list(h) for p, h in data.get("files", {}).items()}
        except (ValueError, AttributeError, TypeError):
            # A damaged manifest only costs us the knowledge of what we wrote: every file then
            # counts as not ours (conflict), which is the safe side.
            return cls(paths.manifest)
        return cls(paths.manifest, files, {k: v for k, v in data.items() if k not in ("files", "version")})

    def owns(self, path: Path, data: bytes) -> bool:
        return digest(data) in self.files.get(str(path), ())

    def save(self) -> None:
        ensure_dir(self.path.parent, 0o700)
        body = {"version": MANIFEST_VERSION, "files": dict(sorted(self.files.items())), **self.extra}
        write_atomic(self.path, json.dumps(body, indent=1).encode() + b"\n", 0o600)


# ---- compare -------------------------------------------------------------------------------


def compare(planned: Iterable[PlannedFile], manifest: Manifest) -> list[Change]:
    """Classify every planned file and every file blueprint wrote before."""
    changes: list[Change] = []
    seen: set[str] = set()
    for file in planned:
        seen.add(str(file.path))
        current = read_bytes(file.path)
        if current is None:
            changes.append(Change(file.path, CREATE, file))
        elif current == file.data and _mode(file.path) == file.mode:
            changes.append(Change(file.path, IDENTICAL, file, current))
        elif current == file.data or manifest.owns(file.path, current):
            changes.append(Change(file.path, MODIFIED, file, current))
        else:
            reason = (
                "edited since blueprint wrote it" if str(file.path) in manifest.files else "not written by blueprint"
            )
            changes.append(Change(file.path, CONFLICT, file, current, reason))
    for name in sorted(set(manifest.files) - seen):
        path = Path(name)
        current = read_bytes(path)
        if current is None:
            continue
        if manifest.owns(path, current):
            changes.append(Change(path, ORPHAN, None, current))
        else:
            changes.append(Change(path, CONFLICT, None, current, "edited since blueprint wrote it; no longer rendered"))
    return changes


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def pending(changes: Iterable[Change]) -> list[Change]:
    return [c for c in changes if c.status != IDENTICAL]


# ---- apply ---------------------------------------------------------------------------------


def partition(changes: list[Change], *, force: bool = False) -> tuple[list[Change], list[Change]]:
    """The files to write and to remove; refuses (raising) if a file was edited by hand, unless force."""
    conflicts = [c for c in changes if c.status == CONFLICT]
    if conflicts and not force:
        first = conflicts[0]
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise ConflictError(
            f"{first.path}: {first.reason}{more}; nothing was written",
            hint="see the changes with `blueprint diff`; keep your edit by moving it into the config, "
            "or overwrite it with `blueprint render --force`",
        )
    writes = [c for c in changes if c.writes]
    removals = [c for c in changes if c.status == ORPHAN or (c.status == CONFLICT and c.planned is None)]
    return writes, removals


def apply(writes: list[Change], removals: list[Change], manifest: Manifest, roots: Iterable[Path]) -> None:
    """Write and remove files atomically, keeping the manifest true at every step."""
    if not writes and not removals:
        return
    # Journal first: the hashes about to be written count as ours even if we are killed midway.
    for change in writes:
        manifest.files.setdefault(str(change.path), []).append(digest(change.planned.data))
    manifest.save()
    for change in writes:
        file = change.planned
        ensure_dir(file.path.parent, 0o700 if file.mode == SECRET_MODE else 0o755)
        write_atomic(file.path, file.data, file.mode)
    stops = set(roots)
    for change in removals:
        change.path.unlink(missing_ok=True)
        fsync_dir(change.path.parent)
        _remove_empty_parents(change.path.parent, stops)
        manifest.files.pop(str(change.path), None)
    for change in writes:
        manifest.files[str(change.path)] = [digest(change.planned.data)]
    manifest.save()


def adopt(changes: Iterable[Change], manifest: Manifest) -> None:
    """Record identical files as ours (e.g. written by an earlier blueprint without a manifest)."""
    for change in changes:
        if change.status == IDENTICAL:
            manifest.files[str(change.path)] = [digest(change.planned.data)]


def _remove_empty_parents(directory: Path, roots: set[Path]) -> None:
    """Remove folders a removal left empty (litellm/redis/ ...), up to and never including a root."""
    while directory not in roots and any(root in directory.parents for root in roots):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


# ---- showing changes -----------------------------------------------------------------------


def unified_diff(change: Change) -> str:
    """A unified diff of disk -> plan; secret files show that they differ, never their content."""
    label = str(change.path)
    if change.secret:
        return f"--- {label}\n+++ {label}\n(secret file: {change.status}, contents not shown)\n"
    old = _text(change.current)
    new = _text(change.planned.data if change.planned else None)
    lines = difflib.unified_diff(
        old,
        new,
        fromfile=label if change.current is not None else "/dev/null",
        tofile=label if change.planned is not None else "/dev/null",
    )
    text = "".join(lines)
    if not text and change.status == MODIFIED:
        return f"--- {label}\n+++ {label}\n(mode {_mode(change.path):o} -> {change.planned.mode:o})\n"
    return text


def _text(data: bytes | None) -> list[str]:
    if data is None:
        return []
    return data.decode("utf-8", errors="replace").splitlines(keepends=True)
