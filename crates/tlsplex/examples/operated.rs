//! An operated daemon in a screenful: servers from a config file, the admin API, reload on
//! SIGHUP and when a file the config names changes, all through the library's `Daemon` (what
//! `tlsplex run` runs) and its `Controller`.
//!
//! ```text
//! cargo run --example operated -- tlsplex.toml     # the file needs an [admin] table
//! ```

use std::error::Error;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tlsplex::config::Config;
use tlsplex::control::ReloadCause;
use tlsplex::daemon::{Daemon, DaemonPlan};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args().nth(1).ok_or("usage: operated CONFIG")?;
    let stop = CancellationToken::new();
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_ctrl_c.cancel();
    });
    operate(Path::new(&path), stop, |admin| {
        println!("admin API on http://{admin}/")
    })
    .await
}

/// Serves until `stop` is cancelled; `ready` gets the admin address once everything listens.
pub async fn operate(
    path: &Path,
    stop: CancellationToken,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), Box<dyn Error>> {
    let config = Config::load(path)?;
    if config.admin.is_none() {
        return Err("the config needs an [admin] table".into());
    }
    let ctx = config.global.context()?;
    // Servers, admin endpoint, plain-HTTP listener and ACME, as `tlsplex run` has them.
    let daemon = Daemon::start(&ctx, DaemonPlan::from_config(path, config)).await?;
    ready(
        daemon
            .admin_addr()
            .ok_or("the admin endpoint has no address")?,
    );
    let controller = daemon.controller().clone();

    let mut hangup = signal(SignalKind::hangup())?;
    let mut poll = tokio::time::interval(Duration::from_secs(2));
    loop {
        // The controller logs each reload's report, or why it refused the file.
        tokio::select! {
            () = stop.cancelled() => break,
            _ = hangup.recv() => drop(controller.reload(ReloadCause::Signal).await),
            _ = poll.tick() => drop(controller.reload_if_changed().await),
        }
    }
    daemon.shutdown().await;
    Ok(())
}
