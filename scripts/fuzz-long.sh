#!/usr/bin/env bash
# The long fuzz run: every target of tests/fuzz.rs, optimized, with CASES inputs
# per target (the signature and pull-secret targets a quarter of that). The default, 1,700,000,
# gives 6 x 1.7M + 2 x 425k = 11 million inputs in all. Prints each target's count
# and rate, then the total. A failure is shrunk and printed, and the script fails.
#
# Usage: scripts/fuzz-long.sh [CASES]     (THREADS=N: test threads, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-1700000}"
log="${FUZZ_LOG:-target/fuzz-long.log}"
mkdir -p "$(dirname "$log")"
started=$(date +%s)
status=0
IMAGEGATE_FUZZ_CASES="$cases" CARGO_INCREMENTAL=0 \
  cargo test --release --locked --test fuzz -- --nocapture --test-threads "${THREADS:-2}" \
  2>&1 | tee "$log" || status=$?
wall=$(( $(date +%s) - started ))
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
