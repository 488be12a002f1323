"""`blueprint upgrade --to vX.Y.Z`: another LiteLLM release, with the way back kept open.

LiteLLM upgrades are where self-hosted gateways break: a release migrates the database schema on
start, or a tag moves or vanishes. So: the tag must name one release (never a floating or a
malicious one, never older unless asked); the gateway must be installed, with systemd and podman
within reach, and the render of the new release must be one a render would not refuse (checked
in memory), before anything is written; PostgreSQL (where blueprint runs it) and the config are
backed up next, whether or not the backup timers are on; only the image's value changes in the
config; and whatever ends the upgrade before the new release is healthy (not healthy in time, a
refusal, an error, Ctrl-C) puts the previous bytes of the config back and applies them again, with
the database taken just before when the new release changed its schema. The whole upgrade holds
the lock, like every command that writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from blueprint import configfile, engine, pipeline, podman
from blueprint.errors import BlueprintError, ConfigError, ToolError, UpgradeFailed
from blueprint.kinds import BackupKind
from blueprint.locking import lock
from blueprint.model import jobs, releases
from blueprint.model.rules import enabled
from blueprint.model.types import Stack
from blueprint.ops import backups, inspect, restore
from blueprint.paths import APPLIED, SHIPPED
from blueprint.reading import read_bytes

Say = Callable[[str], None]

WAIT = 600  # seconds the new release has to become healthy (a first start downloads the image)


def check(data, to: str, *, allow_downgrade: bool) -> tuple[str, str]:
    """The current and the new image, or the reason this upgrade is refused."""
    current = data["litellm"]["image"]
    current_tag = releases.tag_of(current)
    if current_tag.startswith("v") and to[:1].isdigit():
        to = "v" + to  # LiteLLM tags its images vX.Y.Z: 1.99.5 names v1.99.5
    try:
        wanted = releases.parse(to)
    except releases.TagProblem as problem:
        raise ConfigError(f"--to {to}: {problem.message}", hint=problem.hint) from None
    if wanted is None:
        raise ConfigError(
            f"--to {to}: not a release tag",
            hint="give a version such as v1.99.5 (LiteLLM's images are tagged vX.Y.Z, some with -stable)",
        )
    try:
        running = releases.parse(current_tag)
    except releases.TagProblem:
        running = None  # a build of one's own: nothing to compare with
    if running is not None and wanted < running and not allow_downgrade:
        raise ConfigError(
            f"--to {to}: older than the running {current_tag}; LiteLLM's database schema does not go back",
            hint="restore the database backup of that release too, then pass --allow-downgrade",
        )
    return current, releases.with_tag(current, to)


def upgrade(options: pipeline.Options, to: str, *, say: Say, allow_downgrade: bool = False, wait: float = WAIT) -> None:
    """Move LiteLLM to the release `to`, saying each step as it is done; raise UpgradeFailed after
    rolling back.

    Steps are said (`say`), not yielded: a Ctrl-C then arrives in here wherever the upgrade is, and
    whatever ends it before the new release is proven healthy (a refusal, an error, a Ctrl-C) puts
    back what it changed: the config's bytes first, then what was applied from them.
    """
    with lock(options.paths.lock):
        built = pipeline.build_stack(options)
        if built.origin == SHIPPED:
            raise ConfigError(
                f"{built.path}: the example shipped with blueprint is not yours to upgrade",
                hint="write your own with `blueprint init` (or give --config)",
            )
        if built.origin == APPLIED:
            # Changed here, the image would go back at the next apply from your own config.
            raise ConfigError(
                f"{built.path}: this is blueprint's copy of the config last rendered, not your config",
                hint="run upgrade in the folder of your blueprint-config.json, or give --config PATH",
            )
        stack, data = built.stack, built.loaded.data
        current, new = check(data, to, allow_downgrade=allow_downgrade)
        if new == current:
            say(f"litellm already runs {current}")
            return
        _check_running(options, stack)
        original = built.path.read_bytes()
        changed = configfile.with_value(original, ("litellm", "image"), new)
        _check_render(options, changed)
        dump = _back_up(options, stack, data, say)
        schema = backups.schema_digest(stack) if dump else None
        way_back = _WayBack(options, stack, wait, dump, schema, original, read_bytes(options.paths.manifest))
        try:
            configfile.write(built.path, changed)
            say(f"{built.path}: litellm.image {current} -> {new}")
            failure = _apply(options, wait, say)
            healthy = failure is None and _healthy(stack, wait)
        except BaseException:
            way_back.take(built.path, current, say, after_error=True)
            raise
        if healthy:
            say(f"litellm runs {new}, healthy")
            return
        why = f"systemd could not start it: {failure.message}" if failure else f"not healthy within {wait:.0f} s"
        say(f"{new} failed ({why}): going back to {current}")
        back = way_back.take(built.path, current, say)
        raise UpgradeFailed(
            f"upgrade to {new} failed ({why}); {current} runs again" + ("" if back else ", but is not healthy either"),
            hint="see why with `blueprint logs litellm`; `blueprint ps` shows each service",
        )


def _check_running(options: pipeline.Options, stack: Stack) -> None:
    """Before anything is written: a gateway is installed, and systemd and podman can be asked
    (else a release that never ran would be blamed, and rolled back to one that never ran either)."""
    replicas = stack.services_of("litellm")
    if not replicas:
        raise ConfigError(f"{stack.source}: /litellm/enabled: LiteLLM is disabled in this config: nothing to upgrade")
    inspect.require_installed(options.paths)
    inspect.require_tools(replicas[0].unit)


def _check_render(options: pipeline.Options, changed: bytes) -> None:
    """Render the config with the new image in memory, writing nothing: what that render would
    refuse (the config for the new release, a frozen secret that differs, a file edited by hand)
    stops the upgrade before it backs up or changes anything."""
    engine.partition(pipeline.prepare(options, raw=changed).changes)


@dataclass
class _WayBack:
    """What an upgrade puts back if the new release is not proven healthy."""

    options: pipeline.Options
    stack: Stack
    wait: float
    dump: Path | None  # PostgreSQL just before, if blueprint runs it
    schema: str | None  # that database's schema then
    original: bytes  # the config's bytes before
    journal: bytes | None  # the manifest before: it changes once anything is written

    def take(self, path: Path, image: str, say: Say, *, after_error: bool = False) -> bool:
        """Put the config's bytes back, then apply them if anything of the new release was applied
        (and the database, if the new release changed its schema); whether the previous release
        is healthy again."""
        configfile.write(path, self.original)
        say(f"{path}: put back as it was (litellm.image {image})")
        if read_bytes(self.options.paths.manifest) == self.journal:
            say("nothing of the new release was applied")
            return True
        try:
            failure = _apply(self.options, self.wait, say)
            if self.dump and backups.schema_digest(self.stack) != self.schema:
                say("the new release changed the database schema: restoring the database taken before")
                for step in restore.restore(self.options, BackupKind.POSTGRES, self.dump):
                    say(step)
        except BlueprintError as error:
            if not after_error:
                raise
            # The error that ended the upgrade is the one to see; the config is already back.
            say(f"could not apply it again ({error.message}): `blueprint apply` does")
            return False
        return failure is None and _healthy(self.stack, self.wait)


def _back_up(options: pipeline.Options, stack: Stack, data, say: Say) -> Path | None:
    """The backups an upgrade makes before it changes anything, whether or not the backup timers
    are on (the timers are a schedule; these are the way back); the PostgreSQL dump, if any."""
    kinds = [kind for kind in jobs.kinds(data) if kind in (BackupKind.POSTGRES, BackupKind.CONFIG)]
    if enabled(data)["litellm_postgres"] and BackupKind.POSTGRES not in kinds:
        say(
            "note: PostgreSQL runs elsewhere (litellm_postgres.external): its provider backs it up, not blueprint; "
            "if this upgrade fails, only the image goes back, not a schema the new release migrated"
        )
    made = backups.take(options, stack, kinds)
    if made.failed:
        # The world failed (a database that does not answer, a full disk), not the command given.
        kind, error = made.failed[0]
        raise ToolError(
            f"upgrade stopped before changing anything: backup {kind} failed: {error.message}", hint=error.hint
        )
    for backup in made.made:
        say(f"backed up {backup.kind}: {backup.path}")
    return next((b.path for b in made.made if b.kind is BackupKind.POSTGRES), None)


def _apply(options: pipeline.Options, wait: float, say: Say) -> ToolError | None:
    """Apply the config as it is now; what systemd refused, if it did (the files are written)."""
    outcome = pipeline.render(options, reload=True, restart_wait=wait)
    for call in outcome.systemctl:
        say("ran: " + " ".join(call))
    for note in outcome.notes:
        say(note)
    return outcome.failure


def _healthy(stack: Stack, wait: float) -> bool:
    """Whether every LiteLLM replica's container runs and is healthy within `wait` seconds."""
    return podman.wait_healthy([s.container_name for s in stack.services_of("litellm")], wait)
