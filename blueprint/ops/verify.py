"""`blueprint verify`: the post-install checks of a running gateway, as testinfra checks.

They run against this machine (local://) or any testinfra host (ssh://user@host, ...), through the
same commands a person would type: systemctl --user, podman exec, loginctl, and an HTTP request.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass

from blueprint.errors import SetupError
from blueprint.formats import env_lines

RECENT_MINUTES = 26 * 60  # a daily backup, with slack for a late or randomized start

# Asks the proxy which models it prices, with the master key read from the store on the checked
# host itself: the key is never an argument, which every local user could read.
MODEL_INFO = (
    "import json, sys, urllib.request\n"
    "lines = open(sys.argv[2]).read().split('\\n')\n"
    "key = next(l.split('=', 1)[1] for l in lines if l.startswith('LITELLM_MASTER_KEY='))\n"
    "request = urllib.request.Request(sys.argv[1] + '/model/info', headers={'Authorization': 'Bearer ' + key})\n"
    "data = json.load(urllib.request.urlopen(request, timeout=30))['data']\n"
    "print(json.dumps([[m['model_name'], (m.get('model_info') or {}).get('input_cost_per_token'),"
    " (m.get('model_info') or {}).get('output_cost_per_token')] for m in data]))\n"
)

HTTP_GET = (
    "import sys, urllib.request, urllib.error\n"
    "try:\n"
    "    r = urllib.request.urlopen(sys.argv[1], timeout=10); print(r.status, r.read(200).decode())\n"
    "except urllib.error.HTTPError as e:\n"
    "    print(e.code)\n"
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    skipped: bool = False  # the host cannot tell: neither passed nor failed


class CannotTell(Exception):
    """Raised by a check when the host has no way to answer it (its detail says why)."""


def run(options, host_spec: str = "local://") -> list[Check]:
    try:
        import testinfra
    except ImportError:
        raise SetupError(
            "blueprint verify needs testinfra, which is not installed",
            hint="install it beside blueprint: `pipx inject blueprint pytest-testinfra` (a pipx install), or "
            f"`{sys.executable} -m pip install pytest-testinfra`",
        ) from None

    from blueprint import pipeline

    stack = pipeline.build_stack(options).stack
    paths = options.paths
    host = testinfra.get_host(host_spec)
    checks: list[tuple[str, Callable[[], str]]] = []

    def check(name: str):
        def register(function: Callable[[], str]):
            checks.append((name, function))
            return function

        return register

    def sh(*words: str):
        return host.run(" ".join(shlex.quote(w) for w in words))

    def said(result) -> str:
        """What a command answered, for a failure message: its output, else its last error line."""
        lines = (result.stdout.strip() or result.stderr.strip()).splitlines()
        return lines[-1] if lines else f"nothing (exit {result.rc})"

    expected = [o.path for o in stack.outputs]

    @check("unit files present")
    def _():
        missing = [str(p) for p in expected if not host.file(str(p)).exists]
        assert not missing, "missing: " + ", ".join(missing)
        return f"{len(expected)} files in place"

    @check("secret files private")
    def _():
        loose = [
            str(p)
            for p in [paths.secret_store, *[o.path for o in stack.outputs if o.role.secret]]
            if host.file(str(p)).exists and host.file(str(p)).mode & 0o077
        ]
        assert not loose, "readable by others: " + ", ".join(loose)
        return "0600"

    for service in stack.services:

        @check(f"{service.unit} active")
        def _(service=service):
            result = sh("systemctl", "--user", "is-active", service.unit)
            assert result.stdout.strip() == "active", f"systemctl --user is-active says {said(result)}"
            return "active"

    api = stack.api
    if api is not None:
        reach = api.publish[0].reach
        url = f"http://{reach}"

        @check(f"API listening on {reach}")
        def _():
            assert host.socket(f"tcp://{reach}").is_listening, "nothing listens there"
            return "listening"

        @check("LiteLLM /health/liveliness answers")
        def _():
            answer = sh("python3", "-c", HTTP_GET, f"{url}/health/liveliness").stdout.strip()
            assert answer.startswith("200"), f"got {answer or 'no answer'}"
            return answer

        @check("API refuses requests without the master key")
        def _():
            answer = sh("python3", "-c", HTTP_GET, f"{url}/v1/models").stdout.strip()
            assert answer.startswith("401"), f"GET /v1/models without a key answered {answer or 'nothing'}"
            return "401 without a key"

        @check("every model has a price")
        def _():
            # A model missing from LiteLLM's price map costs 0: budgets and billing would ignore it.
            result = sh("python3", "-c", MODEL_INFO, url, str(paths.secret_store))
            assert result.rc == 0, f"GET /model/info failed: {said(result)}"
            # LiteLLM says 0 for a model it cannot price: only the config tells a price of 0 meant.
            listed = json.loads(result.stdout)
            free = sorted({name for name, given, taken in listed if not (given or taken)} - stack.priced_by_config)
            fixes = [f"{name} ({stack.models.get(name, '?')})" for name in free]
            assert not free, (
                f'LiteLLM has no price for {", ".join(fixes)}: give each "input_cost_per_token" and '
                '"output_cost_per_token" in its model entry, or use a model name LiteLLM prices'
            )
            return "priced by LiteLLM or by the config"

        @check("provider keys set")
        def _():
            store = host.file(str(paths.secret_store))
            stored = {name for _, name, value in env_lines(store.content_string if store.exists else "") if value}
            missing = sorted(set(stack.secret_names) - stored)
            assert not missing, "not set: " + ", ".join(f"{n} (blueprint secrets set {n})" for n in missing)
            return f"{len(stack.secret_names)} secrets stored"

    db = stack.database
    if db is not None:

        @check("PostgreSQL ready")
        def _():
            result = sh("podman", "exec", db.container, "pg_isready", "-p", str(db.port), "-U", db.user, "-d", db.name)
            assert result.rc == 0, said(result)
            return result.stdout.strip()

    redis = stack.service("litellm_redis")
    if redis is not None:

        @check("Redis answers PONG")
        def _():
            result = sh("podman", "exec", redis.container_name, "redis-cli", "-p", str(redis.port), "ping")
            assert result.stdout.strip() == "PONG", f"redis-cli ping said {said(result)}"
            return "PONG"

    if stack.backup is not None:
        for job in stack.backup.jobs:

            @check(f"{job.timer} scheduled")
            def _(job=job):
                result = sh("systemctl", "--user", "is-active", job.timer)
                assert result.stdout.strip() == "active", f"systemctl --user is-active says {said(result)}"
                return f"daily at {job.at}"

            @check(f"recent {job.kind} backup")
            def _(job=job):
                folder = paths.backup_dir / job.kind
                found = sh("find", str(folder), "-name", f"{job.kind}-*", "-mmin", f"-{RECENT_MINUTES}").stdout.split()
                assert found, f"none newer than {RECENT_MINUTES // 60} h in {folder}"
                return f"{len(found)} in the last {RECENT_MINUTES // 60} h"

    @check("lingering on")
    def _():
        user = host.user().name
        result = sh("loginctl", "show-user", user, "--property=Linger", "--value")
        answer = result.stdout.strip()
        if result.rc != 0 and not answer:
            # No systemd-logind to ask (a container, a minimal system): it is neither on nor off.
            raise CannotTell(f"loginctl cannot tell: {said(result)}")
        assert answer == "yes", f"off: services stop at logout (loginctl enable-linger {user})"
        return "services run without a login session"

    results = []
    for name, function in checks:
        try:
            results.append(Check(name, True, function()))
        except AssertionError as failure:
            results.append(Check(name, False, str(failure)))
        except CannotTell as unknown:
            results.append(Check(name, True, str(unknown), skipped=True))
        except Exception as error:
            results.append(Check(name, False, f"{type(error).__name__}: {error}"))
    return results
