//! Cert stores: a server's identities (certificate chain and key, chosen by the client's SNI
//! as the engine's `CertStore` chooses them, the first being the default) and, optionally, the
//! CAs its clients' certificates must chain to. The rustls configuration for a store under a
//! context is made at its first accept and kept until the store changes.

use std::collections::HashMap;
use std::ffi::c_char;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rustls::ServerConfig;
use tlsplex::tls::{CertLoadError, ClientAuth, ClientAuthMode};
use tlsplex::{CertStore, Identity};

use crate::context::{Context, Resumption};
use crate::handles::Handles;
use crate::tlsplex_result::{self, *};
use crate::{bytes, guard, put, text};

/// A server's certificates (chosen by SNI, the first added the default) and, optionally, the
/// CAs its clients' certificates must chain to. Threads: any number at once; adding to a store
/// while it accepts is allowed (the next accept sees it).
#[allow(non_camel_case_types)]
pub enum tlsplex_cert_store {}

#[derive(Default)]
pub(crate) struct Store {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    identities: Vec<Identity>,
    client_auth: Option<(ClientAuth, Resumption)>,
    /// Configurations made, by context.
    configs: HashMap<usize, Arc<ServerConfig>>,
}

pub(crate) fn stores() -> &'static Handles<Store> {
    static STORES: OnceLock<Handles<Store>> = OnceLock::new();
    STORES.get_or_init(|| Handles::new(2))
}

impl Store {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, identity: Identity) {
        let mut inner = self.lock();
        inner.identities.push(identity);
        inner.configs.clear();
    }

    /// The rustls configuration for accepting under `context` (known as `key`).
    pub(crate) fn config(
        &self,
        context: &Context,
        key: usize,
    ) -> Result<Arc<ServerConfig>, tlsplex_result> {
        let mut inner = self.lock();
        if let Some(config) = inner.configs.get(&key) {
            return Ok(config.clone());
        }
        let mut identities = inner.identities.iter().cloned();
        let default = identities.next().ok_or(TLSPLEX_NO_CERTIFICATES)?;
        let certs = Arc::new(CertStore::new(default, identities.collect()));
        let builder = ServerConfig::builder_with_provider(context.provider.clone())
            .with_protocol_versions(context.versions)
            .map_err(|_| TLSPLEX_INVALID_ARGUMENT)?;
        let (builder, resumption) = match &inner.client_auth {
            Some((auth, own)) => {
                let verifier = auth
                    .verifier(context.provider.clone())
                    .map_err(|_| TLSPLEX_BAD_PEM)?;
                (builder.with_client_cert_verifier(verifier), own.clone())
            }
            None => (builder.with_no_client_auth(), context.resumption.clone()),
        };
        let mut config = builder.with_cert_resolver(certs);
        config.alpn_protocols = context.alpn.clone();
        config.session_storage = resumption.sessions;
        config.ticketer = resumption.tickets;
        let config = Arc::new(config);
        inner.configs.insert(key, config.clone());
        Ok(config)
    }
}

fn load_error(error: &CertLoadError) -> tlsplex_result {
    match error {
        CertLoadError::Unreadable { .. } => TLSPLEX_FILE_UNREADABLE,
        _ => TLSPLEX_BAD_PEM,
    }
}

/// Makes an empty cert store into `*out`.
///
/// # Safety
/// `out` must be valid for a write of a pointer.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_cert_store_new(
    out: *mut *mut tlsplex_cert_store,
) -> tlsplex_result {
    guard(|| {
        // SAFETY: the caller promises `out` is valid for a write of a pointer.
        unsafe { put(out, stores().add(Store::default())) }
    })
}

/// Adds an identity from PEM files: the certificate chain (leaf first) and its private key. The
/// first identity added is the default, for clients whose SNI no certificate names.
///
/// # Safety
/// `cert_path` and `key_path` must be null or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_cert_store_add_pem_files(
    store: *mut tlsplex_cert_store,
    cert_path: *const c_char,
    key_path: *const c_char,
) -> tlsplex_result {
    guard(|| {
        let store = stores().get(store)?;
        // SAFETY: the caller promises NUL-terminated strings (or null, refused).
        let (cert, key) = unsafe { (text(cert_path)?, text(key_path)?) };
        let identity = Identity::from_pem_files(Path::new(cert), Path::new(key))
            .map_err(|e| load_error(&e))?;
        store.add(identity);
        Ok(())
    })
}

/// Adds an identity from PEM in memory (`cert_len` and `key_len` bytes, no NUL needed).
///
/// # Safety
/// `cert` and `key` must be null or valid for reads of their lengths.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_cert_store_add_pem(
    store: *mut tlsplex_cert_store,
    cert: *const u8,
    cert_len: usize,
    key: *const u8,
    key_len: usize,
) -> tlsplex_result {
    guard(|| {
        let store = stores().get(store)?;
        // SAFETY: the caller promises the buffers are valid for their lengths.
        let (cert, key) = unsafe { (bytes(cert, cert_len)?, bytes(key, key_len)?) };
        let identity = Identity::from_pem(cert, key).map_err(|e| load_error(&e))?;
        store.add(identity);
        Ok(())
    })
}

/// Asks every client of this store for a certificate that chains to the CAs in `ca_path` (PEM)
/// and is not revoked by the CRL in `crl_path` (PEM or DER; null: none). A client without one
/// fails its handshake with `TLSPLEX_BAD_CLIENT_CERTIFICATE`. Sessions made under this store
/// resume only under it.
///
/// # Safety
/// `ca_path` must be null or a NUL-terminated string, `crl_path` null or one.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_cert_store_require_client_cert(
    store: *mut tlsplex_cert_store,
    ca_path: *const c_char,
    crl_path: *const c_char,
) -> tlsplex_result {
    guard(|| {
        let store = stores().get(store)?;
        // SAFETY: the caller promises NUL-terminated strings (or null).
        let ca = unsafe { text(ca_path) }?;
        let crls = if crl_path.is_null() {
            Vec::new()
        } else {
            // SAFETY: not null, and the caller promises a NUL-terminated string.
            vec![unsafe { text(crl_path) }?.into()]
        };
        let auth = ClientAuth::from_files(Path::new(ca), &crls, ClientAuthMode::Required).map_err(
            |e| match e {
                tlsplex::tls::ClientAuthError::Unreadable { .. } => TLSPLEX_FILE_UNREADABLE,
                _ => TLSPLEX_BAD_PEM,
            },
        )?;
        let mut inner = store.lock();
        inner.client_auth = Some((auth, Resumption::new()?));
        inner.configs.clear();
        Ok(())
    })
}

/// Frees a cert store; connections accepted with it go on. Null is ignored.
///
/// # Safety
/// None beyond C's: `store` is a name, never followed.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_cert_store_free(store: *mut tlsplex_cert_store) -> tlsplex_result {
    guard(|| stores().free(store))
}
