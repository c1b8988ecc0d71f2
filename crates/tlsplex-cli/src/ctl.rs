//! `tlsplex ctl`: the admin API from the shell, with the token read from its file. Prints the
//! JSON answer (`dashboard`: the login link alone); exits 1 unless it was a success.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tlsplex::config::ConfigOutline;

use crate::cli::{CtlAction, CtlArgs};

pub fn run(args: CtlArgs, state_dir: Option<PathBuf>) -> ExitCode {
    match call(&args, state_dir) {
        Ok((status, body)) => {
            match (&args.action, link_of(&body)) {
                (CtlAction::Dashboard, Some(url)) => println!("{url}"),
                _ => println!("{}", body.trim_end()),
            }
            if (200..300).contains(&status) {
                ExitCode::SUCCESS
            } else {
                eprintln!("tlsplex ctl: the admin endpoint answered {status}");
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("tlsplex ctl: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The `url` of a `POST /api/login` answer.
fn link_of(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value.get("url")?.as_str().map(str::to_owned)
}

fn call(args: &CtlArgs, state_dir: Option<PathBuf>) -> Result<(u16, String), String> {
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
        (None, None) => state_dir
            .unwrap_or_else(crate::demo::default_state_dir)
            .join(tlsplex::config::DEFAULT_TOKEN_FILE),
    };
    let token = tlsplex::files::read_text(&token_file, tlsplex::files::MAX_SECRET_FILE)
        .map_err(|e| {
            format!(
                "cannot read the admin token {}: {e} (it is readable by the user tlsplex runs as)",
                token_file.display()
            )
        })?
        .trim()
        .to_owned();
    let (method, path, body) = match &args.action {
        CtlAction::Servers => ("GET", "/api/servers".to_owned(), String::new()),
        CtlAction::Certificates => ("GET", "/api/certificates".to_owned(), String::new()),
        CtlAction::Backends => ("GET", "/api/backends".to_owned(), String::new()),
        CtlAction::Reload => ("POST", "/api/reload".to_owned(), String::new()),
        CtlAction::Dashboard => ("POST", "/api/login".to_owned(), String::new()),
        CtlAction::Remove { name } => ("DELETE", format!("/api/servers/{name}"), String::new()),
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
