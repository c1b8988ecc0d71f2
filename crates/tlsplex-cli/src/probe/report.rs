//! The probe's table.

use super::Outcome;

pub(super) fn print_table(outcomes: &[Outcome]) {
    let header = [
        "ADDRESS",
        "RESULT",
        "PROTOCOL",
        "SUITE",
        "GROUP",
        "ALPN",
        "SUBJECT",
        "NAMES",
        "EXPIRES",
        "CLIENT-CERT",
        "OCSP",
        "HANDSHAKE",
    ];
    let mut table = crate::table::Table::new(&header);
    for o in outcomes {
        let dash = || "-".to_owned();
        table.row(
            vec![
                match &o.server {
                    Some(server) => format!("{} ({server})", o.address),
                    None => o.address.clone(),
                },
                if o.ok {
                    "ok".to_owned()
                } else {
                    "FAILED".to_owned()
                },
                o.tls_version.clone().unwrap_or_else(dash),
                o.cipher_suite.clone().unwrap_or_else(dash),
                o.key_exchange_group.clone().unwrap_or_else(dash),
                o.alpn.clone().unwrap_or_else(dash),
                o.subject.clone().unwrap_or_else(dash),
                if o.names.is_empty() {
                    dash()
                } else {
                    o.names.join(",")
                },
                o.days_until_expiry
                    .map(|d| format!("{d} days"))
                    .unwrap_or_else(dash),
                if o.client_cert_requested {
                    "requested"
                } else {
                    "-"
                }
                .to_owned(),
                if o.ocsp_stapled { "stapled" } else { "-" }.to_owned(),
                o.handshake_ms
                    .map(|ms| format!("{ms:.1} ms"))
                    .unwrap_or_else(dash),
            ],
            o.error.clone(),
        );
    }
    println!("{}", table.render());
}
