"""The command line: the only module that knows Click.

Each command parses its options, calls a library function and reports. Status words go to
stderr; real output (diffs, the schema, rendered text) to stdout, so pipes work. One handler maps
errors to exit codes: usage or config error 2, conflict or drift 1, Ctrl-C 130, unexpected 3
(traceback only with --debug).
"""

from __future__ import annotations

import os
import sys

import click

from blueprint import __version__
from blueprint.errors import BlueprintError, DriftError

CONFIG_HELP = "Config file. Default: $BLUEPRINT_CONFIG, else ./blueprint-config.json, else the shipped default."


def _say(message: str) -> None:
    click.echo(f"blueprint: {message}", err=True)


def _short(path) -> str:
    text = str(path)
    home = os.path.expanduser("~")
    return "~" + text[len(home) :] if home not in ("", "/") and text.startswith(home + "/") else text


def config_option(function):
    return click.option(
        "--config",
        "-c",
        "config_path",
        type=click.Path(dir_okay=False),
        envvar="BLUEPRINT_CONFIG",
        show_envvar=True,
        help=CONFIG_HELP,
    )(function)


def _options(config_path):
    from blueprint.pipeline import Options

    return Options.from_env(config_path)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show the traceback of unexpected errors.")
@click.version_option(__version__, prog_name="blueprint")
def cli(debug: bool) -> None:
    """Run a LiteLLM gateway (LiteLLM + PostgreSQL + Redis, behind Caddy) as rootless Podman Quadlet
    services, from one JSON file.

    \b
    First run:
      blueprint render                    # write units, litellm.yaml, Caddy site; make secrets
      systemctl --user daemon-reload      # Quadlet turns the units into services
      systemctl --user start litellm      # or: blueprint apply (reload + restart what changed)
    \b
    Day to day:
      blueprint status | diff | check     # compare the config with what is on disk
      blueprint secrets set OPENAI_API_KEY < key.txt
      blueprint backup list ; blueprint verify

    Units go to $XDG_CONFIG_HOME/containers/systemd (default ~/.config/containers/systemd).
    Files you edit by hand are never overwritten without --force.
    """
    # --debug is read by run(), the error handler, before Click parses anything.


# ---- render / apply ------------------------------------------------------------------------


def _report_changes(prepared, *, dry_run: bool) -> None:
    from blueprint.apply import IDENTICAL

    verb = (
        {"create": "would create", "modified": "would update", "orphan": "would remove", "conflict": "conflict"}
        if dry_run
        else {"create": "created", "modified": "updated", "orphan": "removed", "conflict": "overwrote"}
    )
    for change in prepared.changes:
        if change.status != IDENTICAL:
            reason = f" ({change.reason})" if change.status == "conflict" else ""
            _say(f"{verb[change.status]:<13} {_short(change.path)}{reason}")
    for note in prepared.notes:
        _say(f"note: {note}")


def _summary(outcome) -> None:
    prepared = outcome.prepared
    unchanged = sum(1 for c in prepared.changes if c.status == "identical")
    _say(f"{len(outcome.written)} written, {len(outcome.removed)} removed, {unchanged} unchanged")
    actions = outcome.actions
    for note in actions.notes:
        _say(f"note: {note}")
    if outcome.reloaded:
        for call in outcome.systemctl:
            _say("ran: " + " ".join(call))
        if not outcome.systemctl:
            _say("systemd: nothing to reload or restart")
    elif not actions.empty:
        steps = []
        if actions.stop:
            steps.append("systemctl --user stop " + " ".join(actions.stop))
        if actions.disable:
            steps.append("systemctl --user disable --now " + " ".join(actions.disable))
        if actions.daemon_reload:
            steps.append("systemctl --user daemon-reload")
        if actions.restart:
            steps.append("systemctl --user restart " + " ".join(actions.restart))
        if actions.enable:
            steps.append("systemctl --user enable --now " + " ".join(actions.enable))
        _say("next: " + " && ".join(steps) + "   (or: blueprint apply)")
    if prepared.stack.site:
        site_file = _short(prepared.options.paths.unit_dir / prepared.stack.site_path)
        _say(f"external URL: {prepared.stack.site.address} (Caddy site: {site_file})")


def _render(config_path, *, dry_run=False, force=False, reload=False, restart=True) -> None:
    from blueprint import pipeline
    from blueprint.apply import CONFLICT, unified_diff
    from blueprint.errors import ConflictError

    prepared = pipeline.prepare(_options(config_path))
    if dry_run:
        _report_changes(prepared, dry_run=True)
        _say(f"dry run: {len(prepared.pending)} of {len(prepared.changes)} files would change; nothing written")
        return
    try:
        outcome = pipeline.write(prepared, force=force, reload=reload, restart=restart)
    except ConflictError:
        # Show what the edit is (disk -> what blueprint would write) before refusing.
        for change in prepared.changes:
            if change.status == CONFLICT:
                click.echo(unified_diff(change), nl=False)
        raise
    _report_changes(prepared, dry_run=False)
    _summary(outcome)
    if reload:
        _warn_linger()


def _warn_linger() -> None:
    from blueprint.systemd import linger_enabled

    if linger_enabled() is False:
        _say("warning: lingering is off: your services stop at logout and do not start at boot")
        import getpass

        _say(f"hint: loginctl enable-linger {getpass.getuser()}")


@cli.command()
@config_option
@click.option("--dry-run", "-n", is_flag=True, help="Say what would change; write nothing.")
@click.option("--force", is_flag=True, help="Overwrite files edited by hand (see `blueprint diff` first).")
@click.option("--reload", is_flag=True, help="Then reload systemd and restart what changed (= blueprint apply).")
@click.option("--no-restart", is_flag=True, help="With --reload: reload systemd but restart nothing.")
def render(config_path, dry_run, force, reload, no_restart):
    """Write the units, litellm.yaml, the Caddy site and the secrets' environment files.

    Everything is rendered in memory first: an error writes nothing. Files that did not change
    are not touched; a file edited by hand since blueprint wrote it stops the render (exit 1)
    unless --force. Secrets missing from the store are generated once and never again.
    """
    _render(config_path, dry_run=dry_run, force=force, reload=reload, restart=not no_restart)


@cli.command()
@config_option
@click.option("--force", is_flag=True, help="Overwrite files edited by hand.")
@click.option("--no-restart", is_flag=True, help="Reload systemd but restart nothing.")
def apply(config_path, force, no_restart):
    """Render, then `systemctl --user daemon-reload` if a unit changed and restart exactly the
    services whose unit, litellm.yaml or secrets changed (dependencies first).

    Nothing changed: nothing is reloaded or restarted. Warns when lingering is off.
    """
    _render(config_path, force=force, reload=True, restart=not no_restart)


@cli.command()
@config_option
def diff(config_path):
    """Show, as a unified diff on stdout, what `render` would change on disk.

    Secret files are named but their contents never shown.
    """
    from blueprint import pipeline
    from blueprint.apply import unified_diff

    prepared = pipeline.prepare(_options(config_path))
    for change in prepared.pending:
        click.echo(unified_diff(change), nl=False)


@cli.command()
@config_option
def status(config_path):
    """One line per file: create, identical, modified, conflict or orphan."""
    from blueprint import pipeline

    prepared = pipeline.prepare(_options(config_path))
    for change in prepared.changes:
        reason = f"  ({change.reason})" if change.reason else ""
        click.echo(f"{change.status:<10} {_short(change.path)}{reason}")


@cli.command()
@config_option
def check(config_path):
    """Exit 1 if `render` would change anything (for CI drift checks), else 0."""
    from blueprint import pipeline

    prepared = pipeline.prepare(_options(config_path))
    pending = prepared.pending
    for change in pending:
        _say(f"{change.status:<10} {_short(change.path)}")
    if pending:
        raise DriftError(
            f"{len(pending)} of {len(prepared.changes)} files differ from the config",
            hint="`blueprint diff` shows how; `blueprint render` brings them in line",
        )
    _say(f"{len(prepared.changes)} files match the config")


@cli.command()
@config_option
def validate(config_path):
    """Check a config: JSON syntax, schema, references, sizing, images, secrets. Writes nothing."""
    from blueprint import pipeline

    prepared = pipeline.prepare(_options(config_path))  # everything a render does but write
    for note in prepared.notes:
        _say(f"note: {note}")
    stack = prepared.stack
    models = len(stack.litellm_config["model_list"]) if stack.litellm_config else 0
    podman = f"Podman {stack.podman.version}" + (
        f", as {stack.podman.detected_from} says" if stack.podman.detected_from else ""
    )
    _say(f"{prepared.loaded.source}: valid ({len(stack.services)} services, {models} model deployments, {podman})")


@cli.command()
def schema():
    """Print the JSON Schema of blueprint-config.json."""
    from blueprint.config import SCHEMA_PATH

    click.echo(SCHEMA_PATH.read_text(encoding="utf-8"), nl=False)


# ---- secrets -------------------------------------------------------------------------------


@cli.group(invoke_without_command=True)
@click.pass_context
def secrets(ctx):
    """Show and change secrets. Values are never printed.

    The store is ~/.config/blueprint/secrets.env (0600); each container gets only its own
    secrets, in ~/.config/blueprint/env/<container>.env (0600) or as Podman secrets.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(secrets_list)


@secrets.command("list")
@config_option
def secrets_list(config_path=None):
    """Which secrets exist, who uses them, and the modes of the files holding them."""
    import stat as stat_module
    from pathlib import Path

    from blueprint import pipeline
    from blueprint import secrets as store_module
    from blueprint.errors import ConfigError

    options = _options(config_path)
    store = store_module.Store.load(options.paths)
    try:
        _, _, stack = pipeline.build_stack(options)
    except ConfigError as exc:
        _say(f"note: {exc.message} (showing the store only)")
        stack = None
    rows = store_module.inventory(stack, store)
    click.echo(f"{'NAME':<28} {'STATE':<10} USED BY")
    for row in rows:
        state = ("generated" if row.generated else "set") if row.stored else "MISSING"
        used = ", ".join(row.used_by) or "(not used by this config)"
        where = f"  {row.where}" if row.where and not row.stored else ""
        click.echo(f"{row.name:<28} {state:<10} {used}{where}")
    click.echo("")
    files = [store.path] + ([Path(s.env_files[0]) for s in stack.services if s.env_files] if stack else [])
    for path in files:
        try:
            mode = f"{stat_module.S_IMODE(path.stat().st_mode):04o}"
        except FileNotFoundError:
            mode = "absent"
        click.echo(f"{mode:<7} {_short(path)}")


@secrets.command("set")
@click.argument("name")
def secrets_set(name):
    """Store a secret (e.g. OPENAI_API_KEY) read from stdin, or from a hidden prompt.

    Never give it on the command line: other users can see every process's arguments.
    Example: blueprint secrets set OPENAI_API_KEY < openai.key
    """
    from blueprint import secrets as store_module

    if sys.stdin.isatty():
        value = click.prompt(f"{name}", hide_input=True, confirmation_prompt=True, err=True)
    else:
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
    options = _options(None)
    replaced = store_module.set_secret(options.paths, name, value)
    _say(f"{name} {'replaced' if replaced else 'stored'} in {_short(options.paths.secret_store)} (0600)")
    _say("next: blueprint apply   (writes it into the containers' environment and restarts them)")


@secrets.command("rotate")
@click.argument("name", default="LITELLM_MASTER_KEY")
def secrets_rotate(name):
    """Replace a generated secret with a new random one (default: the LiteLLM master key).

    The salt key and the PostgreSQL password are refused: changing them loses data.
    """
    from blueprint import secrets as store_module

    options = _options(None)
    store_module.rotate(options.paths, name)
    _say(f"{name} rotated in {_short(options.paths.secret_store)}")
    _say("next: blueprint apply   (restarts the containers that use it); clients need the new value")


# ---- backups, restore, verify --------------------------------------------------------------


@cli.group()
def backup():
    """Back up PostgreSQL (gzip dump), Redis (RDB snapshot) and the config with its secrets.

    `blueprint render` writes daily timers (backup.*_at) that run `blueprint backup run KIND`;
    files older than backup.retention_days are pruned after each run.
    """


@backup.command("run")
@config_option
@click.argument("kinds", nargs=-1, type=click.Choice(["postgres", "redis", "config", "all"]))
def backup_run(config_path, kinds):
    """Back up now (default: all), then prune old backups."""
    from blueprint import backups

    result = backups.run(_options(config_path), kinds or ("all",))
    for made in result.made:
        _say(f"backup {made.kind}: {_short(made.path)} ({made.size} bytes)")
    for path in result.pruned:
        _say(f"pruned {_short(path)}")


@backup.command("list")
@config_option
def backup_list(config_path):
    """List backups, newest first, with their kind, size and age."""
    from blueprint import backups

    options = _options(config_path)
    entries = backups.listing(options.paths)
    if not entries:
        _say(f"no backups in {_short(options.paths.backup_dir)}")
    for entry in entries:
        click.echo(f"{entry.kind:<9} {entry.taken:%Y-%m-%d %H:%M} {entry.size:>12}  {_short(entry.path)}")


@cli.command()
@config_option
@click.argument("kind", type=click.Choice(["postgres", "redis", "config"]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def restore(config_path, kind, file, yes):
    """Restore a backup (default: the newest of KIND): stops litellm, restores, starts it again.

    postgres replaces the database with the dump; redis replaces the snapshot; config puts back
    the config file and secret store saved with it (current ones are kept as *.before-restore).
    """
    from pathlib import Path

    from blueprint import backups

    options = _options(config_path)
    path = Path(file) if file else backups.newest(options.paths, kind)
    if not yes:
        click.confirm(f"Restore {kind} from {_short(path)}? The current data is replaced", abort=True, err=True)
    for step in backups.restore(options, kind, path):
        _say(step)


@cli.command()
@config_option
@click.option("--host", default="local://", show_default=True, help="testinfra host: local://, ssh://user@host, ...")
def verify(config_path, host):
    """Check the running gateway: units, services, port, API health, PostgreSQL, Redis, backups,
    lingering (the seed's verification tests). Exit 1 if any check fails."""
    from blueprint import verify as checks

    results = checks.run(_options(config_path), host)
    for result in results:
        mark = "ok  " if result.ok else "FAIL"
        click.echo(f"[{mark}] {result.name}: {result.detail}")
    failed = [r for r in results if not r.ok]
    if failed:
        raise checks.VerifyError(f"{len(failed)} of {len(results)} checks failed: " + ", ".join(r.name for r in failed))
    _say(f"all {len(results)} checks passed")


# ---- the one error handler -----------------------------------------------------------------


def run(argv: list[str]) -> int:
    debug = "--debug" in argv
    try:
        cli.main(args=argv, prog_name="blueprint", standalone_mode=False)
    except BlueprintError as exc:
        click.echo(f"blueprint: error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("blueprint: aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("\nblueprint: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except OSError as exc:  # permissions, a full disk, a read-only file system: the machine's, not ours
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"blueprint: error: {where}{exc.strerror or exc}", err=True)
        click.echo("hint: check that path's permissions and the free space of its file system", err=True)
        return 1
    except Exception as exc:
        if debug:
            import traceback

            traceback.print_exc()
        click.echo(f"blueprint: unexpected error: {type(exc).__name__}: {exc}", err=True)
        click.echo("hint: run again with --debug for the traceback, and report it", err=True)
        return 3
    return 0
