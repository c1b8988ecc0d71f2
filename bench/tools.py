#!/usr/bin/env python3
"""Helpers for bench/run.sh: hold idle TLS connections, wait for ports, make SNI certificates,
read process CPU and memory, and turn the raw results into a table and a chart.

Standard library only, except `sni-certs`, which uses the `cryptography` package.
"""
import json
import os
import socket
import ssl
import statistics
import sys
import time


def pids_of(root):
    """The process `root` and all its descendants (nginx and hitch run workers as children)."""
    found, queue = [], [int(root)]
    while queue:
        pid = queue.pop()
        found.append(pid)
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                queue.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return found


def cpu_ticks(root):
    """(utime + stime, stime), in clock ticks (10 ms), summed over the process tree."""
    total = kernel = 0
    for pid in pids_of(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            kernel += int(fields[12])
        except OSError:
            pass
    return total, kernel


def rss_kib(root):
    total = 0
    for pid in pids_of(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def client_context():
    """A TLS client context that trusts anything and offers HTTP/1.1."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def hold(port, count, pid, ports=1):
    """Opens `count` TLS connections, spread round-robin over `ports` consecutive ports from
    `port`, completes each handshake, prints the server's RSS with them held open (KiB), then
    closes them."""
    ctx = client_context()
    conns = []
    for i in range(count):
        raw = socket.create_connection(("127.0.0.1", port + i % ports), timeout=10)
        conns.append(ctx.wrap_socket(raw, server_hostname="bench.test"))
    time.sleep(1.0)
    print(rss_kib(pid))
    for c in conns:
        c.close()


# The Host is the address, as wrk sends it (Caddy's sites match it; another host gets an empty 200).
WS_UPGRADE = (
    "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def hold_ws(port, count, pid):
    """Opens `count` TLS connections to an HTTP reverse proxy, upgrades each to a WebSocket
    (the proxy answers the backend's 101), prints the server's RSS with them held open (KiB),
    then closes them."""
    ctx = client_context()
    conns = []
    for _ in range(count):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn = ctx.wrap_socket(raw, server_hostname="bench.test")
        conn.sendall(WS_UPGRADE.format(port=port).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                sys.exit("the proxy closed before answering the upgrade")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            sys.exit(f"no 101 from the proxy: {head[:60]!r}")
        conns.append(conn)
    time.sleep(1.0)
    print(rss_kib(pid))
    for c in conns:
        c.close()


def ws_backend(port):
    """A WebSocket backend for the proxies: answers each upgrade with 101 and holds the
    connection, reading and dropping whatever comes, until the peer closes."""
    import asyncio
    import base64
    import hashlib

    guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    async def serve(reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            key = b""
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"sec-websocket-key":
                    key = value.strip()
            accept = base64.b64encode(hashlib.sha1(key + guid).digest())
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            await writer.drain()
            while await reader.read(65536):
                pass
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def ports_up(first, count, limit):
    """Seconds until every port first..first+count-1 accepts a TCP connection."""
    started = time.monotonic()
    pending = list(range(first, first + count))
    while pending:
        if time.monotonic() - started > limit:
            sys.exit(f"ports never all answered: {len(pending)} left")
        still = []
        for port in pending:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            except OSError:
                still.append(port)
        pending = still
        if pending:
            time.sleep(0.005)
    print(f"{time.monotonic() - started:.4f}")


def sni_certs(folder, count):
    """`count` ECDSA P-256 certificates for name-N.test, one CA, as name-N.pem / name-N.key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import datetime

    os.makedirs(folder, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench sni ca")])
    for n in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        name = f"name-{n}.test"
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(n + 1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        with open(f"{folder}/name-{n}.pem", "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(f"{folder}/name-{n}.key", "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        os.chmod(f"{folder}/name-{n}.key", 0o600)


# What each metric is, its unit, and whether more is better; in the order of the table.
METRICS = [
    ("full_handshake_us", "server CPU per full TLS 1.3 handshake", "µs", False),
    ("full_handshake_kernel_us", "of which in the kernel (stime): full handshake", "µs", False),
    ("full_handshake_rate", "full handshakes achieved (client-bound)", "/s", True),
    ("resumed_handshake_us", "server CPU per resumed handshake + request", "µs", False),
    ("resumed_handshake_kernel_us", "of which in the kernel (stime): resumed handshake", "µs", False),
    ("keepalive_us", "server CPU per keep-alive request, small file (HAProxy: fixed answer)", "µs", False),
    ("keepalive_kernel_us", "of which in the kernel (stime): keep-alive, small file", "µs", False),
    ("keepalive_rps", "keep-alive requests/s achieved, small file (client-bound)", "/s", True),
    ("keepalive_p50_ms", "keep-alive p50 latency, small file", "ms", False),
    ("keepalive_p99_ms", "keep-alive p99 latency, small file", "ms", False),
    ("keepalive_fixed_us", "server CPU per keep-alive request, fixed answer from memory", "µs", False),
    ("keepalive_fixed_kernel_us", "of which in the kernel (stime): keep-alive, fixed answer", "µs", False),
    ("keepalive_fixed_rps", "keep-alive requests/s achieved, fixed answer (client-bound)", "/s", True),
    ("keepalive_fixed_p50_ms", "keep-alive p50 latency, fixed answer", "ms", False),
    ("keepalive_fixed_p99_ms", "keep-alive p99 latency, fixed answer", "ms", False),
    ("bulk_https_mbps_core", "bulk HTTPS, one connection: MB/s per server core", "MB/s", True),
    ("bulk_https_mbps", "bulk HTTPS, one connection: MB/s achieved", "MB/s", True),
    ("bulk_forward_mbps_core", "bulk through forward mode: MB/s per server core", "MB/s", True),
    ("bulk_forward_mbps", "bulk through forward mode: MB/s achieved", "MB/s", True),
    ("keepalive_proxy_us", "HTTP reverse proxy: server CPU per keep-alive request", "µs", False),
    ("keepalive_proxy_kernel_us", "of which in the kernel (stime): proxy keep-alive request", "µs", False),
    ("keepalive_proxy_rps", "HTTP reverse proxy: keep-alive requests/s achieved", "/s", True),
    ("keepalive_proxy_p99_ms", "HTTP reverse proxy: keep-alive p99 latency", "ms", False),
    ("bulk_proxy_mbps_core", "bulk through the HTTP reverse proxy: MB/s per server core", "MB/s", True),
    ("bulk_proxy_mbps", "bulk through the HTTP reverse proxy: MB/s achieved", "MB/s", True),
    ("full_handshake_us_w2", "2 workers: server CPU per full TLS 1.3 handshake", "µs", False),
    ("resumed_handshake_us_w2", "2 workers: server CPU per resumed handshake + request", "µs", False),
    ("keepalive_us_w2", "2 workers: server CPU per keep-alive request, small file", "µs", False),
    ("keepalive_fixed_us_w2", "2 workers: server CPU per keep-alive request, fixed answer", "µs", False),
    ("keepalive_fixed_rps_w2", "2 workers: keep-alive requests/s achieved, fixed answer", "/s", True),
    ("rss_idle_kib", "RSS idle (all processes)", "KiB", False),
    ("rss_per_conn_kib", "RSS per idle TLS connection", "KiB", False),
    ("rss_per_ws_kib", "RSS per idle WebSocket through the HTTP reverse proxy", "KiB", False),
    ("scale_start_s", "1,000 servers: start until all ports answer", "s", False),
    ("scale_rss_kib", "1,000 servers: RSS", "KiB", False),
    ("scale_many_start_s", "10,000 servers: start until all ports answer", "s", False),
    ("scale_many_rss_kib", "10,000 servers: RSS", "KiB", False),
    ("spread_per_conn_kib", "10,000 idle TLS connections over 100 servers: RSS per connection", "KiB", False),
    ("pq_x25519_full_us", "rustls client, X25519: server CPU per full handshake + request", "µs", False),
    ("pq_mlkem_full_us", "rustls client, X25519MLKEM768: server CPU per full handshake + request", "µs", False),
    ("pq_x25519_resumed_us", "rustls client, X25519: server CPU per resumed handshake + request", "µs", False),
    ("pq_mlkem_resumed_us", "rustls client, X25519MLKEM768: server CPU per resumed handshake + request", "µs", False),
    ("pq_mlkem_full_rate", "rustls client, X25519MLKEM768: full handshakes/s achieved (16 at a time)", "/s", True),
    ("sni_start_s", "10,000 SNI certificates: start until the port answers", "s", False),
    ("sni_handshake_us", "10,000 SNI certificates: server CPU per full handshake", "µs", False),
    ("sni_single_handshake_us", "same, single-certificate server", "µs", False),
]


def number(v):
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def report(raw_path, md_path, svg_path, title):
    rows = [json.loads(line) for line in open(raw_path) if line.strip()]
    values = {}
    for row in rows:
        values.setdefault((row["metric"], row["system"]), []).append(float(row["value"]))
    systems = []
    for row in rows:
        if row["system"] not in systems:
            systems.append(row["system"])
    lines = [f"# {title}", "",
             "Medians of the rounds, with min–max. Server CPU is utime+stime of the server's",
             "processes (10 ms ticks) divided by the operations; the server is pinned to CPU 0, the",
             "clients to CPU 1. The last column is tlsplex against the best peer.", "",
             "| metric | " + " | ".join(systems) + " | tlsplex vs best peer |",
             "|---|" + "---|" * (len(systems) + 1)]
    chart = []
    for key, label, unit, more_is_better in METRICS:
        cells, medians = [], {}
        for system in systems:
            v = values.get((key, system))
            if not v:
                cells.append("–")
                continue
            med = statistics.median(v)
            medians[system] = med
            spread = f" ({number(min(v))}–{number(max(v))})" if len(v) > 1 else ""
            cells.append(f"{number(med)}{spread}")
        if not medians:
            continue
        ratio = ""
        peers = {s: m for s, m in medians.items() if s != "tlsplex"}
        if "tlsplex" in medians and peers:
            best = max(peers.values()) if more_is_better else min(peers.values())
            if best > 0:
                r = medians["tlsplex"] / best
                ratio = f"{r:.2f}×"
                chart.append((label, r if more_is_better else (1 / r if r > 0 else 0)))
        lines.append(f"| {label} ({unit}) | " + " | ".join(cells) + f" | {ratio} |")
    # Two workers against one, per tlsplex operation (target: within 10 %).
    for key in ("full_handshake_us", "resumed_handshake_us", "keepalive_us", "keepalive_fixed_us"):
        one, two = values.get((key, "tlsplex")), values.get((key + "_w2", "tlsplex"))
        if one and two and statistics.median(one) > 0:
            r = statistics.median(two) / statistics.median(one)
            lines.append(f"| tlsplex 2 workers / 1 worker: {key} | {r:.2f}× |" + " |" * len(systems))
    # How low the ratio can go while the kernel does what it does now: tlsplex's system time
    # alone against the best peer's whole server CPU (user + system).
    for key in ("full_handshake_us", "resumed_handshake_us", "keepalive_us", "keepalive_fixed_us",
                "keepalive_proxy_us"):
        kernel = values.get((key.replace("_us", "_kernel_us"), "tlsplex"))
        peers = [statistics.median(v) for (k, system), v in values.items()
                 if k == key and system != "tlsplex" and v]
        if kernel and peers and min(peers) > 0:
            r = statistics.median(kernel) / min(peers)
            lines.append(f"| tlsplex kernel time alone / best peer's whole CPU: {key} | {r:.2f}× |"
                         + " |" * len(systems))
    # Post-quantum against classic key exchange, tlsplex alone (no peer offers ML-KEM here).
    for kind in ("full", "resumed"):
        pq, classic = values.get((f"pq_mlkem_{kind}_us", "tlsplex")), values.get((f"pq_x25519_{kind}_us", "tlsplex"))
        if pq and classic and statistics.median(classic) > 0:
            r = statistics.median(pq) / statistics.median(classic)
            lines.append(f"| X25519MLKEM768 / X25519, {kind} handshake: tlsplex server CPU | {r:.2f}× |" + " |" * len(systems))
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    write_svg(svg_path, chart, title)
    print("\n".join(lines))


def write_svg(path, chart, title):
    """Bars of tlsplex's advantage over the best peer per metric (1.0 = parity, higher = better)."""
    width, bar_h, left = 900, 22, 430
    height = 60 + bar_h * len(chart)
    top = max([r for _, r in chart] + [2.0])
    scale = (width - left - 60) / top
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<text x="10" y="20" font-size="14">{title}: tlsplex vs the best peer '
           f'(× better; 1.0 = parity)</text>']
    x1 = left + scale
    out.append(f'<line x1="{x1:.0f}" y1="30" x2="{x1:.0f}" y2="{height - 10}" stroke="#888" '
               f'stroke-dasharray="4"/>')
    for i, (label, r) in enumerate(chart):
        y = 40 + i * bar_h
        colour = "#2a7" if r >= 1 else "#c44"
        out.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{label}</text>')
        out.append(f'<rect x="{left}" y="{y + 3}" width="{r * scale:.1f}" height="{bar_h - 6}" '
                   f'fill="{colour}"/>')
        out.append(f'<text x="{left + r * scale + 4:.1f}" y="{y + 14}">{r:.2f}×</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "cpu":
        print(cpu_ticks(args[0])[0])
    elif command == "cpu-split":
        print(*cpu_ticks(args[0]))
    elif command == "rss":
        print(rss_kib(args[0]))
    elif command == "hold":
        hold(int(args[0]), int(args[1]), args[2], int(args[3]) if len(args) > 3 else 1)
    elif command == "hold-ws":
        hold_ws(int(args[0]), int(args[1]), args[2])
    elif command == "ws-backend":
        ws_backend(int(args[0]))
    elif command == "ports-up":
        ports_up(int(args[0]), int(args[1]), float(args[2]))
    elif command == "sni-certs":
        sni_certs(args[0], int(args[1]))
    elif command == "report":
        report(args[0], args[1], args[2], args[3])
    else:
        sys.exit(f"unknown command {command}")
