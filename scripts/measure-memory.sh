#!/usr/bin/env bash
# The memory figures of one imagegate binary, for choosing the allocator
# (README.md, "Memory"): steady RSS under light load, RSS right after a burst of
# 20,000 large and malformed requests and then each 10 s of idle for 60 s, the
# peak RSS of one ~8 MiB review in a fresh process, and warm throughput.
#
#   scripts/measure-memory.sh [BINARY] [LABEL]
#
# BINARY defaults to target/release/imagegate (`cargo build --release --locked`).
# Allocator settings given in the environment reach the binary, e.g.
#   MALLOC_ARENA_MAX=2 scripts/measure-memory.sh /tmp/imagegate-glibc glibc-arena2
# Needs Debian's h2load (nghttp2-client), curl and python3. Only 127.0.0.1 is
# addressed; every load is bounded in count.
set -euo pipefail
BIN=${1:-target/release/imagegate}
LABEL=${2:-$(basename "$BIN")}
BURST=${BURST:-20000}
for tool in h2load curl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install nghttp2-client curl python3)" >&2; exit 2; }
done
dir=$(mktemp -d)
pid=0
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
mkdir -p "$dir/policies"
cat > "$dir/policies/tags.yaml" <<'YAML'
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: tags}
spec:
  tags:
    forbid: [latest]
YAML
cat > "$dir/policies/registries.yaml" <<'YAML'
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: registries}
spec:
  registries:
    allow: ["r.io", "registry.k8s.io/**"]
YAML
"$BIN" certs --out-dir "$dir/tls" --name 127.0.0.1 >/dev/null 2>&1

# The bodies: a 3-container CREATE (light load), a 2,000-container CREATE all
# denied (~110 KB), a 1,000-container UPDATE, the large CREATE cut short
# (malformed), a 512 KiB unterminated string, and an ~8 MiB all-denied CREATE of
# 200,000 containers (the largest the body limit takes).
python3 - "$dir" <<'PY'
import sys
d = sys.argv[1]
def containers(n, image):
    return "[" + ",".join('{"name":"c%d","image":"%s"}' % (i, image(i)) for i in range(n)) + "]"
def pod(cs):
    return '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"big","namespace":"team"},"spec":{"containers":%s}}' % cs
def review(op, obj, old="null"):
    return ('{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002",'
            '"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},'
            '"name":"big","namespace":"team","operation":"%s","userInfo":{"username":"alice"},"object":%s,"oldObject":%s,"dryRun":false}}') % (op, obj, old)
bodies = {
    "small": review("CREATE", pod(containers(3, lambda i: "r.io/app%d:1.%d" % (i, i)))),
    "denied": review("CREATE", pod(containers(2000, lambda i: "r.io/a"))),
    "update": review("UPDATE", pod(containers(1000, lambda i: "r.io/a:%d" % (i % 7))),
                     pod(containers(1000, lambda i: "r.io/a:%d" % (i % 5)))),
    "big": review("CREATE", pod(containers(200000, lambda i: "r.io/a"))),
}
bodies["cut"] = bodies["denied"][: len(bodies["denied"]) // 2]
bodies["string"] = '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"' + "x" * (512 * 1024)
for name, text in bodies.items():
    open("%s/%s.json" % (d, name), "w").write(text)
PY

port=$(( 20000 + RANDOM % 20000 ))
start() {
  port=$(( port + 1 ))
  "$BIN" serve --policies "$dir/policies" --listen "127.0.0.1:$port" \
    --tls-cert "$dir/tls/tls.crt" --tls-key "$dir/tls/tls.key" \
    --kubernetes false >"$dir/log" 2>&1 &
  pid=$!
  until curl -sf --cacert "$dir/tls/ca.crt" "https://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.05; done
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=0; }
field() { awk -v f="$1:" '$1 == f { print int($2 / 1024) }' "/proc/$pid/status"; } # MiB
load() { # BODY COUNT CLIENTS: h2load over HTTP/2, prints req/s
  h2load -n "$2" -c "$3" -m 4 -t 1 -d "$dir/$1.json" -H 'content-type: application/json' \
    "https://127.0.0.1:$port/validate" 2>&1 |
    awk '/^finished in/ { gsub(",", "", $4); print int($4) } /^requests:/ && $12 + $14 > 0 { print "h2load: " $0 > "/dev/stderr" }'
}

start
load small 20000 4 >/dev/null
steady=$(field VmRSS)
rps=$(load small 100000 16)
burst_each=$(( BURST / 4 ))
for body in denied update cut string; do load "$body" "$burst_each" 8 >/dev/null; done
after=$(field VmRSS)
idle=()
for _ in 1 2 3 4 5 6; do sleep 10; idle+=("$(field VmRSS)"); done
stop

start
base=$(field VmHWM)
curl -s --cacert "$dir/tls/ca.crt" -H 'content-type: application/json' \
  --data-binary "@$dir/big.json" "https://127.0.0.1:$port/validate" -o /dev/null
peak=$(field VmHWM)
stop

echo "| $LABEL | $steady | $after | ${idle[*]} | $base -> $peak | $rps |"
echo "(columns: steady RSS MiB after 20,000 small reviews; RSS MiB right after $BURST large/malformed; RSS MiB after each 10 s idle; peak RSS MiB of a fresh process before -> after one $(( $(stat -c %s "$dir/big.json") / 1024 )) KiB all-denied review; warm req/s, HTTP/2, 16 connections x 4 streams, 3-container review)" >&2
