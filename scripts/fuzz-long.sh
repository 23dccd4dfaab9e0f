#!/usr/bin/env bash
# The long fuzz run: every target of tests/fuzz.rs, optimized, each with its own
# number of inputs (the fast ones get more), THREADS targets at a time. The default
# plan is 10.25 million inputs in all. Prints each target's count and rate, then
# the total. A failure is shrunk and printed with its seed, and the script fails.
#
# Usage: scripts/fuzz-long.sh [SCALE]
#   SCALE multiplies the plan (default 1; 0.01 is a two-minute smoke run).
#   THREADS=N targets at a time (default 2). FUZZ_LOG=path (default target/fuzz-long.log).
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-1}"
log="${FUZZ_LOG:-target/fuzz-long.log}"
mkdir -p "$(dirname "$log")"
: > "$log"
# target inputs (tests/fuzz.rs divides the signature and pull-secret counts by 4,
# so the plan gives them 4x what they should run).
plan="image_references 3000000
manifests 2000000
admission_bodies 2000000
signatures 4000000
docker_configs 1000000
admission_reviews 500000
policy_files 500000
pull_secrets 1000000"
started=$(date +%s)
# Built once; the targets then run the test binary itself.
FUZZ_BIN=$(CARGO_INCREMENTAL=0 cargo test --release --locked --test fuzz --no-run \
  --message-format=json | grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4)
export FUZZ_BIN
[ -x "$FUZZ_BIN" ] || { echo "fuzz-long: the fuzz test binary did not build" >&2; exit 2; }
status=0
echo "$plan" | awk -v s="$scale" '{ n = int($2 * s); if (n < 4) n = 4; print $1, n }' |
  xargs -P "${THREADS:-2}" -L 1 sh -c '
    IMAGEGATE_FUZZ_CASES="$1" "$FUZZ_BIN" --exact "$0" --nocapture 2>&1' \
  >> "$log" || status=$?
wall=$(( $(date +%s) - started ))
grep -E '^fuzz-stats |panicked|FAILED|minimal failing' "$log" || true
awk -v wall="$wall" '
  /^fuzz-stats / {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    inputs += f["inputs"]; cpu += f["seconds"]
  }
  END {
    printf "fuzz-long: %d inputs in all, %.0f s of target time, %d s wall (build included): %.0f inputs/s per test thread\n",
      inputs, cpu, wall, (cpu > 0 ? inputs / cpu : 0)
  }' "$log"
exit "$status"
