//! Raw HTTP/2 frames, for clients no library would be: floods, zero windows, malformed requests.

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An HTTP/2 frame: 9 bytes of header, then the payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A GET as an HPACK header block: indexed `:method GET` and `:scheme https`, literal `:path`
/// and `:authority` with indexed names, no Huffman.
pub fn get_headers(path: &str, authority: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x87];
    for (index, value) in [(4u8, path), (1u8, authority)] {
        block.push(index); // literal without indexing, name from the static table
        block.push(u8::try_from(value.len()).unwrap());
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// `block` with one more header, a literal with a literal name (`name` must be lower-case to be
/// valid HTTP/2; tests pass others on purpose).
pub fn with_header(mut block: Vec<u8>, name: &str, value: &str) -> Vec<u8> {
    block.push(0x00);
    block.push(u8::try_from(name.len()).unwrap());
    block.extend_from_slice(name.as_bytes());
    block.push(u8::try_from(value.len()).unwrap());
    block.extend_from_slice(value.as_bytes());
    block
}
