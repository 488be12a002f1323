"""Safe apply over a live unit directory, chezmoi style: status, diff, refuse, force, prune, crash."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from blueprint import engine, pipeline
from blueprint.actions import Actions
from blueprint.manifest import Manifest
from tests.conftest import cli, options, tree, write_config

CONFIG = {
    "podman_version": "5.4",
    "caddy": {"tailscale": {"machine": "gateway", "tailnet": "tail1234.ts.net"}},
    "llm_providers": {"openai": {"api_key": "${OPENAI_API_KEY}", "models": ["gpt-4o", "gpt-4o-mini"]}},
}
ENV = {"OPENAI_API_KEY": "sk-test-key"}


@pytest.fixture
def config(home, tmp_path):
    return write_config(tmp_path, CONFIG)


def render(config, *args):
    return cli("render", "--config", str(config), *args, env=ENV)


def test_edit_status_refuse_keep_force(config, home):
    assert render(config).returncode == 0
    unit = home.unit_dir / "litellm/litellm@.container"
    original = unit.read_bytes()
    # Everything identical right after a render.
    status = cli("status", "--config", str(config), env=ENV)
    assert status.returncode == 0
    lines = status.stdout.splitlines()
    written = [p for p in (home.unit_dir, home.systemd_user_dir, home.env_dir) for p in p.rglob("*") if p.is_file()]
    assert len(lines) == len(written) and all(line.startswith("identical") for line in lines), status.stdout

    edited = original.replace(b"RestartSec=5s", b"RestartSec=30s")
    unit.write_bytes(edited)
    status = cli("status", "--config", str(config), env=ENV)
    assert (
        "conflict   ~/.config/containers/systemd/litellm/litellm@.container  (edited since blueprint wrote it)"
        in status.stdout.replace(str(home.home), "~")
    )

    refused = render(config)
    assert refused.returncode == 1
    assert "edited since blueprint wrote it; nothing was written" in refused.stderr
    assert "blueprint diff" in refused.stderr
    assert "-RestartSec=30s" in refused.stdout and "+RestartSec=5s" in refused.stdout, "the refusal shows the edit"
    assert unit.read_bytes() == edited, "the hand edit is kept"

    diff = cli("diff", "--config", str(config), env=ENV)
    assert "-RestartSec=30s" in diff.stdout and "+RestartSec=5s" in diff.stdout

    check = cli("check", "--config", str(config), env=ENV)
    assert check.returncode == 1

    forced = render(config, "--force")
    assert forced.returncode == 0, forced.stderr
    assert unit.read_bytes() == original
    assert cli("check", "--config", str(config), env=ENV).returncode == 0


def test_refusal_writes_nothing_at_all(config, home, tmp_path):
    assert render(config).returncode == 0
    (home.unit_dir / "llm.network").write_text("[Network]\n# mine\n")
    changed = dict(CONFIG, network={"subnet": "10.77.0.0/24"})
    write_config(tmp_path, changed)
    before = tree(home.home)
    assert render(config).returncode == 1
    assert tree(home.home) == before


def test_second_render_writes_nothing(config, home):
    assert render(config).returncode == 0
    stamps = {p: p.stat().st_mtime_ns for p in home.home.rglob("*") if p.is_file() and "state" not in str(p)}
    time.sleep(0.01)
    again = render(config)
    assert again.returncode == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # The slow path (every check, no stamp) writes nothing either.
    prepared = pipeline.prepare(pipeline.Options.from_env(config, {**os.environ, **ENV}))
    assert prepared.differing == []
    outcome = pipeline.write(prepared)
    assert outcome.written == [] and outcome.removed == []
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_file_blueprint_never_wrote_is_not_overwritten(config, home):
    home.unit_dir.mkdir(parents=True)
    mine = home.unit_dir / "llm.network"
    mine.write_text("[Network]\nSubnet=192.168.50.0/24\n")
    result = render(config)
    assert result.returncode == 1
    assert "llm.network: not written by blueprint" in result.stderr
    assert mine.read_text() == "[Network]\nSubnet=192.168.50.0/24\n"
    assert not (home.unit_dir / "litellm").exists(), "nothing else was written either"
    assert render(config, "--force").returncode == 0


def test_unrelated_files_in_the_unit_directory_are_left_alone(config, home):
    home.unit_dir.mkdir(parents=True)
    other = home.unit_dir / "nextcloud.container"
    other.write_text("[Container]\nImage=docker.io/library/nextcloud:29\n")
    assert render(config).returncode == 0
    disabled = dict(
        CONFIG, litellm_redis={"enabled": False}, cache={"enabled": False}, litellm={"requires": ["litellm_postgres"]}
    )
    write_config(config.parent, disabled)
    assert render(config).returncode == 0
    assert other.read_text().startswith("[Container]")


def test_disabled_service_is_pruned_and_its_volume_kept(config, home):
    assert render(config).returncode == 0
    redis_files = [
        home.unit_dir / "litellm/redis/litellm-redis.container",
        home.unit_dir / "litellm/redis/litellm-redis.volume",
        home.env_dir / "litellm-redis.env",
    ]
    assert all(p.exists() for p in redis_files)
    disabled = dict(
        CONFIG, litellm_redis={"enabled": False}, cache={"enabled": False}, litellm={"requires": ["litellm_postgres"]}
    )
    write_config(config.parent, disabled)
    result = render(config)
    assert result.returncode == 0, result.stderr
    assert not any(p.exists() for p in redis_files)
    assert not (home.unit_dir / "litellm/redis").exists(), "the emptied folder goes too"
    assert "the volume systemd-litellm-redis and its data are kept" in result.stderr
    removed = [line.split()[-1] for line in result.stderr.splitlines() if line.startswith("blueprint: removed ")]
    assert sorted(removed) == [
        "~/.config/blueprint/env/litellm-redis.env",
        "~/.config/containers/systemd/litellm/redis/litellm-redis.container",
        "~/.config/containers/systemd/litellm/redis/litellm-redis.volume",
        "~/.config/systemd/user/blueprint-backup-redis.service",
        "~/.config/systemd/user/blueprint-backup-redis.timer",
    ]
    assert "blueprint: 3 written, 5 removed," in result.stderr
    manifest = json.loads(home.manifest.read_text())
    assert not any("litellm-redis" in path for path in manifest["files"])


def test_edited_orphan_is_a_conflict_and_kept(config, home):
    assert render(config).returncode == 0
    orphan = home.unit_dir / "litellm/redis/litellm-redis.container"
    orphan.write_text(orphan.read_text() + "# my note\n")
    write_config(
        config.parent,
        dict(
            CONFIG,
            litellm_redis={"enabled": False},
            cache={"enabled": False},
            litellm={"requires": ["litellm_postgres"]},
        ),
    )
    result = render(config)
    assert result.returncode == 1
    assert "no longer rendered" in result.stderr
    assert orphan.exists()


def test_dry_run_says_what_would_change_and_writes_nothing(config, home):
    result = render(config, "--dry-run")
    assert result.returncode == 0
    assert "would create" in result.stderr
    assert not home.unit_dir.exists() and not home.secret_store.exists()


def test_status_words_on_stderr_output_on_stdout(config, home):
    planned = {str(f.path) for f in pipeline.prepare(options(config, HOME=str(home.home), **ENV)).planned}
    result = render(config)
    assert result.stdout == ""
    created = [line.split()[-1] for line in result.stderr.splitlines() if line.startswith("blueprint: created ")]
    assert {p.replace("~", str(home.home), 1) for p in created} == planned
    assert f"blueprint: {len(planned)} written, 0 removed, 0 unchanged" in result.stderr
    diff = cli("diff", "--config", str(config), env=ENV)
    assert diff.stdout == "", "no diff to show"
    assert diff.stderr == (
        f"blueprint: config: {config}\nblueprint: no differences: the {len(planned)} files match {config}\n"
    )


def test_modes_and_no_world_readable_secret(config, home):
    assert render(config).returncode == 0
    for path, mode in [
        (home.secret_store, 0o600),
        (home.env_dir / "litellm.env", 0o600),
        (home.unit_dir / "litellm/litellm@.container", 0o644),
    ]:
        assert path.stat().st_mode & 0o777 == mode, path
    (home.env_dir / "litellm.env").chmod(0o644)
    assert cli("check", "--config", str(config), env=ENV).returncode == 1, "a loosened mode is drift"
    assert render(config).returncode == 0
    assert (home.env_dir / "litellm.env").stat().st_mode & 0o777 == 0o600


# ---- kill -9 at random points ----------------------------------------------------------------


def _prepare_both(config, home):
    """Two configs whose renders differ in most files, and their exact bytes."""
    variant = dict(
        CONFIG,
        network={"subnet": "10.77.0.0/24"},
        litellm={"num_workers": 2},
        litellm_postgres={"max_connections": 120},
        litellm_redis={"maxmemory": "128MB"},
        llm_providers={"openai": {"api_key": "${OPENAI_API_KEY}", "models": ["gpt-4o"]}},
        backup={"retention_days": 7, "postgres_at": "01:00"},
    )
    configs = {"a": CONFIG, "b": variant}
    planned = {}
    for name, data in configs.items():
        write_config(config.parent, data, f"{name}.json")
        prepared = pipeline.prepare(options(config.parent / f"{name}.json", HOME=str(home.home), **ENV))
        planned[name] = {str(f.path): f.data for f in prepared.planned}
    return planned


def test_kill_9_during_writes_never_leaves_a_torn_file(config, home):
    """200 renders killed with SIGKILL at random moments: every file is wholly old or wholly new."""
    assert render(config).returncode == 0  # secrets exist before the trials, as after a first render
    planned = _prepare_both(config, home)
    names = sorted(set(planned["a"]) | set(planned["b"]))
    current = "a"

    def prepare(name):
        return pipeline.prepare(options(config.parent / f"{name}.json", HOME=str(home.home), **ENV))

    # How long one whole render takes here: kills are spread over that window (and a bit past it).
    started = time.perf_counter()
    pipeline.write(prepare("b"))
    window = (time.perf_counter() - started) * 1.5
    pipeline.write(prepare("a"))
    outcomes = {"old": 0, "new": 0, "mixed": 0}
    rng = random.Random(20261124)
    for trial in range(200):
        target = "b" if current == "a" else "a"
        prepared = prepare(target)
        pid = os.fork()
        if pid == 0:  # the child writes; the parent kills it somewhere along the way
            try:
                pipeline.write(prepared)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0, window))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        states = set()
        for name in names:
            data = Path(name).read_bytes() if os.path.exists(name) else None
            options_for_file = {planned["a"].get(name), planned["b"].get(name)}
            assert data in options_for_file, f"trial {trial}: {name} is torn"
            if planned["a"].get(name) != planned["b"].get(name):
                states.add("a" if data == planned["a"].get(name) else "b")
        outcomes["mixed" if len(states) > 1 else ("new" if states == {target} else "old")] += 1
        # The next render after a kill recognises what the dead one wrote: no false conflict.
        again = prepare(target)
        assert not [c for c in again.changes if c.status is engine.Status.CONFLICT], f"trial {trial}"
        pipeline.write(again)
        current = target
    print(f"kill -9 trials: {outcomes}")
    assert outcomes["mixed"] > 0, f"no kill landed in the middle of a render: {outcomes}"
    leftovers = [p for p in home.home.rglob(".*.tmp")]
    assert leftovers == [], "a completed render removes the temp files of killed ones"


def test_a_manifest_keeps_each_field_in_its_shape_and_every_key_it_does_not_know(home):
    """The fields beside the files, each written by its owner (pipeline, secrets, deployed), are
    read into typed fields and written back as they were; a key of a later blueprint is kept."""
    written = {
        "version": 2,
        "files": {
            str(home.unit_dir / "llm.network"): {
                "kind": "network",
                "unit": "llm-network.service",
                "resource": "systemd-llm",
                "hashes": ["ab12"],
            }
        },
        "stores": [str(home.secret_store)],
        "podman_secrets": {"blueprint-OPENAI_API_KEY": "cd34"},
        "pending": {"stop": [], "disable": [], "daemon_reload": True, "restart": ["litellm.service"], "enable": []},
        "removed": ["ANTHROPIC_API_KEY"],
        "chosen": {"LITELLM_SALT_KEY": "ef56"},
        "later": {"kept": [1, 2]},
    }
    home.manifest.parent.mkdir(parents=True)
    home.manifest.write_text(json.dumps(written))
    manifest = Manifest.load(home)
    assert manifest.pending == Actions(daemon_reload=True, restart=("litellm.service",))
    assert (manifest.stores, manifest.removed) == ([str(home.secret_store)], ["ANTHROPIC_API_KEY"])
    assert manifest.podman_secrets == {"blueprint-OPENAI_API_KEY": "cd34"}
    assert manifest.chosen == {"LITELLM_SALT_KEY": "ef56"}
    manifest.save()
    assert json.loads(home.manifest.read_text()) == written
