//! What to probe: the addresses given, or every server of a config file (its outline: no key is
//! read), each with the SNI to send.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tlsplex::config::ConfigOutline;

use crate::cli::ProbeArgs;

/// One address to probe.
pub(super) struct Target {
    /// As the user wrote it, or the config's listen address.
    pub(super) address: String,
    /// The config's server name, when probing a config.
    pub(super) server: Option<String>,
    pub(super) host: String,
    pub(super) port: u16,
    /// SNI and the name the certificate is verified against.
    pub(super) servername: Option<String>,
}

pub(super) fn targets(args: &ProbeArgs) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    for address in &args.addresses {
        let (host, port) = split_host_port(address)
            .ok_or_else(|| format!("{address:?} is not HOST:PORT (e.g. 127.0.0.1:1440)"))?;
        let servername = args
            .servername
            .clone()
            .or_else(|| host.parse::<IpAddr>().is_err().then(|| host.clone()));
        targets.push(Target {
            address: address.clone(),
            server: None,
            host,
            port,
            servername,
        });
    }
    if let Some(path) = &args.config {
        // The outline reads no private key: probe -c works for whoever may read the config.
        let config = ConfigOutline::load(path).map_err(|e| e.to_string())?;
        for server in &config.servers {
            let ip = match server.listen.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            let servername = args.servername.clone().or_else(|| {
                server
                    .certificate_files
                    .first()
                    .and_then(|file| first_dns_name(file))
                    .or_else(|| server.acme_names.first().cloned())
            });
            targets.push(Target {
                address: server.listen.to_string(),
                server: Some(server.name.clone()),
                host: ip.to_string(),
                port: server.listen.port(),
                servername,
            });
        }
    }
    Ok(targets)
}

/// The first exact DNS name of the first certificate in a PEM file, if it can be read.
fn first_dns_name(file: &std::path::Path) -> Option<String> {
    let pem = tlsplex::files::read_limited(file, tlsplex::files::MAX_MATERIAL_FILE).ok()?;
    let leaf = CertificateDer::pem_slice_iter(&pem).next()?.ok()?;
    let summary = tlsplex::tls::CertSummary::from_der(&leaf)?;
    summary
        .dns_names
        .into_iter()
        .find(|name| !name.starts_with("*."))
}

/// `host:port`, `[v6]:port` or `v6-literal` forms; the host keeps no brackets.
fn split_host_port(address: &str) -> Option<(String, u16)> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Some((addr.ip().to_string(), addr.port()));
    }
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| Some((host.to_owned(), port.parse().ok()?)))?
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn host_port_forms() {
        let split = |s| split_host_port(s);
        assert_eq!(split("127.0.0.1:1440"), Some(("127.0.0.1".into(), 1440)));
        assert_eq!(split("[::1]:443"), Some(("::1".into(), 443)));
        assert_eq!(split("localhost:1441"), Some(("localhost".into(), 1441)));
        assert_eq!(split("localhost"), None);
        assert_eq!(split(":443"), None);
        assert_eq!(split("host:99999"), None);
    }
}
