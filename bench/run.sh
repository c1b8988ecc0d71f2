#!/usr/bin/env bash
# tlsplex against nginx, HAProxy, stunnel, hitch and Caddy, side by side on one machine.
# Usage (as root, on Debian): bench/run.sh [--quick | --proxy] [--rounds N]
#   --quick   tlsplex alone, one short round of every metric, debug build: a smoke run for CI.
#   --proxy   only the HTTP reverse-proxy rows, against nginx, HAProxy and Caddy.
# See bench/README.md for what is measured and how.
set -euo pipefail

quick=0
proxy_only=0
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; rounds=1 ;;
    --proxy) proxy_only=1 ;;
    --rounds) rounds="$2"; shift ;;
    *) echo "usage: bench/run.sh [--quick | --proxy] [--rounds N]" >&2; exit 2 ;;
  esac
  shift
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
tools="python3 $here/tools.py"
work=$(mktemp -d /tmp/tlsplex-bench.XXXXXX)
chmod 755 "$work" # nginx workers run as nobody and serve files from here
raw="$work/raw.jsonl"
: > "$raw"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [ "$quick" = 1 ]; then
  systems=(tlsplex)
  handshakes=100; resumed_secs=2; keepalive_secs=2; bulk_mib=10; held=100
  scale_servers=50; scale_many=100; spread_held=200; sni_certs=100; pq_secs=1; profile=debug
else
  systems=(tlsplex nginx haproxy stunnel hitch caddy)
  [ "$proxy_only" = 1 ] && systems=(tlsplex nginx haproxy caddy)
  handshakes=1000; resumed_secs=5; keepalive_secs=8; bulk_mib=100; held=1000
  scale_servers=1000; scale_many=10000; spread_held=10000; sni_certs=10000; pq_secs=5; profile=release
fi

log() { echo "[bench] $*" >&2; }

# ---------------------------------------------------------------------------------------------
# Tools and peers
install_missing() {
  local packages=() p
  for p in "$@"; do
    case "$p" in
      nghttp2-client) command -v h2load >/dev/null || packages+=("$p") ;;
      stunnel4) command -v stunnel >/dev/null || packages+=("$p") ;;
      libnginx-mod-stream) [ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || packages+=("$p") ;;
      *) command -v "$p" >/dev/null || packages+=("$p") ;;
    esac
  done
  if [ ${#packages[@]} -gt 0 ]; then
    log "installing: ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  fi
}
# The plaintext backend (nginx) is needed even in quick mode, for forward mode.
install_missing nghttp2-client wrk curl openssl nginx
# The SNI certificates are made with Python's cryptography package (from PyPI if missing).
python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install -q cryptography >&2
if [ "$quick" = 0 ]; then
  install_missing libnginx-mod-stream haproxy stunnel4 hitch caddy
  # The packages' own services would hold ports and CPU: keep them stopped.
  for service in nginx haproxy stunnel4 hitch caddy; do systemctl stop "$service" 2>/dev/null || true; done
fi

log "building tlsplex ($profile)"
if [ "$profile" = release ]; then
  (cd "$root" && cargo build --release --locked -p tlsplex-cli -p tls-load >&2)
else
  (cd "$root" && cargo build --locked -p tlsplex-cli -p tls-load >&2)
fi
tlsplex="$root/target/$profile/tlsplex"
tls_load="$root/target/$profile/tls-load"

# ---------------------------------------------------------------------------------------------
# Material: one ECDSA P-256 certificate, a small page and a bulk file.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj /CN=bench.test -addext subjectAltName=DNS:bench.test \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
chmod 600 "$work/key.pem"
cat "$work/cert.pem" "$work/key.pem" > "$work/combined.pem"
mkdir -p "$work/www"
printf 'ok\n' > "$work/www/index.html"
head -c $((bulk_mib * 1024 * 1024)) /dev/urandom > "$work/www/bulk"

backend_port=18080
ws_port=18081
base_port=19000
# The ports a run listens on must be free: whatever already listens on one would be measured in
# place of what the run starts (the backend's nginx only logs that it could not bind).
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$backend_port" "$ws_port" $(seq $((base_port + 1)) $((base_port + 56))) \
  $((base_port + 901)) $((base_port + 951)); do
  if port_taken "$port"; then
    log "port $port is in use: stop what listens there, then run again"
    rm -rf "$work"
    exit 1
  fi
done

# The plaintext backend for forward mode (and for stunnel and hitch, which only forward):
# nginx on CPU 1, beside the clients; its CPU is not counted for anyone.
cat > "$work/backend.conf" <<EOF
worker_processes 1; daemon off; pid $work/backend.pid; error_log $work/backend-error.log;
events { worker_connections 4096; }
http { access_log off; sendfile on;
  server { listen 127.0.0.1:$backend_port; root $work/www; index index.html; } }
EOF
taskset -c 1 nginx -c "$work/backend.conf" &
backend_pid=$!
# The WebSocket backend for the proxied-WebSocket row (answers 101 and holds), also on CPU 1.
taskset -c 1 $tools ws-backend "$ws_port" &
ws_backend_pid=$!

server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  kill "$backend_pid" "$ws_backend_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work" # the bulk file and the SNI certificates: over a gigabyte in a full run
}
trap cleanup EXIT

record() { # system metric value
  [ -n "$3" ] || { log "round $round  $1  $2: no value"; return 0; }
  printf '{"round": %s, "system": "%s", "metric": "%s", "value": %s}\n' "$round" "$1" "$2" "$3" >> "$raw"
  log "round $round  $1  $2 = $3"
}

wait_port() { # port
  local i
  for i in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  log "port $1 never answered"; return 1
}

# ---------------------------------------------------------------------------------------------
# Each system: two TLS servers (ports a, b) and a forward port (f) in one process, pinned to
# CPU 0 with one worker. stunnel and hitch only forward, so their a and b go to the backend too.
# One worker pinned to CPU 0 and the clients on CPU 1, unless a two-worker round says otherwise
# (then the server and its clients share both CPUs, and metrics carry the suffix `_w2`).
workers=1; server_cpus=0; client_cpus=1; sfx=""
start_system() { # name index -> server_pid, port_a, port_b, port_f
  local name=$1 dir="$work/$1"
  port_a=$((base_port + $2 * 10 + 1)); port_b=$((port_a + 1)); port_f=$((port_a + 2))
  # Port r answers every request with a fixed "ok" from memory; stunnel and hitch have none.
  # Port p is an HTTP reverse proxy to the plaintext backend (stunnel and hitch have none);
  # Caddy runs only that one.
  port_r=$((port_a + 3)); fixed=1
  port_p=$((port_a + 4)); proxy=1
  # Port w proxies WebSockets to the WebSocket backend (where there is a port p).
  port_w=$((port_a + 5))
  mkdir -p "$dir"
  case "$name" in
    tlsplex)
      cat > "$dir/tlsplex.toml" <<EOF
[global]
worker_threads = $workers
[[server]]
name = "a"
listen = "127.0.0.1:$port_a"
certificates = [{ cert = "$work/cert.pem", key = "$work/key.pem" }]
handler = { type = "static", root = "$work/www", cache = {} }
[[server]]
name = "b"
listen = "127.0.0.1:$port_b"
certificates = [{ cert = "$work/cert.pem", key = "$work/key.pem" }]
handler = { type = "static", root = "$work/www", cache = {} }
[[server]]
name = "f"
listen = "127.0.0.1:$port_f"
certificates = [{ cert = "$work/cert.pem", key = "$work/key.pem" }]
handler = { type = "forward", backend = "127.0.0.1:$backend_port" }
[[server]]
name = "r"
listen = "127.0.0.1:$port_r"
certificates = [{ cert = "$work/cert.pem", key = "$work/key.pem" }]
handler = { type = "respond", body = "ok" }
[[server]]
name = "p"
listen = "127.0.0.1:$port_p"
certificates = [{ cert = "$work/cert.pem", key = "$work/key.pem" }]
handler = { type = "proxy", backend = "127.0.0.1:$backend_port" }
[[server]]
name = "w"
listen = "127.0.0.1:$port_w"
certificates = [{ cert = "$work/cert.pem", key = "$work/key.pem" }]
handler = { type = "proxy", backend = "127.0.0.1:$ws_port" }
EOF
      taskset -c "$server_cpus" "$tlsplex" run -c "$dir/tlsplex.toml" >"$dir/out.log" 2>&1 &
      ;;
    nginx)
      cat > "$dir/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes $workers; daemon off; pid $dir/nginx.pid; error_log $dir/error.log;
events { worker_connections 8192; }
http { access_log off; sendfile on;
  open_file_cache max=1024; open_file_cache_valid 1s;
  ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;
  ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;
  server { listen 127.0.0.1:$port_a ssl; root $work/www; index index.html; }
  server { listen 127.0.0.1:$port_b ssl; root $work/www; index index.html; }
  server { listen 127.0.0.1:$port_r ssl; default_type text/plain; return 200 "ok"; }
  upstream plain { server 127.0.0.1:$backend_port; keepalive 32; }
  server { listen 127.0.0.1:$port_p ssl;
    location / { proxy_pass http://plain; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https; } }
  server { listen 127.0.0.1:$port_w ssl;
    location / { proxy_pass http://127.0.0.1:$ws_port; proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection "upgrade";
      proxy_set_header Host \$host; } } }
stream { server { listen 127.0.0.1:$port_f ssl;
  ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;
  proxy_pass 127.0.0.1:$backend_port; } }
EOF
      taskset -c "$server_cpus" nginx -c "$dir/nginx.conf" &
      ;;
    haproxy)
      cat > "$dir/haproxy.cfg" <<EOF
global
  nbthread $workers
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend a
  bind 127.0.0.1:$port_a ssl crt $work/combined.pem alpn http/1.1
  http-request return status 200 content-type text/plain string "ok" unless { path_beg /bulk }
  default_backend files
frontend b
  bind 127.0.0.1:$port_b ssl crt $work/combined.pem alpn http/1.1
  http-request return status 200 content-type text/plain string "ok" unless { path_beg /bulk }
  default_backend files
frontend r
  bind 127.0.0.1:$port_r ssl crt $work/combined.pem alpn http/1.1
  http-request return status 200 content-type text/plain string "ok"
frontend p
  bind 127.0.0.1:$port_p ssl crt $work/combined.pem alpn http/1.1
  option forwardfor
  http-request set-header X-Forwarded-Proto https
  default_backend files
backend files
  server s1 127.0.0.1:$backend_port
frontend w
  bind 127.0.0.1:$port_w ssl crt $work/combined.pem alpn http/1.1
  default_backend ws
backend ws
  server s1 127.0.0.1:$ws_port
frontend f
  mode tcp
  bind 127.0.0.1:$port_f ssl crt $work/combined.pem
  default_backend plain
backend plain
  mode tcp
  server s1 127.0.0.1:$backend_port
EOF
      taskset -c "$server_cpus" haproxy -db -f "$dir/haproxy.cfg" >"$dir/out.log" 2>&1 &
      ;;
    caddy)
      cat > "$dir/Caddyfile" <<EOF
{
  admin off
  auto_https off
  default_sni bench.test
}
https://127.0.0.1:$port_p {
  tls $work/cert.pem $work/key.pem
  reverse_proxy 127.0.0.1:$backend_port
}
https://127.0.0.1:$port_w {
  tls $work/cert.pem $work/key.pem
  reverse_proxy 127.0.0.1:$ws_port
}
EOF
      XDG_DATA_HOME="$dir" XDG_CONFIG_HOME="$dir" GOMAXPROCS=$workers taskset -c "$server_cpus" \
        caddy run --config "$dir/Caddyfile" --adapter caddyfile >"$dir/out.log" 2>&1 &
      server_pid=$!
      wait_port "$port_p" || { log "caddy did not start: $(tail -5 "$dir/out.log")"; return 1; }
      sleep 0.3
      return 0
      ;;
    stunnel)
      fixed=0; proxy=0
      {
        echo "foreground = yes"
        echo "pid ="
        for s in "a $port_a" "b $port_b" "f $port_f"; do
          set -- $s
          printf '[%s]\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\ncert = %s\nkey = %s\n' \
            "$1" "$2" "$backend_port" "$work/cert.pem" "$work/key.pem"
        done
      } > "$dir/stunnel.conf"
      taskset -c "$server_cpus" stunnel "$dir/stunnel.conf" >"$dir/out.log" 2>&1 &
      ;;
    hitch)
      fixed=0; proxy=0
      cat > "$dir/hitch.conf" <<EOF
frontend = "[127.0.0.1]:$port_a"
frontend = "[127.0.0.1]:$port_b"
frontend = "[127.0.0.1]:$port_f"
backend = "[127.0.0.1]:$backend_port"
pem-file = "$work/combined.pem"
workers = 1
daemon = off
user = "nobody"
group = "nogroup"
tls-protos = TLSv1.2 TLSv1.3
alpn-protos = "http/1.1"
EOF
      taskset -c "$server_cpus" hitch --config="$dir/hitch.conf" >"$dir/out.log" 2>&1 &
      ;;
  esac
  server_pid=$!
  if ! { wait_port "$port_a" && wait_port "$port_b" && wait_port "$port_f" &&
    { [ "$fixed" = 0 ] || wait_port "$port_r"; } && { [ "$proxy" = 0 ] || wait_port "$port_p"; }; }; then
    log "$name did not start: $(tail -5 "$dir"/*.log 2>/dev/null)"
    return 1
  fi
  sleep 0.3
}

stop_system() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  sleep 0.3
}

cpu() { $tools cpu "$server_pid"; }
cpu_split() { $tools cpu-split "$server_pid"; } # all of it, then the kernel's part
per_op() { # ticks operations -> µs per operation
  awk -v c="$1" -v n="$2" 'BEGIN {printf "%.2f", c * 10000 / n}'
}

# The HTTP reverse proxy: server CPU per keep-alive request through it (wrk, 64 connections,
# the backend's small page) and bulk MB/s per server core through it.
measure_proxy() { # name
  keepalive "$1" keepalive_proxy "$port_p"
  bulk "$1" bulk_proxy "$port_p"
}

# RSS per idle proxied WebSocket: on a fresh process (as the idle TLS row), $held connections
# upgraded through port w and held open (the proxy then holds a TLS connection, a backend
# connection and the tunnel between them each).
ws_round() { # name index
  start_system "$1" "$2" || { stop_system; return 0; }
  if [ "$proxy" = 1 ] && wait_port "$port_w"; then
    local idle with
    idle=$($tools rss "$server_pid")
    if with=$(taskset -c 1 $tools hold-ws "$port_w" "$held" "$server_pid"); then
      record "$1" rss_per_ws_kib "$(awk -v a="$idle" -v b="$with" -v n="$held" 'BEGIN {printf "%.1f", (b - a) / n}')"
    else
      log "$1: WebSockets through the proxy failed"
    fi
  fi
  stop_system
}

measure_system() { # name
  local name=$1 c0 c1 out ok rate requests rps p50 p99 bytes secs idle with
  if [ "$name" = caddy ] || [ "$proxy_only" = 1 ]; then
    measure_proxy "$name"
    return
  fi
  # 5 (first, on a fresh process: after the load below, allocators have memory to reuse).
  # RSS idle and with idle TLS connections held open.
  idle=$($tools rss "$server_pid")
  with=$(taskset -c 1 $tools hold "$port_a" "$held" "$server_pid")
  record "$name" rss_idle_kib "$idle"
  record "$name" rss_per_conn_kib "$(awk -v a="$idle" -v b="$with" -v n="$held" 'BEGIN {printf "%.1f", (b - a) / n}')"

  measure_requests "$name"

  # 4. Bulk: one connection, the whole file, over HTTPS and through forward mode.
  bulk "$name" bulk_https "$port_a"
  bulk "$name" bulk_forward "$port_f"
  [ "$proxy" = 0 ] || measure_proxy "$name"
}

measure_requests() { # name
  local name=$1 c0 c1 k0 k1 out ok rate requests
  # 1. Full TLS 1.3 handshakes: each client a new connection and one request, no session.
  # Server CPU per operation, and the part of it spent in the kernel (system time).
  read -r c0 k0 <<< "$(cpu_split)"
  out=$(taskset -c "$client_cpus" h2load --h1 -t1 -m1 -n "$handshakes" -c "$handshakes" "https://127.0.0.1:$port_a/" 2>&1)
  read -r c1 k1 <<< "$(cpu_split)"
  ok=$(echo "$out" | awk '/^requests:/ {print $8}')
  rate=$(echo "$out" | awk '/^finished in/ {print $4}')
  if [ "${ok:-0}" -gt 0 ]; then
    record "$name" "full_handshake_us$sfx" "$(per_op $((c1 - c0)) "$ok")"
    record "$name" "full_handshake_kernel_us$sfx" "$(per_op $((k1 - k0)) "$ok")"
    record "$name" "full_handshake_rate$sfx" "${rate:-0}"
  else
    log "$name: full handshakes failed: $out"
  fi

  # 2. Resumed handshakes: wrk with Connection: close resumes its TLS session on each request.
  read -r c0 k0 <<< "$(cpu_split)"
  out=$(taskset -c "$client_cpus" wrk -t1 -c16 -d"${resumed_secs}s" -H 'Connection: close' "https://127.0.0.1:$port_a/" 2>&1)
  read -r c1 k1 <<< "$(cpu_split)"
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  if [ "${requests:-0}" -gt 0 ]; then
    record "$name" "resumed_handshake_us$sfx" "$(per_op $((c1 - c0)) "$requests")"
    record "$name" "resumed_handshake_kernel_us$sfx" "$(per_op $((k1 - k0)) "$requests")"
  fi

  # 3. Keep-alive requests: the small file (HAProxy: its fixed answer), then the fixed answer.
  keepalive "$name" keepalive "$port_a"
  [ "$fixed" = 0 ] || keepalive "$name" keepalive_fixed "$port_r"
}

keepalive() { # name metric-prefix port
  local c0 c1 k0 k1 out requests rps p50 p99
  read -r c0 k0 <<< "$(cpu_split)"
  out=$(taskset -c "$client_cpus" wrk -t1 -c64 -d"${keepalive_secs}s" --latency "https://127.0.0.1:$3/" 2>&1)
  read -r c1 k1 <<< "$(cpu_split)"
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  if [ "${requests:-0}" -gt 0 ]; then
    record "$1" "${2}_us$sfx" "$(per_op $((c1 - c0)) "$requests")"
    record "$1" "${2}_kernel_us$sfx" "$(per_op $((k1 - k0)) "$requests")"
    record "$1" "${2}_rps$sfx" "$rps"
    record "$1" "${2}_p50_ms$sfx" "$(to_ms "$p50")"
    record "$1" "${2}_p99_ms$sfx" "$(to_ms "$p99")"
  fi
}

to_ms() { # wrk's 1.23ms / 850.00us / 1.02s
  echo "$1" | awk '/us$/ {sub("us", ""); printf "%.3f", $0 / 1000; next}
                   /ms$/ {sub("ms", ""); printf "%.3f", $0; next}
                   /s$/ {sub("s", ""); printf "%.3f", $0 * 1000}'
}

bulk() { # name metric port
  local c0 c1 out size secs
  c0=$(cpu)
  # Five downloads on one keep-alive connection: enough server CPU for the 10 ms ticks.
  out=$(taskset -c 1 curl --http1.1 -sk -w '%{size_download} %{time_total}\n' \
    -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null \
    "https://127.0.0.1:$3/bulk" "https://127.0.0.1:$3/bulk" "https://127.0.0.1:$3/bulk" \
    "https://127.0.0.1:$3/bulk" "https://127.0.0.1:$3/bulk" |
    awk '{size += $1; secs += $2} END {print size, secs}')
  c1=$(cpu)
  read -r size secs <<<"$out"
  if [ "${size%.*}" -ge $((5 * bulk_mib * 1024 * 1024)) ]; then
    record "$1" "${2}_mbps" "$(awk -v b="$size" -v s="$secs" 'BEGIN {printf "%.0f", b / 1e6 / s}')"
    record "$1" "${2}_mbps_core" "$(awk -v b="$size" -v c=$((c1 - c0)) 'BEGIN {printf("%.0f", c > 0 ? b / 1e6 / (c / 100) : 0)}')"
  else
    log "$1: $2 got $size bytes"
  fi
}

# ---------------------------------------------------------------------------------------------
# 6. Many servers in one process: tlsplex and nginx, each with one TLS server per port, all
# naming the same certificate file. Metrics `<prefix>_start_s` and `<prefix>_rss_kib`.
scale_first=20000
scale_round() { # name, servers, metric prefix[, idle connections to spread over the servers]
  local name=$1 scale_servers=$2 prefix=$3 spread=${4:-0} dir="$work/scale-$1-$2" started elapsed i idle with
  mkdir -p "$dir"
  # The files are written first: the clock runs from launch only.
  # tlsplex's process-wide connection limit (10,000 by default) above the connections held.
  printf '[global]\nmax_connections = %d\n' $((spread + 10000)) > "$dir/tlsplex.toml"
  {
    echo "worker_processes 1; daemon off; pid $dir/nginx.pid; error_log $dir/error.log;"
    echo "events { worker_connections $((scale_servers + spread + 2048)); }"
    echo "http { access_log off; ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;"
    echo "  client_header_timeout 120s;"
  } > "$dir/nginx.conf"
  # Held connections send no request: tlsplex closes such a connection after its
  # first_request_timeout (10 s), nginx after client_header_timeout (60 s). Opening 10,000 takes
  # longer than 10 s, so both get 120 s.
  local http=""
  [ "$spread" -gt 0 ] && http='http = { first_request_timeout = "120s" }'
  for i in $(seq 0 $((scale_servers - 1))); do
    printf '[[server]]\nname = "s%d"\nlisten = "127.0.0.1:%d"\ncertificates = [{ cert = "%s", key = "%s" }]\n%s\n' \
      "$i" $((scale_first + i)) "$work/cert.pem" "$work/key.pem" "$http"
  done >> "$dir/tlsplex.toml"
  for i in $(seq 0 $((scale_servers - 1))); do
    echo "  server { listen 127.0.0.1:$((scale_first + i)) ssl; return 200 ok; }"
  done >> "$dir/nginx.conf"
  echo "}" >> "$dir/nginx.conf"
  started=$(date +%s.%N)
  case "$name" in
    tlsplex) taskset -c 0 "$tlsplex" run -c "$dir/tlsplex.toml" >"$dir/out.log" 2>&1 & ;;
    nginx) taskset -c 0 nginx -c "$dir/nginx.conf" & ;;
  esac
  server_pid=$!
  taskset -c 1 $tools ports-up "$scale_first" "$scale_servers" 60 >/dev/null
  elapsed=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN {printf "%.3f", e - s}')
  sleep 0.5
  record "$name" "${prefix}_start_s" "$elapsed"
  idle=$($tools rss "$server_pid")
  record "$name" "${prefix}_rss_kib" "$idle"
  if [ "$spread" -gt 0 ]; then
    with=$(taskset -c 1 $tools hold "$scale_first" "$spread" "$server_pid" "$scale_servers")
    record "$name" "${prefix}_per_conn_kib" "$(awk -v a="$idle" -v b="$with" -v n="$spread" 'BEGIN {printf "%.2f", (b - a) / n}')"
  fi
  stop_system
}

# ---------------------------------------------------------------------------------------------
# 7. One server with many SNI certificates, against one with a single certificate.
sni_round() {
  local dir="$work/sni" port=$((base_port + 901)) c0 c1 started elapsed n=$((sni_certs / 2)) out ok
  for variant in many single; do
    {
      printf '[[server]]\nname = "sni"\nlisten = "127.0.0.1:%d"\ncertificates = [\n' "$port"
      if [ "$variant" = many ]; then
        for i in $(seq 0 $((sni_certs - 1))); do
          printf '  { cert = "%s/name-%d.pem", key = "%s/name-%d.key" },\n' "$dir" "$i" "$dir" "$i"
        done
      else
        printf '  { cert = "%s/name-%d.pem", key = "%s/name-%d.key" },\n' "$dir" "$n" "$dir" "$n"
      fi
      printf ']\n'
    } > "$dir/$variant.toml"
    started=$(date +%s.%N)
    taskset -c 0 "$tlsplex" run -c "$dir/$variant.toml" >"$dir/$variant.log" 2>&1 &
    server_pid=$!
    taskset -c 1 $tools ports-up "$port" 1 60 >/dev/null
    elapsed=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN {printf "%.3f", e - s}')
    [ "$variant" = many ] && record tlsplex sni_start_s "$elapsed"
    c0=$(cpu)
    out=$(taskset -c 1 h2load --h1 -t1 -m1 -n "$handshakes" -c "$handshakes" \
      --connect-to="127.0.0.1:$port" "https://name-$n.test/" 2>&1)
    c1=$(cpu)
    ok=$(echo "$out" | awk '/^requests:/ {print $8}')
    if [ "${ok:-0}" -gt 0 ]; then
      local metric=sni_handshake_us
      [ "$variant" = single ] && metric=sni_single_handshake_us
      record tlsplex "$metric" "$(per_op $((c1 - c0)) "$ok")"
    fi
    stop_system
  done
}

# ---------------------------------------------------------------------------------------------
wait_port "$backend_port"
# ---------------------------------------------------------------------------------------------
# 8. What browsers negotiate: X25519MLKEM768 against X25519, full and resumed TLS 1.3 handshakes
# (+ one request each), from bench/tls-load (rustls: OpenSSL 3.0's tools cannot offer ML-KEM), 16
# connections at a time, against tlsplex with a CA-signed chain (rustls verifies it).
pq_material() {
  local dir="$work/pq"
  . "$here/chain.sh"
  make_chain "$dir" DNS:bench.test
  printf '[[server]]\nname = "pq"\nlisten = "127.0.0.1:%d"\ncertificates = [{ cert = "chain.pem", key = "leaf.key" }]\n' \
    $((base_port + 951)) > "$dir/tlsplex.toml"
}
pq_round() {
  local dir="$work/pq" port=$((base_port + 951)) entry metric groups resume c0 c1 out n rate
  taskset -c 0 "$tlsplex" run -c "$dir/tlsplex.toml" >"$dir/out.log" 2>&1 &
  server_pid=$!
  wait_port "$port" || { stop_system; return 0; }
  for entry in "x25519_full X25519 -" "mlkem_full X25519MLKEM768 -" \
    "x25519_resumed X25519 --resume" "mlkem_resumed X25519MLKEM768 --resume"; do
    read -r metric groups resume <<<"$entry"
    [ "$resume" = - ] && resume=""
    c0=$(cpu)
    out=$(taskset -c 1 "$tls_load" "127.0.0.1:$port" bench.test "$dir/ca.pem" --seconds "$pq_secs" \
      --concurrency 16 --groups "$groups" $resume) || { log "tls-load $metric failed: $out"; continue; }
    c1=$(cpu)
    n=$(echo "$out" | sed -n 's/^connections=\([0-9]*\) .*/\1/p')
    rate=$(echo "$out" | sed -n 's/.* rate=\([0-9.]*\) .*/\1/p')
    if [ "${n:-0}" -gt 0 ]; then
      record tlsplex "pq_${metric}_us" "$(per_op $((c1 - c0)) "$n")"
      record tlsplex "pq_${metric}_rate" "$rate"
    fi
  done
  stop_system
}

if [ "$proxy_only" = 0 ]; then
  log "generating $sni_certs SNI certificates"
  $tools sni-certs "$work/sni" "$sni_certs"
  pq_material
fi

for round in $(seq 1 "$rounds"); do
  for i in "${!systems[@]}"; do
    log "round $round: ${systems[$i]}"
    if start_system "${systems[$i]}" "$i"; then
      measure_system "${systems[$i]}"
    fi
    stop_system
    ws_round "${systems[$i]}" "$i"
  done
  [ "$proxy_only" = 1 ] && continue
  # Two workers on two CPUs, shared with the clients: server CPU per operation.
  workers=2; server_cpus=0,1; client_cpus=0,1; sfx=_w2
  for i in "${!systems[@]}"; do
    case "${systems[$i]}" in tlsplex | nginx | haproxy) ;; *) continue ;; esac
    log "round $round: ${systems[$i]}, 2 workers"
    if start_system "${systems[$i]}" "$i"; then
      measure_requests "${systems[$i]}"
    fi
    stop_system
  done
  workers=1; server_cpus=0; client_cpus=1; sfx=""
  for system in tlsplex nginx; do
    [ "$quick" = 1 ] && [ "$system" = nginx ] && continue
    scale_round "$system" "$scale_servers" scale
    scale_round "$system" "$scale_many" scale_many
    scale_round "$system" 100 spread "$spread_held"
  done
  sni_round
  pq_round
done

date=$(date +%F)
[ "$proxy_only" = 1 ] && date="$date-proxy"
if [ "$quick" = 1 ]; then
  out_dir="$work"
else
  out_dir="$here/results"
  mkdir -p "$out_dir"
  cp "$raw" "$out_dir/$date.jsonl"
fi
{
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(uname -r)."
  echo "Versions: tlsplex $(git -C "$root" rev-parse --short HEAD) ($profile); $(nginx -v 2>&1);"
  [ "$quick" = 0 ] && echo "$(haproxy -v | head -1 | cut -d' ' -f1-3); $(stunnel -version 2>&1 | grep -m1 '^stunnel' | cut -d' ' -f1-2); $(hitch --version 2>&1 | head -1); caddy $(caddy version 2>/dev/null | cut -d' ' -f1)."
  echo "Rounds: $rounds, interleaved; $handshakes full handshakes, ${keepalive_secs}s keep-alive (64 connections),"
  echo "${bulk_mib} MiB bulk, $held idle connections ($spread_held over 100 servers), $scale_servers and $scale_many servers, $sni_certs SNI certificates."
} > "$work/context.txt"
$tools report "$raw" "$out_dir/$date.md" "$out_dir/$date.svg" "tlsplex benchmark $date"
{ echo; cat "$work/context.txt"; } >> "$out_dir/$date.md"
[ "$quick" = 0 ] && log "results: $out_dir/$date.md and $out_dir/$date.svg"
if [ "$quick" = 1 ]; then
  # The smoke run must have produced every tlsplex metric.
  for metric in full_handshake_us resumed_handshake_us keepalive_us keepalive_fixed_us bulk_https_mbps bulk_forward_mbps \
    rss_per_conn_kib scale_start_s scale_many_start_s spread_per_conn_kib pq_x25519_full_us pq_mlkem_full_us \
    pq_mlkem_resumed_us full_handshake_us_w2 keepalive_fixed_us_w2 sni_start_s sni_handshake_us \
    keepalive_proxy_us bulk_proxy_mbps rss_per_ws_kib full_handshake_kernel_us keepalive_proxy_kernel_us; do
    grep -q "\"$metric\"" "$raw" || { log "quick run: no $metric"; exit 1; }
  done
fi
