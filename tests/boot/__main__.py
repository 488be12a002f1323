"""The booted machine from a shell: `scripts/boot-stack COMMAND` (python -m tests.boot COMMAND)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.boot import images, roots
from tests.boot.harness import PROJECT, Host, summary, unavailable
from tests.boot.processes import BootError, attach_read_only, say

USAGE = """usage: scripts/boot-stack COMMAND
  up                  build or reuse the roots, enter the namespace, start bp's systemd --user, build the images
  install [DIR]       pip-install the checkout DIR (default: this one) into /opt/blueprint inside
  as-user CMD...      run CMD as bp (uid 1500); stdin, stdout and the exit status pass through
  in-manager CMD...   the same, inside bp's user manager (podman needs it)
  wheels              build the LiteLLM wheelhouse (no root needed) and print its folder
  image NAME...       build stand-in images (e.g. ghcr.io/berriai/litellm:v1.99.6, docker.io/library/caddy:2)
  reset               stop the stack; remove containers, volumes, networks, secrets, bp's HOME; keep images
  down                end every process and cgroup of the booted root, restore ip_forward; keep the cache
  status              what runs
Cache: $TOOLS_DIR/boot (TOOLS_DIR defaults to the checkout's .tools)."""


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "_attach":
        attach_read_only(*args)
        return 0
    if command == "wheels":  # no root needed: scripts/install-tools.sh installs the host's LiteLLM from them
        host, version = Host(), images.litellm_version()
        try:
            images.ensure_wheelhouse(host.wheels, version, host.logs / "wheelhouse.log")
        except images.ImageError as error:
            say(f"error: {error}")
            return 1
        print(images.wheel_folder(host.wheels, version))
        return 0
    if command not in ("up", "install", "as-user", "in-manager", "image", "reset", "down", "status"):
        print(USAGE, file=sys.stderr)
        return 2
    reason = unavailable()
    if reason:
        say(reason)
        return 1
    host = Host()
    try:
        if command == "up":
            host.up()
        elif command == "install":
            host.install(Path(args[0]) if args else PROJECT)
        elif command == "as-user":
            return host.user(args, check=False, capture=False, timeout=None).returncode
        elif command == "in-manager":
            return host.manager(args, check=False, capture=False, timeout=None).returncode
        elif command == "image":
            say(summary(host.ensure_image(*args)))
        elif command == "reset":
            host.reset()
        elif command == "down":
            host.down()
        else:
            print(host.status())
    except (BootError, images.ImageError, roots.RootError) as error:
        say(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
