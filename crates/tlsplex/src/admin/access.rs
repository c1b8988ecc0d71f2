//! Who may use the admin endpoint: whoever holds its bearer token, and a browser that logged
//! in with a one-time code made from it.
//!
//! Any local user can reach a loopback port, so loopback alone proves nothing (the attack this
//! answers: a second user added a static server rooted at `/etc` and read `/etc/shadow` through
//! it). The token is the operator's (`token_file`) or made at every start and written to a file
//! only the daemon's user can read (0600), where `tlsplex ctl` finds it; so by default the
//! endpoint answers the user the daemon runs as, and root.
//!
//! A person's browser cannot send a bearer header from a typed URL, and a token in a URL would
//! stay in its history. `POST /api/login` (with the token: `tlsplex ctl dashboard`) makes a
//! one-time code that lives [`LOGIN_CODE_LIFETIME`]; `GET /login?code=…` spends it and sets a
//! session cookie (`HttpOnly`, `SameSite=Strict`), so the URL left in the history opens nothing.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::header::{HeaderMap, AUTHORIZATION, COOKIE};

/// How long a login code may wait to be used.
pub const LOGIN_CODE_LIFETIME: Duration = Duration::from_secs(120);

/// How long a dashboard session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Login codes and sessions held at once; the oldest goes first beyond it.
const MAX_HELD: usize = 64;

/// The session cookie's name.
pub(super) const SESSION_COOKIE: &str = "tlsplex_admin";

/// A fresh secret: 32 random bytes as hex.
pub(super) fn random_secret() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| io::Error::other("no random bytes"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `token` to `path`, readable and writable by this process's user only. Written to a new
/// file beside it, then renamed over it: a link planted at `path` is replaced, not followed.
pub(super) fn write_token_file(path: &Path, token: &str) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = std::path::PathBuf::from(temporary);
    let _ = std::fs::remove_file(&temporary);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(format!("{token}\n").as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// The token, the login codes and the sessions of one admin endpoint.
pub(super) struct Access {
    token: String,
    codes: Mutex<HashMap<String, Instant>>,
    sessions: Mutex<HashMap<String, Instant>>,
}

impl Access {
    pub(super) fn new(token: String) -> Self {
        Self {
            token,
            codes: Mutex::default(),
            sessions: Mutex::default(),
        }
    }

    /// Whether the request carries the bearer token or a live session cookie.
    pub(super) fn allows(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|presented| same_secret(presented, &self.token)) {
            return true;
        }
        session_cookie(headers).is_some_and(|id| live(&self.sessions, id))
    }

    /// A new one-time login code.
    pub(super) fn new_login_code(&self) -> io::Result<String> {
        let code = random_secret()?;
        hold(&self.codes, code.clone(), LOGIN_CODE_LIFETIME);
        Ok(code)
    }

    /// Spends `code`: a new session's id if it was live.
    pub(super) fn log_in(&self, code: &str) -> Option<String> {
        let expires = lock(&self.codes).remove(code)?;
        if expires <= Instant::now() {
            return None;
        }
        let id = random_secret().ok()?;
        hold(&self.sessions, id.clone(), SESSION_LIFETIME);
        Some(id)
    }
}

/// Whether `id` is held and not expired (an expired one is dropped).
fn live(held: &Mutex<HashMap<String, Instant>>, id: &str) -> bool {
    let mut held = lock(held);
    // Looked up by value, compared in constant time: ids are secrets.
    let found = held
        .iter()
        .find(|(known, _)| same_secret(id, known))
        .map(|(known, expires)| (known.clone(), *expires));
    match found {
        Some((_, expires)) if expires > Instant::now() => true,
        Some((known, _)) => {
            held.remove(&known);
            false
        }
        None => false,
    }
}

/// Holds `id` for `lifetime`, dropping expired entries and, beyond [`MAX_HELD`], the oldest.
fn hold(held: &Mutex<HashMap<String, Instant>>, id: String, lifetime: Duration) {
    let now = Instant::now();
    let mut held = lock(held);
    held.retain(|_, expires| *expires > now);
    while held.len() >= MAX_HELD {
        let oldest = held
            .iter()
            .min_by_key(|(_, expires)| **expires)
            .map(|(id, _)| id.clone());
        match oldest {
            Some(oldest) => held.remove(&oldest),
            None => break,
        };
    }
    held.insert(id, now + lifetime);
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The session id in the request's cookies, if any.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// Compares two secrets in time that depends on their length only.
fn same_secret(presented: &str, secret: &str) -> bool {
    presented.len() == secret.len()
        && presented
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn with(name: hyper::header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn token_codes_and_sessions() {
        let access = Access::new("s3cret".to_owned());
        assert!(access.allows(&with(AUTHORIZATION, "Bearer s3cret")));
        assert!(!access.allows(&with(AUTHORIZATION, "Bearer s3cre")));
        assert!(!access.allows(&HeaderMap::new()));
        let code = access.new_login_code().unwrap();
        let id = access.log_in(&code).unwrap();
        assert!(access.log_in(&code).is_none(), "a code is spent once");
        let cookie = format!("other=1; {SESSION_COOKIE}={id}");
        assert!(access.allows(&with(COOKIE, &cookie)));
        assert!(!access.allows(&with(COOKIE, &format!("{SESSION_COOKIE}=nope"))));
        assert!(access.log_in("not-a-code").is_none());
    }

    #[test]
    fn held_entries_are_bounded() {
        let access = Access::new("t".to_owned());
        for _ in 0..200 {
            access.new_login_code().unwrap();
        }
        assert_eq!(lock(&access.codes).len(), MAX_HELD);
    }

    #[test]
    fn the_token_file_is_private_and_replaces_a_link() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        let path = dir.path().join("admin.token");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write_token_file(&path, "abc").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abc\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
