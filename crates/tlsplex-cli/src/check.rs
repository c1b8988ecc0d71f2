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
                    let names = acme.names.join(", ");
                    let profile = acme
                        .profile
                        .as_ref()
                        .map(|p| format!(", profile {p}"))
                        .unwrap_or_default();
                    println!("    acme {names:<15} {}{profile} ({state})", acme.challenge);
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
            check_profiles(path, &config)
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

/// Certificate profiles must be listed by the CA's directory, which is asked now (the one
/// check that needs the network, only when a profile is asked for).
fn check_profiles(path: &Path, config: &Config) -> ExitCode {
    let Some(acme) = &config.acme else {
        return ExitCode::SUCCESS;
    };
    let wanted: Vec<(&str, &tlsplex::config::AcmeCertificate)> = config
        .servers
        .iter()
        .flat_map(|s| s.acme_certificates.iter().map(|c| (s.name.as_str(), c)))
        .filter(|(_, c)| c.profile.is_some())
        .collect();
    if wanted.is_empty() {
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!(
                "{}: cannot check certificate profiles: {error}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let limit = std::time::Duration::from_secs(10);
    let offered = match runtime.block_on(tlsplex::acme::offered_profiles(acme, limit)) {
        Ok(offered) => offered,
        Err(error) => {
            eprintln!(
                "{}: warning: certificate profiles not checked: {error}",
                path.display()
            );
            return ExitCode::SUCCESS;
        }
    };
    let mut refused = 0;
    for (server, certificate) in wanted {
        let profile = certificate.profile.as_deref().unwrap_or_default();
        if !offered.iter().any(|o| o == profile) {
            let offers = match offered.is_empty() {
                true => "no profiles".to_owned(),
                false => offered.join(", "),
            };
            eprintln!(
                "{}: server {server:?}: acme {}: profile {profile:?} is not offered by {} (it offers: {offers})",
                path.display(),
                certificate.names.join(", "),
                acme.directory
            );
            refused += 1;
        }
    }
    match refused {
        0 => ExitCode::SUCCESS,
        n => {
            eprintln!("{}: {n} problem(s) found", path.display());
            ExitCode::FAILURE
        }
    }
}
