//! Many names on one port: routes by SNI (exact, wildcard, unknown, strict), passthrough to a
//! TLS backend, and a reload that changes routes under open connections.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tlsplex::handler::{Backend, ForwardOptions};
use tlsplex::route::Route;
use tlsplex::{CertStore, Context, ServerOptions, Supervisor, TlsPolicy};
use tlsplex_testkit::{any_port, connect, echo_backend, get, start, TestPki};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A backend that answers each connection's first line with `NAME got LINE` and records it.
async fn named_backend(name: &'static str) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let seen = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                if stream.read_line(&mut line).await.is_ok() {
                    let line = line.trim_end().to_owned();
                    let reply = format!("{name} got {line}\n");
                    seen.lock().unwrap().push(line);
                    let _ = stream.get_mut().write_all(reply.as_bytes()).await;
                    let _ = stream.get_mut().shutdown().await;
                }
            });
        }
    });
    (addr, received)
}

fn to(addr: SocketAddr) -> ForwardOptions {
    ForwardOptions::new(Backend::Tcp(addr.to_string()))
}

/// Sends `line` through `addr` with SNI `sni`; the reply line.
async fn say(
    addr: SocketAddr,
    sni: &str,
    line: &str,
    client: Arc<rustls::ClientConfig>,
) -> std::io::Result<String> {
    let mut stream = connect(addr, sni, client).await?;
    stream.write_all(format!("{line}\n").as_bytes()).await?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    Ok(reply.trim_end().to_owned())
}

fn store(pki: &TestPki, names: &[&str]) -> Arc<CertStore> {
    pki.issue("front", names).store()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_port_three_names_each_reach_their_own_backend_and_others_get_the_server_handler() {
    let pki = TestPki::new();
    let (a, got_a) = named_backend("A").await;
    let (b, got_b) = named_backend("B").await;
    let (c, got_c) = named_backend("C").await;
    let ctx = Context::builder().build();
    let names = ["a.test", "b.test", "*.apps.test", "other.test", "page.test"];
    let options = ServerOptions::new("front", any_port(), store(&pki, &names))
        .route(Route::new("page", ["page.test"]))
        .route(Route::new("a", ["a.test"]).forward(to(a)))
        .route(Route::new("b", ["B.test"]).forward(to(b)))
        .route(Route::new("apps", ["*.apps.test"]).forward(to(c)));
    let addr = start(&ctx, options);
    let client = pki.client(&["http/1.1"]);

    assert_eq!(
        say(addr, "a.test", "one", client.clone()).await.unwrap(),
        "A got one"
    );
    assert_eq!(
        say(addr, "b.test", "two", client.clone()).await.unwrap(),
        "B got two"
    );
    let wild = say(addr, "web.apps.test", "three", client.clone())
        .await
        .unwrap();
    assert_eq!(wild, "C got three", "a wildcard route");
    assert_eq!(*got_a.lock().unwrap(), ["one"]);
    assert_eq!(*got_b.lock().unwrap(), ["two"]);
    assert_eq!(*got_c.lock().unwrap(), ["three"]);

    // A name no route has: the server's own handler (the status page), which shows no route.
    let (page, _) = get(addr, "other.test", "/?format=json", client)
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(page.json()["server"], "front");
    assert!(page.json()["route"].is_null(), "{}", page.body);
    let metrics = ctx.metrics().encode();
    for route in ["a", "b", "apps"] {
        let line =
            format!("tlsplex_route_connections_total{{server=\"front\",route=\"{route}\"}} 1");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_strict_sni_a_name_no_route_has_gets_unrecognized_name() {
    let pki = TestPki::new();
    let (a, _) = named_backend("A").await;
    let ctx = Context::builder().build();
    let mut policy = TlsPolicy::default();
    policy.strict_sni = true;
    // The certificate covers both names: the route table alone refuses the second.
    let options = ServerOptions::new("strict", any_port(), store(&pki, &["a.test", "b.test"]))
        .tls(policy)
        .route(Route::new("a", ["a.test"]).forward(to(a)));
    let addr = start(&ctx, options);
    let client = pki.client(&["http/1.1"]);
    assert_eq!(
        say(addr, "a.test", "hi", client.clone()).await.unwrap(),
        "A got hi"
    );
    let refused = connect(addr, "b.test", client).await.unwrap_err();
    assert!(
        refused.to_string().contains("UnrecognisedName")
            || format!("{refused:?}").contains("UnrecognisedName"),
        "{refused:?}"
    );
    // The server counts the refusal once it has written the alert the client just read.
    let counted = tlsplex_testkit::eventually(std::time::Duration::from_secs(2), || {
        ctx.metrics()
            .encode()
            .contains("tlsplex_handshake_failures_total{server=\"strict\",reason=\"sni\"} 1")
    })
    .await;
    assert!(counted, "{}", ctx.metrics().encode());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passthrough_route_hands_the_client_to_the_backends_own_tls() {
    let front_pki = TestPki::new();
    let inner_pki = TestPki::new();
    let ctx = Context::builder().build();
    // The backend is a TLS server of its own, with a certificate the front has never seen.
    let inner_cert = inner_pki.issue("inner", &["inner.test"]);
    let inner = start(
        &ctx,
        ServerOptions::new("inner", any_port(), inner_cert.store()),
    );
    let front = ServerOptions::new("front", any_port(), store(&front_pki, &["front.test"]))
        .access_log(true)
        .route(Route::new("inner", ["inner.test"]).passthrough(to(inner)));
    let addr = start(&ctx, front);

    let (page, presented) = get(
        addr,
        "inner.test",
        "/?format=json",
        inner_pki.client(&["http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(
        presented, inner_cert.cert_der,
        "the backend's own certificate"
    );
    assert_eq!(page.status, 200);
    assert_eq!(page.json()["server"], "inner", "served by the backend");
    // The front terminates nothing for that name: its handshake counter stays at zero.
    let metrics = ctx.metrics().encode();
    assert!(
        metrics.contains("tlsplex_handshakes_total{server=\"front\"} 0")
            || !metrics.contains("tlsplex_handshakes_total{server=\"front\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("tlsplex_route_connections_total{server=\"front\",route=\"inner\"} 1"));
    // Other names are still terminated by the front.
    let (_, own) = get(addr, "front.test", "/", front_pki.client(&["http/1.1"]))
        .await
        .unwrap();
    assert_ne!(own, inner_cert.cert_der);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_a_route_and_drops_a_backend_without_dropping_open_connections() {
    let pki = TestPki::new();
    let echo = echo_backend().await;
    let (spare, got_spare) = named_backend("spare").await;
    let (b, _) = named_backend("B").await;
    let ctx = Context::builder().build();
    let certs = store(&pki, &["a.test", "b.test"]);
    let pool = |backends: Vec<SocketAddr>| {
        let list = backends
            .iter()
            .map(|a| Backend::Tcp(a.to_string()))
            .collect();
        let mut options = ForwardOptions::pool(list);
        options.balance = tlsplex::handler::Balance::First;
        options
    };
    let before = ServerOptions::new("web", any_port(), certs.clone())
        .route(Route::new("a", ["a.test"]).forward(pool(vec![echo, spare])));
    let supervisor = Supervisor::start(&ctx, [before]).unwrap();
    let handle = supervisor.server("web").unwrap().clone();
    let addr = handle.local_addr();
    let client = pki.client(&["http/1.1"]);

    let mut open = connect(addr, "a.test", client.clone()).await.unwrap();
    open.write_all(b"before\n").await.unwrap();
    let mut back = [0u8; 7];
    open.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"before\n");

    let after = ServerOptions::new("web", addr, certs)
        .route(Route::new("a", ["a.test"]).forward(pool(vec![echo])))
        .route(Route::new("b", ["b.test"]).forward(to(b)));
    handle.update(&after).unwrap();

    open.write_all(b"after!\n").await.unwrap();
    open.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"after!\n", "the open connection goes on");
    assert_eq!(
        say(addr, "b.test", "new", client.clone()).await.unwrap(),
        "B got new"
    );
    let stats = handle.stats();
    assert_eq!(stats.routes, ["a", "b"]);
    let a_backends: Vec<_> = stats.backends.iter().filter(|b| b.pool == "a").collect();
    assert_eq!(a_backends.len(), 1, "{:?}", stats.backends);
    assert_eq!(a_backends[0].address, echo.to_string());
    assert_eq!(
        a_backends[0].connections_total, 1,
        "the kept backend's figures carry over the reload"
    );
    assert!(got_spare.lock().unwrap().is_empty());
    drop(open);
    supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_may_differ_from_its_server_in_alpn_and_client_auth() {
    let pki = TestPki::new();
    let clients = TestPki::new();
    let ctx = Context::builder().build();
    let auth = tlsplex::tls::ClientAuth::from_files(
        &clients.ca_file(),
        &[],
        tlsplex::tls::ClientAuthMode::Required,
    )
    .unwrap();
    let names = ["open.test", "old.test", "staff.test"];
    let options = ServerOptions::new("mixed", any_port(), store(&pki, &names))
        .route(Route::new("old", ["old.test"]).alpn(["http/1.1"]))
        .route(Route::new("staff", ["staff.test"]).client_auth(auth));
    let addr = start(&ctx, options);
    let both = pki.client(&["h2", "http/1.1"]);
    let alpn = |stream: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
    };
    let open = connect(addr, "open.test", both.clone()).await.unwrap();
    assert_eq!(alpn(&open), Some(b"h2".to_vec()), "the server's ALPN");
    let old = connect(addr, "old.test", both.clone()).await.unwrap();
    assert_eq!(alpn(&old), Some(b"http/1.1".to_vec()), "the route's ALPN");

    // The staff route wants a client certificate; the rest of the server does not.
    let anonymous = pki.client(&["http/1.1"]);
    assert!(get(addr, "staff.test", "/", anonymous.clone())
        .await
        .is_err());
    let (page, _) = get(addr, "open.test", "/", anonymous).await.unwrap();
    assert_eq!(page.status, 200);
    let member = clients.issue_client("member", "member", 7);
    let with_cert =
        Arc::new(pki.client_builder(rustls::DEFAULT_VERSIONS, &["http/1.1"], Some(&member)));
    let (page, _) = get(addr, "staff.test", "/?format=json", with_cert)
        .await
        .unwrap();
    assert_eq!(
        page.json()["client_cert"]["common_name"],
        "member",
        "{}",
        page.body
    );
}
