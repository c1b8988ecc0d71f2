//! `tlsplex ctl`: the admin API from the shell, with the token read from its file. Prints a
//! table (or, with `--json`, the API's JSON; `dashboard`: the login link alone); a refusal is
//! printed as lines on standard error, and the exit status is 1.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;
use tlsplex::config::ConfigOutline;

use crate::cli::{CtlAction, CtlArgs};
use crate::table::Table;

pub fn run(args: CtlArgs) -> ExitCode {
    let (status, body) = match call(&args) {
        Ok(answer) => answer,
        Err(error) => {
            eprintln!("tlsplex ctl: {error}");
            return ExitCode::FAILURE;
        }
    };
    let value: Option<Value> = serde_json::from_str(&body).ok();
    if !(200..300).contains(&status) {
        for line in refusal_lines(value.as_ref(), &body) {
            eprintln!("tlsplex ctl: {line}");
        }
        eprintln!("tlsplex ctl: the admin endpoint answered {status}");
        return ExitCode::FAILURE;
    }
    match (&args.action, value) {
        (CtlAction::Dashboard, Some(value)) => {
            println!("{}", value["url"].as_str().unwrap_or_default());
        }
        (_, Some(_)) if args.json => println!("{}", body.trim_end()),
        (action, Some(value)) => println!("{}", render(action, &value)),
        (_, None) => println!("{}", body.trim_end()),
    }
    ExitCode::SUCCESS
}

/// What a refusal says, a line per problem: `{"errors": [...]}`, `{"error": "…"}` (each may
/// hold several lines), or the text as sent.
fn refusal_lines(value: Option<&Value>, body: &str) -> Vec<String> {
    let texts: Vec<String> = match value {
        Some(Value::Object(map)) => ["errors", "error"]
            .iter()
            .filter_map(|key| map.get(*key))
            .flat_map(|v| match v {
                Value::Array(items) => items.iter().map(text_of).collect(),
                other => vec![text_of(other)],
            })
            .collect(),
        _ => vec![body.to_owned()],
    };
    texts
        .iter()
        .flat_map(|text| text.lines().map(str::trim).map(str::to_owned))
        .filter(|line| !line.is_empty())
        .collect()
}

fn text_of(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// A cell: a string as it is, a number, or `-`.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) if text.is_empty() => "-".to_owned(),
        Value::String(text) => text.clone(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// The answer to `action` as a table or lines.
fn render(action: &CtlAction, value: &Value) -> String {
    let rows = value.as_array().map(Vec::as_slice).unwrap_or_default();
    let table = |header: &[&'static str], fields: &dyn Fn(&Value) -> Vec<String>| {
        let mut table = Table::new(header);
        for row in rows {
            table.row(fields(row), None);
        }
        table.render()
    };
    match action {
        CtlAction::Servers => table(
            &[
                "NAME",
                "LISTEN",
                "STATE",
                "OPEN",
                "CONNECTIONS",
                "HANDSHAKES",
                "FAILED",
                "REQUESTS",
                "5XX",
                "CERTIFICATE",
                "DAYS",
            ],
            &|s| {
                let failed: u64 = s["handshake_failures"]
                    .as_object()
                    .map(|m| m.values().filter_map(Value::as_u64).sum())
                    .unwrap_or(0);
                vec![
                    cell(&s["name"]),
                    cell(&s["listen"]),
                    cell(&s["state"]),
                    cell(&s["connections_active"]),
                    cell(&s["connections_total"]),
                    cell(&s["handshakes"]),
                    failed.to_string(),
                    cell(&s["http_requests"]),
                    cell(&s["http_responses_5xx"]),
                    cell(&s["certificate_subject"]),
                    cell(&s["certificate_days_left"]),
                ]
            },
        ),
        CtlAction::Certificates => table(
            &["SERVER", "NAMES", "SUBJECT", "NOT AFTER", "DAYS", "DEFAULT"],
            &|c| {
                let names = [&c["dns_names"], &c["ip_addresses"]]
                    .iter()
                    .filter_map(|v| v.as_array())
                    .flatten()
                    .map(cell)
                    .collect::<Vec<_>>();
                vec![
                    cell(&c["server"]),
                    if names.is_empty() {
                        "-".to_owned()
                    } else {
                        names.join(",")
                    },
                    cell(&c["subject"]),
                    cell(&c["not_after"]),
                    cell(&c["days_left"]),
                    if c["default"] == true { "yes" } else { "" }.to_owned(),
                ]
            },
        ),
        CtlAction::Backends => table(
            &[
                "SERVER",
                "POOL",
                "BACKEND",
                "HEALTH",
                "OPEN",
                "CONNECTIONS",
                "FAILURES",
            ],
            &|b| {
                [
                    "server",
                    "pool",
                    "address",
                    "health",
                    "connections_active",
                    "connections_total",
                    "failures",
                ]
                .iter()
                .map(|k| cell(&b[*k]))
                .collect()
            },
        ),
        CtlAction::Acme => table(
            &[
                "NAMES",
                "STATE",
                "CHALLENGE",
                "NOT AFTER",
                "NEXT ORDER",
                "FAILED STEP",
                "LAST ERROR",
            ],
            &|m| {
                [
                    "names",
                    "state",
                    "challenge",
                    "not_after",
                    "next_order",
                    "failed_step",
                    "last_error",
                ]
                .iter()
                .map(|k| cell(&m[*k]))
                .collect()
            },
        ),
        CtlAction::Reload => reload_lines(value),
        CtlAction::Add { .. } | CtlAction::Start { .. } => {
            format!(
                "{} serving on {}",
                cell(&value["name"]),
                cell(&value["listen"])
            )
        }
        CtlAction::Remove { name } | CtlAction::Stop { name } => format!("{name}: draining"),
        CtlAction::Dashboard => cell(&value["url"]),
    }
}

/// A reload report as lines: what changed, then what needs a restart.
fn reload_lines(report: &Value) -> String {
    let mut lines = Vec::new();
    for (key, what) in [
        ("added", "added"),
        ("removed", "removed"),
        ("rebound", "moved to a new address"),
        ("updated", "updated"),
    ] {
        if let Some(names) = report[key].as_array().filter(|n| !n.is_empty()) {
            let names: Vec<String> = names.iter().map(text_of).collect();
            lines.push(format!("{what}: {}", names.join(", ")));
        }
    }
    if let Some(names) = report["unchanged"].as_array().filter(|n| !n.is_empty()) {
        // Names would run to thousands: a count.
        lines.push(format!("unchanged: {} server(s)", names.len()));
    }
    if let Some(changes) = report["needs_restart"].as_array().filter(|n| !n.is_empty()) {
        for change in changes {
            lines.push(format!("needs a restart: {}", text_of(change)));
        }
    }
    if lines.is_empty() {
        lines.push("reloaded: nothing changed".to_owned());
    }
    lines.join("\n")
}

fn call(args: &CtlArgs) -> Result<(u16, String), String> {
    let config = match &args.config {
        // The outline reads no key or token: an operator who may not read them can still ctl.
        Some(path) => Some(ConfigOutline::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let configured = config.as_ref().and_then(|c| c.admin.as_ref());
    let address = match (&args.admin, configured) {
        (Some(address), _) => address.clone(),
        (None, Some(admin)) => admin.listen.to_string(),
        (None, None) => "127.0.0.1:9440".to_owned(),
    };
    let token_file = match (&args.token_file, configured) {
        (Some(path), _) => path.clone(),
        (None, Some(admin)) => admin.token_file.clone(),
        // The demo's endpoint: its token is in the state folder.
        (None, None) => (args.state_dir.clone())
            .unwrap_or_else(crate::demo::default_state_dir)
            .join(tlsplex::config::DEFAULT_TOKEN_FILE),
    };
    let token = tlsplex::files::read_text(&token_file, tlsplex::files::MAX_SECRET_FILE)
        .map_err(|e| {
            format!(
                "cannot read the admin token {}: {e} (it is readable by the user tlsplex runs as; \
                 under systemd's StateDirectory, set [global] state_dir or pass --token-file)",
                token_file.display()
            )
        })?
        .trim()
        .to_owned();
    let (method, path, body) = match &args.action {
        CtlAction::Servers => ("GET", "/api/servers".to_owned(), String::new()),
        CtlAction::Certificates => ("GET", "/api/certificates".to_owned(), String::new()),
        CtlAction::Backends => ("GET", "/api/backends".to_owned(), String::new()),
        CtlAction::Acme => ("GET", "/api/acme".to_owned(), String::new()),
        CtlAction::Reload => ("POST", "/api/reload".to_owned(), String::new()),
        CtlAction::Dashboard => ("POST", "/api/login".to_owned(), String::new()),
        CtlAction::Remove { name } => ("DELETE", format!("/api/servers/{name}"), String::new()),
        CtlAction::Stop { name } => ("POST", format!("/api/servers/{name}/stop"), String::new()),
        CtlAction::Start { name } => ("POST", format!("/api/servers/{name}/start"), String::new()),
        CtlAction::Add { file } => (
            "POST",
            "/api/servers".to_owned(),
            std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?,
        ),
    };
    request(&address, method, &path, &token, &body)
}

fn request(
    address: &str,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(address)
        .map_err(|e| format!("cannot reach the admin endpoint {address}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let auth = format!("Authorization: Bearer {token}\r\n");
    let length = body.len();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Type: application/toml\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n{body}"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| "the admin endpoint sent no HTTP status".to_owned())?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
