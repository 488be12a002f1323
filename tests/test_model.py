"""The typed stack: sizing arithmetic and what each Podman version gets."""

from __future__ import annotations

import json

import pytest

from blueprint import config, model
from blueprint.errors import ConfigError
from blueprint.model.types import FrontDoor, Kind, seconds
from blueprint.paths import Paths
from blueprint.quadlet import Podman, PodmanVersion, Words

PATHS = Paths.from_env({"HOME": "/home/u"})
BASE = {"llm_providers": {"ollama": {"models": ["llama3.2"]}}}


def build(version: str = "5.4", **sections) -> model.Stack:
    loaded = config.loads(json.dumps({**BASE, **sections}))
    return model.build(loaded.data, source="test.json", paths=PATHS, podman=Podman(PodmanVersion.parse(version)))


def keys(service) -> set[str]:
    return {key for key, _ in service.directives}


@pytest.mark.parametrize(
    "users, profile, workers, pool",
    [(50, "small", 4, 25), (100, "small", 4, 25), (250, "medium", 4, 25), (251, "large", 8, 20)],
)
def test_sizing_profiles_follow_the_table_and_split_the_workers_between_replicas(users, profile, workers, pool):
    stack = build(sizing={"users": users})
    assert (stack.sizing.profile, stack.sizing.db_pool_limit) == (profile, pool)
    replicas = stack.services_of("litellm")
    assert len(replicas) == stack.sizing.replicas == 2
    for replica in replicas:
        assert replica.command[replica.command.index("--num_workers") + 1] == str(workers // 2)
    assert stack.sizing.litellm_workers == workers
    assert stack.gateway["general_settings"]["database_connection_pool_limit"] == pool
    single = build(sizing={"users": users}, litellm={"replicas": 1}).service("litellm")
    assert single.command[single.command.index("--num_workers") + 1] == str(workers)


def test_sizing_reaches_postgres_redis_and_limits():
    stack = build(sizing={"users": 250})
    postgres, redis = stack.service("litellm_postgres"), stack.service("litellm_redis")
    assert "shared_buffers=2048MB" in postgres.command and "max_connections=150" in postgres.command
    script = redis.command[-1]
    assert "--maxmemory 1024mb" in script and "--maxmemory-policy allkeys-lru" in script
    assert ("PodmanArgs" in keys(postgres)) and "--memory=3072m" in dict(postgres.directives)["PodmanArgs"]


def test_more_replicas_grow_the_sizings_max_connections_not_a_configured_one():
    """Each worker keeps its own pool: 3 replicas x 2 workers (the profile's 4, split) x 25 need
    163 connections with the 13 reserved, more than the profile's 150; a value set is kept."""
    three = build(litellm={"replicas": 3})
    assert three.sizing.max_connections == 3 * 2 * 25 + 13
    assert f"max_connections={3 * 2 * 25 + 13}" in three.service("litellm_postgres").command
    assert build(litellm={"replicas": 2}).sizing.max_connections == 150, "the profile's, when the pools fit"
    with pytest.raises(ConfigError, match=r"3 replicas x 2 workers x 25 connections \+ 13 reserved = 163"):
        build(litellm={"replicas": 3}, litellm_postgres={"max_connections": 150})
    with pytest.raises(ConfigError, match=r"3 replicas x 2 workers x 30 connections \+ 13 reserved = 193"):
        build(litellm={"replicas": 3}, sizing={"db_pool_limit": 30})


def test_explicit_values_win_and_bad_combinations_are_refused():
    stack = build(litellm={"num_workers": 1}, litellm_postgres={"max_connections": 63})
    assert stack.sizing.num_workers == 1 and stack.sizing.max_connections == 63
    with pytest.raises(ConfigError, match=r"2 replicas x 1 workers x 25 connections \+ 13 reserved = 63"):
        build(litellm={"num_workers": 1}, litellm_postgres={"max_connections": 62})
    with pytest.raises(ConfigError, match=r"^test.json: /sizing/db_pool_limit: 3 workers x 25 connections"):
        build(litellm={"num_workers": 3, "replicas": 1}, litellm_postgres={"max_connections": 62})
    with pytest.raises(ConfigError, match="shared_buffers 4096MB leaves too little"):
        build(litellm_postgres={"shared_buffers": "4GB", "memory": "4GB"})
    with pytest.raises(ConfigError, match="maxmemory"):
        build(litellm_redis={"maxmemory": "1GB", "memory": "1GB"})


def test_the_first_error_does_not_depend_on_build_order():
    """Two broken sections: the one earlier in the config is reported, whichever is built first."""
    broken = {"litellm": {"image": "ghcr.io/berriai/litellm:latest"}, "router_settings": {"fallbacks": {"x": ["y"]}}}
    with pytest.raises(ConfigError, match="/litellm/image"):
        build(**broken)
    with pytest.raises(ConfigError, match="/network/subnet"):
        build(network={"subnet": "10.0.0.1/24"}, **broken)


def test_podman_5_5_gets_memory_and_5_0_health_gated_start():
    new = build("5.5")
    assert {"Memory", "Notify", "HealthCmd", "StopTimeout"} <= keys(new.service("litellm_postgres"))
    old = build("4.9")
    postgres = old.service("litellm_postgres")
    assert "Notify" not in keys(postgres) and "StopTimeout" not in keys(postgres)
    assert "--stop-timeout=60" in dict(postgres.directives)["PodmanArgs"]
    assert "HealthCmd" in keys(postgres)


def test_podman_4_4_gets_a_flat_layout_absolute_mounts_and_health_as_options():
    stack = build("4.4")
    litellm = stack.service("litellm")
    units = {o.path.relative_to(PATHS.unit_dir).as_posix() for o in stack.outputs if PATHS.unit_dir in o.path.parents}
    assert {"litellm-1.container", "litellm-2.container", "litellm.yaml"} <= units, "no templates before 5.0"
    assert not any("/" in u for u in units)
    assert litellm.mounts[0].startswith("/home/u/.config/containers/systemd/litellm.yaml:")
    assert "HealthCmd" not in keys(litellm)
    assert any(a.startswith("--health-cmd=") for a in dict(litellm.directives)["PodmanArgs"])


def test_secrets_backend_podman_needs_4_5():
    with pytest.raises(ConfigError, match=r"Podman secrets need Podman 4\.5"):
        build("4.4", secrets={"backend": "podman"})


def test_litellm_waits_for_what_it_requires_and_the_front_door_for_the_replicas():
    stack = build()
    assert [s.unit for s in stack.services] == [
        "litellm-postgres.service",
        "litellm-redis.service",
        "litellm@1.service",
        "litellm@2.service",
        "litellm-front.service",
    ]
    assert stack.service("litellm").requires == ("litellm-postgres", "litellm-redis")
    front = stack.service("litellm_front")
    assert front.wants == ("litellm@1.service", "litellm@2.service") and front.requires == ()
    assert stack.api is front and not any(s.publish for s in stack.services_of("litellm"))


@pytest.mark.parametrize(
    ("version", "first", "later"),
    [
        ("5.4", "litellm@1.service", ("litellm@2", "litellm@3")),
        ("4.9", "litellm-1.service", ("litellm-2", "litellm-3")),
    ],
)
def test_the_replicas_after_the_first_start_once_it_is_ready(version, first, later):
    """A drop-in in the user's systemd folder orders them, templates' instances and separate units
    alike; with one replica there is none."""
    stack = build(version, litellm={"replicas": 3})
    drop_ins = {
        o.path.relative_to(PATHS.systemd_user_dir).as_posix(): o for o in stack.outputs if o.role.kind is Kind.DROP_IN
    }
    assert sorted(drop_ins) == [f"{unit}.service.d/blueprint-start-order.conf" for unit in later]
    assert all(o.values["svc"].after == (first,) for o in drop_ins.values())
    assert stack.services_of("litellm")[0].after == ()
    assert not any(o.role.kind is Kind.DROP_IN for o in build(version, litellm={"replicas": 1}).outputs)


def test_outputs_say_what_each_file_is_to_systemd():
    stack = build()
    roles = {o.path.name: o.role for o in stack.outputs}
    replicas = ("litellm@1.service", "litellm@2.service")
    assert roles["litellm@.container"].unit == "litellm@.service" and roles["litellm@.container"].restarts == replicas
    assert roles["litellm-redis.volume"].unit == "litellm-redis-volume.service"
    assert roles["litellm-redis.volume"].resource == "systemd-litellm-redis"
    assert roles["llm.network"].unit == "llm-network.service"
    assert roles["litellm.yaml"].restarts == replicas and roles["litellm.yaml"].kind is Kind.MOUNTED
    assert roles["litellm.env"].restarts == replicas, "one environment file for every replica"
    assert roles["litellm-front.caddy"].restarts == ("litellm-front.service",)
    assert roles["litellm-postgres.env"].secret and roles["litellm-postgres.env"].restarts == (
        "litellm-postgres.service",
    )
    assert roles["blueprint-backup-redis.timer"].unit == "blueprint-backup-redis.timer"
    assert not any(r.secret for name, r in roles.items() if not name.endswith(".env"))


def test_localhost_base_url_is_the_host_seen_from_the_container():
    stack = build(llm_providers={"ollama": {"base_url": "http://localhost:11434", "models": ["llama3.2"]}})
    params = stack.gateway["model_list"][0]["litellm_params"]
    assert params["api_base"] == "http://host.containers.internal:11434"
    assert any("host.containers.internal" in note for note in stack.notes)
    # Only the host changes: scheme, port, path, query and fragment stay as written.
    url = "https://[::1]:8443/v1/chat?tenant=a#x"
    stack = build(llm_providers={"vllm": {"base_url": url, "models": ["m"]}})
    assert stack.gateway["model_list"][0]["litellm_params"]["api_base"] == (
        "https://host.containers.internal:8443/v1/chat?tenant=a#x"
    )


@pytest.mark.parametrize(
    "host",
    [
        *("localhost", "LOCALHOST", "api.localhost", "127.0.0.1", "127.1", "127.0.0.2"),
        *("[::1]", "0.0.0.0", "[::]", "[::ffff:127.0.0.1]"),
    ],
)
def test_every_name_of_this_machine_is_the_host_seen_from_the_container(host):
    """127.1 and 127.0.0.2 are loopback addresses as 127.0.0.1 is: inside a container, the container's."""
    stack = build(llm_providers={"vllm": {"base_url": f"http://{host}:8000/v1", "models": ["m"]}})
    assert stack.gateway["model_list"][0]["litellm_params"]["api_base"] == "http://host.containers.internal:8000/v1"
    assert any(note.startswith("/llm_providers/vllm/base_url: inside a container") for note in stack.notes)


def test_a_callback_on_this_machine_is_the_host_seen_from_the_container():
    """LiteLLM's container reads Langfuse's and Lago's URLs as it reads a provider's base_url."""
    stack = build(
        callbacks={
            "langfuse": {"enabled": True, "host": "http://localhost:3000"},
            "lago": {"enabled": True, "api_base": "http://127.0.0.1:3001/api", "event_code": "x"},
        }
    )
    environment = stack.service("litellm").environment
    assert "LANGFUSE_HOST=http://host.containers.internal:3000" in environment
    assert "LAGO_API_BASE=http://host.containers.internal:3001/api" in environment
    said = [note.partition(":")[0] for note in stack.notes if "inside a container" in note]
    assert said == ["/callbacks/langfuse/host", "/callbacks/lago/api_base"]


def test_a_url_nothing_reads_is_not_noted():
    stack = build(callbacks={"langfuse": {"enabled": False, "host": "http://localhost:3000"}})
    assert not [note for note in stack.notes if "inside a container" in note]


@pytest.mark.parametrize("host", ["127.0.0.1.example.com", "localhost-gpu", "10.0.0.1", "[2001:db8::1]", "mylocalhost"])
def test_a_host_elsewhere_is_kept(host):
    stack = build(llm_providers={"vllm": {"base_url": f"http://{host}:8000/v1", "models": ["m"]}})
    assert stack.gateway["model_list"][0]["litellm_params"]["api_base"] == f"http://{host}:8000/v1"


def test_disabled_providers_are_absent():
    stack = build(llm_providers={"ollama": {"models": ["a"]}, "openai": {"enabled": False, "models": ["gpt-4o"]}})
    assert [m["model_name"] for m in stack.gateway["model_list"]] == ["a"]
    assert "OPENAI_API_KEY" not in stack.secret_names


EXTERNAL = {
    "litellm_postgres": {"external": {"url": "${MANAGED_DATABASE_URL}"}},
    "litellm_redis": {"external": {"host": "10.0.0.7", "password": "${MANAGED_REDIS_PASSWORD}", "tls": True}},
}


def test_an_external_database_and_redis_are_used_not_run():
    stack = build(**EXTERNAL, budget={"max_budget": 10})
    assert not stack.service("litellm_postgres") and not stack.service("litellm_redis")
    assert not stack.volumes and stack.database is None, "blueprint keeps no data of theirs"
    assert [job.kind for job in stack.backup.jobs] == ["config"]
    proxy = stack.services_of("litellm")[0]
    assert proxy.requires_units == ()
    env = {e.var: e for e in proxy.secret_env}
    assert env["DATABASE_URL"].needs == ("MANAGED_DATABASE_URL",)
    assert env["REDIS_PASSWORD"].needs == ("MANAGED_REDIS_PASSWORD",)
    assert "POSTGRES_PASSWORD" not in stack.generated_secrets and "REDIS_PASSWORD" not in stack.generated_secrets
    general = stack.gateway["general_settings"]
    assert general["coordination_redis"] == {
        "host": "10.0.0.7",
        "port": 6379,
        "password": "os.environ/REDIS_PASSWORD",
        "ssl": True,
    }
    assert stack.gateway["router_settings"]["cache_kwargs"] == {"ssl": True}
    assert general["database_url"] == "os.environ/DATABASE_URL"


@pytest.mark.parametrize(
    "sections, pointer",
    [
        (
            {"litellm_postgres": {**EXTERNAL["litellm_postgres"], "max_connections": 500}},
            "/litellm_postgres/max_connections",
        ),
        ({"litellm_redis": {"external": {"host": "10.0.0.999"}}}, "/litellm_redis/external/host"),
        ({"litellm_postgres": {"external": {"url": "postgresql://u:p@db/x"}}}, "/litellm_postgres/external/url"),
    ],
)
def test_an_external_service_is_refused_where_it_contradicts_itself(sections, pointer):
    with pytest.raises(ConfigError, match=f"json: {pointer}: "):
        build(**sections)


def test_the_estimate_of_postgresqls_shared_memory_holds_the_servers_own():
    """The real PostgreSQL 15 says what it allocates as it starts (`postgres -C shared_memory_size`):
    the estimate sizing.py refuses by is never below it, and not far above (the shared part; each
    connection's own memory comes on top)."""
    import os
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from blueprint.model.sizing import shared_memory_mb
    from tests.conftest import PG_BIN, need

    initdb = need(PG_BIN / "initdb", "PostgreSQL 15 server (Debian postgresql)")
    with tempfile.TemporaryDirectory(prefix="blueprint-pg-") as folder:  # one the postgres user reaches
        data = Path(folder)
        as_owner: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(data, "postgres", "postgres")
            as_owner = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*as_owner, initdb, "-D", str(data / "db"), "-U", "x"], check=True, capture_output=True)
        for buffers, connections in [(128, 100), (256, 10), (256, 50013), (1024, 1000), (4096, 10000)]:
            settings = ["-c", f"shared_buffers={buffers}MB", "-c", f"max_connections={connections}"]
            measured = subprocess.run(
                [*as_owner, str(PG_BIN / "postgres"), "-D", str(data / "db"), "-C", "shared_memory_size", *settings],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            estimate = shared_memory_mb(buffers, connections)
            assert int(measured) <= estimate <= int(measured) * 1.1 + 16, (buffers, connections, measured, estimate)


@pytest.mark.parametrize(("duration", "expected"), [("250ms", 0.25), ("2s", 2), ("30s", 30), ("2m", 120)])
def test_durations_read_as_podman_and_caddy_write_them(duration, expected):
    assert seconds(duration) == expected


def test_a_replica_waits_for_the_front_door_to_forget_a_refusal_and_check_it_again():
    door = FrontDoor(port=4000, upstreams=Words(("litellm-1:4000",)), fail_duration="2s", health_interval="500ms")
    assert door.settle == 2.5
    with pytest.raises(ValueError, match="not a duration"):
        seconds("1h")
