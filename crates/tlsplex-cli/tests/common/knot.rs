//! Knot DNS (Debian's `knot`), the authoritative server of the DNS-01 tests: started on a
//! loopback port with a TSIG key it is given, its zones taking updates signed with that key or
//! refusing every update.
#![allow(dead_code)] // each DNS test uses its own part of this

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::common::{free_port, Daemon};

/// The TSIG key name the zones know.
pub const KEY_NAME: &str = "acme-key";

pub struct Knot {
    _daemon: Daemon,
    pub addr: SocketAddr,
    /// The key's secret, base64.
    pub secret: String,
}

/// `knotd`, also where root's PATH has it but a user's may not; `None` (a skip, or a failure
/// under CI=true) when it is not installed.
pub fn knotd() -> Option<String> {
    if Path::new("/usr/sbin/knotd").exists() {
        return Some("/usr/sbin/knotd".to_owned());
    }
    tlsplex_testkit::available("knotd").then(|| "knotd".to_owned())
}

impl Knot {
    /// Starts `knotd` serving `zones`: (name, whether key [`KEY_NAME`] may update it).
    pub fn start(knotd: &str, dir: &Path, zones: &[(&str, bool)]) -> Self {
        let dir = dir.join("knot");
        for sub in ["db", "run", "zones"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let secret = random_secret();
        let port = free_port();
        let mut config = format!(
            "server:\n    rundir: \"{run}\"\n    listen: 127.0.0.1@{port}\n\
             database:\n    storage: \"{db}\"\n\
             key:\n  - id: {KEY_NAME}\n    algorithm: hmac-sha256\n    secret: {secret}\n\
             acl:\n  - id: acme\n    key: {KEY_NAME}\n    action: update\n\
             template:\n  - id: default\n    storage: \"{zones}\"\n    file: \"%s.zone\"\n    zonefile-sync: -1\n    journal-content: none\n\
             zone:\n",
            run = dir.join("run").display(),
            db = dir.join("db").display(),
            zones = dir.join("zones").display(),
        );
        for (zone, updatable) in zones {
            config.push_str(&format!("  - domain: {zone}\n"));
            if *updatable {
                config.push_str("    acl: acme\n");
            }
            std::fs::write(
                dir.join("zones").join(format!("{zone}.zone")),
                format!(
                    "$ORIGIN {zone}.\n$TTL 60\n@ SOA ns.{zone}. hostmaster.{zone}. 1 3600 900 604800 60\n@ NS ns.{zone}.\nns A 127.0.0.1\n"
                ),
            )
            .unwrap();
        }
        let conf = dir.join("knot.conf");
        std::fs::write(&conf, config).unwrap();
        let mut daemon = Daemon::start_program(knotd, &["-c", conf.to_str().unwrap()], &[]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        daemon.wait_listening(&[addr]);
        Self {
            _daemon: daemon,
            addr,
            secret,
        }
    }

    /// The TXT values the server answers for `name`, by `kdig`.
    pub fn txt(&self, name: &str) -> Vec<String> {
        txt_at(self.addr, name)
    }
}

/// The TXT values `server` answers for `name`, by `kdig` (Knot's dig).
pub fn txt_at(server: SocketAddr, name: &str) -> Vec<String> {
    let out = Command::new("kdig")
        .arg(format!("@{}", server.ip()))
        .args([
            "-p",
            &server.port().to_string(),
            "+short",
            "+tcp",
            name,
            "TXT",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| line.trim_matches('"').to_owned())
        .filter(|line| !line.is_empty())
        .collect()
}

/// A fresh 256-bit TSIG secret, base64 (as `tsig-keygen` makes).
pub fn random_secret() -> String {
    let out = Command::new("openssl")
        .args(["rand", "-base64", "32"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
