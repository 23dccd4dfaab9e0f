#!/usr/bin/env bash
# Warm /validate measured from outside with h2load (nghttp2-client), imagegate beside a
# bare axum + rustls server (examples/bare_admission.rs: parses the body into a
# serde_json::Value and answers a fixed allow) in the same run.
#
# Both servers are release builds of this tree, serve the same certificate
# (`imagegate certs`) with the same rustls configuration, TCP_NODELAY and body limit,
# on a default tokio runtime. The workload is benches/bare/mod.rs's: three policies
# and a 5 KB Pod CREATE with three containers that they allow (written by
# `bare_admission fixtures`). Before the load, curl checks that each server answers
# 200 with an allow, and that imagegate denies the denied variant (it evaluates).
#
# Loads: HTTP/1.1 16 connections; HTTP/2 1 connection x 16 streams; HTTP/2 4
# connections x 8 streams. Each round runs every load against bare, then imagegate;
# the table gives the median req/s over the rounds and the ratio imagegate/bare.
# Every h2load run must end with every request answered 2xx, or the script fails.
#
# Environment: ROUNDS (default 5), SECONDS_PER_RUN (default 5; after a 1 s warm-up),
# H2LOAD_THREADS (default 1), BUILD=0 to use the binaries already in target/release.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${ROUNDS:-5}
duration=${SECONDS_PER_RUN:-5}
threads=${H2LOAD_THREADS:-1}

for tool in h2load curl; do
  command -v "$tool" >/dev/null || {
    echo "bench-h2load: $tool is missing (apt-get install nghttp2-client curl)" >&2
    exit 1
  }
done

if [ "${BUILD:-1}" != 0 ]; then
  CARGO_INCREMENTAL=0 cargo build --release --locked --bin imagegate --example bare_admission
fi
imagegate=target/release/imagegate
bare=target/release/examples/bare_admission

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

"$bare" fixtures "$work"
"$imagegate" certs --out-dir "$work/certs" --name localhost --name 127.0.0.1 --days 1 >/dev/null

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
bare_port=$(free_port)
gate_port=$(free_port)

"$bare" serve "127.0.0.1:$bare_port" "$work/certs/tls.crt" "$work/certs/tls.key" \
  >"$work/bare.log" 2>&1 &
bare_pid=$!
pids+=("$bare_pid")
"$imagegate" serve --policies "$work/policies.yaml" \
  --listen "127.0.0.1:$gate_port" \
  --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" \
  --kubernetes false --shutdown-grace 0 >"$work/imagegate.log" 2>&1 &
gate_pid=$!
pids+=("$gate_pid")

curl_post() { # URL FILE -> the reply body; fails unless HTTP 200
  curl -sS --fail --cacert "$work/certs/ca.crt" -H 'content-type: application/json' \
    --data-binary "@$2" "$1"
}
wait_up() { # NAME URL
  for _ in $(seq 1 100); do
    if curl_post "$2" "$work/review.json" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "bench-h2load: $1 does not answer on $2; its log:" >&2
  cat "$work/$1.log" >&2
  exit 1
}
bare_url="https://127.0.0.1:$bare_port/validate"
gate_url="https://127.0.0.1:$gate_port/validate"
wait_up bare "$bare_url"
wait_up imagegate "$gate_url"

# Spot checks: an allow with the uid from both, and a real denial from imagegate.
uid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["request"]["uid"])' "$work/review.json")
for url in "$bare_url" "$gate_url"; do
  reply=$(curl_post "$url" "$work/review.json")
  python3 - "$url" "$uid" "$reply" <<'EOF'
import json, sys
url, uid, reply = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
r = reply["response"]
assert r["allowed"] is True and r["uid"] == uid, f"{url}: not an allow of {uid}: {reply}"
EOF
done
reply=$(curl_post "$gate_url" "$work/denied.json")
python3 - "$reply" <<'EOF'
import json, sys
reply = json.loads(sys.argv[1])
assert reply["response"]["allowed"] is False, f"imagegate allowed nginx:latest: {reply}"
EOF
echo "spot checks passed: both allow the review ($(wc -c <"$work/review.json") bytes), imagegate denies nginx:latest"

# The CPU time (user + system, clock ticks) a process has used so far.
cpu_ticks() { # PID
  awk '{print $14 + $15}' "/proc/$1/stat"
}

# One h2load run: prints req/s and the server's CPU microseconds per request (user +
# system over the warm-up and the window, per request sent in them); fails unless
# every request got a 2xx.
run() { # PID URL LOAD-ARGS...
  local pid=$1 url=$2
  shift 2
  local out before after
  before=$(cpu_ticks "$pid")
  out=$(h2load -t "$threads" -D "$duration" --warm-up-time 1 "$@" \
    -H 'content-type: application/json' -d "$work/review.json" "$url" 2>&1) || {
    echo "$out" >&2
    return 1
  }
  after=$(cpu_ticks "$pid")
  python3 - "$out" "$((after - before))" "$(getconf CLK_TCK)" <<'EOF'
import re, sys
out, ticks, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
rate = re.search(r"finished in [^,]+, ([\d.]+) req/s", out)
if not (done and codes and rate):
    sys.exit("cannot read h2load's output:\n" + out)
succeeded, failed, errored = int(done.group(4)), int(done.group(5)), int(done.group(6))
if failed or errored or int(codes.group(1)) != succeeded or succeeded == 0:
    sys.exit("not every request was answered 2xx:\n" + out)
# h2load counts the window's requests; the CPU time covers the warm-up too.
window = float(re.search(r"finished in ([\d.]+)s", out).group(1))
sent = succeeded * (window + 1) / window
print(rate.group(1), f"{ticks / hz * 1e6 / sent:.1f}")
EOF
}

loads=("HTTP/1.1, 16 connections|--h1 -c 16"
  "HTTP/2, 1 connection x 16 streams|-c 1 -m 16"
  "HTTP/2, 4 connections x 8 streams|-c 4 -m 8")

# Warm both (TLS sessions, caches, allocator) before measuring.
for url in "$bare_url" "$gate_url"; do
  h2load -n 2000 -c 4 -m 4 -H 'content-type: application/json' -d "$work/review.json" "$url" >/dev/null
done

declare -A results
for round in $(seq 1 "$rounds"); do
  for i in "${!loads[@]}"; do
    args=${loads[$i]#*|}
    # shellcheck disable=SC2086
    read -r b bcpu < <(run "$bare_pid" "$bare_url" $args)
    # shellcheck disable=SC2086
    read -r g gcpu < <(run "$gate_pid" "$gate_url" $args)
    results[$i,bare]+="$b "
    results[$i,gate]+="$g "
    results[$i,bcpu]+="$bcpu "
    results[$i,gcpu]+="$gcpu "
    printf 'round %d  %-34s bare %6.0f req/s %5.1f us CPU/req  imagegate %6.0f req/s %5.1f us CPU/req\n' \
      "$round" "${loads[$i]%|*}" "$b" "$bcpu" "$g" "$gcpu"
  done
done

echo
echo "median of $rounds rounds, ${duration} s each after a 1 s warm-up, h2load -t $threads, $(nproc) CPU(s), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| load | bare server | imagegate | ratio | server CPU per request, bare / imagegate (ratio) |"
echo "|---|---|---|---|---|"
for i in "${!loads[@]}"; do
  python3 - "${loads[$i]%|*}" "${results[$i,bare]}" "${results[$i,gate]}" \
    "${results[$i,bcpu]}" "${results[$i,gcpu]}" <<'EOF'
import statistics, sys
name = sys.argv[1]
bare, gate, bcpu, gcpu = ([float(x) for x in a.split()] for a in sys.argv[2:6])
b, g = statistics.median(bare), statistics.median(gate)
bc, gc = statistics.median(bcpu), statistics.median(gcpu)
print(f"| {name} | {b:,.0f} req/s | {g:,.0f} req/s | {g / b:.2f} | {bc:.1f} us / {gc:.1f} us ({bc / gc:.2f}) |")
EOF
done
echo
echo "ratio: imagegate's req/s over the bare server's (1.00 or more: imagegate is as fast)."
echo "The server CPU time per request (user + system of its process; in parentheses bare"
echo "over imagegate, 1.00 or more: imagegate costs no more) is the steadier figure on a"
echo "shared machine: req/s moves with whatever else runs."
