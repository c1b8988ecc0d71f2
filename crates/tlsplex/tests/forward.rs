//! The `forward` handler: TLS termination to a plaintext backend.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tlsplex::handler::{Backend, ForwardOptions, ProxyProtocol};
use tlsplex::{Context, ServerOptions};
use tlsplex_testkit::{any_port, connect, echo_backend, start, TestPki};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// A loopback listener that never accepts, its queue filled until new connects stall.
fn stalled_listener() -> (socket2::Socket, Vec<std::net::TcpStream>, SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    // Connect until one attempt stalls: the accept queue is then full and SYNs are dropped.
    while let Ok(stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
        fillers.push(stream);
        assert!(fillers.len() < 64, "the accept queue never filled");
    }
    (socket, fillers, addr)
}

fn forward_to(ctx: &Context, pki: &TestPki, name: &str, options: ForwardOptions) -> SocketAddr {
    let cert = pki.issue(name, &["fwd.test"]);
    start(
        ctx,
        ServerOptions::new(name, any_port(), cert.store()).forward(options),
    )
}

fn tcp(addr: SocketAddr) -> ForwardOptions {
    ForwardOptions::new(Backend::Tcp(addr.to_string()))
}

/// Deterministic pseudo-random bytes (xorshift), different per `seed`.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn sha256(data: &[u8]) -> String {
    tlsplex::tls::sha256_fingerprint(data)
}

/// Writes `data` and half-closes while reading everything back; returns what came back.
async fn round_trip<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    data: Arc<Vec<u8>>,
) -> Vec<u8> {
    let (mut read, mut write) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        for chunk in data.chunks(64 * 1024) {
            write.write_all(chunk).await.unwrap();
        }
        write.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    read.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_payload_round_trips_byte_exact() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let addr = forward_to(&ctx, &pki, "bulk", tcp(echo_backend().await));
    let data = Arc::new(payload(100 * 1024 * 1024, 42));
    let stream = connect(addr, "fwd.test", pki.client(&[])).await.unwrap();
    let started = Instant::now();
    let back = round_trip(stream, data.clone()).await;
    eprintln!("100 MiB each way in {:?}", started.elapsed());
    assert_eq!(back.len(), data.len());
    assert_eq!(sha256(&back), sha256(&data), "byte-exact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_clients_each_get_their_own_bytes_back() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let addr = forward_to(&ctx, &pki, "many", tcp(echo_backend().await));
    let client = pki.client(&[]);
    let mut tasks = Vec::new();
    for seed in 0..200u64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let data = Arc::new(payload(64 * 1024 + seed as usize, seed));
            let stream = connect(addr, "fwd.test", client).await.unwrap();
            round_trip(stream, data.clone()).await == *data
        }));
    }
    for task in tasks {
        assert!(
            task.await.unwrap(),
            "a client got someone else's bytes, or fewer"
        );
    }
}

#[tokio::test]
async fn an_unreachable_backend_closes_the_client_cleanly_and_the_server_goes_on() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let addr = forward_to(&ctx, &pki, "down", tcp(closed_port));
    for _ in 0..3 {
        let mut stream = connect(addr, "fwd.test", pki.client(&[])).await.unwrap();
        let mut rest = Vec::new();
        // Ok (not an error) means the server sent close_notify: a clean close.
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0))), "{read:?}");
    }
}

#[tokio::test]
async fn a_backend_that_never_answers_times_out_on_connect() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let (_listener, _fillers, stalled) = stalled_listener();
    let mut options = tcp(stalled);
    options.connect_timeout = Duration::from_millis(300);
    let addr = forward_to(&ctx, &pki, "slow", options);
    let started = Instant::now();
    let mut stream = connect(addr, "fwd.test", pki.client(&[])).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0))), "closed cleanly: {read:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "after the connect timeout"
    );
}

#[tokio::test]
async fn half_close_passes_through_in_both_directions() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    // The backend reads to EOF, then answers with how much it got; the reply must still reach a
    // client that has already shut its write side.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut first = [0u8; 5];
                stream.read_exact(&mut first).await.unwrap();
                if &first == b"first" {
                    // Client speaks first and half-closes.
                    let mut rest = Vec::new();
                    stream.read_to_end(&mut rest).await.unwrap();
                    let answer = format!("got {} bytes after first", rest.len());
                    stream.write_all(answer.as_bytes()).await.unwrap();
                    stream.shutdown().await.unwrap();
                } else {
                    // Backend half-closes first, then keeps reading.
                    stream.write_all(b"bye").await.unwrap();
                    stream.shutdown().await.unwrap();
                    let mut rest = Vec::new();
                    stream.read_to_end(&mut rest).await.unwrap();
                    assert_eq!(rest, b"more after bye");
                }
            });
        }
    });
    let addr = forward_to(&ctx, &pki, "half", tcp(backend));

    let mut client = connect(addr, "fwd.test", pki.client(&[])).await.unwrap();
    client.write_all(b"first0123456789").await.unwrap();
    client.shutdown().await.unwrap(); // close_notify: "I am done writing"
    let mut answer = String::new();
    client.read_to_string(&mut answer).await.unwrap();
    assert_eq!(answer, "got 10 bytes after first");

    let mut client = connect(addr, "fwd.test", pki.client(&[])).await.unwrap();
    client.write_all(b"hello").await.unwrap();
    let mut said = Vec::new();
    client.read_to_end(&mut said).await.unwrap(); // ends at the backend's half-close
    assert_eq!(said, b"bye");
    client.write_all(b"more after bye").await.unwrap();
    client.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_idle_timeout() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let mut options = tcp(echo_backend().await);
    options.idle_timeout = Some(Duration::from_millis(300));
    let addr = forward_to(&ctx, &pki, "idle", options);
    let mut client = connect(addr, "fwd.test", pki.client(&[])).await.unwrap();
    // Activity keeps it open past the timeout…
    for _ in 0..4 {
        client.write_all(b"ping").await.unwrap();
        let mut pong = [0u8; 4];
        client.read_exact(&mut pong).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // …silence closes it.
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn unix_socket_backends_work() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(tlsplex_testkit::echo(stream));
        }
    });
    let addr = forward_to(&ctx, &pki, "unix", ForwardOptions::new(Backend::Unix(path)));
    let stream = connect(addr, "fwd.test", pki.client(&[])).await.unwrap();
    let back = round_trip(stream, Arc::new(b"through a unix socket".to_vec())).await;
    assert_eq!(back, b"through a unix socket");
}

/// Captures the first bytes a backend receives, then closes.
async fn capturing_backend(
    expected_len: usize,
) -> (SocketAddr, tokio::sync::oneshot::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buffer = [0u8; 1024];
        while got.len() < expected_len {
            let n = stream.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buffer[..n]);
        }
        let _ = tx.send(got);
    });
    (addr, rx)
}

#[tokio::test]
async fn proxy_protocol_v1_names_the_client() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let (backend, captured) = capturing_backend(usize::MAX).await;
    let mut options = tcp(backend);
    options.proxy_protocol = Some(ProxyProtocol::V1);
    let addr = forward_to(&ctx, &pki, "pp1", options);
    let mut client = connect(addr, "fwd.test", pki.client(&[])).await.unwrap();
    let client_addr = client.get_ref().0.local_addr().unwrap();
    client.write_all(b"payload").await.unwrap();
    client.shutdown().await.unwrap();
    let got = String::from_utf8(captured.await.unwrap()).unwrap();
    let (header, rest) = got.split_once("\r\n").unwrap();
    let fields: Vec<&str> = header.split(' ').collect();
    assert_eq!(
        fields,
        [
            "PROXY",
            "TCP4",
            &client_addr.ip().to_string(),
            &addr.ip().to_string(),
            &client_addr.port().to_string(),
            &addr.port().to_string()
        ]
    );
    assert_eq!(rest, "payload");
}

/// A PROXY v2 header, decoded by hand from the specification (independent of the encoder).
#[derive(Debug, Default)]
struct V2 {
    source: Option<SocketAddr>,
    destination: Option<SocketAddr>,
    tlvs: Vec<(u8, Vec<u8>)>,
    payload: Vec<u8>,
}

fn decode_v2(bytes: &[u8]) -> V2 {
    const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
    assert_eq!(&bytes[..12], SIGNATURE);
    assert_eq!(bytes[12], 0x21, "version 2, command PROXY");
    assert_eq!(bytes[13], 0x11, "AF_INET, STREAM");
    let len = u16::from_be_bytes([bytes[14], bytes[15]]) as usize;
    let body = &bytes[16..16 + len];
    let ip = |b: &[u8]| std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    let mut header = V2 {
        source: Some(SocketAddr::from((ip(&body[0..4]), port(&body[8..10])))),
        destination: Some(SocketAddr::from((ip(&body[4..8]), port(&body[10..12])))),
        payload: bytes[16 + len..].to_vec(),
        ..V2::default()
    };
    let mut tlvs = &body[12..];
    while tlvs.len() >= 3 {
        let kind = tlvs[0];
        let len = u16::from_be_bytes([tlvs[1], tlvs[2]]) as usize;
        header.tlvs.push((kind, tlvs[3..3 + len].to_vec()));
        tlvs = &tlvs[3 + len..];
    }
    header
}

fn tlv(tlvs: &[(u8, Vec<u8>)], kind: u8) -> Option<&[u8]> {
    tlvs.iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v.as_slice())
}

#[tokio::test]
async fn proxy_protocol_v2_carries_addresses_and_tls_facts() {
    let server_pki = TestPki::new();
    let clients = TestPki::new();
    let ctx = Context::builder().build();
    let (backend, captured) = capturing_backend(usize::MAX).await;
    let mut options = tcp(backend);
    options.proxy_protocol = Some(ProxyProtocol::V2);
    let mut policy = tlsplex::TlsPolicy::default();
    policy.client_auth = Some(
        tlsplex::tls::ClientAuth::from_files(
            &clients.ca_file(),
            &[],
            tlsplex::tls::ClientAuthMode::Optional,
        )
        .unwrap(),
    );
    let cert = server_pki.issue("pp2", &["fwd.test"]);
    let addr = start(
        &ctx,
        ServerOptions::new("pp2", any_port(), cert.store())
            .forward(options)
            .tls(policy),
    );

    let alice = clients.issue_client("alice", "alice", 9);
    let config =
        Arc::new(server_pki.client_builder(rustls::DEFAULT_VERSIONS, &["h2"], Some(&alice)));
    let mut client = connect(addr, "fwd.test", config).await.unwrap();
    let client_addr = client.get_ref().0.local_addr().unwrap();
    client.write_all(b"payload").await.unwrap();
    client.shutdown().await.unwrap();
    let header = decode_v2(&captured.await.unwrap());

    assert_eq!(header.source, Some(client_addr));
    assert_eq!(header.destination, Some(addr));
    assert_eq!(tlv(&header.tlvs, 0x01), Some(&b"h2"[..]), "PP2_TYPE_ALPN");
    assert_eq!(
        tlv(&header.tlvs, 0x02),
        Some(&b"fwd.test"[..]),
        "PP2_TYPE_AUTHORITY"
    );
    let ssl = tlv(&header.tlvs, 0x20).expect("PP2_TYPE_SSL");
    assert_eq!(
        ssl[0],
        0x01 | 0x02 | 0x04,
        "PP2_CLIENT_SSL | CERT_CONN | CERT_SESS"
    );
    assert_eq!(&ssl[1..5], &[0, 0, 0, 0], "verified");
    let mut subs = Vec::new();
    let mut rest = &ssl[5..];
    while rest.len() >= 3 {
        let len = u16::from_be_bytes([rest[1], rest[2]]) as usize;
        subs.push((rest[0], rest[3..3 + len].to_vec()));
        rest = &rest[3 + len..];
    }
    assert_eq!(
        tlv(&subs, 0x21),
        Some(&b"TLSv1.3"[..]),
        "PP2_SUBTYPE_SSL_VERSION"
    );
    assert_eq!(tlv(&subs, 0x22), Some(&b"alice"[..]), "PP2_SUBTYPE_SSL_CN");
    assert!(
        tlv(&subs, 0x23).is_some_and(|c| c.starts_with(b"TLS13_")),
        "PP2_SUBTYPE_SSL_CIPHER"
    );
    assert_eq!(header.payload, b"payload");
}

/// A backend that sends `sent` bytes on every connection, then resets it (`reset`) or goes
/// silent while holding it open.
async fn faulty_backend(sent: usize, reset: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            stream.write_all(&payload(sent, 7)).await.unwrap();
            if reset {
                socket2::SockRef::from(&stream)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            } else {
                held.push(stream);
            }
        }
    });
    addr
}

/// Reads until the stream ends (cleanly or not) or `limit` passes; returns the bytes and whether
/// it ended.
async fn read_until_end<S: AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> (usize, bool) {
    let mut total = 0;
    let mut buffer = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (total, true),
            Ok(Ok(n)) => total += n,
            Err(_) => return (total, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_reset_mid_stream_ends_that_connection_only() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let resetting = forward_to(
        &ctx,
        &pki,
        "resets",
        tcp(faulty_backend(256 * 1024, true).await),
    );
    let healthy = forward_to(&ctx, &pki, "healthy", tcp(echo_backend().await));
    for _ in 0..5 {
        let mut client = connect(resetting, "fwd.test", pki.client(&[]))
            .await
            .unwrap();
        let (received, ended) = read_until_end(&mut client, Duration::from_secs(5)).await;
        assert!(ended, "the client's connection ended after the reset");
        assert!(received <= 256 * 1024, "no more than the backend sent");
        // The other server, on the same context, is untouched.
        let data = Arc::new(payload(100_000, 3));
        let other = connect(healthy, "fwd.test", pki.client(&[])).await.unwrap();
        assert_eq!(round_trip(other, data.clone()).await, *data);
    }
}

#[tokio::test]
async fn a_backend_stalled_mid_stream_is_cut_by_the_idle_timeout() {
    let pki = TestPki::new();
    let ctx = Context::builder().build();
    let mut options = tcp(faulty_backend(10_000, false).await);
    options.idle_timeout = Some(Duration::from_millis(300));
    let addr = forward_to(&ctx, &pki, "stalls", options);
    let mut client = connect(addr, "fwd.test", pki.client(&[])).await.unwrap();
    let started = Instant::now();
    let (received, ended) = read_until_end(&mut client, Duration::from_secs(5)).await;
    assert_eq!(
        received, 10_000,
        "what the backend sent before stalling arrives"
    );
    assert!(ended, "then the idle timeout closes the connection");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        connect(addr, "fwd.test", pki.client(&[])).await.is_ok(),
        "still serving"
    );
}
