//! HTTP/2 control-frame floods: a client that sends PING, SETTINGS, WINDOW_UPDATE, PRIORITY,
//! RST_STREAM or unknown frames without end makes the server answer or process each one (about a
//! core per connection). As nginx does ("http2 flood detected"), such a connection is closed.
//!
//! The frames are counted from the decrypted bytes as they are read, by their 9-byte headers,
//! in one-second windows. A window may hold [`CONTROL_FRAMES_PER_SECOND`] control frames, plus
//! [`PER_REQUEST`] for each HEADERS frame, plus one per 8 KiB the server wrote (a client
//! acknowledges received data with WINDOW_UPDATEs).

use std::time::Duration;

use tokio::time::Instant;

/// Control frames a connection may send in one second with no requests and no downloads.
pub(crate) const CONTROL_FRAMES_PER_SECOND: u32 = 1_000;

/// Extra control frames allowed per HEADERS frame (a request brings its own RST_STREAM,
/// PRIORITY, WINDOW_UPDATE).
const PER_REQUEST: u32 = 4;

/// Bytes written to the client per extra control frame allowed.
const BYTES_PER_CONTROL_FRAME: usize = 8 * 1024;

const FRAME_HEADER: usize = 9;
const PREFACE: usize = 24;
const HEADERS: u8 = 0x1;
const DATA: u8 = 0x0;
const CONTINUATION: u8 = 0x9;

/// Counts one HTTP/2 connection's frames as its bytes arrive.
pub(crate) struct FrameCounter {
    /// Bytes to pass over before the next frame header (the preface, a payload).
    skip: usize,
    header: [u8; FRAME_HEADER],
    have: usize,
    window: Instant,
    control: u32,
    requests: u32,
    written: usize,
}

impl FrameCounter {
    /// A counter for a connection whose first bytes are the HTTP/2 preface.
    pub(crate) fn new() -> Self {
        Self {
            skip: PREFACE,
            header: [0; FRAME_HEADER],
            have: 0,
            window: Instant::now(),
            control: 0,
            requests: 0,
            written: 0,
        }
    }

    /// The server wrote `n` bytes.
    pub(crate) fn wrote(&mut self, n: usize) {
        self.written = self.written.saturating_add(n);
    }

    /// Reads `bytes`; `true` once the connection floods.
    pub(crate) fn read(&mut self, mut bytes: &[u8]) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.control = 0;
            self.requests = 0;
            self.written = 0;
        }
        while !bytes.is_empty() {
            if self.skip > 0 {
                let passed = self.skip.min(bytes.len());
                self.skip -= passed;
                bytes = &bytes[passed..];
                continue;
            }
            let taken = (FRAME_HEADER - self.have).min(bytes.len());
            self.header[self.have..self.have + taken].copy_from_slice(&bytes[..taken]);
            self.have += taken;
            bytes = &bytes[taken..];
            if self.have < FRAME_HEADER {
                break;
            }
            self.have = 0;
            let [a, b, c, kind, ..] = self.header;
            self.skip = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            match kind {
                HEADERS => self.requests = self.requests.saturating_add(1),
                DATA | CONTINUATION => {}
                _ => self.control = self.control.saturating_add(1),
            }
        }
        let allowed = CONTROL_FRAMES_PER_SECOND
            .saturating_add(self.requests.saturating_mul(PER_REQUEST))
            .saturating_add(
                u32::try_from(self.written / BYTES_PER_CONTROL_FRAME).unwrap_or(u32::MAX),
            );
        self.control > allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping() -> Vec<u8> {
        let mut frame = vec![0, 0, 8, 0x6, 0, 0, 0, 0, 0];
        frame.extend_from_slice(&[0; 8]);
        frame
    }

    #[test]
    fn a_ping_flood_is_detected_and_requests_are_not() {
        let mut counter = FrameCounter::new();
        assert!(!counter.read(&[0u8; PREFACE]));
        let pings: Vec<u8> = (0..CONTROL_FRAMES_PER_SECOND)
            .flat_map(|_| ping())
            .collect();
        // Split anywhere, as reads come.
        let (first, rest) = pings.split_at(1_001);
        assert!(!counter.read(first));
        assert!(!counter.read(rest), "at the limit");
        assert!(counter.read(&ping()), "one more is a flood");

        let mut counter = FrameCounter::new();
        let mut traffic = vec![0u8; PREFACE];
        for _ in 0..2_000 {
            traffic.extend_from_slice(&[0, 0, 1, HEADERS, 0x5, 0, 0, 0, 1, 0x82]);
            traffic.extend(ping());
        }
        assert!(!counter.read(&traffic), "a ping per request is fine");
    }
}
