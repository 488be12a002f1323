"""The command line's wiring: every --help works and teaches, entry points, exit codes, streams."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys

import click
import jsonschema
import pytest
from click.testing import CliRunner

from blueprint.cli import cli as click_group
from tests.conftest import ROOT, cli, write_config


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    """Every command and group, walked from the top, so a new one is checked without a list to keep."""
    found = [list(prefix)]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append([*prefix, name])
    return found


COMMANDS = _commands(click_group)
# Words from documents outside the repository, which a user of blueprint has never seen.
OUTSIDE = re.compile(r"\bseeds?\b|\.\./shared|\bissue \d+", re.IGNORECASE)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "blueprint")
def test_every_command_has_help(command):
    result = CliRunner().invoke(click_group, [*command, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    assert len(result.output.splitlines()) > 4
    cut = [line for line in result.output.splitlines() if line.rstrip().endswith("...") and "[" not in line]
    assert not cut, f"a description Click cut short: {cut}"
    assert not OUTSIDE.search(result.output)


def test_no_words_from_outside_the_repository_in_what_users_read():
    shipped = [ROOT / "README.md", ROOT / "blueprint-config.json", ROOT / "njk/README.md"]
    for folder, pattern in (("blueprint", "*.py"), ("njk", "*.njk"), ("schemas", "*.json")):
        shipped += sorted((ROOT / folder).rglob(pattern))
    found = [
        f"{path.relative_to(ROOT)}:{match[0]}"
        for path in shipped
        for match in [OUTSIDE.search(path.read_text())]
        if match
    ]
    assert not found


def test_top_level_help_teaches_the_first_run(home):
    kept = home.home / ".cache/blueprint"
    assert not kept.exists()
    first = cli("--help", env={"COLUMNS": "80"})  # rendered by Click, then kept
    assert len(list(kept.glob("help-*-80.txt"))) == 1
    second = cli("--help", env={"COLUMNS": "80"})  # the kept copy
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    for word in ("blueprint init", "systemctl --user daemon-reload", "blueprint apply", "secrets set", "upgrade"):
        assert word in first.stdout
    wide = cli("--help", env={"COLUMNS": "200"})
    assert wide.stdout != first.stdout, "another terminal width is rendered anew"


def test_python_dash_m_works(home, tmp_path):
    result = subprocess.run([sys.executable, "-m", "blueprint", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "blueprint" in result.stdout


def test_schema_is_valid_draft_2020_12_and_printed_whole(home):
    result = cli("schema")
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] and schema["$schema"].endswith("2020-12/schema")
    assert schema == json.loads((ROOT / "schemas/blueprint-config.schema.json").read_text())


def test_every_property_has_a_description():
    schema = json.loads((ROOT / "schemas/blueprint-config.schema.json").read_text())
    missing = []

    def walk(node, where):
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if "description" not in sub and "$ref" not in sub:
                    missing.append(f"{where}/{name}")
                elif "$ref" in sub and "description" not in sub:
                    target = schema["$defs"][sub["$ref"].split("/")[-1]]
                    if "description" not in target:
                        missing.append(f"{where}/{name}")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(schema, "")
    assert missing == []


def test_shipped_default_config_validates_against_the_schema():
    schema = json.loads((ROOT / "schemas/blueprint-config.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads((ROOT / "blueprint-config.json").read_text()))


def test_default_config_is_used_outside_a_project(home, tmp_path):
    """No ./blueprint-config.json and no --config: the shipped default renders."""
    result = cli("render", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (home.unit_dir / "litellm/litellm@.container").exists()


def test_blueprint_config_env_var(home, tmp_path):
    config = write_config(tmp_path, {"llm_providers": {"ollama": {"models": ["llama3.2"]}}}, "mine.json")
    result = cli("validate", env={"BLUEPRINT_CONFIG": str(config)})
    assert result.returncode == 0 and "mine.json: valid" in result.stderr


def test_usage_errors_exit_2(home):
    result = cli("render", "--no-such-option")
    assert result.returncode == 2 and "No such option" in result.stderr
    result = cli("frobnicate")
    assert result.returncode == 2


def test_file_system_errors_are_one_clear_line(home, tmp_path, monkeypatch, capsys):
    from blueprint import cli as cli_module
    from blueprint import pipeline

    home.state_dir.mkdir(parents=True)
    home.manifest.mkdir()  # a directory where the manifest should be
    config = write_config(tmp_path, {"llm_providers": {"ollama": {"models": ["llama3.2"]}}})
    result = cli("render", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith(f"blueprint: error: {home.manifest}: not a regular file (a folder)\nhint: ")
    assert "Traceback" not in result.stderr

    def full(options, **_):
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/units/litellm.yaml")

    monkeypatch.setattr(pipeline, "prepare", full)
    assert cli_module.run(["render", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("blueprint: error: /srv/units/litellm.yaml: No space left on device\nhint: ")


def one_error(result) -> str:
    """The one line a refused command prints, and its hint: nothing else."""
    lines = result.stderr.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("blueprint: error: ")]
    assert "Traceback" not in result.stderr and len(errors) == 1, result.stderr
    assert all(line.startswith("hint: ") for line in lines[errors[0] + 1 :]), result.stderr
    return lines[errors[0]]


@pytest.mark.parametrize(
    "argv",
    [
        ["upgrade", "--to", "v1.99.5\nblueprint: note: upgraded, all healthy"],
        ["init", "--provider", "x\nblueprint: note: all healthy"],
        ["init", "--provider", "x\x1b[2K\rblueprint: note: all healthy"],
        ["restore", "x\u2028blueprint: note: all healthy"],
    ],
    ids=["upgrade --to", "init --provider", "an escape sequence", "a Unicode line separator"],
)
def test_a_value_given_cannot_forge_a_line_of_output(home, tmp_path, argv):
    config = write_config(tmp_path, {"llm_providers": {"ollama": {"models": ["llama3.2"]}}})
    result = cli(*argv, *(["--config", str(config)] if argv[0] == "upgrade" else []), cwd=tmp_path)
    assert result.returncode == 2
    line = one_error(result)
    assert "all healthy" in line and not any(c in line for c in "\x1b\r\u2028"), line


def test_a_path_said_cannot_forge_a_line_of_output(home, tmp_path):
    """A config named with a newline printed `blueprint: error: FORGED` as a line of its own; the
    second render is the fast path's, which names the config too."""
    config = write_config(tmp_path, {"podman_version": "5.4", "llm_providers": {"ollama": {"models": ["m"]}}})
    forged = tmp_path / "x\nblueprint: error: FORGED\u2028blueprint: note: \x1b[2Kall healthy"
    forged.write_bytes(config.read_bytes())
    said = []
    for command in ("validate", "render", "render"):
        result = cli(command, "--config", str(forged), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert not any(line.startswith("blueprint: error") for line in result.stderr.splitlines()), result.stderr
        assert "x\\nblueprint: error: FORGED\\u2028blueprint: note: \\x1b[2Kall healthy" in result.stderr
        said.append(result.stderr)
    assert "files up to date, nothing to do" in said[-1], "the fast path"


@pytest.mark.parametrize("answer", ["", "n\n"], ids=["no answer", "no"])
def test_a_restore_not_confirmed_restores_nothing_and_says_so(home, tmp_path, answer):
    """No answer (the end of input) was "aborted", exit 130, as if interrupted: it is a no, as
    uninstall's question takes it."""
    config = write_config(tmp_path, {"llm_providers": {"ollama": {"models": ["m"]}}})
    before = config.read_bytes()
    backup = tmp_path / "config-20260101T000000Z.tar.gz"
    backup.write_bytes(b"never read")
    result = cli("restore", "config", str(backup), "--config", str(config), input=answer)
    assert result.returncode == 1, result.stderr
    assert result.stderr.endswith("blueprint: nothing was restored\n") and "aborted" not in result.stderr
    assert config.read_bytes() == before


def test_output_survives_a_terminal_that_cannot_encode_it(home, tmp_path):
    model = {"id": "gpt-4o", "mock_response": "日本 é"}
    openai = {"api_key": "${OPENAI_API_KEY}", "models": [model]}
    config = write_config(tmp_path, {"llm_providers": {"openai": openai}})
    result = subprocess.run(
        [str(ROOT / ".venv/bin/blueprint"), "diff", "--config", str(config)],
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "latin-1", "OPENAI_API_KEY": "sk-x"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "mock_response: \\u65e5\\u672c é" in result.stdout.decode("latin-1")


@pytest.mark.parametrize(
    "value, message",
    [("", "an empty path names no config"), ("/", "/: not a regular file (a folder)")],
    ids=["empty", "a folder"],
)
def test_a_config_option_that_names_no_file_is_one_line(home, value, message):
    """--config "" rendered the example shipped with blueprint; a folder gave Click's usage text."""
    result = cli("render", "--config", value)
    assert result.returncode == 2
    assert message in one_error(result)
    assert not home.home.joinpath(".config").exists()


def in_a_deleted_folder(tmp_path, *argv: str) -> subprocess.CompletedProcess:
    script = 'mkdir gone && cd gone && rmdir ../gone && exec "$@"'
    return subprocess.run(
        ["sh", "-c", script, "sh", str(ROOT / ".venv/bin/blueprint"), *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_deleted_current_folder_is_named_and_absolute_paths_still_work(home, tmp_path):
    """Every command said "No such file or directory", naming nothing, even with an absolute --config."""
    config = write_config(tmp_path, {"podman_version": "5.4", "llm_providers": {"ollama": {"models": ["m"]}}})
    rendered = in_a_deleted_folder(tmp_path, "render", "--config", str(config))
    assert rendered.returncode == 0, rendered.stderr
    assert in_a_deleted_folder(tmp_path, "check", "--config", str(config)).returncode == 0
    for argv in (["render", "--config", "blueprint-config.json"], ["export", "kubernetes", "--out", "k8s"]):
        result = in_a_deleted_folder(tmp_path, *argv, *([] if "--config" in argv else ["--config", str(config)]))
        assert result.returncode == 2, result.stderr
        assert "the current folder no longer exists" in one_error(result)


def test_unexpected_errors_exit_3_without_traceback_unless_debug(home, monkeypatch, capsys):
    from blueprint import cli as cli_module
    from blueprint import pipeline

    def broken(options, **_):
        raise RuntimeError("something nobody planned for")

    monkeypatch.setattr(pipeline, "prepare", broken)
    assert cli_module.run(["render"]) == 3
    err = capsys.readouterr().err
    assert "unexpected error: RuntimeError: something nobody planned for" in err and "Traceback" not in err
    assert cli_module.run(["--debug", "render"]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_install_from_a_wheel_works_from_any_directory(tmp_path):
    """Templates, schema and the default config ship inside the wheel."""
    wheel_dir = tmp_path / "wheel"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    wheel = next(wheel_dir.glob("blueprint-*.whl"))
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    assert "blueprint/njk/litellm/litellm.container.njk" in names
    assert "blueprint/schemas/blueprint-config.schema.json" in names
    assert "blueprint/blueprint-config.json" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300)
    home = tmp_path / "home"
    home.mkdir()
    result = subprocess.run(
        [str(venv / "bin/blueprint"), "render"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert (home / ".config/containers/systemd/litellm/litellm@.container").exists()
