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
from blueprint.actions import Actions
from blueprint.errors import ConflictError
from blueprint.manifest import Manifest
from tests import injection
from tests.conftest import (
    ROOT,
    change_podman_world,
    cli,
    fake_podman,
    fake_systemctl,
    need,
    options,
    podman_world,
    tree,
    write_config,
)

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
    # Nor through the environment, on the first render that takes the key from there: it is left
    # out, as if not set (--strict refuses it).
    home.secret_store.unlink()
    for file in home.env_dir.iterdir():
        file.unlink()
    from_env = cli("render", "--config", str(config), env={"OPENAI_API_KEY": injected})
    assert from_env.returncode == 0, from_env.stderr
    assert "OPENAI_API_KEY in your environment cannot be used (the value contains a line break" in from_env.stderr
    assert "OPENAI_API_KEY" not in secrets.Store.load(home).values
    assert secrets.Store.load(home).values["LITELLM_SALT_KEY"] != "sk-evil" != store["LITELLM_SALT_KEY"]
    assert "sk-evil" not in home.env_dir.joinpath("litellm.env").read_text()
    strict = cli("render", "--strict", "--config", str(config), env={"OPENAI_API_KEY": injected})
    assert strict.returncode == 2 and "OPENAI_API_KEY in your environment cannot be used" in one_error_line(strict)


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


def everything_under(root: Path) -> list[str]:
    """Every file and folder under root, the lock file too."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(
    "broken",
    [
        "{",  # a config error
        json.dumps({**CONFIG, "llm_providers": {"openai": {"api_key": "${OPENAI_API_KEY}", "models": []}}}),
    ],
    ids=["JSON", "schema"],
)
def test_a_render_refused_by_its_config_writes_nothing_not_even_the_lock(home, tmp_path, broken):
    config = write_config(tmp_path, broken)
    result = cli("render", "--config", str(config), env=KEY)
    assert result.returncode == 2, result.stderr
    assert everything_under(home.home) == []
    home.state_dir.mkdir(parents=True)  # a home that has rendered before: only the lock file goes
    assert cli("render", "--config", str(config), env=KEY).returncode == 2
    assert everything_under(home.home) == [".local", ".local/state", ".local/state/blueprint"]


def test_the_lock_removed_on_release_still_lets_one_run_at_a_time(home, tmp_path):
    """8 processes x 25 turns of an unlocked read-modify-write under the lock, on a lock file (and
    folders) removed at every release: no turn is lost, and no lock file is left behind."""
    from blueprint.locking import lock

    counter = tmp_path / "counter"
    counter.write_text("0")
    lock_file = home.state_dir / "lock"

    def turns() -> None:
        for _ in range(25):
            with lock(lock_file, waiting=lambda holder: None):
                value = int(counter.read_text())
                time.sleep(0.0005)
                counter.write_text(str(value + 1))

    children = []
    for _ in range(8):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                turns()
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    assert all(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0 for pid in children)
    assert counter.read_text() == str(8 * 25)
    # Only folders may stay: one run made them while another's lock file was in them.
    assert [p for p in home.home.rglob("*") if not p.is_dir()] == []


def test_an_edit_made_while_a_render_writes_is_not_overwritten(config, home, monkeypatch):
    rendered(config)
    write_config(config.parent, {**CONFIG, "litellm": {"num_workers": 2}, "network": {"subnet": "10.77.0.0/24"}})
    network = home.unit_dir / "llm.network"
    write = engine.write_if_unchanged

    def edit_meanwhile(path, data, mode, expected):
        # A person edits llm.network while blueprint is writing another file.
        if path.name != "llm.network" and not network.read_text().endswith("# mine\n"):
            network.write_text(network.read_text() + "# mine\n")
        return write(path, data, mode, expected)

    monkeypatch.setattr(engine, "write_if_unchanged", edit_meanwhile)
    with pytest.raises(ConflictError, match="changed while blueprint was writing"):
        pipeline.render(options(config, HOME=str(home.home), **KEY))
    assert network.read_text().endswith("# mine\n"), "the edit is kept"


def _edit(path: Path, how: str) -> None:
    """A hand edit: written into the file (echo >>, most editors), or saved beside it and renamed
    over it (sed -i, vim's default)."""
    edited = path.read_text() + "# mine\n"
    if how == "in place":
        with path.open("a") as file:
            file.write("# mine\n")
    else:
        beside = path.with_name(path.name + ".sed")
        beside.write_text(edited)
        os.replace(beside, path)


CHANGED = r"llm\.network: changed while blueprint was writing"


def _render_with_new_network(config, home):
    rendered(config)
    write_config(config.parent, {**CONFIG, "network": {"subnet": "10.77.0.0/24"}})
    return home.unit_dir / "llm.network"


def _refused_keeping_the_edit(config, home, network: Path) -> None:
    """The render stops at the edit of `network` made while it wrote, and leaves the edit and no
    temp file."""
    with pytest.raises(ConflictError, match=CHANGED):
        pipeline.render(options(config, HOME=str(home.home), **KEY))
    assert network.read_text().endswith("# mine\n"), "the edit is kept"
    assert list(home.unit_dir.glob(".llm.network.*")) == [], "no temp file is left"


@pytest.mark.parametrize("how", ["in place", "by rename"])
def test_an_edit_made_while_the_new_file_is_synced_is_kept(config, home, monkeypatch, how):
    """The write window of a unit: an edit landing while its new contents are fsynced (which can
    take long on a busy disk) is a conflict, not overwritten."""
    network = _render_with_new_network(config, home)
    fsync = os.fsync

    def edit_while_syncing(fd):
        temp = os.readlink(f"/proc/self/fd/{fd}").startswith(str(network.with_name(".llm.network.")))
        if temp and not network.read_text().endswith("# mine\n"):
            _edit(network, how)
        return fsync(fd)

    monkeypatch.setattr(os, "fsync", edit_while_syncing)
    _refused_keeping_the_edit(config, home, network)


@pytest.mark.parametrize("how", ["in place", "by rename"])
def test_an_edit_made_at_the_instant_of_the_rename_is_put_back(config, home, monkeypatch, how):
    """After the last check, at the rename itself: what the rename replaced is checked, and the
    edited file put back."""
    from blueprint import files

    network = _render_with_new_network(config, home)
    exchange = files._exchange

    def edit_first(a, b):
        if b == network and not network.read_text().endswith("# mine\n"):
            _edit(network, how)
        exchange(a, b)

    monkeypatch.setattr(files, "_exchange", edit_first)
    _refused_keeping_the_edit(config, home, network)


def test_without_an_atomic_exchange_an_edit_at_the_rename_is_still_seen(config, home, monkeypatch):
    """A file system that cannot exchange two names (NFS): the file checked is kept by a hard link
    over the rename, so an edit written into it at that moment is seen and put back; a render
    with no edit writes as usual."""
    import errno

    from blueprint import files

    def unsupported(a, b):
        raise OSError(errno.EINVAL, "Invalid argument", str(b))

    monkeypatch.setattr(files, "_exchange", unsupported)
    network = _render_with_new_network(config, home)
    replace = os.replace

    def edit_first(src, dst):
        if Path(dst) == network and not network.read_text().endswith("# mine\n"):
            _edit(network, "in place")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", edit_first)
    _refused_keeping_the_edit(config, home, network)
    monkeypatch.setattr(os, "replace", replace)
    pipeline.render(options(config, HOME=str(home.home), **KEY), force=True)
    assert "10.77.0.0/24" in network.read_text() and "# mine" not in network.read_text()


def test_without_an_exchange_or_hard_links_a_render_still_writes(config, home, monkeypatch):
    """A file system with neither (vfat, sshfs): each write checks, then renames, as before."""
    import errno

    from blueprint import files

    def no_exchange(*args):
        raise OSError(errno.EINVAL, "Invalid argument")

    def no_link(*args):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(files, "_exchange", no_exchange)
    monkeypatch.setattr(os, "link", no_link)
    network = home.unit_dir / "llm.network"
    for subnet in ("10.88.0.0/24", "10.77.0.0/24"):
        write_config(config.parent, {**CONFIG, "network": {"subnet": subnet}})
        pipeline.render(options(config, HOME=str(home.home), **KEY))
        assert subnet in network.read_text()
    assert list(home.home.rglob(".*.tmp")) == []


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
    podman = fake_podman(tmp_path, {"volumes": {"systemd-litellm-postgres": str(tmp_path / "pgdata")}})
    result = cli("render", "--config", str(config), env={**KEY, **podman})
    assert result.returncode == 2
    assert "the volume systemd-litellm-postgres holds a database made with it" in one_error_line(result)
    assert "blueprint restore config" in result.stderr
    assert not home.secret_store.exists(), "nothing was generated"


def test_a_podman_that_cannot_tell_whether_the_volume_exists_generates_nothing(config, home, tmp_path):
    """`podman volume exists` says 1 for "no such volume"; 125 is Podman failing, not an answer."""
    rendered(config)
    home.secret_store.unlink()
    for file in home.env_dir.iterdir():
        file.unlink()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "podman").write_text('#!/bin/sh\necho "cannot set up namespace" >&2\nexit 125\n')
    (bin_dir / "podman").chmod(0o755)
    result = cli("render", "--config", str(config), env={**KEY, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert result.returncode == 1, result.stderr
    assert "cannot tell whether it holds data" in one_error_line(result)
    assert not home.secret_store.exists(), "nothing was generated"


def test_podman_secrets_with_a_key_not_set_yet_render_without_it(home, tmp_path):
    config = write_config(tmp_path, {**CONFIG, "secrets": {"backend": "podman"}})
    env = {**fake_podman(tmp_path, {}), "OPENAI_API_KEY": ""}
    result = cli("render", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert "OPENAI_API_KEY is not set" in result.stderr
    assert "blueprint-OPENAI_API_KEY" not in podman_world(env)["secrets"]
    services = injection.quadlet_services(home.unit_dir)
    assert "OPENAI_API_KEY" not in " ".join(v for _, v in services[injection.LITELLM]), "no Secret= for it"
    stored = cli("secrets", "set", "OPENAI_API_KEY", "--config", str(config), input="sk-later\n", env=env)
    assert stored.returncode == 0, stored.stderr
    assert cli("render", "--config", str(config), env=env).returncode == 0
    assert podman_world(env)["secrets"]["blueprint-OPENAI_API_KEY"] == "sk-later"


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
    # Without --config, from another folder: the config found is blueprint's copy of the one last
    # rendered, which the next apply from the person's folder would overwrite; refused, as upgrade
    # refuses it, before the question.
    applied = home.applied_config.read_bytes()
    for confirm in (["--yes"], []):
        elsewhere = cli("restore", "config", str(archive), *confirm, cwd=home.home)
        assert elsewhere.returncode == 2, elsewhere.stderr
        assert "blueprint's copy of the config last rendered" in one_error_line(elsewhere)
        assert "--config" in elsewhere.stderr and "Restore config from" not in elsewhere.stderr
    assert home.applied_config.read_bytes() == applied
    assert not list(home.state_dir.glob("*.before-restore-*"))
    shipped = (ROOT / "blueprint-config.json").read_bytes()
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
            "secrets/secrets.env:1: REDIS_PASSWORD cannot be used: Redis reads it as one word",
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


def test_purging_the_secrets_removes_the_stores_a_restore_kept_and_names_the_backups(config, home, tmp_path):
    """`uninstall --purge-secrets` removed secrets.env and left, unsaid, the full copies of it that
    `restore config` keeps beside it."""
    rendered(config)
    assert cli("backup", "run", "config", "--config", str(config)).returncode == 0
    archive = config_backup(
        tmp_path, {"config/blueprint-config.json": GOOD, "secrets/secrets.env": b"OPENAI_API_KEY=sk-restored\n"}
    )
    assert cli("restore", "config", str(archive), "--yes", "--config", str(config)).returncode == 0
    kept = list(home.secrets_dir.glob("secrets.env.before-restore-*"))
    assert kept, "restore keeps the store it replaces"
    env = fake_systemctl(tmp_path / "systemd.json")
    result = cli("uninstall", "--purge-secrets", "--yes", env=env)
    assert result.returncode == 0, result.stderr
    assert not home.secret_store.exists()
    assert not [path for path in kept if path.exists()], result.stderr
    for path in kept:
        assert f"removed {path}" in result.stderr
    backups = home.backup_dir / "config"
    assert len(list(backups.iterdir())) == 1, "a backup is never deleted"
    assert f"kept the config backups in {backups}" in result.stderr


def bounded(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run blueprint with its memory capped (a read of /dev/zero ends in MemoryError, not in the
    machine's OOM killer) and a time limit that only a blocked read reaches."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    try:
        return subprocess.run(
            [BLUEPRINT, *args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            preexec_fn=cap,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"blueprint {' '.join(args)} blocked")


@pytest.mark.parametrize("kind", ["config", "redis", "postgres"])
@pytest.mark.parametrize("what", ["FIFO", "character device"])
def test_a_backup_that_is_not_a_regular_file_is_refused_unread(config, home, tmp_path, kind, what):
    """restore redis /dev/zero grew until MemoryError; a FIFO held the restore, and the lock, for good."""
    rendered(config)
    if what == "FIFO":
        backup = tmp_path / "backup"
        os.mkfifo(backup)
    else:
        backup = Path("/dev/zero")
    world = tmp_path / "systemd.json"
    env = fake_systemctl(world)
    result = bounded("restore", kind, str(backup), "--yes", "--config", str(config), env=env)
    assert result.returncode == 4, result.stderr
    assert one_error_line(result) == f"blueprint: error: {backup}: not a regular file (a {what}); nothing was restored"
    assert not Path(f"{world}.log").exists(), "nothing was stopped"


@pytest.mark.parametrize("target", ["FIFO", "character device"])
def test_restore_config_into_a_config_that_is_not_a_regular_file_writes_nothing(config, home, tmp_path, target):
    """Never /dev/null itself: as root, a restore that took it for a config replaced it with a file."""
    rendered(config)
    archive = config_backup(tmp_path, {"config/blueprint-config.json": GOOD})
    into = tmp_path / "target.json"
    if target == "FIFO":
        os.mkfifo(into)
    else:
        try:
            os.mknod(into, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
        except PermissionError:
            pytest.skip("making a device node needs root")
    before = everything_under(home.home)
    result = bounded("restore", "config", str(archive), "--yes", "--config", str(into))
    assert result.returncode == 2, result.stderr
    assert one_error_line(result).startswith(f"blueprint: error: {into}: not a regular file")
    assert everything_under(home.home) == before


def test_a_config_backup_with_a_huge_member_is_refused_before_it_is_inflated(config, home, tmp_path):
    """A member of 3 GB (a few MB compressed) was read whole into memory."""
    import io
    import tarfile

    rendered(config)
    archive = tmp_path / "config-20260101T000000Z.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("config/blueprint-config.json")
        info.size = 65 << 20  # one MiB over the limit: a config is at most 64 MiB
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    before = (config.read_bytes(), home.secret_store.read_bytes())
    result = bounded("restore", "config", str(archive), "--yes", "--config", str(config))
    assert result.returncode == 4, result.stderr
    assert "config/blueprint-config.json is larger than 64 MiB" in one_error_line(result)
    assert (config.read_bytes(), home.secret_store.read_bytes()) == before


def test_a_fifo_among_the_files_a_lost_store_is_recovered_from_is_named(config, home):
    rendered(config)
    home.secret_store.unlink()
    fifo = home.env_dir / "litellm.env"
    fifo.unlink()
    os.mkfifo(fifo)
    result = bounded("render", "--config", str(config), env=KEY)
    assert result.returncode == 2, result.stderr
    assert one_error_line(result) == f"blueprint: error: {fifo}: not a regular file (a FIFO)"
    assert not home.secret_store.exists(), "nothing was written"


def test_an_export_record_linked_to_a_device_is_refused_unread(config, home, tmp_path):
    out = tmp_path / "out"
    assert cli("export", "kubernetes", "--out", str(out), "--config", str(config)).returncode == 0
    record = out / ".blueprint-export.json"
    record.unlink()
    record.symlink_to("/dev/zero")
    result = bounded("export", "kubernetes", "--out", str(out), "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert one_error_line(result) == f"blueprint: error: {record}: not a regular file (a character device)"


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
    config = write_config(tmp_path, {**CONFIG, "secrets": {"backend": "podman"}})
    env = {**KEY, **fake_podman(tmp_path, {})}
    assert cli("render", "--config", str(config), env=env).returncode == 0
    world = podman_world(env)
    del world["secrets"]["blueprint-OPENAI_API_KEY"]  # a person's `podman secret rm`
    change_podman_world(env, world)
    again = cli("render", "--config", str(config), env=env)
    assert "up to date" not in again.stderr
    assert podman_world(env)["secrets"]["blueprint-OPENAI_API_KEY"] == KEY["OPENAI_API_KEY"]


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


@pytest.mark.parametrize("where", ["unit_dir", "unit_dir.parent", "unit_dir/litellm", "systemd_user_dir"])
def test_a_file_where_a_folder_belongs_is_named_and_nothing_written(config, home, where):
    folder = {
        "unit_dir": home.unit_dir,
        "unit_dir.parent": home.unit_dir.parent,
        "unit_dir/litellm": home.unit_dir / "litellm",
        "systemd_user_dir": home.systemd_user_dir,
    }[where]
    folder.parent.mkdir(parents=True)
    folder.write_text("x\n")
    before = everything_under(home.home)
    for command in ("render", "status"):
        result = cli(command, "--config", str(config), env=KEY)
        assert result.returncode == 2, result.stderr
        assert one_error_line(result) == f"blueprint: error: {folder}: not a folder"
    assert everything_under(home.home) == before


@pytest.mark.parametrize(
    "where",
    [
        "applied_config",
        "manifest",
        "lock",
        "stamp",
        "secret_store",
        "unit_dir/litellm/litellm.yaml",
        "env_dir/litellm.env",
    ],
)
@pytest.mark.parametrize("what", ["folder", "FIFO"])
def test_a_folder_or_fifo_where_a_file_belongs_is_named_and_nothing_written(config, home, where, what):
    """A folder at the copy of the config last applied let a render write the secrets and all its
    files, then stop ("Is a directory", exit 1); one at the store printed a file descriptor for a
    name ("3: Is a directory"); a FIFO blocked the render, holding the lock."""
    place = home.home / "x"
    for part in where.split("/"):
        place = getattr(home, part) if place == home.home / "x" else place / part
    place.parent.mkdir(parents=True, exist_ok=True)
    if what == "folder":
        place.mkdir()
    else:
        os.mkfifo(place)
    before = everything_under(home.home)
    result = cli("render", "--config", str(config), env=KEY)
    if (where, what) == ("stamp", "FIFO"):
        # Only the fast path reads the stamp (a FIFO sends it down the full path), which replaces it.
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2, result.stderr
    assert one_error_line(result).startswith(f"blueprint: error: {place}: ")
    assert everything_under(home.home) == before


@pytest.mark.parametrize("where", ["config_home", "secrets_dir", "XDG_CONFIG_HOME"])
def test_a_file_where_the_stores_folder_belongs_is_named(config, home, tmp_path, where):
    """Other folders said "not a folder"; these said "secrets.env: Not a directory", exit 1, and
    the render had written its lock."""
    env = dict(KEY)
    if where == "XDG_CONFIG_HOME":
        folder = tmp_path / "xdg"
        env["XDG_CONFIG_HOME"] = str(folder)
    else:
        folder = getattr(home, where)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("x\n")
    before = everything_under(home.home)
    result = cli("render", "--config", str(config), env=env)
    assert result.returncode == 2, result.stderr
    assert one_error_line(result) == f"blueprint: error: {folder}: not a folder"
    assert everything_under(home.home) == before


def _read_only(folder: Path, *argv: str, env: dict) -> subprocess.CompletedProcess:
    """Run blueprint with `folder` read-only for real: as root (who may write anywhere else) a
    read-only bind mount in a private mount namespace; otherwise mode 0555."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            return cli(*argv, env=env)
        finally:
            folder.chmod(0o755)
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    command = [need("unshare", "unshare (util-linux)"), "-m", "--propagation", "private", "sh", "-c", script]
    result = subprocess.run(
        [*command, "sh", str(folder), BLUEPRINT, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert "mount:" not in result.stderr, result.stderr
    return result


@pytest.mark.parametrize("missing", [False, True], ids=["folder", "its parent"])
def test_a_read_only_folder_stops_the_render_before_its_first_write(config, home, missing):
    """~/.config/systemd/user read-only (or ~/.config/systemd, user/ still to be made): the render
    refuses at once, naming it; it used to stop after 16 files, naming a temp file."""
    folder = home.systemd_user_dir.parent if missing else home.systemd_user_dir
    folder.mkdir(parents=True)
    before = everything_under(home.home)
    result = _read_only(folder, "render", "--config", str(config), env=KEY)
    assert result.returncode == 2, result.stderr
    what = f"so {home.systemd_user_dir} cannot be made" if missing else ""
    assert f"error: {folder}: cannot be written" in one_error_line(result) and what in result.stderr
    assert "read-only" in result.stderr or os.geteuid() != 0
    assert everything_under(home.home) == before, "nothing was written, not even the lock"


def test_a_change_refused_by_a_read_only_folder_writes_none_of_its_files(config, home):
    rendered(config)
    write_config(config.parent, {**CONFIG, "network": {"subnet": "10.77.0.0/24"}, "backup": {"retention_days": 3}})
    before = tree(home.home)
    result = _read_only(home.systemd_user_dir, "render", "--config", str(config), env=KEY)
    assert result.returncode == 2 and f"{home.systemd_user_dir}: cannot be written" in one_error_line(result)
    assert tree(home.home) == before, "neither the units, the manifest nor the fast path's stamp changed"
    assert not home.lock.exists()


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

    code, err = run([b"render", b"--strict", b"--config", str(config).encode()], {"OPENAI_API_KEY": b"sk-\xff"})
    assert code == 2 and "OPENAI_API_KEY in your environment cannot be used (the value is not valid UTF-8)" in err
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
        env={**KEY, **fake_systemctl(home.home / "systemd.json")},
    )
    assert result.returncode == 0, result.stderr
    calls = (
        (home.home / "systemd.json.log").read_text().splitlines() if (home.home / "systemd.json.log").exists() else []
    )
    assert not any("rm -rf" in call for call in calls)


def test_a_timer_removed_while_its_enable_was_pending_is_not_enabled_again(config, home, tmp_path):
    env = {**KEY, **fake_systemctl(tmp_path / "sd.json")}
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
    done = systemd.run(Actions(restart=("litellm.service",)))
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
    done = systemd.run(Actions(restart=replicas), wait=1, one_at_a_time=replicas)
    assert (tmp_path / "calls").read_text().split("\n")[:-1] == ["--user restart litellm@1.service"]
    assert done.held == ("litellm@2.service",)
    assert "litellm@2.service not restarted: they serve as before until litellm@1.service is ready" in done.notes[1]


def test_verify_without_testinfra_says_how_to_install_it(config, home, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "testinfra", None)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert cli_module.run(["verify", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "blueprint verify needs testinfra" in err
    # The project on PyPI named blueprint is another one: the hint names the package itself.
    assert f"{sys.executable} -m pip install pytest-testinfra" in err and "blueprint[" not in err


def test_making_a_private_folder_never_changes_a_folder_that_existed(tmp_path):
    """ensure_dir once tightened every folder on its way up: /tmp itself became 0700."""
    from blueprint.folders import ensure_dir

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


def test_a_folder_that_takes_no_new_folders_is_one_clear_line(config, home):
    """mkdir in /proc says "no such file" though /proc is there: that was taken for a parent removed
    meanwhile, and made again, forever (RecursionError, exit 3)."""
    result = cli("export", "kubernetes", "--out", "/proc/blueprint-out", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert "/proc/blueprint-out: cannot be made: /proc takes no new folders" in one_error_line(result)


@pytest.mark.parametrize(
    "argv",
    [
        ["secrets", "set", "EVIL\n"],
        ["secrets", "set", "LITELLM_SALT_KEY\n"],
        ["export", "kubernetes", "--namespace", "llm\n"],
    ],
    ids=["a secret's name", "the salt key's name", "a namespace"],
)
def test_a_name_with_a_trailing_newline_is_refused(home, tmp_path, argv):
    """Python's `$` matches before a final newline: every name check anchors at the very end."""
    config = write_config(tmp_path, CONFIG)
    result = cli(*argv, "--config", str(config), input="sk-x\n", env=KEY)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "" and not home.secret_store.exists()


def test_a_redis_password_edited_into_the_store_that_redis_cannot_read_is_refused(config, home):
    """Redis would refuse `requirepass two words` at start, and print the password in its log."""
    rendered(config)
    text = home.secret_store.read_text()
    lines = text.splitlines()
    line = next(n for n, entry in enumerate(lines, 1) if entry.startswith("REDIS_PASSWORD="))
    lines[line - 1] = "REDIS_PASSWORD=two words"
    home.secret_store.write_text("\n".join(lines) + "\n")
    before = (home.env_dir / "litellm-redis.env").read_bytes()
    result = cli("render", "--config", str(config), env=KEY)
    assert result.returncode == 2
    assert f"secrets.env:{line}: REDIS_PASSWORD cannot be used: Redis reads it as one word" in one_error_line(result)
    assert "two words" not in result.stderr
    assert (home.env_dir / "litellm-redis.env").read_bytes() == before


@pytest.mark.parametrize("stores", [[5], 5, [None], {"a": 1}])
def test_a_damaged_list_in_the_manifest_is_dropped_not_a_traceback(config, home, stores):
    rendered(config)
    manifest = json.loads(home.manifest.read_text())
    manifest.update(stores=stores, removed=stores, podman_secrets=stores)
    home.manifest.write_text(json.dumps(manifest))
    result = cli("status", "--config", str(config), env=KEY)
    assert result.returncode == 0, result.stderr


def test_after_a_lost_store_every_key_not_removed_comes_back(config, home, tmp_path):
    """The store lost, one key set again: the others are recovered from the environment files
    blueprint wrote; a key taken out with `secrets rm` stays out."""
    data = {**CONFIG, "llm_providers": {**CONFIG["llm_providers"], "anthropic": {"models": ["claude-haiku-4-5"]}}}
    config = write_config(tmp_path, data)
    keys = {**KEY, "ANTHROPIC_API_KEY": "sk-ant-kept"}
    assert cli("render", "--config", str(config), env=keys).returncode == 0
    home.secret_store.unlink()
    assert cli("secrets", "set", "OPENAI_API_KEY", input="sk-new\n").returncode == 0
    again = cli("render", "--config", str(config), env={"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ""})
    assert again.returncode == 0, again.stderr
    assert secrets.Store.load(home).values["ANTHROPIC_API_KEY"] == "sk-ant-kept"
    assert env_file(home, "litellm")["ANTHROPIC_API_KEY"] == "sk-ant-kept"
    assert cli("secrets", "rm", "ANTHROPIC_API_KEY").returncode == 0
    home.secret_store.unlink()
    assert cli("secrets", "set", "OPENAI_API_KEY", input="sk-new\n").returncode == 0
    after = cli("render", "--config", str(config), env={"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ""})
    assert "ANTHROPIC_API_KEY is not set" in after.stderr
    assert "ANTHROPIC_API_KEY" not in env_file(home, "litellm")


def test_an_empty_home_is_the_accounts_home_not_the_root(monkeypatch):
    import pwd

    from blueprint.paths import Paths

    monkeypatch.setenv("HOME", "")
    found = Paths.from_env({"HOME": ""})
    assert found.home == Path(pwd.getpwuid(os.getuid()).pw_dir)
    assert found.unit_dir == found.home / ".config/containers/systemd"


# ---- secrets: which file a secret comes back from, and the frozen ones --------------------------


def test_a_provider_key_named_like_any_containers_variable_is_refused(home, tmp_path):
    """${REDISCLI_AUTH} (the Redis container's password) as a provider key validated, and a later
    render handed the Redis password to the provider."""
    data = {**CONFIG, "llm_providers": {"openai": {"api_key": "${REDISCLI_AUTH}", "models": ["gpt-4o"]}}}
    result = cli("validate", "--config", str(write_config(tmp_path, data)))
    assert result.returncode == 2
    assert "/llm_providers/openai/api_key: REDISCLI_AUTH is set by blueprint's units" in one_error_line(result)


@pytest.mark.parametrize(
    "entry, where, var",
    [
        ({"api_key": "${HTTPS_PROXY}"}, "openai/api_key", "HTTPS_PROXY"),
        ({"api_key": "${https_proxy}"}, "openai/api_key", "https_proxy"),
        ({"api_key": "${SSL_CERT_FILE}"}, "openai/api_key", "SSL_CERT_FILE"),
        ({"api_key": "${REQUESTS_CA_BUNDLE}"}, "openai/api_key", "REQUESTS_CA_BUNDLE"),
        ({"api_key": "${PRISMA_QUERY_ENGINE_BINARY}"}, "openai/api_key", "PRISMA_QUERY_ENGINE_BINARY"),
        ({"api_key": "${STORE_MODEL_IN_DB}"}, "openai/api_key", "STORE_MODEL_IN_DB"),
        # Named like credentials, yet read by the container's programs for their own settings.
        ({"api_key": "${LITELLM_CORS_ALLOW_CREDENTIALS}"}, "openai/api_key", "LITELLM_CORS_ALLOW_CREDENTIALS"),
        ({"api_key": "${LENGTH_OF_LITELLM_GENERATED_KEY}"}, "openai/api_key", "LENGTH_OF_LITELLM_GENERATED_KEY"),
        ({"api_key": "${DATABASE_PASSWORD}"}, "openai/api_key", "DATABASE_PASSWORD"),
        ({"api_key": "${REDIS_SENTINEL_PASSWORD}"}, "openai/api_key", "REDIS_SENTINEL_PASSWORD"),
        ({"api_key": "${GOOGLE_APPLICATION_CREDENTIALS}"}, "openai/api_key", "GOOGLE_APPLICATION_CREDENTIALS"),
        (
            {"provider": "bedrock", "aws_access_key_id": "${HTTP_PROXY}", "aws_secret_access_key": "${AWS_SECRET}"},
            "openai/aws_access_key_id",
            "HTTP_PROXY",
        ),
    ],
)
def test_a_provider_key_named_like_what_the_containers_programs_read_is_refused(home, tmp_path, entry, where, var):
    """ "api_key": "${HTTPS_PROXY}" with HTTPS_PROXY exported rendered: the key was taken from the
    environment and litellm.env set HTTPS_PROXY in the LiteLLM container (a proxy for every call)."""
    fields = {"region": "us-east-1"} if "aws_access_key_id" in entry else {}
    data = {**CONFIG, "llm_providers": {"openai": {**entry, **fields, "models": ["gpt-4o"]}}}
    config = write_config(tmp_path, data)
    result = cli("render", "--config", str(config), env={var: "http://proxy.example:3128"})
    assert result.returncode == 2, result.stderr
    assert f"/llm_providers/{where}: {var} " in one_error_line(result)
    assert "hint: name the provider's key like a credential" in result.stderr
    assert "proxy.example" not in result.stderr
    assert not home.secret_store.exists() and not home.env_dir.exists(), "nothing written"


@pytest.mark.parametrize("var", ["OPENAI_API_KEY_2", "openai_api_key", "MY_GATEWAY_TOKEN", "TEAM_A_SECRET"])
def test_a_provider_key_named_like_a_credential_is_taken(home, tmp_path, var):
    data = {**CONFIG, "llm_providers": {"openai": {"api_key": f"${{{var}}}", "models": ["gpt-4o"]}}}
    result = cli("render", "--config", str(write_config(tmp_path, data)), env={var: "sk-a-key"})
    assert result.returncode == 0, result.stderr
    assert env_file(home)[var] == "sk-a-key"


def test_one_variable_for_a_key_and_a_json_credential_is_refused(home, tmp_path):
    """vertex_credentials and openai's api_key both naming OPENAI_API_KEY validated; then
    `secrets set OPENAI_API_KEY` asked for JSON, and the openai key could never be set."""
    vertex = {"provider": "vertex_ai", "project": "my-project-1", "location": "us-central1"}
    vertex["models"] = ["gemini-2.5-flash"]
    data = {
        **CONFIG,
        "llm_providers": {**CONFIG["llm_providers"], "vertex": {**vertex, "vertex_credentials": "${OPENAI_API_KEY}"}},
    }
    result = cli("validate", "--config", str(write_config(tmp_path, data)))
    assert result.returncode == 2, result.stderr
    error = one_error_line(result)
    assert "/llm_providers/vertex/vertex_credentials: OPENAI_API_KEY is a JSON credential here" in error
    assert "/llm_providers/openai/api_key" in error and "hint: give each its own variable" in result.stderr
    # The catalog's JSON credential named by a plain key is the same mix-up.
    data = {**CONFIG, "llm_providers": {"openai": {"api_key": "${VERTEXAI_CREDENTIALS}", "models": ["gpt-4o"]}}}
    result = cli("validate", "--config", str(write_config(tmp_path, data)))
    assert result.returncode == 2, result.stderr
    assert "/llm_providers/openai/api_key: VERTEXAI_CREDENTIALS" in one_error_line(result)
    # A managed database's URL is a plain value too.
    managed = {"enabled": True, "external": {"url": "${VERTEX_SA_CREDENTIALS}"}}
    vertex["vertex_credentials"] = "${VERTEX_SA_CREDENTIALS}"
    data = {**CONFIG, "litellm_postgres": managed, "llm_providers": {**CONFIG["llm_providers"], "vertex": vertex}}
    result = cli("validate", "--config", str(write_config(tmp_path, data)))
    assert result.returncode == 2, result.stderr
    assert "/llm_providers/vertex/vertex_credentials: VERTEX_SA_CREDENTIALS" in one_error_line(result)
    assert "/litellm_postgres/external/url" in one_error_line(result)


def test_a_container_variable_not_declared_is_a_bug_not_a_unit(home):
    """The builders set only what CONTAINER_ENVIRONMENT declares, which the rules read."""
    from blueprint.model import services
    from blueprint.model.sizing import size
    from blueprint.quadlet import Words

    data = pipeline.config.loads(json.dumps(CONFIG)).data
    with pytest.raises(RuntimeError, match="litellm_redis sets EXTRA: declare it in CONTAINER_ENVIRONMENT"):
        services._service(
            "litellm_redis", data["litellm_redis"], size(data), environment=Words(("EXTRA=1",)), image="x"
        )


def test_a_secret_comes_back_only_from_its_own_services_variable(config, home):
    """A variable of the same name in another container's file is another secret's value."""
    from dataclasses import replace

    from blueprint import resolution
    from blueprint.model.environment import SecretEnv

    rendered(config)
    stack = pipeline.build_stack(options(config, HOME=str(home.home))).stack
    litellm = stack.service("litellm")
    asking = replace(litellm, secret_env=(*litellm.secret_env, SecretEnv.plain("REDISCLI_AUTH")))
    stack = replace(stack, services=tuple(asking if s is litellm else s for s in stack.services))
    found = resolution.resolve(stack, secrets.Store.load(home), {}, written=[home.env_dir / "litellm-redis.env"])
    assert "REDISCLI_AUTH" in found.missing and "REDISCLI_AUTH" not in found.values


def written_before_the_record(home):
    """The environment files as a blueprint wrote them before it recorded what each variable is
    made from (and its manifest says it wrote them so)."""
    from blueprint.files import digest

    manifest = Manifest.load(home)
    for file in home.env_dir.iterdir():
        file.write_text("".join(line for line in file.read_text().splitlines(True) if ": made from " not in line))
        manifest.files[str(file)].hashes.append(digest(file.read_bytes()))
    manifest.save()


MANAGED = {
    "litellm_postgres": {"external": {"url": "${MANAGED_DATABASE_URL}"}},
    "litellm_redis": {"external": {"host": "redis.example.com", "password": "${MANAGED_REDIS_PASSWORD}"}},
}


@pytest.mark.parametrize("recorded", [True, False], ids=["files", "files from before the record"])
def test_switching_to_a_managed_database_recovers_no_local_secret_into_it(config, home, recorded):
    """The local database's URL and Redis password are no value of MANAGED_*: those are not set."""
    store = rendered(config)
    if not recorded:
        written_before_the_record(home)
    write_config(config.parent, {**CONFIG, **MANAGED})
    strict = cli("render", "--strict", "--config", str(config), env=KEY)
    assert strict.returncode == 2
    assert "MANAGED_DATABASE_URL is not set (also missing: MANAGED_REDIS_PASSWORD)" in one_error_line(strict)
    result = cli("render", "--config", str(config), env=KEY)
    assert result.returncode == 0, result.stderr
    assert "recovered" not in result.stderr
    assert "MANAGED_DATABASE_URL is not set" in result.stderr and "MANAGED_REDIS_PASSWORD is not set" in result.stderr
    assert not {"MANAGED_DATABASE_URL", "MANAGED_REDIS_PASSWORD"} & set(secrets.Store.load(home).values)
    litellm = env_file(home)
    assert "DATABASE_URL" not in litellm and "REDIS_PASSWORD" not in litellm
    assert store["REDIS_PASSWORD"] not in (home.env_dir / "litellm.env").read_text()


def test_from_files_written_before_the_record_a_lost_store_still_comes_back(config, home):
    store = rendered(config)
    written_before_the_record(home)
    home.secret_store.unlink()
    (home.env_dir / "litellm-postgres.env").unlink()
    result = cli("render", "--config", str(config), env=KEY)
    assert result.returncode == 0, result.stderr
    again = secrets.Store.load(home).values
    for name in ("LITELLM_SALT_KEY", "LITELLM_MASTER_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        assert again[name] == store[name], name


def test_a_store_with_a_name_twice_is_refused(config, home):
    """The last line won: a salt key appended to the store was deployed without a word."""
    salt = rendered(config)["LITELLM_SALT_KEY"]
    lines = home.secret_store.read_text().splitlines()
    first = next(n for n, line in enumerate(lines, 1) if line.startswith("LITELLM_SALT_KEY="))
    with home.secret_store.open("a") as store:
        store.write("LITELLM_SALT_KEY=sk-other\n")
    result = cli("render", "--config", str(config), env=KEY)
    assert result.returncode == 2
    error = one_error_line(result)
    assert f"{home.secret_store}:{len(lines) + 1}: LITELLM_SALT_KEY is set a second time (first on line {first})" in (
        error
    )
    assert "hint: remove one of the two lines" in result.stderr and "sk-other" not in result.stderr
    assert env_file(home)["LITELLM_SALT_KEY"] == salt


def podman_with_a_database(tmp_path) -> dict[str, str]:
    """The environment of a podman whose PostgreSQL volume exists (and which has nothing else)."""
    return fake_podman(tmp_path, {"volumes": {"systemd-litellm-postgres": str(tmp_path / "pgdata")}})


def test_a_salt_key_other_than_the_deployed_one_is_refused_by_render(config, home, tmp_path):
    salt = rendered(config)["LITELLM_SALT_KEY"]
    text = home.secret_store.read_text()
    home.secret_store.write_text(text.replace(f"LITELLM_SALT_KEY={salt}", "LITELLM_SALT_KEY=sk-edited"))
    database = podman_with_a_database(tmp_path)
    before = (home.env_dir / "litellm.env").read_bytes()
    result = cli("render", "--config", str(config), env={**KEY, **database})
    assert result.returncode == 2
    error = one_error_line(result)
    assert f"{home.secret_store}: LITELLM_SALT_KEY differs from the one the deployment holds" in error
    assert str(home.env_dir / "litellm.env") in error and "every stored credential unreadable" in error
    assert "sk-edited" not in result.stderr and salt not in result.stderr
    assert (home.env_dir / "litellm.env").read_bytes() == before
    # Without a database (no volume), nothing is locked out: the store's is deployed.
    assert cli("render", "--config", str(config), env=KEY).returncode == 0
    assert env_file(home)["LITELLM_SALT_KEY"] == "sk-edited"


def test_a_lost_store_takes_no_other_salt_key_from_secrets_set(config, home, tmp_path):
    salt = rendered(config)["LITELLM_SALT_KEY"]
    home.secret_store.unlink()
    database = podman_with_a_database(tmp_path)
    argv = ["secrets", "set", "LITELLM_SALT_KEY", "--config", str(config)]
    refused = cli(*argv, input="sk-another\n", env=database)
    assert refused.returncode == 2
    assert "LITELLM_SALT_KEY: the deployment in use holds another value" in one_error_line(refused)
    assert "hint: `blueprint render` puts the deployment's value back" in refused.stderr
    assert not home.secret_store.exists()
    same = cli(*argv, input=f"{salt}\n", env=database)
    assert same.returncode == 0, same.stderr
    home.secret_store.unlink()
    assert cli(*argv, input="sk-another\n").returncode == 0, "no volume: no database made with the old one"


def test_a_lost_store_takes_no_other_salt_key_from_a_backup_unless_told(config, home, tmp_path):
    salt = rendered(config)["LITELLM_SALT_KEY"]
    home.secret_store.unlink()
    archive = config_backup(
        tmp_path, {"config/blueprint-config.json": GOOD, "secrets/secrets.env": b"LITELLM_SALT_KEY=sk-backup-salt\n"}
    )
    refused = cli("restore", "config", str(archive), "--yes", "--config", str(config))
    assert refused.returncode == 2
    error = one_error_line(refused)
    assert "LITELLM_SALT_KEY differs from the one in use" in error and str(home.env_dir / "litellm.env") in error
    assert "--replace-salt-key" in refused.stderr and not home.secret_store.exists()
    argv = ["restore", "config", str(archive), "--yes", "--replace-salt-key", "--config", str(config)]
    assert cli(*argv).returncode == 0
    # Told so, the render that follows deploys it, even with the database there.
    result = cli("render", "--config", str(config), env={**KEY, **podman_with_a_database(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert env_file(home)["LITELLM_SALT_KEY"] == "sk-backup-salt" != salt


def test_a_backups_salt_key_put_back_where_nothing_was_rendered_installs_nothing(config, home, tmp_path):
    """`restore config --replace-salt-key` on a new machine made a manifest to record the choice,
    after which ps said the copy of the config was missing instead of that nothing is installed."""
    archive = config_backup(
        tmp_path, {"config/blueprint-config.json": GOOD, "secrets/secrets.env": b"LITELLM_SALT_KEY=sk-backup-salt\n"}
    )
    argv = ["restore", "config", str(archive), "--yes", "--replace-salt-key", "--config", str(config)]
    assert cli(*argv).returncode == 0
    assert not home.manifest.exists()
    assert "nothing is installed" in one_error_line(cli("ps"))
    assert cli("render", "--config", str(config), env=KEY).returncode == 0
    assert env_file(home)["LITELLM_SALT_KEY"] == "sk-backup-salt"


def _only_the_database_url_left(config, home) -> str:
    """A rendered gateway whose store and PostgreSQL environment file are lost: the password is
    held only in DATABASE_URL, made from it. Returns that password."""
    password = rendered(config)["POSTGRES_PASSWORD"]
    home.secret_store.unlink()
    (home.env_dir / "litellm-postgres.env").unlink()
    return password


def test_a_password_held_only_in_the_database_url_is_not_replaced(config, home, tmp_path):
    """Only a variable named POSTGRES_PASSWORD counted: `secrets set POSTGRES_PASSWORD` stored
    another, and the render after it wrote DATABASE_URL with it, locking LiteLLM out."""
    password = _only_the_database_url_left(config, home)
    database = podman_with_a_database(tmp_path)
    argv = ["secrets", "set", "POSTGRES_PASSWORD", "--config", str(config)]
    refused = cli(*argv, input="sk-different\n", env=database)
    assert refused.returncode == 2
    error = one_error_line(refused)
    assert "POSTGRES_PASSWORD: the deployment in use holds another value" in error
    assert str(home.env_dir / "litellm.env") in error and "sk-different" not in refused.stderr
    assert not home.secret_store.exists()
    # Put in the store by hand, render refuses it too, and DATABASE_URL stays as it was.
    home.secret_store.write_text("POSTGRES_PASSWORD=sk-different\n")
    home.secret_store.chmod(0o600)
    before = (home.env_dir / "litellm.env").read_bytes()
    result = cli("render", "--config", str(config), env={**KEY, **database})
    assert result.returncode == 2
    assert "POSTGRES_PASSWORD differs from the one the deployment holds" in one_error_line(result)
    assert (home.env_dir / "litellm.env").read_bytes() == before
    # The password in use is taken, however it comes in.
    home.secret_store.unlink()
    assert cli(*argv, input=f"{password}\n", env=database).returncode == 0


def test_replacing_the_salt_key_from_a_backup_never_replaces_the_database_password(config, home, tmp_path):
    """--replace-salt-key speaks of the salt key only: with the store lost, the backup's
    POSTGRES_PASSWORD went in with it, and the next render put it in DATABASE_URL."""
    password = _only_the_database_url_left(config, home)
    store = b"LITELLM_SALT_KEY=sk-backup-salt\nPOSTGRES_PASSWORD=sk-backup-password\n"
    archive = config_backup(tmp_path, {"config/blueprint-config.json": GOOD, "secrets/secrets.env": store})
    argv = ["restore", "config", str(archive), "--yes", "--replace-salt-key", "--config", str(config)]
    refused = cli(*argv)
    assert refused.returncode == 2
    error = one_error_line(refused)
    assert "POSTGRES_PASSWORD differs from the one in use" in error and str(home.env_dir / "litellm.env") in error
    assert "sk-backup-password" not in refused.stderr and not home.secret_store.exists()
    same = b"LITELLM_SALT_KEY=sk-backup-salt\nPOSTGRES_PASSWORD=" + password.encode() + b"\n"
    archive = config_backup(tmp_path, {"config/blueprint-config.json": GOOD, "secrets/secrets.env": same})
    assert cli(*argv).returncode == 0
    result = cli("render", "--config", str(config), env={**KEY, **podman_with_a_database(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert env_file(home)["LITELLM_SALT_KEY"] == "sk-backup-salt"
    assert unquote(urlsplit(env_file(home)["DATABASE_URL"]).password) == password


def _orphan_in_manifest(home, path: Path, entry: dict) -> None:
    """Make the manifest claim `path` (which holds b"x\\n") as a file blueprint wrote and no longer renders."""
    manifest = json.loads(home.manifest.read_text())
    manifest["files"][str(path)] = {**entry, "hashes": [engine.digest(b"x\n")]}
    home.manifest.write_text(json.dumps(manifest))
    home.stamp.unlink(missing_ok=True)


@pytest.mark.parametrize(
    "entry",
    [
        {"kind": "container", "unit": "evil.service", "restarts": ["-H", "root@evil.example"]},
        {"kind": "timer", "unit": "--host=root@evil.example.timer"},
        {"kind": "volume", "unit": "evil-volume.service", "resource": "x; rm -rf ~"},
    ],
)
def test_a_manifest_entry_that_names_an_option_reaches_no_command(config, home, tmp_path, entry):
    rendered(config)
    evil = home.unit_dir / "evil.container"
    evil.write_bytes(b"x\n")
    _orphan_in_manifest(home, evil, entry)
    world = tmp_path / "systemd.json"
    env = {**KEY, **fake_systemctl(world)}
    result = cli("apply", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    calls = [f.read_text() for f in (Path(f"{world}.log"), Path(f"{world}.queries")) if f.exists()]
    assert calls and not any("evil" in call or " -H" in call for call in calls), calls
    assert "rm -rf" not in result.stderr
    assert evil.read_bytes() == b"x\n"  # not known to be ours any more: left where it is


def test_a_manifest_cannot_send_a_render_outside_its_folders(config, home):
    """A listed file under none of blueprint's folders, or under one only by its name (`..`), is
    never removed, however well its hash matches."""
    rendered(config)
    outside = home.home / ".bashrc"
    outside.write_bytes(b"x\n")
    for listed in (outside, home.unit_dir / ".." / ".." / ".." / ".bashrc"):
        _orphan_in_manifest(home, listed, {"kind": "mounted"})
        assert not engine.may_touch(listed, engine.roots(home))
        result = cli("render", "--config", str(config), env=KEY)
        assert result.returncode == 0, result.stderr
        assert outside.read_bytes() == b"x\n"
    assert engine.may_touch(home.unit_dir / "litellm" / "litellm.yaml", engine.roots(home))


@pytest.mark.parametrize("path", [None, ""], ids=["unset", "empty"])
def test_the_fast_path_and_the_full_path_find_podman_by_one_rule(tmp_path, monkeypatch, path):
    """The fast path searched the current folder for PATH="" and the default path for an unset PATH;
    Quadlet's detection found nothing for the first and this process's PATH for the second: the
    fingerprint and the render could disagree on which podman the units are written for."""
    from blueprint import fastpath, quadlet

    fake = tmp_path / "podman"
    fake.write_text("#!/bin/sh\necho 'podman version 4.3.1'\n")
    fake.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")  # this process's, not the render's
    environ = {} if path is None else {"PATH": path}
    found = fastpath.which("podman", environ)
    target = quadlet.Podman.target("auto", environ)
    assert str(fake) not in (found, target.detected_from)
    assert found == target.detected_from
