"""The fast path may only ever skip work that the full path would not have done."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from blueprint import fastpath, paths
from tests import injection
from tests.conftest import cli, fake_podman, need, write_config

CONFIG = {"podman_version": "auto", "llm_providers": {"openai": {"api_key": "${OPENAI_API_KEY}", "models": ["gpt-4o"]}}}
ENV = {"OPENAI_API_KEY": "sk-first"}
FAST = "nothing to do"


@pytest.fixture
def config(home, tmp_path):
    path = write_config(tmp_path, CONFIG)
    first = cli("render", "--config", str(path), env=ENV)
    assert first.returncode == 0, first.stderr
    return path


def render(config, *args, env=ENV):
    return cli("render", "--config", str(config), *args, env=env)


def fast(result) -> bool:
    return FAST in result.stderr


def test_unchanged_render_takes_the_fast_path_and_agrees_with_the_full_one(config, home):
    result = render(config)
    assert fast(result)
    assert f"blueprint: config: {config}\n" in result.stderr, "the fast path names its config too"
    full = cli("check", "--config", str(config), env=ENV)
    assert full.returncode == 0, "the full path finds nothing to do either"


def test_a_hand_edit_is_still_a_conflict(config, home):
    unit = home.unit_dir / "litellm/litellm@.container"
    unit.write_text(unit.read_text().replace("RestartSec=5s", "RestartSec=9s"))
    result = render(config)
    assert not fast(result)
    assert result.returncode == 1 and "edited since blueprint wrote it" in result.stderr


def test_an_edit_that_keeps_size_and_mtime_is_still_seen(config, home):
    unit = home.unit_dir / "litellm/litellm@.container"
    before = unit.stat()
    unit.write_text(unit.read_text().replace("RestartSec=5s", "RestartSec=6s"))
    os.utime(unit, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert unit.stat().st_size == before.st_size and unit.stat().st_mtime_ns == before.st_mtime_ns
    result = render(config)
    assert not fast(result) and result.returncode == 1


def test_a_deleted_output_is_written_again(config, home):
    (home.unit_dir / "llm.network").unlink()
    result = render(config)
    assert not fast(result)
    assert (home.unit_dir / "llm.network").exists()


@pytest.mark.parametrize("how", ["deleted", "edited"])
def test_the_copy_of_the_config_is_written_again(config, home, how):
    """Deleted, it stayed missing ("nothing to do"): the backup timers, which read it, failed every
    night, and ps from another folder said `blueprint apply` would bring it back."""
    if how == "deleted":
        home.applied_config.unlink()
    else:
        home.applied_config.write_text("{}")
    result = render(config)
    assert result.returncode == 0, result.stderr
    assert not fast(result)
    assert home.applied_config.read_bytes() == config.read_bytes()
    assert fast(render(config)), "proven again"


def test_a_loosened_mode_is_repaired(config, home):
    env_file = home.env_dir / "litellm.env"
    env_file.chmod(0o644)
    assert not fast(render(config))
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def podman_run(home, service: str) -> list[str]:
    """The `podman run` command line Quadlet makes of a rendered unit."""
    need(injection.QUADLET, "Quadlet generator")
    return injection.exec_words(dict(injection.quadlet_services(home.unit_dir)[service])["Service.ExecStart"])


def test_a_changed_config_renders(config, home):
    write_config(config.parent, {**CONFIG, "litellm": {"num_workers": 2}})
    result = render(config)
    assert not fast(result)
    words = podman_run(home, injection.LITELLM)
    assert words[words.index("--num_workers") + 1] == "2"
    assert fast(render(config))


def test_a_new_secret_renders(config, home):
    assert cli("secrets", "set", "OPENAI_API_KEY", input="sk-second\n").returncode == 0
    result = render(config)
    assert not fast(result)
    assert "OPENAI_API_KEY=sk-second" in (home.env_dir / "litellm.env").read_text()


def test_other_directories_render(config, home, tmp_path):
    other = tmp_path / "elsewhere"
    result = render(config, env={**ENV, "XDG_CONFIG_HOME": str(other)})
    assert not fast(result)
    assert (other / "containers/systemd/llm.network").exists()


def test_options_other_than_config_take_the_full_path(config):
    assert not fast(render(config, "--dry-run"))
    assert not fast(render(config, "--force"))
    assert fast(cli("render", f"--config={config}", env=ENV))


def test_a_podman_appearing_on_path_renders_for_its_version(config, home, tmp_path):
    podman = fake_podman(tmp_path, {"version": "4.9.3"})
    result = render(config, env={**ENV, **podman})
    assert not fast(result)
    # Podman 4.9 has neither templates nor Notify=healthy: the replicas are units of their own.
    assert "--sdnotify=healthy" not in podman_run(home, "litellm-1.service"), "Podman 4.9 has no Notify=healthy"
    assert fast(render(config, env={**ENV, **podman}))
    assert not fast(render(config)), "without that podman on PATH, the units are written for 5.4 again"
    assert "--sdnotify=healthy" in podman_run(home, injection.LITELLM)


def test_a_tailscale_that_logs_in_after_a_render_names_the_site(config, home, tmp_path):
    """tailscaled logged out at the first render, then `tailscale up`: same binary, same socket,
    another name for this machine, which the site must take."""
    import json

    bin_dir, answer = tmp_path / "bin", tmp_path / "tailscale-status.json"
    bin_dir.mkdir()
    (bin_dir / "tailscale").write_text(f"#!/bin/sh\ncat {answer}\n")
    (bin_dir / "tailscale").chmod(0o755)
    env = {**ENV, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    answer.write_text(json.dumps({"BackendState": "NeedsLogin", "Self": {"DNSName": ""}}))
    assert render(config, env=env).returncode == 0
    assert fast(render(config, env=env))
    answer.write_text(json.dumps({"BackendState": "Running", "Self": {"DNSName": "box.tail1234.ts.net."}}))
    result = render(config, env=env)
    assert not fast(result), result.stderr
    assert "https://box.tail1234.ts.net" in (home.unit_dir / "litellm/litellm.caddy").read_text()
    assert cli("check", "--config", str(config), env=env).returncode == 0


def test_pending_restarts_keep_apply_on_the_full_path(config, home):
    assert fastpath.up_to_date(["render", "--config", str(config)], {**os.environ, **ENV}) is not None
    assert fastpath.up_to_date(["apply", "--config", str(config)], {**os.environ, **ENV}) is None


def test_a_changed_template_renders(config, home, tmp_path, monkeypatch):
    from blueprint import pipeline
    from blueprint import plan as render_module

    copy = tmp_path / "njk"
    shutil.copytree(paths.resource("njk"), copy)
    monkeypatch.setattr(fastpath, "resource", lambda name: copy if name == "njk" else paths.resource(name))
    monkeypatch.setattr(render_module, "TEMPLATE_DIR", copy)
    render_module._environment.cache_clear()
    environ = {**os.environ, **ENV}
    pipeline.write(pipeline.prepare(pipeline.Options.from_env(config, environ)))
    argv = ["render", "--config", str(config)]
    assert fastpath.up_to_date(argv, environ) is not None
    template = copy / "llm.network.njk"
    template.write_text(template.read_text() + "# changed\n")
    assert fastpath.up_to_date(argv, environ) is None
    render_module._environment.cache_clear()


def test_an_interrupted_write_leaves_no_stamp(config, home):
    from blueprint import pipeline
    from tests.conftest import options

    write_config(config.parent, {**CONFIG, "litellm": {"num_workers": 1}})
    prepared = pipeline.prepare(options(config, HOME=str(home.home), **ENV))

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    original = pipeline.engine.apply
    pipeline.engine.apply = explode
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.write(prepared)
    finally:
        pipeline.engine.apply = original
    assert not home.stamp.exists()
    assert not fast(render(config))
