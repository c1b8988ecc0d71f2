//! An existing axum application served by tlsplex: the `Router` becomes a server's handler with
//! `HttpHandler::new`, over HTTP/1.1 or HTTP/2 by ALPN, and its handlers can read the TLS facts
//! of their connection from the request's `Arc<ConnInfo>` extension.
//!
//! `cargo run -p tlsplex --example axum_app -- [PORT]` (default 1460), then
//! `curl -k https://localhost:1460/hello` or `curl -k --http2 https://localhost:1460/tls`.
//! Set `TLSPLEX_CERT` and `TLSPLEX_KEY` to PEM files to use your own certificate.

use std::error::Error;
use std::sync::Arc;

use axum::extract::Extension;
use axum::routing::get;
use axum::{Json, Router};
use tlsplex::handler::HttpHandler;
use tlsplex::{CertStore, ConnInfo, Context, Identity, ServerOptions, Supervisor};

fn app() -> Router {
    Router::new()
        .route(
            "/hello",
            get(|| async { "hello from axum, through tlsplex\n" }),
        )
        .route(
            "/tls",
            get(|Extension(info): Extension<Arc<ConnInfo>>| async move { Json(info) }),
        )
}

fn identity() -> Result<Identity, Box<dyn Error>> {
    match (
        std::env::var_os("TLSPLEX_CERT"),
        std::env::var_os("TLSPLEX_KEY"),
    ) {
        (Some(cert), Some(key)) => Ok(Identity::from_pem_files(cert.as_ref(), key.as_ref())?),
        _ => {
            let cert = rcgen::generate_simple_self_signed(["localhost".to_owned()])?;
            let key = cert.signing_key.serialize_pem();
            Ok(Identity::from_pem(
                cert.cert.pem().as_bytes(),
                key.as_bytes(),
            )?)
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let ctx = Context::builder().build();
    let port: u16 = std::env::args().nth(1).map_or(Ok(1460), |p| p.parse())?;
    let certs = Arc::new(CertStore::single(identity()?));
    let options = ServerOptions::new("axum", ([127, 0, 0, 1], port).into(), certs)
        .handler(HttpHandler::new(app()));
    let supervisor = Supervisor::start(&ctx, [options])?;
    for server in supervisor.servers() {
        println!("{} listening on {}", server.name(), server.local_addr());
    }
    tokio::signal::ctrl_c().await?;
    supervisor.shutdown().await;
    Ok(())
}
