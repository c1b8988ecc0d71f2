//! An operated daemon in a screenful: servers from a config file, the admin API, reload on
//! SIGHUP and when a file the config names changes, all through one `Controller`.
//!
//! ```text
//! cargo run --example operated -- tlsplex.toml     # the file needs an [admin] table
//! ```

use std::error::Error;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tlsplex::admin::AdminServer;
use tlsplex::config::Config;
use tlsplex::control::{ConfigSource, Controller, ReloadCause};
use tlsplex::Supervisor;
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
    let ctx = config.global.context()?;
    let supervisor = Supervisor::start(&ctx, config.servers.iter().map(|s| s.options()))?;
    let controller = Controller::new(supervisor, Some(ConfigSource::new(path, &config)));

    let admin = config
        .admin
        .as_ref()
        .ok_or("the config needs an [admin] table")?;
    let admin = AdminServer::bind(admin).await?;
    ready(admin.local_addr()?);
    tokio::spawn(admin.run(controller.clone(), stop.clone()));

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
    controller.shutdown().await;
    Ok(())
}
