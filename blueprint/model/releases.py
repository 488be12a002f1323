"""LiteLLM's release tags: which release a tag names, read one way by the config's rules and by upgrade.

LiteLLM tags its images vX.Y.Z, its longer-tested build of a release vX.Y.Z-stable (and the
patches of that build vX.Y.Z-stable.patch.N), its release candidates vX.Y.Z.rc.N, and builds of
its main branch main-vX.Y.Z. Nightly builds (vX.Y.Z-nightly) and -latest / -main tags are pushed
again and again: they float. Two tags are compared by their numbers, never as strings (rc.10 comes
after rc.2), and a malicious release is caught by its numbers, however the tag writes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum

# LiteLLM releases that were malicious uploads (https://osv.dev/vulnerability/MAL-2026-2144).
MALICIOUS = {(1, 82, 7): "MAL-2026-2144", (1, 82, 8): "MAL-2026-2144"}
# A number of a LiteLLM version has at most this many digits: anything longer is a typo.
DIGITS = 4

# The three numbers, then anything that does not go on with a digit: a malicious release is found
# by its numbers whatever follows them.
_VERSION = re.compile(r"(?P<main>main-)?v?(?P<numbers>\d+\.\d+\.\d+)(?P<rest>\D.*)?", re.DOTALL)
_STABLE = re.compile(rf"stable(?:[.-]patch[.-]?(?P<n>\d{{1,{DIGITS}}}))?")
_CANDIDATE = re.compile(rf"rc(?:[.-]?(?P<n>\d{{1,{DIGITS}}}))?")
_FLOATING = re.compile(r"(?P<word>nightly|latest|main|dev)(?:[.-].*)?", re.DOTALL)
EXAMPLE = "v1.99.5"


class Stage(IntEnum):
    """Where a build stands beside its release, in the order they come."""

    CANDIDATE = 0  # vX.Y.Z.rc.N: before the release
    RELEASE = 1  # vX.Y.Z, and its -stable build
    PATCH = 2  # vX.Y.Z-stable.patch.N: after it


@dataclass(frozen=True, order=True)
class Release:
    """One release LiteLLM published; ordered as they came out."""

    numbers: tuple[int, int, int]
    stage: Stage = Stage.RELEASE
    serial: int = 0  # the N of rc.N or patch.N
    tag: str = field(default="", compare=False)

    @property
    def version(self) -> str:
        return ".".join(map(str, self.numbers))


class TagProblem(Exception):
    """Why a tag that looks like a LiteLLM version names no release to run."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


class Floating(TagProblem):
    """A version tag LiteLLM pushes again and again (-nightly, -latest, -main)."""


class Unknown(TagProblem):
    """A version with a suffix LiteLLM does not use: perhaps a build of one's own."""


def parse(tag: str) -> Release | None:
    """The release `tag` names; None when it holds no version at all (latest, a name of one's own).

    Raises TagProblem for a version it cannot trust: a malicious release, a number written with
    leading zeros or longer than LiteLLM's, a floating suffix (Floating), an unknown one (Unknown).
    """
    match = _VERSION.fullmatch(tag)
    if match is None:
        return None
    parts = match["numbers"].split(".")
    if any(len(part) > DIGITS for part in parts):
        raise TagProblem(
            f"tag {tag!r} is not a LiteLLM version: its numbers have at most {DIGITS} digits", hint=f"e.g. {EXAMPLE}"
        )
    numbers = (int(parts[0]), int(parts[1]), int(parts[2]))
    if numbers in MALICIOUS:
        version = ".".join(map(str, numbers))
        raise TagProblem(
            f"LiteLLM {version} was a malicious release ({MALICIOUS[numbers]})",
            hint="pin another release, e.g. ghcr.io/berriai/litellm:v1.99.4",
        )
    if any(len(part) > 1 and part.startswith("0") for part in parts):
        written = "v" + ".".join(map(str, numbers))
        raise TagProblem(
            f"tag {tag!r}: LiteLLM writes its versions without leading zeros", hint=f"did you mean {written}?"
        )
    stage, serial = _suffix(tag, match["rest"])
    return Release(numbers, stage, serial, tag)


def _suffix(tag: str, rest: str | None) -> tuple[Stage, int]:
    if rest is None:
        return Stage.RELEASE, 0
    suffix = rest[1:] if rest[0] in "-." else None
    if suffix is not None:
        if found := _STABLE.fullmatch(suffix):
            return (Stage.PATCH, int(found["n"])) if found["n"] else (Stage.RELEASE, 0)
        if found := _CANDIDATE.fullmatch(suffix):
            return Stage.CANDIDATE, int(found["n"] or 0)
        if found := _FLOATING.fullmatch(suffix):
            raise Floating(
                f"tag {tag!r} floats: LiteLLM pushes its -{found['word']} tags again and again, so every pull may "
                "bring a different build",
                hint=f"name one release, e.g. {EXAMPLE}",
            )
    raise Unknown(
        f"tag {tag!r} is not a release tag of LiteLLM",
        hint=f"LiteLLM tags its releases vX.Y.Z, some with -stable (or -stable.patch.N) or .rc.N: e.g. {EXAMPLE}",
    )
