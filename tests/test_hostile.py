"""Hostile values, odd files and races: no secret can be injected or split, no run can lose an edit,
no input ends in a traceback. Each test here failed on the blueprint that came before these fixes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from blueprint import cli as cli_module
from blueprint import engine, pipeline, secrets, systemd
from blueprint.errors import ConflictError
from tests.conftest import ROOT, cli, options, write_config

CONFIG = {
    "podman_version": "5.4",
    "llm_providers": {"openai": {"api_key": "${OPENAI_API_KEY}", "models": ["gpt-4o"]}},
}
KEY = {"OPENAI_API_KEY": "sk-provider-key"}
BLUEPRINT = str(Path(sys.executable).parent / "blueprint")


@pytest.fixture
def config(home, tmp_path):
    return write_config(tmp_path, CONFIG)


def rendered(config, **env):
    result = cli("render", "--config", str(config), env={**KEY, **env})
    assert result.returncode == 0, result.stderr
    return secrets.Store.load(pipeline.Paths.from_env({**os.environ, **env})).values


def env_file(home, service="litellm"):
    return secrets.read_env_file(home.env_dir / f"{service}.env")


def one_error_line(result) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("blueprint: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# ---- secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\r", "\x0b", "\x1c"])
def test_a_line_separator_in_a_key_cannot_replace_the_salt_key(config, home, separator):
    store = rendered(config)
    injected = f"sk-x{separator}LITELLM_SALT_KEY=sk-evil"
    result = cli("secrets", "set", "OPENAI_API_KEY", input=injected)
    assert result.returncode == 2 and "line break or a control character" in one_error_line(result)
    # Nor through the environment, on the first render that takes the key from there.
    home.secret_store.unlink()
    for file in home.env_dir.iterdir():
        file.unlink()
    from_env = cli("render", "--config", str(config), env={"OPENAI_API_KEY": injected})
    assert from_env.returncode == 2 and "OPENAI_API_KEY" in one_error_line(from_env)
    assert store["LITELLM_SALT_KEY"] != "sk-evil"


def test_a_store_is_read_with_the_same_lines_it_is_written_with(home):
    """A value written by an older blueprint with U+2028 in it is refused on reading, never split."""
    home.secrets_dir.mkdir(parents=True)
    home.secret_store.write_text("OPENAI_API_KEY=sk-x\u2028LITELLM_MASTER_KEY=sk-evil\n")
    home.secret_store.chmod(0o600)
    result = cli("secrets", "list")
    assert result.returncode == 2
    assert f"{home.secret_store}:1: not a NAME=value line" in one_error_line(result)


def test_concurrent_secrets_set_loses_no_key(home):
    """40 keys set at once by 40 processes: every one is in the store afterwards."""
    children = [
        subprocess.Popen(
            [BLUEPRINT, "secrets", "set", f"KEY_{i}"], stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(40)
    ]
    for i, child in enumerate(children):
        child.communicate(f"value-{i}\n", timeout=120)
        assert child.returncode == 0, child.stderr
    values = secrets.Store.load(home).values
    assert {f"KEY_{i}": f"value-{i}" for i in range(40)}.items() <= values.items()


@pytest.mark.parametrize("count", [2, 6])
def test_concurrent_renders_agree_on_every_secret(home, tmp_path, count):
    """20 trials of `count` renders started together on a fresh home: the store and the environment
    files hold the same secrets, and `check` finds nothing to do."""
    config = write_config(tmp_path, CONFIG)
    for trial in range(20):
        for folder in (home.config_home, home.state_home):
            subprocess.run(["rm", "-rf", str(folder)], check=True)
        env = {**os.environ, **KEY}
        children = [
            subprocess.Popen([BLUEPRINT, "render", "--config", str(config)], env=env, stderr=subprocess.PIPE)
            for _ in range(count)
        ]
        for child in children:
            _, err = child.communicate(timeout=300)
            assert child.returncode == 0, err.decode()
        store = secrets.Store.load(home).values
        litellm, postgres = env_file(home), env_file(home, "litellm-postgres")
        for name in ("LITELLM_MASTER_KEY", "LITELLM_SALT_KEY", "UI_PASSWORD"):
            assert litellm[name] == store[name], (trial, name)
        assert postgres["POSTGRES_PASSWORD"] == store["POSTGRES_PASSWORD"], trial
        assert unquote(urlsplit(litellm["DATABASE_URL"]).password) == store["POSTGRES_PASSWORD"], trial
        assert env_file(home, "litellm-redis")["REDISCLI_AUTH"] == store["REDIS_PASSWORD"], trial
        check = cli("check", "--config", str(config), env=KEY)
        assert check.returncode == 0, (trial, check.stderr)


def test_an_edit_made_while_a_render_writes_is_not_overwritten(config, home, monkeypatch):
    rendered(config)
    write_config(config.parent, {**CONFIG, "litellm": {"num_workers": 2}, "network": {"subnet": "10.77.0.0/24"}})
    network = home.unit_dir / "llm.network"
    write = engine.write_atomic

    def edit_meanwhile(path, data, mode=0o644):
        # A person edits llm.network while blueprint is writing another file.
        if path.name != "llm.network" and not network.read_text().endswith("# mine\n"):
            network.write_text(network.read_text() + "# mine\n")
        write(path, data, mode)

    monkeypatch.setattr(engine, "write_atomic", edit_meanwhile)
    with pytest.raises(ConflictError, match="changed while blueprint was writing"):
        pipeline.render(options(config, HOME=str(home.home), **KEY))
    assert network.read_text().endswith("# mine\n"), "the edit is kept"


def test_a_database_password_is_percent_encoded_in_the_url(config, home):
    password = "x@evil.example:5432/db?"
    assert cli("secrets", "set", "POSTGRES_PASSWORD", input=password).returncode == 0
    rendered(config)
    url = urlsplit(env_file(home)["DATABASE_URL"])
    assert url.hostname == "litellm-postgres" and url.port == 5432 and url.path == "/litellm"
    assert unquote(url.password) == password


@pytest.mark.parametrize("password", ["two words", 'a"quote', "back\\slash", "it's"])
def test_a_redis_password_that_would_split_its_config_line_is_refused(home, password):
    result = cli("secrets", "set", "REDIS_PASSWORD", input=password)
    assert result.returncode == 2
    assert "Redis reads it as one word" in one_error_line(result)
    assert not home.secret_store.exists()


def test_podman_secret_names_never_merge_two_variables(home):
    from blueprint import config as config_module
    from blueprint import model
    from blueprint.quadlet import Podman, PodmanVersion

    data = {
        "secrets": {"backend": "podman"},
        "llm_providers": {
            "openai": {"api_key": "${OPENAI_API_KEY}", "models": ["gpt-4o"]},
            "second": {"provider": "openai", "api_key": "${openai_api_key}", "models": ["gpt-4o-mini"]},
        },
    }
    loaded = config_module.loads(json.dumps(data))
    stack = model.build(loaded.data, source="c.json", paths=home, podman=Podman(PodmanVersion(5, 4)))
    mapping = secrets.podman_secrets(stack, {n: f"value of {n}" for n in stack.secret_names})
    assert mapping["blueprint-OPENAI_API_KEY"] != mapping["blueprint-openai_api_key"]
    litellm = stack.service("litellm")
    assert "blueprint-openai_api_key,type=env,target=openai_api_key" in [e.podman_option for e in litellm.secret_env]


def test_moving_xdg_config_home_keeps_every_secret_and_removes_nothing(config, home, tmp_path):
    before = rendered(config)
    moved = tmp_path / "moved-config"
    after = rendered(config, XDG_CONFIG_HOME=str(moved))
    for name in ("LITELLM_SALT_KEY", "POSTGRES_PASSWORD", "LITELLM_MASTER_KEY", "REDIS_PASSWORD"):
        assert after[name] == before[name], name
    assert (home.unit_dir / "litellm/litellm@.container").exists(), "the other folder's files are left alone"
    assert (moved / "containers/systemd/litellm/litellm@.container").exists()


def test_a_password_lost_with_the_store_comes_back_from_the_database_url(config, home):
    before = rendered(config)
    home.secret_store.unlink()
    (home.env_dir / "litellm-postgres.env").unlink()
    result = cli("render", "--config", str(config), env=KEY)
    assert result.returncode == 0, result.stderr
    assert "POSTGRES_PASSWORD is missing from" in result.stderr
    assert "and was recovered from" in result.stderr and "litellm.env" in result.stderr
    assert secrets.Store.load(home).values["POSTGRES_PASSWORD"] == before["POSTGRES_PASSWORD"]
    assert env_file(home, "litellm-postgres")["POSTGRES_PASSWORD"] == before["POSTGRES_PASSWORD"]


def test_a_database_password_is_never_replaced_while_its_volume_exists(config, home, tmp_path):
    rendered(config)
    home.secret_store.unlink()
    for file in home.env_dir.iterdir():
        file.unlink()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "podman").write_text('#!/bin/sh\n[ "$1 $2 $3" = "volume exists systemd-litellm-postgres" ]\n')
    (bin_dir / "podman").chmod(0o755)
    result = cli("render", "--config", str(config), env={**KEY, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert result.returncode == 2
    assert "the volume systemd-litellm-postgres holds a database made with it" in one_error_line(result)
    assert "blueprint restore config" in result.stderr
    assert not home.secret_store.exists(), "nothing was generated"


def test_a_store_that_is_a_symlink_is_refused_and_its_target_untouched(home, tmp_path):
    target = tmp_path / "elsewhere.env"
    target.write_text("OPENAI_API_KEY=sk-x\n")
    target.chmod(0o644)
    home.secrets_dir.mkdir(parents=True)
    home.secret_store.symlink_to(target)
    result = cli("secrets", "list")
    assert result.returncode == 2 and "is a symbolic link" in one_error_line(result)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_restore_config_keeps_every_replaced_store_private_and_never_overwrites_one(config, home, tmp_path):
    """Two restores in a row: both earlier stores are kept, each private from its first byte (even
    under umask 000), and the shipped default config is never written."""
    original = rendered(config)
    backup = cli("backup", "run", "config", "--config", str(config))
    assert backup.returncode == 0, backup.stderr
    (archive,) = (home.backup_dir / "config").iterdir()
    for value in ("sk-second", "sk-third"):
        assert cli("secrets", "set", "OPENAI_API_KEY", input=value).returncode == 0
        restored = subprocess.run(
            [BLUEPRINT, "restore", "config", str(archive), "--yes", "--config", str(config)],
            capture_output=True,
            text=True,
            preexec_fn=lambda: os.umask(0),
        )
        assert restored.returncode == 0, restored.stderr
        time.sleep(1.1)  # a new second, a new name; the same second gets a counter
    kept = sorted(home.secrets_dir.glob("secrets.env.before-restore-*"))
    assert len(kept) == 2
    assert [secrets.Store.read(k).values["OPENAI_API_KEY"] for k in kept] == ["sk-second", "sk-third"]
    assert all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in kept)
    assert secrets.Store.load(home).values["LITELLM_SALT_KEY"] == original["LITELLM_SALT_KEY"]
    # Without --config, from another folder: the config in use is the copy of the one last applied.
    shipped = (ROOT / "blueprint-config.json").read_bytes()
    elsewhere = cli("restore", "config", str(archive), "--yes", cwd=home.home)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert f"restored {home.applied_config}" in elsewhere.stderr
    home.applied_config.unlink()  # nothing applied yet: only the shipped example is in use
    refused = cli("restore", "config", str(archive), "--yes", cwd=home.home)
    assert refused.returncode == 2 and "shipped with blueprint" in one_error_line(refused)
    assert (ROOT / "blueprint-config.json").read_bytes() == shipped


def config_backup(folder: Path, members: dict[str, bytes]) -> Path:
    """A config backup holding these files, as `backup run config` lays them out."""
    import io
    import tarfile

    archive = folder / "config-20260101T000000Z.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    return archive


GOOD = json.dumps(CONFIG).encode()


@pytest.mark.parametrize(
    "members, message",
    [
        (
            {"config/blueprint-config.json": b'{"litellm": ', "secrets/secrets.env": b"not a line\n"},
            "config/blueprint-config.json:1:13: invalid JSON",
        ),
        (
            {"config/blueprint-config.json": b'{"litellm": {"port": "x"}}'},
            "config/blueprint-config.json: /litellm/port",
        ),
        (
            {"config/blueprint-config.json": json.dumps({**CONFIG, "network": {"subnet": "10.89.0.1/24"}}).encode()},
            "config/blueprint-config.json: /network/subnet",
        ),
        (
            {"config/blueprint-config.json": GOOD, "secrets/secrets.env": b"OPENAI_API_KEY=sk-x\nnot a line\n"},
            "secrets/secrets.env:2: not a NAME=value line",
        ),
        (
            {"config/blueprint-config.json": GOOD, "secrets/secrets.env": b"REDIS_PASSWORD=two words\n"},
            "secrets/secrets.env: REDIS_PASSWORD: this value cannot be used",
        ),
    ],
)
def test_restore_config_refuses_a_damaged_backup_before_writing_anything(config, home, tmp_path, members, message):
    """Restored, such a backup made every later command fail."""
    rendered(config)
    before = (config.read_bytes(), home.secret_store.read_bytes())
    archive = config_backup(tmp_path, members)
    result = cli("restore", "config", str(archive), "--yes", "--config", str(config))
    assert result.returncode == 4, result.stderr
    error = one_error_line(result)
    assert f"{archive}: {message}" in error and "nothing was restored" in error
    assert (config.read_bytes(), home.secret_store.read_bytes()) == before
    assert not list(tmp_path.glob("*.before-restore-*")) and not list(home.secrets_dir.glob("*.before-restore-*"))
    assert cli("check", "--config", str(config), env=KEY).returncode == 0, "the gateway's files are as they were"


def test_restore_config_never_replaces_the_salt_key_unless_told(config, home, tmp_path):
    """The salt key encrypts the credentials LiteLLM keeps in PostgreSQL: a store with another one
    is put back only with --replace-salt-key (and the current store is kept)."""
    salt = rendered(config)["LITELLM_SALT_KEY"]
    before = (config.read_bytes(), home.secret_store.read_bytes())
    archive = config_backup(
        tmp_path, {"config/blueprint-config.json": GOOD, "secrets/secrets.env": b"LITELLM_SALT_KEY=sk-other-salt\n"}
    )
    refused = cli("restore", "config", str(archive), "--yes", "--config", str(config))
    assert refused.returncode == 2, refused.stderr
    error = one_error_line(refused)
    assert f"{archive}: secrets/secrets.env: LITELLM_SALT_KEY differs from the one in use" in error
    assert "nothing was restored" in error and "--replace-salt-key" in refused.stderr
    assert "sk-other-salt" not in refused.stderr and salt not in refused.stderr
    assert (config.read_bytes(), home.secret_store.read_bytes()) == before
    replaced = cli("restore", "config", str(archive), "--yes", "--replace-salt-key", "--config", str(config))
    assert replaced.returncode == 0, replaced.stderr
    assert secrets.Store.load(home).values["LITELLM_SALT_KEY"] == "sk-other-salt"
    (kept,) = home.secrets_dir.glob("secrets.env.before-restore-*")
    assert secrets.Store.read(kept).values["LITELLM_SALT_KEY"] == salt


def test_restore_config_mends_a_config_that_no_longer_loads(config, home):
    """Putting a good config back is what a broken one needs: the broken one is not read first."""
    rendered(config)
    assert cli("backup", "run", "config", "--config", str(config)).returncode == 0
    (archive,) = (home.backup_dir / "config").iterdir()
    good = config.read_bytes()
    config.write_text('{"litellm": ')
    result = cli("restore", "config", str(archive), "--yes", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert config.read_bytes() == good


def test_a_linked_config_is_backed_up_by_its_content_and_restored_through_the_link(home, tmp_path):
    """A config kept with the dotfiles: the backup held the link (which restore refused, with the
    secrets beside it), and a restore replaced the link with a file."""
    import tarfile

    (tmp_path / "dotfiles").mkdir()
    target = write_config(tmp_path / "dotfiles", CONFIG)
    link = tmp_path / "blueprint-config.json"
    link.symlink_to("dotfiles/blueprint-config.json")
    rendered(link)
    assert cli("backup", "run", "config", "--config", str(link)).returncode == 0
    (archive,) = (home.backup_dir / "config").iterdir()
    with tarfile.open(archive) as tar:
        member = tar.getmember("config/blueprint-config.json")
        assert member.isfile() and tar.extractfile(member).read() == target.read_bytes()
    original = target.read_bytes()
    target.write_text(json.dumps({**CONFIG, "litellm": {"port": 4001}}))
    target.chmod(0o600)
    restored = cli("restore", "config", str(archive), "--yes", "--config", str(link))
    assert restored.returncode == 0, restored.stderr
    assert link.is_symlink() and os.readlink(link) == "dotfiles/blueprint-config.json", "the link is kept"
    assert target.read_bytes() == original
    assert stat.S_IMODE(target.stat().st_mode) == 0o600, "the file keeps its mode"


# ---- the fast path stamps what the full path read --------------------------------------------------


def test_with_podman_secrets_a_removed_secret_is_recreated(home, tmp_path):
    from tests.test_secrets import fake_podman_with_secrets

    bin_dir, store_dir = fake_podman_with_secrets(tmp_path)
    config = write_config(tmp_path, {**CONFIG, "secrets": {"backend": "podman"}})
    env = {**KEY, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    assert cli("render", "--config", str(config), env=env).returncode == 0
    (store_dir / "blueprint-OPENAI_API_KEY").unlink()
    again = cli("render", "--config", str(config), env=env)
    assert "up to date" not in again.stderr
    assert (store_dir / "blueprint-OPENAI_API_KEY").read_text() == KEY["OPENAI_API_KEY"]


def test_a_library_edit_that_keeps_size_and_mtime_is_seen(config, home, tmp_path, monkeypatch):
    from blueprint import fastpath

    library = tmp_path / "lib"
    library.mkdir()
    (library / "fakelib.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(library))
    __import__("fakelib")
    environ = {**os.environ, **KEY}
    pipeline.render(pipeline.Options.from_env(config, environ))
    argv = ["render", "--config", str(config)]
    assert fastpath.up_to_date(argv, environ) is not None
    before = (library / "fakelib.py").stat()
    (library / "fakelib.py").write_text("VALUE = 2\n")
    os.utime(library / "fakelib.py", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert fastpath.up_to_date(argv, environ) is None
    sys.modules.pop("fakelib")


# ---- modes and paths ------------------------------------------------------------------------------


def test_under_umask_000_nothing_blueprint_creates_is_writable_by_others(config, home):
    def loose(root: Path) -> list[str]:
        return [str(p) for p in [root, *root.rglob("*")] if p.exists() and p.lstat().st_mode & 0o022]

    for command in (
        ["render", "--config", str(config)],
        ["--help"],
        ["backup", "run", "config", "--config", str(config)],
    ):
        result = subprocess.run(
            [BLUEPRINT, *command], capture_output=True, env={**os.environ, **KEY}, preexec_fn=lambda: os.umask(0)
        )
        assert result.returncode == 0, result.stderr
    assert loose(home.home) == [] or loose(home.home) == [str(home.home)]


def test_a_relative_home_is_refused(config, tmp_path):
    result = cli("render", "--config", str(config), env={**KEY, "HOME": "relative/home"}, cwd=tmp_path)
    assert result.returncode == 2 and "HOME=relative/home is not an absolute path" in one_error_line(result)
    assert not (tmp_path / "relative").exists()


# ---- input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, pattern",
    [
        ({"litellm": {"published_port": 4000.0}}, r"/litellm/published_port: expected an integer, got number 4000.0"),
        ({"litellm": {"num_workers": 4.0}}, r"/litellm/num_workers: expected an integer"),
        ({"litellm": {"publish_address": "999.999.999.999"}}, r"/litellm/publish_address: '999.999.999.999' is not"),
        ({"litellm_postgres": {"shared_buffers": "256MB\n"}}, r"/litellm_postgres/shared_buffers: .* is not valid"),
        ({"cache": {"namespace": "ns\n"}}, r"/cache/namespace: .* is not valid"),
        ({"budget": {"max_budget": 5, "budget_duration": "30d\n"}}, r"/budget/budget_duration: .* is not valid"),
        (
            {"llm_providers": {"openai": {"api_key": "${OPENAI_API_KEY}", "models": ["gpt-4o\n"]}}},
            r"/llm_providers/openai/models/0: .* is not valid",
        ),
        (
            {"llm_providers": {"vllm": {"base_url": "http://gpu:8000/v1\n", "models": ["m"]}}},
            r"/llm_providers/vllm/base_url: .* is not valid",
        ),
        (
            {"llm_providers": {"ollama": {"models": [{"id": "m", "mock_response": "\ud800"}]}}},
            r"/llm_providers/ollama/models/0/mock_response: not valid Unicode",
        ),
    ],
)
def test_values_that_would_render_wrong_are_refused_in_one_line(section, pattern, home, tmp_path, monkeypatch, capsys):
    import re

    config = write_config(tmp_path, {**CONFIG, **section})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert cli_module.run(["render", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert re.search(pattern, error), error
    assert not home.unit_dir.exists()


def test_bytes_that_are_not_utf_8_are_one_clear_line(config, home, tmp_path):
    def run(argv, env=None, stdin=b""):
        env = {**os.environb, **{k.encode(): v for k, v in (env or {}).items()}}
        result = subprocess.run([BLUEPRINT.encode(), *argv], env=env, input=stdin, capture_output=True)
        text = result.stderr.decode("utf-8", "replace")
        assert "Traceback" not in text and "unexpected error" not in text, text
        return result.returncode, text

    code, err = run([b"render", b"--config", str(config).encode()], {"OPENAI_API_KEY": b"sk-\xff"})
    assert code == 2 and "OPENAI_API_KEY: the value is not valid UTF-8" in err
    code, err = run([b"secrets", b"set", b"OPENAI_API_KEY"], stdin=b"sk-\xfe\n")
    assert code == 2 and "stdin is not UTF-8 text" in err
    odd = tmp_path / os.fsdecode(b"config-\xff.json")
    odd.write_text(json.dumps(CONFIG))
    code, err = run([b"render", b"--config", os.fsencode(odd)], {"OPENAI_API_KEY": b"sk-x"})
    assert code == 2 and "the file's name is not valid UTF-8" in err
    code, err = run([b"render", b"--config", str(config).encode()], {"XDG_CONFIG_HOME": b"/tmp/cfg-\xff"})
    assert code == 2 and "XDG_CONFIG_HOME is not valid UTF-8" in err
    rendered(config)
    with home.secret_store.open("ab") as store:
        store.write(b"BROKEN=\xff\n")
    code, err = run([b"render", b"--config", str(config).encode()])
    assert code == 2 and f"{home.secret_store}:" in err and "not UTF-8 text" in err


def test_a_config_that_is_not_a_regular_file_is_refused_at_once(home, tmp_path):
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        started = time.monotonic()
        result = cli("render", "--config", str(path))
        assert result.returncode == 2, result.stderr
        assert time.monotonic() - started < 60, "refused without reading"
        assert f"{path}: not a regular file" in one_error_line(result)


def test_a_damaged_pending_list_in_the_manifest_is_left_out(config, home):
    rendered(config)
    manifest = json.loads(home.manifest.read_text())
    manifest["pending"] = {"restart": 5, "enable": ["x; rm -rf ~", 3]}
    home.manifest.write_text(json.dumps(manifest))
    home.stamp.unlink()
    result = cli(
        "apply",
        "--config",
        str(config),
        env={
            **KEY,
            "PATH": f"{ROOT / 'tests/fakes'}:{os.environ['PATH']}",
            "FAKE_SYSTEMCTL": str(home.home / "systemd.json"),
        },
    )
    assert result.returncode == 0, result.stderr
    calls = (
        (home.home / "systemd.json.log").read_text().splitlines() if (home.home / "systemd.json.log").exists() else []
    )
    assert not any("rm -rf" in call for call in calls)


def test_a_timer_removed_while_its_enable_was_pending_is_not_enabled_again(config, home, tmp_path):
    env = {**KEY, "PATH": f"{ROOT / 'tests/fakes'}:{os.environ['PATH']}", "FAKE_SYSTEMCTL": str(tmp_path / "sd.json")}
    assert cli("render", "--config", str(config), env=env).returncode == 0  # enabling the timers is pending
    write_config(config.parent, {**CONFIG, "backup": {"enabled": False}})
    assert cli("render", "--config", str(config), env=env).returncode == 0  # ... and they are gone
    first = cli("apply", "--config", str(config), env=env)
    assert first.returncode == 0, first.stderr
    assert "enable" not in (tmp_path / "sd.json.log").read_text()
    second = cli("apply", "--config", str(config), env=env)
    assert second.returncode == 0 and "nothing to do" in second.stderr


def test_a_restart_that_waits_too_long_is_reported_not_repeated(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "systemctl").write_text('#!/bin/sh\n[ "$2" = restart ] && sleep 30\nexit 0\n')
    (fake / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    monkeypatch.setattr(systemd, "RESTART_WAIT", 1)
    started = time.monotonic()
    done = systemd.run(systemd.Actions(restart=("litellm.service",)))
    assert time.monotonic() - started < 20
    assert done.notes and "still starting after 1 s" in done.notes[0]


def test_a_replica_that_never_gets_ready_halts_the_rolling_restart(tmp_path, monkeypatch):
    """A broken release must not reach the second replica: it goes on serving the old one."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "systemctl").write_text(
        f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\n[ "$2 $3" = "restart litellm@1.service" ] && sleep 30\nexit 0\n'
    )
    (fake / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    replicas = ("litellm@1.service", "litellm@2.service")
    done = systemd.run(systemd.Actions(restart=replicas), wait=1, one_at_a_time=replicas)
    assert (tmp_path / "calls").read_text().split("\n")[:-1] == ["--user restart litellm@1.service"]
    assert done.held == ("litellm@2.service",)
    assert "litellm@2.service not restarted: they serve as before until litellm@1.service is ready" in done.notes[1]


def test_verify_without_testinfra_says_how_to_install_it(config, home, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "testinfra", None)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert cli_module.run(["verify", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "blueprint verify needs testinfra" in err and "pip install 'blueprint[verify]'" in err


def test_making_a_private_folder_never_changes_a_folder_that_existed(tmp_path):
    """ensure_dir once tightened every folder on its way up: /tmp itself became 0700."""
    from blueprint.files import ensure_dir

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    ensure_dir(shared / "a" / "b", 0o700)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE((shared / "a").stat().st_mode) == 0o700
    existing = shared / "loose"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    ensure_dir(existing, 0o700)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o700, "the folder asked for is made private"
