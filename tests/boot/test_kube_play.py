"""The Kubernetes export handed to a real consumer, `podman kube play` in the booted
machine, and LiteLLM answering from what it started.

bp does what a user moving to a cluster does: render (which makes the secrets), then
`blueprint export kubernetes --with-secrets --out k8s`. Podman 5.4 plays the proxy's part of the
export, the Secret, the ConfigMap holding litellm.yaml and the Deployment, and these tests send
requests to it. The other kinds are not played, because Podman does not run them:

- Service, PodDisruptionBudget: Podman skips them (no cluster network, no eviction API); the pod's
  port is published with --publish instead.
- StatefulSet (PostgreSQL): not a kind `podman kube play` knows in 5.4. Nothing needs it here: the
  stand-in LiteLLM image serves without its database (no Prisma engines on this offline machine),
  the same limit as test_gateway.py.
- Job (migrations): Podman would run it, but the migration needs Prisma, which the stand-in lacks.

What Podman does differently from a cluster, and how these tests deal with it:

- replicas: 2 becomes one pod, with the warning "Limiting replica count to 1". Asserted, so a
  Podman that starts playing replicas is noticed.
- Memory requests and limits are taken out of the Deployment before playing: crun cannot apply a
  memory limit on this machine (cgroup v1 memory controller; Host.lift_memory_limits does the same
  for the Quadlet units). The rest of the Deployment is played as exported.
- Probes: Podman turns httpGet probes into `curl -f` run inside the container, and neither the
  stand-in nor every LiteLLM image has curl; a played pod would be restarted by its startup probe
  after failureThreshold x periodSeconds (300 s). A cluster's kubelet sends the probes itself, so the
  export keeps httpGet, and these tests are done well before then.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import yaml

from tests.boot.gateway import UNIT_DIR, Gateway, config, mock_answers, refused
from tests.boot.harness import HOME, Host

pytestmark = [pytest.mark.boot, pytest.mark.xdist_group("boot")]

EXPORT = f"{HOME}/k8s"
PLAYED = ("Secret", "ConfigMap", "Deployment")
PORT = 4100  # not the Quadlet stack's 4000: the two could run side by side
CONTAINER = "litellm-pod-litellm"  # Podman names a Deployment's pod <name>-pod, its containers <pod>-<name>


@dataclass
class Played:
    objects: list[dict]  # every object the export wrote
    result: object  # `podman kube play`'s CompletedProcess
    answered: float | None  # seconds from the play's return to the first answer


def exported(host: Host) -> list[dict]:
    """Every object of the export directory, in kustomization.yaml's order."""
    kustomization = yaml.safe_load(host.read_file(f"{EXPORT}/kustomization.yaml"))
    return [
        document
        for name in kustomization["resources"]
        for document in yaml.safe_load_all(host.read_file(f"{EXPORT}/{name}"))
    ]


def playable(objects: list[dict]) -> str:
    """The objects Podman plays, as one stream, with the memory limits this machine cannot apply
    taken out (and nothing else changed)."""
    chosen = [o for o in objects if o["kind"] in PLAYED]
    for deployment in (o for o in chosen if o["kind"] == "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            container.pop("resources", None)
    return yaml.safe_dump_all(chosen, explicit_start=True, sort_keys=False)


@pytest.fixture(scope="module")
def data() -> dict:
    return config(redis=False)


@pytest.fixture(scope="module")
def played(host: Host, gateway: Gateway, data: dict):
    host.reset()
    gateway.write_config(data)
    gateway.set_secret("OPENAI_API_KEY", "sk-test-openai")
    gateway.set_secret("ANTHROPIC_API_KEY", "sk-ant-test")
    rendered = host.blueprint("render")
    assert rendered.returncode == 0, rendered.stderr
    export = host.blueprint("export", "kubernetes", "--with-secrets", "--out", "k8s")
    assert export.returncode == 0, export.stderr
    objects = exported(host)
    stream = playable(objects)
    # In a scope of its own: the pod's conmon processes must outlive the command (Host.spawn).
    play = ["podman", "kube", "play", "--publish", f"127.0.0.1:{PORT}:4000", "-"]
    result = host.spawn(play, input=stream, check=False)
    answered = gateway.wait_answering(port=PORT) if result.returncode == 0 else None
    if answered is not None:
        host.record("kube play: exported Deployment answering", answered)
    try:
        yield Played(objects, result, answered)
    finally:
        host.manager(["podman", "kube", "down", "-"], input=stream, check=False)


def test_the_export_holds_every_kind_a_cluster_needs(played):
    kinds = {o["kind"] for o in played.objects}
    # No Redis in this config: its objects are left out, PostgreSQL's are there.
    assert kinds == {"Secret", "ConfigMap", "Deployment", "Service", "StatefulSet", "Job", "PodDisruptionBudget"}
    names = {(o["kind"], o["metadata"]["name"]) for o in played.objects}
    assert ("StatefulSet", "litellm-postgres") in names and not any("redis" in name for _, name in names), names


def test_podman_plays_the_deployment_as_one_pod(host, played):
    assert played.result.returncode == 0, played.result.stderr
    assert "Limiting replica count to 1" in played.result.stderr, played.result.stderr
    state = host.podman("inspect", "--format", "{{.State.Status}}", CONTAINER).stdout.strip()
    assert state == "running"


def test_the_pod_reads_the_litellm_yaml_blueprint_renders(host, played):
    mounted = host.podman("exec", CONTAINER, "cat", "/app/config.yaml").stdout
    assert mounted == host.read_file(f"{UNIT_DIR}/litellm/litellm.yaml")


def test_the_played_gateway_answers_every_model_with_the_master_key(gateway, played, data):
    assert played.answered is not None, played.result.stderr
    key = gateway.master_key
    for model, answer in mock_answers(data).items():
        reply = gateway.chat(model, "hi", key=key, port=PORT)
        assert reply.status == 200, (model, reply.body)
        assert reply.text == answer


def test_the_played_gateway_refuses_other_keys(gateway, played):
    assert gateway.chat("gpt-4o", "hi", port=PORT).status == 401
    assert refused(gateway.chat("gpt-4o", "hi", key="sk-not-the-master-key", port=PORT))
