//! `[server.tls]` and `certificates = [...]`: the policy, client authentication, and the
//! certificates loaded.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::acme::{check_profile, AcmeCertificate, AcmeOptions};
use super::dns01::Challenge;
use super::error::Problems;
use super::file::{ClientAuthFile, ClientAuthModeFile, ServerFile, TlsFile};
use crate::files::FileRead;
use crate::tls::allow::AllowList;
use crate::tls::certs::{CertStore, Identity};
use crate::tls::client_auth::{ClientAuth, ClientAuthMode};
use crate::tls::policy::TlsPolicy;

/// `[server.tls]` into a policy (and the client-auth files to watch); `None` if anything is wrong.
pub(super) fn validate_tls(
    raw: Option<&TlsFile>,
    label: &str,
    base: &Path,
    problems: &mut Problems,
) -> Option<(TlsPolicy, Vec<PathBuf>)> {
    let mut policy = TlsPolicy::default();
    let Some(raw) = raw else {
        return Some((policy, Vec::new()));
    };
    let mut ok = true;
    let mut check = |key: &str, result: Result<(), String>| {
        if let Err(message) = result {
            problems.server(label, key, message);
            ok = false;
        }
    };
    if let Some(names) = &raw.versions {
        let parsed = TlsPolicy::parse_versions(names).map_err(|e| e.to_string());
        let parsed = parsed.and_then(|v| {
            if v.is_empty() {
                Err("name at least one version".to_owned())
            } else {
                Ok(v)
            }
        });
        check("tls.versions", parsed.map(|v| policy.versions = v));
    }
    if let Some(names) = &raw.cipher_suites {
        let parsed = TlsPolicy::parse_cipher_suites(names).map_err(|e| e.to_string());
        check(
            "tls.cipher_suites",
            parsed.map(|s| policy.cipher_suites = s),
        );
    }
    if let Some(names) = &raw.groups {
        let parsed = TlsPolicy::parse_kx_groups(names).map_err(|e| e.to_string());
        check("tls.groups", parsed.map(|g| policy.kx_groups = g));
    }
    let versions = policy.versions.clone();
    let suites_for = |version: &rustls::SupportedProtocolVersion| {
        policy.cipher_suites.iter().any(|s| s.version() == version)
    };
    for version in versions {
        if !suites_for(version) {
            check(
                "tls.cipher_suites",
                Err(format!(
                    "no suite for {:?}: name one or drop that version",
                    version.version
                )),
            );
        }
    }
    if let Some(alpn) = &raw.alpn {
        let valid = alpn.iter().all(|p| !p.is_empty() && p.len() <= 255);
        check(
            "tls.alpn",
            if valid {
                Ok(())
            } else {
                Err("each protocol name must be 1 to 255 bytes long".to_owned())
            },
        );
        policy.alpn = alpn.clone();
    }
    policy.strict_sni = raw.strict_sni.unwrap_or(policy.strict_sni);
    policy.strict_sni_host = raw.strict_sni_host.or(policy.strict_sni_host);
    policy.cert_compression = raw.cert_compression.unwrap_or(policy.cert_compression);
    policy.session_cache_size = raw.session_cache_size.unwrap_or(policy.session_cache_size);
    policy.tickets = raw.tickets.unwrap_or(policy.tickets);
    if let Some(count) = raw.tls13_tickets {
        match count {
            0..=crate::tls::MAX_TLS13_TICKETS => policy.tls13_tickets = count,
            _ => check(
                "tls.tls13_tickets",
                Err(format!(
                    "{count} is more than {} (each ticket is written on every full handshake)",
                    crate::tls::MAX_TLS13_TICKETS
                )),
            ),
        }
    }
    if let Some(bytes) = raw.max_client_hello {
        if crate::tls::CLIENT_HELLO_LIMITS.contains(&bytes) {
            policy.max_client_hello = bytes;
        } else {
            check(
                "tls.max_client_hello",
                Err(format!(
                    "{bytes} is outside {}..={} bytes",
                    crate::tls::CLIENT_HELLO_LIMITS.start(),
                    crate::tls::CLIENT_HELLO_LIMITS.end()
                )),
            );
        }
    }
    if let Some(text) = &raw.max_session_age {
        let mut problem = None;
        match super::value::duration(Some(text), true, &mut |m| problem = Some(m)) {
            Some(age) => policy.max_session_age = age,
            None => check("tls.max_session_age", Err(problem.unwrap_or_default())),
        }
    }
    let mut files = Vec::new();
    if let Some(auth) = &raw.client_auth {
        match validate_client_auth(auth, label, "tls.client_auth", base, problems) {
            Some((loaded, auth_files)) => {
                policy.client_auth = Some(loaded);
                files = auth_files;
            }
            None => ok = false,
        }
    }
    ok.then_some((policy, files))
}

/// `client_auth = { ... }` at `key` (`tls.client_auth`, or a route's): the policy loaded, and
/// its files to watch.
pub(super) fn validate_client_auth(
    auth: &ClientAuthFile,
    label: &str,
    key: &str,
    base: &Path,
    problems: &mut Problems,
) -> Option<(ClientAuth, Vec<PathBuf>)> {
    let ca = base.join(&auth.ca);
    let crls: Vec<PathBuf> = auth.crl.iter().map(|c| base.join(c)).collect();
    let mode = match auth.mode {
        ClientAuthModeFile::Required => ClientAuthMode::Required,
        ClientAuthModeFile::Optional => ClientAuthMode::Optional,
    };
    let allow = auth.allow.as_ref().map(|allow| AllowList {
        cn: allow.cn.clone(),
        dns: allow.dns.clone(),
        uri: allow.uri.clone(),
    });
    if allow.as_ref().is_some_and(AllowList::is_empty) {
        problems.server(
            label,
            &format!("{key}.allow"),
            "the allow-list names nothing, so it would refuse every client: list cn, dns or uri names, or remove it",
        );
        return None;
    }
    let loaded = match ClientAuth::from_files(&ca, &crls, mode) {
        Ok(loaded) => loaded,
        Err(e) => {
            let field = match crls.iter().position(|c| c == e.path()) {
                Some(i) => format!("{key}.crl[{i}]"),
                None => format!("{key}.ca"),
            };
            problems.server(label, &field, e.to_string());
            return None;
        }
    };
    let loaded = match allow {
        Some(allow) => loaded.with_allow_list(allow),
        None => loaded,
    };
    let mut files = vec![ca];
    files.extend(crls);
    Some((loaded, files))
}

/// What `certificates = [...]` loaded: the certificate and key files, the other files read
/// (OCSP), the store, and the entries ACME provides.
pub(super) struct LoadedCerts {
    pub(super) files: Vec<(PathBuf, PathBuf)>,
    pub(super) extra_files: Vec<PathBuf>,
    pub(super) store: Arc<CertStore>,
    pub(super) acme: Vec<AcmeCertificate>,
}

/// The identities one config load has read, by (cert, key, OCSP) file: a file that many
/// servers name is read, parsed and checked once (10,000 servers sharing one certificate
/// would otherwise parse its key 10,000 times and hold 10,000 copies).
#[derive(Default)]
pub(super) struct LoadedIdentities(RefCell<HashMap<IdentityFiles, (Identity, Vec<FileRead>)>>);

type IdentityFiles = (PathBuf, PathBuf, Option<PathBuf>);

impl LoadedIdentities {
    /// The identity loaded from `files` already; its reads count as made again (a server's
    /// inputs name the files it uses, loaded once or not).
    fn get(&self, files: &IdentityFiles) -> Option<Identity> {
        let loaded = self.0.borrow();
        let (identity, reads) = loaded.get(files)?;
        crate::files::note(reads);
        Some(identity.clone())
    }

    fn keep(&self, files: IdentityFiles, identity: &Identity, reads: Vec<FileRead>) {
        self.0.borrow_mut().insert(files, (identity.clone(), reads));
    }
}

pub(super) fn load_certificates(
    raw: &ServerFile,
    label: &str,
    base: &Path,
    (strict_keys, acme, loaded): (bool, Option<&AcmeOptions>, &LoadedIdentities),
    problems: &mut Problems,
) -> Option<LoadedCerts> {
    if raw.certificates.is_empty() {
        problems.server(
            label,
            "certificates",
            "at least one { cert = \"...\", key = \"...\" } is needed",
        );
        return None;
    }
    // Sized at once: the spec keeps `files` for as long as the config lives.
    let mut files = Vec::with_capacity(raw.certificates.len());
    let (mut extra_files, mut acme_certificates) = (Vec::new(), Vec::new());
    let mut identities = Vec::with_capacity(raw.certificates.len());
    for (i, entry) in raw.certificates.iter().enumerate() {
        let at = |field: &str| format!("certificates[{i}].{field}");
        let (cert, key, names) = match (&entry.cert, &entry.key, &entry.acme) {
            (Some(cert), Some(key), None) => (base.join(cert), base.join(key), None),
            (None, None, Some(names)) => {
                let Some(acme) = acme else {
                    problems.server(
                        label,
                        &at("acme"),
                        "needs an [acme] table (directory, contact) in the file, without problems",
                    );
                    continue;
                };
                if names.is_empty() {
                    problems.server(label, &at("acme"), "name at least one DNS name");
                    continue;
                }
                let challenge = acme.challenge_for(entry.challenge);
                if let Err(message) = check_challenge(acme, challenge, names) {
                    problems.server(label, &at("challenge"), message);
                    continue;
                }
                if let Some(Err(message)) = entry.profile.as_deref().map(check_profile) {
                    problems.server(label, &at("profile"), message);
                    continue;
                }
                let profile = entry.profile.clone().or_else(|| acme.profile.clone());
                let (cert, key) = acme.certificate_files(names);
                (cert, key, Some((names.clone(), challenge, profile)))
            }
            (_, _, Some(_)) => {
                problems.server(
                    label,
                    &at("acme"),
                    "an entry is either { acme = [...] } or { cert, key }, not both",
                );
                continue;
            }
            (None, _, None) => {
                problems.server(
                    label,
                    &at("cert"),
                    "missing field `cert` (or acme = [\"name\", ...])",
                );
                continue;
            }
            (_, None, None) => {
                problems.server(label, &at("key"), "missing field `key`");
                continue;
            }
        };
        for (field, given) in [
            ("challenge", entry.challenge.is_some()),
            ("profile", entry.profile.is_some()),
        ] {
            if given && names.is_none() {
                problems.server(label, &at(field), "only for { acme = [...] } entries");
            }
        }
        let ocsp = entry.ocsp.as_ref().map(|path| base.join(path));
        files.push((cert.clone(), key.clone()));
        extra_files.extend(ocsp.clone());
        if let Some((names, challenge, profile)) = names {
            acme_certificates.push(AcmeCertificate {
                names: names.clone(),
                cert: cert.clone(),
                key: key.clone(),
                challenge,
                profile,
            });
            // Not issued yet, or unusable: a stand-in until ACME writes new files.
            let stored = Identity::from_pem_files(&cert, &key);
            if let Err(error) = &stored {
                if cert.exists() || key.exists() {
                    tracing::warn!(server = label, names = %names.join(","), %error, "the stored ACME certificate is unusable: a new one will be ordered");
                }
            }
            match stored.or_else(|_| Identity::pending(&names)) {
                Ok(identity) => identities.push(identity),
                Err(e) => problems.server(label, &at("acme"), e.to_string()),
            }
            continue;
        }
        let identity_files = (cert.clone(), key.clone(), ocsp.clone());
        if let Some(identity) = loaded.get(&identity_files) {
            identities.push(identity);
            continue;
        }
        // Both files first, so one pass names every file that cannot be read.
        let unreadable: Vec<_> = [("cert", &cert), ("key", &key)]
            .into_iter()
            .filter_map(|(field, path)| {
                crate::files::open_regular(path)
                    .err()
                    .map(|e| (field, format!("cannot read {}: {e}", path.display())))
            })
            .collect();
        if !unreadable.is_empty() {
            for (field, message) in unreadable {
                problems.server(label, &at(field), message);
            }
            continue;
        }
        let (identity, reads) = crate::files::recording(|| {
            Identity::check_key_permissions(&key, strict_keys)
                .and_then(|()| Identity::from_pem_files(&cert, &key))
                .and_then(|identity| match &ocsp {
                    Some(path) => identity.with_ocsp_file(path),
                    None => Ok(identity),
                })
        });
        match identity {
            Ok(identity) => {
                loaded.keep(identity_files, &identity, reads);
                identities.push(identity);
            }
            Err(e) => {
                let field = if e.path() == key {
                    "key"
                } else if Some(e.path()) == ocsp.as_deref() {
                    "ocsp"
                } else {
                    "cert"
                };
                problems.server(label, &at(field), e.to_string());
            }
        }
    }
    if identities.len() != raw.certificates.len() {
        return None;
    }
    let mut identities = identities.into_iter();
    let default = identities.next()?;
    Some(LoadedCerts {
        files,
        extra_files,
        store: Arc::new(CertStore::new(default, identities.collect())),
        acme: acme_certificates,
    })
}

/// Whether `acme` can validate `names` by `challenge`: DNS-01 needs `[acme.dns01]`, HTTP-01 a
/// listener, and a wildcard DNS-01.
fn check_challenge(
    acme: &AcmeOptions,
    challenge: Challenge,
    names: &[String],
) -> Result<(), String> {
    match challenge {
        Challenge::Dns01 if acme.dns01.is_none() => {
            return Err("dns-01 needs [acme.dns01] (rfc2136 = {...} or hook = {...})".to_owned())
        }
        Challenge::Http01 if acme.http01_listen.is_none() => {
            return Err("http-01 needs [acme] http01_listen or [http_redirect]".to_owned())
        }
        _ => {}
    }
    match names.iter().find(|name| name.starts_with("*.")) {
        Some(wildcard) if challenge != Challenge::Dns01 => Err(format!(
            "{wildcard} is a wildcard: only dns-01 validates wildcards (challenge = \"dns-01\", with [acme.dns01])"
        )),
        _ => Ok(()),
    }
}
