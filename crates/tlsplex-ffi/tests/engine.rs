//! The engine's level from C (`examples/c/engine.c`): the whole daemon started from a TOML file
//! inside a C program, serving what the config says (a `respond` server and a `static` one with
//! a path rule), one server stopped by name while the other serves, a reload that adds a server,
//! a reload of a broken file that changes nothing and says why, an unknown name, a config that
//! cannot start (its problems named), and a drain that frees everything; a server whose handler
//! is the C program's own function (`type = "external"`), over HTTP/1.1 from curl, many at once.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};

use common::{compile, Program};
use tlsplex_testkit::{available, free_port, TestPki};

fn server(name: &str, port: u16, handler: &str) -> String {
    format!(
        "[[server]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\n\
         certificates = [{{ cert = \"web.pem\", key = \"web.key\" }}]\nhandler = {handler}\n"
    )
}

fn curl(pki: &TestPki, port: u16, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "--cacert"])
        .arg(pki.ca_file())
        .args(["--resolve", &format!("web.test:{port}:127.0.0.1")])
        .arg(format!("https://web.test:{port}{path}"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_c_program_runs_reloads_and_stops_the_daemon() {
    if !["cc", "curl"].iter().all(|p| available(p)) {
        return;
    }
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let dir = pki.dir();
    std::fs::create_dir_all(dir.join("www")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("www/index.html"), "static page\n").unwrap_or_else(|e| panic!("{e}"));
    let binary = compile("examples/c/engine.c", dir, &[]);
    let (a, b, c, d) = (free_port(), free_port(), free_port(), free_port());
    let config = dir.join("tlsplex.toml");
    let two = server("a", a, "{ type = \"respond\", body = \"from a\\n\" }")
        + &server("b", b, "{ type = \"static\", root = \"www\" }")
        + "[[server.path]]\nexact = \"/healthz\"\nhandler = { type = \"respond\", body = \"ok\\n\" }\n"
        + &server("from-c", d, "{ type = \"external\", name = \"hello\" }");
    std::fs::write(&config, &two).unwrap_or_else(|e| panic!("{e}"));

    let mut program = Program::spawn(Command::new(&binary).arg(&config).stdin(Stdio::piped()));
    let mut stdin = program
        .child
        .stdin
        .take()
        .unwrap_or_else(|| panic!("stdin"));
    let mut say = |line: &str| {
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        stdin.flush().unwrap_or_else(|e| panic!("{e}"));
    };
    program.wait_for(&["started".to_owned()]);
    assert_eq!(curl(&pki, a, "/"), "from a\n");
    assert_eq!(curl(&pki, b, "/"), "static page\n");
    assert_eq!(curl(&pki, b, "/healthz"), "ok\n", "a path rule");
    assert_eq!(
        curl(&pki, d, "/"),
        "hello from C over TLSv1.3, sni web.test\n"
    );
    // `ca_file` writes the file each time: once, before the twenty read it.
    let ca = pki.ca_file();
    let many: Vec<_> = (0..20)
        .map(|_| {
            let pki_ca = ca.clone();
            std::thread::spawn(move || {
                let out = Command::new("curl")
                    .args(["-sS", "--max-time", "20", "--cacert"])
                    .arg(pki_ca)
                    .args(["--resolve", &format!("web.test:{d}:127.0.0.1")])
                    .arg(format!("https://web.test:{d}/"))
                    .output()
                    .unwrap_or_else(|e| panic!("{e}"));
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr)
            })
        })
        .collect();
    for answer in many {
        let answer = answer.join().unwrap_or_else(|_| panic!("curl"));
        assert!(
            answer.starts_with("hello from C"),
            "twenty at once: {answer:?}"
        );
    }

    say("stop b");
    program.wait_for(&["stop b: 0 ok".to_owned()]);
    assert!(
        TcpStream::connect(("127.0.0.1", b)).is_err(),
        "b no longer listens"
    );
    assert_eq!(curl(&pki, a, "/"), "from a\n", "a goes on");
    say("stop nope");
    program.wait_for(&["stop nope: 19 no running server is called that".to_owned()]);

    let three = two.clone() + &server("c", c, "{ type = \"respond\", body = \"from c\\n\" }");
    std::fs::write(&config, three).unwrap_or_else(|e| panic!("{e}"));
    say("reload");
    program.wait_for(&["reload: 0 ok".to_owned()]);
    assert_eq!(curl(&pki, c, "/"), "from c\n", "added by the reload");

    std::fs::write(&config, two.replace(&format!("127.0.0.1:{a}"), "nowhere"))
        .unwrap_or_else(|e| panic!("{e}"));
    say("reload");
    program.wait_for(&[
        "reload: 18 the config has problems".to_owned(),
        "server \"a\": listen".to_owned(),
    ]);
    assert_eq!(
        curl(&pki, a, "/"),
        "from a\n",
        "a broken file changes nothing"
    );

    say("quit");
    let (status, printed, errors) = program.finish();
    assert!(status.success(), "{printed}\n{errors}");
    assert!(printed.contains("stopped: 0 ok"), "{printed}");
    assert!(
        TcpStream::connect(("127.0.0.1", a)).is_err(),
        "everything stopped"
    );

    // A config that cannot start: every problem named, nothing left running.
    std::fs::write(
        &config,
        server("a", a, "{ type = \"static\", root = \"missing\" }")
            + &server("b", b, "{ type = \"respond\", status = 42 }"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(&binary)
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(printed.contains("start failed: 18"), "{printed}");
    assert!(printed.contains("server \"a\": handler.root"), "{printed}");
    assert!(
        printed.contains("server \"b\": handler.status"),
        "{printed}"
    );
}

/// The engine's short run (start, a request answered by the C function, quit) under a checker;
/// its verdict is the exit status.
fn checked_engine(wrapper: &[&str], flags: &[&str]) {
    let pki = TestPki::new();
    pki.issue("web", &["web.test"]);
    let dir = pki.dir();
    let binary = compile("examples/c/engine.c", dir, flags);
    let port = free_port();
    let config = dir.join("tlsplex.toml");
    let text = "[global]\nworker_threads = 2\nshutdown_grace = \"5s\"\n".to_owned()
        + &server("from-c", port, "{ type = \"external\", name = \"hello\" }");
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    let mut command = match wrapper.split_first() {
        Some((checker, args)) => {
            let mut command = Command::new(checker);
            command.args(args).arg(&binary);
            command
        }
        None => Command::new(&binary),
    };
    let mut program = Program::spawn(command.arg(&config).stdin(Stdio::piped()));
    let mut stdin = program
        .child
        .stdin
        .take()
        .unwrap_or_else(|| panic!("stdin"));
    program.wait_for(&["started".to_owned()]);
    assert_eq!(
        curl(&pki, port, "/"),
        "hello from C over TLSv1.3, sni web.test\n"
    );
    stdin.write_all(b"quit\n").unwrap_or_else(|e| panic!("{e}"));
    drop(stdin);
    let (status, printed, errors) = program.finish();
    assert!(status.success(), "{printed}\n{errors}");
    assert!(printed.contains("stopped: 0 ok"), "{printed}");
}

#[test]
fn the_engine_under_address_sanitizer() {
    if !["cc", "curl"].iter().all(|p| available(p)) {
        return;
    }
    checked_engine(&[], common::ASAN);
}

#[test]
fn the_engine_under_valgrind() {
    if !["cc", "curl", "valgrind"].iter().all(|p| available(p)) {
        return;
    }
    let wrapper = [
        "valgrind",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect",
        "--quiet",
    ];
    checked_engine(&wrapper, &[]);
}
