//! A plain HTTP/1.1 backend that records what it received, for proxy tests: each request's
//! connection (to count reuse), head and body length, answered with that record as JSON. Some
//! paths misbehave on purpose: `/healthz` answers the status the backend was started with,
//! `/stall` never answers, `/garbage` answers with something that
//! is not HTTP, `/huge-head` sends a 1 MiB response head, `/big?bytes=N` sends N bytes, `/encoded` answers with its own `Content-Encoding: gzip`,
//! `/page.html` is a page that opens a WebSocket back to its origin, and a request with
//! `Upgrade: websocket` gets `101` and then its messages echoed (RFC 6455 frames), or its bytes
//! echoed as they are with `X-Raw-Tunnel: 1`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the backend saw it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recorded {
    /// Which accepted connection carried it (0, 1, …).
    pub connection: usize,
    /// The address that connection came from.
    pub peer: SocketAddr,
    pub method: String,
    pub target: String,
    /// Every header line as sent (names lower-cased), in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes read.
    pub body: usize,
}

impl Recorded {
    /// The values of `name`, in order.
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The backend: its address and what it has received so far.
#[derive(Clone)]
pub struct HttpBackend {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
    healthz: u16,
}

impl HttpBackend {
    /// Listens on 127.0.0.1 (a free port) until the test ends.
    pub async fn start() -> Self {
        Self::with_healthz(200).await
    }

    /// [`HttpBackend::start`], answering `/healthz` with `status`.
    pub async fn with_healthz(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = Self {
            addr: listener.local_addr().unwrap(),
            received: Arc::default(),
            connections: Arc::default(),
            healthz: status,
        };
        let accepting = backend.clone();
        tokio::spawn(async move {
            while let Ok((tcp, peer)) = listener.accept().await {
                let id = accepting.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(accepting.clone().serve(tcp, peer, id));
            }
        });
        backend
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Recorded> {
        self.received.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    async fn serve(self, mut tcp: TcpStream, peer: SocketAddr, connection: usize) {
        let mut buffer = Vec::new();
        loop {
            let Some((head_len, mut record)) = read_head(&mut tcp, &mut buffer).await else {
                return;
            };
            record.connection = connection;
            record.peer = peer;
            buffer.drain(..head_len);
            let length: usize = record
                .header("content-length")
                .first()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let chunked = record
                .header("transfer-encoding")
                .iter()
                .any(|v| v.contains("chunked"));
            record.body = if chunked {
                match read_chunked(&mut tcp, &mut buffer).await {
                    Some(n) => n,
                    None => return,
                }
            } else {
                while buffer.len() < length {
                    let mut more = [0u8; 16 * 1024];
                    match tcp.read(&mut more).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&more[..n]),
                    }
                }
                buffer.drain(..length);
                length
            };
            self.received.lock().unwrap().push(record.clone());
            let close = record
                .header("connection")
                .iter()
                .any(|v| v.eq_ignore_ascii_case("close"));
            if !self.answer(&mut tcp, &record, &buffer).await || close {
                return;
            }
        }
    }

    /// Answers `record`; `false`: the connection is done.
    async fn answer(&self, tcp: &mut TcpStream, record: &Recorded, buffer: &[u8]) -> bool {
        let path = record.target.split('?').next().unwrap_or("");
        if record
            .header("upgrade")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("websocket"))
        {
            let accept = record
                .header("sec-websocket-key")
                .first()
                .map(|key| websocket_accept(key))
                .unwrap_or_default();
            let head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            if tcp.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            if record.header("x-raw-tunnel") == ["1"] {
                if tcp.write_all(buffer).await.is_err() {
                    return false;
                }
                let (mut read, mut write) = tcp.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            } else {
                echo_messages(tcp, buffer.to_vec()).await;
            }
            return false;
        }
        match path {
            "/page.html" => {
                let page = PAGE.as_bytes();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n",
                    page.len()
                );
                tcp.write_all(head.as_bytes()).await.is_ok() && tcp.write_all(page).await.is_ok()
            }
            "/encoded" => {
                // Marked as already compressed: a proxy must pass it on as it is.
                let body = b"gzip bytes, as the app made them";
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                tcp.write_all(head.as_bytes()).await.is_ok() && tcp.write_all(body).await.is_ok()
            }
            "/healthz" => {
                let head = format!(
                    "HTTP/1.1 {} Health\r\ncontent-length: 0\r\n\r\n",
                    self.healthz
                );
                tcp.write_all(head.as_bytes()).await.is_ok()
            }
            "/stall" => {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                false
            }
            "/garbage" => {
                let _ = tcp.write_all(b"this is not HTTP\r\n\r\n").await;
                false
            }
            "/huge-head" => {
                let filler = "x".repeat(1024 * 1024);
                let head =
                    format!("HTTP/1.1 200 OK\r\nx-filler: {filler}\r\ncontent-length: 0\r\n\r\n");
                let _ = tcp.write_all(head.as_bytes()).await;
                false
            }
            "/big" => {
                let bytes: usize = record
                    .target
                    .split_once("bytes=")
                    .and_then(|(_, n)| n.parse().ok())
                    .unwrap_or(0);
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {bytes}\r\n\r\n");
                if tcp.write_all(head.as_bytes()).await.is_err() {
                    return false;
                }
                let piece = vec![b'b'; 64 * 1024];
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(piece.len());
                    if tcp.write_all(&piece[..n]).await.is_err() {
                        return false;
                    }
                    left -= n;
                }
                true
            }
            _ => {
                let body = serde_json::to_vec(record).unwrap();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: keep-alive\r\nkeep-alive: timeout=30\r\nx-backend: {}\r\n\r\n",
                    body.len(),
                    self.addr
                );
                tcp.write_all(head.as_bytes()).await.is_ok() && tcp.write_all(&body).await.is_ok()
            }
        }
    }
}

/// Reads until a whole request head is in `buffer`: its length and what it says.
async fn read_head(tcp: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(usize, Recorded)> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let mut request = lines.next()?.split(' ');
            let method = request.next()?.to_owned();
            let target = request.next()?.to_owned();
            let headers = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let record = Recorded {
                connection: 0,
                peer: SocketAddr::from(([0, 0, 0, 0], 0)),
                method,
                target,
                headers,
                body: 0,
            };
            return Some((end + 4, record));
        }
        let mut more = [0u8; 16 * 1024];
        match tcp.read(&mut more).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&more[..n]),
        }
    }
}

/// Reads a chunked body from `buffer` and `tcp`: its length.
async fn read_chunked(tcp: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<usize> {
    let mut total = 0;
    loop {
        let line_end = loop {
            if let Some(at) = buffer.windows(2).position(|w| w == b"\r\n") {
                break at;
            }
            let mut more = [0u8; 16 * 1024];
            match tcp.read(&mut more).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buffer.extend_from_slice(&more[..n]),
            }
        };
        let size_text = String::from_utf8_lossy(&buffer[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        while buffer.len() < line_end + 2 + size + 2 {
            let mut more = [0u8; 16 * 1024];
            match tcp.read(&mut more).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buffer.extend_from_slice(&more[..n]),
            }
        }
        buffer.drain(..line_end + 2 + size + 2);
        total += size;
        if size == 0 {
            return Some(total);
        }
    }
}

/// A page that opens a WebSocket to `/ws` on its own origin, sends a message and shows the
/// echo in its title.
const PAGE: &str = r#"<!doctype html><html><head><title>waiting</title></head><body><script>
const ws = new WebSocket("wss://" + location.host + "/ws");
ws.onopen = () => ws.send("ping through the proxy");
ws.onmessage = (event) => { document.title = "echo: " + event.data; };
ws.onerror = () => { document.title = "websocket error"; };
</script></body></html>"#;

/// RFC 6455 §4.2.2: base64(SHA-1(key + the GUID)).
fn websocket_accept(key: &str) -> String {
    use base64::Engine as _;
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key.trim().as_bytes());
    context.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(context.finish().as_ref())
}

/// Echoes each WebSocket message (text or binary, unmasked as a server sends) until a close.
async fn echo_messages(tcp: &mut TcpStream, mut buffer: Vec<u8>) {
    loop {
        // Header, length and mask: at most 14 bytes, then the payload.
        let Some((opcode, payload, used)) = parse_frame(&buffer) else {
            let mut more = [0u8; 16 * 1024];
            match tcp.read(&mut more).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&more[..n]),
            }
            continue;
        };
        buffer.drain(..used);
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(n as u8),
            n if n <= 0xffff => {
                frame.push(126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&payload);
        if tcp.write_all(&frame).await.is_err() || opcode == 0x8 {
            return;
        }
    }
}

/// One whole client frame at the start of `buffer`: (opcode, unmasked payload, bytes used).
fn parse_frame(buffer: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let opcode = buffer.first()? & 0x0f;
    let second = *buffer.get(1)?;
    let (len, mut at) = match second & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*buffer.get(2)?, *buffer.get(3)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = buffer.get(2..10)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(bytes)).ok()?, 10)
        }
        n => (usize::from(n), 2),
    };
    let mask: [u8; 4] = if second & 0x80 != 0 {
        let mask = buffer.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        mask
    } else {
        [0; 4]
    };
    let payload = buffer.get(at..at + len)?;
    let unmasked = payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    Some((opcode, unmasked, at + len))
}
