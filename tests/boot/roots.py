"""The Debian trees the booted stack runs on, made with mmdebstrap and kept in the cache.

- **trixie** becomes the booted machine's root: Podman 5.4 with Quadlet and systemd 257. The host's
  bookworm has Podman 4.3 (no Quadlet, no `Notify=healthy`), and trixie's binaries need glibc 2.38
  (bookworm has 2.36), so they run in a root of their own rather than on the host.
- **bookworm** becomes `localhost/bookworm-base`, the base of the stand-in images (bookworm still
  ships PostgreSQL 15, and its Python 3.11 matches the host's, which builds the LiteLLM wheelhouse).

A tree is made once into DIR.new and renamed when complete, so an interrupted run never leaves a
half tree that looks finished. Later runs only install the packages the list has gained.
mmdebstrap rather than debootstrap: it lets apt fetch the packages in parallel and resolve them
(debootstrap fetches one at a time), so a tree takes about 40 s here instead of 90.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

# What the booted machine needs. dbus: libpam-systemd and dbus-user-session need a system bus
# (debootstrap left them unconfigured without it; named here, apt need not pick one).
# iproute2: `blueprint verify` checks the listening port with testinfra, which calls `ss`.
# python3-venv: blueprint is pip-installed into /opt/blueprint with trixie's Python.
TRIXIE_PACKAGES = (
    "podman",
    "crun",
    "conmon",
    "netavark",
    "aardvark-dns",
    "passt",
    "uidmap",
    "catatonit",
    "systemd",
    "dbus",
    "dbus-user-session",
    "nftables",
    "ca-certificates",
    "python3",
    "python3-venv",
    "iproute2",
    "procps",
)
# The images' base stays minimal: each Containerfile installs what its service needs.
BOOKWORM_PACKAGES = ()


class RootError(RuntimeError):
    pass


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's own apt sources use (never a host written into the project)."""
    for path in sorted((sources_dir / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = dict(re.findall(r"^([\w-]+):\s*(.+)$", stanza, flags=re.M))
            suites = fields.get("Suites", "").split()
            if "deb" in fields.get("Types", "").split() and any(not s.endswith("-security") for s in suites):
                return fields["URIs"].split()[0]
    legacy = sources_dir / "sources.list"
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            words = [w for w in line.split() if not w.startswith("[")]
            if words[:1] == ["deb"] and len(words) >= 3 and not words[2].endswith("-security"):
                return words[1]
    raise RootError(f"no Debian mirror in {sources_dir}/sources.list.d/*.sources or sources.list")


def ensure(suite: str, target: Path, packages: tuple[str, ...], log: Path) -> str:
    """Debootstrap SUITE into TARGET once; afterwards install only packages added to the list.

    Returns what it did, for the timings ("cached", "made", "added: ...").
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    if not (target / "usr/bin/apt-get").exists():
        partial = target.with_name(target.name + ".new")
        shutil.rmtree(partial, ignore_errors=True)
        # mmdebstrap cleans apt's cache and lists afterwards: the .debs are installed, and kept would only cost disk.
        command = ["mmdebstrap", "--variant=minbase", "--mode=root"]
        if packages:
            command.append("--include=" + ",".join(packages))
        command += [suite, str(partial), debian_mirror()]
        with log.open("w") as out:
            if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode != 0:
                raise RootError(f"mmdebstrap {suite} failed: see {log}")
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        return "made"
    missing = [p for p in packages if not _installed(target, p)]
    if not missing:
        return "cached"
    script = (
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -f -q && "
        "apt-get install -y -q --no-install-recommends " + " ".join(missing) + " && apt-get clean"
    )
    with log.open("a") as out:
        # chroot is enough here: installing packages needs no user namespace.
        if subprocess.run(["chroot", str(target), "sh", "-c", script], stdout=out, stderr=subprocess.STDOUT).returncode:
            raise RootError(f"installing {' '.join(missing)} into {target} failed: see {log}")
    return "added: " + " ".join(missing)


def _installed(root: Path, package: str) -> bool:
    result = subprocess.run(
        ["chroot", str(root), "dpkg-query", "-W", "-f", "${db:Status-Abbrev}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.startswith("ii")


def add_user(root: Path, name: str, uid: int, home: str, subids: str) -> None:
    """The unprivileged user who runs the stack, with the sub-ids rootless Podman maps."""
    if subprocess.run(["chroot", str(root), "id", "-u", name], capture_output=True).returncode != 0:
        subprocess.run(
            ["chroot", str(root), "useradd", "--uid", str(uid), "--home-dir", home, "--shell", "/bin/bash", name],
            check=True,
            capture_output=True,
        )
    for table in ("subuid", "subgid"):
        (root / "etc" / table).write_text(f"{name}:{subids}\n")


def overlay(source: Path, root: Path) -> None:
    """Copy the files under SOURCE into ROOT at the same paths, modes kept."""
    for path in sorted(source.rglob("*")):
        if path.is_file():
            target = root / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def size(path: Path) -> int:
    """Bytes used under PATH (du: hard links counted once)."""
    if not path.exists():
        return 0
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=False).stdout
    return int(out.split()[0]) if out else 0


def chown_tree(path: Path, uid: int) -> None:
    for dirpath, _, files in os.walk(path):
        os.chown(dirpath, uid, uid)
        for name in files:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)
