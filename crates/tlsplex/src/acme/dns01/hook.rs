//! The hook for DNS providers without RFC 2136: `command… present|cleanup NAME VALUE`, run
//! directly (never through a shell), killed at its timeout, its output read up to a bound.

use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncReadExt as _};

use super::{Action, TxtRecord};
use crate::config::DnsHook;

/// The most of a hook's output (stdout and stderr each) kept for the log; the rest is read
/// and dropped, so a chatty hook neither blocks on a full pipe nor fills memory.
pub(super) const MAX_OUTPUT: usize = 4 * 1024;

/// Runs `hook` for `record`; its output on success, the reason on failure.
pub(super) async fn run(
    hook: &DnsHook,
    action: Action,
    record: &TxtRecord,
) -> Result<String, String> {
    let Some((program, args)) = hook.command.split_first() else {
        return Err("the hook names no program".to_owned());
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .arg(action.as_str())
        .arg(format!("{}.", record.name))
        .arg(&record.value)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group: a timeout kills what it started too (a `sleep` in a script).
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let finished = tokio::time::timeout(hook.timeout, async {
        tokio::join!(read_bounded(stdout), read_bounded(stderr), child.wait())
    })
    .await;
    let Ok((stdout, stderr, status)) = finished else {
        let group = child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32));
        if let Some(group) = group {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        // kill_on_drop would too; killing here also reaps it before the error is reported.
        let _ = child.kill().await;
        return Err(format!(
            "{program} {action} did not finish within {}s: killed",
            hook.timeout.as_secs_f64()
        ));
    };
    let status = status.map_err(|e| format!("{program} {action}: {e}"))?;
    let output = [stdout, stderr]
        .iter()
        .filter(|shown| !shown.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(" | ");
    match status.success() {
        true => Ok(output),
        false => Err(format!("{program} {action} failed ({status}): {output}")),
    }
}

/// Up to [`MAX_OUTPUT`] bytes of `pipe` as one line, the rest counted and dropped.
async fn read_bounded(pipe: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let (mut kept, mut total) = (Vec::new(), 0usize);
    let mut chunk = [0u8; 8192];
    while let Ok(read @ 1..) = pipe.read(&mut chunk).await {
        total += read;
        let room = MAX_OUTPUT.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..read.min(room)]);
    }
    let text = String::from_utf8_lossy(&kept);
    let mut line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if total > kept.len() {
        line.push_str(&format!(" … ({total} bytes in all)"));
    }
    line
}
