//! RFC 2136 dynamic updates signed with TSIG (RFC 8945): add or delete one TXT record at the
//! zone's primary.

use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::{update_message, Message, ResponseCode};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm as WireAlgorithm, TsigError};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, Record, RecordSet, TSigner};

use super::{wire, Action, TxtRecord};
use crate::config::{Rfc2136, TsigAlgorithm};

/// How far the signature's time may be from the server's clock (what BIND and Knot use).
const FUDGE: u16 = 300;

/// Adds (`Present`) or deletes (`CleanUp`) `record` at `config`'s primary.
pub(super) async fn update(
    config: &Rfc2136,
    action: Action,
    record: &TxtRecord,
    ttl: u32,
) -> Result<(), String> {
    let name = Name::from_ascii(&record.name).map_err(|e| format!("{}: {e}", record.name))?;
    let zone = match &config.zone {
        Some(zone) => Name::from_ascii(format!("{zone}.")).map_err(|e| format!("{zone}: {e}"))?,
        None => wire::zone_of(config.server, &name).await?,
    };
    if !zone.zone_of(&name) {
        return Err(format!("{name} is not in the zone {zone}"));
    }
    let rdata = RData::TXT(TXT::new(vec![record.value.clone()]));
    let rrset = RecordSet::from(Record::from_rdata(name, ttl, rdata));
    let mut message = match action {
        Action::Present => update_message::append(rrset, zone.clone(), false, false),
        Action::CleanUp => update_message::delete_by_rdata(rrset, zone.clone(), false),
    };
    let key = &config.key;
    let algorithm = match key.algorithm {
        TsigAlgorithm::HmacSha256 => WireAlgorithm::HmacSha256,
        TsigAlgorithm::HmacSha384 => WireAlgorithm::HmacSha384,
        TsigAlgorithm::HmacSha512 => WireAlgorithm::HmacSha512,
    };
    let key_name = Name::from_ascii(format!("{}.", key.name)).map_err(|e| e.to_string())?;
    let signer = TSigner::new(key.secret().to_vec(), algorithm, key_name, FUDGE)
        .map_err(|e| format!("TSIG key {}: {e}", key.name))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let verifier = message
        .finalize(&signer, now)
        .map_err(|e| format!("cannot sign the update: {e}"))?;
    let request = message.to_vec().map_err(|e| e.to_string())?;
    let answer = wire::exchange(config.server, &request).await?;
    let server = config.server;
    let plain = Message::from_vec(&answer)
        .map_err(|e| format!("{server}: a malformed answer to the update: {e}"))?;
    if plain.id != message.id {
        return Err(format!("{server}: an answer to another message"));
    }
    let key_name = &key.name;
    let tsig_error = plain.signature().and_then(|tsig| tsig.data.error);
    let refused = match (plain.response_code, tsig_error) {
        (ResponseCode::NoError, None) => None,
        (_, Some(TsigError::BadKey)) => Some(format!(
            "BADKEY: it does not know key {key_name}, or the zone does not let that key update it"
        )),
        (_, Some(TsigError::BadSig)) => Some(format!(
            "BADSIG: key {key_name}'s secret or algorithm differs from the server's"
        )),
        (_, Some(TsigError::BadTime)) => Some(format!(
            "BADTIME: this machine's clock is more than {FUDGE}s from the server's"
        )),
        (_, Some(other)) => Some(format!("TSIG {other:?}")),
        (ResponseCode::NotAuth, None) => {
            Some("NOTAUTH: it is not authoritative for the zone (not its primary?)".to_owned())
        }
        (ResponseCode::Refused, None) => Some(format!(
            "REFUSED: the zone does not let key {key_name} update it"
        )),
        (code, None) => Some(code.to_string()),
    };
    if let Some(reason) = refused {
        return Err(format!("{server} refused the update to {zone} ({reason})"));
    }
    // A success must be the server's own word: its answer carries our key's signature.
    match verifier {
        Some(mut verifier) => verifier
            .verify(&answer)
            .map(drop)
            .map_err(|e| format!("{server}: the answer's TSIG signature does not verify: {e}")),
        None => Err("the update was not signed".to_owned()),
    }
}
