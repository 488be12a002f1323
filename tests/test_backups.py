"""Backups and restores on real PostgreSQL 15 and Redis 7, started on loopback by the tests.

The containers are stood in for by the servers themselves: a fake `podman` runs `podman exec
litellm-postgres pg_dump ...` here with the container's environment, and a fake `systemctl`
stops and starts the local Redis as systemd would stop and start its container.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from blueprint import secrets
from tests.conftest import (
    FAKES,
    change_podman_world,
    cli,
    daemon_reload,
    need,
    podman_world,
    wait_for_port,
    write_config,
)

PG_USER = PG_DB = "litellm"  # the config's defaults, which database_containers starts PostgreSQL with
PG_PASSWORD = "pg-test-password"
REDIS_PASSWORD = "redis-test-password"


@pytest.fixture
def stack(home, tmp_path, database_containers):
    """Rendered config whose litellm-postgres / litellm-redis are real local servers."""
    redis_binary = need("redis-server", "redis-server")
    for client in ("psql", "pg_isready", "redis-cli"):
        need(client, f"{client} (Debian postgresql-client, redis-tools)")
    redis_dir = tmp_path / "redis-data"
    redis_dir.mkdir()
    from tests.conftest import free_port

    redis_port = free_port()
    redis_start = [
        redis_binary,
        "--port",
        str(redis_port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(redis_dir),
        "--dbfilename",
        "dump.rdb",
        "--requirepass",
        REDIS_PASSWORD,
        "--daemonize",
        "yes",
        "--pidfile",
        str(tmp_path / "redis.pid"),
        "--logfile",
        str(tmp_path / "redis.log"),
    ]
    redis_stop = ["redis-cli", "-p", str(redis_port), "-a", REDIS_PASSWORD, "--no-auth-warning", "shutdown"]
    subprocess.run(redis_start, check=True)
    wait_for_port(redis_port)

    pg, podman = database_containers(PG_PASSWORD, REDIS_PASSWORD, volumes={"systemd-litellm-redis": str(redis_dir)})
    pg_port = pg.port
    services = tmp_path / "services.json"
    services.write_text(
        json.dumps(
            {
                "services": {
                    "litellm-redis.service": {"stop": redis_stop, "start": [*redis_start, "--loglevel", "warning"]},
                }
            }
        )
    )
    config = write_config(
        tmp_path,
        {
            "podman_version": "5.4",
            "litellm_postgres": {"port": pg_port},
            "litellm_redis": {"port": redis_port},
            "backup": {"retention_days": 30},
            "llm_providers": {"openai": {"api_key": "${OPENAI_API_KEY}", "models": ["gpt-4o"]}},
        },
    )
    env = {**podman, "FAKE_SYSTEMCTL": str(services), "OPENAI_API_KEY": "sk-test"}
    assert cli("render", "--config", str(config), env=env).returncode == 0
    daemon_reload(env)
    yield {
        "config": config,
        "env": env,
        "pg_port": pg_port,
        "redis_port": redis_port,
        "home": home,
        "systemctl_log": Path(str(services) + ".log"),
        "podman_log": Path(podman["FAKE_PODMAN"] + ".log"),
    }
    subprocess.run(redis_stop, capture_output=True)


def psql(stack, sql, database=PG_DB):
    return subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(stack["pg_port"]),
            "-U",
            PG_USER,
            "-d",
            database,
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PGPASSWORD": PG_PASSWORD},
        check=True,
    ).stdout.strip()


def redis(stack, *args):
    return subprocess.run(
        ["redis-cli", "-p", str(stack["redis_port"]), "--no-auth-warning", "-a", REDIS_PASSWORD, *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def blueprint(stack, *args):
    result = cli(*args, "--config", str(stack["config"]), env=stack["env"])
    assert result.returncode == 0, result.stderr
    return result


def test_backup_destroy_restore_round_trip(stack):
    psql(stack, 'CREATE TABLE "LiteLLM_SpendLogs" (id serial primary key, model text, spend numeric)')
    psql(stack, "INSERT INTO \"LiteLLM_SpendLogs\" (model, spend) VALUES ('gpt-4o', 0.25), ('claude', 1.5)")
    redis(stack, "SET", "litellm.cache:abc", "cached answer")
    redis(stack, "SET", "router:cooldown", "1")

    result = blueprint(stack, "backup", "run")
    for kind in ("postgres", "redis", "config"):
        assert f"backup {kind}:" in result.stderr
    home = stack["home"]
    files = {p.parent.name: p for p in home.backup_dir.rglob("*") if p.is_file()}
    assert set(files) == {"postgres", "redis", "config"}
    for path in files.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    # Destroy, then restore with blueprint.
    psql(stack, 'DROP TABLE "LiteLLM_SpendLogs"')
    redis(stack, "FLUSHALL")
    restored = cli("restore", "postgres", "--yes", "--config", str(stack["config"]), env=stack["env"])
    assert restored.returncode == 0, restored.stderr
    assert psql(stack, 'SELECT model, spend FROM "LiteLLM_SpendLogs" ORDER BY id') == "gpt-4o|0.25\nclaude|1.5"
    calls = stack["systemctl_log"].read_text().splitlines()
    assert calls == [
        "stop litellm@1.service litellm@2.service",
        "start litellm@1.service litellm@2.service",
    ], "every replica is stopped around the restore"

    stack["systemctl_log"].unlink()
    restored = cli("restore", "redis", "--yes", "--config", str(stack["config"]), env=stack["env"])
    assert restored.returncode == 0, restored.stderr
    wait_for_port(stack["redis_port"])
    assert redis(stack, "GET", "litellm.cache:abc") == "cached answer"
    assert redis(stack, "GET", "router:cooldown") == "1"
    assert stack["systemctl_log"].read_text().splitlines() == [
        "stop litellm@1.service litellm@2.service",
        "stop litellm-redis.service",
        "start litellm-redis.service",
        "start litellm@1.service litellm@2.service",
    ]


def test_postgres_dump_restores_by_hand_with_psql(stack):
    psql(stack, "CREATE TABLE keys (token text)")
    psql(stack, "INSERT INTO keys VALUES ('hashed-token-1')")
    blueprint(stack, "backup", "run", "postgres")
    dump = next(stack["home"].backup_dir.glob("postgres/*.sql.gz"))
    sql = gzip.decompress(dump.read_bytes()).decode()
    assert "CREATE TABLE public.keys" in sql
    psql(stack, "CREATE DATABASE by_hand", database="postgres")
    # What a person does without blueprint: gunzip -c FILE | psql DB
    subprocess.run(
        f"gunzip -c {dump} | psql -q -h 127.0.0.1 -p {stack['pg_port']} -U {PG_USER} -d by_hand",
        shell=True,
        check=True,
        env={**os.environ, "PGPASSWORD": PG_PASSWORD},
        capture_output=True,
    )
    assert psql(stack, "SELECT token FROM keys", database="by_hand") == "hashed-token-1"


def test_config_backup_holds_config_and_secrets_and_restores_them(stack):
    home = stack["home"]
    blueprint(stack, "backup", "run", "config")
    archive = next(home.backup_dir.glob("config/*.tar.gz"))
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"config/blueprint-config.json", "secrets/secrets.env", "secrets/env/litellm.env"} <= names
    salt = secrets.Store.load(home).values["LITELLM_SALT_KEY"]
    home.secret_store.unlink()
    stack["config"].write_text("{}")
    result = cli("restore", "config", str(archive), "--yes", "--config", str(stack["config"]), env=stack["env"])
    assert result.returncode == 0, result.stderr
    assert secrets.Store.load(home).values["LITELLM_SALT_KEY"] == salt
    assert "litellm_postgres" in stack["config"].read_text()
    (kept,) = stack["config"].parent.glob("blueprint-config.json.before-restore-*")
    assert kept.read_text() == "{}"


def test_retention_prunes_only_old_backups_of_ours(stack):
    home = stack["home"]
    folder = home.backup_dir / "postgres"
    folder.mkdir(parents=True)
    now = time.time()
    aged = {}
    for days in (45, 31, 29, 2):
        path = folder / time.strftime("postgres-%Y%m%dT%H%M%SZ.sql.gz", time.gmtime(now - days * 86400))
        path.write_bytes(gzip.compress(b"-- old dump\n"))
        os.utime(path, (now - days * 86400, now - days * 86400))
        aged[days] = path
    stranger = folder / "notes.txt"
    stranger.write_text("mine")
    os.utime(stranger, (now - 90 * 86400, now - 90 * 86400))
    result = blueprint(stack, "backup", "run", "postgres")
    assert not aged[45].exists() and not aged[31].exists()
    assert aged[29].exists() and aged[2].exists()
    assert stranger.exists(), "files blueprint did not make are never pruned"
    assert result.stderr.count("pruned") == 2


def test_the_newest_backup_is_never_pruned(stack, tmp_path):
    from blueprint.ops import backups

    folder = stack["home"].backup_dir / "redis"
    folder.mkdir(parents=True)
    old = folder / "redis-20200101T000000Z.rdb"
    old.write_bytes(b"REDIS0010")
    os.utime(old, (0, 0))
    assert backups.prune(stack["home"], 30, time.time()) == []
    assert old.exists()


def test_backup_list_newest_first(stack):
    blueprint(stack, "backup", "run", "redis")
    time.sleep(1.1)
    blueprint(stack, "backup", "run", "redis")
    listing = blueprint(stack, "backup", "list").stdout.splitlines()
    assert len(listing) == 2 and all(line.startswith("redis") for line in listing)
    assert listing[0].split()[-1] > listing[1].split()[-1]


def test_backup_of_a_stopped_database_fails_clearly(stack):
    world = podman_world(stack["env"])
    world["containers"]["litellm-postgres"]["running"] = False
    change_podman_world(stack["env"], world)
    result = cli("backup", "run", "postgres", "--config", str(stack["config"]), env=stack["env"])
    assert result.returncode == 1
    assert "`podman exec litellm-postgres pg_dump --clean ...` failed: Error: can only create exec" in result.stderr
    assert "container state improper" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(stack["home"].backup_dir.glob("postgres/*")), "no half-written dump is left"


def test_postgres_health_check_of_the_unit_passes_against_the_server(stack):
    """The generated --health-cmd (pg_isready), run by /bin/sh -c as podman does."""
    from tests import injection
    from tests.test_litellm_e2e import health_command

    services = injection.quadlet_services(stack["home"].unit_dir)
    command = health_command(services, "litellm-postgres.service")
    assert subprocess.run(["sh", "-c", command], capture_output=True).returncode == 0
    stopped = command.replace(f"-p {stack['pg_port']}", "-p 1")
    assert subprocess.run(["sh", "-c", stopped], capture_output=True).returncode != 0


@pytest.mark.parametrize("kind", ["postgres", "redis", "config"])
def test_the_backup_service_runs_its_own_command(stack, kind):
    """What the timer runs, word for word as systemd splits the unit's ExecStart= (the blueprint
    it names is this test's, since the render ran with it)."""
    from tests import injection

    unit = stack["home"].systemd_user_dir / f"blueprint-backup-{kind}.service"
    line = next(line for line in unit.read_text().splitlines() if line.startswith("ExecStart="))
    words = injection.exec_words(line.removeprefix("ExecStart="))
    result = subprocess.run(words, capture_output=True, text=True, env={**os.environ, **stack["env"]}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(list((stack["home"].backup_dir / kind).iterdir())) == 1


def test_a_dump_that_stops_writing_is_stopped_not_waited_on(tmp_path):
    """A container that hangs mid-dump must not hold the nightly backup forever."""
    from blueprint import process
    from blueprint.errors import ToolTimeout

    received, pid_file = [], tmp_path / "pid"
    with pytest.raises(ToolTimeout, match="wrote nothing for 1 s"):
        process.stream(["sh", "-c", f"echo $$ > {pid_file}; echo begun; exec sleep 60"], received.append, idle=1)
    assert b"".join(received) == b"begun\n"
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2], "killed"


def test_a_dump_that_keeps_writing_is_read_to_its_end():
    from blueprint import process

    received = []
    process.stream(["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.4; done"], received.append, idle=1)
    assert b"".join(received) == b"1\n2\n3\n"


SLOW_PSQL = """#!/usr/bin/env python3
# psql loading a large dump: it takes its input a little at a time, for longer than any fixed limit.
import os, sys, time
if "-c" in sys.argv:
    sys.exit(0)
taken = 0
while chunk := os.read(0, 4096):
    taken += len(chunk)
    time.sleep(0.04)
open(os.environ["PSQL_TOOK"], "w").write(str(taken))
"""


def test_a_restore_that_takes_long_but_keeps_going_is_not_killed(home, tmp_path, monkeypatch):
    """The dump was loaded under run()'s fixed 120 s limit: a large one was killed with the
    database already dropped, and LiteLLM started on the empty one. Here every call that names no
    limit of its own gets 2 s, and the load takes about 4 s."""
    from functools import partial

    from blueprint import pipeline, process
    from blueprint.ops import restore

    config = write_config(tmp_path, {"podman_version": "5.4", "llm_providers": {"ollama": {"models": ["m"]}}})
    assert cli("render", "--config", str(config)).returncode == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "psql").write_text(SLOW_PSQL)
    (bin_dir / "psql").chmod(0o755)
    world = tmp_path / "world.json"
    world.write_text(json.dumps({"containers": {"litellm-postgres": {"env": {"PSQL_TOOK": str(tmp_path / "took")}}}}))
    monkeypatch.setenv("PATH", f"{bin_dir}:{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PODMAN", str(world))
    monkeypatch.setenv("FAKE_SYSTEMCTL", str(tmp_path / "services.json"))
    daemon_reload({"FAKE_SYSTEMCTL": str(tmp_path / "services.json"), "PATH": os.environ["PATH"]})
    monkeypatch.setattr(process, "run", partial(process.run, timeout=2))
    sql = b"INSERT INTO t VALUES ('a row of the spend logs');\n" * 8000  # 400 kB: 100 reads of 4 kB
    dump = tmp_path / "postgres-20260101T000000Z.sql.gz"
    dump.write_bytes(gzip.compress(sql))

    steps = list(restore.restore(pipeline.Options.from_env(config), "postgres", dump))
    assert int((tmp_path / "took").read_text()) == len(sql), "psql was given the whole dump"
    assert steps[1:3] == [f"recreated database {PG_DB} in litellm-postgres", f"restored {dump.name} into {PG_DB}"]
    assert steps[0].startswith("stopped litellm") and steps[-1].startswith("started litellm")


def test_input_fed_to_a_command_that_stops_taking_it_is_stopped_not_waited_on(tmp_path):
    """A psql hung on a stuck container: neither taking input nor writing, it is killed."""
    from blueprint import process
    from blueprint.errors import ToolTimeout

    pid_file = tmp_path / "pid"
    with pytest.raises(ToolTimeout, match="took no input and wrote nothing for 1 s"):
        process.feed(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"], iter([b"x" * 65536] * 64), idle=1)
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2], "killed"


def test_input_fed_to_a_command_that_fails_midway_names_its_last_words():
    """psql with ON_ERROR_STOP exits at the first error, with most of the dump not read yet."""
    from blueprint import process
    from blueprint.errors import ToolError

    failing = ["sh", "-c", "head -c 100 >/dev/null; echo 'ERROR:  relation \"t\" does not exist' >&2; exit 3"]
    with pytest.raises(ToolError, match='failed: ERROR:  relation "t" does not exist'):
        process.feed(failing, iter([b"x" * 65536] * 64))
    received = []
    process.feed(["sh", "-c", "wc -c"], iter([b"ab", b"", b"cd"]), sink=received.append)
    assert b"".join(received).strip() == b"4"


def test_backups_run_at_once_all_succeed_and_none_overwrites_another(home, tmp_path):
    """Six `backup run config` in the same second removed each other's temp files (exit 1 naming
    one), and backups of the same second overwrote each other."""
    from blueprint import pipeline
    from blueprint.ops import backups

    config = write_config(tmp_path, {"podman_version": "5.4", "llm_providers": {"ollama": {"models": ["m"]}}})
    assert cli("render", "--config", str(config)).returncode == 0
    command = [str(Path(sys.executable).parent / "blueprint"), "backup", "run", "config"]
    children = [
        subprocess.Popen([*command, "--config", str(config)], stderr=subprocess.PIPE, text=True) for _ in range(6)
    ]
    for child in children:
        _, error = child.communicate(timeout=120)
        assert child.returncode == 0, error
    assert len(list((home.backup_dir / "config").iterdir())) == 6
    # In the same second (one clock for all): each a file of its own, listed newest first.
    options = pipeline.Options.from_env(config)
    now = time.time()
    made = [backups.run(options, ["config"], now=now).made[0].path for _ in range(3)]
    assert len(set(made)) == 3 and all(path.exists() for path in made)
    assert [b.path for b in backups.listing(home)][:3] == made[::-1]
    assert backups.newest(home, "config") == made[-1]


SLOW_PG_DUMP = """#!/bin/sh
# pg_dump of a large database: it has begun, and goes on until the test lets it end.
echo '-- begun'
touch "$DUMP_BEGUN"
while [ ! -e "$DUMP_MAY_END" ]; do sleep 0.05; done
echo '-- the end'
"""
FAKE_REDIS_CLI = """#!/bin/sh
# redis-cli -p PORT --rdb FILE: a snapshot in FILE.
while [ $# -gt 0 ]; do [ "$1" = --rdb ] && printf 'REDIS0011snapshot' > "$2"; shift; done
"""


def test_a_long_dump_holds_up_no_other_backup_and_no_render(home, tmp_path, monkeypatch):
    """`backup run` held the state lock for the whole pg_dump: a dump of 11 minutes made a `backup
    run redis` fail after 600 s, and one of 40 the 02:30 and 02:45 timers, an apply or a `secrets
    set` meanwhile. A backup of the same kind still waits for it (here 2 s, then gives up)."""
    from functools import partial

    from blueprint import locking, pipeline
    from blueprint.ops import backups

    tools = tmp_path / "tools"
    tools.mkdir()
    for name, script in (("pg_dump", SLOW_PG_DUMP), ("redis-cli", FAKE_REDIS_CLI)):
        (tools / name).write_text(script)
        (tools / name).chmod(0o755)
    begun, may_end = tmp_path / "begun", tmp_path / "may-end"
    world = {
        "containers": {
            "litellm-postgres": {"env": {"DUMP_BEGUN": str(begun), "DUMP_MAY_END": str(may_end)}},
            "litellm-redis": {},
        }
    }
    (tmp_path / "world.json").write_text(json.dumps(world))
    monkeypatch.setenv("PATH", f"{tools}:{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PODMAN", str(tmp_path / "world.json"))
    config = write_config(tmp_path, {"podman_version": "5.4", "llm_providers": {"ollama": {"models": ["m"]}}})
    assert cli("render", "--config", str(config)).returncode == 0
    dump = subprocess.Popen(
        [str(Path(sys.executable).parent / "blueprint"), "backup", "run", "postgres", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(1200):  # the dump has begun (at most a minute)
            if begun.exists() or dump.poll() is not None:
                break
            time.sleep(0.05)
        assert begun.exists(), dump.stderr.read() if dump.poll() is not None else "pg_dump never began"
        # Whatever waits for a lock gives up after 2 s here (600 s otherwise).
        short = partial(locking.lock, wait=2)
        monkeypatch.setattr(locking, "lock", short)
        monkeypatch.setattr(backups, "lock", short)
        options = pipeline.Options.from_env(config)
        for kind in ("redis", "config"):
            result = backups.run(options, [kind])
            assert not result.failed, result.failed
            assert [made.kind for made in result.made] == [kind]
        config.write_text(json.dumps({"podman_version": "5.4", "llm_providers": {"ollama": {"models": ["m", "n"]}}}))
        assert pipeline.render(options).written, "a render writes while the dump runs"
        second = backups.run(options, ["postgres"])
        assert not second.made and "another blueprint has been writing for 2 s" in second.failed[0][1].message
    finally:
        may_end.touch()
        _, said = dump.communicate(timeout=120)
    assert dump.returncode == 0, said
    (made,) = (home.backup_dir / "postgres").iterdir()
    assert gzip.decompress(made.read_bytes()) == b"-- begun\n-- the end\n"
