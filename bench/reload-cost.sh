#!/usr/bin/env bash
# The cost of a reload with many servers: 10,000 servers sharing one certificate file plus one
# with its own (the #29 case). Measures the daemon's CPU (from /proc) and wall time for a reload
# that changes nothing, and for one that replaces the lone server's certificate, and which
# servers the reload says it updated. Release build; --quick: 200 servers, debug build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
servers=10000; rounds=3; profile=release
for arg in "$@"; do
  case "$arg" in
    --quick) servers=200; rounds=1; profile=debug ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
  esac
done
flag=(); [ "$profile" = release ] && flag=(--release)
(cd "$root" && cargo build -q "${flag[@]}" -p tlsplex-cli)
bin="$root/target/$profile/tlsplex"
work=$(mktemp -d); trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
ulimit -n $((servers + 4096)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cert() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=$2" \
  -addext "subjectAltName=DNS:$2" -keyout "$work/$1.key" -out "$work/$1.pem" 2>/dev/null; chmod 600 "$work/$1.key"; }
cert shared shared.test; cert own own.test
first=20000
{
  printf '[global]\nmax_connections = %d\n' $((servers + 100))
  for i in $(seq 0 $((servers - 1))); do
    printf '[[server]]\nname = "s%d"\nlisten = "127.0.0.1:%d"\ncertificates = [{ cert = "shared.pem", key = "shared.key" }]\n' "$i" $((first + i))
  done
  printf '[[server]]\nname = "own"\nlisten = "127.0.0.1:%d"\ncertificates = [{ cert = "own.pem", key = "own.key" }]\n' $((first + servers))
} > "$work/tlsplex.toml"
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }   # clock ticks
tick=$(getconf CLK_TCK)
started=$(date +%s.%N)
"$bin" run -c "$work/tlsplex.toml" --log-format json > "$work/out.log" 2>&1 & pid=$!
deadline=$((SECONDS + 120))
until (exec 3<>"/dev/tcp/127.0.0.1/$((first + servers))") 2>/dev/null; do
  if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "the servers did not all listen within 120 s:" >&2; tail -5 "$work/out.log" >&2; exit 1
  fi
  sleep 0.05
done
echo "servers: $((servers + 1)), all listening after $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}') s, RSS $(awk '/VmRSS/{print $2}' "/proc/$pid/status") KiB"
reload() { # label; waits for the next "reloaded" line
  local before c0 t0 c1 t1 line
  before=$(grep -c '"reloaded"' "$work/out.log" || true)
  c0=$(cpu); t0=$(date +%s.%N)
  kill -HUP "$pid"
  local deadline=$((SECONDS + 120))
  until [ "$(grep -c '"reloaded"' "$work/out.log" || true)" -gt "$before" ]; do
    if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$pid" 2>/dev/null; then
      echo "no reload within 120 s:" >&2; tail -5 "$work/out.log" >&2; exit 1
    fi
    sleep 0.01
  done
  t1=$(date +%s.%N); c1=$(cpu)
  line=$(grep '"reloaded"' "$work/out.log" | tail -1)
  updated=$(printf '%s' "$line" | sed -n 's/.*"updated":"\([^"]*\)".*/\1/p' | tr ',' '\n' | grep -c . || true)
  unchanged=$(printf '%s' "$line" | sed -n 's/.*"unchanged":\([0-9]*\).*/\1/p')
  printf '%-28s wall %6.0f ms  CPU %6.0f ms  updated %5s  unchanged %5s  RSS %s KiB\n' "$1" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print (b-a)*1000}')" "$(( (c1 - c0) * 1000 / tick ))" \
    "$updated" "${unchanged:--}" "$(awk '/VmRSS/{print $2}' "/proc/$pid/status")"
}
for round in $(seq 1 "$rounds"); do
  reload "round $round: nothing changed"
  cert own own.test
  reload "round $round: one certificate"
done
