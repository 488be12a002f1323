"""The command line: the only package that knows Click.

Each command parses its options, calls a library function and reports. Status words go to
stderr; real output (diffs, the schema, rendered text) to stdout, so pipes work. One handler maps
errors to exit codes (errors.py): conflict, drift or a failed check 1, usage or config error 2,
unexpected 3 (traceback only with --debug), a damaged backup 4, Ctrl-C 130.

This module holds the group, what every command shares and the handler; the commands live in
deploy.py (render, apply and the views of a render), secrets.py, ops.py (backups, verify),
lifecycle.py (init, upgrade, ps, logs, up, down, uninstall) and export.py (export kubernetes).
"""

from __future__ import annotations

import click

from blueprint import __version__
from blueprint.errors import BlueprintError, one_line

CONFIG_HELP = (
    "Config file. Default: $BLUEPRINT_CONFIG, else ./blueprint-config.json, else the copy kept by the last render, "
    "else the example shipped with blueprint."
)
# ps, logs, up and down act on what is installed: the copy of the config the last render kept.
INSTALLED_CONFIG_HELP = (
    "Config file. Default: $BLUEPRINT_CONFIG, else the copy kept by the last render (what is installed)."
)


def say(message: str) -> None:
    """A status line on stderr, escaped as errors are: a path or a value in it cannot forge another."""
    click.echo(f"blueprint: {one_line(message)}", err=True)


def confirmed(question: str) -> bool:
    """Yes, typed; anything else (no answer, the end of input) is no. The question names paths:
    escaped as say() escapes them."""
    try:
        return click.confirm(one_line(question), default=False, err=True)
    except click.Abort:
        return False


def short(path) -> str:
    """A path as a person reads it: ~ for the home directory."""
    from blueprint.paths import tilde

    return tilde(path)


def say_config(path, origin: str) -> None:
    from blueprint.paths import config_line

    say(config_line(path, origin))


def _given(context, parameter, value):
    """--config "" named no file, and was taken for no --config at all: the example shipped."""
    if value == "":
        raise click.BadParameter("an empty path names no config", context, parameter)
    return value


def config_option(function=None, *, help: str = CONFIG_HELP):
    """--config, as @config_option or @config_option(help=...)."""
    if function is None:
        return lambda function: config_option(function, help=help)
    # What a path that is not a config is (a folder, a FIFO) is said by config.load, as for every file it reads.
    return click.option(
        "--config",
        "-c",
        "config_path",
        type=click.Path(),
        callback=_given,
        envvar="BLUEPRINT_CONFIG",
        show_envvar=True,
        help=help,
    )(function)


def options_for(config_path):
    """The pipeline's options for a command: its --config and this process's environment."""
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
      blueprint init --provider openai    # a starter blueprint-config.json here
      blueprint secrets set OPENAI_API_KEY < key.txt
      blueprint apply                     # render, then systemctl --user daemon-reload and start
    \b
    Day to day:
      blueprint status | diff | check     # compare the config with what is on disk
      blueprint ps ; blueprint logs litellm -f
      blueprint upgrade --to v1.99.5      # backs up first, rolls back if it is not healthy
      blueprint backup list ; blueprint verify ; blueprint down ; blueprint up

    Units go to $XDG_CONFIG_HOME/containers/systemd (default ~/.config/containers/systemd).
    Files you edit by hand are never overwritten without --force.
    """
    # --debug is read by run(), the error handler, before Click parses anything.


# ---- the one error handler -----------------------------------------------------------------


def _error(message: str, hint: str | None = None) -> None:
    click.echo(f"blueprint: error: {one_line(message)}", err=True)
    if hint:
        click.echo(f"hint: {one_line(hint)}", err=True)


def run(argv: list[str]) -> int:
    debug = "--debug" in argv
    try:
        # Without standalone mode, Click returns the code of a click.exceptions.Exit instead of exiting.
        code = cli.main(args=argv, prog_name="blueprint", standalone_mode=False)
    except BlueprintError as exc:
        _error(exc.message, exc.hint)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("blueprint: aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("\nblueprint: interrupted", err=True)
        return 130
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()  # a group named alone: its help
        return exc.exit_code
    except click.ClickException as exc:
        context = getattr(exc, "ctx", None)
        _error(exc.format_message(), f"see `{context.command_path} --help`" if context is not None else None)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except OSError as exc:  # permissions, a full disk, a read-only file system: the machine's, not ours
        from blueprint.paths import current_folder_gone

        if exc.filename is None and current_folder_gone():  # os.getcwd() failed, which names nothing
            _error("the current folder no longer exists (deleted since this shell entered it)", "cd to one that does")
            return 2
        where = f"{exc.filename}: " if exc.filename else ""
        _error(f"{where}{exc.strerror or exc}", "check that path's permissions and the free space of its file system")
        return 1
    except Exception as exc:
        if debug:
            import traceback

            traceback.print_exc()
        click.echo(f"blueprint: unexpected error: {one_line(f'{type(exc).__name__}: {exc}')}", err=True)
        click.echo("hint: run again with --debug for the traceback, and report it", err=True)
        return 3
    return code if isinstance(code, int) else 0


# The commands register themselves on the group when imported.
from blueprint.cli import deploy, export, lifecycle, ops, secrets  # noqa: E402, F401
