#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, then runs every check CI
# runs: formatting, lints, unit and integration tests (tests/image.rs builds the
# container image with scripts/build-image.sh and pushes it to the test registry),
# and a build of the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v buildah >/dev/null || need+=(buildah)
command -v musl-gcc >/dev/null || need+=(musl-tools)
command -v tar >/dev/null || need+=(tar)
command -v gzip >/dev/null || need+=(gzip)
# scripts/bench-h2load.sh's load generator.
command -v h2load >/dev/null || need+=(nghttp2-client)
[ -s /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing ${need[*]} (the test registry, the image build and their tools)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
./scripts/toolchain.sh
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
# The container image's static binary.
rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl ||
  rustup target add x86_64-unknown-linux-musl

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
cargo bench --locked --no-run
# The memory goal, on the release binary the benches' build just made: at most
# 32,000,000 bytes of RSS with 10,000 cached image facts (README, "Memory"),
# measured and bounded on 2 cores, as CI has.
IMAGEGATE_MEMORY_TEST_BIN="$PWD/target/release/imagegate" \
  IMAGEGATE_MEMORY_TEST_MAX_RSS=32000000 \
  cargo test --locked --test cache_memory -- --nocapture
