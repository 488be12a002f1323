"""Export: the gateway for another platform than Quadlet (Kubernetes)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from blueprint.cli import cli, config_option, options_for, say, say_config, short

# A namespace is a DNS label (RFC 1123), as Kubernetes checks it.
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")


def _namespace(ctx, param, value):
    if value is not None and not _NAMESPACE.match(value):
        raise click.BadParameter(f"{value!r} is not a namespace: lowercase letters, digits and -, at most 63")
    return value


@cli.group(short_help="Export the gateway for another platform (Kubernetes).")
def export():
    """Export the gateway that `blueprint render` writes as Quadlet units for another platform.

    The same config is loaded and checked the same way (same errors, same exit codes); nothing
    is written to the unit directory or the secret store.
    """


@export.command("kubernetes", short_help="Kubernetes objects: LiteLLM replicas, PostgreSQL, Redis.")
@config_option
@click.option(
    "--out",
    "-o",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per object and a kustomization.yaml into DIR instead of printing one YAML stream. "
    "DIR must be new, empty, or hold only what an earlier export wrote there, unedited.",
    metavar="DIR",
)
@click.option("--namespace", callback=_namespace, help="Put every object in this namespace.", metavar="NS")
@click.option(
    "--replicas",
    type=click.IntRange(1, 1000),
    help="LiteLLM pods, each with the workers of one litellm.replicas container. Default: litellm.replicas.",
    metavar="N",
)
@click.option(
    "--with-secrets",
    is_flag=True,
    help="Add the Secret, with the values in blueprint's secret store (written 0600 with --out). "
    "Without it the output holds no secret: it refers to Secret litellm-secrets by name.",
)
def kubernetes(config_path, out, namespace, replicas, with_secrets):
    """Export the gateway as Kubernetes objects: a ConfigMap holding the litellm.yaml that
    `blueprint render` writes, a Deployment of LiteLLM replicas (rolling updates that keep one
    serving, a PodDisruptionBudget, probes on /health/readiness and /health/liveliness), a Job
    running LiteLLM's database migrations, Services, and PostgreSQL and Redis as StatefulSets
    with volume claims (each only when the config enables it).

    \b
    One YAML stream on stdout:
      blueprint export kubernetes --namespace llm | kubectl apply -f -
    \b
    A directory, one file per object plus kustomization.yaml:
      blueprint export kubernetes --out k8s/ --namespace llm
      kubectl apply -k k8s/

    Secrets are referenced by name (Secret litellm-secrets) and never printed, unless
    --with-secrets copies them from the store (run `blueprint render` first: the export
    generates nothing). Ingress, TLS, storage classes and backups are left to the cluster.
    The host's front door is not exported: the litellm Service balances over the pods.
    Replicas x workers x sizing.db_pool_limit must fit PostgreSQL's max_connections.
    """
    from blueprint.export import kubernetes as k8s
    from blueprint.export import output

    options = options_for(config_path)
    manifests = k8s.export(options, replicas=replicas, namespace=namespace, with_secrets=with_secrets)
    say_config(manifests.config_file, manifests.origin)
    for note in manifests.notes:
        say(f"note: {note}")
    if out is None:
        if manifests.holds_secrets:
            say("warning: the output holds secrets (Secret litellm-secrets): keep it out of version control and logs")
        click.echo(output.dump(manifests.objects), nl=False)
        return
    files = output.files(manifests.objects, manifests.namespace)
    changed = output.write_directory(out, files)
    for file in files:
        if file.mode & 0o077 == 0:
            say(f"warning: {short(out / file.name)} holds secrets (mode 0600): keep it out of version control")
    say(f"{len(changed)} of {len(files)} files written to {short(out)}; apply them: kubectl apply -k {short(out)}")
