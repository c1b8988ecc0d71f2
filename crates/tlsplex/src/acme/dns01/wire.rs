//! DNS exchanges over TCP (RFC 7766): one message out, one back, bounded in time and size.
//! TCP rather than UDP so that no answer is ever truncated and no source port is guessed.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long one exchange (connect, send, answer) may take.
pub(super) const EXCHANGE_TIME: Duration = Duration::from_secs(10);

/// Sends `request` to `server`; the answer's bytes (at most 64 KiB: TCP's length prefix).
pub(super) async fn exchange(server: SocketAddr, request: &[u8]) -> Result<Vec<u8>, String> {
    let exchange = async {
        let length = u16::try_from(request.len()).map_err(|_| "the message is over 64 KiB")?;
        let mut tcp = TcpStream::connect(server)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let mut framed = Vec::with_capacity(2 + request.len());
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(request);
        tcp.write_all(&framed)
            .await
            .map_err(|e| format!("cannot send: {e}"))?;
        let mut length = [0u8; 2];
        tcp.read_exact(&mut length)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(length))];
        tcp.read_exact(&mut answer)
            .await
            .map_err(|e| format!("a cut answer: {e}"))?;
        Ok::<_, String>(answer)
    };
    match tokio::time::timeout(EXCHANGE_TIME, exchange).await {
        Ok(result) => result.map_err(|e| format!("{server}: {e}")),
        Err(_) => Err(format!(
            "{server} did not answer within {}s",
            EXCHANGE_TIME.as_secs()
        )),
    }
}

/// Asks `server` (an authoritative server: no recursion) for `name`'s `kind` records.
pub(super) async fn query(
    server: SocketAddr,
    name: &Name,
    kind: RecordType,
) -> Result<Message, String> {
    let mut request = Message::query();
    request.metadata.recursion_desired = false;
    request.add_query(Query::query(name.clone(), kind));
    let bytes = request.to_vec().map_err(|e| e.to_string())?;
    let answer = exchange(server, &bytes).await?;
    let answer =
        Message::from_vec(&answer).map_err(|e| format!("{server}: a malformed answer: {e}"))?;
    if answer.id != request.id {
        return Err(format!("{server}: an answer to another question"));
    }
    Ok(answer)
}

/// The TXT values `server` answers for `name` (each record's strings joined).
pub(super) async fn txt_values(server: SocketAddr, name: &Name) -> Result<Vec<String>, String> {
    let answer = query(server, name, RecordType::TXT).await?;
    Ok(answer
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|part| String::from_utf8_lossy(part))
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect())
}

/// The zone `name` is in, as `server` (one of its authoritative servers) says: the owner of
/// the SOA it answers, or sends along with "no such name".
pub(super) async fn zone_of(server: SocketAddr, name: &Name) -> Result<Name, String> {
    let answer = query(server, name, RecordType::SOA).await?;
    answer
        .answers
        .iter()
        .chain(answer.authorities.iter())
        .find(|record| record.record_type() == RecordType::SOA)
        .map(|record| record.name.clone())
        .ok_or_else(|| {
            format!(
                "{server} names no zone for {name} ({}): set rfc2136.zone",
                answer.response_code
            )
        })
}
