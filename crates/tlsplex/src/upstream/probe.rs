//! The HTTP health check: `GET path` on a fresh backend connection, its status compared with
//! what is expected (HAProxy's `option httpchk` with `http-check expect status`, Caddy's
//! `health_uri` with `health_status`). Reads at most [`MAX_STATUS_LINE`] bytes, within the
//! check's timeout (the caller's).

use std::fmt;
use std::str::FromStr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::backend::{Backend, BackendStream};

/// The most of the answer a probe reads to find its status line.
const MAX_STATUS_LINE: usize = 1024;

/// An HTTP check: which path, and which statuses mean healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpProbe {
    /// The request target, starting with `/`.
    pub path: String,
    /// The statuses that pass.
    pub expect: ExpectedStatus,
}

impl HttpProbe {
    /// `GET path`, passing on `expect`.
    pub fn new(path: impl Into<String>, expect: ExpectedStatus) -> Self {
        Self {
            path: path.into(),
            expect,
        }
    }

    /// Sends the request on `stream` (a connection to `backend`) and judges the answer.
    pub(crate) async fn run(
        &self,
        mut stream: BackendStream,
        backend: &Backend,
    ) -> Result<(), String> {
        let host = match backend {
            Backend::Tcp(address) => address.as_str(),
            Backend::Unix(_) => "localhost",
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tlsplex-health-check\r\nConnection: close\r\n\r\n",
            self.path
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("cannot send the check: {e}"))?;
        let mut answer = Vec::new();
        let mut buffer = [0u8; 256];
        while !answer.contains(&b'\n') && answer.len() < MAX_STATUS_LINE {
            let n = stream
                .read(&mut buffer)
                .await
                .map_err(|e| format!("no answer to the check: {e}"))?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
        }
        let line = String::from_utf8_lossy(&answer);
        let status = line
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.get(2..5))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| "the answer to the check is not HTTP".to_owned())?;
        if self.expect.contains(status) {
            Ok(())
        } else {
            Err(format!(
                "GET {} answered {status}, expected {}",
                self.path, self.expect
            ))
        }
    }
}

/// Statuses a check accepts: a class (`2xx`), one status (`204`) or a range (`200-399`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedStatus {
    low: u16,
    high: u16,
}

impl ExpectedStatus {
    /// Whether `status` passes.
    pub fn contains(&self, status: u16) -> bool {
        (self.low..=self.high).contains(&status)
    }
}

impl Default for ExpectedStatus {
    /// `2xx`.
    fn default() -> Self {
        Self {
            low: 200,
            high: 299,
        }
    }
}

impl FromStr for ExpectedStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let status = |t: &str| t.parse::<u16>().ok().filter(|s| (100..=599).contains(s));
        let parsed = if let Some(class) = text.strip_suffix("xx") {
            status(&format!("{class}00")).map(|low| (low, low + 99))
        } else if let Some((low, high)) = text.split_once('-') {
            status(low).zip(status(high)).filter(|(l, h)| l <= h)
        } else {
            status(text).map(|s| (s, s))
        };
        parsed
            .map(|(low, high)| Self { low, high })
            .ok_or_else(|| format!("{text:?} is not a status: use \"2xx\", \"204\" or \"200-399\""))
    }
}

impl fmt::Display for ExpectedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else if self.low % 100 == 0 && self.high == self.low + 99 {
            write!(f, "{}xx", self.low / 100)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_statuses() {
        let class: ExpectedStatus = "2xx".parse().unwrap();
        assert!(class.contains(204) && !class.contains(301));
        assert_eq!(class.to_string(), "2xx");
        let one: ExpectedStatus = "204".parse().unwrap();
        assert!(one.contains(204) && !one.contains(200));
        let range: ExpectedStatus = "200-399".parse().unwrap();
        assert!(range.contains(302) && !range.contains(404));
        for bad in ["6xx", "99", "300-200", "ok", ""] {
            assert!(bad.parse::<ExpectedStatus>().is_err(), "{bad}");
        }
    }
}
