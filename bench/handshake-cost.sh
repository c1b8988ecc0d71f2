#!/usr/bin/env bash
# Server CPU per full TLS 1.3 handshake (+ one request) with what OpenSSL 3.0's load tools cannot
# offer: X25519MLKEM768 against X25519, and certificate compression on against off. The client
# is rustls (crates/tlsplex-testkit/examples/handshake_load.rs).
# Usage: bench/handshake-cost.sh [--quick] [--rounds N] [--handshakes N]
#   --quick   one short round, debug build: a smoke run for CI.
set -euo pipefail

rounds=3; handshakes=2000; profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) rounds=1; handshakes=30; profile=debug ;;
    --rounds) rounds="$2"; shift ;;
    --handshakes) handshakes="$2"; shift ;;
    *) echo "usage: bench/handshake-cost.sh [--quick] [--rounds N] [--handshakes N]" >&2; exit 2 ;;
  esac
  shift
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
work=$(mktemp -d /tmp/tlsplex-handshakes.XXXXXX)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
log() { echo "[handshake-cost] $*" >&2; }

flag=(); [ "$profile" = release ] && flag=(--release)
(cd "$root" && cargo build -q "${flag[@]}" -p tlsplex-cli && cargo build -q "${flag[@]}" -p tlsplex-testkit --example handshake_load)
bin="$root/target/$profile"

# A CA and a leaf it signed, both ECDSA P-256; the server sends the leaf and the CA as its chain,
# about the size of a public CA's leaf and intermediate.
. "$here/chain.sh"
make_chain "$work" DNS:bench.test,DNS:www.bench.test

port_plain=$((20000 + RANDOM % 20000)); port_zip=$((port_plain + 1))
cat > "$work/tlsplex.toml" <<TOML
[[server]]
name = "plain"
listen = "127.0.0.1:$port_plain"
certificates = [{ cert = "chain.pem", key = "leaf.key" }]

[[server]]
name = "zip"
listen = "127.0.0.1:$port_zip"
certificates = [{ cert = "chain.pem", key = "leaf.key" }]
tls = { cert_compression = true }
TOML

taskset -c 0 "$bin/tlsplex" run -c "$work/tlsplex.toml" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port_zip") 2>/dev/null && break
  sleep 0.1
done

if ! kill -0 "$server_pid" 2>/dev/null; then cat "$work/server.log" >&2; exit 1; fi
ticks() { python3 "$here/tools.py" cpu "$server_pid"; }
hz=$(getconf CLK_TCK)
# name, port, client options
cases=(
  "x25519mlkem768 $port_plain --groups X25519MLKEM768,X25519"
  "x25519 $port_plain --groups X25519"
  "compression_off $port_plain --groups X25519"
  "compression_on $port_zip --groups X25519"
)
results="$work/results"
: > "$results"
for round in $(seq "$rounds"); do
  for entry in "${cases[@]}"; do
    read -r name port options <<<"$entry"
    before=$(ticks)
    # shellcheck disable=SC2086 # options are words
    out=$(taskset -c 1 "$bin/examples/handshake_load" "127.0.0.1:$port" bench.test "$work/ca.pem" \
      "$handshakes" $options)
    after=$(ticks)
    us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$handshakes" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
    log "round $round $name: $us µs server CPU per handshake; $out"
    echo "$name $us" >> "$results"
  done
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "Server CPU per full TLS 1.3 handshake + request (µs, median of $rounds rounds of $handshakes; $cpu):"
for entry in "${cases[@]}"; do
  read -r name _ <<<"$entry"
  median=$(awk -v n="$name" '$1 == n { print $2 }' "$results" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  echo "  $name: $median"
done
