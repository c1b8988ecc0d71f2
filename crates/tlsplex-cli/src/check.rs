//! `tlsplex check -c FILE`: validate without binding, like `nginx -t`.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use tlsplex::config::Config;

pub fn run(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            println!("{}: ok, {} server(s)", path.display(), config.servers.len());
            if let Some(acme) = &config.acme {
                match &acme.redis {
                    Some(redis) => println!(
                        "  acme {} (fleet store {redis}, local copies in {})",
                        acme.directory,
                        acme.storage.display()
                    ),
                    None => println!(
                        "  acme {} (storage {})",
                        acme.directory,
                        acme.storage.display()
                    ),
                }
            }
            if let Some(redirect) = &config.http_redirect {
                let port = redirect.https_port.unwrap_or(443);
                println!("  http_redirect {} -> https port {port}", redirect.listen);
            }
            let now = SystemTime::now();
            for server in &config.servers {
                let identity = server.certs.default_identity();
                let cert = identity.summary();
                let shown = if identity.is_pending() {
                    // A stand-in until the ACME manager has the certificate: no subject yet.
                    "certificate to come from ACME".to_owned()
                } else {
                    format!(
                        "{} ({} days left)",
                        cert.subject,
                        cert.days_until_expiry(now)
                    )
                };
                println!("  {:<20} {:<24} {shown}", server.name, server.listen);
                for acme in &server.acme_certificates {
                    let state = if acme.cert.exists() {
                        "stored"
                    } else {
                        "not issued yet"
                    };
                    println!("    acme {:<15} {}", acme.names.join(", "), state);
                }
                for route in &server.routes {
                    let kind = if route.is_passthrough() {
                        "passthrough"
                    } else {
                        "route"
                    };
                    println!(
                        "    {kind} {:<14} {}",
                        route.name(),
                        route.names().join(", ")
                    );
                }
            }
            for warning in &config.warnings {
                eprintln!("{}: warning: {warning}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            eprintln!(
                "{}: {} problem(s) found",
                path.display(),
                error.problems.len()
            );
            ExitCode::FAILURE
        }
    }
}
