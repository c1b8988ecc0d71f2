//! The commented example config in `examples/tlsplex.toml` stays valid.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use std::path::Path;

use tlsplex::config::Config;
use tlsplex_testkit::TestPki;

#[test]
fn the_example_config_loads_once_its_certificates_exist() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tlsplex.toml");
    let pki = TestPki::new();
    let certs = pki.dir().join("certs");
    std::fs::create_dir(&certs).unwrap();
    for (stem, name) in [
        ("web", "web.example.test"),
        ("api", "api.example.test"),
        ("admin", "admin.example.test"),
    ] {
        let cert = pki.issue(stem, &[name]);
        std::fs::copy(&cert.cert_path, certs.join(format!("{stem}.pem"))).unwrap();
        std::fs::copy(&cert.key_path, certs.join(format!("{stem}.key"))).unwrap();
    }
    let copy = pki.dir().join("tlsplex.toml");
    std::fs::copy(example, &copy).unwrap();

    let config = Config::load(&copy).unwrap();
    let names: Vec<_> = config.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["web", "admin-tls"]);
    assert_eq!(config.servers[0].certs.identities().len(), 2);
    assert!(config.servers[0].tls.strict_sni);
    assert_eq!(config.servers[1].tls.alpn, ["http/1.1"]);
    assert_eq!(config.servers[1].tls.versions.len(), 1);
    assert_eq!(config.servers[1].tls.cipher_suites.len(), 2);
}
