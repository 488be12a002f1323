"""The rendered gateway, booted for real under the real `systemd --user` and rootless Podman.

bp (a fresh user) writes a small config, stores its provider keys with `blueprint secrets set` and
runs `blueprint apply`; from then on only blueprint, `systemctl --user` and the stack's own interfaces
(the published port, psql and redis-cli in the containers) are used. No unit file is edited and no
container is started by hand.

A cold start takes about 40 s, so one booted stack serves these scenarios in order, each leaving the
stack as the next one expects: cold start, the API, the private services, apply, backups and
restore, verify, and a restart through default.target. The podman secrets backend needs a fresh user
and has its own module (test_podman_secrets.py).

Two limits of this test machine are worked around, here in the set-up and never in what blueprint
renders:

1. Memory limits: the memory controller is bound to the host's cgroup v1 hierarchy and the booted
   root has cgroup2 alone, so crun cannot apply the units' limits. A test-only Quadlet drop-in,
   ~/.config/containers/systemd/container.d/50-test-nomemlimit.conf with `PodmanArgs=--memory=0`,
   lifts them (Host.lift_memory_limits).
2. LiteLLM's database: Prisma's engines cannot be downloaded here, so the stand-in LiteLLM image drops
   DATABASE_URL at start, with a one-line log message. PostgreSQL runs and is checked; LiteLLM serves
   without it (the master key only).
"""

from __future__ import annotations

import time

import pytest

from tests.boot.gateway import (
    ENV_FILES,
    PORT,
    REPLICAS,
    UNIT_DIR,
    UNITS,
    ColdStart,
    Gateway,
    Load,
    cold_start,
    config,
    container,
    mock_answers,
    refused,
    services,
)

pytestmark = [pytest.mark.boot, pytest.mark.xdist_group("boot")]

MISTRAL = {
    "mistral": {
        "api_key": "${MISTRAL_API_KEY}",
        "models": [{"id": "mistral-small-latest", "mock_response": "hi from mistral"}],
    }
}


@pytest.fixture(scope="module")
def stack(gateway: Gateway) -> ColdStart:
    """The cold start every other test here builds on."""
    return cold_start(gateway, config())


# ---- 1. cold start -----------------------------------------------------------------------------


def test_cold_start_starts_litellm_after_postgres_and_redis_are_healthy_one_replica_at_a_time(host, gateway, stack):
    assert stack.applied.returncode == 0, stack.applied.stderr
    units = host.units()
    for unit in units:
        wanted = "inactive" if unit.startswith("blueprint-backup-") and unit.endswith(".service") else "active"
        assert gateway.active(unit) == wanted, f"{unit}: {host.systemctl('status', unit, check=False).stdout}"
    assert set(services()) | {"llm-network.service"} <= set(units)

    shown = {
        unit: host.show(f"{unit}.service", "Type", "InactiveExitTimestampMonotonic", "ActiveEnterTimestampMonotonic")
        for unit in UNITS
    }
    for unit in ("litellm-postgres", "litellm-redis", *REPLICAS):
        # Notify=healthy: Podman tells systemd the unit is ready only once its health check passed.
        assert shown[unit]["Type"] == "notify", unit
        health = host.podman("inspect", "--format", "{{.State.Health.Status}}", container(unit)).stdout.strip()
        assert health == "healthy", f"{unit}: {health}"
    for replica in REPLICAS:
        began = int(shown[replica]["InactiveExitTimestampMonotonic"])
        for dependency in ("litellm-postgres", "litellm-redis"):
            healthy_at = int(shown[dependency]["ActiveEnterTimestampMonotonic"])
            assert 0 < healthy_at <= began, f"{replica} started before {dependency} was healthy: {shown}"
    first_ready = int(shown[REPLICAS[0]]["ActiveEnterTimestampMonotonic"])
    for replica in REPLICAS[1:]:
        # Its drop-in: it loads once the first replica is ready, not beside it.
        assert 0 < first_ready <= int(shown[replica]["InactiveExitTimestampMonotonic"]), shown

    assert gateway.request("/health/liveliness").status == 200
    active_after = max(int(shown[unit]["ActiveEnterTimestampMonotonic"]) for unit in UNITS) / 1e6 - stack.began
    host.record("cold start: every unit active", active_after)
    host.record("cold start: first answer on 127.0.0.1", stack.answered)


# ---- 2. the API ----------------------------------------------------------------------------------


def test_every_model_answers_with_the_master_key_and_a_repeat_comes_from_redis(gateway, stack):
    key = gateway.master_key  # read as bp from ~/.config/blueprint/secrets.env
    answers = mock_answers(config())
    listed = gateway.request("/v1/models", key=key)
    assert listed.status == 200, listed.body
    assert {model["id"] for model in listed.body["data"]} == set(answers)
    for model, answer in answers.items():
        reply = gateway.chat(model, f"which model is {model}?", key=key, cache={"no-cache": True})
        assert reply.status == 200, reply.body
        assert reply.text == answer

    question = f"cache me {time.time()}"
    first = gateway.chat("gpt-4o", question, key=key)
    assert first.status == 200, first.body
    # LiteLLM writes the cache in the background: the repeat may come a moment too early.
    for _ in range(20):
        second = gateway.chat("gpt-4o", question, key=key)
        if second.headers.get("x-litellm-cache-key"):
            break
        time.sleep(0.25)
    cache_key = second.headers.get("x-litellm-cache-key")
    assert cache_key, f"no cache hit: {second.headers}"
    assert second.body["id"] == first.body["id"], "the repeat must be the first answer, from the cache"
    assert gateway.redis("exists", cache_key).stdout.strip() == "1", f"{cache_key} is not in litellm-redis"


def test_the_api_refuses_requests_without_the_master_key(gateway, stack):
    assert gateway.chat("gpt-4o", "hello", key=None).status == 401
    wrong = gateway.chat("gpt-4o", "hello", key="sk-not-the-master-key")
    assert refused(wrong), (wrong.status, wrong.body)


# ---- 3. PostgreSQL and Redis ---------------------------------------------------------------------


def test_postgres_and_redis_are_private_and_require_their_passwords(host, gateway, stack):
    password = gateway.env_file("litellm-postgres")["POSTGRES_PASSWORD"]
    assert gateway.psql("select 42", password=password).stdout.strip() == "42"
    wrong = gateway.psql("select 42", password=password + "-wrong", check=False)
    assert wrong.returncode != 0
    assert "password authentication failed" in wrong.stderr, wrong.stderr

    for name in ("litellm-postgres", "litellm-redis"):
        assert host.podman("port", name).stdout.strip() == "", f"{name} publishes a port"
        bindings = host.podman("inspect", "--format", "{{json .HostConfig.PortBindings}}", name).stdout.strip()
        assert bindings in ("{}", "null"), f"{name}: {bindings}"
    # Only the front door publishes the API; the replicas are reached through it.
    assert host.podman("port", "litellm-front").stdout.split() == ["4000/tcp", "->", f"127.0.0.1:{PORT}"]
    for replica in REPLICAS:
        assert host.podman("port", container(replica)).stdout.strip() == "", f"{replica} publishes a port"

    anonymous = ["podman", "exec", "litellm-redis", "env", "-u", "REDISCLI_AUTH", "redis-cli", "-p", "6379", "ping"]
    answer = host.manager(anonymous, check=False)
    assert "NOAUTH" in answer.stdout + answer.stderr, answer.stdout + answer.stderr
    assert gateway.redis("ping").stdout.strip() == "PONG"


# ---- 4. apply with real systemd -------------------------------------------------------------------


def test_an_apply_that_changes_nothing_restarts_nothing(gateway, stack):
    before = gateway.invocation_ids()
    applied = gateway.apply()
    assert applied.returncode == 0, applied.stderr
    assert gateway.invocation_ids() == before, applied.stderr


def test_a_new_provider_drops_no_request_and_restarts_the_replicas_one_at_a_time(host, gateway, stack):
    """Under a steady 20 requests per second through the front door, an apply that adds a
    provider restarts each replica in turn (nothing else) and not one request fails."""
    before = gateway.invocation_ids()
    gateway.set_secret("MISTRAL_API_KEY", "sk-test-mistral")
    gateway.write_config(config(extra_providers=MISTRAL))
    with Load(gateway, "gpt-4o", gateway.master_key) as load:
        time.sleep(2)  # requests in flight before the change begins
        began = time.monotonic()
        applied = gateway.apply()
        took = time.monotonic() - began
        time.sleep(2)
    host.record("apply of a provider change under 20 requests/s", took, load.summary())
    assert applied.returncode == 0, applied.stderr
    assert len(load.sent) >= 100, load.summary()
    assert not load.failed, f"{load.summary()}; first failures: {load.failed[:5]}"

    after = gateway.invocation_ids()
    for unit in UNITS:
        restarted = after[unit] != before[unit]
        assert restarted == (unit in REPLICAS), f"{unit} restarted: {restarted}\n{applied.stderr}"
    # One at a time: the second replica began only once the first was ready again.
    times = ("ActiveEnterTimestampMonotonic", "InactiveExitTimestampMonotonic")
    first, second = (host.show(unit, *times) for unit in services(REPLICAS))
    assert int(first["ActiveEnterTimestampMonotonic"]) <= int(second["InactiveExitTimestampMonotonic"]), (first, second)
    for replica in REPLICAS:  # each one serves the new model, asked directly
        reply = gateway.ask_replica(replica, "mistral-small-latest")
        assert reply.status == 200 and reply.text == "hi from mistral", (replica, reply.body)
    reply = gateway.chat("mistral-small-latest", "hello", key=gateway.master_key, cache={"no-cache": True})
    assert reply.status == 200 and reply.text == "hi from mistral", reply.body


def test_disabling_redis_removes_its_unit_and_keeps_its_volume(host, gateway, stack):
    gateway.redis("set", "boot:kept", "through a disable")
    postgres_before = gateway.invocation_ids(["litellm-postgres"])
    gateway.write_config(config(extra_providers=MISTRAL, redis=False))
    applied = gateway.apply()
    assert applied.returncode == 0, applied.stderr

    assert host.show("litellm-redis.service", "LoadState")["LoadState"] == "not-found"
    assert not host.path(f"{UNIT_DIR}/litellm/redis/litellm-redis.container").exists()
    assert host.podman("container", "exists", "litellm-redis", check=False).returncode == 1
    assert host.podman("volume", "exists", "systemd-litellm-redis", check=False).returncode == 0
    assert gateway.invocation_ids(["litellm-postgres"]) == postgres_before
    assert all(gateway.active(unit) == "active" for unit in services(REPLICAS))
    reply = gateway.chat("gpt-4o", "without redis", key=gateway.master_key)
    assert reply.status == 200, reply.body


def test_enabling_redis_again_brings_it_back_with_its_data(host, gateway, stack):
    gateway.write_config(config(extra_providers=MISTRAL))
    applied = gateway.apply()
    assert applied.returncode == 0, applied.stderr
    gateway.wait_active(services())
    assert gateway.redis("get", "boot:kept").stdout.strip() == "through a disable"
    reply = gateway.chat("gpt-4o", "with redis again", key=gateway.master_key)
    assert reply.status == 200, reply.body


# ---- 5. backups and restore -------------------------------------------------------------------------


def test_the_backup_services_succeed_under_the_user_manager(host, stack):
    outcomes, mark = {}, host.log_mark()
    for kind in ("postgres", "redis", "config"):
        unit = f"blueprint-backup-{kind}.service"
        host.systemctl("start", unit, check=False, timeout=300)
        outcomes[unit] = host.show(unit, "Result", "ExecMainStatus")
    failed = {unit: shown for unit, shown in outcomes.items() if shown["Result"] != "success"}
    output = "\n".join(host.log_since(mark).splitlines()[-12:])
    assert not failed, f"{failed}\nthe services said:\n{output}"


def test_backup_run_and_restore_bring_the_data_back(host, gateway, stack):
    gateway.psql("create table boot_restore (v text); insert into boot_restore values ('kept')")
    gateway.redis("set", "boot:restore", "kept")
    openai_key = gateway.secrets()["OPENAI_API_KEY"]
    made = host.blueprint("backup", "run", "postgres", "redis", "config", timeout=300)
    assert made.returncode == 0, made.stderr

    gateway.psql("drop table boot_restore")
    gateway.redis("flushall")
    gateway.set_secret("OPENAI_API_KEY", "sk-overwritten")
    for kind in ("postgres", "redis", "config"):
        restored = host.blueprint("restore", kind, "--yes", timeout=600)
        assert restored.returncode == 0, f"restore {kind}: {restored.stderr}"

    assert gateway.psql("select v from boot_restore").stdout.strip() == "kept"
    assert gateway.redis("get", "boot:restore").stdout.strip() == "kept"
    assert gateway.secrets()["OPENAI_API_KEY"] == openai_key
    applied = gateway.apply()
    assert applied.returncode == 0, applied.stderr
    gateway.wait_active(services())
    assert gateway.request("/health/liveliness").status == 200
    reply = gateway.chat("gpt-4o", "after the restore", key=gateway.master_key, cache={"no-cache": True})
    assert reply.status == 200, reply.body


# ---- 6. blueprint verify ---------------------------------------------------------------------------


def test_verify_passes_on_the_live_stack(host, stack):
    result = host.blueprint("verify", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_verify_fails_naming_a_stopped_unit(host, stack):
    """Leaves litellm-redis (and the replicas, which require it) stopped: the next test starts all."""
    host.systemctl("stop", "litellm-redis.service", timeout=300)
    result = host.blueprint("verify", timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[FAIL] litellm-redis.service active" in result.stdout, result.stdout
    assert "litellm-redis.service active" in result.stderr.splitlines()[-1], result.stderr


# ---- 8. a login (or linger at boot) starts the stack again --------------------------------------------


def test_default_target_brings_the_stack_back_with_its_data_and_secrets(host, gateway, stack):
    store = gateway.secrets()
    env_files = {name: gateway.env_file(name) for name in ENV_FILES}
    host.stop_stack()
    assert host.podman("ps", "--quiet").stdout.strip() == "", "every container must be stopped"

    began = time.monotonic()
    host.systemctl("start", "default.target", timeout=600)
    gateway.wait_active(services())
    host.record("default.target: every unit active", time.monotonic() - began)
    gateway.wait_answering()
    host.record("default.target: first answer", time.monotonic() - began)

    assert gateway.secrets() == store
    assert {name: gateway.env_file(name) for name in ENV_FILES} == env_files
    assert gateway.psql("select v from boot_restore").stdout.strip() == "kept"
    assert gateway.redis("get", "boot:restore").stdout.strip() == "kept"
    reply = gateway.chat("claude-sonnet-4-5", "back again", key=store["LITELLM_MASTER_KEY"])
    assert reply.status == 200 and reply.text == "hi from claude", reply.body
