"""Running the programs blueprint drives (systemctl, podman, journalctl, ...).

One place decides what a missing program, a hang and a failure look like, so each becomes a
ToolError that names the command and its last words (pre-commit's `cmd_output`). Every call has a
timeout (a `systemctl restart` behind `Notify=healthy` can otherwise wait as long as the unit's
start timeout), or for a stream, a limit on silence.
"""

from __future__ import annotations

import os
import select
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from blueprint.errors import ToolError, ToolTimeout

TIMEOUT = 120  # seconds; callers that wait on a service say how long themselves
IDLE_TIMEOUT = 600  # seconds a streamed command (a dump) may go without writing


def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    stdout: int | IO[bytes] = subprocess.PIPE,
    timeout: float = TIMEOUT,
    env: Mapping[str, str] | None = None,
    hint: str | None = None,
) -> bytes:
    """Run a command to its end; its stdout (empty when redirected). Failures raise ToolError."""
    try:
        result = subprocess.run(
            list(argv),
            input=input,
            stdout=stdout,
            stderr=subprocess.PIPE,
            timeout=timeout,
            env=None if env is None else dict(env),
            check=False,
        )
    except FileNotFoundError:
        raise _not_found(argv[0]) from None
    except subprocess.TimeoutExpired:
        raise ToolTimeout(f"`{_shown(argv)}` did not finish within {timeout:.0f} s", hint=hint) from None
    if result.returncode != 0:
        raise ToolError(
            f"`{_shown(argv)}` failed: {last_words(result.stderr or result.stdout, result.returncode)}", hint
        )
    return result.stdout or b""


def status(argv: Sequence[str], *, timeout: float = TIMEOUT, hint: str | None = None) -> int:
    """Run a command that answers with its exit status (`podman volume exists`); ToolError only
    when it cannot be run or does not finish."""
    try:
        return subprocess.run(
            list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout, check=False
        ).returncode
    except FileNotFoundError:
        raise _not_found(argv[0]) from None
    except subprocess.TimeoutExpired:
        raise ToolTimeout(f"`{_shown(argv)}` did not finish within {timeout:.0f} s", hint=hint) from None


def text(argv: Sequence[str], **options) -> str:
    """run(), its stdout as text."""
    return run(argv, **options).decode("utf-8", errors="replace")


def stream(
    argv: Sequence[str], sink: Callable[[bytes], object], *, idle: float = IDLE_TIMEOUT, hint: str | None = None
) -> None:
    """Run a command whose stdout may be larger than memory (a database dump), chunk by chunk.

    However long it takes, it must keep writing: silent for `idle` seconds, it is taken for hung,
    killed, and a ToolTimeout raised (a nightly backup must not wait forever on a stuck container).
    """
    try:
        child = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise _not_found(argv[0]) from None
    with child:
        out = child.stdout.fileno()
        while True:
            if not select.select([out], [], [], idle)[0]:
                child.kill()
                raise ToolTimeout(f"`{_shown(argv)}` wrote nothing for {idle:.0f} s: stopped", hint=hint)
            chunk = os.read(out, 1 << 16)
            if not chunk:
                break
            sink(chunk)
        error = child.stderr.read()
    if child.returncode != 0:
        raise ToolError(f"`{_shown(argv)}` failed: {last_words(error, child.returncode)}", hint)


def _not_found(program: str) -> ToolError:
    return ToolError(f"{program}: not found", hint=f"install {program}, or put the folder that holds it on PATH")


def last_words(output: bytes | str | None, returncode: int) -> str:
    """The last non-empty line a failed program printed, else its exit status."""
    if isinstance(output, bytes):
        output = output.decode("utf-8", errors="replace")
    lines = [line for line in (output or "").strip().splitlines() if line.strip()]
    return lines[-1].strip()[-300:] if lines else f"exit status {returncode}"


def _shown(argv: Sequence[str]) -> str:
    """The command as an error names it: the program and its first arguments (never stdin)."""
    words = list(argv)
    return " ".join(words[:5]) + (" ..." if len(words) > 5 else "")
