#!/usr/bin/env bash
# A newcomer's fresh machine: a clean Debian bookworm container with Python, make and git
# only (no Chromium, promtool, Docker, PostgreSQL or writable cgroup), a fresh clone of this
# repository's commit in root's home (0700, as a newcomer's and a container's), then
# `make test-quick` (or the make target given) in it. Every test whose system tool is missing
# must skip, and the run ends with one line of what was skipped and how to install it; what
# the container has (git, and PostgreSQL from the pgserver wheel) must run, not skip.
#
#   scripts/fresh_machine.sh [TARGET [REF [VAR=value...]]]   (default: test-quick HEAD;
#   `make fresh-machine-test`), e.g. test HEAD PYTEST_ARGS=tests/test_db.py
#
# Needs root, debootstrap and a Docker engine; nothing is pulled: the base image is made from
# Debian packages (the mirror this machine's apt uses) and `docker import`ed. pip in the
# container uses this machine's pip configuration and CA bundle, so a proxy with its own CA
# or a local index works as it does here. Committed work only (a clone of REF). The image,
# the container and the temporary files are removed at the end; set
# LOADLAB_FRESH_ROOTFS=DIR to reuse (or keep) a debootstrapped tree between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${1:-test-quick}"
ref="${2:-HEAD}"
shift $(($# < 2 ? $# : 2))  # the rest goes to make: VAR=value settings
commit=$(git rev-parse --verify "$ref^{commit}")
for tool in docker debootstrap; do
    command -v "$tool" >/dev/null || { echo "fresh_machine: $tool not found" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || { echo "fresh_machine: no Docker engine answers" >&2; exit 2; }

work=$(mktemp -d /tmp/loadlab-fresh.XXXXXX)
image="loadlab-fresh-machine:${commit:0:12}-$$"
container="loadlab-fresh-machine-$$"
cleanup() {
    docker rm -f "$container" >/dev/null 2>&1 || true
    docker rmi "$image" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# The Debian archive this machine's apt already uses (deb822 *.sources or one-line lists).
mirror=$( { cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
              | awk 'tolower($1) == "uris:" { print $2; exit }'
            cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
              | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; exit } }'
          } | head -n 1 || true)

rootfs="${LOADLAB_FRESH_ROOTFS:-$work/rootfs}"
if [ ! -x "$rootfs/usr/bin/python3" ]; then
    echo "fresh_machine: debootstrap bookworm into $rootfs (about a minute)" >&2
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,make,git,ca-certificates \
        bookworm "$rootfs" ${mirror:+"$mirror"} >"$work/debootstrap.log" 2>&1 \
        || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
fi
tar -C "$rootfs" -c . | docker import - "$image" >/dev/null

# The commit alone, in a bare repository of its own that the container clones.
git init -q --bare "$work/loadlab.git"
git push -q "$work/loadlab.git" "$commit:refs/heads/main"
git -C "$work/loadlab.git" symbolic-ref HEAD refs/heads/main

# pip as configured here: its configuration files and PIP_* settings, and the CA bundle.
env_args=()
while IFS='=' read -r name _; do
    case "$name" in PIP_CERT) ;; PIP_*) env_args+=(--env "$name") ;; esac
done < <(env)
env_args+=(--env PIP_CERT=/etc/loadlab-host-ca.crt)
# What the container has may not skip: git, and PostgreSQL (`make install` brings the
# pgserver wheel's, which must start as root from the 0700 checkout).
env_args+=(--env LOADLAB_REQUIRE_GIT=1 --env LOADLAB_REQUIRE_POSTGRES=1)

docker create --name "$container" --workdir /root "${env_args[@]}" "$image" \
    bash -c 'set -e
        git clone -q /root/loadlab.git /root/loadlab
        cd /root/loadlab
        echo "fresh_machine: $(. /etc/os-release; echo "$PRETTY_NAME"), $(python3 --version)," \
             "user $(id -un), checkout $PWD at $(git log -1 --format=%h), make $0 $*"
        exec make "$0" "$@"' "$target" "$@" >/dev/null
# Into the container as one archive of /etc and /root (directories created as needed):
# the commit, the CA bundle and pip's configuration files.
extra="$work/extra"
mkdir -p "$extra/etc" "$extra/root"
chmod 0755 "$extra/etc"
chmod 0700 "$extra/root"
mv "$work/loadlab.git" "$extra/root/loadlab.git"
cp -L /etc/ssl/certs/ca-certificates.crt "$extra/etc/loadlab-host-ca.crt"
if [ -f /etc/pip.conf ]; then cp -L /etc/pip.conf "$extra/etc/pip.conf"; fi
if [ -d /etc/xdg/pip ]; then mkdir -p "$extra/etc/xdg" && cp -rL /etc/xdg/pip "$extra/etc/xdg/"; fi
if [ -f "$HOME/.config/pip/pip.conf" ]; then
    mkdir -p "$extra/root/.config/pip"
    cp -L "$HOME/.config/pip/pip.conf" "$extra/root/.config/pip/pip.conf"
fi
tar -C "$extra" -c etc root | docker cp - "$container:/"
started=$SECONDS
status=0
docker start --attach "$container" || status=$?
elapsed=$((SECONDS - started))
echo "fresh_machine: make $target exited $status after $((elapsed / 60)) min $((elapsed % 60)) s" >&2
if [ "$status" -ne 0 ]; then exit "$status"; fi
