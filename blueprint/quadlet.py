"""What the target Podman's Quadlet understands: versions, the keys each one added, unit names.

The units are written for one Podman version (`podman_version`, or the installed podman's). A
key that version's Quadlet does not know becomes the equivalent `podman run` option in
PodmanArgs=, as podlet's --podman-version does; the reference is podman-systemd.unit(5)
(https://docs.podman.io/en/latest/markdown/podman-systemd.unit.5.html) and Podman's release notes.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from blueprint.paths import which


class Words(tuple):
    """A command line or a list of arguments. Quadlet splits Exec=, PodmanArgs=, Environment= and
    EnvironmentFile= into words, so a unit file quotes each word on its own (formats.py)."""


NO_WORDS = Words()


class InstanceName(str):
    """A value that names a template's instance with systemd's %i (ContainerName=litellm-%i): the
    one specifier blueprint writes; every other % in a value is escaped (formats.py)."""


@dataclass(frozen=True, order=True)
class PodmanVersion:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> PodmanVersion:
        match = re.search(r"(\d+)\.(\d+)", text)
        if not match:
            raise ValueError(text)
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


OLDEST = PodmanVersion(4, 4)  # the first Podman with Quadlet
# What Debian 13 ships; assumed when podman_version is "auto" and podman is not installed here.
DEFAULT = PodmanVersion(5, 4)

# The first Podman whose Quadlet knows each key or behaviour blueprint uses.
SINCE = {
    **{key: PodmanVersion(4, 5) for key in ("HealthCmd", "HealthInterval", "HealthTimeout", "HealthRetries")},
    "HealthOnFailure": PodmanVersion(4, 5),
    "Secret": PodmanVersion(4, 5),
    "relative Volume": PodmanVersion(4, 5),
    "ShmSize": PodmanVersion(4, 7),
    "unit subdirectories": PodmanVersion(4, 7),
    **{key: PodmanVersion(4, 5) for key in ("HealthStartupCmd", "HealthStartupInterval", "HealthStartupTimeout")},
    "Notify=healthy": PodmanVersion(5, 0),
    "templates": PodmanVersion(5, 0),
    "StopTimeout": PodmanVersion(5, 0),
    "Memory": PodmanVersion(5, 5),
}


@dataclass(frozen=True)
class Podman:
    """The Podman the units are written for, and where that version was learnt."""

    version: PodmanVersion
    detected_from: str | None = None

    def has(self, feature: str) -> bool:
        return self.version >= SINCE[feature]

    @classmethod
    def target(cls, setting: str, environ: Mapping[str, str]) -> Podman:
        """The config's version, or ("auto") the installed podman's, else Debian 13's."""
        if setting != "auto":
            return cls(PodmanVersion.parse(setting))
        return cls.installed(environ) or cls(DEFAULT)

    @classmethod
    def installed(cls, environ: Mapping[str, str]) -> Podman | None:
        """The podman on PATH, as `podman --version` says; None if there is none, or it says nothing."""
        binary = which("podman", environ)
        if binary is None:
            return None
        from blueprint import process
        from blueprint.errors import ToolError

        try:
            return cls(PodmanVersion.parse(process.text([binary, "--version"], timeout=20)), detected_from=binary)
        except (ToolError, ValueError):
            return None

    def lacks(self, newer: Podman) -> list[str]:
        """What units written for `newer` use that this Podman does not have."""
        return [feature for feature, since in SINCE.items() if self.version < since <= newer.version]


# ---- names ------------------------------------------------------------------------------------

_GENERATED = {".container": "{}.service", ".volume": "{}-volume.service", ".network": "{}-network.service"}

# The units blueprint names on a systemctl command line, and the podman volumes and networks it
# names in a command for a person to run. Neither may start with "-", or systemctl and podman would
# read the name as an option; both are checked wherever a name comes from a file (the manifest).
UNIT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9:_.@-]*\.(service|timer)\Z")
RESOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")  # podman's rule for volume and network names


def unit_of(filename: str) -> str:
    """The service Quadlet generates from a unit file: x.container -> x.service,
    x.volume -> x-volume.service, x.network -> x-network.service."""
    path = PurePosixPath(filename)
    return _GENERATED[path.suffix].format(path.stem)


def podman_name(filename: str) -> str:
    """The podman volume or network Quadlet creates from x.volume / x.network (no VolumeName=/
    NetworkName= set): systemd-x."""
    return f"systemd-{PurePosixPath(filename).stem}"


def mount_source(target: str, unit_file: str, unit_dir: Path, podman: Podman) -> str:
    """How a unit's Volume= names another file of the unit directory: relative to the unit file's
    folder where the target resolves it so (podman-systemd.unit(5), Volume=), else absolute."""
    if podman.has("relative Volume"):
        # Both are relative to the unit directory: anchored at "/", relpath never asks for the
        # current folder (which may have been deleted).
        mount = posixpath.relpath("/" + target, "/" + posixpath.dirname(unit_file))
        return mount if mount.startswith("../") else "./" + mount
    return str(unit_dir / target)


class Layout:
    """Where unit files land: in per-service folders, or all at the top before Podman 4.7."""

    def __init__(self, podman: Podman) -> None:
        self.nested = podman.has("unit subdirectories")

    def place(self, path: str) -> str:
        return path if self.nested else PurePosixPath(path).name


# ---- lowering keys to what the target knows ----------------------------------------------------


def lower(
    options: list[tuple[str, str, Any]], podman: Podman, *, then: tuple[tuple[str, Any], ...] = ()
) -> tuple[tuple[str, Any], ...]:
    """[Container] directives for (Quadlet key, podman run option, value) settings: the key where
    the target knows it, else its option, gathered into one PodmanArgs= at the end. `then` are
    directives that have no fallback, written after the keys."""
    directives = [(key, value) for key, _, value in options if podman.has(key)]
    fallback = [f"{option}={value}" for key, option, value in options if not podman.has(key)]
    return (*directives, *then, *([("PodmanArgs", Words(fallback))] if fallback else []))
