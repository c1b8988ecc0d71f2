#!/usr/bin/env bash
# The seed's C program on tlsplex (examples/c/seed.c, against libtlsplex_ffi.a) and the same
# program on OpenSSL 3 (bench/c-seed/seed_openssl.c, Debian's libssl-dev): server CPU per full
# TLS 1.3 handshake with X25519 (+ one request; the rustls client of handshake-cost.sh) and per
# keep-alive request (wrk, 32 connections). Each server pinned to core 0, clients to core 1.
# Usage: bench/c-seed.sh [--rounds N] [--handshakes N]
set -euo pipefail

rounds=3; handshakes=2000; keepalive_secs=5
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift ;;
    --handshakes) handshakes="$2"; shift ;;
    *) echo "usage: bench/c-seed.sh [--rounds N] [--handshakes N]" >&2; exit 2 ;;
  esac
  shift
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
work=$(mktemp -d /tmp/tlsplex-c-seed.XXXXXX)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
log() { echo "[c-seed] $*" >&2; }

(cd "$root" && cargo build -q --release -p tlsplex-ffi && cargo build -q --release -p tlsplex-testkit --example handshake_load)
lib="$root/target/release"
cc -O2 -o "$work/seed-tlsplex" "$root/examples/c/seed.c" -I"$root/crates/tlsplex-ffi/include" \
  "$lib/libtlsplex_ffi.a" -lpthread -ldl -lm -lrt -lutil
cc -O2 -o "$work/seed-openssl" "$here/c-seed/seed_openssl.c" -lssl -lcrypto -lpthread

. "$here/chain.sh"
make_chain "$work" DNS:bench.test
for name in a b; do cp "$work/chain.pem" "$work/$name.pem"; cp "$work/leaf.key" "$work/$name.key"; done

hz=$(getconf CLK_TCK)
ticks() { python3 "$here/tools.py" cpu "$server_pid"; }
results="$work/results"
: > "$results"
for round in $(seq "$rounds"); do
  for system in tlsplex openssl; do
    port=$((20000 + RANDOM % 20000))
    taskset -c 0 "$work/seed-$system" "$work" "$port" $((port + 1)) > "$work/$system.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do grep -q "port $port: listening" "$work/$system.log" 2>/dev/null && break; sleep 0.1; done
    before=$(ticks)
    taskset -c 1 "$lib/examples/handshake_load" "127.0.0.1:$port" bench.test "$work/ca.pem" \
      "$handshakes" --groups X25519 > /dev/null
    after=$(ticks)
    hs=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$handshakes" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
    before=$(ticks)
    requests=$(taskset -c 1 wrk -t1 -c32 -d"${keepalive_secs}s" "https://127.0.0.1:$port/" | awk '/requests in/ { print $1 }')
    after=$(ticks)
    ka=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
    log "round $round $system: $hs µs per handshake, $ka µs per keep-alive request ($requests requests)"
    echo "$system $hs $ka" >> "$results"
  done
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "Server CPU, µs (median of $rounds rounds; $cpu):"
for system in tlsplex openssl; do
  hs=$(awk -v s="$system" '$1 == s { print $2 }' "$results" | median)
  ka=$(awk -v s="$system" '$1 == s { print $3 }' "$results" | median)
  echo "  $system: $hs per full handshake, $ka per keep-alive request"
done
