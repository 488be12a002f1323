"""Compare and apply: one walk over the planned files and the disk, several sinks.

Each file is classified (chezmoi's model): create, identical, modified (ours and unedited: safe to
update), conflict (edited by hand since blueprint wrote it, or never written by blueprint) or
orphan (written by blueprint, no longer planned: removed). `render --dry-run`, `diff`, `status`
and `check` are this walk with a writer that writes nothing.

What blueprint wrote is recorded in its manifest (manifest.py), outside the unit directory so
Quadlet never sees it: each file's hashes and its Role (what it is to systemd), so a file no
longer rendered is still known for what it was. Before writing, the manifest records the hashes
about to be written too, so a render killed half-way leaves files the next render recognises.
"""

from __future__ import annotations

import difflib
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from blueprint.errors import ConflictError
from blueprint.files import digest, fsync_dir, write_if_unchanged
from blueprint.folders import ensure_dir
from blueprint.manifest import Manifest, Owned
from blueprint.model.types import Role
from blueprint.paths import Paths
from blueprint.plan import PlannedFile
from blueprint.reading import read_bytes


class Status(StrEnum):
    CREATE = "create"
    IDENTICAL = "identical"
    MODIFIED = "modified"
    CONFLICT = "conflict"
    ORPHAN = "orphan"


@dataclass(frozen=True)
class Change:
    path: Path
    status: Status
    planned: PlannedFile | None = None
    current: bytes | None = None
    reason: str = ""
    recorded: Role | None = None  # what the manifest says the file is

    @property
    def role(self) -> Role:
        return self.planned.output.role if self.planned is not None else self.recorded

    @property
    def writes(self) -> bool:
        return self.status in (Status.CREATE, Status.MODIFIED) or (
            self.status is Status.CONFLICT and self.planned is not None
        )


# ---- compare ----------------------------------------------------------------------------------


def roots(paths: Paths) -> tuple[Path, ...]:
    """The folders blueprint writes outputs into (with these XDG directories)."""
    return (paths.unit_dir, paths.systemd_user_dir, paths.env_dir)


def may_touch(path: Path, roots: Iterable[Path]) -> bool:
    """Whether a file the manifest lists is blueprint's to overwrite or remove: an absolute path
    below one of `roots` (engine.roots), with no `..` that would lead out of it. The manifest is a
    file a person or another program can edit; a name it holds is not reason enough to touch a file."""
    return path.is_absolute() and ".." not in path.parts and any(root in path.parents for root in roots)


def compare(planned: Iterable[PlannedFile], manifest: Manifest, roots: Iterable[Path] = ()) -> list[Change]:
    """Classify every planned file and every file blueprint wrote before that it may touch under
    `roots` (may_touch: files it wrote under other folders are left alone, and kept in the
    manifest, so moving XDG_CONFIG_HOME removes nothing and loses no secret)."""
    changes: list[Change] = []
    seen: set[str] = set()
    for file in planned:
        seen.add(str(file.path))
        current = read_bytes(file.path)
        owned = manifest.files.get(str(file.path))
        recorded = owned.role if owned else None
        if current is None:
            changes.append(Change(file.path, Status.CREATE, file, recorded=recorded))
        elif current == file.data and _mode(file.path) == file.mode:
            changes.append(Change(file.path, Status.IDENTICAL, file, current, recorded=recorded))
        elif current == file.data or manifest.owns(file.path, current):
            changes.append(Change(file.path, Status.MODIFIED, file, current, recorded=recorded))
        else:
            reason = "edited since blueprint wrote it" if owned else "not written by blueprint"
            changes.append(Change(file.path, Status.CONFLICT, file, current, reason, recorded))
    roots = tuple(roots)
    for name in sorted(set(manifest.files) - seen):
        path, role = Path(name), manifest.files[name].role
        if not may_touch(path, roots):
            continue
        current = read_bytes(path)
        if current is None:
            continue
        if manifest.owns(path, current):
            changes.append(Change(path, Status.ORPHAN, None, current, recorded=role))
        else:
            reason = "edited since blueprint wrote it; no longer rendered"
            changes.append(Change(path, Status.CONFLICT, None, current, reason, recorded=role))
    return changes


def drop_ins(unit_dir: Path) -> list[Path]:
    """The drop-ins a person keeps beside the units (litellm.container.d/*.conf, container.d/*.conf):
    the supported way to change a generated unit, and never touched by blueprint."""
    return sorted(p for p in unit_dir.rglob("*.d/*.conf") if p.is_file()) if unit_dir.is_dir() else []


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def differing(changes: Iterable[Change]) -> list[Change]:
    """The changes a render would make on disk."""
    return [c for c in changes if c.status is not Status.IDENTICAL]


# ---- apply ------------------------------------------------------------------------------------


def _keeper(change: Change) -> str:
    """Where a hand edit of CHANGE's file belongs: a unit's own drop-in folder (Quadlet and systemd
    both read <unit>.d/*.conf beside it), else the config."""
    if change.role is not None and change.role.kind.is_unit:
        return f"a drop-in, which blueprint never touches: {change.path}.d/50-mine.conf"
    return "the config"


def partition(changes: list[Change], *, force: bool = False) -> tuple[list[Change], list[Change]]:
    """The files to write and to remove; refuses (raising) if a file was edited by hand, unless force."""
    conflicts = [c for c in changes if c.status is Status.CONFLICT]
    if conflicts and not force:
        first = conflicts[0]
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise ConflictError(
            f"{first.path}: {first.reason}{more}; nothing was written",
            hint=f"see the changes with `blueprint diff`; keep your edit by moving it into {_keeper(first)}; "
            "or overwrite it with `blueprint render --force`",
            conflicts=conflicts,
        )
    writes = [c for c in changes if c.writes]
    removals = [c for c in changes if c.status is Status.ORPHAN or (c.status is Status.CONFLICT and c.planned is None)]
    return writes, removals


def apply(writes: list[Change], removals: list[Change], manifest: Manifest, roots: Iterable[Path]) -> None:
    """Write and remove files atomically, keeping the manifest true at every step."""
    if not writes and not removals:
        return
    # Journal first: the hashes about to be written count as ours even if we are killed midway.
    for change in writes:
        owned = manifest.files.setdefault(str(change.path), Owned(change.role, []))
        owned.role = change.role
        owned.hashes.append(digest(change.planned.data))
    manifest.save()
    for change in writes:
        file = change.planned
        ensure_dir(file.path.parent, 0o700 if file.output.role.secret else 0o755)
        if not write_if_unchanged(file.path, file.data, file.mode, change.current):
            # A person (who takes no lock) edited it since compare() read it.
            raise ConflictError(
                f"{file.path}: changed while blueprint was writing; it was left as it is",
                hint="run the command again: it shows the edit as a conflict",
            )
    stops = set(roots)
    for change in removals:
        change.path.unlink(missing_ok=True)
        fsync_dir(change.path.parent)
        _remove_empty_parents(change.path.parent, stops)
        manifest.files.pop(str(change.path), None)
    for change in writes:
        manifest.files[str(change.path)] = Owned(change.role, [digest(change.planned.data)])
    manifest.save()


def adopt(changes: Iterable[Change], manifest: Manifest) -> None:
    """Record identical files as ours (e.g. written by an earlier blueprint without a manifest)."""
    for change in changes:
        if change.status is Status.IDENTICAL:
            manifest.files[str(change.path)] = Owned(change.role, [digest(change.planned.data)])


def _remove_empty_parents(directory: Path, roots: set[Path]) -> None:
    """Remove folders a removal left empty (litellm/redis/ ...), up to and never including a root."""
    while directory not in roots and any(root in directory.parents for root in roots):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


# ---- showing changes --------------------------------------------------------------------------


def unified_diff(change: Change) -> str:
    """A unified diff of disk -> plan; secret files show that they differ, never their content."""
    label = str(change.path)
    if change.role.secret:
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
    if not text and change.status is Status.MODIFIED:
        return f"--- {label}\n+++ {label}\n(mode {_mode(change.path):o} -> {change.planned.mode:o})\n"
    return text


def _text(data: bytes | None) -> list[str]:
    if data is None:
        return []
    return data.decode("utf-8", errors="replace").splitlines(keepends=True)
