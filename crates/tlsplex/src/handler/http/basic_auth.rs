//! HTTP basic auth (`access = { basic_auth = "htpasswd" }`): nginx's `auth_basic_user_file`,
//! Caddy's `basic_auth`. Users and bcrypt hashes come from a file as `htpasswd -B` writes it;
//! any other format (plain text, MD5 `$apr1$`, SHA-1 `{SHA}`, crypt) is refused at load.
//!
//! A bcrypt check costs milliseconds of CPU by design, so: checks run on the blocking pool, at
//! most one per core at a time (a flood of wrong passwords queues there, it never stalls the
//! serving threads); a correct user and password is remembered (a keyed digest of them, at
//! most [`MAX_REMEMBERED`], forgotten on reload) so a browser's every request does not pay
//! again; an unknown user costs the same check as a known one, so timing does not tell
//! which users exist.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::digest;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use tokio::sync::Semaphore;

/// Correct logins remembered, at most; the set starts over when full.
pub const MAX_REMEMBERED: usize = 1024;

/// The highest bcrypt cost accepted: each check at cost 14 is about a second of CPU.
pub const MAX_BCRYPT_COST: u32 = 14;

/// Why a password file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BasicAuthError {
    /// It could not be read.
    #[error("cannot read {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A line is not `user:bcrypt-hash`.
    #[error("line {line}: {message}")]
    Line {
        /// From 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// No user at all.
    #[error("no user in it: add one with htpasswd -B")]
    Empty,
    /// The realm cannot be put in a header.
    #[error("realm {0:?}: use printable characters other than \" and \\")]
    Realm(String),
}

/// Users and their bcrypt hashes; see the module docs.
#[derive(Clone)]
pub struct BasicAuth(Arc<Users>);

struct Users {
    hashes: HashMap<String, String>,
    /// `WWW-Authenticate` of a 401.
    challenge: HeaderValue,
    /// Checked when the user is unknown, so that costs what a known one does.
    decoy: String,
    /// Digests of correct logins, keyed by `key`.
    remembered: Mutex<HashSet<[u8; 32]>>,
    key: [u8; 32],
    checks: Arc<Semaphore>,
}

/// What a request's credentials come to.
pub(crate) enum Verdict {
    Allowed,
    Refused,
    /// Not known yet: a bcrypt check to run.
    Check(Pin<Box<dyn Future<Output = bool> + Send>>),
}

impl BasicAuth {
    /// The users of the htpasswd file at `path` (at most a material file's size), asked for
    /// under `realm`.
    pub fn from_file(path: &Path, realm: &str) -> Result<Self, BasicAuthError> {
        let text = crate::files::read_text(path, crate::files::MAX_MATERIAL_FILE).map_err(|e| {
            BasicAuthError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            }
        })?;
        Self::from_htpasswd(&text, realm)
    }

    /// The users of an htpasswd file's text: `user:hash` lines, `#` comments and blank lines.
    pub fn from_htpasswd(text: &str, realm: &str) -> Result<Self, BasicAuthError> {
        let challenge = (realm.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            && !realm.contains(['"', '\\']))
        .then(|| HeaderValue::from_str(&format!("Basic realm=\"{realm}\", charset=\"UTF-8\"")).ok())
        .flatten()
        .ok_or_else(|| BasicAuthError::Realm(realm.to_owned()))?;
        let mut hashes = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail = |message: String| BasicAuthError::Line {
                line: i + 1,
                message,
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| fail("not user:hash".to_owned()))?;
            bcrypt_cost(hash).map_err(|m| fail(format!("user {user:?}: {m}")))?;
            if hashes.insert(user.to_owned(), hash.to_owned()).is_some() {
                return Err(fail(format!("user {user:?} is already in the file")));
            }
        }
        let decoy = hashes
            .values()
            .next()
            .cloned()
            .ok_or(BasicAuthError::Empty)?;
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| BasicAuthError::Empty)?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Self(Arc::new(Users {
            hashes,
            challenge,
            decoy,
            remembered: Mutex::new(HashSet::new()),
            key,
            checks: Arc::new(Semaphore::new(cores)),
        })))
    }

    /// How many users it has.
    pub fn users(&self) -> usize {
        self.0.hashes.len()
    }

    /// `WWW-Authenticate` for a 401.
    pub(crate) fn challenge(&self) -> &HeaderValue {
        &self.0.challenge
    }

    /// What the request's `Authorization` comes to.
    pub(crate) fn verdict(&self, headers: &HeaderMap) -> Verdict {
        let Some((user, password)) = credentials(headers) else {
            return Verdict::Refused;
        };
        let users = &self.0;
        let digest = users.digest(&user, &password);
        let remembered = users
            .remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if remembered.contains(&digest) {
            return Verdict::Allowed;
        }
        drop(remembered);
        let known = users.hashes.get(&user);
        let hash = known.unwrap_or(&users.decoy).clone();
        let known = known.is_some();
        let users = self.0.clone();
        Verdict::Check(Box::pin(async move {
            let Ok(_permit) = users.checks.clone().acquire_owned().await else {
                return false;
            };
            let check = move || bcrypt::verify(password, &hash).unwrap_or(false);
            let correct = tokio::task::spawn_blocking(check).await.unwrap_or(false) && known;
            if correct {
                let mut remembered =
                    (users.remembered.lock()).unwrap_or_else(PoisonError::into_inner);
                if remembered.len() >= MAX_REMEMBERED {
                    remembered.clear();
                }
                remembered.insert(digest);
            }
            correct
        }))
    }
}

impl Users {
    fn digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(&self.key);
        context.update(user.as_bytes());
        context.update(&[0]);
        context.update(password.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(context.finish().as_ref());
        out
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the hashes.
        f.debug_struct("BasicAuth")
            .field("users", &self.0.hashes.len())
            .finish_non_exhaustive()
    }
}

/// The user and password of `Authorization: Basic …`.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The cost of a bcrypt hash (`$2y$05$…`, also `$2a$` and `$2b$`), or why it is not one.
fn bcrypt_cost(hash: &str) -> Result<u32, String> {
    let unknown = || {
        let kind = if hash.starts_with("$apr1$") {
            "an MD5 ($apr1$) hash"
        } else if hash.starts_with("{SHA}") {
            "a SHA-1 ({SHA}) hash"
        } else if hash.starts_with('$') {
            "a hash of an unknown kind"
        } else {
            "not a hash (plain text or crypt)"
        };
        format!("{kind}: only bcrypt hashes are accepted (htpasswd -B)")
    };
    let mut parts = hash.split('$');
    let (Some(""), Some(version), Some(cost), Some(rest), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(unknown());
    };
    if !matches!(version, "2a" | "2b" | "2y") || rest.len() != 53 {
        return Err(unknown());
    }
    let cost: u32 = cost.parse().map_err(|_| unknown())?;
    if !(4..=MAX_BCRYPT_COST).contains(&cost) {
        return Err(format!(
            "bcrypt cost {cost}: use 4 to {MAX_BCRYPT_COST} (each check at 14 is about a second of CPU)"
        ));
    }
    Ok(cost)
}

/// A service whose requests need the user and password `auth` knows: `401` with a challenge
/// otherwise. `Authorization` is not passed on: the password was for tlsplex.
pub(super) struct Authenticated<S> {
    inner: Arc<S>,
    auth: BasicAuth,
}

impl<S> Authenticated<S> {
    pub(super) fn new(inner: S, auth: BasicAuth) -> Self {
        Self {
            inner: Arc::new(inner),
            auth,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type AuthenticatedFuture<B> =
    Pin<Box<dyn Future<Output = Result<Response<Either<B, Full<Bytes>>>, BoxError>> + Send>>;

impl<S, B> hyper::service::Service<Request<Incoming>> for Authenticated<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<Either<B, Full<Bytes>>>;
    type Error = BoxError;
    type Future = AuthenticatedFuture<B>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let verdict = self.auth.verdict(request.headers());
        request.headers_mut().remove(AUTHORIZATION);
        match verdict {
            Verdict::Allowed => {
                let answer = self.inner.call(request);
                Box::pin(async move { Ok(answer.await.map_err(Into::into)?.map(Either::Left)) })
            }
            Verdict::Refused => {
                let refusal = unauthorized(&self.auth).map(Either::Right);
                Box::pin(std::future::ready(Ok(refusal)))
            }
            Verdict::Check(check) => {
                let (inner, auth) = (self.inner.clone(), self.auth.clone());
                Box::pin(async move {
                    if check.await {
                        let answer = inner.call(request).await.map_err(Into::into)?;
                        Ok(answer.map(Either::Left))
                    } else {
                        Ok(unauthorized(&auth).map(Either::Right))
                    }
                })
            }
        }
    }
}

/// `401` with the challenge and a line of text.
pub(crate) fn unauthorized(auth: &BasicAuth) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(
        b"401 Unauthorized: this needs a user and password\n",
    )));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    headers.insert(WWW_AUTHENTICATE, auth.challenge().clone());
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `htpasswd -nbB -C 4 alice secret`.
    const ALICE: &str = "alice:$2y$04$uNguyCNK3KuS90Cp./.3pesfXRoTXtIgN5Z6EHxnyTwpnZR79IxOG";

    fn basic(user: &str, password: &str) -> HeaderMap {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut headers = HeaderMap::new();
        let value =
            HeaderValue::from_str(&format!("Basic {token}")).unwrap_or_else(|e| panic!("{e}"));
        headers.insert(AUTHORIZATION, value);
        headers
    }

    async fn passes(auth: &BasicAuth, headers: &HeaderMap) -> bool {
        match auth.verdict(headers) {
            Verdict::Allowed => true,
            Verdict::Refused => false,
            Verdict::Check(check) => check.await,
        }
    }

    #[tokio::test]
    async fn bcrypt_users_pass_and_are_remembered() {
        let auth = BasicAuth::from_htpasswd(&format!("# staff\n\n{ALICE}\n"), "staff")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(auth.users(), 1);
        assert!(passes(&auth, &basic("alice", "secret")).await);
        assert!(matches!(
            auth.verdict(&basic("alice", "secret")),
            Verdict::Allowed
        ));
        assert!(!passes(&auth, &basic("alice", "wrong")).await);
        assert!(
            !passes(&auth, &basic("bob", "secret")).await,
            "unknown user, the decoy's password"
        );
        assert!(!passes(&auth, &HeaderMap::new()).await);
        assert_eq!(auth.challenge(), "Basic realm=\"staff\", charset=\"UTF-8\"");
    }

    #[test]
    fn other_formats_are_refused_with_their_line() {
        for (line, expected) in [
            (
                "bob:secret",
                "line 2: user \"bob\": not a hash (plain text or crypt)",
            ),
            (
                "bob:$apr1$abc$def",
                "line 2: user \"bob\": an MD5 ($apr1$) hash",
            ),
            (
                "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
                "line 2: user \"bob\": a SHA-1 ({SHA}) hash",
            ),
            ("bob", "line 2: not user:hash"),
            (
                "alice:$2y$04$uNguyCNK3KuS90Cp./.3pesfXRoTXtIgN5Z6EHxnyTwpnZR79IxOG",
                "line 2: user \"alice\" is already in the file",
            ),
            (
                "bob:$2y$31$uNguyCNK3KuS90Cp./.3pesfXRoTXtIgN5Z6EHxnyTwpnZR79IxOG",
                "line 2: user \"bob\": bcrypt cost 31",
            ),
        ] {
            let text = format!("{ALICE}\n{line}\n");
            let error = BasicAuth::from_htpasswd(&text, "r")
                .err()
                .map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.starts_with(expected)),
                "{line}: {error:?}"
            );
        }
        assert!(matches!(
            BasicAuth::from_htpasswd("# none\n", "r"),
            Err(BasicAuthError::Empty)
        ));
        assert!(matches!(
            BasicAuth::from_htpasswd(ALICE, "a\"b"),
            Err(BasicAuthError::Realm(_))
        ));
    }
}
