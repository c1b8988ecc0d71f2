//! `trusted_proxies`: the client addresses whose forwarded headers a proxy passes on (as
//! nginx's `set_real_ip_from` and Caddy's `trusted_proxies`), as CIDR blocks.

use std::net::IpAddr;
use std::str::FromStr;

pub use crate::cidr::Cidr;

/// The proxies trusted to say who the client is; none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Trusts `blocks`.
    pub fn new(blocks: Vec<Cidr>) -> Self {
        Self(blocks)
    }

    /// Whether a connection from `addr` may speak for its client.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(addr))
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// Comma-separated blocks.
    fn from_str(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(|block| block.trim().parse())
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_contain_what_they_should() {
        let v4: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(v4.contains(ip("10.1.200.3")));
        assert!(!v4.contains(ip("10.2.0.1")));
        assert!(v4.contains(ip("::ffff:10.1.2.3")));
        assert!(!v4.contains(ip("fd00::1")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert_eq!(v6.to_string(), "fd00::/8");
        for bad in ["10.0.0.0/33", "fd00::/129", "nope", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
