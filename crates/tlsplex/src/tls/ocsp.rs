//! OCSP responses to staple: just enough DER reading to find the certificate status and
//! `nextUpdate`, so a stale response is not stapled. The signature is the client's to check.
//!
//! ```text
//! OCSPResponse      ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT SEQUENCE {
//!                         responseType OID, response OCTET STRING (BasicOCSPResponse) } }
//! BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, ... }
//! ResponseData      ::= SEQUENCE { version [0] EXPLICIT OPTIONAL, responderID [1]|[2],
//!                         producedAt GeneralizedTime, responses SEQUENCE OF SingleResponse, ... }
//! SingleResponse    ::= SEQUENCE { certID SEQUENCE, certStatus [0]|[1]|[2],
//!                         thisUpdate GeneralizedTime, nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL, ... }
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a stapled response says about the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OcspCertStatus {
    /// Not revoked.
    Good,
    /// Revoked.
    Revoked,
    /// The responder does not know the certificate.
    Unknown,
}

/// The parts of an OCSP response that decide whether to staple it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OcspSummary {
    /// The first single response's certificate status.
    pub status: OcspCertStatus,
    /// When the response was made.
    pub this_update: SystemTime,
    /// After this, the response is stale; `None` when the responder set no limit.
    pub next_update: Option<SystemTime>,
}

impl OcspSummary {
    /// Reads a DER-encoded OCSPResponse; `None` if it is not one with a successful status.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (response, _) = tlv(der, 0x30)?;
        let (status, rest) = tlv(response, 0x0a)?;
        if status != [0] {
            return None; // not "successful": nothing to staple
        }
        let (bytes, _) = tlv(rest, 0xa0)?;
        let (bytes, _) = tlv(bytes, 0x30)?;
        let (_oid, rest) = tlv(bytes, 0x06)?;
        let (basic, _) = tlv(rest, 0x04)?;
        let (basic, _) = tlv(basic, 0x30)?;
        let (data, _) = tlv(basic, 0x30)?;
        let mut rest = data;
        if rest.first() == Some(&0xa0) {
            rest = tlv(rest, 0xa0)?.1; // version
        }
        let responder_tag = *rest.first()?;
        rest = tlv(rest, responder_tag)?.1; // responderID [1] or [2]
        rest = tlv(rest, 0x18)?.1; // producedAt
        let (responses, _) = tlv(rest, 0x30)?;
        let (single, _) = tlv(responses, 0x30)?;
        let (_cert_id, rest) = tlv(single, 0x30)?;
        let status_tag = *rest.first()?;
        let status = match status_tag & 0x1f {
            0 => OcspCertStatus::Good,
            1 => OcspCertStatus::Revoked,
            2 => OcspCertStatus::Unknown,
            _ => return None,
        };
        let rest = tlv(rest, status_tag)?.1;
        let (this_update, rest) = tlv(rest, 0x18)?;
        let next_update = match tlv(rest, 0xa0) {
            Some((explicit, _)) => Some(generalized_time(tlv(explicit, 0x18)?.0)?),
            None => None,
        };
        Some(Self {
            status,
            this_update: generalized_time(this_update)?,
            next_update,
        })
    }

    /// Whether the response is past its `nextUpdate` at `now`.
    pub fn is_stale(&self, now: SystemTime) -> bool {
        self.next_update.is_some_and(|next| next < now)
    }
}

/// Reads one DER element of tag `tag` from the front of `input`: (contents, rest).
fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let (len, rest) = if len < 0x80 {
        (usize::from(len), rest)
    } else {
        let count = usize::from(len & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// `YYYYMMDDHHMMSS[.fff]Z` to a time.
fn generalized_time(text: &[u8]) -> Option<SystemTime> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(text.get(range)?).ok()?.parse().ok()
    };
    if text.last() != Some(&b'Z') {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, minute, second) = (digits(8..10)?, digits(10..12)?, digits(12..14)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(
            generalized_time(b"20261126120000Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_795_694_400))
        );
        assert_eq!(generalized_time(b"20261326120000Z"), None);
        assert_eq!(generalized_time(b"2026"), None);
    }

    fn der(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
        let content: Vec<u8> = parts.concat();
        let mut out = vec![tag];
        if content.len() < 0x80 {
            out.push(content.len() as u8);
        } else {
            out.extend([0x82, (content.len() >> 8) as u8, content.len() as u8]);
        }
        out.extend(content);
        out
    }

    /// A structurally valid response (unsigned: the signature is the client's business).
    fn response(next_update: Option<&[u8]>) -> Vec<u8> {
        let time = |t: &[u8]| der(0x18, &[t]);
        let next = next_update
            .map(|t| der(0xa0, &[&time(t)]))
            .unwrap_or_default();
        let single = der(
            0x30,
            &[
                &der(0x30, &[]),
                &[0x80, 0x00],
                &time(b"20261101000000Z"),
                &next,
            ],
        );
        let data = der(
            0x30,
            &[
                &der(0xa1, &[&der(0x30, &[])]),
                &time(b"20261101000000Z"),
                &der(0x30, &[&single]),
            ],
        );
        let basic = der(0x30, &[&data, &der(0x30, &[]), &der(0x03, &[&[0]])]);
        let bytes = der(0x30, &[&der(0x06, &[&[0x2b, 0x06]]), &der(0x04, &[&basic])]);
        der(0x30, &[&der(0x0a, &[&[0]]), &der(0xa0, &[&bytes])])
    }

    #[test]
    fn fresh_stale_and_unlimited_responses() {
        let now = generalized_time(b"20261126120000Z").unwrap();
        let fresh = OcspSummary::from_der(&response(Some(b"20261203000000Z"))).unwrap();
        assert_eq!(fresh.status, OcspCertStatus::Good);
        assert!(!fresh.is_stale(now));
        let stale = OcspSummary::from_der(&response(Some(b"20261125000000Z"))).unwrap();
        assert!(stale.is_stale(now));
        let unlimited = OcspSummary::from_der(&response(None)).unwrap();
        assert_eq!(unlimited.next_update, None);
        assert!(!unlimited.is_stale(now));
    }

    #[test]
    fn garbage_is_not_an_ocsp_response() {
        assert_eq!(OcspSummary::from_der(b""), None);
        assert_eq!(OcspSummary::from_der(&[0x30, 0x03, 0x0a, 0x01, 0x01]), None);
        assert_eq!(
            OcspSummary::from_der(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
    }
}
