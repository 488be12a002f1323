"""LiteLLM's release tags: which release a tag names, read one way by the config's rules and by upgrade.

LiteLLM tags its images vX.Y.Z (or X.Y.Z); up to 1.83 its longer-tested build of a release was
vX.Y.Z-stable, whose patches were vX.Y.Z-stable.patch.N and later vX.Y.Z-stable.N (from 1.84 on:
vX.Y.Z.postN), its release candidates vX.Y.Z.rc.N (rcN, -rc.N), builds of its main branch
main-vX.Y.Z, and for a while its stable builds litellm_stable_release_branch-vX.Y.Z-stable
(https://docs.litellm.ai/release_notes, "cleaner release versions"). Nightly builds
(vX.Y.Z-nightly) and -latest / -main tags are pushed again and again: they float. Two tags are
compared by their numbers, never as strings (rc.10 comes after rc.2), and a malicious release is
caught by its numbers wherever a tag writes them and however (V1.82.7, a prefix of one's own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

# LiteLLM releases that were malicious uploads (https://osv.dev/vulnerability/MAL-2026-2144).
MALICIOUS = {(1, 82, 7): "MAL-2026-2144", (1, 82, 8): "MAL-2026-2144"}
# A number of a LiteLLM version has at most this many digits: anything longer is a typo.
DIGITS = 4

# Digits are [0-9], never \d: Python's \d and int() read the digits of every script
# (an Arabic-Indic five would make v1.99.5 of v1.99.\u0665).
# The three numbers anywhere in a tag, for the malicious check.
_ANY_VERSION = re.compile(r"(?<![0-9])(?=([0-9]+)\.([0-9]+)\.([0-9]+)(?![0-9]))")
# A tag LiteLLM writes: a prefix it uses, the three numbers, then anything that does not go on
# with a digit.
_VERSION = re.compile(
    r"(?:(?:main|litellm_stable_release_branch)-)?(?P<v>[vV]?)(?P<numbers>[0-9]+\.[0-9]+\.[0-9]+)"
    r"(?P<rest>[^0-9].*)?",
    re.DOTALL,
)
_FLOATING = re.compile(r"[.-](?P<word>nightly|latest|main|dev)(?:[.-].*)?", re.DOTALL)
EXAMPLE = "v1.99.5"


class Stage(IntEnum):
    """Where a build stands beside its release, in the order they come."""

    CANDIDATE = 0  # vX.Y.Z.rc.N: before the release
    RELEASE = 1  # vX.Y.Z, and its -stable build
    PATCH = 2  # vX.Y.Z-stable.N, -stable.patch.N, .postN: after it


_N = rf"(?P<n>[0-9]{{1,{DIGITS}}})"
# The suffixes of a release: where the build stands beside it.
_SUFFIXES = (
    (re.compile(r"[.-]stable"), Stage.RELEASE),
    (re.compile(rf"[.-]stable[.-](?:patch[.-]?)?{_N}"), Stage.PATCH),
    (re.compile(rf"[.-]?post[.-]?{_N}"), Stage.PATCH),
    (re.compile(rf"[.-]?rc(?:[.-]?{_N})?"), Stage.CANDIDATE),
)


@dataclass(frozen=True, order=True)
class Release:
    """One release LiteLLM published; ordered as they came out."""

    numbers: tuple[int, int, int]
    stage: Stage = Stage.RELEASE
    serial: int = 0  # the N of rc.N, stable.N, patch.N or postN


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

    Raises TagProblem for a version it cannot trust: a malicious release (wherever the tag names
    it), a number written with leading zeros or longer than LiteLLM's, an uppercase V, a floating
    suffix (Floating), an unknown one or prefix (Unknown).
    """
    _refuse_malicious(tag)
    match = _VERSION.fullmatch(tag)
    if match is None:
        if _ANY_VERSION.search(tag):
            raise Unknown(f"tag {tag!r} is not a release tag of LiteLLM", hint=_TAGS)
        return None
    parts = match["numbers"].split(".")
    if any(len(part) > DIGITS for part in parts):
        raise TagProblem(
            f"tag {tag!r} is not a LiteLLM version: its numbers have at most {DIGITS} digits", hint=f"e.g. {EXAMPLE}"
        )
    numbers = (int(parts[0]), int(parts[1]), int(parts[2]))
    written = "v" + ".".join(map(str, numbers))
    if any(_leading_zero(part) for part in parts):
        raise TagProblem(
            f"tag {tag!r}: LiteLLM writes its versions without leading zeros", hint=f"did you mean {written}?"
        )
    if match["v"] == "V":
        raise TagProblem(f"tag {tag!r}: LiteLLM writes its tags with a lowercase v", hint=f"did you mean {written}?")
    stage, serial = _suffix(tag, match["rest"])
    return Release(numbers, stage, serial)


def _refuse_malicious(tag: str) -> None:
    for found in _ANY_VERSION.finditer(tag):
        # Compared as digits, not int(): a number of thousands of digits is no version either.
        numbers = tuple(part.lstrip("0") or "0" for part in found.groups())
        for known, advisory in MALICIOUS.items():
            if numbers == tuple(map(str, known)):
                raise TagProblem(
                    f"LiteLLM {'.'.join(numbers)} was a malicious release ({advisory})",
                    hint="pin another release, e.g. ghcr.io/berriai/litellm:v1.99.4",
                )


def _leading_zero(number: str) -> bool:
    return len(number) > 1 and number.startswith("0")


_TAGS = (
    f"LiteLLM tags its releases vX.Y.Z, some with -stable (or -stable.N, -stable.patch.N, .postN) or .rc.N: "
    f"e.g. {EXAMPLE}"
)


def _suffix(tag: str, rest: str | None) -> tuple[Stage, int]:
    if rest is None:
        return Stage.RELEASE, 0
    for pattern, stage in _SUFFIXES:
        if found := pattern.fullmatch(rest):
            serial = found.groupdict().get("n") or "0"
            if _leading_zero(serial):
                raise TagProblem(
                    f"tag {tag!r}: LiteLLM writes its build numbers without leading zeros",
                    hint=f"did you mean {tag[: len(tag) - len(serial)]}{int(serial)}?",
                )
            return stage, int(serial)
    if found := _FLOATING.fullmatch(rest):
        raise Floating(
            f"tag {tag!r} floats: LiteLLM pushes its -{found['word']} tags again and again, so every pull may "
            "bring a different build",
            hint=f"name one release, e.g. {EXAMPLE}",
        )
    raise Unknown(f"tag {tag!r} is not a release tag of LiteLLM", hint=_TAGS)


# ---- tags in image references ----------------------------------------------------------------------


def tag_of(image: str) -> str:
    """The tag of an image reference ('' for none): a digest after it and a registry port before it aside."""
    name = image.partition("@")[0]
    last = name.rsplit("/", 1)[-1]
    return last.partition(":")[2]


def with_tag(image: str, tag: str) -> str:
    """The same repository at another tag (a digest is dropped: it names the old release)."""
    head, slash, last = image.partition("@")[0].rpartition("/")
    return f"{head}{slash}{last.partition(':')[0]}:{tag}"
