//! One server, several certificates, chosen by SNI (exact names, then one-label wildcards).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

use tlsplex::{CertStore, Context, ServerOptions};
use tlsplex_testkit::{any_port, get, start, TestPki};

#[tokio::test]
async fn each_name_gets_its_own_certificate_and_unknown_names_the_default() {
    let pki = TestPki::new();
    let default = pki.issue("default", &["default.test"]);
    let a = pki.issue("a", &["a.test"]);
    let b = pki.issue("b", &["b.test", "B-alias.test"]);
    let wild = pki.issue("wild", &["*.w.test"]);
    let store = CertStore::new(
        default.identity(),
        vec![a.identity(), b.identity(), wild.identity()],
    );
    let ctx = Context::builder().build();
    let addr = start(&ctx, ServerOptions::new("multi", any_port(), store));
    let client = pki.client(&[]);

    let cases = [
        ("a.test", &a),
        ("b.test", &b),
        ("b-alias.test", &b),
        ("x.w.test", &wild),
        ("default.test", &default),
    ];
    for (name, expected) in cases {
        let (_, presented) = get(addr, name, "/", client.clone()).await.unwrap();
        assert_eq!(presented, expected.cert_der, "certificate for {name}");
    }
    // Not covered by any certificate: the default is presented (and fails verification here).
    let error = get(addr, "unknown.test", "/", client).await.unwrap_err();
    assert!(error.to_string().contains("certificate"), "{error}");
}
