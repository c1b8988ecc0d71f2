//! Running servers until a signal: shared by `tlsplex run` and `tlsplex demo`.

use std::process::ExitCode;
use std::time::SystemTime;

use tlsplex::{GlobalSettings, ServerOptions, Supervisor};

use crate::signals::ShutdownSignals;

/// Binds every server (all or none), calls `announce` with their handles, serves until SIGTERM
/// or SIGINT, then drains. A second signal exits at once with status 1.
pub fn serve(
    global: &GlobalSettings,
    servers: Vec<ServerOptions>,
    announce: impl FnOnce(&Supervisor),
) -> ExitCode {
    let ctx = global.context();
    let runtime = match ctx.runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tlsplex: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let mut signals = match ShutdownSignals::register() {
            Ok(signals) => signals,
            Err(error) => {
                eprintln!("tlsplex: cannot listen for signals: {error}");
                return ExitCode::FAILURE;
            }
        };
        let identities: Vec<_> = servers
            .iter()
            .map(|s| (s.name().to_owned(), s.certs().default_identity().summary().clone()))
            .collect();
        let supervisor = match Supervisor::start(&ctx, servers) {
            Ok(supervisor) => supervisor,
            Err(error) => {
                eprintln!("tlsplex: {error}");
                return ExitCode::FAILURE;
            }
        };
        for (name, cert) in identities {
            let addr = supervisor.server(&name).map(|s| s.local_addr().to_string());
            tracing::info!(
                server = %name,
                addr = addr.as_deref().unwrap_or(""),
                cert.subject = %cert.subject,
                cert.names = %cert.names().join(","),
                cert.days_left = cert.days_until_expiry(SystemTime::now()),
                "server started"
            );
        }
        announce(&supervisor);
        let first = signals.recv().await;
        tracing::info!(
            signal = first,
            grace_ms = ctx.shutdown_grace().as_millis() as u64,
            "shutting down: no new connections; in-flight ones may finish (signal again to exit now)"
        );
        let drained = supervisor.shutdown();
        tokio::select! {
            () = drained => {
                tracing::info!("all servers stopped");
                ExitCode::SUCCESS
            }
            second = signals.recv() => {
                tracing::warn!(signal = second, "second signal: exiting now");
                ExitCode::FAILURE
            }
        }
    })
}
