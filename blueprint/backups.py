"""Backups and restores of the running stack (seed 000: PostgreSQL gzip dump, Redis snapshot,
config and secrets; 30 days kept).

Everything reaches the containers through `podman exec` / `podman volume import`, the way a person
would do it by hand: a PostgreSQL backup is a plain `pg_dump` gzipped, which `gunzip -c FILE |
psql` restores without blueprint. Files are written 0600 (they hold keys, spend and secrets) under
$XDG_DATA_HOME/blueprint/backups/<kind>/, and retention deletes only files of that naming pattern.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from blueprint.errors import BlueprintError, ToolError
from blueprint.files import atomic_output, ensure_dir, write_atomic
from blueprint.model import Database
from blueprint.paths import Paths
from blueprint.systemd import systemctl

SUFFIX = {"postgres": ".sql.gz", "redis": ".rdb", "config": ".tar.gz"}
NAME = re.compile(r"^(?P<kind>postgres|redis|config)-(?P<stamp>\d{8}T\d{6}Z)(?P<suffix>\.sql\.gz|\.rdb|\.tar\.gz)$")


@dataclass(frozen=True)
class Backup:
    kind: str
    path: Path
    size: int
    taken: datetime


def _run(command: Sequence[str], *, stdin=None, stdout=None, input: bytes | None = None) -> bytes:
    try:
        result = subprocess.run(
            list(command),
            stdin=stdin,
            stdout=stdout or subprocess.PIPE,
            input=input,
            stderr=subprocess.PIPE,
            check=False,
        )
    except FileNotFoundError:
        raise ToolError(f"{command[0]}: not found", hint="backups run inside the containers through podman") from None
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        raise ToolError(f"`{' '.join(command[:4])} ...` failed: {detail[-1] if detail else result.returncode}")
    return result.stdout or b""


def _stack(options):
    from blueprint import pipeline

    return pipeline.build_stack(options)[2]


def _target(paths: Paths, kind: str, now: float) -> Path:
    folder = paths.backup_dir / kind
    ensure_dir(folder, 0o700)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return folder / f"{kind}-{stamp}{SUFFIX[kind]}"


@dataclass(frozen=True)
class RunResult:
    made: list[Backup]
    pruned: list[Path]


def run(options, kinds: Sequence[str], now: float | None = None) -> RunResult:
    """Back up the given kinds ("all": every enabled one), then prune what retention allows."""
    stack = _stack(options)
    if stack.backup is None:
        raise BlueprintError(
            f"{stack.source}: /backup/enabled: backups are turned off",
            hint="set backup.enabled to true (the default) to back up",
        )
    now = time.time() if now is None else now
    wanted = [job.kind for job in stack.backup.jobs] if "all" in kinds else list(dict.fromkeys(kinds))
    enabled = {job.kind for job in stack.backup.jobs}
    for kind in wanted:
        if kind not in enabled:
            raise BlueprintError(f"{stack.source}: nothing to back up for {kind}: that service is disabled")
    made = []
    for kind in wanted:
        final = _target(options.paths, kind, now)
        # Written to a temp file, renamed only once complete: a failed backup leaves no file.
        with atomic_output(final, 0o600) as out:
            BACKUPS[kind](options, stack, now, out)
        made.append(_describe(final))
    return RunResult(made, prune(options.paths, stack.backup.retention_days, now))


def _postgres(options, stack, now: float, out: BinaryIO) -> None:
    db = stack.database
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=int(now)) as packed:
        # --clean --if-exists: the dump recreates every object, so it restores over a live database too.
        dump = subprocess.Popen(
            [
                "podman",
                "exec",
                db.container,
                "pg_dump",
                "--clean",
                "--if-exists",
                "-p",
                str(db.port),
                "-U",
                db.user,
                "-d",
                db.name,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        shutil.copyfileobj(dump.stdout, packed)
        error = dump.stderr.read().decode(errors="replace").strip()
        if dump.wait() != 0:
            unit = stack.service("litellm_postgres").unit
            raise ToolError(
                f"pg_dump in {db.container} failed: {error.splitlines()[-1] if error else dump.returncode}",
                hint=f"is {unit} running? (systemctl --user status {unit})",
            )


def _redis(options, stack, now: float, out: BinaryIO) -> None:
    service = stack.service("litellm_redis")
    # redis-cli --rdb asks the server for a snapshot over the replication protocol (the server is
    # not blocked); REDISCLI_AUTH is in the container's environment. stdout carries only the file.
    script = (
        f'f=$(mktemp) && redis-cli -p {service.port} --rdb "$f" >/dev/null 2>&1 && cat "$f"; '
        'rc=$?; rm -f "$f"; exit $rc'
    )
    _run(["podman", "exec", service.hostname, "sh", "-c", script], stdout=out)
    if os.pread(out.fileno(), 5, 0) != b"REDIS":
        raise ToolError(f"{service.hostname}: redis-cli --rdb did not produce an RDB snapshot")


def _config(options, stack, now: float, out: BinaryIO) -> None:
    """The config file, the secret store and the rendered environment files, in one tar.gz."""
    paths = options.paths
    config_file = Path(stack.source)
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        tar.add(config_file, arcname=f"config/{config_file.name}")
        for source in (paths.secret_store, paths.env_dir):
            if source.exists():
                tar.add(source, arcname=f"secrets/{source.relative_to(paths.secrets_dir)}")


BACKUPS = {"postgres": _postgres, "redis": _redis, "config": _config}


def _describe(path: Path) -> Backup:
    match = NAME.match(path.name)
    taken = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ")
    return Backup(match["kind"], path, path.stat().st_size, taken)


def listing(paths: Paths) -> list[Backup]:
    """Every backup blueprint made, newest first."""
    found = []
    for kind in SUFFIX:
        folder = paths.backup_dir / kind
        if folder.is_dir():
            found += [_describe(p) for p in folder.iterdir() if NAME.match(p.name)]
    return sorted(found, key=lambda b: (b.taken, b.kind), reverse=True)


def newest(paths: Paths, kind: str) -> Path:
    for backup in listing(paths):
        if backup.kind == kind:
            return backup.path
    raise BlueprintError(f"no {kind} backup in {paths.backup_dir / kind}", hint=f"blueprint backup run {kind}")


def prune(paths: Paths, retention_days: int, now: float) -> list[Path]:
    """Delete backups older than the retention (by their file time); never the newest of a kind."""
    removed = []
    limit = now - retention_days * 86400
    for kind in SUFFIX:
        folder = paths.backup_dir / kind
        if not folder.is_dir():
            continue
        files = sorted((p for p in folder.iterdir() if NAME.match(p.name)), key=lambda p: p.stat().st_mtime)
        for path in files[:-1]:
            if path.stat().st_mtime < limit:
                path.unlink()
                removed.append(path)
    return removed


# ---- restore ---------------------------------------------------------------------------------


def restore(options, kind: str, path: Path) -> Iterator[str]:
    """Put a backup back, stopping what must not run meanwhile; yields what it did."""
    stack = _stack(options)
    if kind == "config":
        yield from _restore_config(options, stack, path)
        return
    service = stack.service("litellm_postgres" if kind == "postgres" else "litellm_redis")
    if service is None:
        raise BlueprintError(f"{stack.source}: {kind} is disabled in this config: nothing to restore into")
    litellm = stack.service("litellm")
    if litellm:
        systemctl("stop", litellm.unit)
        yield f"stopped {litellm.unit}"
    try:
        if kind == "postgres":
            yield from _restore_postgres(stack.database, path)
        else:
            yield from _restore_redis(stack, service, path)
    finally:
        if litellm:
            systemctl("start", litellm.unit)
            yield f"started {litellm.unit}"


def _restore_postgres(db: Database, path: Path) -> Iterator[str]:
    user, database = db.user, db.name
    psql = ["podman", "exec", "-i", db.container, "psql", "-v", "ON_ERROR_STOP=1", "-q", "-p", str(db.port), "-U", user]
    # Connected to the maintenance database, the owner replaces its own database.
    _run([*psql, "-d", "postgres", "-c", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'])
    _run([*psql, "-d", "postgres", "-c", f'CREATE DATABASE "{database}" OWNER "{user}"'])
    yield f"recreated database {database} in {db.container}"
    try:
        with gzip.open(path, "rb") as dump:
            sql = dump.read()
    except (OSError, EOFError) as exc:
        raise BlueprintError(f"{path}: not a gzip PostgreSQL dump ({exc})") from None
    _run([*psql, "-d", database], input=sql)
    yield f"restored {path.name} into {database}"


def _restore_redis(stack, service, path: Path) -> Iterator[str]:
    data = path.read_bytes()
    if data[:5] != b"REDIS":
        raise BlueprintError(f"{path}: not a Redis RDB snapshot")
    volume = next(v for v in stack.volumes if v.name == service.name)
    # Redis writes its snapshot when it stops: stop it first, then replace the file it loads at start.
    systemctl("stop", service.unit)
    yield f"stopped {service.unit}"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("dump.rdb")
        info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    _run(["podman", "volume", "import", volume.podman_name, "-"], input=archive.getvalue())
    yield f"imported {path.name} into volume {volume.podman_name}"
    systemctl("start", service.unit)
    yield f"started {service.unit}"


def _restore_config(options, stack, path: Path) -> Iterator[str]:
    paths = options.paths
    with tarfile.open(path, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        config_member = next((m for name, m in members.items() if name.startswith("config/")), None)
        store_member = members.get("secrets/secrets.env")
        if config_member is None:
            raise BlueprintError(f"{path}: no config in this backup")
        targets = [(config_member, Path(stack.source), 0o644)]
        if store_member is not None:
            targets.append((store_member, paths.secret_store, 0o600))
        for member, target, mode in targets:
            data = tar.extractfile(member).read()
            if target.exists() and target.read_bytes() != data:
                keep = target.with_name(target.name + ".before-restore")
                shutil.copy2(target, keep)
                keep.chmod(mode)
                yield f"kept the current {target.name} as {keep.name}"
            ensure_dir(target.parent, 0o700 if mode == 0o600 else 0o755)
            write_atomic(target, data, mode)
            yield f"restored {target}"
    yield "next: blueprint apply   (renders the restored config and restarts what changed)"
