//! Running servers until a signal: shared by `tlsplex run` and `tlsplex demo`.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use tlsplex::admin::{AdminOptions, AdminRequest, AdminServer};
use tlsplex::{Config, GlobalSettings, ServerOptions, Supervisor};

use crate::reload::Watched;
use crate::signals::{Request, Signals};

/// Where reloads come from: the config file `tlsplex run` was started with, if any.
pub struct ReloadSource<'a> {
    pub path: &'a Path,
    pub config: &'a Config,
}

/// Binds every server (all or none) and the admin endpoint if asked for, calls `announce`,
/// serves until SIGTERM or SIGINT (reloading on SIGHUP), then drains. A second SIGTERM/SIGINT
/// exits at once with status 1.
pub fn serve(
    global: &GlobalSettings,
    servers: Vec<ServerOptions>,
    admin: Option<&AdminOptions>,
    reload: Option<ReloadSource<'_>>,
    announce: impl FnOnce(&Supervisor),
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
        let activated = crate::systemd::activated_listeners();
        let mut supervisor = match Supervisor::start_with_listeners(&ctx, servers, activated) {
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
        let admin_stop = tokio_util::sync::CancellationToken::new();
        let (admin_tx, mut admin_rx) = tokio::sync::mpsc::channel(16);
        if let Some(options) = admin {
            match AdminServer::bind(options).await {
                Ok(server) => {
                    let addr = server.local_addr().map(|a| a.to_string()).unwrap_or_default();
                    tracing::info!(%addr, "admin endpoint listening");
                    tokio::spawn(server.run(ctx.clone(), admin_tx, admin_stop.clone()));
                }
                Err(error) => {
                    eprintln!("tlsplex: admin endpoint on {}: {error}", options.listen);
                    supervisor.shutdown().await;
                    return ExitCode::FAILURE;
                }
            }
        }
        if let Some(user) = &global.user {
            if let Err(error) = crate::privileges::drop_to(user, global.group.as_deref()) {
                eprintln!("tlsplex: {error}; refusing to serve as root");
                supervisor.shutdown().await;
                return ExitCode::FAILURE;
            }
        }
        announce(&supervisor);
        crate::systemd::notify("READY=1\nSTATUS=serving");

        let mut watched = reload.map(|r| Watched::new(r.path, r.config));
        let mut poll = global.reload_check_interval.map(tokio::time::interval);
        let first = loop {
            let request = tokio::select! {
                request = signals.recv() => request,
                () = tick(&mut poll) => {
                    if let Some(mut w) = watched.take() {
                        watched = Some(if w.changed() {
                            w.reload(&mut supervisor, "a watched file changed").await.0
                        } else {
                            w
                        });
                    }
                    continue;
                }
                Some(request) = admin_rx.recv() => {
                    answer(request, &mut supervisor, &mut watched).await;
                    continue;
                }
            };
            match request {
                Request::Shutdown(name) => break name,
                Request::Reload => {
                    crate::systemd::reloading();
                    match watched.take() {
                        Some(w) => watched = Some(w.reload(&mut supervisor, "SIGHUP").await.0),
                        None => reload_ticket_keys(&ctx),
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
            () = supervisor.shutdown() => {
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

/// Answers one admin request; the supervisor is ours alone, so requests queue here.
async fn answer(request: AdminRequest, supervisor: &mut Supervisor, watched: &mut Option<Watched>) {
    match request {
        AdminRequest::Servers(reply) => {
            let _ = reply.send(supervisor.stats());
        }
        AdminRequest::Reload(reply) => {
            let result = match watched.take() {
                Some(w) => {
                    let (next, result) = w.reload(supervisor, "admin API").await;
                    *watched = Some(next);
                    result
                }
                None => Err("no config file to reload (the demo runs without one)".to_owned()),
            };
            let _ = reply.send(result);
        }
        AdminRequest::Add(table, reply) => {
            let base = watched
                .as_ref()
                .map_or_else(|| std::path::PathBuf::from("."), Watched::base);
            let added = Config::parse_server(&table, &base)
                .map_err(|e| e.to_string())
                .and_then(|spec| supervisor.add(spec.options()).map_err(|e| e.to_string()))
                .map(|handle| handle.stats());
            if let Ok(stats) = &added {
                tracing::info!(server = %stats.name, addr = %stats.listen, "server added through the admin API");
            }
            let _ = reply.send(added);
        }
        AdminRequest::Start(name, reply) => {
            let started = match watched.as_ref().and_then(|w| w.server(&name)) {
                None => Err(format!("no server named {name:?} in the configuration")),
                Some(_) if supervisor.server(&name).is_some() => {
                    Err(format!("server {name:?} is already running"))
                }
                Some(spec) => supervisor
                    .add(spec.options())
                    .map(|handle| handle.stats())
                    .map_err(|e| e.to_string()),
            };
            let _ = reply.send(started);
        }
        AdminRequest::Remove(name, reply) => {
            let _ = reply.send(supervisor.remove(&name).await.map_err(|e| e.to_string()));
        }
        _ => {}
    }
}

/// Without a config file (the demo), SIGHUP can only re-read the ticket key file.
fn reload_ticket_keys(ctx: &tlsplex::Context) {
    if let Some(Err(error)) = ctx.ticket_keys().map(|keys| keys.reload()) {
        tracing::error!(%error, "reload: the previous ticket key stays");
    } else {
        tracing::info!("SIGHUP: the demo has no config file to reload");
    }
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
