//! Running servers until a signal: shared by `tlsplex run` and `tlsplex demo`.

use std::process::ExitCode;

use tlsplex::config::GlobalSettings;
use tlsplex::control::{ControlError, ReloadCause};
use tlsplex::daemon::{Daemon, DaemonPlan};
use tlsplex::Supervisor;

use crate::signals::{Request, Signals};

/// Binds everything `plan` names (all or none: servers, the admin endpoint, the plain-HTTP
/// listener) through the library's [`Daemon`], calls `announce` (with a one-time dashboard login
/// link when there is an admin endpoint), serves until SIGTERM or SIGINT (reloading on SIGHUP),
/// then drains. A second SIGTERM/SIGINT exits at once with status 1.
pub fn serve(
    global: &GlobalSettings,
    mut plan: DaemonPlan,
    announce: impl FnOnce(&Supervisor, Option<String>),
) -> ExitCode {
    let ctx = match global.context() {
        Ok(ctx) => ctx,
        Err(error) => {
            eprintln!("tlsplex: {error}");
            return ExitCode::FAILURE;
        }
    };
    crate::limits::raise_open_files(ctx.max_connections());
    let runtime = match ctx.runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tlsplex: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let mut signals = match Signals::register() {
            Ok(signals) => signals,
            Err(error) => {
                eprintln!("tlsplex: cannot listen for signals: {error}");
                return ExitCode::FAILURE;
            }
        };
        plan.listeners = crate::systemd::activated_listeners();
        // Everything binds before anything serves (and before the privileges go: port 80).
        let daemon = match Daemon::start(&ctx, plan).await {
            Ok(daemon) => daemon,
            Err(error) => {
                eprintln!("tlsplex: {error}");
                return ExitCode::FAILURE;
            }
        };
        let controller = daemon.controller().clone();
        controller
            .inspect(|supervisor| {
                // One at a time from the running servers: 10,000 of them are not copied first.
                for server in supervisor.servers() {
                    let certificates = server.certificates();
                    let Some(cert) = certificates.first() else {
                        continue;
                    };
                    tracing::info!(
                        server = %server.name(),
                        addr = %server.local_addr(),
                        cert.subject = %cert.summary.subject,
                        cert.names = %cert.summary.names().join(","),
                        cert.days_left = cert.days_left,
                        "server started"
                    );
                }
            })
            .await;
        let login_link = daemon.login_link().map(str::to_owned);
        if let Some(user) = &global.user {
            if let Err(error) = crate::privileges::drop_to(user, global.group.as_deref()) {
                eprintln!("tlsplex: {error}; refusing to serve as root");
                daemon.shutdown().await;
                return ExitCode::FAILURE;
            }
        }
        controller
            .inspect(|supervisor| announce(supervisor, login_link))
            .await;
        crate::systemd::notify("READY=1\nSTATUS=serving");

        let mut poll = global.reload_check_interval.map(tokio::time::interval);
        let first = loop {
            let request = tokio::select! {
                request = signals.recv() => request,
                () = tick(&mut poll) => {
                    // The controller logs what it did or refused.
                    let _ = controller.reload_if_changed().await;
                    continue;
                }
            };
            match request {
                Request::Shutdown(name) => break name,
                Request::Reload => {
                    crate::systemd::reloading();
                    if let Err(ControlError::NoConfigFile) =
                        controller.reload(ReloadCause::Signal).await
                    {
                        tracing::info!("SIGHUP: no config file to reload; the ticket key file was read again");
                    }
                    crate::systemd::notify("READY=1\nSTATUS=serving");
                }
            }
        };
        daemon.stop_side_tasks();
        crate::systemd::notify("STOPPING=1");
        tracing::info!(
            signal = first,
            grace_ms = ctx.shutdown_grace().as_millis() as u64,
            "shutting down: no new connections; in-flight ones may finish (signal again to exit now)"
        );
        tokio::select! {
            () = daemon.shutdown() => {
                tracing::info!("all servers stopped");
                ExitCode::SUCCESS
            }
            second = signals.shutdown() => {
                tracing::warn!(signal = second, "second signal: exiting now");
                ExitCode::FAILURE
            }
        }
    })
}

/// The next poll tick, or never when polling is off.
async fn tick(poll: &mut Option<tokio::time::Interval>) {
    match poll {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}
