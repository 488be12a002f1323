"""Operating the running gateway: backups, restore, verify."""

from __future__ import annotations

import click

from blueprint.cli import cli, config_option, confirmed, options_for, say, short
from blueprint.kinds import BackupKind

# ---- backups, restore, verify --------------------------------------------------------------


@cli.group(short_help="Back up PostgreSQL, Redis and the config; list backups.")
def backup():
    """Back up PostgreSQL (gzip dump), Redis (RDB snapshot) and the config with its secrets.

    `blueprint render` writes daily timers (backup.*_at) that run `blueprint backup run KIND`;
    each run prunes the files of its kind older than backup.retention_days (never the newest).
    """


@backup.command("run", short_help="Back up now (default: all), then prune old backups of those kinds.")
@config_option
@click.argument("kinds", nargs=-1, type=click.Choice([*(k.value for k in BackupKind), "all"]))
def backup_run(config_path, kinds):
    """Back up now (default: all), then prune old backups of those kinds."""
    from blueprint.ops import backups

    result = backups.run(options_for(config_path), kinds or ("all",))
    for made in result.made:
        say(f"backup {made.kind}: {short(made.path)} ({made.size} bytes)")
    for path in result.pruned:
        say(f"pruned {short(path)}")
    for kind, error in result.failed:
        say(f"failed: backup {kind}: {error.message}" + (f" (hint: {error.hint})" if error.hint else ""))
    if result.failed:
        from blueprint.errors import ToolError

        kinds = ", ".join(kind for kind, _ in result.failed)
        raise ToolError(f"{len(result.failed)} of {len(result.failed) + len(result.made)} backups failed: {kinds}")


@backup.command("list", short_help="List backups, newest first.")
@config_option
def backup_list(config_path):
    """List backups, newest first, with their kind, size and age."""
    from blueprint.ops import backups

    options = options_for(config_path)
    entries = backups.listing(options.paths)
    if not entries:
        say(f"no backups in {short(options.paths.backup_dir)}")
    for entry in entries:
        click.echo(f"{entry.kind:<9} {entry.taken:%Y-%m-%d %H:%M} {entry.size:>12}  {short(entry.path)}")


@cli.command(short_help="Restore a backup (default: the newest of KIND).")
@config_option
@click.argument("kind", type=click.Choice([k.value for k in BackupKind]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--replace-salt-key",
    is_flag=True,
    help="config: put back the backup's LITELLM_SALT_KEY even if it differs from the one in use.",
)
def restore(config_path, kind, file, yes, replace_salt_key):
    """Restore a backup (default: the newest of KIND): stops litellm, restores, starts it again.

    postgres replaces the database with the dump; redis replaces the snapshot; config puts back
    the config file (./blueprint-config.json, or --config) and the secret store saved with it
    (current ones are kept as *.before-restore).
    A backup that does not load restores nothing (exit 4).

    LITELLM_SALT_KEY encrypts the credentials LiteLLM keeps in PostgreSQL: a config backup whose
    salt key differs from the one in use is refused, since it would lock LiteLLM out of the
    database as it is. Pass --replace-salt-key when the database holds the backup's (its postgres
    backup is restored too).
    """
    from pathlib import Path

    from blueprint.locking import lock
    from blueprint.ops import backups, restore

    options = options_for(config_path)
    if kind == BackupKind.CONFIG:
        restore.config_target(options)  # a config it must not replace is refused before the question
    # From the choice of the backup to the last write: a backup run meanwhile cannot prune it.
    with lock(options.paths.lock), backups.kind_lock(options.paths, kind):
        path = Path(file) if file else backups.newest(options.paths, kind)
        if not yes and not confirmed(f"Restore {kind} from {short(path)}? The current data is replaced"):
            say("nothing was restored")
            raise click.exceptions.Exit(1)
        for step in restore.restore(options, kind, path, replace_salt_key=replace_salt_key):
            say(step)


@cli.command(short_help="Check the running gateway; exit 1 naming what fails.")
@config_option
@click.option("--host", default="local://", show_default=True, help="testinfra host: local://, ssh://user@host, ...")
def verify(config_path, host):
    """Check the running gateway: unit files and secret modes, services, the port, API health and
    auth, PostgreSQL, Redis, backup timers and recent backups, lingering; and that every provider
    key is set and every model served has a price (a model LiteLLM cannot price costs 0 to every
    budget). Exit 1 naming each check that fails.

    
    Needs pytest-testinfra beside blueprint (pipx inject blueprint pytest-testinfra).
    """
    from blueprint.errors import VerifyError
    from blueprint.ops import verify as checks

    results = checks.run(options_for(config_path), host)
    for result in results:
        mark = "skip" if result.skipped else "ok  " if result.ok else "FAIL"
        click.echo(f"[{mark}] {result.name}: {result.detail}")
    failed = [r for r in results if not r.ok]
    if failed:
        raise VerifyError(f"{len(failed)} of {len(results)} checks failed: " + ", ".join(r.name for r in failed))
    skipped = [r.name for r in results if r.skipped]
    passed = len(results) - len(skipped)
    untold = f"; {len(skipped)} could not be told here: {', '.join(skipped)}" if skipped else ""
    say(f"all {passed} checks passed{untold}")
