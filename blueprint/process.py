"""Running the programs blueprint drives (systemctl, podman, journalctl, ...).

One place decides what a missing program, a hang and a failure look like, so each becomes a
ToolError that names the command and its last words (pre-commit's `cmd_output`). Every call has a
timeout (a `systemctl restart` behind `Notify=healthy` can otherwise wait as long as the unit's
start timeout), or for a stream in or out (a dump taken or restored), a limit on silence.
"""

from __future__ import annotations

import os
import select
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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


def feed(
    argv: Sequence[str],
    chunks: Iterable[bytes],
    *,
    sink: Callable[[bytes], object] | None = None,
    idle: float = IDLE_TIMEOUT,
    hint: str | None = None,
) -> None:
    """Run a command whose stdin may be larger than memory (a dump being restored), written chunk
    by chunk as it takes them; its stdout goes to `sink` (else nowhere).

    No limit on the whole: loading a large database takes as long as it takes. It must keep
    moving: taking no input and writing nothing for `idle` seconds, it is taken for hung, killed,
    and a ToolTimeout raised.
    """
    try:
        child = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise _not_found(argv[0]) from None
    with child:
        try:
            error = _pump(child, iter(chunks), sink, idle)
        except BaseException:
            child.kill()  # hung, the input failed, or Ctrl-C: never leave it on a half-fed stdin
            raise
        if error is None:
            raise ToolTimeout(f"`{_shown(argv)}` took no input and wrote nothing for {idle:.0f} s: stopped", hint=hint)
    if child.returncode != 0:
        raise ToolError(f"`{_shown(argv)}` failed: {last_words(error, child.returncode)}", hint)


_TAIL = 1 << 16  # bytes of a fed command's stderr kept for its last words


def _pump(child: subprocess.Popen, chunks: Iterator[bytes], sink, idle: float) -> bytes | None:
    """Write `chunks` to the child's stdin as it takes them, reading what it prints meanwhile (a
    command whose output pipe is full stops taking input); the tail of its stderr once it closed
    its outputs, or None when nothing moved for `idle` seconds."""
    stdin, out, err = child.stdin.fileno(), child.stdout.fileno(), child.stderr.fileno()
    os.set_blocking(stdin, False)  # a write takes what fits in the pipe and never waits for the rest
    reading, error = {out, err}, bytearray()
    pending = _next(chunks)
    while reading or pending is not None:
        if pending is not None and not pending:
            pending = _next(chunks)
            if pending is None:
                child.stdin.close()  # the end of the input
                continue
        ready, writable, _ = select.select(sorted(reading), [stdin] if pending is not None else [], [], idle)
        if not ready and not writable:
            child.kill()
            return None
        for fd in ready:
            data = os.read(fd, 1 << 16)
            if not data:
                reading.discard(fd)
            elif fd == out and sink is not None:
                sink(data)
            elif fd == err:
                error = (error + data)[-_TAIL:]
        if writable:
            try:
                pending = pending[os.write(stdin, pending) :]
            except BlockingIOError:
                pass
            except BrokenPipeError:  # it stopped reading (psql's ON_ERROR_STOP): its status says why
                pending = None
                child.stdin.close()
    child.wait()
    return bytes(error)


def _next(chunks: Iterator[bytes]) -> memoryview | None:
    """The next chunk of input that holds bytes; None at its end."""
    for chunk in chunks:
        if chunk:
            return memoryview(chunk)
    return None


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
