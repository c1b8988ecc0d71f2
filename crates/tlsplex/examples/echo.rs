//! A custom line protocol over TLS on two ports: each line a client sends comes back prefixed
//! with the server's name. Shows the `Handler` trait: an embedder's own protocol after the
//! handshake, as the seed's `startHttpsThread` is the C program's own.
//!
//! `cargo run -p tlsplex --example echo -- [PORT_A PORT_B]` (default 1450 and 1451; 0 picks a free
//! port), then `openssl s_client -connect 127.0.0.1:1450 -quiet` and type lines.
//! Set `TLSPLEX_CERT` and `TLSPLEX_KEY` to PEM files to use your own certificate.

use std::error::Error;
use std::sync::Arc;

use tlsplex::{
    CertStore, Context, Handler, HandlerError, Identity, ServerOptions, Supervisor, TlsConn,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Echoes lines until the client closes or the server stops.
struct Echo;

impl Handler for Echo {
    async fn serve(&self, conn: TlsConn) -> Result<(), HandlerError> {
        let name = conn.info.server.clone();
        let mut stream = BufReader::new(conn.stream);
        let mut line = String::new();
        loop {
            line.clear();
            tokio::select! {
                read = stream.read_line(&mut line) => if read? == 0 { break },
                () = conn.shutdown.cancelled() => break,
            }
            stream
                .write_all(format!("{name}: {line}").as_bytes())
                .await?;
        }
        stream.shutdown().await?; // close_notify
        Ok(())
    }
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
    let certs = Arc::new(CertStore::single(identity()?));
    let args: Vec<u16> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let ports = if args.is_empty() {
        vec![1450, 1451]
    } else {
        args
    };
    let servers = ports.iter().enumerate().map(|(i, port)| {
        ServerOptions::new(
            format!("echo-{i}"),
            ([127, 0, 0, 1], *port).into(),
            certs.clone(),
        )
        .alpn(Vec::<String>::new())
        .handler(Echo)
    });
    let supervisor = Supervisor::start(&ctx, servers)?;
    for server in supervisor.servers() {
        println!("{} listening on {}", server.name(), server.local_addr());
    }
    tokio::signal::ctrl_c().await?;
    supervisor.shutdown().await;
    Ok(())
}
