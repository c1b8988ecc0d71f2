//! systemd integration: readiness notifications (`Type=notify`) and socket activation, where
//! servers take their listening sockets from systemd by `FileDescriptorName` = server name.

use std::collections::HashMap;
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (e.g. `READY=1`) to systemd when it is listening (`$NOTIFY_SOCKET`); a no-op
/// otherwise. Failures are logged, never fatal.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let addr = match path.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
            None => SocketAddr::from_pathname(&path)?,
        };
        socket.send_to_addr(state.as_bytes(), &addr)
    });
    if let Err(error) = sent {
        tracing::warn!(%error, socket = %path, "cannot notify systemd");
    }
}

/// `RELOADING=1` with the monotonic time systemd asks for since version 253.
pub fn reloading() {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .unwrap_or_default();
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={now}"));
}

/// The listening sockets systemd handed over (`LISTEN_FDS`), by `LISTEN_FDNAMES` name.
pub fn activated_listeners() -> HashMap<String, TcpListener> {
    let mut fds = listenfd::ListenFd::from_env();
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|names| names.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut listeners = HashMap::new();
    for index in 0..fds.len() {
        let name = names.get(index).cloned().unwrap_or_default();
        match fds.take_tcp_listener(index) {
            Ok(Some(listener)) => {
                tracing::info!(fd.name = %name, "listening socket from systemd");
                listeners.insert(name, listener);
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(fd.name = %name, %error, "not a TCP listening socket; ignored")
            }
        }
    }
    listeners
}
