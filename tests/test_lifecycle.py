"""Day-2 commands as far as they can be shown without running containers: init, upgrade's
checks and its edit of the config, ps, logs, down, up, uninstall, and the self-healing settings.
tests/boot runs the same commands against the real stack."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from blueprint import config as config_module
from blueprint import configfile, pipeline, podman
from blueprint.errors import ConfigError
from blueprint.files import digest
from blueprint.model import providers as catalog
from blueprint.model import releases, rules
from blueprint.model.releases import Stage
from blueprint.model.types import seconds
from blueprint.ops import upgrade
from tests import injection
from tests.conftest import FAKES, ROOT, cli, daemon_reload, fake_systemctl, free_port, options, write_config

CONFIG = {
    "podman_version": "5.4",
    "litellm": {"published_port": 4000},
    "llm_providers": {"ollama": {"models": ["llama3.2"]}},
}


@pytest.fixture
def world(home, tmp_path):
    """A rendered stack, with fake systemctl and podman first on PATH describing what runs."""
    data = {**CONFIG, "litellm": {"published_port": free_port()}}
    config = write_config(tmp_path, data)
    podman, systemd = tmp_path / "podman.json", tmp_path / "systemd.json"
    names = ("litellm-1", "litellm-2", "litellm-front", "litellm-postgres", "litellm-redis")
    containers = {name: {"health": "healthy"} for name in names}
    del containers["litellm-front"]["health"]  # the front door has no health check: running is enough
    podman.write_text(json.dumps({"containers": containers, "volumes": {}}))
    env = {"PATH": f"{FAKES}:{os.environ['PATH']}", "FAKE_PODMAN": str(podman), "FAKE_SYSTEMCTL": str(systemd)}
    assert cli("render", "--config", str(config), env=env).returncode == 0
    daemon_reload(env)

    class World:
        def run(self, *args, **more):
            return cli(*args, env={**env, **more})

        def set(self, path: Path, change):
            data = json.loads(path.read_text()) if path.exists() else {}
            change(data)
            path.write_text(json.dumps(data))

        def calls(self) -> list[str]:
            log = Path(f"{systemd}.log")
            return log.read_text().splitlines() if log.exists() else []

    found = World()
    found.config, found.podman, found.systemd, found.env, found.home = config, podman, systemd, env, home
    return found


# ---- init ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", sorted(catalog.PROVIDERS))
def test_init_writes_a_starter_that_validates_and_renders(provider, home, tmp_path):
    result = cli("init", "--provider", provider, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "blueprint-config.json").read_text())
    assert Path(written["$schema"]).is_file()
    assert list(written["llm_providers"]) == [provider]
    rendered = cli("render", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert rendered.returncode == 0, rendered.stderr
    assert "config: " in rendered.stderr and "blueprint-config.json" in rendered.stderr


def test_init_names_each_provider_once_and_only_the_keys_they_need(home, tmp_path):
    result = cli("init", "--provider", "openai", "--provider", "openai", "--provider", "ollama", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(openai, ollama;" in result.stderr
    asked = [line for line in result.stderr.splitlines() if "secrets set" in line]
    assert asked == ["blueprint: next: blueprint secrets set OPENAI_API_KEY < file-holding-it"]
    (tmp_path / "alone").mkdir()
    alone = cli("init", "--provider", "ollama", cwd=tmp_path / "alone")
    assert "secrets set" not in alone.stderr, "Ollama needs no key"


def test_init_never_overwrites(home, tmp_path):
    mine = write_config(tmp_path, {"llm_providers": {}}, "blueprint-config.json")
    before = mine.read_bytes()
    result = cli("init", cwd=tmp_path)
    assert result.returncode == 2 and "already exists; blueprint init never overwrites" in result.stderr
    assert mine.read_bytes() == before
    mine.unlink()
    mine.symlink_to(tmp_path / "nowhere.json")  # a dangling link is not followed either
    assert cli("init", cwd=tmp_path).returncode == 2
    assert not (tmp_path / "nowhere.json").exists()


def test_init_names_the_placeholders_to_fill_in(home, tmp_path):
    result = cli("init", "--provider", "azure", cwd=tmp_path)
    assert "note: /llm_providers/azure/base_url is a placeholder" in result.stderr
    assert cli("init", "--provider", "nope", cwd=tmp_path / "..").returncode == 2


# ---- upgrade's checks and its edit of the config ---------------------------------------------------


DATA = {"litellm": {"image": "ghcr.io/berriai/litellm:v1.99.4"}}
LITELLM_RULES = {"allow_floating_tag": False}


@pytest.mark.parametrize(
    "tag, message",
    [
        ("v1.82.7", "malicious release"),
        ("main-stable", "not a release tag"),
        ("latest", "not a release tag"),
        ("1.99", "not a release tag"),
        ("v1.99.5; rm -rf /", "not a release tag"),
        ("v1.98.0", "older than the running v1.99.4"),
        ("v1.99.4-rc1", "older than the running v1.99.4"),
        ("v1.99.5-mine", "not a release tag"),
    ],
)
def test_upgrade_refuses_tags_that_name_no_release_or_a_bad_one(tag, message):
    with pytest.raises(ConfigError, match=message):
        upgrade.check({"litellm": {**DATA["litellm"], "allow_floating_tag": True}}, tag, allow_downgrade=False)


def test_upgrade_accepts_a_newer_release_and_a_downgrade_only_when_asked():
    assert upgrade.check(DATA, "v1.99.5", allow_downgrade=False) == (
        "ghcr.io/berriai/litellm:v1.99.4",
        "ghcr.io/berriai/litellm:v1.99.5",
    )
    assert upgrade.check(DATA, "v1.98.0", allow_downgrade=True)[1] == "ghcr.io/berriai/litellm:v1.98.0"
    digest = {"litellm": {"image": "ghcr.io/berriai/litellm:v1.99.4@sha256:" + "a" * 64}}
    assert upgrade.check(digest, "v1.99.5", allow_downgrade=False)[1] == "ghcr.io/berriai/litellm:v1.99.5"


def test_upgrade_names_tags_as_litellm_does():
    assert upgrade.check(DATA, "1.99.5", allow_downgrade=False)[1] == "ghcr.io/berriai/litellm:v1.99.5"
    stable = upgrade.check(DATA, "v1.99.4-stable", allow_downgrade=False)[1]
    assert stable == "ghcr.io/berriai/litellm:v1.99.4-stable", "the -stable build of the running release"


R = releases.Release


@pytest.mark.parametrize(
    "tag, read",
    [
        ("v1.99.5", R((1, 99, 5))),
        ("1.99.5", R((1, 99, 5))),
        ("main-v1.99.5", R((1, 99, 5))),
        ("v1.99.5-stable", R((1, 99, 5))),
        ("v1.99.5-stable.patch.1", R((1, 99, 5), Stage.PATCH, 1)),
        ("v1.99.5-stable.patch2", R((1, 99, 5), Stage.PATCH, 2)),
        ("v1.99.5.rc.10", R((1, 99, 5), Stage.CANDIDATE, 10)),
        ("v1.99.5-rc2", R((1, 99, 5), Stage.CANDIDATE, 2)),
        ("v1.99.5.rc", R((1, 99, 5), Stage.CANDIDATE, 0)),
        ("latest", None),
        ("main-stable", None),
        ("my-build", None),
        ("v01.82.07", "LiteLLM 1.82.7 was a malicious release"),
        ("main-v1.82.8-stable", "LiteLLM 1.82.8 was a malicious release"),
        ("v1.82.7_patched", "LiteLLM 1.82.7 was a malicious release"),
        ("v1.99.05", "without leading zeros"),
        ("v99999999999999999999.0.0", "at most 4 digits"),
        ("v1.99.5-nightly", releases.Floating),
        ("v1.99.5-latest", releases.Floating),
        ("v1.99.5-main", releases.Floating),
        ("v1.99.5-dev.3", releases.Floating),
        ("v1.99.5-mine", releases.Unknown),
        ("v1.99.5; rm -rf /", releases.Unknown),
        # ghcr's "Latest" since 1.80: the stable build's patches numbered -stable.N.
        ("v1.80.11-stable.1", R((1, 80, 11), Stage.PATCH, 1)),
        ("v1.99.6-stable.12", R((1, 99, 6), Stage.PATCH, 12)),
        # The stable builds of 1.56 to 1.63, named after their branch.
        ("litellm_stable_release_branch-v1.56.3-stable", R((1, 56, 3))),
        ("litellm_stable_release_branch-v1.82.7-stable", "LiteLLM 1.82.7 was a malicious release"),
        # From 1.84 on (PEP 440): a patch is .postN, a candidate rcN or -rc.N.
        ("v1.84.0.post2", R((1, 84, 0), Stage.PATCH, 2)),
        ("v1.88.0rc3", R((1, 88, 0), Stage.CANDIDATE, 3)),
        ("1.88.0-rc.3", R((1, 88, 0), Stage.CANDIDATE, 3)),
        # A malicious version wherever the tag names it, however it is spelt.
        ("V1.82.7", "LiteLLM 1.82.7 was a malicious release"),
        ("my-mirror-v1.82.8", "LiteLLM 1.82.8 was a malicious release"),
        ("build-1.82.007-x", "LiteLLM 1.82.7 was a malicious release"),
        ("V1.99.5", "lowercase v"),
        # Digits of other scripts are digits to Python's \d and int(), never in a tag.
        ("v1.99.\u0665", None),
        ("v\u0661.99.5", None),
        ("v1.99.6-stable.patch.0001", "without leading zeros"),
        ("v1.99.6-stable.01", "without leading zeros"),
        ("v1.99.6.rc.02", "without leading zeros"),
        ("v1.99.6-stable.patch.99999", releases.Unknown),
    ],
)
def test_one_reading_of_litellm_tags(tag, read):
    """What each tag names, or why it names nothing to run."""
    if isinstance(read, str):
        with pytest.raises(releases.TagProblem, match=read):
            releases.parse(tag)
    elif isinstance(read, type):
        with pytest.raises(read):
            releases.parse(tag)
    else:
        assert releases.parse(tag) == read


def test_releases_come_in_the_order_litellm_made_them():
    tags = [
        "v1.9.9",
        "v1.99.5.rc",
        "v1.99.5.rc.2",
        "v1.99.5.rc.10",
        "v1.99.5",
        "v1.99.5-stable.patch.1",
        "v1.99.5-stable.2",
        "v1.99.5-stable.patch.10",
        "v1.99.6",
        "v1.100.0",
    ]
    assert sorted(tags, key=releases.parse) == tags
    assert releases.parse("v1.99.5") == releases.parse("v1.99.5-stable"), "the -stable build is that release"


@pytest.mark.parametrize(
    "to, message",
    [
        ("v01.82.07", "LiteLLM 1.82.7 was a malicious release"),
        ("v1.99.05", "without leading zeros"),
        ("v1.99.5-nightly", "floats"),
        ("v99999999999999999999.0.0", "at most 4 digits"),
    ],
)
def test_upgrade_and_the_config_rules_refuse_the_same_tags(to, message):
    """Even with --allow-downgrade: v01.82.07 was taken for an older 1.82.7 and written to the config."""
    with pytest.raises(ConfigError, match=message):
        upgrade.check(DATA, to, allow_downgrade=True)
    found = rules.image_problems(f"ghcr.io/berriai/litellm:{to}", "/litellm/image", LITELLM_RULES)
    assert [message in problem.message for problem in found] == [True]


@pytest.mark.parametrize(
    "running, to",
    [
        ("v1.99.5", "v1.99.5-stable.patch.1"),
        ("v1.99.5-rc2", "v1.99.5-rc10"),
        ("v1.99.5.rc.9", "v1.99.5"),
        ("v1.99.5-stable.patch.1", "v1.99.6"),
        ("v1.99.5", "v1.99.6-stable.1"),
        ("v1.99.6-stable.1", "v1.99.6-stable.2"),
        ("litellm_stable_release_branch-v1.63.2-stable", "v1.99.5"),
    ],
)
def test_upgrade_accepts_what_comes_after_the_running_release(running, to):
    data = {"litellm": {"image": f"ghcr.io/berriai/litellm:{running}"}}
    assert upgrade.check(data, to, allow_downgrade=False)[1] == f"ghcr.io/berriai/litellm:{to}"


@pytest.mark.parametrize(
    "running, to",
    [
        ("v1.80.11-stable.1", "v1.60.0"),
        ("v1.80.11-stable.1", "v1.80.11"),
        ("litellm_stable_release_branch-v1.63.2-stable", "v1.60.0"),
    ],
)
def test_upgrade_refuses_to_go_back_from_every_release_litellm_tags(running, to):
    data = {"litellm": {"image": f"ghcr.io/berriai/litellm:{running}"}}
    with pytest.raises(ConfigError, match=f"older than the running {running}"):
        upgrade.check(data, to, allow_downgrade=False)


def test_upgrade_refuses_a_version_of_digits_from_another_script():
    with pytest.raises(ConfigError, match="not a release tag"):
        upgrade.check(DATA, "v1.99.\u0665", allow_downgrade=False)


def test_the_config_rules_read_litellm_tags_as_upgrade_does():
    def problems(tag, **litellm):
        found = rules.image_problems(f"ghcr.io/berriai/litellm:{tag}", "/litellm/image", {**LITELLM_RULES, **litellm})
        return [p.message for p in found]

    assert problems("v01.82.07") == ["LiteLLM 1.82.7 was a malicious release (MAL-2026-2144)"]
    assert problems("v1.99.5-nightly") and "floats" in problems("v1.99.5-nightly")[0]
    assert problems("v1.99.5-nightly", allow_floating_tag=True) == []
    assert problems("v1.99.4-mine") == [], "a build of one's own, tagged as one likes"


def test_upgrade_refuses_the_copy_of_the_config_last_applied(home, tmp_path):
    """Changed there, the image would go back at the next apply from the user's own file."""
    config = write_config(tmp_path, CONFIG)
    assert cli("render", "--config", str(config)).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    refused = cli("upgrade", "--to", "v1.99.5", cwd=elsewhere)
    assert refused.returncode == 2, refused.stderr
    assert "blueprint's copy of the config last rendered" in refused.stderr and "--config" in refused.stderr
    assert "v1.99.5" not in home.applied_config.read_text()


def set_image(path: Path, image: str = "ghcr.io/berriai/litellm:v1.99.5") -> None:
    """What upgrade writes: the config at `path` with only litellm.image changed."""
    configfile.write(path, configfile.with_value(path.read_bytes(), ("litellm", "image"), image))


@pytest.mark.parametrize(
    ("image", "tag", "upgraded"),
    [
        ("ghcr.io/berriai/litellm:v1.99.4", "v1.99.4", "ghcr.io/berriai/litellm:v1.99.5"),
        ("localhost:5000/litellm:v1.99.4", "v1.99.4", "localhost:5000/litellm:v1.99.5"),  # a port, not a tag
        ("localhost:5000/litellm", "", "localhost:5000/litellm:v1.99.5"),
        ("litellm", "", "litellm:v1.99.5"),
        ("ghcr.io/berriai/litellm:v1.99.4@sha256:" + "a" * 64, "v1.99.4", "ghcr.io/berriai/litellm:v1.99.5"),
        ("ghcr.io/berriai/litellm@sha256:" + "a" * 64, "", "ghcr.io/berriai/litellm:v1.99.5"),  # the digest goes
    ],
)
def test_an_images_tag_is_read_and_replaced_past_registry_ports_and_digests(image, tag, upgraded):
    assert releases.tag_of(image) == tag
    assert releases.with_tag(image, "v1.99.5") == upgraded


def test_upgrade_changes_the_image_and_not_one_other_byte(tmp_path):
    text = (ROOT / "blueprint-config.json").read_text()
    path = tmp_path / "c.json"
    path.write_text(text)
    set_image(path)
    assert path.read_text() == text.replace("litellm:v1.99.4", "litellm:v1.99.5")
    bare = tmp_path / "bare.json"
    bare.write_text('{\n  "llm_providers": {"ollama": {"models": ["m"]}}\n}\n')
    set_image(bare)
    assert bare.read_text() == (
        '{\n  "litellm": {"image": "ghcr.io/berriai/litellm:v1.99.5"},\n'
        '  "llm_providers": {"ollama": {"models": ["m"]}}\n}\n'
    )
    assert config_module.loads(bare.read_bytes()).data["litellm"]["image"].endswith(":v1.99.5")


def test_upgrade_writes_a_linked_config_through_the_link(tmp_path):
    """A config kept with the dotfiles: upgrade's write (and the rollback's) replaced the link
    with a file, and the dotfiles kept the old image."""
    (tmp_path / "dotfiles").mkdir()
    target = tmp_path / "dotfiles" / "blueprint-config.json"
    target.write_text(json.dumps(DATA))
    target.chmod(0o600)
    link = tmp_path / "blueprint-config.json"
    link.symlink_to("dotfiles/blueprint-config.json")
    original = target.read_bytes()
    set_image(link)
    assert link.is_symlink() and os.readlink(link) == "dotfiles/blueprint-config.json"
    assert json.loads(target.read_text())["litellm"]["image"].endswith(":v1.99.5")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    configfile.write(link, original)  # what a rolled-back upgrade puts back
    assert link.is_symlink() and target.read_bytes() == original


@pytest.fixture
def upgradable(world, tmp_path):
    """The world, with a pg_dump that the fake podman runs "in" litellm-postgres."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "pg_dump").write_text("#!/bin/sh\necho '-- a dump of litellm'\n")
    (tools / "pg_dump").chmod(0o755)
    world.env["PATH"] = f"{tools}:{world.env['PATH']}"
    world.unit = world.home.unit_dir / "litellm/litellm@.container"
    return world


def test_an_upgrade_a_render_would_refuse_is_refused_before_anything_is_backed_up_or_written(upgradable):
    """It backed up, wrote the new image into the config, and only then met the edited file (the
    config said v1.99.7 after such a refusal, and the next apply deployed it unwatched); a render
    of the new release is now tried in memory first."""
    upgradable.unit.write_text(upgradable.unit.read_text().replace("RestartSec=5s", "RestartSec=9s"))
    before = upgradable.config.read_bytes()
    result = upgradable.run("upgrade", "--to", "v1.99.7", "--config", str(upgradable.config))
    assert result.returncode == 1, result.stderr
    assert "edited since blueprint wrote it; nothing was written" in result.stderr
    assert "backed up" not in result.stderr and "put back" not in result.stderr
    assert upgradable.config.read_bytes() == before
    assert not upgradable.home.backup_dir.exists(), "not a backup taken"
    assert upgradable.calls() == [], "nothing restarted"


def test_an_upgrade_whose_backup_fails_is_a_failure_of_the_world_not_of_the_command(upgradable, tmp_path):
    """It exited 2, as a mistyped command does; the database not answering is exit 1."""
    (tmp_path / "tools" / "pg_dump").write_text("#!/bin/sh\necho 'connection refused' >&2\nexit 1\n")
    before = upgradable.config.read_bytes()
    result = upgradable.run("upgrade", "--to", "v1.99.5", "--config", str(upgradable.config))
    assert result.returncode == 1, result.stderr
    assert "upgrade stopped before changing anything: backup postgres failed" in result.stderr
    assert "connection refused" in result.stderr and "Traceback" not in result.stderr
    assert upgradable.config.read_bytes() == before
    assert upgradable.calls() == [], "nothing restarted"


def test_ctrl_c_while_an_upgrade_waits_puts_back_the_config_and_what_was_applied(upgradable, monkeypatch):
    for name in ("PATH", "FAKE_PODMAN", "FAKE_SYSTEMCTL"):
        monkeypatch.setenv(name, upgradable.env[name])
    assert upgradable.run("apply", "--config", str(upgradable.config)).returncode == 0
    Path(f"{upgradable.systemd}.log").unlink()
    before = upgradable.config.read_bytes()
    asked = []

    def interrupted(names, timeout, **_):
        asked.append(names)
        if len(asked) == 1:
            raise KeyboardInterrupt  # Ctrl-C while the new release gets healthy
        return True

    monkeypatch.setattr(podman, "wait_healthy", interrupted)
    said = []
    with pytest.raises(KeyboardInterrupt):
        upgrade.upgrade(pipeline.Options.from_env(upgradable.config), "v1.99.5", say=said.append)
    assert upgradable.config.read_bytes() == before
    assert "Image=ghcr.io/berriai/litellm:v1.99.4" in upgradable.unit.read_text(), "the previous release applied"
    assert f"{upgradable.config}: put back as it was (litellm.image ghcr.io/berriai/litellm:v1.99.4)" in said
    restarts = [call for call in upgradable.calls() if call.startswith("restart ")]
    assert restarts == ["restart litellm@1.service", "restart litellm@2.service"] * 2, "there and back"


def test_upgrade_refuses_a_gateway_never_installed_before_writing_anything(home, tmp_path):
    assert cli("init", cwd=tmp_path).returncode == 0
    before = (tmp_path / "blueprint-config.json").read_bytes()
    result = cli("upgrade", "--to", "v1.99.5", cwd=tmp_path, env={"PATH": f"{FAKES}:{os.environ['PATH']}"})
    assert result.returncode == 2, result.stderr
    assert "nothing is installed" in result.stderr and "hint: `blueprint apply`" in result.stderr
    assert (tmp_path / "blueprint-config.json").read_bytes() == before
    assert not home.unit_dir.exists() and not home.backup_dir.exists(), "not a unit, not a backup written"


def test_upgrade_without_a_user_bus_writes_nothing(upgradable, tmp_path):
    no_bus = tmp_path / "no-bus"
    no_bus.mkdir()
    (no_bus / "systemctl").write_text("#!/bin/sh\necho 'Failed to connect to bus: No medium found' >&2\nexit 1\n")
    (no_bus / "systemctl").chmod(0o755)
    before = upgradable.config.read_bytes()
    result = upgradable.run(
        "upgrade", "--to", "v1.99.5", "--config", str(upgradable.config), PATH=f"{no_bus}:{upgradable.env['PATH']}"
    )
    assert result.returncode == 1, result.stderr
    assert "cannot reach your user's systemd" in result.stderr and "not healthy" not in result.stderr
    assert upgradable.config.read_bytes() == before and not upgradable.home.backup_dir.exists()


def test_upgrade_backs_up_even_with_the_backup_timers_off(upgradable):
    data = json.loads(upgradable.config.read_text())
    upgradable.config.write_text(json.dumps({**data, "backup": {"enabled": False}}))
    assert upgradable.run("apply", "--config", str(upgradable.config)).returncode == 0
    result = upgradable.run("upgrade", "--to", "v1.99.5", "--config", str(upgradable.config))
    assert result.returncode == 0, result.stderr
    assert "backed up postgres: " in result.stderr and "backed up config: " in result.stderr
    assert "litellm runs ghcr.io/berriai/litellm:v1.99.5, healthy" in result.stderr
    assert sorted(p.parent.name for p in upgradable.home.backup_dir.rglob("*-*")) == ["config", "postgres"]


def test_upgrade_says_a_managed_database_is_not_backed_up_and_not_rolled_back(upgradable):
    data = json.loads(upgradable.config.read_text())
    managed = {"external": {"url": "${MANAGED_DATABASE_URL}"}}
    upgradable.config.write_text(json.dumps({**data, "litellm_postgres": managed}))
    url = {"MANAGED_DATABASE_URL": "postgresql://u:p@db.example.org:5432/litellm"}
    assert upgradable.run("apply", "--config", str(upgradable.config), **url).returncode == 0
    result = upgradable.run("upgrade", "--to", "v1.99.5", "--config", str(upgradable.config), **url)
    assert result.returncode == 0, result.stderr
    said = result.stderr
    note = said.index("note: PostgreSQL runs elsewhere (litellm_postgres.external): its provider backs it up")
    assert "only the image goes back" in said and note < said.index("backed up config: ")
    assert "backed up postgres" not in said


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
json_documents = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)


@given(
    document=st.dictionaries(st.text(max_size=6), json_documents, max_size=4),
    keys=st.lists(st.sampled_from(["litellm", "image", "a", ""]), min_size=1, max_size=3),
    indent=st.sampled_from([None, 2, 4]),
)
def test_setting_one_value_changes_that_value_only(document, keys, indent):
    """For any JSON object and key path: the result parses to the document with that one value set
    (members created where missing), whatever the formatting."""
    text = json.dumps(document, indent=indent)
    keys = tuple(keys)
    node = document
    for key in keys[:-1]:
        if key in node and not isinstance(node[key], dict):
            return  # the path crosses a value that is not an object: nothing to set
        node = node.get(key, {})
    expected = json.loads(text)
    target = expected
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = "new:v2"
    assert json.loads(configfile._with(text, keys, "new:v2")) == expected


# ---- ps, logs, down, up, uninstall -------------------------------------------------------------------


def test_ps_lists_each_service_and_exits_1_when_one_is_down(world):
    healthy = world.run("ps", "--config", str(world.config))
    assert healthy.returncode == 0, healthy.stderr
    lines = healthy.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "STATE", "HEALTH", "SINCE", "RESTARTS", "IMAGE", "ADDRESS"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == ["litellm-postgres", "litellm-redis", "litellm@1", "litellm@2", "litellm-front"]
    assert rows["litellm@1"][1:3] == ["active", "healthy"] and rows["litellm@1"][-2:] == ["(network", "only)"]
    assert rows["litellm-front"][1:3] == ["active", "running"] and rows["litellm-front"][-1].startswith("http://127.")
    world.set(
        world.systemd, lambda w: w.update(units={"litellm-redis.service": {"ActiveState": "failed", "NRestarts": "7"}})
    )
    world.set(world.podman, lambda w: w["containers"]["litellm-2"].update(health="unhealthy"))
    broken = world.run("ps", "--config", str(world.config))
    assert broken.returncode == 1
    assert "2 of 5 services are not running and healthy: litellm-redis, litellm@2" in broken.stderr
    redis = next(line.split() for line in broken.stdout.splitlines() if line.startswith("litellm-redis"))
    assert redis[1] == "failed" and "7" in redis


def _replicas(world, count: int) -> None:
    """Change the config's replica count without applying it."""
    data = json.loads(world.config.read_text())
    data["litellm"]["replicas"] = count
    world.config.write_text(json.dumps(data))


def test_up_ps_and_down_act_on_what_is_installed_not_on_the_config_here(world):
    _replicas(world, 3)  # not applied: the front door routes to two replicas
    up = world.run("up")
    assert up.returncode == 0, up.stderr
    assert "config: ~/.local/state/blueprint/blueprint-config.json (the copy of the config last rendered" in up.stderr
    assert "litellm@2.service" in world.calls()[-1] and "litellm@3" not in world.calls()[-1]
    ps = world.run("ps")
    assert ps.returncode == 0, ps.stderr
    rows = [line.split()[0] for line in ps.stdout.splitlines()[1:]]
    assert rows == ["litellm-postgres", "litellm-redis", "litellm@1", "litellm@2", "litellm-front"]
    assert world.run("render", "--config", str(world.config)).returncode == 0  # three installed
    _replicas(world, 2)
    assert world.run("down").returncode == 0
    assert "litellm@3.service" in world.calls()[-1], "the third replica is stopped too"
    # --config still chooses the config that tells containers and addresses; the units are those
    # installed, the third replica too, of which a config of two says nothing.
    given = world.run("ps", "--config", str(world.config))
    assert f"config: {world.config}" in given.stderr
    rows = {line.split()[0]: line.split() for line in given.stdout.splitlines()[1:]}
    assert rows["litellm@3"][1:3] == ["inactive", "?"] and rows["litellm@3"][-2:] == ["?", "?"]
    assert rows["litellm@2"][-2:] == ["(network", "only)"]


def test_the_gateway_is_stopped_and_looked_at_when_its_config_no_longer_loads(world, tmp_path, monkeypatch):
    """With Podman secrets, a Podman gone back to 4.4 made down, ps, up and logs all exit 2
    ("Podman secrets need Podman 4.5"), as would a newer blueprint's new rule: what is installed
    could no longer be stopped. The units are the manifest's; what needs the config is unknown."""
    data = {**json.loads(world.config.read_text()), "podman_version": "auto", "secrets": {"backend": "podman"}}
    world.config.write_text(json.dumps(data))
    assert world.run("render", "--config", str(world.config)).returncode == 0
    world.set(world.podman, lambda w: w.update(version="4.4.1"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the copy of the config last rendered is the config
    services = " ".join(
        f"{name}.service" for name in ("litellm-front", "litellm-postgres", "litellm-redis", "litellm@1", "litellm@2")
    )
    timers = "blueprint-backup-config.timer blueprint-backup-postgres.timer blueprint-backup-redis.timer"

    down = world.run("down")
    assert down.returncode == 0, down.stderr
    assert "note: " in down.stderr and "Podman secrets need Podman 4.5" in down.stderr
    assert "the units are those installed (~/.local/state/blueprint/manifest.json)" in down.stderr
    assert world.calls()[-1] == f"stop {' '.join(reversed(services.split()))} {timers}"
    up = world.run("up")
    assert up.returncode == 0, up.stderr
    assert world.calls()[-1] == f"start {services} {timers}"

    ps = world.run("ps")
    rows = {line.split()[0]: line.split() for line in ps.stdout.splitlines()[1:]}
    assert sorted(rows) == sorted(unit.removesuffix(".service") for unit in services.split())
    assert rows["litellm@1"][1:3] == ["active", "?"] and rows["litellm@1"][-2:] == ["?", "?"]
    assert "their containers' health, images and addresses cannot be known until it does" in ps.stderr
    assert ps.returncode == 1, "healthy cannot be claimed"
    assert "5 of 5 services run, but whether they are healthy cannot be known" in ps.stderr
    world.set(world.systemd, lambda w: w.update(units={"litellm-redis.service": {"ActiveState": "failed"}}))
    assert "1 of 5 services are not running and healthy: litellm-redis" in world.run("ps").stderr

    journal = tmp_path / "journal"
    journal.mkdir()
    said = "#!/bin/sh\necho \"$*\" | grep -q 'unit=litellm-redis.service ' && echo 'Ready'\n"
    (journal / "journalctl").write_text(said)
    (journal / "journalctl").chmod(0o755)
    logs = world.run("logs", "redis", PATH=f"{journal}:{world.env['PATH']}")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.strip() == "Ready"
    none = world.run("logs", "postgres", PATH=f"{journal}:{world.env['PATH']}")
    assert none.returncode == 1 and "the container of litellm-postgres.service is not known" in none.stderr
    assert world.run("logs", "nope").returncode == 2


@pytest.mark.parametrize("command", ["ps", "up", "down", "logs"])
def test_day_2_commands_say_when_nothing_is_installed(command, home, tmp_path):
    write_config(tmp_path, CONFIG)
    result = cli(command, env=fake_systemctl(tmp_path / "s.json"))
    assert result.returncode == 2, result.stderr
    assert "nothing is installed" in result.stderr and "hint: `blueprint apply`" in result.stderr
    assert "unknown" not in result.stdout and not (tmp_path / "s.json.log").exists(), "no unit started or stopped"


def test_ps_says_when_systemd_or_podman_cannot_be_asked(world, tmp_path):
    no_bus = tmp_path / "no-bus"
    no_bus.mkdir()
    (no_bus / "systemctl").write_text("#!/bin/sh\necho 'Failed to connect to bus: No medium found' >&2\nexit 1\n")
    (no_bus / "systemctl").chmod(0o755)
    result = world.run("ps", PATH=f"{no_bus}:{world.env['PATH']}")
    assert result.returncode == 1
    assert "cannot reach your user's systemd" in result.stderr
    assert "hint: run blueprint in a login session" in result.stderr
    assert "unknown" not in result.stdout and "blueprint up" not in result.stderr
    no_podman = tmp_path / "no-podman"
    no_podman.mkdir()
    (no_podman / "systemctl").symlink_to(FAKES / "systemctl")
    result = world.run("ps", PATH=f"{no_podman}:/usr/bin:/bin")
    assert result.returncode == 1 and "podman: not found" in result.stderr, result.stderr
    assert "blueprint up" not in result.stderr


def test_one_wait_for_healthy_containers_serves_restarts_and_upgrade(world, monkeypatch):
    """The rolling restart (where Podman has no Notify=healthy) and upgrade wait the same way."""
    monkeypatch.setenv("PATH", world.env["PATH"])
    monkeypatch.setenv("FAKE_PODMAN", str(world.podman))
    replicas = ["litellm-1", "litellm-2"]
    assert podman.wait_healthy(replicas, timeout=0)
    assert podman.wait_healthy(["litellm-front"], timeout=0), "no health check: running is enough"
    world.set(world.podman, lambda w: w["containers"]["litellm-2"].update(health="starting"))
    assert not podman.wait_healthy(replicas, timeout=0)
    assert not podman.wait_healthy(["litellm-9"], timeout=0), "no such container"
    stack = pipeline.build_stack(options(world.config)).stack
    ready = pipeline._healthy_container(stack)
    assert ready("litellm@1.service")


def test_logs_come_from_the_journal_else_from_podman(world, tmp_path):
    bin_dir = tmp_path / "journal"
    bin_dir.mkdir()
    (bin_dir / "journalctl").write_text("#!/bin/sh\necho '-- No entries --'\n")
    (bin_dir / "journalctl").chmod(0o755)
    world.set(world.podman, lambda w: w["containers"]["litellm-redis"].update(log=["Ready to accept connections"]))
    path = f"{bin_dir}:{FAKES}:{os.environ['PATH']}"
    from_podman = world.run("logs", "redis", "-n", "5", "--config", str(world.config), PATH=path)
    assert from_podman.returncode == 0, from_podman.stderr
    assert from_podman.stdout.strip() == "Ready to accept connections"
    for replica in ("litellm-1", "litellm-2"):
        world.set(world.podman, lambda w, r=replica: w["containers"][r].update(log=[f"served by {r}"]))
    replicas = world.run("logs", "--config", str(world.config), PATH=path)
    assert replicas.stdout.splitlines() == ["litellm-1 served by litellm-1", "litellm-2 served by litellm-2"]
    one = world.run("logs", "litellm@2", "--config", str(world.config), PATH=path)
    assert one.stdout.strip() == "served by litellm-2", one.stderr
    (bin_dir / "journalctl").write_text(
        "#!/bin/sh\necho \"$*\" | grep -q 'unit=litellm@1.service --unit=litellm@2' "
        "&& echo 'Nov 25 litellm[1]: the journal speaks'\n"
    )
    from_journal = world.run("logs", "--config", str(world.config), PATH=path)
    assert from_journal.stdout.strip() == "Nov 25 litellm[1]: the journal speaks"
    (bin_dir / "journalctl").write_text("#!/bin/sh\necho '-- No entries --'\n")
    world.set(world.podman, lambda w: w["containers"].pop("litellm-postgres"))
    neither = world.run("logs", "postgres", "--config", str(world.config), PATH=path)
    assert neither.returncode == 1 and "no log for litellm-postgres.service" in neither.stderr
    unknown = world.run("logs", "nope", "--config", str(world.config), PATH=path)
    assert unknown.returncode == 2 and "no service 'nope'" in unknown.stderr


def test_down_and_up_stop_and_start_services_and_timers(world):
    assert world.run("down", "--config", str(world.config)).returncode == 0
    assert world.calls()[-1] == (
        "stop litellm-front.service litellm@2.service litellm@1.service litellm-redis.service "
        "litellm-postgres.service blueprint-backup-config.timer blueprint-backup-postgres.timer "
        "blueprint-backup-redis.timer"
    )
    assert world.run("up", "--config", str(world.config)).returncode == 0
    assert world.calls()[-1].startswith(
        "start litellm-postgres.service litellm-redis.service litellm@1.service litellm@2.service litellm-front.service"
    )


def test_uninstall_removes_what_render_wrote_and_keeps_data_secrets_and_edits(world, home):
    edited = home.unit_dir / "litellm/litellm.caddy"
    edited.write_text(edited.read_text() + "# mine\n")
    dropin = home.unit_dir / "litellm.container.d/50-mine.conf"
    dropin.parent.mkdir()
    dropin.write_text("[Container]\nEnvironment=MINE=1\n")
    store = home.secret_store.read_bytes()
    declined = cli("uninstall", input="n\n", env=world.env)
    assert declined.returncode == 1 and "nothing was removed" in declined.stderr
    assert world.calls() == [] and home.manifest.exists(), "not a unit stopped, not a file removed"
    result = world.run("uninstall", "--yes")
    assert result.returncode == 0, result.stderr
    assert world.calls()[:2] == [
        "disable --now blueprint-backup-config.timer blueprint-backup-postgres.timer blueprint-backup-redis.timer",
        "stop litellm-front.service litellm-postgres.service litellm-redis.service litellm@1.service litellm@2.service "
        "litellm-postgres-volume.service litellm-redis-volume.service llm-network.service",
    ]
    assert world.calls()[-1] == "daemon-reload"
    left = sorted(str(p.relative_to(home.home)) for p in home.home.rglob("*") if p.is_file())
    assert left == [
        ".config/blueprint/secrets.env",
        ".config/containers/systemd/litellm.container.d/50-mine.conf",
        ".config/containers/systemd/litellm/litellm.caddy",
    ]
    assert home.secret_store.read_bytes() == store
    assert "podman volume rm systemd-litellm-postgres systemd-litellm-redis" in result.stderr
    assert "kept " in result.stderr and "edited since blueprint wrote it" in result.stderr
    again = world.run("render", "--config", str(world.config), "--force")
    assert again.returncode == 0 and "generated" not in again.stderr, "the same secrets come back"
    purge = world.run("uninstall", "--purge-secrets", "--yes", "--force")
    assert purge.returncode == 0 and not home.secret_store.exists()


def test_uninstall_skips_a_timer_whose_unit_the_manifest_lost(world, home):
    """The manifest is a file a person can edit: a timer entry without its unit is not a unit to
    disable (it was handed to systemctl as None; with two, sorting them raised)."""
    manifest = json.loads(home.manifest.read_text())
    timers = [name for name, entry in manifest["files"].items() if entry["kind"] == "timer"]
    for name in timers[:2]:
        del manifest["files"][name]["unit"]
    home.manifest.write_text(json.dumps(manifest))
    result = world.run("uninstall", "--yes")
    assert result.returncode == 0, result.stderr
    assert world.calls()[0] == "disable --now blueprint-backup-redis.timer"


def test_uninstall_with_nothing_installed_says_so(home, tmp_path):
    for _ in range(2):
        result = cli("uninstall", "--yes", env={"PATH": f"{FAKES}:{os.environ['PATH']}"})
        assert result.returncode == 0, result.stderr
        assert "nothing to uninstall" in result.stderr
        assert "kept the secrets" not in result.stderr, "there are none"


def test_uninstall_of_a_render_systemd_never_loaded_stops_nothing(home, tmp_path):
    """systemd refuses to stop a unit it has not loaded: a render without daemon-reload made
    uninstall fail before it removed anything."""
    config = write_config(tmp_path, CONFIG)
    env = fake_systemctl(tmp_path / "systemd.json")
    assert cli("render", "--config", str(config), env=env).returncode == 0
    result = cli("uninstall", "--yes", env=env)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "systemd.json.log").read_text().splitlines()
    assert not [call for call in calls if call.startswith("stop")], calls
    assert not home.manifest.exists() and not (home.unit_dir / "litellm").exists()


def test_uninstall_removes_only_what_a_render_here_would(world, home, tmp_path):
    """Files are removed one way, the engine's: never a file outside the folders blueprint writes
    into, whatever the manifest lists."""
    elsewhere = tmp_path / "elsewhere.conf"
    elsewhere.write_text("not blueprint's\n")
    manifest = json.loads(home.manifest.read_text())
    listed = manifest["files"][str(home.unit_dir / "litellm/litellm@.container")]
    manifest["files"][str(elsewhere)] = {**listed, "hashes": [digest(elsewhere.read_bytes())]}
    home.manifest.write_text(json.dumps(manifest))
    result = world.run("uninstall", "--yes")
    assert result.returncode == 0, result.stderr
    assert elsewhere.read_text() == "not blueprint's\n"
    assert not (home.unit_dir / "litellm").exists() and home.unit_dir.is_dir(), "empty folders go, the roots stay"


# ---- a stack that heals itself ------------------------------------------------------------------------


def test_unhealthy_containers_are_killed_and_workers_recycled(home, tmp_path, caddy):
    config = write_config(tmp_path, {**CONFIG, "litellm": {"max_requests_before_restart": 2000}})
    assert cli("render", "--config", str(config)).returncode == 0
    services = injection.quadlet_services(home.unit_dir)
    for service in (injection.LITELLM, "litellm-postgres.service", "litellm-redis.service"):
        words = injection.exec_words(dict(services[service])["Service.ExecStart"])
        assert words[words.index("--health-on-failure") + 1] == "kill", service
        assert dict(services[service])["Service.Restart"] == "always"
    words = injection.exec_words(dict(services[injection.LITELLM])["Service.ExecStart"])
    # A day of health probes on top (the front door's and Podman's), so that they alone replace a
    # worker at most once a day; each interval as its reader takes it: the generated `podman run`,
    # and `caddy adapt` of the front door.
    podman_s = seconds(injection.run_options(services, injection.LITELLM, "--health-interval")[0])
    adapted = subprocess.run(
        [caddy, "adapt", "--config", str(home.unit_dir / "litellm/litellm-front.caddy"), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    (server,) = json.loads(adapted.stdout)["apps"]["http"]["servers"].values()
    front_door_ns = server["routes"][0]["handle"][0]["health_checks"]["active"]["interval"]
    limit = 2000 + 86400 * 10**9 // front_door_ns + int(86400 // podman_s)
    assert words[words.index("--max_requests_before_restart") + 1] == str(limit)
    assert words[words.index("--max_requests_before_restart_jitter") + 1] == str(limit // 10)
    general = yaml.safe_load((home.unit_dir / "litellm/litellm.yaml").read_text())["general_settings"]
    assert general["maximum_spend_logs_retention_period"] == "30d", "the backups' retention"
    write_config(tmp_path, {**CONFIG, "litellm": {"spend_logs_retention": "2w", "max_requests_before_restart": 0}})
    assert cli("render", "--config", str(config)).returncode == 0
    general = yaml.safe_load((home.unit_dir / "litellm/litellm.yaml").read_text())["general_settings"]
    assert general["maximum_spend_logs_retention_period"] == "2w"
    words = injection.exec_words(
        dict(injection.quadlet_services(home.unit_dir)[injection.LITELLM])["Service.ExecStart"]
    )
    assert "--max_requests_before_restart" not in words


@pytest.mark.parametrize("litellm", [{"replicas": 4}, {"replicas": 1, "num_workers": 1}])
def test_a_single_worker_is_not_recycled(litellm, home, tmp_path):
    """With one worker uvicorn runs no supervisor: the request limit ends the server, and with it
    the container (within hours, from the front door's health checks alone)."""
    config = write_config(tmp_path, {**CONFIG, "litellm": litellm})
    assert cli("render", "--config", str(config)).returncode == 0
    unit = "litellm.service" if litellm["replicas"] == 1 else injection.LITELLM
    words = injection.exec_words(dict(injection.quadlet_services(home.unit_dir)[unit])["Service.ExecStart"])
    assert words[words.index("--num_workers") + 1] == "1"
    assert "--max_requests_before_restart" not in words


def test_podman_4_4_gets_health_on_failure_as_an_option(home, tmp_path):
    config = write_config(tmp_path, {**CONFIG, "podman_version": "4.4"})
    assert cli("render", "--config", str(config)).returncode == 0
    # Quadlet 4.4 has no HealthOnFailure=: the option reaches `podman run` through PodmanArgs=.
    services = injection.quadlet_services(home.unit_dir)
    words = injection.exec_words(dict(services["litellm-1.service"])["Service.ExecStart"])
    assert "--health-on-failure=kill" in words


def test_drop_ins_are_listed_never_touched_and_named_in_a_conflict(home, tmp_path):
    config = write_config(tmp_path, CONFIG)
    assert cli("render", "--config", str(config)).returncode == 0
    dropin = home.unit_dir / "container.d/50-mine.conf"
    dropin.parent.mkdir()
    dropin.write_text("[Container]\nPodmanArgs=--log-opt=max-size=10m\n")
    status = cli("status", "--config", str(config))
    assert "drop-in    ~/.config/containers/systemd/container.d/50-mine.conf  (yours" in status.stdout
    unit = home.unit_dir / "litellm/litellm@.container"
    unit.write_text(unit.read_text().replace("RestartSec=5s", "RestartSec=9s"))
    refused = cli("render", "--config", str(config))
    assert refused.returncode == 1
    assert f"a drop-in, which blueprint never touches: {unit}.d/50-mine.conf" in refused.stderr
    assert cli("render", "--config", str(config), "--force").returncode == 0
    assert dropin.read_text().startswith("[Container]"), "never touched"
    # The folder the conflict named: Quadlet reads it too (another name than container.d's file,
    # which a drop-in of the same name would hide).
    hinted = Path(f"{unit}.d/60-mine.conf")
    hinted.parent.mkdir()
    hinted.write_text("[Container]\nEnvironment=MINE=1\n")
    services = injection.quadlet_services(home.unit_dir)
    words = injection.exec_words(dict(services[injection.LITELLM])["Service.ExecStart"])
    assert "--log-opt=max-size=10m" in words, "Quadlet applies it"
    assert injection.container_environment(services, injection.LITELLM)["MINE"] == "1", (
        "Quadlet applies the drop-in where the conflict said"
    )
