//! The seed's program in Rust: initialise the TLS context once, start two HTTPS servers on ports
//! 1440 and 1441, handle each connection in its own task, stop on Ctrl-C.
//!
//! `cargo run -p tlsplex --example two_servers [BASE_PORT]`, then `curl -k https://localhost:1440/`.

use std::error::Error;
use std::sync::Arc;

use tlsplex::{CertStore, Context, Identity, ServerOptions, Supervisor};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // 1. SSL_init(): the global context, once, before any server. Every server needs it.
    let ctx = Context::builder().build();

    // The certificate store each server hands to SSL_acceptConnection: here one self-signed one.
    let cert = rcgen::generate_simple_self_signed(["localhost".to_owned()])?;
    let identity = Identity::from_pem(
        cert.cert.pem().as_bytes(),
        cert.signing_key.serialize_pem().as_bytes(),
    )?;
    let certs = Arc::new(CertStore::single(identity));

    // 2. One server per port (the seed's RTOS_createThread per server). Each accepts on its own
    //    socket (3) and runs every connection's handshake and HTTPS in its own task (4, 5).
    let base: u16 = std::env::args().nth(1).map_or(Ok(1440), |p| p.parse())?;
    let servers = (0..2).map(|i| {
        let port = base + i;
        ServerOptions::new(
            format!("server-{port}"),
            ([127, 0, 0, 1], port).into(),
            certs.clone(),
        )
    });
    let supervisor = Supervisor::start(&ctx, servers)?;
    for server in supervisor.servers() {
        println!(
            "{} listening on https://{}/",
            server.name(),
            server.local_addr()
        );
    }

    // needToDie: Ctrl-C stops both; in-flight connections finish first.
    tokio::signal::ctrl_c().await?;
    supervisor.shutdown().await;
    Ok(())
}
