"""`secrets.backend: podman` on the booted stack: blueprint creates real Podman secrets, the containers get their
values in their environment, and a rotated master key reaches LiteLLM after `blueprint apply`.

A fresh user (the stack of test_gateway.py is reset first). The same two limits of this machine are
worked around in the set-up as there: a test-only Quadlet drop-in lifts the memory limits (cgroup v1
memory controller), and the stand-in LiteLLM image drops DATABASE_URL (no Prisma engines here).
"""

from __future__ import annotations

import re

import pytest

from tests.boot.gateway import ENV_DIR, REPLICAS, UNIT_DIR, UNITS, ColdStart, cold_start, config, refused, services

pytestmark = [pytest.mark.boot, pytest.mark.xdist_group("boot")]

UNIT_FILES = {
    "litellm": "litellm/litellm@.container",  # the replicas' template
    "litellm-postgres": "litellm/postgres/litellm-postgres.container",
    "litellm-redis": "litellm/redis/litellm-redis.container",
}


@pytest.fixture(scope="module")
def stack(host, gateway) -> ColdStart:
    started = cold_start(gateway, config(backend="podman"))
    if started.answered is not None:
        host.record("podman secrets: cold start to the first answer", started.answered)
    return started


def secrets_of(host, unit_file: str) -> dict[str, str]:
    """The unit's Secret= lines: {environment variable: Podman secret}."""
    text = host.read_file(f"{UNIT_DIR}/{UNIT_FILES[unit_file]}")
    assert "EnvironmentFile=" not in text, f"{unit_file} still reads an environment file"
    return {target: name for name, target in re.findall(r"^Secret=([^,\s]+),type=env,target=(\w+)$", text, re.M)}


def test_podman_secrets_reach_the_containers(host, gateway, stack):
    assert stack.applied.returncode == 0, stack.applied.stderr
    gateway.wait_active(services())
    created = set(host.podman("secret", "ls", "--format", "{{.Name}}").stdout.split())
    store = gateway.secrets()
    # Each container's secret variable holds the stored value it is a copy of.
    litellm = {"LITELLM_MASTER_KEY": "LITELLM_MASTER_KEY", "OPENAI_API_KEY": "OPENAI_API_KEY"}
    copies = {
        "litellm": (litellm, ("litellm-1", "litellm-2")),
        "litellm-postgres": ({"POSTGRES_PASSWORD": "POSTGRES_PASSWORD"}, ("litellm-postgres",)),
        "litellm-redis": ({"REDISCLI_AUTH": "REDIS_PASSWORD"}, ("litellm-redis",)),
    }
    for unit_file, (variables, containers) in copies.items():
        wanted = secrets_of(host, unit_file)
        assert set(variables) <= set(wanted), f"{unit_file}: {wanted}"
        assert set(wanted.values()) <= created, f"missing Podman secrets: {set(wanted.values()) - created}"
        for container in containers:
            for variable, stored in variables.items():
                value = host.podman("exec", container, "printenv", variable).stdout.strip()
                assert value == store[stored], f"{variable} in {container} is not the stored {stored}"
    assert not host.path(ENV_DIR).exists() or not any(host.path(ENV_DIR).iterdir()), "env files written anyway"
    reply = gateway.chat("gpt-4o", "hello", key=store["LITELLM_MASTER_KEY"], cache={"no-cache": True})
    assert reply.status == 200, reply.body


def test_a_rotated_master_key_reaches_litellm_after_apply(host, gateway, stack):
    old = gateway.master_key
    before = gateway.invocation_ids()
    rotated = host.blueprint("secrets", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    new = gateway.master_key
    assert new != old

    applied = gateway.apply()
    assert applied.returncode == 0, applied.stderr
    for replica in ("litellm-1", "litellm-2"):
        assert host.podman("exec", replica, "printenv", "LITELLM_MASTER_KEY").stdout.strip() == new
    after = gateway.invocation_ids()
    for unit in UNITS:
        restarted = after[unit] != before[unit]
        assert restarted == (unit in REPLICAS), f"{unit} restarted: {restarted} (only the replicas read the key)"
    assert gateway.chat("gpt-4o", "new key", key=new, cache={"no-cache": True}).status == 200
    old_key = gateway.chat("gpt-4o", "old key", key=old, cache={"no-cache": True})
    assert refused(old_key), (old_key.status, old_key.body)
