//! `ClientAccess`: which client addresses an HTTP handler answers (nginx's `allow`/`deny`,
//! Caddy's `remote_ip`). Decided once per connection, from its client address: a refused
//! client gets `403 Forbidden` to every request, and its requests never reach the handler.

use std::net::IpAddr;

use crate::cidr::Cidr;

/// Client address rules: refused if in `deny`, or if `allow` is not empty and the address is
/// in none of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientAccess {
    /// Only these blocks are answered (empty: every address).
    pub allow: Vec<Cidr>,
    /// These blocks are refused, whatever `allow` says.
    pub deny: Vec<Cidr>,
}

impl ClientAccess {
    /// Rules from `allow` and `deny` blocks.
    pub fn new(allow: Vec<Cidr>, deny: Vec<Cidr>) -> Self {
        Self { allow, deny }
    }

    /// Whether there is no rule.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether a client at `addr` is answered.
    pub fn admits(&self, addr: IpAddr) -> bool {
        let allowed = self.allow.is_empty() || self.allow.iter().any(|c| c.contains(addr));
        allowed && !self.deny.iter().any(|c| c.contains(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(texts: &[&str]) -> Vec<Cidr> {
        texts
            .iter()
            .map(|t| t.parse().unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    #[test]
    fn deny_wins_and_allow_narrows() {
        let ip = |t: &str| t.parse::<IpAddr>().unwrap_or_else(|e| panic!("{e}"));
        let rules = ClientAccess::new(blocks(&["10.0.0.0/8"]), blocks(&["10.9.0.0/16"]));
        assert!(rules.admits(ip("10.1.2.3")));
        assert!(!rules.admits(ip("10.9.2.3")));
        assert!(!rules.admits(ip("192.0.2.1")));
        assert!(
            rules.admits(ip("::ffff:10.1.2.3")),
            "IPv4-mapped counts as IPv4"
        );
        let open = ClientAccess::default();
        assert!(open.is_open() && open.admits(ip("2001:db8::1")));
        let closed = ClientAccess::new(Vec::new(), blocks(&["0.0.0.0/0", "::/0"]));
        assert!(!closed.admits(ip("127.0.0.1")) && !closed.admits(ip("::1")));
    }
}
