"""Render and apply, and the views of a render: diff, status, check, validate, schema."""

from __future__ import annotations

import click

from blueprint.cli import cli, config_option, options_for, say, say_config, short
from blueprint.errors import DriftError

STRICT_HELP = (
    "Refuse (exit 2) when a provider key or other secret is not set yet, or a field still holds a placeholder "
    "`blueprint init` wrote, instead of saying so."
)


def strict_option(function):
    return click.option("--strict", is_flag=True, help=STRICT_HELP)(function)


def _introduce(prepared, *, done: bool) -> None:
    """Which config this is, and what a person should know before reading the file lines."""
    say_config(prepared.config_file, prepared.origin)
    for warning in prepared.resolution.warnings():
        say(f"warning: {warning}")
    for note in prepared.notes(done=done):
        say(f"note: {note}")


def _report_changes(prepared, *, dry_run: bool) -> None:
    from blueprint.engine import Status

    verb = {
        Status.CREATE: ("created", "would create"),
        Status.MODIFIED: ("updated", "would update"),
        Status.ORPHAN: ("removed", "would remove"),
        Status.CONFLICT: ("overwrote", "conflict"),
    }
    for change in prepared.differing:
        reason = f" ({change.reason})" if change.status is Status.CONFLICT else ""
        say(f"{verb[change.status][dry_run]:<13} {short(change.path)}{reason}")


def _summary(outcome) -> None:
    prepared = outcome.prepared
    unchanged = len(prepared.changes) - len(prepared.differing)
    say(f"{len(outcome.written)} written, {len(outcome.removed)} removed, {unchanged} unchanged")
    actions = outcome.actions
    for note in [*actions.notes, *outcome.notes]:
        say(f"note: {note}")
    if outcome.reloaded:
        for call in outcome.systemctl:
            say("ran: " + " ".join(call))
        if not outcome.systemctl and not outcome.failure:
            say("systemd: nothing to reload or restart")
    elif not actions.empty:
        say("next: " + " && ".join(actions.commands()) + "   (or: blueprint apply)")
    _external_url(prepared)


def _external_url(prepared) -> None:
    from blueprint.model.types import Purpose

    output, site = prepared.stack.output(Purpose.SITE), prepared.stack.site
    if site is not None:
        say(f"external URL: {site.address} (named by {site.named_by}; Caddy site: {short(output.path)})")


def _render(config_path, *, dry_run=False, force=False, reload=False, restart=True, strict=False) -> None:
    from blueprint import pipeline
    from blueprint.engine import unified_diff
    from blueprint.errors import ConflictError

    options = options_for(config_path)
    if dry_run:
        prepared = pipeline.prepare(options, strict=strict)
        _introduce(prepared, done=False)
        _report_changes(prepared, dry_run=True)
        _external_url(prepared)
        say(f"dry run: {len(prepared.differing)} of {len(prepared.changes)} files would change; nothing written")
        return
    try:
        outcome = pipeline.render(options, force=force, reload=reload, restart=restart, strict=strict)
    except ConflictError as refused:
        # Show what the edit is (disk -> what blueprint would write) before refusing.
        for change in refused.conflicts:
            click.echo(unified_diff(change), nl=False)
        raise
    _introduce(outcome.prepared, done=True)
    _report_changes(outcome.prepared, dry_run=False)
    _summary(outcome)
    if outcome.failure:
        raise outcome.failure
    if reload:
        _warn_linger()


def _warn_linger() -> None:
    from blueprint.systemd import linger_enabled

    if linger_enabled() is False:
        import getpass

        say("warning: lingering is off: your services stop at logout and do not start at boot")
        say(f"hint: loginctl enable-linger {getpass.getuser()}")


@cli.command(short_help="Write units, litellm.yaml, the Caddy site and secrets' files.")
@config_option
@click.option("--dry-run", "-n", is_flag=True, help="Say what would change; write nothing.")
@click.option("--force", is_flag=True, help="Overwrite files edited by hand (see `blueprint diff` first).")
@click.option("--reload", is_flag=True, help="Then reload systemd and restart what changed (= blueprint apply).")
@click.option("--no-restart", is_flag=True, help="With --reload: reload systemd but restart nothing.")
@strict_option
def render(config_path, dry_run, force, reload, no_restart, strict):
    """Write the units, litellm.yaml, the Caddy site and the secrets' environment files.

    Everything is rendered in memory first: an error writes nothing. Files that did not change
    are not touched; a file edited by hand since blueprint wrote it stops the render (exit 1)
    unless --force. Secrets missing from the store are generated once and never again. A
    provider key that is not set yet is a warning: its models answer with an error until
    `blueprint secrets set NAME` and `blueprint apply` bring it.
    """
    _render(config_path, dry_run=dry_run, force=force, reload=reload, restart=not no_restart, strict=strict)


@cli.command(short_help="Render, then reload systemd and restart what changed.")
@config_option
@click.option("--force", is_flag=True, help="Overwrite files edited by hand.")
@click.option("--no-restart", is_flag=True, help="Reload systemd but restart nothing.")
@strict_option
def apply(config_path, force, no_restart, strict):
    """Render, then `systemctl --user daemon-reload` if a unit changed and restart exactly the
    services whose unit, litellm.yaml or secrets changed (dependencies first).

    Nothing changed: nothing is reloaded or restarted. Warns when lingering is off.
    """
    _render(config_path, force=force, reload=True, restart=not no_restart, strict=strict)


@cli.command(short_help="Show what render would change, as a unified diff.")
@config_option
def diff(config_path):
    """Show, as a unified diff on stdout, what `render` would change on disk.

    Secret files are named but their contents never shown.
    """
    from blueprint import pipeline
    from blueprint.engine import unified_diff

    prepared = pipeline.prepare(options_for(config_path))
    say_config(prepared.config_file, prepared.origin)
    for change in prepared.differing:
        click.echo(unified_diff(change), nl=False)
    if not prepared.differing:
        say(f"no differences: the {len(prepared.changes)} files match {short(prepared.config_file)}")


@cli.command(short_help="Each file's state, and the secrets not set yet.")
@config_option
def status(config_path):
    """One line per file (create, identical, modified, conflict, orphan), then every secret that
    is not set yet, and the drop-ins you keep beside the units (which blueprint never touches)."""
    from blueprint import pipeline
    from blueprint.engine import drop_ins

    prepared = pipeline.prepare(options_for(config_path))
    say_config(prepared.config_file, prepared.origin)
    for change in prepared.changes:
        reason = f"  ({change.reason})" if change.reason else ""
        click.echo(f"{change.status:<10} {short(change.path)}{reason}")
    for name, where in prepared.resolution.missing.items():
        click.echo(f"{'missing':<10} {name}  ({where}: blueprint secrets set {name})")
    for path in drop_ins(prepared.options.paths.unit_dir):
        click.echo(f"{'drop-in':<10} {short(path)}  (yours: blueprint never touches it)")


@cli.command(short_help="Exit 1 if render would change anything (CI drift check).")
@config_option
@strict_option
def check(config_path, strict):
    """Exit 1 if `render` would change anything (for CI drift checks), else 0."""
    from blueprint import pipeline

    prepared = pipeline.prepare(options_for(config_path), strict=strict)
    say_config(prepared.config_file, prepared.origin)
    differing = prepared.differing
    for change in differing:
        say(f"{change.status:<10} {short(change.path)}")
    if differing:
        raise DriftError(
            f"{len(differing)} of {len(prepared.changes)} files differ from the config",
            hint="`blueprint diff` shows how; `blueprint render` brings them in line",
        )
    say(f"{len(prepared.changes)} files match the config")


@cli.command(short_help="Check a config without writing anything.")
@config_option
@strict_option
def validate(config_path, strict):
    """Check a config: JSON syntax, schema, references, sizing, images, secrets. Writes nothing."""
    from blueprint import pipeline

    prepared = pipeline.prepare(options_for(config_path), strict=strict)  # everything a render does but write
    _introduce(prepared, done=False)
    stack = prepared.stack
    models = len(stack.gateway["model_list"]) if stack.gateway else 0
    podman = f"Podman {stack.podman.version}" + (
        f", as {stack.podman.detected_from} says" if stack.podman.detected_from else ""
    )
    counted = f"{len(stack.services)} service{'s' * (len(stack.services) != 1)}, {models} model deployment" + (
        "s" * (models != 1)
    )
    say(f"{prepared.loaded.source}: valid ({counted}, {podman})")


@cli.command(short_help="Print the JSON Schema of blueprint-config.json.")
def schema():
    """Print the JSON Schema of blueprint-config.json."""
    from blueprint.config import SCHEMA_PATH

    click.echo(SCHEMA_PATH.read_text(encoding="utf-8"), nl=False)
