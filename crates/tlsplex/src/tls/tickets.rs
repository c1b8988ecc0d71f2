//! Session-ticket keys: one master secret per context, a derived key per server and period.
//!
//! The master secret is generated at start or read from a key file that several processes (or
//! machines) share. Each server derives its own AES-256-GCM key for each rotation period with
//! HKDF-SHA256 over (server name, period number), so a ticket from one server never resumes on
//! another, and processes sharing the file resume each other's tickets for the same server name.
//! The previous period's key still decrypts: a ticket lives one to two periods, as with HAProxy
//! and nginx key rotation.
//!
//! Key file format: text; blank lines and lines starting with `#` are ignored; the one remaining
//! line is the 32-byte master secret as 64 hexadecimal digits. `tlsplex ticket-key new` writes one.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use rustls::server::ProducesTickets;

const MASTER_LEN: usize = 32;
const PERIOD_LEN: usize = 8;
const HKDF_SALT: &[u8] = b"tlsplex session ticket key v1";

/// Why a ticket key file could not be used; names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TicketKeyError {
    /// The file could not be read.
    #[error("cannot read ticket key file {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not hold one line of 64 hexadecimal digits.
    #[error("ticket key file {path}: expected one line of 64 hexadecimal digits (tlsplex ticket-key new writes one)")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
    /// The system's random source failed.
    #[error("cannot generate a ticket key: the random source failed")]
    Random,
}

/// The master secret every server's ticket keys derive from, and how often they rotate.
pub struct TicketKeys {
    /// The secret, with a generation number bumped on every change (invalidates derived keys).
    master: RwLock<(u64, [u8; MASTER_LEN])>,
    rotation: Duration,
    file: Option<PathBuf>,
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret itself.
        f.debug_struct("TicketKeys")
            .field("rotation", &self.rotation)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl TicketKeys {
    /// A fresh random master secret, known to this process only.
    pub fn generate(rotation: Duration) -> Result<Self, TicketKeyError> {
        Ok(Self::new(random_master()?, rotation, None))
    }

    /// The master secret from `path` (see the module docs for the format).
    pub fn from_file(path: &Path, rotation: Duration) -> Result<Self, TicketKeyError> {
        Ok(Self::new(
            read_master(path)?,
            rotation,
            Some(path.to_owned()),
        ))
    }

    fn new(master: [u8; MASTER_LEN], rotation: Duration, file: Option<PathBuf>) -> Self {
        Self {
            master: RwLock::new((0, master)),
            rotation: rotation.max(Duration::from_secs(1)),
            file,
        }
    }

    /// Re-reads the key file, if the keys came from one. On error the current secret stays.
    pub fn reload(&self) -> Result<(), TicketKeyError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let master = read_master(path)?;
        let mut current = self.master.write().unwrap_or_else(PoisonError::into_inner);
        if current.1 != master {
            *current = (current.0 + 1, master);
            tracing::info!(file = %path.display(), "ticket key file reloaded with a new secret");
        }
        Ok(())
    }

    /// Takes a fleet's shared master secret (see [`crate::acme`]), unless the secret came from
    /// a key file, which wins. Whether the secret changed.
    #[cfg(feature = "acme")]
    pub(crate) fn share(&self, master: [u8; MASTER_LEN]) -> bool {
        if self.file.is_some() {
            return false;
        }
        let mut current = self.master.write().unwrap_or_else(PoisonError::into_inner);
        if current.1 == master {
            return false;
        }
        *current = (current.0 + 1, master);
        true
    }

    /// The key file, when the secret came from one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// How long each derived key is the current one.
    pub fn rotation(&self) -> Duration {
        self.rotation
    }

    fn period(&self, now: SystemTime) -> u64 {
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        secs / self.rotation.as_secs().max(1)
    }

    /// The key of `server` for `period` (bound to a client-auth policy when given), with the
    /// generation of the secret it came from.
    fn derive(
        &self,
        server: &str,
        binding: Option<&[u8; 32]>,
        period: u64,
    ) -> Option<(u64, LessSafeKey)> {
        let (generation, master) = *self.master.read().unwrap_or_else(PoisonError::into_inner);
        let period_bytes = period.to_be_bytes();
        let binding = binding.map_or(&[][..], |b| &b[..]);
        let info = [server.as_bytes(), &period_bytes[..], binding];
        let prk = Salt::new(HKDF_SHA256, HKDF_SALT).extract(&master);
        let key = UnboundKey::from(prk.expand(&info, &AES_256_GCM).ok()?);
        Some((generation, LessSafeKey::new(key)))
    }

    /// The ticketer for the server called `server`. With a `binding` (the fingerprint of the
    /// server's client-auth policy), its keys differ from those of the same server under any
    /// other policy, so a ticket never resumes once the policy changed.
    pub(crate) fn ticketer(
        self: &Arc<Self>,
        server: &str,
        binding: Option<[u8; 32]>,
    ) -> Arc<ServerTicketer> {
        Arc::new(ServerTicketer {
            keys: self.clone(),
            server: server.to_owned(),
            binding,
            cache: Mutex::new(Vec::new()),
        })
    }
}

/// The text of a new key file: a comment and a fresh random secret.
pub fn new_ticket_key_file() -> Result<String, TicketKeyError> {
    let master = random_master()?;
    let mut text = String::from(
        "# tlsplex session-ticket master secret. Keep it private (mode 0600); give the same file to\n\
         # every process that should resume the others' sessions. Rotate by replacing this line.\n",
    );
    for byte in master {
        let _ = write!(text, "{byte:02x}");
    }
    text.push('\n');
    Ok(text)
}

pub(crate) fn random_master() -> Result<[u8; MASTER_LEN], TicketKeyError> {
    let mut master = [0u8; MASTER_LEN];
    aws_lc_rs::rand::fill(&mut master).map_err(|_| TicketKeyError::Random)?;
    Ok(master)
}

fn read_master(path: &Path) -> Result<[u8; MASTER_LEN], TicketKeyError> {
    let text = crate::files::read_text(path, crate::files::MAX_SECRET_FILE).map_err(|source| {
        TicketKeyError::Unreadable {
            path: path.to_owned(),
            source,
        }
    })?;
    let malformed = || TicketKeyError::Malformed {
        path: path.to_owned(),
    };
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'));
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Err(malformed());
    };
    parse_master(line).ok_or_else(malformed)
}

/// A master secret written as 64 hexadecimal digits.
pub(crate) fn parse_master(line: &str) -> Option<[u8; MASTER_LEN]> {
    if line.len() != MASTER_LEN * 2 {
        return None;
    }
    let mut master = [0u8; MASTER_LEN];
    for (i, byte) in master.iter_mut().enumerate() {
        *byte = u8::from_str_radix(line.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(master)
}

/// One server's ticket encryption: AES-256-GCM under the key for the current period.
/// A ticket is `period (8 bytes, big-endian) || nonce (12) || ciphertext || tag (16)`.
pub(crate) struct ServerTicketer {
    keys: Arc<TicketKeys>,
    server: String,
    binding: Option<[u8; 32]>,
    /// Derived keys by (generation, period); at most three are kept.
    cache: Mutex<Vec<(u64, u64, Arc<LessSafeKey>)>>,
}

impl fmt::Debug for ServerTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTicketer")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl ServerTicketer {
    fn key(&self, period: u64) -> Option<Arc<LessSafeKey>> {
        let generation = self
            .keys
            .master
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, key)) = cache
            .iter()
            .find(|(g, p, _)| *g == generation && *p == period)
        {
            return Some(key.clone());
        }
        let (generation, key) = self
            .keys
            .derive(&self.server, self.binding.as_ref(), period)?;
        let key = Arc::new(key);
        cache.retain(|(g, _, _)| *g == generation);
        if cache.len() >= 3 {
            cache.remove(0);
        }
        cache.push((generation, period, key.clone()));
        Some(key)
    }
}

impl ProducesTickets for ServerTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        u32::try_from(self.keys.rotation.as_secs()).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.encrypt_at(plain, SystemTime::now())
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        self.decrypt_at(ticket, SystemTime::now())
    }
}

impl ServerTicketer {
    fn encrypt_at(&self, plain: &[u8], now: SystemTime) -> Option<Vec<u8>> {
        let period = self.keys.period(now);
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut ticket = Vec::with_capacity(PERIOD_LEN + NONCE_LEN + plain.len() + 16);
        ticket.extend_from_slice(&period.to_be_bytes());
        ticket.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        self.key(period)?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(period.to_be_bytes()),
                &mut sealed,
            )
            .ok()?;
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn decrypt_at(&self, ticket: &[u8], now: SystemTime) -> Option<Vec<u8>> {
        let period_bytes: [u8; PERIOD_LEN] = ticket.get(..PERIOD_LEN)?.try_into().ok()?;
        let nonce: [u8; NONCE_LEN] = ticket
            .get(PERIOD_LEN..PERIOD_LEN + NONCE_LEN)?
            .try_into()
            .ok()?;
        let period = u64::from_be_bytes(period_bytes);
        let now = self.keys.period(now);
        // The current key and the previous one decrypt; anything older has been rotated out.
        if period != now && period.checked_add(1) != Some(now) {
            return None;
        }
        let mut sealed = ticket.get(PERIOD_LEN + NONCE_LEN..)?.to_vec();
        let plain = self
            .key(period)?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(period_bytes),
                &mut sealed,
            )
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_round_trip_per_server_only() {
        let keys = Arc::new(TicketKeys::generate(Duration::from_secs(3600)).unwrap());
        let a = keys.ticketer("a", None);
        let b = keys.ticketer("b", None);
        let ticket = a.encrypt(b"session state").unwrap();
        assert_eq!(a.decrypt(&ticket).as_deref(), Some(&b"session state"[..]));
        assert_eq!(
            b.decrypt(&ticket),
            None,
            "another server's key does not open it"
        );
        let mut tampered = ticket.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(a.decrypt(&tampered), None);
        assert_eq!(a.decrypt(&ticket[..10]), None);
        assert_eq!(a.decrypt(&[]), None);
    }

    #[test]
    fn a_ticket_survives_one_rotation_but_not_two() {
        let rotation = Duration::from_secs(600);
        let keys = Arc::new(TicketKeys::generate(rotation).unwrap());
        let web = keys.ticketer("web", None);
        let issued = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ticket = web.encrypt_at(b"state", issued).unwrap();
        assert!(web
            .decrypt_at(&ticket, issued + Duration::from_secs(599))
            .is_some());
        assert!(
            web.decrypt_at(&ticket, issued + rotation).is_some(),
            "after one rotation"
        );
        assert!(
            web.decrypt_at(&ticket, issued + rotation * 2).is_none(),
            "after two"
        );
        assert!(
            web.decrypt_at(&ticket, issued - rotation).is_none(),
            "from the future"
        );
    }

    #[test]
    fn key_files_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("tlsplex-ticket-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ticket.key");
        std::fs::write(&path, new_ticket_key_file().unwrap()).unwrap();
        let one = Arc::new(TicketKeys::from_file(&path, Duration::from_secs(60)).unwrap());
        let two = Arc::new(TicketKeys::from_file(&path, Duration::from_secs(60)).unwrap());
        let ticket = one.ticketer("web", None).encrypt(b"x").unwrap();
        assert!(
            two.ticketer("web", None).decrypt(&ticket).is_some(),
            "same file, same keys"
        );

        std::fs::write(&path, "# comment only\n").unwrap();
        let error = TicketKeys::from_file(&path, Duration::from_secs(60)).unwrap_err();
        assert!(
            error.to_string().contains("64 hexadecimal digits"),
            "{error}"
        );
        assert!(one.reload().is_err(), "a bad file on reload is an error…");
        assert!(
            one.ticketer("web", None).decrypt(&ticket).is_some(),
            "…and the old secret stays"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
