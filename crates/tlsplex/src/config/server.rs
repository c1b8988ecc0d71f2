//! `[[server]]`: each table validated into a [`ServerSpec`], every problem named with its server.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use super::acme::AcmeOptions;
use super::error::Problems;
use super::file::{HandlerFile, ServerFile};
use super::handler::{validate_handler, HandlerAt};
use super::path::{check_owner, validate_paths};
use super::route::{uncovered_names, validate_routes};
use super::tls::{load_certificates, validate_tls, LoadedCerts, LoadedIdentities};

/// What a `forward` offers by ALPN unless told otherwise: a relay cannot turn a browser's
/// HTTP/2 into the HTTP/1.1 most backends speak (its preface reached them as garbage: curl's
/// "Empty reply", Chromium's ERR_HTTP2_PROTOCOL_ERROR); `alpn = ["h2"]` says a backend speaks h2.
pub(super) const FORWARD_ALPN: &str = "http/1.1";

/// What a server or route with path rules and no handler of its own answers where no rule
/// takes the path.
pub(super) const NO_PATH_RULE: &str = "nothing is served at this path here\n";
use super::document::ServerText;
use super::value::{deserialize, duration, server_label};
use super::{HandlerSpec, ServerSpec};
use crate::files::FileRead;
use crate::rate::{RequestRate, DEFAULT_RATE_CLIENTS};
use crate::server::ServerInputs;

/// What validating a server needs from the rest of the file.
#[derive(Clone, Copy)]
pub(super) struct ServerKeys<'a> {
    /// The servers of the previous load, by name: one whose table and files did not change is
    /// taken as it is, not validated again.
    pub(super) previous: &'a HashMap<&'a str, &'a Arc<ServerSpec>>,
    pub(super) strict_key_permissions: bool,
    pub(super) acme: Option<&'a AcmeOptions>,
    pub(super) identities: &'a LoadedIdentities,
}

pub(super) fn validate_servers(
    servers: &[ServerText],
    mut tables: Vec<Option<toml::Table>>,
    base: &Path,
    keys: ServerKeys<'_>,
    problems: &mut Problems,
) -> Vec<Arc<ServerSpec>> {
    if servers.is_empty() {
        problems.global("server", "no [[server]] is defined: nothing to run");
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut listens = Listens::default();
    let mut files = HashMap::new();
    let mut specs = Vec::with_capacity(servers.len());
    for (i, server) in servers.iter().enumerate() {
        let label = || server_label(server.name.as_deref(), i);
        // The same table around the same files as the running server: its spec as it is.
        let previous = unchanged(keys.previous, server, &mut files);
        if let Some(previous) = previous.filter(|p| !names.contains_key(&p.name)) {
            names.insert(previous.name.clone(), i);
            if let Some(problem) = listens.clash_problem(previous.listen) {
                problems.server(&label(), "listen", problem);
            }
            listens.add(previous.listen, &previous.name);
            specs.push(Arc::clone(previous));
            continue;
        }
        let label = label();
        let table = match tables.get_mut(i).and_then(Option::take) {
            Some(table) => table,
            None => match server.table() {
                Ok(table) => table,
                Err(message) => {
                    problems.server(&label, "", message);
                    continue;
                }
            },
        };
        let Some(raw) = deserialize::<ServerFile>(table, &mut |k, m| problems.server(&label, k, m))
        else {
            continue;
        };
        if !valid_name(&raw.name) {
            problems.server(
                &label,
                "name",
                format!(
                    "{:?} is not a valid name: use 1 to 64 letters, digits, '.', '_' or '-'",
                    raw.name
                ),
            );
        }
        if let Some(first) = names.insert(raw.name.clone(), i) {
            problems.server(
                &label,
                "name",
                format!(
                    "duplicate name: server #{} is also called {:?}",
                    first + 1,
                    raw.name
                ),
            );
        }
        let (spec, reads) = crate::files::recording(|| {
            validate_server(raw, &label, base, keys, &listens, problems)
        });
        if let Some(mut spec) = spec {
            listens.add(spec.listen, &spec.name);
            spec.inputs = Some(inputs_of(&server.digest, &reads));
            spec.table_digest = server.digest;
            spec.reads = reads;
            specs.push(Arc::new(spec));
        }
    }
    specs
}

pub(super) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn validate_server(
    mut raw: ServerFile,
    label: &str,
    base: &Path,
    keys: ServerKeys<'_>,
    listens: &Listens,
    problems: &mut Problems,
) -> Option<ServerSpec> {
    let mut ok = true;
    let listen = match super::value::listen_address(&raw.listen) {
        Ok(addr) => {
            if let Some(problem) = listens.clash_problem(addr) {
                problems.server(label, "listen", problem);
                ok = false;
            }
            Some(addr)
        }
        Err(message) => {
            problems.server(label, "listen", message);
            None
        }
    };
    let handshake_timeout = duration(raw.handshake_timeout.as_deref(), true, &mut |m| {
        problems.server(label, "handshake_timeout", m)
    });
    ok &= raw.handshake_timeout.is_none() || handshake_timeout.is_some();
    if raw.max_connections == Some(0) {
        problems.server(label, "max_connections", "must be at least 1");
        ok = false;
    }
    if raw.max_connections_per_client == Some(0) {
        problems.server(label, "max_connections_per_client", "must be at least 1");
        ok = false;
    }
    let rate = raw.request_rate_per_client.as_ref().map(|rate| {
        let burst = rate.burst.unwrap_or(rate.per_second);
        let clients = rate.clients.unwrap_or(DEFAULT_RATE_CLIENTS);
        for (field, value) in [
            ("per_second", rate.per_second as usize),
            ("burst", burst as usize),
            ("clients", clients),
        ] {
            if value == 0 {
                let key = format!("request_rate_per_client.{field}");
                problems.server(label, &key, "must be at least 1");
                ok = false;
            }
        }
        RequestRate::new(rate.per_second, burst).clients(clients)
    });
    let tls = validate_tls(raw.tls.as_ref(), label, base, problems);
    let alpn_given = raw.tls.as_ref().is_some_and(|t| t.alpn.is_some());
    let certs = load_certificates(
        &raw,
        label,
        base,
        (keys.strict_key_permissions, keys.acme, keys.identities),
        problems,
    );
    let http = super::http::validate_http(raw.http.as_ref(), label, problems);
    // Every part is checked, so one pass reports every problem.
    let at = HandlerAt {
        label,
        key: "handler",
    };
    let own = raw.handler.take().unwrap_or_else(|| {
        if raw.path.is_empty() {
            HandlerFile::for_unrouted(!raw.route.is_empty())
        } else {
            HandlerFile::not_found(NO_PATH_RULE)
        }
    });
    let handler = validate_handler(own, &at, base, problems);
    let paths = validate_paths(std::mem::take(&mut raw.path), "", label, base, problems);
    if let (Some(handler), false) = (&handler, paths.as_ref().is_none_or(Vec::is_empty)) {
        ok &= check_owner(handler, "", label, problems);
    }
    if let Some(HandlerSpec::Passthrough(_)) = handler {
        problems.server(
            label,
            "handler.type",
            "passthrough is for routes ([[server.route]] with names): the server's own connections are terminated",
        );
        ok = false;
    }
    let routes = validate_routes(raw.route, label, base, problems);
    if let (Some((routes, _)), Some(certs)) = (&routes, &certs) {
        uncovered_names(routes, &certs.store, label, problems);
    }
    let (
        Some(listen),
        Some(LoadedCerts {
            files: certificate_files,
            extra_files: mut material_files,
            store: certs,
            acme: acme_certificates,
        }),
        Some((tls, client_auth_files)),
        Some(http),
        Some(handler),
        Some((routes, route_files)),
        Some(paths),
        true,
    ) = (listen, certs, tls, http, handler, routes, paths, ok)
    else {
        return None;
    };
    material_files.extend(client_auth_files);
    material_files.extend(route_files);
    let mut tls = tls;
    if !alpn_given {
        match handler {
            HandlerSpec::Forward(_) => tls.alpn = vec![FORWARD_ALPN.to_owned()],
            // What the program's handler speaks is its own: nothing is offered for it.
            HandlerSpec::External(_) => tls.alpn = Vec::new(),
            _ => {}
        }
    }
    Some(ServerSpec {
        name: raw.name,
        listen,
        certificate_files,
        certs,
        handler,
        max_connections: raw.max_connections,
        max_connections_per_client: raw.max_connections_per_client,
        request_rate_per_client: rate,
        handshake_timeout,
        tls,
        http,
        material_files,
        acme_certificates,
        access_log: raw.access_log,
        reuse_port: raw.reuse_port,
        routes,
        paths,
        inputs: None,
        table_digest: [0; 32],
        reads: Vec::new(),
    })
}

/// The previous load's spec of `server`, when neither its table (nor the settings around it:
/// its digest) nor any file it read changed since.
fn unchanged<'a>(
    previous: &'a HashMap<&str, &Arc<ServerSpec>>,
    server: &ServerText,
    files: &mut HashMap<OsString, Option<[u8; 32]>>,
) -> Option<&'a Arc<ServerSpec>> {
    let spec = *previous.get(server.name.as_deref()?)?;
    let same = spec.inputs.is_some()
        && spec.table_digest == server.digest
        && spec.reads.iter().all(|read| read.still_holds(files));
    same.then_some(spec)
}

/// The digest of what a server is built from: its table's (`table`, see `ServerText`) and
/// each file its validation read (path and content, or that it could not be read).
fn inputs_of(table: &[u8; 32], reads: &[FileRead]) -> ServerInputs {
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    digest.update(table);
    for read in reads {
        let path = read.path.as_os_str().as_encoded_bytes();
        digest.update(&(path.len() as u64).to_be_bytes());
        digest.update(path);
        match &read.sha256 {
            Some(sha256) => digest.update(&[&[1u8][..], sha256].concat()),
            None => digest.update(&[0]),
        }
    }
    let mut inputs = [0u8; 32];
    inputs.copy_from_slice(digest.finish().as_ref());
    ServerInputs(inputs)
}

/// The addresses of the servers validated so far, by port: a config of 10,000 servers checks
/// each new address against those on its own port only.
#[derive(Default)]
struct Listens(HashMap<u16, Vec<(SocketAddr, String)>>);

impl Listens {
    fn add(&mut self, addr: SocketAddr, server: &str) {
        self.0
            .entry(addr.port())
            .or_default()
            .push((addr, server.to_owned()));
    }

    /// What is wrong with listening on `addr`: a server already listens where it would.
    fn clash_problem(&self, addr: SocketAddr) -> Option<String> {
        let same_port = self.0.get(&addr.port())?;
        let (_, other) = same_port.iter().find(|(a, _)| overlaps(*a, addr))?;
        Some(format!("{addr} is already used by server {other:?}"))
    }
}

/// Whether two listen addresses would clash: the same address, or a wildcard and any address of
/// the same family on the same port. Port 0 never clashes (the kernel picks distinct ports).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() == 0 || b.port() != a.port() || a.is_ipv4() != b.is_ipv4() {
        return false;
    }
    a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::overlaps;

    #[test]
    fn wildcard_overlaps_same_port_same_family_only() {
        let addr = |s: &str| s.parse().unwrap_or_else(|_| panic!("{s}"));
        assert!(overlaps(addr("0.0.0.0:443"), addr("127.0.0.1:443")));
        assert!(overlaps(addr("127.0.0.1:443"), addr("127.0.0.1:443")));
        assert!(!overlaps(addr("127.0.0.1:443"), addr("127.0.0.2:443")));
        assert!(!overlaps(addr("[::]:443"), addr("0.0.0.0:443")));
        assert!(!overlaps(addr("127.0.0.1:0"), addr("127.0.0.1:0")));
    }
}
