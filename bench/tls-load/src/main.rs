//! A TLS load client on rustls, for what OpenSSL 3.0's `h2load` and `wrk` cannot do: full or
//! resumed TLS 1.3 handshakes with a chosen key exchange (X25519MLKEM768, as browsers send), at
//! a fixed concurrency. `bench/run.sh` runs it against tlsplex.
//!
//! ```text
//! tls-load ADDR SNI CA_PEM [--seconds S] [--concurrency C] [--groups A,B] [--resume]
//! ```
//!
//! Each of C tasks opens a connection, completes the handshake, sends one HTTP/1.1 request with
//! `Connection: close`, reads the response to its end, and starts again, until S seconds have
//! passed. With `--resume` the tasks share one session cache, so every connection after the
//! first resumes (TLS 1.3 PSK with a fresh key exchange in the chosen group). Prints one line:
//! connections, the rate, how many resumed, the groups negotiated and this client's CPU per
//! connection (from /proc/self/stat); any failed connection is an error (exit 1).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a measuring tool: stop on a bad argument

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

struct Options {
    addr: String,
    sni: String,
    ca: String,
    seconds: f64,
    concurrency: usize,
    groups: Option<Vec<String>>,
    resume: bool,
}

fn options() -> Options {
    let usage =
        "usage: tls-load ADDR SNI CA_PEM [--seconds S] [--concurrency C] [--groups A,B] [--resume]";
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(sni), Some(ca)) = (args.next(), args.next(), args.next()) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let mut options = Options {
        addr,
        sni,
        ca,
        seconds: 5.0,
        concurrency: 16,
        groups: None,
        resume: false,
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next().unwrap_or_else(|| {
                eprintln!("{arg} needs a value\n{usage}");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--seconds" => options.seconds = value().parse().expect("--seconds is a number"),
            "--concurrency" => {
                options.concurrency = value().parse().expect("--concurrency is a number")
            }
            "--groups" => options.groups = Some(value().split(',').map(str::to_owned).collect()),
            "--resume" => options.resume = true,
            other => {
                eprintln!("unknown option {other}\n{usage}");
                std::process::exit(2);
            }
        }
    }
    options
}

fn client_config(options: &Options) -> Arc<ClientConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if let Some(names) = &options.groups {
        provider.kx_groups = names
            .iter()
            .map(|name| {
                *rustls::crypto::aws_lc_rs::ALL_KX_GROUPS
                    .iter()
                    .find(|g| g.name().as_str() == Some(name.as_str()))
                    .unwrap_or_else(|| panic!("unknown group {name}"))
            })
            .collect();
    }
    let mut roots = RootCertStore::empty();
    let pem = std::fs::read(&options.ca).expect("the CA file");
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.expect("a PEM certificate")).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = if options.resume {
        // Room for every task's tickets; shared, as one browser's would be.
        Resumption::in_memory_sessions(options.concurrency * 4)
    } else {
        Resumption::disabled()
    };
    Arc::new(config)
}

#[derive(Default)]
struct Tally {
    connections: u64,
    resumed: u64,
    groups: BTreeMap<String, u64>,
}

async fn one_connection(
    connector: &TlsConnector,
    options: &Options,
    request: &[u8],
) -> Result<(bool, String), String> {
    let tcp = tokio::net::TcpStream::connect(&options.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(options.sni.clone()).map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (_, session) = tls.get_ref();
    let resumed = session.handshake_kind() == Some(HandshakeKind::Resumed);
    let group = session
        .negotiated_key_exchange_group()
        .and_then(|g| g.name().as_str())
        .unwrap_or("none")
        .to_owned();
    tls.write_all(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let mut response = Vec::new();
    // The server closes after the response; an unclean close still ends the read.
    let _ = tls.read_to_end(&mut response).await;
    if !response.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "not a 200 response: {:?}",
            String::from_utf8_lossy(&response[..response.len().min(120)])
        ));
    }
    Ok((resumed, group))
}

/// utime + stime of this process, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn main() {
    let options = Arc::new(options());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let connector = TlsConnector::from(client_config(&options));
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        options.sni
    );
    let tally = Arc::new(Mutex::new(Tally::default()));
    let failure: Arc<Mutex<Option<String>>> = Arc::default();
    let ticks_before = cpu_ticks();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(options.seconds);
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..options.concurrency {
            let (connector, options, request) =
                (connector.clone(), options.clone(), request.clone());
            let (tally, failure) = (tally.clone(), failure.clone());
            tasks.spawn(async move {
                while Instant::now() < deadline {
                    match one_connection(&connector, &options, request.as_bytes()).await {
                        Ok((resumed, group)) => {
                            let mut tally = tally.lock().unwrap();
                            tally.connections += 1;
                            tally.resumed += u64::from(resumed);
                            *tally.groups.entry(group).or_default() += 1;
                        }
                        Err(error) => {
                            *failure.lock().unwrap() = Some(error);
                            return;
                        }
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
    let elapsed = started.elapsed().as_secs_f64();
    let ticks = cpu_ticks() - ticks_before;
    if let Some(error) = failure.lock().unwrap().take() {
        eprintln!("tls-load: a connection failed: {error}");
        std::process::exit(1);
    }
    let tally = tally.lock().unwrap();
    let n = tally.connections.max(1);
    // Clock ticks are 10 ms on Linux (USER_HZ = 100).
    println!(
        "connections={} rate={:.1} resumed={} groups={:?} client_cpu_us={:.1}",
        tally.connections,
        tally.connections as f64 / elapsed,
        tally.resumed,
        tally.groups,
        ticks as f64 * 10_000.0 / n as f64
    );
}
