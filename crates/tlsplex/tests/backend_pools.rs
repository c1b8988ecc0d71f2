//! Backend pools (balance, passive and active health checks), TLS to the backend, and
//! client-certificate allow-lists.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tlsplex::handler::{Backend, BackendHealth, BackendTls, Balance, ForwardOptions, HealthCheck};
use tlsplex::tls::{AllowList, ClientAuth, ClientAuthMode};
use tlsplex::{Context, ServerOptions, Supervisor, TlsPolicy};
use tlsplex_testkit::{any_port, connect, eventually, free_port, get, start, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A backend that counts its connections and answers each with `NAME\n`.
async fn counting_backend(listener: TcpListener, name: &'static str) -> Arc<AtomicUsize> {
    stoppable_backend(listener, name).0
}

/// [`counting_backend`], and the task whose abort closes its port.
fn stoppable_backend(
    listener: TcpListener,
    name: &'static str,
) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _ = stream.write_all(format!("{name}\n").as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (count, task)
}

async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn pool(addrs: &[SocketAddr], balance: Balance) -> ForwardOptions {
    let mut options =
        ForwardOptions::pool(addrs.iter().map(|a| Backend::Tcp(a.to_string())).collect());
    options.balance = balance;
    options
}

async fn read_all(addr: SocketAddr, client: Arc<rustls::ClientConfig>) -> String {
    let mut stream = connect(addr, "pool.test", client).await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_three_with_one_dead_serves_300_connections_on_the_live_two() {
    let pki = TestPki::new();
    let (one, one_addr) = listen().await;
    let (two, two_addr) = listen().await;
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (one, two) = (
        counting_backend(one, "one").await,
        counting_backend(two, "two").await,
    );
    let ctx = Context::builder().build();
    let cert = pki.issue("pool", &["pool.test"]);
    let options = ServerOptions::new("pool", any_port(), cert.store())
        .forward(pool(&[one_addr, dead, two_addr], Balance::RoundRobin));
    let supervisor = Supervisor::start(&ctx, [options]).unwrap();
    let handle = supervisor.server("pool").unwrap().clone();
    let addr = handle.local_addr();
    let client = pki.client(&["http/1.1"]);
    for _ in 0..300 {
        let reply = read_all(addr, client.clone()).await;
        assert!(reply == "one\n" || reply == "two\n", "{reply:?}");
    }
    let (one, two) = (one.load(Ordering::Relaxed), two.load(Ordering::Relaxed));
    assert_eq!(one + two, 300);
    // Round robin over the two in service: the dead one, once suspect, takes no turn.
    assert!(one.abs_diff(two) <= 4, "one {one}, two {two}");
    let stats = handle.stats();
    let dead_stats = stats
        .backends
        .iter()
        .find(|b| b.address == dead.to_string())
        .unwrap();
    assert_eq!(dead_stats.health, BackendHealth::Suspect);
    assert!(dead_stats.failures >= 1);
    assert_eq!(dead_stats.connections_total, 0);
    let metrics = ctx.metrics().encode();
    let up = format!("tlsplex_backend_up{{server=\"pool\",pool=\"pool\",backend=\"{dead}\"}} 0");
    assert!(metrics.contains(&up), "{up} in\n{metrics}");
    supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_fails_over_in_order_and_a_pool_with_none_alive_closes_cleanly() {
    let pki = TestPki::new();
    let (second, second_addr) = listen().await;
    let second = counting_backend(second, "second").await;
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let ctx = Context::builder().build();
    let cert = pki.issue("pool", &["pool.test"]);
    let failover = start(
        &ctx,
        ServerOptions::new("failover", any_port(), cert.store())
            .forward(pool(&[dead, second_addr], Balance::First)),
    );
    let client = pki.client(&["http/1.1"]);
    for _ in 0..5 {
        assert_eq!(read_all(failover, client.clone()).await, "second\n");
    }
    assert_eq!(second.load(Ordering::Relaxed), 5);

    let other_dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let none = start(
        &ctx,
        ServerOptions::new("none", any_port(), cert.store())
            .forward(pool(&[dead, other_dead], Balance::RoundRobin)),
    );
    let started = std::time::Instant::now();
    // close_notify, then EOF: read_to_string succeeds with nothing.
    assert_eq!(read_all(none, client).await, "");
    assert!(started.elapsed() < Duration::from_secs(2), "never a hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_check_takes_a_backend_out_within_two_intervals_and_puts_it_back() {
    let pki = TestPki::new();
    let (listener, backend) = listen().await;
    let (kept, kept_addr) = listen().await;
    let _kept = counting_backend(kept, "kept").await;
    let (_, first) = stoppable_backend(listener, "flaky");
    let ctx = Context::builder().build();
    let cert = pki.issue("pool", &["pool.test"]);
    let interval = Duration::from_millis(500);
    let mut options = pool(&[backend, kept_addr], Balance::RoundRobin);
    options.health_check = Some(HealthCheck::new(interval, Duration::from_millis(300)));
    let supervisor = Supervisor::start(
        &ctx,
        [ServerOptions::new("checked", any_port(), cert.store()).forward(options)],
    )
    .unwrap();
    let handle = supervisor.server("checked").unwrap().clone();
    let health = |handle: &tlsplex::ServerHandle| {
        handle
            .stats()
            .backends
            .iter()
            .find(|b| b.address == backend.to_string())
            .map(|b| b.health)
    };
    assert!(eventually(interval, || health(&handle) == Some(BackendHealth::Up)).await);

    // The backend goes away: its port refuses connects.
    first.abort();
    let _ = first.await;
    let out = eventually(interval * 2 + Duration::from_millis(200), || {
        health(&handle) == Some(BackendHealth::Down)
    })
    .await;
    assert!(
        out,
        "taken out within two intervals: {:?}",
        handle.stats().backends
    );
    // While it is down, clients all go to the other one.
    let client = pki.client(&["http/1.1"]);
    for _ in 0..6 {
        assert_eq!(
            read_all(handle.local_addr(), client.clone()).await,
            "kept\n"
        );
    }

    // It comes back on the same port.
    let listener = TcpListener::bind(backend).await.unwrap();
    let flaky = counting_backend(listener, "flaky").await;
    let back = eventually(interval * 2 + Duration::from_millis(200), || {
        health(&handle) == Some(BackendHealth::Up)
    })
    .await;
    assert!(
        back,
        "put back within two intervals: {:?}",
        handle.stats().backends
    );
    for _ in 0..4 {
        read_all(handle.local_addr(), client.clone()).await;
    }
    assert!(flaky.load(Ordering::Relaxed) >= 1, "it serves again");
    supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_verifies_the_backend_against_its_ca() {
    let front_pki = TestPki::new();
    let inner_pki = TestPki::new();
    let stranger_pki = TestPki::new();
    let ctx = Context::builder().build();
    let inner_cert = inner_pki.issue("inner", &["inner.test"]);
    let inner = start(
        &ctx,
        ServerOptions::new("inner", any_port(), inner_cert.store()).alpn(["http/1.1"]),
    );
    let front_cert = front_pki.issue("front", &["front.test"]);
    let tls_to = |ca: &std::path::Path| {
        let mut options = ForwardOptions::new(Backend::Tcp(inner.to_string()));
        options.backend_tls = Some(BackendTls::from_files(ca, "inner.test", None).unwrap());
        options
    };
    let right = start(
        &ctx,
        ServerOptions::new("right", any_port(), front_cert.store())
            .forward(tls_to(&inner_pki.ca_file())),
    );
    let wrong = start(
        &ctx,
        ServerOptions::new("wrong", any_port(), front_cert.store())
            .forward(tls_to(&stranger_pki.ca_file())),
    );
    let client = front_pki.client(&["http/1.1"]);
    let (page, presented) = get(right, "front.test", "/?format=json", client.clone())
        .await
        .unwrap();
    assert_eq!(presented, front_cert.cert_der, "the client sees the front");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.json()["server"],
        "inner",
        "re-encrypted to the backend"
    );

    let refused = get(wrong, "front.test", "/", client).await;
    assert!(
        refused.is_err(),
        "a backend the CA does not vouch for gets no request"
    );
    let metrics = ctx.metrics().encode();
    let failures = format!(
        "tlsplex_backend_failures_total{{server=\"wrong\",pool=\"wrong\",backend=\"{inner}\"}} 1"
    );
    assert!(metrics.contains(&failures), "{failures} in\n{metrics}");
    assert!(metrics.contains("tlsplex_forward_backend_errors_total{server=\"wrong\"} 1"));
}

fn allow_server(ctx: &Context, pki: &TestPki, clients: &TestPki, allow: AllowList) -> SocketAddr {
    let auth = ClientAuth::from_files(&clients.ca_file(), &[], ClientAuthMode::Required)
        .unwrap()
        .with_allow_list(allow);
    let mut policy = TlsPolicy::default();
    policy.client_auth = Some(auth);
    let cert = pki.issue("mtls", &["mtls.test"]);
    start(
        ctx,
        ServerOptions::new("mtls", any_port(), cert.store()).tls(policy),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_list_serves_the_names_it_lists_and_refuses_others_with_access_denied() {
    let pki = TestPki::new();
    let clients = TestPki::new();
    let ctx = Context::builder().build();
    let allow = AllowList {
        cn: vec!["billing".into()],
        dns: vec!["*.web.test".into()],
        ..AllowList::default()
    };
    let addr = allow_server(&ctx, &pki, &clients, allow);
    let as_client = |cert: &tlsplex_testkit::TestCert| {
        Arc::new(pki.client_builder(rustls::DEFAULT_VERSIONS, &["http/1.1"], Some(cert)))
    };
    for name in ["billing", "api.web.test"] {
        let cert = clients.issue_client(name, name, 1);
        let (page, _) = get(addr, "mtls.test", "/", as_client(&cert)).await.unwrap();
        assert_eq!(page.status, 200, "{name} is listed");
    }
    let outsider = clients.issue_client("outsider", "reports", 2);
    let error = match get(addr, "mtls.test", "/", as_client(&outsider)).await {
        Ok((page, _)) => panic!("served {}", page.status),
        Err(error) => format!("{error:?}"),
    };
    assert!(error.contains("AccessDenied"), "{error}");
    // Counted once the server has sent the alert the client just read.
    let counted = eventually(Duration::from_secs(2), || {
        ctx.metrics().encode().contains(
            "tlsplex_handshake_failures_total{server=\"mtls\",reason=\"client_not_allowed\"} 1",
        )
    })
    .await;
    assert!(counted, "{}", ctx.metrics().encode());
}
