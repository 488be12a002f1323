"""Living with the gateway: init, upgrade, ps, logs, up, down, uninstall."""

from __future__ import annotations

from pathlib import Path

import click

from blueprint.cli import INSTALLED_CONFIG_HELP, cli, config_option, confirmed, options_for, say, say_config, short


@cli.command(short_help="Write a starter blueprint-config.json here.")
@click.option(
    "--provider",
    "providers",
    multiple=True,
    metavar="NAME",
    help="A provider to start with (repeatable): openai, anthropic, ollama, ... Default: ollama.",
)
def init(providers):
    """Write a starter blueprint-config.json in this folder, never over an existing one.

    \b
    Example:
      blueprint init --provider openai --provider anthropic
      blueprint secrets set OPENAI_API_KEY < openai.key
      blueprint apply
    """
    from blueprint import configfile
    from blueprint.paths import CONFIG_NAME

    made = configfile.starter(providers)
    path = Path(CONFIG_NAME).absolute()
    configfile.create(path, made.data)
    names = list(dict.fromkeys(providers)) or ["ollama"]
    say(f"wrote {short(path)} ({', '.join(names)}; `blueprint schema` describes every key)")
    for field in made.placeholders:
        say(f"note: {field} is a placeholder: put your own value there")
    for key in made.keys:
        say(f"next: blueprint secrets set {key} < file-holding-it")
    say("next: blueprint apply")


@cli.command(short_help="Move LiteLLM to another release; roll back if it is not healthy.")
@config_option
@click.option("--to", "tag", required=True, metavar="vX.Y.Z", help="The LiteLLM release tag, e.g. v1.99.5.")
@click.option("--allow-downgrade", is_flag=True, help="Accept an older release than the one running.")
@click.option(
    "--wait", type=click.IntRange(10, 3600), default=600, show_default=True, help="Seconds it has to become healthy."
)
def upgrade(config_path, tag, allow_downgrade, wait):
    """Move LiteLLM to another release, with the way back kept open.

    The tag must name one release (not a floating or a malicious one; not an older one unless
    --allow-downgrade), and the gateway must be installed (`blueprint apply`). PostgreSQL and the
    config are backed up first, even with the backup timers off; then only the image's value
    changes in the config and the stack is applied. If LiteLLM is not healthy within --wait
    seconds, the previous image comes back (and the database taken just before, when the new
    release changed its schema), and the command exits 1; an error or Ctrl-C before then puts the
    config back as well.
    """
    from blueprint.ops.upgrade import upgrade as run

    run(options_for(config_path), tag, say=say, allow_downgrade=allow_downgrade, wait=wait)


def _introduce(found, paths, unknown: str | None = None) -> None:
    """Which config tells what unit names do not; or, where none loads, why, and what of the
    command's answer that leaves unknown (`unknown`: nothing, when unit names are enough)."""
    if found.built is not None:
        say_config(found.built.path, found.built.origin)
        return
    consequence = f"; {unknown} cannot be known until it does" if unknown else ""
    say(f"note: the config does not load ({found.problem.message}){consequence}")
    say(f"note: the units are those installed ({short(paths.manifest)})")


@cli.command(short_help="Each service's state, health, age, image, restarts, address.")
@config_option(help=INSTALLED_CONFIG_HELP)
def ps(config_path):
    """Each service: its state, health, since when, image, restarts and the address it answers
    on. Exit 1 when one is not running or not healthy, or its health cannot be known."""
    from blueprint.errors import VerifyError
    from blueprint.ops.inspect import age, installed, states

    options = options_for(config_path)
    found = installed(options)
    _introduce(found, options.paths, "their containers' health, images and addresses")
    shown = states(found)
    rows = [("SERVICE", "STATE", "HEALTH", "SINCE", "RESTARTS", "IMAGE", "ADDRESS")]
    for s in shown:
        rows.append((s.name, s.active, s.health, age(s.since), str(s.restarts), s.image, s.address))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    down = [s.name for s in shown if s.down]
    if down:
        raise VerifyError(
            f"{len(down)} of {len(shown)} services are not running and healthy: {', '.join(down)}",
            hint="see why with `blueprint logs SERVICE`; start everything with `blueprint up`",
        )
    unknown = [s for s in shown if not s.known]
    if unknown:
        raise VerifyError(
            f"{len(unknown)} of {len(shown)} services run, but whether they are healthy cannot be known: "
            f"{found.unknown(unknown[0].unit)}",
            hint="`blueprint validate` says what the config needs",
        )


@cli.command(short_help="A service's log (the user's journal, else podman's).")
@config_option(help=INSTALLED_CONFIG_HELP)
@click.argument("service", default="litellm")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines (Ctrl-C ends).")
@click.option("--lines", "-n", type=click.IntRange(1), default=100, show_default=True, help="Lines to show.")
def logs(config_path, service, follow, lines):
    """Show a service's log: litellm (default: every replica, each line named), one replica
    (litellm@2), litellm-postgres, litellm-redis (or postgres, redis), litellm-front. From the
    user's journal, else from podman where no journal holds it."""
    from blueprint.ops.inspect import installed, run_in_place
    from blueprint.ops.inspect import logs as find

    options = options_for(config_path)
    found = installed(options)
    _introduce(found, options.paths, "the containers (whose logs podman keeps where the journal has none)")
    run_in_place(find(found, service, follow=follow, lines=lines))


@cli.command(short_help="Start every service and backup timer.")
@config_option(help=INSTALLED_CONFIG_HELP)
def up(config_path):
    """Start every service and backup timer installed (after `blueprint down`); they also start at
    login, or at boot with lingering."""
    from blueprint.locking import lock
    from blueprint.ops.inspect import installed
    from blueprint.ops.lifecycle import up as start

    options = options_for(config_path)
    with lock(options.paths.lock):  # what is installed is read under the lock it is started under
        found = installed(options)
        _introduce(found, options.paths)
        ran = start(found, options.paths)
    say("ran: " + " ".join(ran))


@cli.command(short_help="Stop every service and backup timer; keep everything.")
@config_option(help=INSTALLED_CONFIG_HELP)
def down(config_path):
    """Stop every service and backup timer installed, and keep everything: files, secrets,
    volumes. They start again with `blueprint up`, at the next login, or at boot with lingering.
    The config need not load: what is installed is stopped."""
    from blueprint.locking import lock
    from blueprint.ops.inspect import installed
    from blueprint.ops.lifecycle import down as stop

    options = options_for(config_path)
    with lock(options.paths.lock):  # what is installed is read under the lock it is stopped under
        found = installed(options)
        _introduce(found, options.paths)
        ran = stop(found, options.paths)
    say("ran: " + " ".join(ran))


@cli.command(short_help="Remove the units, timers and files render wrote; keep the data.")
@click.option(
    "--purge-secrets",
    is_flag=True,
    help="Remove the secret store, the copies of it restore kept, and the Podman secrets too (config backups, "
    "which hold it, are kept); asks first.",
)
@click.option("--force", is_flag=True, help="Remove files edited by hand since blueprint wrote them, too.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def uninstall(purge_secrets, force, yes):
    """Stop the services, then remove the units, timers, environment files and the manifest that
    render wrote. The secrets stay (unless --purge-secrets), and so do the volumes with their data:
    a later render brings the same stack back onto them. It says how to remove a volume by hand.
    """
    from blueprint.ops.lifecycle import uninstall as remove

    options = options_for(None)
    question = "Stop the gateway and remove the units and files render wrote? Volumes and secrets stay"
    if purge_secrets:
        question = (
            "Stop the gateway, remove the units and files render wrote, and the secret store with its copies? Without "
            "LITELLM_SALT_KEY the credentials LiteLLM keeps in PostgreSQL cannot be read again"
        )
    if not yes and not confirmed(question):
        say("nothing was removed")
        raise click.exceptions.Exit(1)
    for step in remove(options.paths, purge_secrets=purge_secrets, force=force):
        say(step)
