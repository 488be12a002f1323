"""Backups and restores of the running stack: a PostgreSQL gzip dump, a Redis snapshot, and the
config with its secrets, kept backup.retention_days days.

Everything reaches the containers through `podman exec` / `podman volume import`, the way a person
would do it by hand: a PostgreSQL backup is a plain `pg_dump` gzipped, which `gunzip -c FILE |
psql` restores without blueprint. Files are written 0600 (they hold keys, spend and secrets) under
$XDG_DATA_HOME/blueprint/backups/<kind>/, and retention deletes only files of that naming pattern.
"""

from __future__ import annotations

import gzip
import io
import itertools
import os
import re
import tarfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from blueprint import configfile, process
from blueprint.errors import BackupError, BlueprintError, ConfigError, SecretError, ToolError
from blueprint.files import atomic_output, digest, ensure_dir, lock, read_bytes, write_atomic
from blueprint.kinds import BackupKind
from blueprint.model.types import Database
from blueprint.paths import SHIPPED, Paths, config_file
from blueprint.systemd import systemctl

SUFFIX = {BackupKind.POSTGRES: ".sql.gz", BackupKind.REDIS: ".rdb", BackupKind.CONFIG: ".tar.gz"}
_SUFFIXES = "|".join(map(re.escape, SUFFIX.values()))
NAME = re.compile(rf"^(?P<kind>{'|'.join(BackupKind)})-(?P<stamp>\d{{8}}T\d{{6}}Z)(?P<suffix>{_SUFFIXES})\Z")
PODMAN_HINT = "backups reach the containers through podman"


@dataclass(frozen=True)
class BackupFile:
    kind: BackupKind
    path: Path
    size: int
    taken: datetime


def _stack(options):
    from blueprint import pipeline

    return pipeline.build_stack(options).stack


def _target(paths: Paths, kind: str, now: float) -> Path:
    folder = paths.backup_dir / kind
    ensure_dir(folder, 0o700)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return folder / f"{kind}-{stamp}{SUFFIX[kind]}"


@dataclass(frozen=True)
class RunResult:
    made: list[BackupFile]
    pruned: list[Path]
    failed: list[tuple[BackupKind, BlueprintError]]  # each kind is tried, whatever the others did


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
    taken = take(options, stack, wanted, now)
    return RunResult(taken.made, prune(options.paths, stack.backup.retention_days, now), taken.failed)


def take(options, stack, kinds: Sequence[str], now: float | None = None) -> RunResult:
    """Back up these kinds now, whether or not the timers are on (upgrade's way back does not
    depend on a schedule), into the same folders; nothing is pruned."""
    now = time.time() if now is None else now
    made, failed = [], []
    for kind in kinds:
        final = _target(options.paths, kind, now)
        try:
            # Written to a temp file, renamed only once complete: a failed backup leaves no file.
            with atomic_output(final, 0o600) as out:
                BACKUPS[kind](options, stack, now, out)
        except BlueprintError as error:
            failed.append((BackupKind(kind), error))
            continue
        made.append(_describe(final))
    return RunResult(made, [], failed)


def _postgres(options, stack, now: float, out: BinaryIO) -> None:
    db = stack.database
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=int(now)) as packed:
        # --clean --if-exists: the dump recreates every object, so it restores over a live database too.
        dump = ["podman", "exec", db.container, "pg_dump", "--clean", "--if-exists"]
        unit = stack.service("litellm_postgres").unit
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


def _redis(options, stack, now: float, out: BinaryIO) -> None:
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


def _config(options, stack, now: float, out: BinaryIO) -> None:
    """The config file, the secret store and the rendered environment files, in one tar.gz."""
    paths = options.paths
    config_file = Path(stack.source)
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        # The file's content, through a link: a config kept with the dotfiles is a link, which
        # restores nothing.
        with config_file.open("rb") as config:
            tar.addfile(tar.gettarinfo(arcname=f"config/{config_file.name}", fileobj=config), config)
        for source in (paths.secret_store, paths.env_dir):
            if source.exists():
                tar.add(source, arcname=f"secrets/{source.relative_to(paths.secrets_dir)}")


BACKUPS = {BackupKind.POSTGRES: _postgres, BackupKind.REDIS: _redis, BackupKind.CONFIG: _config}


def _describe(path: Path) -> BackupFile:
    match = NAME.match(path.name)
    taken = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ")
    return BackupFile(BackupKind(match["kind"]), path, path.stat().st_size, taken)


def listing(paths: Paths) -> list[BackupFile]:
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


def restore(options, kind: str, path: Path, *, replace_salt_key: bool = False) -> Iterator[str]:
    """Put a backup back, stopping what must not run meanwhile; yields what it did.

    The file is read and checked before anything stops: a damaged backup restores nothing. The
    whole restore holds the lock, so no render or apply runs in the middle of it. A config
    backup's salt key replaces the one in use only with `replace_salt_key`.
    """
    with lock(options.paths.lock):
        yield from _restore(options, kind, path, replace_salt_key)


def _restore(options, kind: str, path: Path, replace_salt_key: bool) -> Iterator[str]:
    kind = BackupKind(kind)
    if kind is BackupKind.CONFIG:
        # The config in use is not loaded: a config that no longer loads is what this mends.
        yield from _restore_config(options, path, replace_salt_key=replace_salt_key)
        return
    stack = _stack(options)
    service = stack.service(kind.service_key)
    if service is None:
        raise BlueprintError(f"{stack.source}: {kind} is disabled in this config: nothing to restore into")
    snapshot = _read_snapshot(path) if kind is BackupKind.REDIS else _check_dump(path)
    litellm = [s.unit for s in stack.services_of("litellm")]
    if litellm:
        systemctl("stop", *litellm)
        yield f"stopped {', '.join(litellm)}"
    try:
        if kind is BackupKind.POSTGRES:
            yield from _restore_postgres(stack.database, path)
        else:
            yield from _restore_redis(stack, service, path, snapshot)
    finally:
        if litellm:
            systemctl("start", *litellm)
            yield f"started {', '.join(litellm)}"


CHUNK = 1 << 20  # bytes of a dump read at a time: a dump may be larger than memory


def _dump_chunks(path: Path) -> Iterator[bytes]:
    """The SQL of a gzip dump, a chunk at a time."""
    try:
        with gzip.open(path, "rb") as dump:
            while chunk := dump.read(CHUNK):
                yield chunk
    except (OSError, EOFError) as exc:
        raise BackupError(f"{path}: not a gzip PostgreSQL dump ({exc})") from None


def _check_dump(path: Path) -> None:
    """Read the whole dump once before anything stops: gzip checks its CRC and length only at the
    end, and a dump found damaged there must not have replaced the database."""
    try:
        for _ in _dump_chunks(path):
            pass
    except BackupError as error:
        raise BackupError(f"{error.message}; nothing was restored") from None


def _read_snapshot(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:5] != b"REDIS":
        raise BackupError(f"{path}: not a Redis RDB snapshot; nothing was restored")
    return data


# Seconds psql may go without taking input or printing. A restore has no limit on the whole (it
# takes as long as the dump is large), but an index built over a large table takes no input for a
# while: longer than a dump's silence, and still far from a container that hangs for good.
RESTORE_IDLE = 1800


def _restore_postgres(db: Database, path: Path) -> Iterator[str]:
    user, database = db.user, db.name
    psql = ["podman", "exec", "-i", db.container, "psql", "-v", "ON_ERROR_STOP=1", "-q", "-p", str(db.port), "-U", user]
    # Connected to the maintenance database, the owner replaces its own database.
    process.run([*psql, "-d", "postgres", "-c", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'], hint=PODMAN_HINT)
    process.run([*psql, "-d", "postgres", "-c", f'CREATE DATABASE "{database}" OWNER "{user}"'], hint=PODMAN_HINT)
    yield f"recreated database {database} in {db.container}"
    process.feed([*psql, "-d", database], _dump_chunks(path), idle=RESTORE_IDLE, hint=PODMAN_HINT)
    yield f"restored {path.name} into {database}"


def _restore_redis(stack, service, path: Path, data: bytes) -> Iterator[str]:
    volume = next(v for v in stack.volumes if v.name == service.name)
    # Redis writes its snapshot when it stops: stop it first, then replace the file it loads at start.
    systemctl("stop", service.unit)
    yield f"stopped {service.unit}"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("dump.rdb")
        info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    process.run(["podman", "volume", "import", volume.podman_name, "-"], input=archive.getvalue(), hint=PODMAN_HINT)
    yield f"imported {path.name} into volume {volume.podman_name}"
    systemctl("start", service.unit)
    yield f"started {service.unit}"


@dataclass(frozen=True)
class _Member:
    """A file of a config backup: its name in the archive and its bytes."""

    name: str
    data: bytes


def _read_config_backup(path: Path) -> tuple[_Member, _Member | None]:
    """The config and the secret store (None if the backup has none) a config backup holds."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            config = next((m for name, m in members.items() if name.startswith("config/")), None)
            if config is None:
                raise BackupError(f"{path}: no config in this backup; nothing was restored")
            store = members.get("secrets/secrets.env")
            return (
                _Member(config.name, tar.extractfile(config).read()),
                _Member(store.name, tar.extractfile(store).read()) if store is not None else None,
            )
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{path}: not a config backup ({exc}); nothing was restored") from None


def _check_config_backup(options, path: Path, config: _Member, store: _Member | None) -> None:
    """Refuse a config or store that would not load: put back, it made every later command fail.
    Both are checked as the commands that read them check them, before anything is written."""
    from blueprint import pipeline, secrets

    try:
        pipeline.check_config(config.data, f"{path}: {config.name}", options.environ)
        if store is not None:
            label = f"{path}: {store.name}"
            secrets.Store.parse(options.paths.secret_store, store.data, label=label).check_values(label)
    except (ConfigError, SecretError) as error:
        raise BackupError(
            f"{error.message}; nothing was restored",
            hint="restore another backup (blueprint backup list); the config and secrets in use are unchanged",
        ) from None


SALT_KEY = "LITELLM_SALT_KEY"


def _check_frozen(paths: Paths, path: Path, store: _Member | None, replace_salt_key: bool) -> None:
    """A store whose frozen secrets differ from those in use (in the store, or in the deployment's
    files when the store is lost) is not restored. The salt key encrypts the credentials in
    PostgreSQL, so one of the two is right for the database and only the person restoring knows
    which (a database restored from the same time needs the backup's; the database as it is needs
    the current one): --replace-salt-key says. PostgreSQL keeps the password it was made with."""
    from blueprint import secrets
    from blueprint.deployed import Deployed

    if store is None:
        return
    restored = secrets.Store.parse(paths.secret_store, store.data).values
    current = secrets.readable_values(paths.secret_store)
    deployed = Deployed.load(paths)
    for name, why in secrets.FROZEN.items():
        value = restored.get(name)
        if value is None or (name == SALT_KEY and replace_salt_key):
            continue
        others = [str(paths.secret_store)] if current.get(name) not in (None, value) else []
        others += [held.where for held in deployed.others(name, value)]
        if others:
            raise SecretError(
                f"{path}: {store.name}: {name} differs from the one in use ({', '.join(others)}); nothing was "
                f"restored: {why}",
                hint=RESTORE_HINTS[name],
            )


RESTORE_HINTS = {
    SALT_KEY: "if the database holds credentials encrypted with the backup's salt key (you restore its postgres "
    "backup too), pass --replace-salt-key; the current store is kept as secrets.env.before-restore-*",
    "POSTGRES_PASSWORD": "the database in use keeps the password it was made with: restore this store only into "
    "a deployment made with it, or give the database the backup's password first (ALTER ROLE)",
}


def _restore_config(options, path: Path, *, replace_salt_key: bool = False) -> Iterator[str]:
    from blueprint import secrets
    from blueprint.deployed import choose

    paths = options.paths
    config_member, store_member = _read_config_backup(path)
    _check_config_backup(options, path, config_member, store_member)
    _check_frozen(paths, path, store_member, replace_salt_key)
    config = config_member.data
    store = store_member.data if store_member is not None else None
    config_path, origin = config_file(options.config_path, options.environ)
    if origin == SHIPPED:
        raise BlueprintError(
            "restore config: the config in use is the default shipped with blueprint, which is not yours to replace",
            hint="say where the restored config goes: blueprint restore config --config ./blueprint-config.json",
        )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    yield from _put_back(config, config_path, 0o644, stamp, configfile.write)
    if store is not None:
        yield from _put_back(store, paths.secret_store, 0o600, stamp, _write_store)
        salt = secrets.Store.parse(paths.secret_store, store).values.get(SALT_KEY)
        if replace_salt_key and salt is not None:
            choose(paths, SALT_KEY, salt)  # the render that follows deploys it, over the deployment's
    yield "next: blueprint apply   (renders the restored config and restarts what changed)"


def _put_back(data: bytes, target: Path, mode: int, stamp: str, write: Callable[[Path, bytes], None]) -> Iterator[str]:
    """Write `data` to `target` with `write`, first keeping what it replaces in a file of its own
    beside it: private from its first byte, and never more open than `mode` or the file it copies."""
    current = read_bytes(target)
    if current is not None and current != data:
        keep = next(
            k
            for n in itertools.count()
            if not (k := target.with_name(f"{target.name}.before-restore-{stamp}" + (f".{n}" if n else ""))).exists()
        )
        with atomic_output(keep, mode & target.stat().st_mode) as out:
            out.write(current)
        yield f"kept the current {target.name} as {keep.name}"
    write(target, data)
    yield f"restored {target}"


def _write_store(target: Path, data: bytes) -> None:
    """The secret store: a private file in a private folder."""
    ensure_dir(target.parent, 0o700)
    write_atomic(target, data, 0o600)
