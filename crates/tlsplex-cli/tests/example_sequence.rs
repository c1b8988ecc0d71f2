//! The example config's header is a sequence a newcomer can run as written on a fresh clone:
//! make the certificates, check, run, probe. This runs those very lines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on failure

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Daemon, BIN};

/// The `tlsplex …` command lines of the example's header (indented `#   tlsplex`), comments
/// after `#` dropped.
fn commands(example: &str) -> Vec<Vec<String>> {
    example
        .lines()
        .take_while(|line| line.starts_with('#'))
        .filter_map(|line| line.strip_prefix("#   tlsplex "))
        .map(|command| {
            let command = command.split(" #").next().unwrap_or(command);
            command.split_whitespace().map(str::to_owned).collect()
        })
        .collect()
}

#[test]
fn the_example_header_works_as_written() {
    let root = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tlsplex.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    std::fs::create_dir_all(root.path().join("examples")).unwrap();
    std::fs::write(root.path().join("examples/tlsplex.toml"), &text).unwrap();
    let commands = commands(&text);
    let verbs: Vec<&str> = commands.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(
        verbs,
        ["cert", "cert", "cert", "check", "run", "probe"],
        "{commands:?}"
    );

    let tlsplex = |args: &[String]| {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(root.path())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "tlsplex {}:\n{said}", args.join(" "));
    };
    let mut daemon = None;
    for args in &commands {
        if args[0] == "run" {
            // From the same folder, as a person would in another terminal.
            let line = format!("cd \"$1\" && exec \"$0\" {}", args.join(" "));
            let root = root.path().to_str().unwrap();
            let mut running = Daemon::start_program("sh", &["-c", &line, BIN, root], &[]);
            let ports = [1440, 1441].map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
            running.wait_listening(&ports);
            daemon = Some(running);
        } else {
            tlsplex(args);
        }
    }
    let key = root.path().join("examples/certs/web.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "keys are written 0600");
    let daemon = daemon.unwrap();
    daemon.signal("TERM");
    let mut daemon = daemon;
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
}
