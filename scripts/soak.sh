#!/usr/bin/env bash
# The soak run: the real binary against the real registry (Debian's docker-registry)
# at a steady rate for SECONDS (default 600), with a mix of CREATE and UPDATE,
# allowed and denied, cache hits and cold lookups of tags pushed as it runs.
# Asserts 0 errors and RSS flat within 10% after the warm-up; prints latency
# p50/p99/max and the RSS samples. The same test runs for 30 s in `cargo test`.
#
# Usage: scripts/soak.sh [SECONDS]
#   IMAGEGATE_SOAK_RATE   requests a second (default 40)
#   SOAK_PROFILE=release  build the binary and test optimized (default: debug, as CI)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
profile=()
[ "${SOAK_PROFILE:-debug}" = release ] && profile=(--release)
command -v docker-registry >/dev/null || {
  echo "soak: needs Debian's docker-registry (scripts/test.sh installs it)" >&2
  exit 2
}
export IMAGEGATE_SOAK_SECONDS="$seconds"
exec env CARGO_INCREMENTAL=0 cargo test "${profile[@]}" --locked --test soak -- --nocapture
