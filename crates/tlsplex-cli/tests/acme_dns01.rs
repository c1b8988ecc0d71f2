//! ACME DNS-01 against Pebble resolving through a real authoritative server: Knot DNS taking
//! RFC 2136 updates signed with a TSIG key the test generates (a wildcard and its apex issued,
//! served, the records gone afterwards; a zone that refuses updates and a wrong key fail
//! cleanly while the old certificate serves), and a hook command publishing through
//! pebble-challtestsrv's API (issued; then hooks that hang, fail, print megabytes or publish
//! nothing: each a clear failure, retried with backoff, the process untouched).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;
#[path = "common/knot.rs"]
mod knot;
#[path = "common/pebble.rs"]
mod pebble;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{available, free_port, Daemon};
use knot::{knotd, Knot, KEY_NAME};
use pebble::{client, leaf, try_leaf, Pebble, ISSUED};
use tlsplex_testkit::TestPki;

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Stores a certificate from the test CA where the ACME storage keeps `names`' certificate:
/// it serves until an order replaces it (it lacks `names[1..]`, so one is due at once).
fn place_old(pki: &TestPki, storage: &Path, names: &[&str]) -> Vec<u8> {
    let folder = storage
        .join("certificates")
        .join(names[0].replace('*', "_"));
    std::fs::create_dir_all(&folder).unwrap();
    let old = pki.issue(&format!("old-{}", names[0].replace('*', "_")), &names[..1]);
    std::fs::copy(&old.cert_path, folder.join("cert.pem")).unwrap();
    std::fs::copy(&old.key_path, folder.join("key.pem")).unwrap();
    old.cert_der.to_vec()
}

/// `[acme]` for `pebble` by DNS-01, keeping its state in `storage`, with `dns01` as the keys of
/// `[acme.dns01]`.
fn acme_table(pebble: &Pebble, pki: &TestPki, storage: &Path, dns01: &str) -> String {
    format!(
        "[acme]\ndirectory = \"{}\"\ndirectory_ca = \"{}\"\nstorage = \"{}\"\n\
         challenge = \"dns-01\"\n\n[acme.dns01]\n{dns01}",
        pebble.directory,
        pki.ca_file().display(),
        storage.display(),
    )
}

/// A server per entry of `servers` (name, port, ACME names), under `acme`.
fn config(dir: &Path, admin: u16, acme: &str, servers: &[(&str, u16, &[&str])]) -> PathBuf {
    let mut text = format!("[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n{acme}\n");
    for (name, port, names) in servers {
        let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        text.push_str(&format!(
            "[[server]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\ncertificates = [{{ acme = [{}] }}]\n\n",
            names.join(", ")
        ));
    }
    let path = dir.join("tlsplex.toml");
    std::fs::write(&path, text).unwrap();
    common::admin::register(admin, &dir.join("admin.token"));
    path
}

/// The managed certificate whose first name is `first`, from the admin API (`Null` until the
/// ACME manager's first look at it, which follows the start by a moment).
fn managed(admin: u16, first: &str) -> serde_json::Value {
    let (status, body) = common::admin::http(admin, "GET", "/api/acme", None);
    assert_eq!(status, 200, "{body}");
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|m| m["names"][0] == first)
        .cloned()
        .unwrap_or_default()
}

/// Waits until the managed certificate `first` fails at `step`; its last error.
fn wait_failed(admin: u16, first: &str, step: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let state = managed(admin, first);
        if state["failed_step"] == step {
            assert_eq!(state["state"], "failing", "{state}");
            assert_eq!(state["challenge"], "dns-01", "{state}");
            return state["last_error"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{first} never failed at {step}: {state}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn rfc2136_with_tsig_issues_a_wildcard_and_its_apex_and_removes_the_records() {
    let Some(knotd) = knotd() else { return };
    if !available("pebble") || !available("kdig") {
        return;
    }
    let pki = TestPki::new();
    let dir = pki.dir().to_owned();
    let knot = Knot::start(
        &knotd,
        &dir,
        &[("example.test", true), ("locked.test", false)],
    );
    let mut pebble = Pebble::new(&dir, &pki, free_port(), 3600);
    pebble.resolve_with(knot.addr);
    pebble.start();
    let key_file = dir.join("acme.tsig");
    // The file `tsig-keygen` writes (BIND's syntax); the secret is never logged.
    write_private(
        &key_file,
        &format!(
            "key \"{KEY_NAME}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{}\";\n}};\n",
            knot.secret
        ),
    );
    let storage = dir.join("acme");
    let dns01 = format!(
        "rfc2136 = {{ server = \"{}\", key_name = \"{KEY_NAME}\", key_file = \"{}\" }}\n\
         propagation_interval = \"200ms\"\npropagation_timeout = \"20s\"\n",
        knot.addr,
        key_file.display(),
    );
    let acme = acme_table(&pebble, &pki, &storage, &dns01);
    let (site, locked, admin) = (free_port(), free_port(), free_port());
    let old_locked = place_old(&pki, &storage, &["locked.test", "www.locked.test"]);
    let config = config(
        &dir,
        admin,
        &acme,
        &[
            ("site", site, &["*.example.test", "example.test"]),
            ("locked", locked, &["locked.test", "www.locked.test"]),
        ],
    );
    let config = config.to_str().unwrap();

    let check = common::tlsplex(&["check", "-c", config]);
    let listed = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{check:?}");
    assert!(
        listed.contains("acme *.example.test, example.test") && listed.contains("dns-01"),
        "check names each entry's challenge:\n{listed}"
    );

    let mut daemon = Daemon::start(&["run", "-c", config, "--log-format", "json"]);
    daemon.wait_listening(&[SocketAddr::from(([127, 0, 0, 1], site))]);
    let mut log = Vec::new();
    let issued = daemon.wait_log_keeping(ISSUED, Duration::from_secs(60), &mut log);
    assert!(issued, "{}", log.join("\n"));

    // Served for any name under the wildcard and for the apex, chaining to Pebble's root.
    let verify = client(pebble.root(&pki.ca_file()));
    let deadline = Instant::now() + Duration::from_secs(15);
    while try_leaf(site, "example.test", &verify).is_err() {
        assert!(Instant::now() < deadline, "the apex is never served");
        std::thread::sleep(Duration::from_millis(100));
    }
    let apex = leaf(site, "example.test", &verify);
    assert_eq!(leaf(site, "a.example.test", &verify), apex);
    assert_eq!(leaf(site, "www.example.test", &verify), apex);
    // The records are gone from the zone, both values of the shared name.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !knot.txt("_acme-challenge.example.test").is_empty() {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            knot.txt("_acme-challenge.example.test")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = log.join("\n");
    assert!(
        text.contains("DNS-01 record published") && text.contains("answered by the zone's servers"),
        "{text}"
    );

    // A zone that takes no update: a clear failure naming the step, retried with backoff; the
    // old certificate still serves and the other server is untouched.
    let error = wait_failed(admin, "locked.test", "present", Duration::from_secs(20));
    // Knot says BADKEY for a zone whose ACL does not name the key (BIND: REFUSED).
    assert!(
        error.contains("refused the update to locked.test")
            && (error.contains("BADKEY") || error.contains("REFUSED")),
        "{error}"
    );
    let mut more = Vec::new();
    for retry in ["\"retry_in_s\":2", "\"retry_in_s\":4"] {
        let failed = daemon.wait_log_keeping(retry, Duration::from_secs(20), &mut more);
        assert!(failed, "backoff {retry}:\n{}", more.join("\n"));
    }
    let anyone = pki.client(&["http/1.1"]);
    assert_eq!(leaf(locked, "locked.test", &anyone), old_locked);
    assert_eq!(leaf(site, "a.example.test", &verify), apex);
    let (_, metrics) = common::admin::http(admin, "GET", "/metrics", None);
    assert!(
        metrics.contains(
            r#"tlsplex_acme_orders_total{challenge="dns-01",result="ok",failed_step=""} 1"#
        ) && metrics.contains(
            r#"tlsplex_acme_orders_total{challenge="dns-01",result="failed",failed_step="present"}"#
        ),
        "{metrics}"
    );
    // ctl and the dashboard show each entry's challenge and the step that failed.
    let table = common::tlsplex(&["ctl", "-c", config, "acme"]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("CHALLENGE")
            && table.lines().any(|l| {
                l.starts_with("locked.test") && l.contains("dns-01") && l.contains("present")
            }),
        "{table}"
    );
    if available("chromium") {
        let dom = common::admin::dashboard_dom(admin);
        assert!(
            dom.contains("<td class=\"failing\">failing</td><td>dns-01</td>")
                && dom.contains("<td>present</td>"),
            "the dashboard:\n{dom}"
        );
    }
    let all = log.join("\n") + &more.join("\n") + &daemon.stderr_text();
    assert!(
        !all.contains(&knot.secret),
        "the TSIG secret is never logged"
    );

    // The same zone with a key the server does not know: refused, named, nothing changes.
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
    let wrong = dir.join("wrong.tsig");
    write_private(&wrong, &knot::random_secret());
    // Names never validated by this account (Pebble reuses valid authorizations, as CAs do).
    let text = std::fs::read_to_string(config).unwrap();
    let text = text
        .replace(
            &key_file.display().to_string(),
            &wrong.display().to_string(),
        )
        .replace(
            "\"*.example.test\", \"example.test\"",
            "\"*.new.example.test\", \"new.example.test\"",
        );
    std::fs::write(config, text).unwrap();
    // A certificate that lacks a name is due at once: the order runs with the wrong key.
    let old_site = place_old(&pki, &storage, &["*.new.example.test", "new.example.test"]);
    let mut daemon = Daemon::start(&["run", "-c", config, "--log-format", "json"]);
    daemon.wait_listening(&[SocketAddr::from(([127, 0, 0, 1], site))]);
    let error = wait_failed(
        admin,
        "*.new.example.test",
        "present",
        Duration::from_secs(20),
    );
    assert!(
        error.contains("BADSIG") && error.contains(&format!("key {KEY_NAME}'s secret")),
        "{error}"
    );
    assert_eq!(leaf(site, "a.new.example.test", &anyone), old_site);
    assert!(knot.txt("_acme-challenge.new.example.test").is_empty());
}

#[test]
fn a_hook_publishes_through_a_providers_api_and_bad_hooks_fail_cleanly() {
    if !available("pebble") || !available("pebble-challtestsrv") || !available("curl") {
        return;
    }
    let pki = TestPki::new();
    let dir = pki.dir().to_owned();
    let mut pebble = Pebble::new(&dir, &pki, free_port(), 3600);
    pebble.start();
    // A provider's hook: pebble-challtestsrv's HTTP API stands for the provider's. Names
    // choose a misbehaviour.
    let calls = dir.join("hook-calls.log");
    let hook = dir.join("dns-hook");
    std::fs::write(
        &hook,
        format!(
            r#"#!/bin/sh
set -eu
echo "$1 $2 $3" >> {calls}
case "$2" in
  *hang*) sleep 117 ;;
  *fail*) echo "provider: no zone for $2" >&2; exit 3 ;;
  *loud*) head -c 5000000 /dev/zero | tr '\0' 'x'; exit 1 ;;
  *silent*) exit 0 ;;
esac
case "$1" in
  present) curl -sS -d "{{\"host\":\"$2\",\"value\":\"$3\"}}" {api}/set-txt ;;
  cleanup) curl -sS -d "{{\"host\":\"$2\"}}" {api}/clear-txt ;;
esac
"#,
            calls = calls.display(),
            api = pebble.challtestsrv_management(),
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let storage = dir.join("acme");
    let dns01 = format!(
        "hook = {{ command = [\"{}\"], timeout = \"2s\" }}\ncheck_servers = [\"{}\"]\n\
         propagation_interval = \"200ms\"\npropagation_timeout = \"3s\"\n",
        hook.display(),
        pebble.challtestsrv_dns(),
    );
    let acme = acme_table(&pebble, &pki, &storage, &dns01);
    let admin = free_port();
    let bad = ["hang", "fail", "loud", "silent"];
    let ports: Vec<u16> = (0..=bad.len()).map(|_| free_port()).collect();
    let names: Vec<[String; 2]> = bad
        .iter()
        .map(|b| [format!("{b}.test"), format!("www.{b}.test")])
        .collect();
    let name_refs: Vec<[&str; 2]> = names
        .iter()
        .map(|[a, b]| [a.as_str(), b.as_str()])
        .collect();
    let mut servers: Vec<(&str, u16, &[&str])> =
        vec![("site", ports[0], &["*.hook.test", "hook.test"])];
    let mut old = Vec::new();
    for (i, b) in bad.iter().enumerate() {
        servers.push((b, ports[i + 1], &name_refs[i]));
        old.push(place_old(&pki, &storage, &name_refs[i]));
    }
    let config = config(&dir, admin, &acme, &servers);
    let config = config.to_str().unwrap();
    // Pebble 2.4's directory lists no certificate profile: check refuses one, naming it.
    let profiled = dir.join("profiled.toml");
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(
        &profiled,
        text.replacen("[acme]\n", "[acme]\nprofile = \"shortlived\"\n", 1),
    )
    .unwrap();
    let check = common::tlsplex(&["check", "-c", profiled.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(
        !check.status.success()
            && said.contains("profile \"shortlived\" is not offered by")
            && said.contains("(it offers: no profiles)"),
        "{check:?}"
    );
    let listed = String::from_utf8_lossy(&check.stdout);
    assert!(listed.contains("dns-01, profile shortlived"), "{listed}");

    let mut daemon = Daemon::start(&["run", "-c", config, "--log-format", "json"]);
    daemon.wait_listening(&[SocketAddr::from(([127, 0, 0, 1], ports[0]))]);

    let mut log = Vec::new();
    let issued = daemon.wait_log_keeping(ISSUED, Duration::from_secs(60), &mut log);
    assert!(issued, "{}", log.join("\n"));
    let verify = client(pebble.root(&pki.ca_file()));
    let deadline = Instant::now() + Duration::from_secs(15);
    while try_leaf(ports[0], "hook.test", &verify).is_err() {
        assert!(Instant::now() < deadline, "hook.test is never served");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        leaf(ports[0], "x.hook.test", &verify),
        leaf(ports[0], "hook.test", &verify)
    );
    assert!(knot::txt_at(pebble.challtestsrv_dns(), "_acme-challenge.hook.test").is_empty());

    let hang = wait_failed(admin, "hang.test", "present", Duration::from_secs(30));
    assert!(hang.contains("did not finish within 2s: killed"), "{hang}");
    // Killed with what it started: no `sleep 117` outlives its hook.
    // From /proc, as pgrep would (a fresh machine may have no procps).
    let sleeping = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|entry| {
                std::fs::read(entry.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x00117\x00")
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while sleeping() > 1 {
        // At most the one of a retry under way.
        assert!(Instant::now() < deadline, "{} left running", sleeping());
        std::thread::sleep(Duration::from_millis(100));
    }
    let fail = wait_failed(admin, "fail.test", "present", Duration::from_secs(30));
    assert!(
        fail.contains("exit status: 3") && fail.contains("provider: no zone for _acme-challenge."),
        "{fail}"
    );
    let loud = wait_failed(admin, "loud.test", "present", Duration::from_secs(30));
    assert!(
        loud.contains("(5000000 bytes in all)") && loud.len() < 5_000,
        "{}",
        loud.len()
    );
    let silent = wait_failed(admin, "silent.test", "propagation", Duration::from_secs(30));
    assert!(
        silent.contains("does not answer the value yet after 3s"),
        "{silent}"
    );
    // Every record presented is cleaned up, also after a failure (read between two orders:
    // retries go on, one order at a time).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let calls = std::fs::read_to_string(&calls).unwrap();
        let records = |action: &str| -> Vec<String> {
            calls
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{action} ")))
                .map(str::to_owned)
                .collect()
        };
        let (presented, cleaned) = (records("present"), records("cleanup"));
        for name in ["hook", "hang", "fail", "loud", "silent"] {
            assert!(
                presented
                    .iter()
                    .any(|r| r.contains(&format!(".{name}.test. "))),
                "{name}:\n{calls}"
            );
        }
        let left: Vec<_> = presented.iter().filter(|r| !cleaned.contains(r)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left:?} not cleaned up:\n{calls}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The old certificates still serve, the issued one too; the hooks cost the process little.
    let anyone = pki.client(&["http/1.1"]);
    for (i, b) in bad.iter().enumerate() {
        assert_eq!(
            leaf(ports[i + 1], &format!("{b}.test"), &anyone),
            old[i],
            "{b}"
        );
    }
    assert!(try_leaf(ports[0], "hook.test", &verify).is_ok());
    let rss = daemon.rss_kib();
    println!("daemon RSS after the hooks: {rss} KiB");
    assert!(rss < 100 * 1024, "{rss} KiB");
    let mut more = Vec::new();
    let retried = daemon.wait_log_keeping("\"retry_in_s\":4", Duration::from_secs(30), &mut more);
    assert!(
        retried,
        "failed orders are retried with backoff:\n{}",
        more.join("\n")
    );
}
