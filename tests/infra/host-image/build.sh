#!/usr/bin/env bash
# Builds the test host image: a debootstrap'ed Debian base, `docker import`ed, then the Dockerfile
# beside this script on top. Called by tests/infra/image.ts under a lock, with the image tag
# (which carries the content hash of this folder) and the Debian mirror to use.
#   build.sh IMAGE_TAG MIRROR_URL
set -euo pipefail
tag=$1
mirror=$2
here=$(cd "$(dirname "$0")" && pwd)
base_tag="${tag/labrig-test-host/labrig-test-debian-base}"

# Another process may have built it while we waited for the lock.
if docker image inspect "$tag" >/dev/null 2>&1; then exit 0; fi

if ! docker image inspect "$base_tag" >/dev/null 2>&1; then
  root=$(mktemp -d /var/tmp/labrig-debootstrap.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap bookworm from $mirror into $root (about a minute)" >&2
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,openssh-server,sudo,python3,iproute2,ca-certificates,curl,gnupg,procps,less \
    bookworm "$root/fs" "$mirror" >"$root/debootstrap.log" 2>&1 \
    || { tail -n 30 "$root/debootstrap.log" >&2; exit 1; }
  echo "$mirror" > "$root/fs/etc/labrig-test-mirror"
  rm -rf "$root/fs/var/cache/apt/archives/"*.deb "$root/fs/var/lib/apt/lists/"*_Packages
  tar -C "$root/fs" -c . | docker import - "$base_tag" >/dev/null
fi

DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$base_tag" -t "$tag" "$here" >/dev/null
echo "built $tag" >&2
