#!/usr/bin/env bash
# Build a local Debian bookworm base image where no container registry is reachable (only a Debian mirror):
#   tools/docker_base.sh [TAG]        (default TAG: processcube-base:bookworm; MIRROR=… picks another mirror)
# debootstrap --variant=minbase, trimmed the way debian:bookworm-slim is (no docs, man pages or locales), then
# `docker import`. Cached: does nothing when TAG exists (FORCE=1 rebuilds). Needs root, debootstrap and docker.
# Use it with `docker build --build-arg BASE_IMAGE=TAG .` (see docs/container.md).
set -euo pipefail

TAG=${1:-processcube-base:bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
DOCKER=${DOCKER:-docker}

if [[ -z ${FORCE:-} ]] && $DOCKER image inspect "$TAG" >/dev/null 2>&1; then
  echo "base image $TAG exists (FORCE=1 rebuilds it)"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }

root=$(mktemp -d /tmp/docker-base.XXXXXX)
chmod 755 "$root"  # mktemp makes it 0700: the image's / would be closed to every user but root
trap 'rm -rf "$root"' EXIT
start=$SECONDS

# What debian:bookworm-slim leaves out, set before any package is unpacked.
mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
cat > "$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
CFG

echo "debootstrap bookworm from $MIRROR into $root"
debootstrap --variant=minbase bookworm "$root" "$MIRROR" > "$root.log" 2>&1 \
  || { tail -20 "$root.log" >&2; echo "debootstrap failed (log: $root.log)" >&2; exit 1; }
rm -f "$root.log"

security=${MIRROR%/debian}/debian-security
cat > "$root/etc/apt/sources.list" <<LIST
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $security bookworm-security main
LIST
# apt inside containers: no recommends, no cached .debs, no translations (as in the official images).
cat > "$root/etc/apt/apt.conf.d/docker" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
CFG
# A mirror serving a dated snapshot (as the host's does, when its apt is told so) has an expired Release file.
if apt-config dump 2>/dev/null | grep -q '^Acquire::Check-Valid-Until "false"'; then
  echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/snapshot-mirror"
fi
# debootstrap unpacks its first packages without dpkg, so the excludes above missed them.
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/var/log/*.log "$root"/tmp/* "$root"/dev/*
: > "$root/etc/machine-id"

tar -C "$root" --numeric-owner -c . | $DOCKER import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' - "$TAG" >/dev/null
echo "base image $TAG built in $((SECONDS - start)) s ($($DOCKER image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
