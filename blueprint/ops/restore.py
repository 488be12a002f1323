"""Restores: a backup put back, checked whole before anything stops or is replaced.

A PostgreSQL dump is streamed into psql, a Redis snapshot imported into its volume with Redis
stopped, and a config backup's config and secret store written back, what they replace kept beside
them. Each holds the lock, so no render or apply runs in the middle of it.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from blueprint import configfile, process
from blueprint.errors import BackupError, BlueprintError, ConfigError, FileRefused, SecretError
from blueprint.files import atomic_output, write_atomic
from blueprint.folders import ensure_dir
from blueprint.kinds import BackupKind
from blueprint.locking import lock
from blueprint.model.types import Database
from blueprint.ops.backups import PODMAN_HINT, kind_lock
from blueprint.paths import APPLIED, SHIPPED, Paths, config_file
from blueprint.reading import MAX_CONFIG, open_regular, read_bytes, size
from blueprint.systemd import systemctl


def restore(options, kind: str, path: Path, *, replace_salt_key: bool = False) -> Iterator[str]:
    """Put a backup back, stopping what must not run meanwhile; yields what it did.

    The file is read and checked before anything stops: a damaged backup restores nothing. The
    whole restore holds the lock, so no render or apply runs in the middle of it, and the lock of
    the kind's backup folder, so no backup of that kind dumps what is being replaced or prunes the
    file being read. A config backup's salt key replaces the one in use only with `replace_salt_key`.
    """
    with lock(options.paths.lock), kind_lock(options.paths, kind):
        yield from _restore(options, kind, path, replace_salt_key)


def _restore(options, kind: str, path: Path, replace_salt_key: bool) -> Iterator[str]:
    kind = BackupKind(kind)
    if kind is BackupKind.CONFIG:
        # The config in use is not loaded: a config that no longer loads is what this mends.
        yield from _restore_config(options, path, replace_salt_key=replace_salt_key)
        return
    from blueprint import pipeline

    stack = pipeline.build_stack(options).stack
    service = stack.service(kind.service_key)
    if service is None:
        raise BlueprintError(f"{stack.source}: {kind} is disabled in this config: nothing to restore into")
    if kind is BackupKind.POSTGRES:
        _check_dump(path)
    with _open_snapshot(path) if kind is BackupKind.REDIS else contextlib.nullcontext() as snapshot:
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


def _open_backup(path: Path) -> BinaryIO:
    """A backup file, open for reading: a regular file only (a FIFO would hold the restore, and the
    lock, until a writer came; /dev/zero would never end)."""
    try:
        return open_regular(path)
    except FileRefused as exc:
        raise BackupError(exc.message) from None
    except OSError as exc:
        raise BackupError(f"{path}: cannot read: {exc.strerror}") from None


CHUNK = 1 << 20  # bytes of a dump read at a time: a dump may be larger than memory


def _dump_chunks(path: Path) -> Iterator[bytes]:
    """The SQL of a gzip dump, a chunk at a time."""
    try:
        with _open_backup(path) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as dump:
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


def _open_snapshot(path: Path) -> BinaryIO:
    """A Redis snapshot, open, its first bytes checked; it is streamed, never read whole (it is
    as large as Redis's data)."""
    try:
        handle = _open_backup(path)
    except BackupError as error:
        raise BackupError(f"{error.message}; nothing was restored") from None
    if handle.read(5) != b"REDIS":
        handle.close()
        raise BackupError(f"{path}: not a Redis RDB snapshot; nothing was restored")
    return handle


def _tar_of(source: BinaryIO, path: Path, name: str) -> Iterator[bytes]:
    """A tar archive holding `source` as `name`, a chunk at a time (`podman volume import` reads one)."""
    size = os.fstat(source.fileno()).st_size
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    source.seek(0)
    left = size
    while left:
        chunk = source.read(min(CHUNK, left))
        if not chunk:
            raise BackupError(f"{path}: shortened while it was restored")
        left -= len(chunk)
        yield chunk
    yield bytes(-size % tarfile.BLOCKSIZE) + bytes(2 * tarfile.BLOCKSIZE)  # the end of the archive


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


def _restore_redis(stack, service, path: Path, snapshot: BinaryIO) -> Iterator[str]:
    volume = service.volume
    # Redis writes its snapshot when it stops: stop it first, then replace the file it loads at start.
    systemctl("stop", service.unit)
    yield f"stopped {service.unit}"
    archive = _tar_of(snapshot, path, "dump.rdb")
    process.feed(["podman", "volume", "import", volume.podman_name, "-"], archive, hint=PODMAN_HINT)
    yield f"imported {path.name} into volume {volume.podman_name}"
    systemctl("start", service.unit)
    yield f"started {service.unit}"


@dataclass(frozen=True)
class _Member:
    """A file of a config backup: its name in the archive and its bytes."""

    name: str
    data: bytes


# A config backup holds a config, a store and a few environment files, each far smaller than a
# config may be: a member larger, or more members, is not one (and is not read into memory).
MAX_MEMBERS = 1000


def _read_config_backup(path: Path) -> tuple[_Member, _Member | None]:
    """The config and the secret store (None if the backup has none) a config backup holds."""
    try:
        raw = _open_backup(path)
    except BackupError as error:
        raise BackupError(f"{error.message}; nothing was restored") from None
    try:
        with raw, tarfile.open(fileobj=raw, mode="r:gz") as tar:
            members = _files(path, tar)
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


def _files(path: Path, tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """The files of an archive by name, each header checked before the next is read: the data of a
    member too large is never inflated, let alone read."""
    files = {}
    for count, member in enumerate(tar, 1):
        if member.size > MAX_CONFIG or count > MAX_MEMBERS:
            why = f"{member.name} is larger than {size(MAX_CONFIG)}" if count <= MAX_MEMBERS else "too many files"
            raise BackupError(f"{path}: not a config backup ({why}); nothing was restored")
        if member.isfile():
            files[member.name] = member
    return files


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


def config_target(options) -> Path:
    """Where a config backup's config goes: the person's config, never one they do not edit (asked
    before anything is read, and before the question is put)."""
    config_path, origin = config_file(options.config_path, options.environ)
    where = "blueprint restore config --config ./blueprint-config.json"
    if origin == SHIPPED:
        raise ConfigError(
            "restore config: the config in use is the default shipped with blueprint, which is not yours to replace",
            hint=f"say where the restored config goes: {where}",
        )
    if origin == APPLIED:
        # Restored there, it would be put back by the next apply from the person's own config.
        raise ConfigError(
            f"restore config: {config_path}: this is blueprint's copy of the config last rendered, not your config",
            hint=f"run restore in the folder of your blueprint-config.json, or say where it goes: {where}",
        )
    return config_path


def _restore_config(options, path: Path, *, replace_salt_key: bool = False) -> Iterator[str]:
    from blueprint import secrets
    from blueprint.deployed import choose

    paths = options.paths
    config_path = config_target(options)  # before the backup is read
    config_member, store_member = _read_config_backup(path)
    _check_config_backup(options, path, config_member, store_member)
    _check_frozen(paths, path, store_member, replace_salt_key)
    config = config_member.data
    store = store_member.data if store_member is not None else None
    # What each write replaces, read before the first: one that cannot be (a FIFO, a device, a
    # folder) stops the restore with nothing written.
    current_config = read_bytes(config_path)
    current_store = read_bytes(paths.secret_store) if store is not None else None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    yield from _put_back(config, config_path, current_config, 0o644, stamp, configfile.write)
    if store is not None:
        yield from _put_back(store, paths.secret_store, current_store, 0o600, stamp, _write_store)
        salt = secrets.Store.parse(paths.secret_store, store).values.get(SALT_KEY)
        if replace_salt_key and salt is not None:
            choose(paths, SALT_KEY, salt)  # the render that follows deploys it, over the deployment's
    yield "next: blueprint apply   (renders the restored config and restarts what changed)"


def _put_back(
    data: bytes, target: Path, current: bytes | None, mode: int, stamp: str, write: Callable[[Path, bytes], None]
) -> Iterator[str]:
    """Write `data` to `target` with `write`, first keeping what it replaces (`current`) in a file of
    its own beside it: private from its first byte, and never more open than `mode` or the file it copies."""
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
