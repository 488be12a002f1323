"""Backups of the running stack: a PostgreSQL gzip dump, a Redis snapshot, and the config with
its secrets, kept backup.retention_days days (restore.py puts them back).

Everything reaches the containers through `podman exec` / `podman volume import`, the way a person
would do it by hand: a PostgreSQL backup is a plain `pg_dump` gzipped, which `gunzip -c FILE |
psql` restores without blueprint. Files are written 0600 (they hold keys, spend and secrets) under
$XDG_DATA_HOME/blueprint/backups/<kind>/, and retention deletes only files of that naming pattern.

A backup holds the state lock only while it reads what it needs (the config, the store): a dump
lasts as long as the database is large, and an apply, a `secrets set` or another kind's backup
must not wait on it. It writes only into its kind's folder, under that folder's own lock, so two
backups of one kind still never clash. Whoever holds both takes the state lock first.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import sys
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import BinaryIO

from blueprint import process
from blueprint.errors import BlueprintError, ToolError
from blueprint.files import atomic_output, digest
from blueprint.folders import ensure_dir
from blueprint.kinds import BackupKind
from blueprint.locking import lock
from blueprint.paths import Paths

SUFFIX = {BackupKind.POSTGRES: ".sql.gz", BackupKind.REDIS: ".rdb", BackupKind.CONFIG: ".tar.gz"}
_SUFFIXES = "|".join(map(re.escape, SUFFIX.values()))
# kind-STAMP.suffix; a second backup of a kind in the same second is kind-STAMP-2.suffix, and so on.
NAME = re.compile(
    rf"^(?P<kind>{'|'.join(BackupKind)})-(?P<stamp>\d{{8}}T\d{{6}}Z)(?:-(?P<n>[1-9]\d{{0,5}}))?(?P<suffix>{_SUFFIXES})\Z"
)
PODMAN_HINT = "backups reach the containers through podman"


@dataclass(frozen=True)
class BackupFile:
    kind: BackupKind
    path: Path
    size: int
    taken: datetime
    n: int = 1  # its place among the backups of its kind taken in the same second


def _stack(options):
    from blueprint import pipeline

    return pipeline.build_stack(options).stack


def folder_lock(paths: Paths, kind: str) -> Path:
    """The lock of a kind's backup folder: held by whoever writes there (a backup, its pruning)
    or reads a backup a pruning could take away meanwhile (a restore)."""
    return paths.backup_dir / kind / ".lock"


def kind_lock(paths: Paths, kind: str):
    """Hold the lock of a kind's backup folder (see folder_lock), saying what is waited for."""

    def waiting(holder: str) -> None:
        sys.stderr.write(f"blueprint: waiting for another blueprint{holder} to finish its {kind} backup\n")

    return lock(folder_lock(paths, kind), waiting=waiting)


def _target(paths: Paths, kind: str, now: float) -> Path:
    """A name no backup has: the caller holds the kind's lock, so no other blueprint takes it meanwhile."""
    folder = paths.backup_dir / kind
    ensure_dir(folder, 0o700)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    for n in range(1, 1000):
        path = folder / f"{kind}-{stamp}{f'-{n}' if n > 1 else ''}{SUFFIX[kind]}"
        if not os.path.lexists(path):
            return path
    raise ToolError(f"{folder}: a thousand {kind} backups in the same second", hint="see what runs backups in a loop")


@dataclass(frozen=True)
class RunResult:
    made: list[BackupFile]
    pruned: list[Path]
    failed: list[tuple[BackupKind, BlueprintError]]  # each kind is tried, whatever the others did


# What writes one backup into its file (given the time it is taken), with whatever it had to read
# under the state lock already read.
Writer = Callable[[BinaryIO, float], None]


def run(options, kinds: Sequence[str], now: float | None = None) -> RunResult:
    """Back up the given kinds ("all": every enabled one), then prune what retention allows of
    each; the state lock held only while the config and the store are read (see the module)."""
    with lock(options.paths.lock):
        stack = _stack(options)
        if stack.backup is None:
            raise BlueprintError(
                f"{stack.source}: /backup/enabled: backups are turned off",
                hint="set backup.enabled to true (the default) to back up",
            )
        wanted = [job.kind for job in stack.backup.jobs] if "all" in kinds else list(dict.fromkeys(kinds))
        enabled = {job.kind for job in stack.backup.jobs}
        for kind in wanted:
            if kind not in enabled:
                raise BlueprintError(f"{stack.source}: nothing to back up for {kind}: that service is disabled")
        writers = _read(options, stack, wanted)
    return _write(options.paths, writers, now, retention_days=stack.backup.retention_days)


def take(options, stack, kinds: Sequence[str], now: float | None = None) -> RunResult:
    """Back up these kinds now, whether or not the timers are on (upgrade's way back does not
    depend on a schedule), into the same folders; nothing is pruned. The caller holds the state
    lock."""
    return _write(options.paths, _read(options, stack, kinds), now)


def _read(options, stack, kinds: Sequence[str]) -> dict[str, Writer]:
    """Each kind's writer, with what it reads of blueprint's own files read now (under the state
    lock): a config backup is made in memory; the databases are read through podman later."""
    writers: dict[str, Writer] = {}
    for kind in kinds:
        if kind == BackupKind.CONFIG:
            archive = _config_archive(options, stack)
            writers[kind] = lambda out, now, archive=archive: out.write(archive)
        else:
            writers[kind] = partial(BACKUPS[kind], stack)
    return writers


def _write(
    paths: Paths, writers: Mapping[str, Writer], now: float | None, *, retention_days: int | None = None
) -> RunResult:
    """Write each kind's backup under its folder's lock (each kind is tried, whatever the others
    did), then prune that folder if a retention is given."""
    now = time.time() if now is None else now
    made, pruned, failed = [], [], []
    for kind, writer in writers.items():
        try:
            with kind_lock(paths, kind):
                final = _target(paths, kind, now)
                # Written to a temp file, renamed only once complete: a failed backup leaves no file.
                with atomic_output(final, 0o600) as out:
                    writer(out, now)
                made.append(_describe(final))
                if retention_days is not None:
                    pruned += prune(paths, retention_days, now, kinds=[kind])
        except BlueprintError as error:
            failed.append((BackupKind(kind), error))
    return RunResult(made, pruned, failed)


def _postgres(stack, out: BinaryIO, now: float) -> None:
    db = stack.database
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=int(now)) as packed:
        # --clean --if-exists: the dump recreates every object, so it restores over a live database too.
        dump = ["podman", "exec", db.container, "pg_dump", "--clean", "--if-exists"]
        unit = db.service.unit
        process.stream(
            [*dump, "-p", str(db.port), "-U", db.user, "-d", db.name],
            packed.write,
            hint=f"is {unit} running? (systemctl --user status {unit})",
        )


def schema_digest(stack) -> str:
    """A fingerprint of the database's schema (tables, columns, indexes; no rows): whether a
    release migrated it."""
    db = stack.database
    dump = [
        "podman",
        "exec",
        db.container,
        "pg_dump",
        "--schema-only",
        "-p",
        str(db.port),
        "-U",
        db.user,
        "-d",
        db.name,
    ]
    return digest(process.run(dump, hint=PODMAN_HINT))


def _redis(stack, out: BinaryIO, now: float) -> None:
    service = stack.service("litellm_redis")
    # redis-cli --rdb asks the server for a snapshot over the replication protocol (the server is
    # not blocked); REDISCLI_AUTH is in the container's environment. stdout carries only the file.
    script = (
        f'f=$(mktemp) && redis-cli -p {service.port} --rdb "$f" >/dev/null 2>&1 && cat "$f"; '
        'rc=$?; rm -f "$f"; exit $rc'
    )
    process.run(["podman", "exec", service.container_name, "sh", "-c", script], stdout=out, hint=PODMAN_HINT)
    if os.pread(out.fileno(), 5, 0) != b"REDIS":
        raise ToolError(f"{service.container_name}: redis-cli --rdb did not produce an RDB snapshot")


def _config_archive(options, stack) -> bytes:
    """The config file, the secret store and the rendered environment files, as one tar.gz made in
    memory (they are small), so that they are read under the state lock and written after it."""
    paths = options.paths
    config_file = Path(stack.source)
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as tar:
        # The file's content, through a link: a config kept with the dotfiles is a link, which
        # restores nothing.
        with config_file.open("rb") as config:
            tar.addfile(tar.gettarinfo(arcname=f"config/{config_file.name}", fileobj=config), config)
        for source in (paths.secret_store, paths.env_dir):
            if source.exists():
                tar.add(source, arcname=f"secrets/{source.relative_to(paths.secrets_dir)}")
    return packed.getvalue()


BACKUPS = {BackupKind.POSTGRES: _postgres, BackupKind.REDIS: _redis}


def _describe(path: Path) -> BackupFile:
    match = NAME.match(path.name)
    taken = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ")
    return BackupFile(BackupKind(match["kind"]), path, path.stat().st_size, taken, int(match["n"] or 1))


def listing(paths: Paths) -> list[BackupFile]:
    """Every backup blueprint made, newest first."""
    found = []
    for kind in SUFFIX:
        folder = paths.backup_dir / kind
        if folder.is_dir():
            found += [_describe(p) for p in folder.iterdir() if NAME.match(p.name)]
    return sorted(found, key=lambda b: (b.taken, b.n, b.kind), reverse=True)


def newest(paths: Paths, kind: str) -> Path:
    for backup in listing(paths):
        if backup.kind == kind:
            return backup.path
    raise BlueprintError(f"no {kind} backup in {paths.backup_dir / kind}", hint=f"blueprint backup run {kind}")


def prune(paths: Paths, retention_days: int, now: float, kinds: Sequence[str] = tuple(SUFFIX)) -> list[Path]:
    """Delete backups of these kinds older than the retention (by their file time); never the
    newest of a kind. The caller holds each kind's lock (a backup prunes the kind it made)."""
    removed = []
    limit = now - retention_days * 86400
    for kind in kinds:
        folder = paths.backup_dir / kind
        if not folder.is_dir():
            continue
        files = sorted((p for p in folder.iterdir() if NAME.match(p.name)), key=lambda p: p.stat().st_mtime)
        for path in files[:-1]:
            if path.stat().st_mtime < limit:
                path.unlink()
                removed.append(path)
    return removed
