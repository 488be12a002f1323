"""The booted gateway as its user, its clients and its operator reach it.

Everything goes through the real interfaces: the config file and `blueprint` as bp, the API on the
published port of 127.0.0.1, `systemctl --user show` for what systemd did, and `podman exec` into
the containers for what PostgreSQL and Redis hold. Nothing here touches a unit by hand.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from blueprint.formats import env_lines
from tests.boot.harness import HOME, Host

CONFIG = f"{HOME}/blueprint-config.json"
SECRET_STORE = f"{HOME}/.config/blueprint/secrets.env"
ENV_DIR = f"{HOME}/.config/blueprint/env"
UNIT_DIR = f"{HOME}/.config/containers/systemd"
# The stack's units, dependencies first: two LiteLLM replicas (instances of litellm@.service) behind
# the front door, which publishes the API.
REPLICAS = ("litellm@1", "litellm@2")
UNITS = ("litellm-postgres", "litellm-redis", *REPLICAS, "litellm-front")
ENV_FILES = ("litellm-postgres", "litellm-redis", "litellm")  # the replicas share one
PORT = 4000  # litellm.published_port's default


def container(unit: str) -> str:
    """The container a unit runs: an instance's is named by ContainerName=litellm-%i."""
    return unit.replace("@", "-")


def services(units: Iterable[str] = UNITS) -> list[str]:
    return [f"{unit}.service" for unit in units]


def config(*, backend: str = "file", extra_providers: dict | None = None, redis: bool = True) -> dict:
    """A small gateway: one worker per replica, few users, models that answer with mock_response (no
    network), each priced by LiteLLM's own price map."""
    providers = {
        "openai": {
            "api_key": "${OPENAI_API_KEY}",
            "models": [
                {"id": "gpt-4o", "mock_response": "hi from gpt-4o"},
                {"id": "gpt-4o-mini", "mock_response": "hi from gpt-4o-mini"},
            ],
        },
        "anthropic": {
            "api_key": "${ANTHROPIC_API_KEY}",
            "models": [{"id": "claude-sonnet-4-5", "mock_response": "hi from claude"}],
        },
        **(extra_providers or {}),
    }
    data = {
        "litellm": {"num_workers": 1},
        "sizing": {"users": 10},
        "secrets": {"backend": backend},
        "llm_providers": providers,
    }
    if not redis:
        data["litellm"]["requires"] = ["litellm_postgres"]
        data["litellm_redis"] = {"enabled": False}
        data["cache"] = {"enabled": False}
    return data


def mock_answers(data: dict) -> dict[str, str]:
    """Model name -> the answer it must give, for every model of a config."""
    return {
        model.get("name", model["id"]): model["mock_response"]
        for provider in data["llm_providers"].values()
        for model in provider["models"]
    }


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: dict

    @property
    def text(self) -> str:
        return self.body["choices"][0]["message"]["content"]


class Gateway:
    """bp's gateway on the booted host."""

    def __init__(self, host: Host) -> None:
        self.host = host

    # ---- as bp ------------------------------------------------------------------------------------

    def write_config(self, data: dict) -> None:
        self.host.write_file(CONFIG, json.dumps(data, indent=2) + "\n")

    def set_secret(self, name: str, value: str) -> None:
        """`blueprint secrets set NAME` with the value on stdin, as a person pipes it in."""
        result = self.host.blueprint("secrets", "set", name, input=value + "\n")
        assert result.returncode == 0, result.stderr

    def apply(self):
        """`blueprint apply` as bp in its home (./blueprint-config.json); the result, for asserts."""
        return self.host.blueprint("apply", timeout=900)

    def secrets(self) -> dict[str, str]:
        """The secret store, read as bp (the way a client would fetch the master key)."""
        return _env_lines(self.host.user(["cat", SECRET_STORE]).stdout)

    def env_file(self, container: str) -> dict[str, str]:
        return _env_lines(self.host.user(["cat", f"{ENV_DIR}/{container}.env"]).stdout)

    @property
    def master_key(self) -> str:
        return self.secrets()["LITELLM_MASTER_KEY"]

    # ---- systemd ---------------------------------------------------------------------------------

    def invocation_ids(self, units: Iterable[str] = UNITS) -> dict[str, str]:
        """Each unit's InvocationID: systemd makes a new one at every (re)start."""
        return {unit: self.host.show(f"{unit}.service", "InvocationID")["InvocationID"] for unit in units}

    def active(self, unit: str) -> str:
        return self.host.systemctl("is-active", unit, check=False).stdout.strip()

    def wait_active(self, units: Iterable[str], timeout: float = 300) -> float:
        """Seconds until every unit is active; AssertionError with their states after TIMEOUT."""
        start = time.monotonic()
        units = list(units)
        while True:
            states = {unit: self.active(unit) for unit in units}
            if all(state == "active" for state in states.values()):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise AssertionError(f"not active after {timeout} s: {states}")
            time.sleep(1)

    # ---- the API ---------------------------------------------------------------------------------

    def request(self, path: str, body: dict | None = None, key: str | None = None, port: int = PORT) -> Response:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.host.url(port, path), data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return Response(answer.status, {k.lower(): v for k, v in answer.headers.items()}, _json(answer.read()))
        except urllib.error.HTTPError as error:
            return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, _json(error.read()))

    def chat(
        self, model: str, text: str, key: str | None = None, cache: dict | None = None, port: int = PORT
    ) -> Response:
        body = {"model": model, "messages": [{"role": "user", "content": text}]}
        if cache is not None:
            body["cache"] = cache
        return self.request("/v1/chat/completions", body, key=key, port=port)

    def wait_answering(
        self, timeout: float = 120, port: int = PORT, given_up: threading.Event | None = None
    ) -> float | None:
        """Seconds until /health/liveliness answers 200 on the published PORT (None once `given_up` is set)."""
        start = time.monotonic()
        while not (given_up and given_up.is_set()):
            try:
                with urllib.request.urlopen(self.host.url(port, "/health/liveliness"), timeout=5) as answer:
                    if answer.status == 200:
                        return time.monotonic() - start
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() - start > timeout:
                raise AssertionError(f"/health/liveliness did not answer on 127.0.0.1:{port} within {timeout} s")
            time.sleep(0.2)
        return None

    # ---- inside the containers ---------------------------------------------------------------------

    def ask_replica(self, unit: str, model: str) -> Response:
        """A chat completion sent to one replica directly, from inside its container (no port of a
        replica is published), with the master key of its own environment."""
        command = ["podman", "exec", "-i", container(unit), "python3", "-c", ASK_HERE, model]
        answer = json.loads(self.host.manager(command).stdout)
        return Response(answer["status"], {}, answer["body"])

    def psql(self, sql: str, *, password: str | None = None, check: bool = True):
        """psql in the PostgreSQL container: over TCP with PASSWORD (read from stdin, never argv),
        else on the local socket (trust, like the official image)."""
        if password is None:
            command = ["podman", "exec", "litellm-postgres", "psql", "-U", "litellm", "-d", "litellm"]
            return self.host.manager([*command, "-v", "ON_ERROR_STOP=1", "-tAc", sql], check=check)
        script = (
            "read -r PGPASSWORD && export PGPASSWORD && exec psql -h 127.0.0.1 -U litellm -d litellm "
            '-v ON_ERROR_STOP=1 -tAc "$0"'
        )
        command = ["podman", "exec", "-i", "litellm-postgres", "sh", "-c", script, sql]
        return self.host.manager(command, input=password + "\n", check=check)

    def redis(self, *args: str, check: bool = True):
        """redis-cli in the Redis container, authenticated by the REDISCLI_AUTH its unit gives it."""
        return self.host.manager(["podman", "exec", "litellm-redis", "redis-cli", "-p", "6379", *args], check=check)


# Run in a replica: one chat completion to 127.0.0.1:4000 with its LITELLM_MASTER_KEY; prints
# {"status": ..., "body": ...}.
ASK_HERE = """
import json, os, sys, urllib.error, urllib.request
body = {"model": sys.argv[1], "messages": [{"role": "user", "content": "which replica?"}], "cache": {"no-cache": True}}
request = urllib.request.Request("http://127.0.0.1:4000/v1/chat/completions", data=json.dumps(body).encode(),
    headers={"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["LITELLM_MASTER_KEY"]})
try:
    with urllib.request.urlopen(request, timeout=30) as answer:
        print(json.dumps({"status": answer.status, "body": json.load(answer)}))
except urllib.error.HTTPError as error:
    print(json.dumps({"status": error.code, "body": {"raw": error.read().decode(errors="replace")}}))
"""


@dataclass
class Sent:
    at: float  # seconds after the load began
    seconds: float  # until the answer (or the error)
    outcome: int | str  # the HTTP status, or the error's name


@dataclass
class Load:
    """A steady loop of chat completions through the front door on 127.0.0.1, RATE per second from a
    pool of threads, bounded by LIMIT requests and SECONDS; `with Load(...) as load:` runs it for the
    block. Every request asks for no cache, so each one reaches a replica."""

    gateway: Gateway
    model: str
    key: str
    rate: float = 20
    limit: int = 3000
    seconds: float = 150
    sent: list[Sent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._pacer = threading.Thread(target=self._pace, name="load", daemon=True)

    def __enter__(self) -> Load:
        self._began = time.monotonic()
        self._pacer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._pacer.join()

    def _pace(self) -> None:
        with ThreadPoolExecutor(max_workers=32, thread_name_prefix="load") as pool:
            for n in range(self.limit):
                due = self._began + n / self.rate
                if self._stop.wait(max(0.0, due - time.monotonic())) or due - self._began > self.seconds:
                    break
                pool.submit(self._one)

    def _one(self) -> None:
        start = time.monotonic()
        try:
            outcome: int | str = self.gateway.chat(self.model, "load", key=self.key, cache={"no-cache": True}).status
        except (OSError, urllib.error.URLError) as error:
            outcome = type(error).__name__
        self.sent.append(Sent(start - self._began, time.monotonic() - start, outcome))

    @property
    def failed(self) -> list[Sent]:
        return [s for s in self.sent if s.outcome != 200]

    def p99(self) -> float:
        ordered = sorted(s.seconds for s in self.sent)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0

    def summary(self) -> str:
        outcomes: dict[str, int] = {}
        for s in self.sent:
            outcomes[str(s.outcome)] = outcomes.get(str(s.outcome), 0) + 1
        return f"{len(self.sent)} sent, {len(self.failed)} failed {outcomes}, p99 {self.p99():.2f} s"


@dataclass
class ColdStart:
    applied: subprocess.CompletedProcess
    began: float  # time.monotonic() when `blueprint apply` started (the clock systemd's *Monotonic use)
    answered: float | None  # seconds from then to the first answer on the published port


def cold_start(gateway: Gateway, data: dict) -> ColdStart:
    """A fresh user: reset, the config DATA, provider keys from stdin, then `blueprint apply`.

    The memory limits are lifted first (Host.lift_memory_limits: this machine's limit, not the
    product's)."""
    host = gateway.host
    host.reset()
    gateway.write_config(data)
    gateway.set_secret("OPENAI_API_KEY", "sk-test-openai")
    gateway.set_secret("ANTHROPIC_API_KEY", "sk-ant-test")
    host.lift_memory_limits()
    began = time.monotonic()
    failed = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        # Asked meanwhile: the front door serves from the first replica, and apply returns once
        # every replica is ready. An apply that failed ends the asking.
        answering = pool.submit(gateway.wait_answering, given_up=failed)
        applied = gateway.apply()
        if applied.returncode != 0:
            failed.set()
        answered = answering.result() if applied.returncode == 0 else None
    return ColdStart(applied, began, answered)


def refused(response: Response) -> bool:
    """A key other than the master key is refused: 401, as the real proxy answers after looking the
    key up in PostgreSQL; or, because the stand-in LiteLLM serves without its database (Prisma's
    engines cannot be downloaded here), LiteLLM's 400 "No connected db." that comes before that
    lookup. Never an answer."""
    if response.status == 401:
        return True
    return response.status == 400 and response.body.get("error", {}).get("type") == "no_db_connection"


def _env_lines(text: str) -> dict[str, str]:
    """A KEY=VALUE file as Podman reads it (--env-file): the reading the units' containers get."""
    return {name: value for _, name, value in env_lines(text) if value is not None}


def _json(raw: bytes) -> dict:
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return {"raw": raw.decode(errors="replace")}
