#!/bin/bash
# The namespace holder. harness.py starts it as
#   unshare --mount --propagation private bash holder.sh ROOT WHEELS UID
# so it runs in a fresh private mount namespace, where nothing it mounts reaches the host. It makes
# ROOT (the Debian trixie tree) that namespace's root with pivot_root, then holds the namespace open;
# every later command joins it with `nsenter -t <this PID> -m`.
#
# pivot_root, not chroot: the kernel refuses to create user namespaces (rootless Podman) for a
# process whose root is a chroot ("cannot clone: Operation not permitted").
set -euo pipefail
root=$1 wheels=$2 uid=$3

mount --bind "$root" "$root"                  # pivot_root wants the new root to be a mount point
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=755 tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"

# Podman keeps its locks in /dev/shm: a private one, so none outlives the namespace (or meets a
# stale one at the next start: "acquiring lock 0 for volume ...: file exists").
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"

# pasta (rootless networking) opens /dev/net/tun as the user; the host's node is 0600, so this
# namespace gets a private 0666 one (on a tmpfs: the host's /dev is not changed).
mount -t tmpfs -o mode=755 tmpfs "$root/dev/net"
mknod -m 666 "$root/dev/net/tun" c 10 200

# cgroup2 alone. The host mixes v1 and v2; with the v1 hierarchies visible, Podman walks v1
# controllers the user may not write ("mkdir /sys/fs/cgroup/memory/...: permission denied").
umount -R "$root/sys/fs/cgroup"
mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"

# Python wheels for the LiteLLM stand-in image, built on the host, read-only in here.
mount --bind "$wheels" "$root/srv/wheels"
mount -o remount,bind,ro "$root/srv/wheels"

# systemctl, systemd --user and Podman take this directory as the sign that systemd runs here.
install -d "$root/run/systemd/system"
install -d -o "$uid" -g "$uid" -m 700 "$root/run/user/$uid"

cd "$root"
pivot_root . .oldroot
umount -l /.oldroot
cd /
# Podman's mounts (container roots, volumes) must propagate between the namespace's processes.
mount --make-rshared /
touch /run/boot-holder.ready
exec sleep infinity
