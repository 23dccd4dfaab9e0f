#!/usr/bin/env bash
# Builds the imagegate container image without a Docker daemon: a static musl
# binary (cargo), then an image FROM scratch (Debian's buildah, vfs storage, chroot
# isolation), optionally pushed to a registry.
#
#   scripts/build-image.sh [--profile release|image-ci] [--tag NAME]
#                          [--push REFERENCE] [--tls-verify=false] [--digestfile FILE]
#
#   --profile   cargo profile of the binary: `release` (default, for images you
#               deploy: about 9 min cold on 2 cores) or `image-ci` (unoptimised,
#               about half the build time; what the tests build)
#   --tag       local image name (default imagegate:dev)
#   --push      push to this reference (docker://REFERENCE), e.g.
#               harbor.example.com/platform/imagegate:0.1.0
#   --tls-verify=false   push to a registry over plain HTTP or with an untrusted
#               certificate (local test registries only)
#   --digestfile FILE    write the pushed manifest's digest to FILE
#
# Needs: rustup's x86_64-unknown-linux-musl target, Debian's musl-tools and
# buildah, and /etc/ssl/certs/ca-certificates.crt (Debian's ca-certificates).
# The binary is built under $IMAGEGATE_IMAGE_TARGET_DIR (default target/image);
# buildah's storage lives in a temporary directory removed on exit, so nothing is
# left in /var/lib/containers.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
profile=release
tag=imagegate:dev
push=""
tls_verify=true
digestfile=""
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --push) push="$2"; shift 2 ;;
    --tls-verify=false) tls_verify=false; shift ;;
    --digestfile) digestfile="$2"; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "build-image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

missing=()
rustup target list --installed 2>/dev/null | grep -qx "$target" ||
  missing+=("the Rust target: rustup target add $target")
command -v musl-gcc >/dev/null || missing+=("musl-gcc: apt-get install musl-tools")
command -v buildah >/dev/null || missing+=("buildah: apt-get install buildah")
cacerts=/etc/ssl/certs/ca-certificates.crt
[ -s "$cacerts" ] || missing+=("$cacerts: apt-get install ca-certificates")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'build-image.sh: missing %s\n' "${missing[@]}" >&2
  echo "(scripts/test.sh installs all of them)" >&2
  exit 1
fi

export CARGO_TARGET_DIR="${IMAGEGATE_IMAGE_TARGET_DIR:-$PWD/target/image}"
commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
start=$(date +%s)
# The commit goes into the binary (imagegate_build_info) and the image labels.
IMAGEGATE_GIT_COMMIT="$commit" CARGO_INCREMENTAL=0 \
  cargo build --locked --profile "$profile" --target "$target"
built=$(date +%s)
binary="$CARGO_TARGET_DIR/$target/$profile/imagegate"
echo "build-image.sh: $binary built in $((built - start)) s"

work="$(mktemp -d "${TMPDIR:-/tmp}/imagegate-image.XXXXXX")"
buildah_() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }
cleanup() {
  buildah_ rm --all >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/context"
cp "$binary" "$work/context/imagegate"
cp "$cacerts" "$work/context/ca-certificates.crt"
cp Containerfile "$work/context/Containerfile"
buildah_ bud --isolation chroot --format oci --layers=false \
  --label "org.opencontainers.image.title=imagegate" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$commit" \
  -f "$work/context/Containerfile" -t "$tag" "$work/context"
echo "build-image.sh: image $tag built in $(($(date +%s) - built)) s (binary: $profile profile)"

if [ -n "$push" ]; then
  args=(--tls-verify="$tls_verify")
  [ -n "$digestfile" ] && args+=(--digestfile "$digestfile")
  buildah_ push "${args[@]}" "$tag" "docker://$push"
  echo "build-image.sh: pushed $push"
fi
