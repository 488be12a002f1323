"""`blueprint secrets`: list, set and rotate; values are never printed."""

from __future__ import annotations

import sys

import click

from blueprint.cli import cli, config_option, options_for, say, short

# ---- secrets -------------------------------------------------------------------------------


@cli.group(invoke_without_command=True, short_help="List, set, remove and rotate secrets; values never printed.")
@click.pass_context
def secrets(ctx):
    """Show and change secrets. Values are never printed.

    The store is ~/.config/blueprint/secrets.env (0600); each container gets only its own
    secrets, in ~/.config/blueprint/env/<container>.env (0600) or as Podman secrets.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(secrets_list)


@secrets.command("list", short_help="Which secrets exist, who uses them, file modes.")
@config_option
def secrets_list(config_path=None):
    """Which secrets exist, who uses them, and the modes of the files holding them."""
    import stat as stat_module

    from blueprint import resolution
    from blueprint import secrets as store_module
    from blueprint.manifest import Manifest

    options = options_for(config_path)
    store = store_module.Store.load(options.paths)
    built = _built(options, say_why=True)
    stack = built.stack if built else None
    found = (
        resolution.resolve_here(stack, options.paths, options.environ, Manifest.load(options.paths)) if stack else None
    )
    click.echo(f"{'NAME':<28} {'STATE':<10} USED BY")
    for row in resolution.inventory(stack, store, found):
        used = ", ".join(row.used_by) or "(not used by this config)"
        where = f"  {row.where}" if row.where and row.state == "MISSING" else ""
        click.echo(f"{row.name:<28} {row.state:<10} {used}{where}")
    click.echo("")
    files = [store.path] + ([o.path for o in stack.outputs if o.role.secret] if stack else [])
    for path in files:
        try:
            mode = f"{stat_module.S_IMODE(path.stat().st_mode):04o}"
        except FileNotFoundError:
            mode = "absent"
        click.echo(f"{mode:<7} {short(path)}")


def _built(options, *, say_why: bool = False):
    """The config in use and its stack, or None when it does not load (its own problem, which
    render names)."""
    from blueprint import pipeline
    from blueprint.errors import BlueprintError

    try:
        return pipeline.build_stack(options)
    except BlueprintError as exc:
        if say_why:
            say(f"note: {exc.message} (showing the store only)")
        return None


@secrets.command("set", short_help="Store a secret read from stdin or a hidden prompt.")
@config_option
@click.argument("name")
# Taken only to refuse it without echoing it (Click's own error would print the key).
@click.argument("given_value", nargs=-1, metavar="")
def secrets_set(config_path, name, given_value):
    """Store a secret, such as OPENAI_API_KEY, read from stdin or from a hidden prompt.

    Never give it on the command line: other users can see every process's arguments.
    Example: blueprint secrets set OPENAI_API_KEY < openai.key
    """
    from blueprint import secrets as store_module
    from blueprint.errors import SecretError
    from blueprint.locking import lock

    if given_value:
        raise SecretError(
            f"{name}: a value on the command line is not taken (every user on this machine can read a "
            "process's arguments, and your shell keeps them in its history); it was not stored",
            hint=f"blueprint secrets set {name} < file-holding-the-key   (or run it alone and type it in)",
        )

    if sys.stdin.isatty():
        value = click.prompt(f"{name}", hide_input=True, confirmation_prompt=True, err=True)
    else:
        value = store_module.read_value(name, sys.stdin.buffer)
    options = options_for(config_path)
    with lock(options.paths.lock):  # the stack it checks the value against is still the one deployed
        built = _built(options)
        stored = store_module.set_secret(options.paths, name, value, stack=built.stack if built else None)
    say(f"{name} {'replaced' if stored.replaced else 'stored'} in {short(options.paths.secret_store)} (0600)")
    if stored.compacted:
        say(f"note: {name} is a JSON document: stored on one line (an environment file holds one line per variable)")
    if built and name not in built.stack.secret_names:
        # Most often a typo: nothing to apply.
        say(
            f"warning: no container of {short(built.path)} uses {name}; check the spelling against the "
            "config's ${VAR} references (`blueprint secrets list`)"
        )
        return
    say("next: blueprint apply   (writes it into the containers' environment and restarts them)")


@secrets.command("rm", short_help="Remove a secret you set from the store.")
@config_option
@click.argument("name")
def secrets_rm(config_path, name):
    """Remove a secret from the store, such as a provider key you no longer use.

    The containers keep it until `blueprint apply`. The salt key and the PostgreSQL password
    are refused: the data in PostgreSQL needs them.
    """
    from blueprint import resolution
    from blueprint import secrets as store_module
    from blueprint.errors import SecretError

    options = options_for(config_path)
    if not store_module.remove(options.paths, name):
        raise SecretError(f"{name} is not in {short(options.paths.secret_store)}", hint="see `blueprint secrets list`")
    say(f"{name} removed from {short(options.paths.secret_store)}")
    if options.environ.get(name) and not options.paths.manifest.exists():
        # Kept out of the next render only once one has run (secrets._removed).
        say(f"note: {name} is in your environment too: a render takes it from there; unset it to keep it out")
    built = _built(options)
    if built and name in built.stack.secret_names:
        say(
            f"warning: {short(built.path)} still uses {name} ({resolution.asked_by(built.stack, name)}): what "
            f"needs it fails once it is out; take the reference out of the config, or set another key with "
            f"`blueprint secrets set {name}`"
        )
    say("next: blueprint apply   (takes it out of the containers' environment and restarts them)")


@secrets.command("rotate", short_help="Replace a generated secret (default: the master key).")
@click.argument("name", default="LITELLM_MASTER_KEY")
def secrets_rotate(name):
    """Replace a generated secret with a new random one (default: the LiteLLM master key).

    The salt key and the PostgreSQL password are refused: changing them loses data.
    """
    from blueprint import secrets as store_module

    options = options_for(None)
    store_module.rotate(options.paths, name)
    say(f"{name} rotated in {short(options.paths.secret_store)}")
    say("next: blueprint apply   (restarts the containers that use it); clients need the new value")
