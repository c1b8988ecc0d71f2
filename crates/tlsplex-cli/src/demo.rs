//! `tlsplex demo` (and `tlsplex` alone): the seed's example, two HTTPS servers on 1440 and 1441.
//!
//! The self-signed certificate is generated on first run and kept in the state folder, so a
//! browser exception made once survives restarts.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tlsplex::admin::{AdminOptions, AdminToken};
use tlsplex::config::GlobalSettings;
use tlsplex::{CertStore, Identity, ServerOptions};

use crate::cli::DemoArgs;
use crate::serve::serve;
use tlsplex::daemon::DaemonPlan;

const CERT_FILE: &str = "demo-cert.pem";
const KEY_FILE: &str = "demo-key.pem";
/// A certificate this close to expiry is replaced on start.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

/// The demo: its servers, named after their ports, and its admin endpoint, all on loopback.
pub fn run(args: &DemoArgs) -> ExitCode {
    let ports = args.ports.clone().unwrap_or_else(|| vec![1440, 1441]);
    let [a, b] = ports[..] else {
        eprintln!("tlsplex demo: --ports takes two ports, e.g. --ports 1440,1441");
        return ExitCode::FAILURE;
    };
    let dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    let identity = match load_or_create(&dir) {
        Ok(identity) => identity,
        Err(error) => {
            eprintln!("tlsplex demo: {error}");
            return ExitCode::FAILURE;
        }
    };
    let fingerprint = identity.summary().sha256_fingerprint.clone();
    let certs = Arc::new(CertStore::single(identity));
    let servers = [a, b]
        .iter()
        .map(|port| {
            let addr = SocketAddr::from(([127, 0, 0, 1], *port));
            // The seed's page shows every server of the process; the demo is on loopback.
            let name = format!("demo-{port}");
            ServerOptions::new(name, addr, certs.clone()).status_lists_servers(true)
        })
        .collect();
    let global = GlobalSettings::default();
    let token = AdminToken::Generated(dir.join(tlsplex::config::DEFAULT_TOKEN_FILE));
    let admin_addr = SocketAddr::from(([127, 0, 0, 1], args.admin_port.unwrap_or(9440)));
    let admin = AdminOptions::new(admin_addr, token);
    let mut plan = DaemonPlan::default();
    (plan.servers, plan.admin) = (servers, Some(admin));
    serve(&global, plan, |supervisor, login| {
        println!("tlsplex demo: two HTTPS servers in one process (the seed's example)");
        for server in supervisor.servers() {
            println!(
                "  https://localhost:{}/    server {}",
                server.local_addr().port(),
                server.name()
            );
        }
        println!(
            "certificate: {} (self-signed for localhost, 127.0.0.1, ::1)",
            dir.join(CERT_FILE).display()
        );
        println!("SHA-256 fingerprint: {fingerprint}");
        println!("check: tlsplex probe 127.0.0.1:{a} 127.0.0.1:{b} --insecure");
        println!(
            "admin: http://{admin_addr}/ (dashboard, /api/servers, /metrics; tlsplex ctl servers)"
        );
        if let Some(login) = login {
            println!(
                "dashboard login (once, within 2 minutes; later: tlsplex ctl dashboard): {login}"
            );
        }
        println!("stop: Ctrl-C (SIGINT) or SIGTERM");
    })
}

pub fn default_state_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("tlsplex"))
        .unwrap_or_else(|| PathBuf::from(".tlsplex"))
}

/// The kept certificate when it is there, valid and not about to expire; a new one otherwise.
fn load_or_create(dir: &Path) -> Result<Identity, String> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    if cert_path.exists() {
        match Identity::from_pem_files(&cert_path, &key_path) {
            Ok(identity) if !expires_soon(&identity) => return Ok(identity),
            Ok(_) => {
                tracing::info!(path = %cert_path.display(), "demo certificate expires soon; replacing it")
            }
            Err(error) => tracing::warn!(%error, "demo certificate unusable; replacing it"),
        }
    }
    let (cert_pem, key_pem) =
        generate().map_err(|e| format!("cannot generate a certificate: {e}"))?;
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    crate::cert::write_private(&key_path, key_pem.as_bytes())?;
    fs::write(&cert_path, cert_pem.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
    tracing::info!(path = %cert_path.display(), "generated a self-signed demo certificate");
    Identity::from_pem_files(&cert_path, &key_path).map_err(|e| e.to_string())
}

fn expires_soon(identity: &Identity) -> bool {
    identity.summary().not_after < SystemTime::now() + RENEW_BEFORE
}

/// A self-signed ECDSA P-256 certificate for localhost, valid for a year.
fn generate() -> Result<(String, String), rcgen::Error> {
    let names = ["localhost", "127.0.0.1", "::1"].map(str::to_owned);
    crate::cert::self_signed(&names, "tlsplex demo (localhost)", 365)
}
