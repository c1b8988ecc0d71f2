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
    let rows: Vec<[String; 12]> = outcomes
        .iter()
        .map(|o| {
            let dash = || "-".to_owned();
            [
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
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&header);
    for (row, outcome) in rows.iter().zip(outcomes) {
        line(&row.each_ref().map(String::as_str));
        if let Some(error) = &outcome.error {
            println!("  └ {error}");
        }
    }
}
