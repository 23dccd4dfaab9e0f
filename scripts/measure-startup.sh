#!/usr/bin/env bash
# Time from `imagegate serve` starting to its first answer over TLS, with 100
# policies: what "ready" costs, first TLS handshake included.
#
#   scripts/measure-startup.sh [BINARY] [RUNS]
#
# BINARY defaults to target/release/imagegate (build it with
# `cargo build --release --locked`). Prints, for each run, the milliseconds until
# the port accepts a TCP connection, and until the first `GET /readyz` over TLS
# answers 200 (measured with curl, whose own start, a few ms, is included), then
# the median of each.
set -euo pipefail
BIN=${1:-target/release/imagegate}
RUNS=${2:-10}
command -v curl >/dev/null || { echo "needs curl" >&2; exit 2; }
dir=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$dir"' EXIT
mkdir -p "$dir/policies"
for i in $(seq 1 100); do
  cat > "$dir/policies/p$i.yaml" <<YAML
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: p$i}
spec:
  namespaces: ["team-$i-*"]
  excludeImages: ["harbor.example.com/tools-$i/**"]
  registries:
    allow: ["harbor.example.com", "registry.k8s.io/**", "ghcr.io/org-$i/**"]
  blockedImages: ["harbor.example.com/legacy-$i/**"]
  tags:
    forbid: [latest, "*-dev"]
    allow: ['^v\d+\.\d+\.\d+$']
YAML
done
"$BIN" certs --out-dir "$dir/tls" --name 127.0.0.1 >/dev/null 2>&1
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
port=$(( 20000 + RANDOM % 20000 ))
listen=() ready=()
for run in $(seq 1 "$RUNS"); do
  port=$(( port + 1 ))
  start=$(now_ms)
  "$BIN" serve --policies "$dir/policies" --listen "127.0.0.1:$port" \
    --tls-cert "$dir/tls/tls.crt" --tls-key "$dir/tls/tls.key" \
    --kubernetes false >"$dir/log" 2>&1 &
  pid=$!
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do :; done
  l=$(( $(now_ms) - start ))
  until curl -sf --cacert "$dir/tls/ca.crt" "https://127.0.0.1:$port/readyz" >/dev/null 2>&1; do :; done
  r=$(( $(now_ms) - start ))
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "run $run: listening after $l ms, first TLS answer from /readyz after $r ms"
  listen+=("$l") ready+=("$r")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median: listening after $(median "${listen[@]}") ms, ready (first TLS answer) after $(median "${ready[@]}") ms, 100 policies"
