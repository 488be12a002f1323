"""The day-2 commands on the booted stack, through `blueprint` and `systemctl --user` as bp.

One cold start serves these scenarios in order, each leaving the stack as the next one expects:
ps and logs on the healthy stack, a hung replica restarted by itself, an upgrade to a release that
works (under load: not a request lost), to one that never gets healthy (rolled back, with the
database it migrated put back) and to one that cannot be pulled (rolled back at once), ps naming a
stopped service, down and up, and uninstall followed by a render that brings the same stack back
onto its data.

The two limits of this machine are worked around as in test_gateway.py: a test-only drop-in lifts
the memory limits (cgroup v1 memory controller), and the stand-in LiteLLM image drops DATABASE_URL
(no Prisma engines here). Two more stand-ins name LiteLLM releases (images.py): v1.99.5, a working
one, and v1.99.6, one that answers 503 to everything and so never becomes healthy.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from tests.boot import images
from tests.boot.gateway import (
    CONFIG,
    ENV_DIR,
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
    services,
)
from tests.boot.harness import HOME

pytestmark = [pytest.mark.boot, pytest.mark.xdist_group("boot")]

RUNNING = images.default_images()["litellm"]  # ghcr.io/berriai/litellm:v1.99.4
REPOSITORY = RUNNING.rpartition(":")[0]
WORKS, BROKEN = "v1.99.5", "v1.99.6"  # stand-ins: a release that works, one never healthy
VANISHED = "v1.99.7"  # no stand-in, and no registry in reach: its pull fails
# The supported way to change a generated unit: a drop-in of one's own, which blueprint never
# touches. This one makes the replicas' health check notice a hang within seconds.
DROP_IN = f"{UNIT_DIR}/litellm@.container.d/50-quick-health.conf"


def data() -> dict:
    """The config of these tests, with the image written out (upgrade changes only that value)."""
    found = config()
    found["litellm"]["image"] = RUNNING
    return found


@pytest.fixture(scope="module")
def stack(host, gateway: Gateway) -> ColdStart:
    host.ensure_image(f"{REPOSITORY}:{WORKS}", f"{REPOSITORY}:{BROKEN}")
    started = cold_start(gateway, data())
    gateway.redis("set", "day2:kept", "through everything")
    gateway.psql("create table day2 (v text); insert into day2 values ('kept')")
    return started


def ps_rows(result) -> dict[str, list[str]]:
    """`blueprint ps` as {service: [state, health]}."""
    rows = [line.split() for line in result.stdout.splitlines()[1:] if line.strip()]
    return {row[0]: row[1:3] for row in rows}


def image_of(host, unit: str) -> str:
    """The image a replica's container runs ("" while there is none: it is being replaced)."""
    return host.podman("inspect", "--format", "{{.ImageName}}", container(unit), check=False).stdout.strip()


# ---- ps and logs ------------------------------------------------------------------------------------


def test_ps_shows_every_service_running_and_healthy(host, stack):
    assert stack.applied.returncode == 0, stack.applied.stderr
    result = host.blueprint("ps")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = ps_rows(result)
    assert set(rows) == set(UNITS), result.stdout
    for unit in UNITS:
        # The front door has no health check of its own: it is "running".
        assert rows[unit] == ["active", "running" if unit == "litellm-front" else "healthy"], result.stdout
    assert f"http://127.0.0.1:{PORT}" in result.stdout


def test_logs_show_every_replica_and_each_service(host, gateway, stack):
    for _ in REPLICAS:  # least_conn over idle replicas: one each, or both on one
        assert gateway.chat("gpt-4o", "log me", key=gateway.master_key).status == 200
    time.sleep(3)  # twelve rounds of the front door's health checks (four times a second), on every replica
    # No journald runs in the booted root: the logs come from podman, as they do on such hosts.
    replicas = host.blueprint("logs", "-n", "50")
    assert replicas.returncode == 0, replicas.stderr
    lines = replicas.stdout.splitlines()
    for replica in REPLICAS:
        assert any(line.startswith(container(replica) + " ") for line in lines), replicas.stdout
    # Requests are in the access log; the probes that succeed (four times a second) are not.
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in replicas.stdout, replicas.stdout
    assert "GET /health/" not in replicas.stdout, replicas.stdout
    postgres = host.blueprint("logs", "postgres", "-n", "200")
    assert "database system is ready to accept connections" in postgres.stdout, postgres.stdout + postgres.stderr
    unknown = host.blueprint("logs", "nope")
    assert unknown.returncode == 2 and "no service 'nope'" in unknown.stderr, unknown.stderr


# ---- a stack that heals itself --------------------------------------------------------------------


def test_a_hung_replica_is_killed_by_its_health_check_and_restarted(host, gateway, stack):
    host.write_file(DROP_IN, "[Container]\nHealthInterval=2s\nHealthTimeout=2s\nHealthRetries=2\n")
    host.systemctl("daemon-reload")
    host.systemctl("restart", "litellm@2.service", timeout=300)
    status = host.blueprint("status")
    assert "litellm@.container.d/50-quick-health.conf" in status.stdout, status.stdout + status.stderr

    before = host.show("litellm@2.service", "InvocationID", "NRestarts")
    # Every process of the container stopped (SIGSTOP, from outside: its PID 1 ignores signals
    # sent from inside): it still runs, and answers nothing.
    for pid in host.podman("top", container("litellm@2"), "hpid").stdout.split()[1:]:
        os.kill(int(pid), signal.SIGSTOP)
    began = time.monotonic()
    while host.show("litellm@2.service", "InvocationID")["InvocationID"] == before["InvocationID"]:
        assert time.monotonic() - began < 180, "the hung replica was left running"
        time.sleep(1)
    gateway.wait_active(["litellm@2.service"])
    host.record("a hung replica: back and healthy", time.monotonic() - began)
    after = host.show("litellm@2.service", "NRestarts")
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1, (before, after)
    health = host.podman("inspect", "--format", "{{.State.Health.Status}}", container("litellm@2")).stdout.strip()
    assert health == "healthy"
    reply = gateway.ask_replica("litellm@2", "gpt-4o")
    assert reply.status == 200, reply.body


# ---- upgrade ---------------------------------------------------------------------------------------


def test_an_upgrade_moves_every_replica_to_the_release_and_drops_no_request(host, gateway, stack):
    before = host.read_file(CONFIG)
    with Load(gateway, "gpt-4o", gateway.master_key) as load:
        time.sleep(2)
        began = time.monotonic()
        upgraded = host.blueprint("upgrade", "--to", WORKS, timeout=900)
        took = time.monotonic() - began
        time.sleep(2)
    host.record(f"upgrade to {WORKS} under 20 requests/s", took, load.summary())
    assert upgraded.returncode == 0, upgraded.stderr
    said = upgraded.stderr
    assert "backed up postgres" in said and "backed up config" in said, said
    assert f"litellm runs {REPOSITORY}:{WORKS}, healthy" in said, said
    # Only the tag changed in the file, byte for byte.
    assert host.read_file(CONFIG) == before.replace(RUNNING, f"{REPOSITORY}:{WORKS}")
    for replica in REPLICAS:
        assert image_of(host, replica) == f"{REPOSITORY}:{WORKS}"
        tag = host.podman("exec", container(replica), "printenv", "LITELLM_STAND_IN_TAG").stdout.strip()
        assert tag == WORKS, f"{replica} runs {tag}"
    assert len(load.sent) >= 100, load.summary()
    assert not load.failed, f"{load.summary()}; first failures: {load.failed[:5]}"


def test_an_upgrade_that_never_gets_healthy_is_rolled_back_with_its_database(host, gateway, stack):
    """The broken release (a stand-in answering 503) stands for one that migrated the schema and then
    failed: a table is created while it runs. The rollback restores the database taken before."""
    before = host.read_file(CONFIG)
    served_by_second = host.show("litellm@2.service", "InvocationID")["InvocationID"]
    migrated = threading.Event()

    def migrate_while_it_runs() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if image_of(host, "litellm@1") == f"{REPOSITORY}:{BROKEN}":
                gateway.psql('create table "LiteLLM_FromTheBrokenRelease" (id int)')
                migrated.set()
                return
            time.sleep(0.5)

    migration = threading.Thread(target=migrate_while_it_runs, daemon=True)
    migration.start()
    began = time.monotonic()
    upgraded = host.blueprint("upgrade", "--to", BROKEN, "--wait", "20", timeout=900)
    host.record(f"upgrade to {BROKEN} and back", time.monotonic() - began)
    migration.join(timeout=10)
    said = upgraded.stdout + upgraded.stderr
    assert migrated.is_set(), f"the broken release never ran: {said}"
    assert upgraded.returncode == 1, said
    assert f"upgrade to {REPOSITORY}:{BROKEN} failed" in upgraded.stderr, said
    assert f"{REPOSITORY}:{WORKS} runs again" in upgraded.stderr, said
    # The rolling restart stopped at the first replica: the second served throughout, untouched
    # until the rollback restarted it.
    assert "litellm@2.service not restarted" in said, said
    assert "restoring the database taken before" in said, said

    assert host.read_file(CONFIG) == before, "the config must be the one from before, byte for byte"
    gateway.wait_active(services())
    for replica in REPLICAS:
        assert image_of(host, replica) == f"{REPOSITORY}:{WORKS}"
    assert host.show("litellm@2.service", "InvocationID")["InvocationID"] != served_by_second
    tables = gateway.psql("select tablename from pg_tables where schemaname = 'public'").stdout.split()
    assert "LiteLLM_FromTheBrokenRelease" not in tables and "day2" in tables, tables
    assert gateway.psql("select v from day2").stdout.strip() == "kept"
    reply = gateway.chat("gpt-4o", "after the rollback", key=gateway.master_key, cache={"no-cache": True})
    assert reply.status == 200, reply.body


def test_an_upgrade_to_a_tag_that_cannot_be_pulled_goes_back_at_once(host, gateway, stack):
    """A tag that vanished (or never was): systemd cannot start the replica, and upgrade says so and
    goes back then, instead of waiting out --wait for a health that cannot come."""
    before = host.read_file(CONFIG)
    upgraded = host.blueprint("upgrade", "--to", VANISHED, "--wait", "120", timeout=900)
    said = upgraded.stdout + upgraded.stderr
    assert upgraded.returncode == 1, said
    assert f"upgrade to {REPOSITORY}:{VANISHED} failed (systemd could not start it: " in upgraded.stderr, said
    assert f"{REPOSITORY}:{WORKS} runs again" in upgraded.stderr and "not healthy either" not in said, said
    assert host.read_file(CONFIG) == before
    gateway.wait_active(services())
    for replica in REPLICAS:
        assert image_of(host, replica) == f"{REPOSITORY}:{WORKS}"
    assert gateway.chat("gpt-4o", "after a vanished tag", key=gateway.master_key).status == 200


# ---- ps of a stopped service, down and up -----------------------------------------------------------


def test_ps_names_a_stopped_service_and_exits_1(host, gateway, stack):
    host.systemctl("stop", "litellm@2.service", timeout=300)
    result = host.blueprint("ps")
    assert result.returncode == 1, result.stdout + result.stderr
    assert ps_rows(result)["litellm@2"][0] == "inactive", result.stdout
    assert "1 of 5 services are not running and healthy: litellm@2" in result.stderr, result.stderr
    # The front door goes on serving through the other replica.
    assert gateway.chat("gpt-4o", "one replica", key=gateway.master_key).status == 200


def test_down_stops_everything_and_up_brings_it_back_with_its_data(host, gateway, stack):
    down = host.blueprint("down", timeout=600)
    assert down.returncode == 0, down.stderr
    for unit in [*services(), "blueprint-backup-postgres.timer"]:
        assert gateway.active(unit) == "inactive", unit
    assert host.podman("ps", "--quiet").stdout.strip() == "", "every container must be stopped"
    assert host.podman("volume", "exists", "systemd-litellm-postgres", check=False).returncode == 0

    up = host.blueprint("up", timeout=900)
    assert up.returncode == 0, up.stderr
    gateway.wait_active([*services(), "blueprint-backup-postgres.timer"])
    gateway.wait_answering()
    assert host.blueprint("ps").returncode == 0
    assert gateway.psql("select v from day2").stdout.strip() == "kept"
    assert gateway.redis("get", "day2:kept").stdout.strip() == "through everything"


# ---- uninstall --------------------------------------------------------------------------------------


def test_uninstall_keeps_data_secrets_and_drop_ins_and_a_render_brings_the_stack_back(host, gateway, stack):
    store = gateway.secrets()
    removed = host.blueprint("uninstall", "--yes", timeout=600)
    assert removed.returncode == 0, removed.stderr
    assert "podman volume rm" in removed.stderr, "it says how to remove a volume, by hand"

    assert host.show("litellm@1.service", "LoadState")["LoadState"] == "not-found"
    assert host.show("blueprint-backup-postgres.timer", "LoadState")["LoadState"] == "not-found"
    assert host.podman("ps", "--all", "--quiet").stdout.strip() == "", "no container is left"
    left = sorted(str(p.relative_to(host.path(UNIT_DIR))) for p in host.path(UNIT_DIR).rglob("*") if p.is_file())
    assert left == ["container.d/50-test-nomemlimit.conf", "litellm@.container.d/50-quick-health.conf"], left
    assert not host.path(ENV_DIR).exists() or not any(host.path(ENV_DIR).iterdir())
    assert not host.path(f"{HOME}/.local/state/blueprint/manifest.json").exists()
    for volume in ("systemd-litellm-postgres", "systemd-litellm-redis"):
        assert host.podman("volume", "exists", volume, check=False).returncode == 0, f"{volume} was removed"
    assert gateway.secrets() == store

    applied = gateway.apply()
    assert applied.returncode == 0, applied.stderr
    gateway.wait_active(services())
    gateway.wait_answering()
    assert gateway.secrets() == store, "the same secrets: PostgreSQL's password is the volume's"
    assert gateway.psql("select v from day2").stdout.strip() == "kept"
    assert gateway.redis("get", "day2:kept").stdout.strip() == "through everything"
    reply = gateway.chat("gpt-4o", "back after uninstall", key=store["LITELLM_MASTER_KEY"], cache={"no-cache": True})
    assert reply.status == 200, reply.body
    assert json.loads(host.read_file(CONFIG))["litellm"]["image"] == f"{REPOSITORY}:{WORKS}"
