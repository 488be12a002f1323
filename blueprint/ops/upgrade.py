"""`blueprint upgrade --to vX.Y.Z`: another LiteLLM release, with the way back kept open.

LiteLLM upgrades are where self-hosted gateways break: a release migrates the database schema on
start, or a tag moves or vanishes. So: the tag must name one release (never a floating or a
malicious one, never older unless asked); PostgreSQL and the config are backed up first; only the
image's value changes in the config; and if the new release is not healthy in time, the previous
image comes back, with the database taken just before when the new release changed its schema.
The whole upgrade holds the lock, like every command that writes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from blueprint import configfile, pipeline
from blueprint.errors import BlueprintError, ConfigError, ToolError, UpgradeFailed
from blueprint.files import lock
from blueprint.kinds import BackupKind
from blueprint.model.rules import image_problems
from blueprint.model.types import Stack
from blueprint.ops import backups, inspect, restore
from blueprint.paths import APPLIED, SHIPPED

TAG = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z][0-9A-Za-z.-]*))?\Z")
STABLE = "stable"  # LiteLLM's vX.Y.Z-stable: the release, tested longer
WAIT = 600  # seconds the new release has to become healthy (a first start downloads the image)


@dataclass(frozen=True, order=True)
class Release:
    numbers: tuple[int, int, int]
    pre: str  # "" for a release; a pre-release sorts before its release

    @classmethod
    def of(cls, tag: str) -> Release | None:
        match = TAG.fullmatch(tag)
        if not match:
            return None
        # "~" sorts after every pre-release; LiteLLM's -stable build of a release is that release.
        pre = "~" if match[4] in (None, STABLE) else match[4]
        return cls((int(match[1]), int(match[2]), int(match[3])), pre)

    def __str__(self) -> str:
        return ".".join(map(str, self.numbers)) + ("" if self.pre == "~" else f"-{self.pre}")


def tag_of(image: str) -> str:
    name = image.partition("@")[0]
    last = name.rsplit("/", 1)[-1]
    return last.partition(":")[2]


def with_tag(image: str, tag: str) -> str:
    """The same repository at another tag (a digest is dropped: it names the old release)."""
    name = image.partition("@")[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.partition(':')[0]}:{tag}" if head else f"{last.partition(':')[0]}:{tag}"


def check(data, to: str, *, allow_downgrade: bool) -> tuple[str, str]:
    """The current and the new image, or the reason this upgrade is refused."""
    current = data["litellm"]["image"]
    if tag_of(current).startswith("v") and not to.startswith("v") and Release.of(to):
        to = "v" + to  # LiteLLM tags its images vX.Y.Z: 1.99.5 names v1.99.5
    new = with_tag(current, to)
    wanted = Release.of(to)
    if wanted is None:
        raise ConfigError(
            f"--to {to}: not a release tag",
            hint="give a version such as v1.99.5 (LiteLLM's images are tagged vX.Y.Z, some with -stable)",
        )
    for problem in image_problems(new, "--to", {**data["litellm"], "allow_floating_tag": False}):
        raise ConfigError(f"{problem.where} {to}: {problem.message}", hint=problem.hint)
    running = Release.of(tag_of(current))
    if running is not None and wanted < running and not allow_downgrade:
        raise ConfigError(
            f"--to {to}: older than the running {tag_of(current)}; LiteLLM's database schema does not go back",
            hint="restore the database backup of that release too, then pass --allow-downgrade",
        )
    return current, new


def upgrade(options: pipeline.Options, to: str, *, allow_downgrade: bool = False, wait: float = WAIT) -> Iterator[str]:
    """Yield each step as it is done; raise UpgradeFailed after rolling back."""
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
                f"{built.path}: this is blueprint's copy of the config last applied, not your config",
                hint="run upgrade in the folder of your blueprint-config.json, or give --config PATH",
            )
        stack, data = built.stack, built.loaded.data
        current, new = check(data, to, allow_downgrade=allow_downgrade)
        if new == current:
            yield f"litellm already runs {current}"
            return
        made = backups.run(options, [k for k in (BackupKind.POSTGRES, BackupKind.CONFIG) if _runs(stack, k)])
        if made.failed:
            kind, error = made.failed[0]
            raise BlueprintError(f"upgrade stopped before changing anything: backup {kind} failed: {error.message}")
        dump = next((b.path for b in made.made if b.kind is BackupKind.POSTGRES), None)
        for backup in made.made:
            yield f"backed up {backup.kind}: {backup.path}"
        schema = backups.schema_digest(stack) if dump else None
        original = built.path.read_bytes()
        configfile.set_value(built.path, ("litellm", "image"), new)
        yield f"{built.path}: litellm.image {current} -> {new}"
        failure = yield from _apply(options, wait)
        if failure is None and _healthy(options, wait):
            yield f"litellm runs {new}, healthy"
            return
        why = f"systemd could not start it: {failure.message}" if failure else f"not healthy within {wait:.0f} s"
        yield f"{new} failed ({why}): going back to {current}"
        configfile.write(built.path, original)
        back_failure = yield from _apply(options, wait)
        if dump and backups.schema_digest(stack) != schema:
            yield "the new release changed the database schema: restoring the database taken before"
            yield from restore.restore(options, BackupKind.POSTGRES, dump)
        back = back_failure is None and _healthy(options, wait)
        raise UpgradeFailed(
            f"upgrade to {new} failed ({why}); {current} runs again" + ("" if back else ", but is not healthy either"),
            hint="see why with `blueprint logs litellm`; `blueprint ps` shows each service",
        )


def _runs(stack: Stack, kind: BackupKind) -> bool:
    return kind.service_key is None or stack.service(kind.service_key) is not None


def _apply(options: pipeline.Options, wait: float) -> Generator[str, None, ToolError | None]:
    """Apply the config as it is now; what systemd refused, if it did (the files are written)."""
    outcome = pipeline.render(options, reload=True, restart_wait=wait)
    for call in outcome.systemctl:
        yield "ran: " + " ".join(call)
    yield from outcome.notes
    return outcome.failure


def _healthy(options: pipeline.Options, wait: float) -> bool:
    """Whether every LiteLLM service is active and its container healthy, within `wait` seconds."""
    stack = pipeline.build_stack(options).stack
    deadline = time.monotonic() + wait
    while True:
        litellm = [s for s in inspect.states(stack) if s.service.key == "litellm"]
        if litellm and all(s.ok for s in litellm):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(2)
