#!/usr/bin/env bash
# Server CPU per connection of a passthrough route against forward mode (with and without a
# route in front of it) and against HAProxy's SNI routing in TCP mode (when installed), and
# bulk MB per server CPU second through forward mode. With
# --baseline BIN, the same forward server also runs from another tlsplex binary (an older
# commit's), interleaved in the same rounds: the before/after of forward mode.
# Each connection: a full TLS 1.3 handshake (rustls client, X25519) and one request.
# Usage: bench/route-cost.sh [--quick] [--rounds N] [--connections N] [--baseline BIN]
#   --quick   one short round, debug build: a smoke run for CI.
set -euo pipefail

rounds=3; connections=2000; bulk_mib=100; profile=release; baseline=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) rounds=1; connections=30; bulk_mib=1; profile=debug ;;
    --rounds) rounds="$2"; shift ;;
    --connections) connections="$2"; shift ;;
    --baseline) baseline="$2"; shift ;;
    *) echo "usage: bench/route-cost.sh [--quick] [--rounds N] [--connections N] [--baseline BIN]" >&2; exit 2 ;;
  esac
  shift
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
work=$(mktemp -d /tmp/tlsplex-routes.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
log() { echo "[route-cost] $*" >&2; }

flag=(); [ "$profile" = release ] && flag=(--release)
(cd "$root" && cargo build -q "${flag[@]}" -p tlsplex-cli && cargo build -q "${flag[@]}" -p tlsplex-testkit --example handshake_load)
bin="$root/target/$profile"

. "$here/chain.sh"
make_chain "$work" DNS:bench.test
mkdir -p "$work/www"
chmod 755 "$work" "$work/www" # nginx's worker runs as another user
printf 'ok\n' > "$work/www/index.html"
head -c $((bulk_mib * 1024 * 1024)) /dev/urandom > "$work/www/bulk"

port=$((20000 + RANDOM % 20000))
plain=$port; inner=$((port + 1)); fwd=$((port + 2)); routed=$((port + 3)); pass=$((port + 4)); old=$((port + 5))
hap=$((port + 6))

wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  log "port $1 never answered"; return 1
}

# Backends on CPU 1 (not counted): nginx in plaintext for forward, a tlsplex TLS server for
# passthrough.
cat > "$work/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx-error.log;
events { worker_connections 4096; }
http { access_log off; sendfile on;
  server { listen 127.0.0.1:$plain; root $work/www; index index.html; } }
EOF
taskset -c 1 nginx -c "$work/nginx.conf" & pids+=($!)
cat > "$work/inner.toml" <<TOML
[[server]]
name = "inner"
listen = "127.0.0.1:$inner"
certificates = [{ cert = "chain.pem", key = "leaf.key" }]
handler = { type = "static", root = "www" }
TOML
taskset -c 1 "$bin/tlsplex" run -c "$work/inner.toml" 2>"$work/inner.log" & pids+=($!)

cat > "$work/forward.toml" <<TOML
[[server]]
name = "forward"
listen = "127.0.0.1:$fwd"
certificates = [{ cert = "chain.pem", key = "leaf.key" }]
handler = { type = "forward", backend = "127.0.0.1:$plain" }
TOML
cat > "$work/front.toml" <<TOML
$(cat "$work/forward.toml")

[[server]]
name = "routed"
listen = "127.0.0.1:$routed"
certificates = [{ cert = "chain.pem", key = "leaf.key" }]
[[server.route]]
names = ["bench.test"]
handler = { type = "forward", backend = "127.0.0.1:$plain" }

[[server]]
name = "pass"
listen = "127.0.0.1:$pass"
certificates = [{ cert = "chain.pem", key = "leaf.key" }]
[[server.route]]
names = ["bench.test"]
handler = { type = "passthrough", backend = "127.0.0.1:$inner" }
TOML
taskset -c 0 "$bin/tlsplex" run -c "$work/front.toml" 2>"$work/front.log" & front=$!; pids+=($front)
cases=("forward $fwd $front" "routed $routed $front" "passthrough $pass $front")
if [ -n "$baseline" ]; then
  sed "s/:$fwd\"/:$old\"/" "$work/forward.toml" > "$work/old.toml"
  taskset -c 0 "$baseline" run -c "$work/old.toml" 2>"$work/old.log" & before=$!; pids+=($before)
  cases+=("forward_baseline $old $before")
  wait_port "$old"
fi
# A peer for passthrough: HAProxy in TCP mode routing on the ClientHello's SNI, one thread.
if command -v haproxy >/dev/null; then
  cat > "$work/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend pass
  bind 127.0.0.1:$hap
  tcp-request inspect-delay 5s
  tcp-request content accept if { req_ssl_hello_type 1 }
  use_backend inner if { req_ssl_sni -i bench.test }
backend inner
  server inner 127.0.0.1:$inner
EOF
  taskset -c 0 haproxy -f "$work/haproxy.cfg" -db 2>"$work/haproxy.log" & peer=$!; pids+=($peer)
  # Measured only if it is the one listening (a port taken by another process: left out).
  if wait_port "$hap" && sleep 0.2 && kill -0 "$peer" 2>/dev/null; then
    cases+=("haproxy_passthrough $hap $peer")
  else
    log "haproxy did not start, left out: $(tail -3 "$work/haproxy.log")"
  fi
fi
for p in $plain $inner $fwd $routed $pass; do wait_port "$p"; done

ticks() { python3 "$here/tools.py" cpu "$1"; }
hz=$(getconf CLK_TCK)
results="$work/results"
: > "$results"
for round in $(seq "$rounds"); do
  for entry in "${cases[@]}"; do
    read -r name p pid <<<"$entry"
    before_ticks=$(ticks "$pid")
    taskset -c 1 "$bin/examples/handshake_load" "127.0.0.1:$p" bench.test "$work/ca.pem" \
      "$connections" --groups X25519 >/dev/null
    after_ticks=$(ticks "$pid")
    us=$(awk -v t=$((after_ticks - before_ticks)) -v hz="$hz" -v n="$connections" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
    log "round $round $name: $us µs server CPU per connection"
    echo "${name}_connection_us $us" >> "$results"
    case "$name" in forward|forward_baseline) ;; *) continue ;; esac
    before_ticks=$(ticks "$pid")
    out=$(taskset -c 1 curl --http1.1 -s --cacert "$work/ca.pem" --resolve "bench.test:$p:127.0.0.1" \
      -w '%{size_download}\n' -o /dev/null -o /dev/null -o /dev/null \
      "https://bench.test:$p/bulk" "https://bench.test:$p/bulk" "https://bench.test:$p/bulk" |
      awk '{ size += $1 } END { print size }')
    after_ticks=$(ticks "$pid")
    mbps=$(awk -v b="$out" -v t=$((after_ticks - before_ticks)) -v hz="$hz" 'BEGIN { printf("%.0f", t > 0 ? b / 1e6 / (t / hz) : 0) }')
    log "round $round $name: bulk $mbps MB per server CPU second ($out bytes)"
    echo "${name}_bulk_mb_per_cpu_s $mbps" >> "$results"
  done
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "Medians of $rounds rounds ($connections connections each, ${bulk_mib} MiB bulk ×3; $cpu):"
for metric in $(awk '{ print $1 }' "$results" | awk '!seen[$0]++'); do
  median=$(awk -v n="$metric" '$1 == n { print $2 }' "$results" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  echo "  $metric: $median"
done
