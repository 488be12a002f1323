"""`blueprint export kubernetes`: no secret leaves without --with-secrets, --namespace reaches every
object, and --out writes a directory kubectl apply -k reads, never over a person's files."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
import yaml
from click.testing import CliRunner

from blueprint.cli import cli as click_group
from blueprint.errors import ConflictError, SecretError
from blueprint.export import kubernetes, output
from blueprint.model.environment import GENERATED
from tests.conftest import ROOT, cli, options, store_secrets, write_config
from tests.test_export_kubernetes import container, one, parsed

# ---- secrets ----------------------------------------------------------------------------------------


RECOGNISABLE = {
    "LITELLM_MASTER_KEY": "sk-recognisable-master-7f3a",
    "LITELLM_SALT_KEY": "sk-recognisable-salt-91bc",
    "UI_PASSWORD": "recognisable-ui-c0de",
    "POSTGRES_PASSWORD": "recognisable:pg@pass/5e1d",  # needs percent-encoding inside DATABASE_URL
    "REDIS_PASSWORD": "recognisable-redis-44aa",
    "OPENAI_API_KEY": "sk-recognisable-openai-0b0e",
}


def forms(value: str) -> list[bytes]:
    """Every way a value could show up in the output."""
    return [value.encode(), quote(value, safe="").encode(), base64.b64encode(value.encode())]


@pytest.fixture
def rendered_with_secrets(home, tmp_path):
    config = write_config(
        tmp_path, {"llm_providers": {"openai": {"api_key": "${OPENAI_API_KEY}", "models": ["gpt-4o"]}}}
    )
    store_secrets(home, **RECOGNISABLE)
    result = cli("render", "--config", str(config))
    assert result.returncode == 0, result.stderr
    return config


def test_no_secret_value_leaves_without_with_secrets(rendered_with_secrets, tmp_path):
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "blueprint"),
            "export",
            "kubernetes",
            "--config",
            str(rendered_with_secrets),
        ],
        capture_output=True,
        env=os.environ,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert b"kind: Deployment" in result.stdout
    for value in RECOGNISABLE.values():
        for form in forms(value):
            assert form not in result.stdout and form not in result.stderr, value
    out = tmp_path / "k8s"
    assert cli("export", "kubernetes", "--config", str(rendered_with_secrets), "--out", str(out)).returncode == 0
    for path in out.iterdir():
        for value in RECOGNISABLE.values():
            assert not any(form in path.read_bytes() for form in forms(value)), (path.name, value)


def test_with_secrets_the_secret_holds_them_and_stderr_warns(rendered_with_secrets):
    result = cli("export", "kubernetes", "--config", str(rendered_with_secrets), "--with-secrets")
    assert result.returncode == 0, result.stderr
    assert "warning: the output holds secrets" in result.stderr
    for value in RECOGNISABLE.values():
        assert value not in result.stderr and quote(value, safe="") not in result.stderr
    objects = list(yaml.safe_load_all(result.stdout))
    secret = one(objects, "Secret", "litellm-secrets")
    assert secret["type"] == "Opaque"
    data = secret["stringData"]
    for name, value in RECOGNISABLE.items():
        assert data[name] == value
    url = urlsplit(data["DATABASE_URL"])
    assert (url.hostname, url.port, url.username) == ("litellm-postgres", 5432, "litellm")
    assert unquote(url.password) == RECOGNISABLE["POSTGRES_PASSWORD"]
    # The values appear in the Secret and nowhere else.
    others = yaml.safe_dump_all([o for o in objects if o["kind"] != "Secret"])
    for value in RECOGNISABLE.values():
        assert value not in others


def test_with_secrets_and_out_the_secret_file_alone_is_0600(rendered_with_secrets, tmp_path):
    tmp_path.chmod(0o755)
    parent_mode = stat.S_IMODE(tmp_path.stat().st_mode)
    out = tmp_path / "k8s"
    result = cli("export", "kubernetes", "--config", str(rendered_with_secrets), "--out", str(out), "--with-secrets")
    assert result.returncode == 0, result.stderr
    assert "secret-litellm-secrets.yaml holds secrets (mode 0600)" in result.stderr
    for path in out.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        holds = any(value.encode() in path.read_bytes() for value in RECOGNISABLE.values())
        assert holds == (path.name == "secret-litellm-secrets.yaml"), path.name
        assert mode == (0o600 if holds else 0o644), (path.name, oct(mode))
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE(tmp_path.stat().st_mode) == parent_mode, "the folder holding --out was narrowed"


def test_with_secrets_refuses_when_render_has_not_made_them(home, tmp_path):
    config = write_config(tmp_path, {"llm_providers": {"openai": {"models": ["gpt-4o"]}}})
    with pytest.raises(SecretError) as refused:
        kubernetes.export(options(config), with_secrets=True)
    assert "blueprint render" in refused.value.hint
    assert all(name in refused.value.message for name in GENERATED)
    assert not home.secret_store.exists(), "the export generated or stored a secret"


def test_a_provider_key_not_set_yet_is_optional_and_left_out(home, tmp_path):
    config = write_config(tmp_path, {"llm_providers": {"openai": {"models": ["gpt-4o"]}}})
    store_secrets(home, **{name: f"stand-in-{name.lower()}" for name in GENERATED})
    made = kubernetes.export(options(config), with_secrets=True)
    objects = parsed(made)
    assert "OPENAI_API_KEY" not in one(objects, "Secret")["stringData"]
    ref = next(e for e in container(one(objects, "Deployment"))["env"] if e["name"] == "OPENAI_API_KEY")
    assert ref["valueFrom"]["secretKeyRef"]["optional"] is True
    master = next(e for e in container(one(objects, "Deployment"))["env"] if e["name"] == "LITELLM_MASTER_KEY")
    assert "optional" not in master["valueFrom"]["secretKeyRef"]
    assert any("OPENAI_API_KEY is not set" in note for note in made.notes)


# ---- namespace and --out -------------------------------------------------------------------------


def test_namespace_is_set_on_every_object_and_the_kustomization(home, tmp_path):
    config = ROOT / "blueprint-config.json"
    objects = parsed(kubernetes.export(options(config), namespace="llm-gateway"))
    assert {o["metadata"].get("namespace") for o in objects} == {"llm-gateway"}
    assert all("namespace" not in o["metadata"] for o in parsed(kubernetes.export(options(config))))
    out = tmp_path / "k8s"
    assert (
        cli("export", "kubernetes", "--config", str(config), "--out", str(out), "--namespace", "llm-gateway").returncode
        == 0
    )
    assert yaml.safe_load((out / "kustomization.yaml").read_text())["namespace"] == "llm-gateway"
    assert cli("export", "kubernetes", "--namespace", "Not_A_Label").returncode == 2


def test_out_writes_one_file_per_object_and_a_kustomization_listing_exactly_them(home, tmp_path):
    out = tmp_path / "k8s"
    result = cli("export", "kubernetes", "--config", str(ROOT / "blueprint-config.json"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization" and "namespace" not in kustomization
    objects_here = sorted(p.name for p in out.iterdir() if p.name not in ("kustomization.yaml", output.RECORD))
    assert sorted(kustomization["resources"]) == objects_here
    exported = parsed(kubernetes.export(options(ROOT / "blueprint-config.json")))
    from_files = []
    for name in kustomization["resources"]:
        documents = list(yaml.safe_load_all((out / name).read_text()))
        assert len(documents) == 1
        obj = documents[0]
        assert name == f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644
        from_files.append(obj)
    assert from_files == exported  # the same objects, in the order they are best applied


def test_out_refuses_a_directory_it_did_not_write_and_a_file_edited_since(home, tmp_path):
    config = str(ROOT / "blueprint-config.json")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "deployment.yaml").write_text("kind: Deployment  # mine\n")
    refused = cli("export", "kubernetes", "--config", config, "--out", str(theirs))
    assert refused.returncode == 1 and "not written by `blueprint export kubernetes`" in refused.stderr
    assert [p.name for p in theirs.iterdir()] == ["deployment.yaml"]

    out = tmp_path / "k8s"
    assert cli("export", "kubernetes", "--config", config, "--out", str(out)).returncode == 0
    again = cli("export", "kubernetes", "--config", config, "--out", str(out))
    assert again.returncode == 0 and "0 of 10 files written" in again.stderr  # identical files are left alone
    edited = out / "deployment-litellm.yaml"
    edited.write_text(edited.read_text().replace("replicas: 2", "replicas: 5"))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    refused = cli("export", "kubernetes", "--config", config, "--out", str(out), "--replicas", "3")
    assert refused.returncode == 1 and "deployment-litellm.yaml (edited since the export wrote it)" in refused.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    (out / "notes.txt").write_text("mine")
    edited.unlink()
    refused = cli("export", "kubernetes", "--config", config, "--out", str(out))
    assert refused.returncode == 1 and "notes.txt (not written by the export)" in refused.stderr
    assert (out / "notes.txt").read_text() == "mine"


def test_out_removes_what_an_earlier_export_wrote_and_this_one_does_not(rendered_with_secrets, tmp_path):
    out = tmp_path / "k8s"
    config = str(rendered_with_secrets)
    assert cli("export", "kubernetes", "--config", config, "--out", str(out), "--with-secrets").returncode == 0
    assert (out / "secret-litellm-secrets.yaml").exists()
    assert cli("export", "kubernetes", "--config", config, "--out", str(out), "--replicas", "1").returncode == 0
    assert not (out / "secret-litellm-secrets.yaml").exists()
    assert not (out / "poddisruptionbudget-litellm.yaml").exists()
    listed = yaml.safe_load((out / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(
        p.name for p in out.iterdir() if p.name not in ("kustomization.yaml", output.RECORD)
    )


def test_a_record_cannot_point_outside_its_directory(home, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    out = tmp_path / "k8s"
    out.mkdir()
    (out / output.RECORD).write_text(
        json.dumps({"written_by": "blueprint export kubernetes", "files": {"../victim.txt": []}})
    )
    with pytest.raises(ConflictError):
        output.write_directory(
            out, output.files(kubernetes.export(options(ROOT / "blueprint-config.json")).objects, None)
        )
    assert victim.read_text() == "keep"


# ---- the command line ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["export"], ["export", "kubernetes"]])
def test_help_teaches_both_forms(command):
    result = CliRunner().invoke(click_group, [*command, "--help"])
    assert result.exit_code == 0, result.output
    if command == ["export", "kubernetes"]:
        for example in ("| kubectl apply -f -", "--out k8s/", "kubectl apply -k k8s/", "--with-secrets", "--namespace"):
            assert example in result.output
    else:
        assert "kubernetes" in result.output
