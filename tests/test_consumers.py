"""The real consumers read every fixture's output: Quadlet, systemd, Caddy and LiteLLM's loader.

Each fixture is rendered for real into a private home, then:
- every Quadlet generator at least as new as the target Podman turns the units into services
  (and an older one refuses exactly the keys it does not know);
- `systemd-analyze --user verify` reads the generated services and the backup timers and says
  nothing at all (it only warns, so any output is a failure);
- `caddy validate` accepts the site and `caddy fmt` finds nothing to change;
- LiteLLM's own ProxyConfig loads litellm.yaml with the rendered environment file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from blueprint import pipeline
from blueprint.model.types import Kind, Purpose
from blueprint.quadlet import PodmanVersion
from tests.conftest import ROOT, TOOLS, need, options, store_secrets
from tests.test_golden import CASES, fixture_config

GENERATORS = {
    "trixie": TOOLS / "trixie/root/usr/libexec/podman/quadlet",
    "sid": TOOLS / "sid/root/usr/libexec/podman/quadlet",
}
PODMAN = TOOLS / "trixie/root/usr/bin/podman"
ALL = ["default", *CASES]
GOLDEN = ROOT / "tests" / "golden"
WITH_SITE = [c for c in ALL if any(GOLDEN.glob(f"{c}/**/litellm.caddy"))]
WITH_FRONT_DOOR = [c for c in ALL if any(GOLDEN.glob(f"{c}/**/litellm-front.caddy"))]
WITH_BACKUPS = [c for c in ALL if any(GOLDEN.glob(f"{c}/**/blueprint-backup-*.timer"))]


REDIS_PASSWORD = "consumers-test-redis-password"


def render_case(case: str, home_dir: Path) -> pipeline.Prepared:
    environ = {"HOME": str(home_dir)}
    opts = options(fixture_config(case), **environ)
    # A known Redis password, so one real Redis can stand in for every fixture's litellm-redis.
    store_secrets(opts.paths, REDIS_PASSWORD=REDIS_PASSWORD)
    stack = pipeline.build_stack(opts).stack
    environ.update({name: f"stand-in-{name.lower()}" for name in stack.secret_names})
    opts = options(fixture_config(case), **environ)
    prepared = pipeline.prepare(opts)
    if prepared.stack.secrets_backend == "podman":
        # Units only: the Podman secrets themselves are tested with a fake podman (test_secrets).
        pipeline.secrets.persist(opts.paths, prepared.resolution.new)
        pipeline.engine.apply(*pipeline.engine.partition(prepared.changes), prepared.manifest, ())
    else:
        pipeline.write(prepared)
    return prepared


def generator_version(generator: str) -> PodmanVersion:
    out = subprocess.run([generator, "-version"], capture_output=True, text=True, check=True).stdout
    return PodmanVersion.parse(out)


def dryrun(generator: str, unit_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [generator, "-user", "-dryrun"],
        capture_output=True,
        text=True,
        env={**os.environ, "QUADLET_UNIT_DIRS": str(unit_dir)},
        timeout=60,
    )


@pytest.mark.parametrize("case", ALL)
@pytest.mark.parametrize("suite", sorted(GENERATORS))
def test_quadlet_generator_accepts_units(case, suite, tmp_path):
    generator = need(GENERATORS[suite], f"Quadlet generator ({suite})")
    prepared = render_case(case, tmp_path)
    target = prepared.stack.podman.version
    result = dryrun(generator, prepared.options.paths.unit_dir)
    if generator_version(generator) >= target:
        assert result.returncode == 0, result.stderr
        services = set(re.findall(r"^---(.+)---$", result.stdout, re.M))
        # What Quadlet makes of each unit file (litellm@.container: the template litellm@.service).
        kinds = (Kind.CONTAINER, Kind.NETWORK, Kind.VOLUME)
        assert services == {o.role.unit for o in prepared.stack.outputs if o.role.kind in kinds}
    else:
        # A generator older than the target refuses precisely the newer keys.
        assert result.returncode != 0
        assert "unsupported key" in result.stderr


@pytest.mark.parametrize("case", ALL)
def test_systemd_analyze_verify_is_silent(case, tmp_path, systemd_analyze):
    generator = need(GENERATORS["sid"], "Quadlet generator (sid)")
    podman = need(PODMAN, "podman binary (ExecStart= target)")
    prepared = render_case(case, tmp_path / "home")
    paths = prepared.options.paths
    generated = tmp_path / "generated"
    generated.mkdir()
    subprocess.run(
        [generator, "-user", "-no-kmsg-log", str(generated)],
        check=True,
        capture_output=True,
        env={**os.environ, "QUADLET_UNIT_DIRS": str(paths.unit_dir), "PODMAN": podman},
    )
    for found in paths.systemd_user_dir.glob("*") if paths.systemd_user_dir.exists() else ():
        (shutil.copytree if found.is_dir() else shutil.copy)(found, generated / found.name)
    # A drop-in's folder names the unit it adds to, which may be an instance of a template.
    names = (p.name.removesuffix(".d") for p in generated.iterdir())
    units = sorted({name for name in names if name.endswith((".service", ".timer"))})
    assert units
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    result = subprocess.run(
        [systemd_analyze, "--user", "verify", *units],
        cwd=generated,
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == "", "systemd-analyze warned:\n" + result.stdout + result.stderr


@pytest.mark.parametrize("case", WITH_BACKUPS)
def test_backup_timers_have_valid_calendars(case, tmp_path, systemd_analyze):
    prepared = render_case(case, tmp_path)
    for job in prepared.stack.backup.jobs:
        result = subprocess.run([systemd_analyze, "calendar", job.on_calendar], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert f"Normalized form: *-*-* {job.at}:00" in result.stdout


@pytest.mark.parametrize("case", WITH_SITE)
def test_caddy_validates_the_site(case, tmp_path, caddy):
    prepared = render_case(case, tmp_path)
    site = prepared.stack.output(Purpose.SITE).path
    result = subprocess.run(
        [caddy, "validate", "--config", str(site), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    fmt = subprocess.run([caddy, "fmt", "--diff", str(site)], capture_output=True, text=True, timeout=60)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    adapted = subprocess.run(
        [caddy, "adapt", "--config", str(site), "--adapter", "caddyfile"], capture_output=True, text=True, timeout=60
    )
    config = json.loads(adapted.stdout)
    routes = config["apps"]["http"]["servers"]["srv0"]["routes"]
    hosts = [address.split("://")[1].split(":")[0] for address in prepared.stack.site.addresses]
    assert routes[0]["match"][0]["host"] == hosts
    assert prepared.stack.site.upstream in adapted.stdout


@pytest.mark.parametrize("case", WITH_FRONT_DOOR)
def test_caddy_validates_the_front_door(case, tmp_path, caddy):
    """The front door's Caddyfile: valid, formatted, listening on LiteLLM's port, balancing over
    every replica with health checks and retries."""
    prepared = render_case(case, tmp_path)
    door = prepared.stack.front_door
    path = prepared.stack.output(Purpose.FRONT_DOOR).path
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    result = subprocess.run(
        [caddy, "validate", "--config", str(path), "--adapter", "caddyfile"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    fmt = subprocess.run([caddy, "fmt", "--diff", str(path)], capture_output=True, text=True, timeout=60)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    adapted = json.loads(
        subprocess.run(
            [caddy, "adapt", "--config", str(path), "--adapter", "caddyfile"], capture_output=True, text=True
        ).stdout
    )
    assert adapted["admin"] == {"disabled": True}
    (server,) = adapted["apps"]["http"]["servers"].values()
    assert server["listen"] == [f":{door.port}"]
    proxy = server["routes"][0]["handle"][0]
    assert [u["dial"] for u in proxy["upstreams"]] == list(door.upstreams)
    assert [u.split(":")[0] for u in door.upstreams] == [
        s.container_name for s in prepared.stack.services_of("litellm")
    ]
    assert proxy["load_balancing"]["try_duration"] > 0, "a request meeting a restarting replica is retried"
    assert proxy["health_checks"]["active"]["uri"] == "/health/liveliness"


CHECK = ROOT / "tests" / "litellm_load.py"


@pytest.mark.litellm
@pytest.mark.xdist_group("litellm-load")
def test_litellm_loads_every_rendered_config(tmp_path, litellm_python, redis_server):
    """LiteLLM's own ProxyConfig reads each litellm.yaml; it must know every deployment and setting.

    litellm-redis resolves to a real Redis on loopback that requires the rendered password.
    """
    redis_port = redis_server(REDIS_PASSWORD)
    jobs = []
    for case in ALL:
        prepared = render_case(case, tmp_path / case)
        if prepared.stack.gateway is None:
            continue
        env_file = prepared.options.paths.env_dir / "litellm.env"
        jobs.append(
            {
                "case": case,
                "yaml": str(prepared.stack.gateway_file),
                "env": str(env_file) if env_file.exists() else None,
                "extra_env": {k: v for k, v in prepared.options.environ.items() if v.startswith("stand-in")},
                "hosts": {"litellm-redis:6379": f"127.0.0.1:{redis_port}"},
            }
        )
    result = subprocess.run(
        [litellm_python, str(CHECK)],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "LITELLM_LOG": "ERROR"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reports = {r["case"]: r for r in map(json.loads, result.stdout.splitlines())}
    for case in {j["case"] for j in jobs}:
        report = reports[case]
        stack = render_case(case, tmp_path / f"again-{case}").stack
        config = stack.gateway
        assert report["models"] == len(config["model_list"]), case
        assert report["routing_strategy"] == config["router_settings"]["routing_strategy"], case
        assert (report["fallbacks"] or []) == config["router_settings"].get("fallbacks", []), case
        assert report["ignored_router_keys"] == [], case
        assert report["cache"] == config["litellm_settings"].get("cache", False), case
        assert report["max_budget"] == config["litellm_settings"].get("max_budget", 0.0), case
        # Per-key limits and spend counters are shared through Redis whenever there is one (the
        # container, or an external Redis), with the response cache off too (the no-cache fixture).
        redis = stack.service("litellm_redis")
        external = json.loads(fixture_config(case).read_text()).get("litellm_redis", {}).get("external")
        expected = external["host"] if external else redis.container_name if redis else None
        assert report["coordination_redis"] == expected, case


def test_fixtures_use_every_section_of_the_config():
    """Every top-level section of the schema is set by some fixture, so the consumers above read
    every kind of output blueprint can write."""
    from blueprint.config import schema

    used = set().union(*(json.loads(fixture_config(case).read_text()) for case in ALL))
    assert set(schema()["properties"]) - {"$schema"} <= used
    assert len(WITH_SITE) >= 4 and len(WITH_BACKUPS) >= 4
