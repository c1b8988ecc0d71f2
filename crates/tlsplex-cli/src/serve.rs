//! Running servers until a signal: shared by `tlsplex run` and `tlsplex demo`.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use tlsplex::admin::{AdminOptions, AdminServer};
use tlsplex::config::{Config, GlobalSettings};
use tlsplex::control::{ConfigSource, ControlError, Controller, ReloadCause};
use tlsplex::{ServerOptions, Supervisor};

use crate::signals::{Request, Signals};

/// Where reloads come from: the config file `tlsplex run` was started with, if any.
pub struct ReloadSource<'a> {
    pub path: &'a Path,
    pub config: Config,
}

/// Binds every server (all or none) and the admin endpoint if asked for, calls `announce` (with
/// a one-time dashboard login link when there is an admin endpoint),
/// serves until SIGTERM or SIGINT (reloading on SIGHUP), then drains. A second SIGTERM/SIGINT
/// exits at once with status 1.
pub fn serve(
    global: &GlobalSettings,
    servers: Vec<ServerOptions>,
    admin: Option<&AdminOptions>,
    reload: Option<ReloadSource<'_>>,
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
        let identities: Vec<_> = servers
            .iter()
            .map(|s| (s.name().to_owned(), s.certs().default_identity().summary().clone()))
            .collect();
        // Everything binds before anything serves: an admin or HTTP-01 address that is taken
        // fails the start before a server has logged that it serves.
        let admin_server = match admin {
            Some(options) => match AdminServer::bind(options).await {
                Ok(server) => Some(server),
                Err(error) => {
                    eprintln!("tlsplex: admin endpoint on {}: {error}", options.listen);
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        // The plain-HTTP port ([http_redirect], or [acme] http01_listen alone; port 80) needs
        // binding before the privileges go; a reload does not move it.
        let config = reload.as_ref().map(|r| &r.config);
        let redirect = config.and_then(|c| c.http_redirect);
        let http01 = config
            .and_then(|c| c.acme.as_ref())
            .and_then(|acme| acme.http01_listen);
        let plain = redirect.map(|r| r.listen).or(http01);
        let https_port = redirect.and_then(|r| r.https_port);
        let http01_listener = match plain {
            Some(addr) => match tlsplex::acme::Http01Listener::bind(addr).await {
                Ok(listener) => Some(listener),
                Err(error) => {
                    eprintln!("tlsplex: plain-HTTP listener on {addr}: {error}");
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        let activated = crate::systemd::activated_listeners();
        let supervisor = match Supervisor::start_with_listeners(&ctx, servers, activated) {
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
        let source = reload.map(|r| ConfigSource::from_config(r.path, r.config));
        let controller = Controller::new(supervisor, source);
        let admin_stop = tokio_util::sync::CancellationToken::new();
        // Idle unless the config has an [acme] table (a reload may add one).
        tokio::spawn(tlsplex::acme::run(controller.clone(), admin_stop.clone()));
        let mut login_link = None;
        if let Some(server) = admin_server {
            let addr = server.local_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::info!(%addr, "admin endpoint listening");
            login_link = server.login_link().ok();
            tokio::spawn(server.run(controller.clone(), admin_stop.clone()));
        }
        if let Some(listener) = http01_listener {
            let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::info!(%addr, "plain-HTTP listener ready: requests are redirected to https, ACME HTTP-01 validations answered");
            let challenges = controller.context().acme_challenges().clone();
            tokio::spawn(listener.run(challenges, https_port, admin_stop.clone()));
        }
        if let Some(user) = &global.user {
            if let Err(error) = crate::privileges::drop_to(user, global.group.as_deref()) {
                eprintln!("tlsplex: {error}; refusing to serve as root");
                controller.shutdown().await;
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
        admin_stop.cancel();
        crate::systemd::notify("STOPPING=1");
        tracing::info!(
            signal = first,
            grace_ms = ctx.shutdown_grace().as_millis() as u64,
            "shutting down: no new connections; in-flight ones may finish (signal again to exit now)"
        );
        tokio::select! {
            () = controller.shutdown() => {
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
