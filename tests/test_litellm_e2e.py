"""The rendered litellm.yaml served by the real LiteLLM proxy, with a real Redis behind it.

The config is rendered by blueprint like any user's (every model answers with `mock_response`, so
no provider is called); the proxy gets exactly the rendered litellm.yaml and the rendered 0600
environment file, plus the unit's non-secret Environment= values. litellm-redis is a real Redis
on loopback requiring the generated password. A fake Lago server on 127.0.0.1 receives the usage
events. PostgreSQL-backed features cannot run here (LiteLLM's Prisma engines are downloaded from
a host this machine cannot reach); they are checked with LiteLLM's loader in test_consumers.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from blueprint import pipeline
from blueprint.model import providers
from blueprint.model import services as services_model
from blueprint.model.types import Purpose
from tests import injection
from tests.conftest import TOOLS, free_port, need, options, stop, wait_for_port, write_config

pytestmark = [pytest.mark.litellm, pytest.mark.xdist_group("litellm-proxy")]

SLOW_WORKER_START = 8  # seconds each LiteLLM worker is held back at start: more than uvicorn's 5 s


class FakeLago(BaseHTTPRequestHandler):
    events: ClassVar[list[dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        FakeLago.events.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": json.loads(body or b"{}")}
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def gateway_config(port: int, redis_port: int, lago_port: int) -> dict:
    return {
        "podman_version": "5.4",
        # One LiteLLM process here; the replicas behind the front door are booted in tests/boot.
        "litellm": {"requires": ["litellm_redis"], "port": port, "published_port": port, "replicas": 1},
        "litellm_postgres": {"enabled": False},
        # The test's Redis answers on loopback; blueprint renders whatever host and port it is given.
        "litellm_redis": {"hostname": "localhost", "port": redis_port},
        "caddy": {"enabled": False},
        "backup": {"enabled": False},
        "llm_providers": {
            "openai": {
                "api_key": "${OPENAI_API_KEY}",
                "load_balance": True,
                "models": [
                    {"id": "gpt-4o", "mock_response": "answer from key one"},
                    {"id": "gpt-4o-mini", "mock_response": "answer from mini"},
                ],
            },
            "openai-second-key": {
                "provider": "openai",
                "api_key": "${OPENAI_API_KEY_2}",
                "load_balance": True,
                "models": [{"id": "gpt-4o", "mock_response": "answer from key two"}],
            },
            "anthropic": {
                "api_key": "${ANTHROPIC_API_KEY}",
                "models": [
                    {
                        "id": "claude-3-5-haiku-20241022",
                        "name": "claude",
                        "mock_response": "answer from claude",
                        "input_cost_per_token": 0.001,
                        "output_cost_per_token": 0.002,
                    },
                ],
            },
            # Nothing listens on port 9 (discard): every request to it fails for real.
            "unreachable": {
                "provider": "openai_compatible",
                "base_url": "http://127.0.0.1:9/v1",
                "models": [{"id": "local-model", "name": "primary"}],
            },
        },
        "router_settings": {"num_retries": 0, "timeout": 10, "fallbacks": {"primary": ["claude"]}},
        "cache": {"ttl": 300},
        "callbacks": {
            "prometheus": {"enabled": True, "require_auth": True},
            "lago": {"enabled": True, "api_base": f"http://127.0.0.1:{lago_port}", "event_code": "llm_usage"},
        },
    }


def container_command(services, service: str, image: str) -> list[str]:
    """The command a generated unit runs in its container: the words after the image."""
    words = injection.exec_words(dict(services[service])["Service.ExecStart"])
    return words[words.index(image) + 1 :]


def image(stack) -> str:
    return stack.service("litellm").image


def health_command(services, service: str) -> str:
    [command] = injection.run_options(services, service, "--health-cmd")
    return command


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    litellm = need(TOOLS / "litellm/bin/litellm", "LiteLLM proxy (.tools/litellm)")
    need("redis-server", "redis-server")
    need("redis-cli", "redis-cli (Debian redis-tools)")
    need(injection.QUADLET, "Quadlet generator")
    base = tmp_path_factory.mktemp("gateway")
    home = base / "home"
    home.mkdir()

    lago = ThreadingHTTPServer(("127.0.0.1", 0), FakeLago)
    threading.Thread(target=lago.serve_forever, daemon=True).start()

    port, redis_port = free_port(), free_port()
    config = write_config(base, gateway_config(port, redis_port, lago.server_address[1]))
    provider_keys = {
        "OPENAI_API_KEY": "sk-test-one",
        "OPENAI_API_KEY_2": "sk-test-two",
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "LAGO_API_KEY": "lago-test-key",
    }
    opts = options(config, HOME=str(home), **provider_keys)
    outcome = pipeline.write(pipeline.prepare(opts))
    stack = outcome.prepared.stack
    paths = opts.paths

    # Only what the container would get: the environment the generated `podman run` passes it.
    services = injection.quadlet_services(paths.unit_dir)
    environment = injection.container_environment(services, "litellm.service")
    # LiteLLM runs here as a host process, so the host the container would reach is this loopback.
    environment = {
        name: value.replace(providers.HOST_FROM_CONTAINER, "127.0.0.1") for name, value in environment.items()
    }
    redis_password = environment["REDIS_PASSWORD"]

    # Redis starts from the very command the generated unit runs in its container (as Quadlet and
    # systemd hand it over), with the image's entrypoint and chown stubbed and its config file
    # moved out of the shared /tmp; the password reaches it only through REDISCLI_AUTH.
    redis_service = stack.service("litellm_redis")
    command = container_command(services, "litellm-redis.service", redis_service.image)
    command = [word.replace("/tmp/redis.conf", str(base / "redis.conf")) for word in command]
    stubs = base / "image-stubs"
    stubs.mkdir()
    for name, body in {"docker-entrypoint.sh": 'exec "$@"', "chown": "exit 0"}.items():
        (stubs / name).write_text(f"#!/bin/sh\n{body}\n")
        (stubs / name).chmod(0o755)
    redis_env = {
        "PATH": f"{stubs}:{os.environ['PATH']}",
        **injection.container_environment(services, "litellm-redis.service"),
    }
    redis = subprocess.Popen(command, env=redis_env, cwd=base, stdout=subprocess.DEVNULL, start_new_session=True)
    wait_for_port(redis_port)

    # LiteLLM starts from the unit's own arguments too, each file the unit mounts read from where
    # render wrote it: litellm.yaml, and uvicorn's logging with its filter (whose folder is the
    # container's PYTHONPATH).
    yaml_path = stack.gateway_file
    mounted = {o.target: o.path for o in stack.outputs if o.target}
    args = [str(mounted.get(word, word)) for word in container_command(services, "litellm.service", image(stack))]
    args[args.index("--port") + 1] = str(port)
    # Each worker is held back at start, as a busy machine does (every container starting at boot):
    # uvicorn's supervisor must wait for it, not kill it and start another in a loop.
    slow = base / "slow-workers"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(
        "import sys, time\n"
        f"if any('spawn_main' in word for word in sys.orig_argv):\n    time.sleep({SLOW_WORKER_START})\n"
    )
    environment["PYTHONPATH"] = f"{mounted[services_model.ACCESS_FILTER_TARGET].parent}:{slow}"
    log = (base / "litellm.log").open("w")
    proxy = subprocess.Popen(
        [litellm, *args, "--host", "127.0.0.1"],
        env={"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONUNBUFFERED": "1", **environment},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=base,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=120, process=proxy)
        yield {
            "url": f"http://127.0.0.1:{port}",
            "key": environment["LITELLM_MASTER_KEY"],
            "stack": stack,
            "yaml": yaml_path,
            "redis_port": redis_port,
            "redis_password": redis_password,
            "redis_env": redis_env,
            "services": services,
            "log": base / "litellm.log",
        }
    finally:
        stop(proxy)
        stop(redis)
        lago.shutdown()


def call(gateway, path, body=None, key="master", headers=None):
    key = gateway["key"] if key == "master" else key
    request = Request(
        gateway["url"] + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {key}"} if key else {}),
            **(headers or {}),
        },
    )
    try:
        with urlopen(request, timeout=60) as response:
            raw = response.read()
            return response.status, dict(response.headers), (json.loads(raw) if raw[:1] in (b"{", b"[") else raw)
    except HTTPError as error:
        return error.code, dict(error.headers), error.read()


def chat(gateway, model, text="hello", key="master", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return call(gateway, "/v1/chat/completions", body, key=key)


def test_workers_that_start_slowly_are_not_killed(gateway):
    """Every worker took longer to start than uvicorn's 5 s ping timeout; none was killed for it."""
    log = gateway["log"].read_text()
    assert "died" not in log, log[-2000:]


def test_every_model_answers(gateway):
    status, _, models = call(gateway, "/v1/models")
    assert status == 200
    names = {m["id"] for m in models["data"]}
    config = gateway["stack"].gateway
    assert names == {m["model_name"] for m in config["model_list"]}
    for name in sorted(names - {"primary"}):
        status, _, body = chat(gateway, name, text=f"which model is {name}?", cache={"no-cache": True})
        assert status == 200, body
        assert body["choices"][0]["message"]["content"].startswith("answer from")


def test_master_key_is_required(gateway):
    status, _, _ = chat(gateway, "gpt-4o-mini", key=None)
    assert status == 401
    status, _, _ = chat(gateway, "gpt-4o-mini", key="sk-wrong")
    assert status in (400, 401)


def test_repeated_request_is_a_cache_hit_in_redis(gateway):
    question = f"cache me {time.time()}"
    first_status, _first_headers, first = chat(gateway, "gpt-4o-mini", text=question)
    second_status, second_headers, second = chat(gateway, "gpt-4o-mini", text=question)
    assert first_status == second_status == 200
    assert second["id"] == first["id"], "the second answer must be the cached first one"
    assert second_headers.get("x-litellm-cache-key")
    status, _, ping = call(gateway, "/cache/ping")
    assert status == 200 and ping["cache_type"] == "redis"
    keys = subprocess.run(
        [
            "redis-cli",
            "-p",
            str(gateway["redis_port"]),
            "--no-auth-warning",
            "-a",
            gateway["redis_password"],
            "--scan",
            "--pattern",
            "litellm.cache*",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert keys.strip(), "the cached response must live in Redis under the configured namespace"


def test_fallback_is_taken_when_the_primary_fails(gateway):
    status, headers, body = chat(gateway, "primary", text=f"fallback {time.time()}")
    assert status == 200, body
    assert body["choices"][0]["message"]["content"] == "answer from claude"
    assert headers.get("x-litellm-attempted-fallbacks") == "1"


def test_both_deployments_of_one_model_get_traffic(gateway):
    seen = Counter()
    for index in range(40):
        status, _, body = chat(gateway, "gpt-4o", text=f"balance {index}", cache={"no-cache": True})
        assert status == 200
        seen[body["choices"][0]["message"]["content"]] += 1
    assert set(seen) == {"answer from key one", "answer from key two"}, seen
    assert min(seen.values()) >= 5, seen


def test_model_prices_reach_the_response_cost(gateway):
    status, headers, body = chat(gateway, "claude", text=f"price {time.time()}")
    assert status == 200
    usage = body["usage"]
    expected = usage["prompt_tokens"] * 0.001 + usage["completion_tokens"] * 0.002
    assert float(headers["x-litellm-response-cost"]) == pytest.approx(expected)


def test_metrics_need_the_key_and_show_litellm_counters(gateway):
    chat(gateway, "gpt-4o-mini", text=f"metrics {time.time()}")
    status, _, _ = call(gateway, "/metrics", key=None)
    assert status == 401
    status, _, text = call(gateway, "/metrics")
    assert status == 200
    assert b"litellm_proxy_total_requests_metric_total" in text or b"litellm_requests_metric_total" in text


def test_lago_receives_a_usage_event_with_the_customer(gateway):
    customer = f"customer-{int(time.time())}"
    status, _, _ = chat(gateway, "gpt-4o-mini", text=f"bill me {customer}", user=customer)
    assert status == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # LiteLLM's lago callback names the customer (charge_by end_user_id) in this field.
        events = [e for e in FakeLago.events if e["body"].get("event", {}).get("external_subscription_id") == customer]
        if events:
            break
        time.sleep(0.2)
    assert events, f"no Lago event for {customer}: {FakeLago.events[-3:]}"
    event = events[0]
    assert event["path"] == "/api/v1/events"
    assert event["auth"] == "Bearer lago-test-key"
    assert event["body"]["event"]["code"] == "llm_usage"
    assert event["body"]["event"]["properties"]["model"] == "gpt-4o-mini"
    assert event["body"]["event"]["properties"]["total_tokens"] > 0


def test_no_secret_in_rendered_yaml(gateway):
    text = gateway["yaml"].read_text()
    assert "os.environ/LITELLM_MASTER_KEY" in text
    for secret in (gateway["key"], gateway["redis_password"], "sk-test-one", "sk-test-two", "lago-test-key"):
        assert secret not in text


def test_the_units_health_checks_pass_against_the_running_services(gateway):
    """Each generated --health-cmd, run as podman would run it (/bin/sh -c), sees its service healthy."""
    services = gateway["services"]
    redis_check = subprocess.run(
        ["sh", "-c", health_command(services, "litellm-redis.service")], env=gateway["redis_env"], timeout=30
    )
    assert redis_check.returncode == 0
    wrong = subprocess.run(
        ["sh", "-c", health_command(services, "litellm-redis.service")],
        env={**gateway["redis_env"], "REDISCLI_AUTH": "wrong"},
        timeout=30,
    )
    assert wrong.returncode != 0, "a Redis refusing the password is not healthy"
    litellm_check = subprocess.run(["sh", "-c", health_command(services, "litellm.service")], timeout=30)
    assert litellm_check.returncode == 0


def test_redis_requires_the_password_and_never_sees_it_in_argv(gateway):
    refused = subprocess.run(["redis-cli", "-p", str(gateway["redis_port"]), "ping"], capture_output=True, text=True)
    assert "NOAUTH" in refused.stdout
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            assert gateway["redis_password"].encode() not in argv


def test_the_access_log_keeps_requests_and_leaves_out_probes_that_succeed(gateway):
    for path in ("/health/liveliness", "/health/readiness", "/health/liveliness"):
        assert call(gateway, path, key=None)[0] == 200, path
    assert call(gateway, "/v1/models")[0] == 200
    assert chat(gateway, "gpt-4o-mini", key=None)[0] == 401
    deadline = time.monotonic() + 10
    while '"POST /v1/chat/completions HTTP/1.1" 401' not in (log := gateway["log"].read_text()):
        assert time.monotonic() < deadline, log[-3000:]
        time.sleep(0.2)
    assert '"GET /v1/models HTTP/1.1" 200' in log
    assert "GET /health/" not in log, "a probe that succeeded was logged"


def test_the_access_filter_still_logs_a_probe_that_fails(gateway):
    """The rendered filter itself, on the records uvicorn makes: a failed probe is news."""
    import importlib.util
    import logging

    path = gateway["stack"].output(Purpose.ACCESS_FILTER).path
    spec = importlib.util.spec_from_file_location("blueprint_access_log", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    probe = module.ProbeFilter()

    def record(path: str, status: int) -> logging.LogRecord:
        fields = ("10.89.0.4:5000", "GET", path, "1.1", status)
        return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', fields, None)

    assert not probe.filter(record("/health/liveliness", 200))
    assert probe.filter(record("/health/liveliness", 503))
    assert probe.filter(record("/health/readiness", 503))
    assert probe.filter(record("/v1/chat/completions", 200))
