//! Self-signed certificates for trying things out: `tlsplex cert self-signed`, and the demo's.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::ExitCode;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use crate::cli::SelfSignedArgs;

/// A self-signed ECDSA P-256 certificate for `names` (DNS names or IP addresses), valid from a
/// day ago for `days` days: (certificate PEM, private key PEM).
pub fn self_signed(
    names: &[String],
    common_name: &str,
    days: i64,
) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    params.distinguished_name = subject;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a private key readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), String> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(contents))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `tlsplex cert self-signed`: writes `OUT/NAME.pem` and `OUT/NAME.key` (mode 0600).
pub fn run_self_signed(args: &SelfSignedArgs) -> ExitCode {
    let names: Vec<String> = args
        .names
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        eprintln!("tlsplex cert self-signed: --names needs at least one name");
        return ExitCode::from(2);
    }
    let (cert_path, key_path) = (
        args.out.join(format!("{}.pem", args.name)),
        args.out.join(format!("{}.key", args.name)),
    );
    let written = self_signed(&names, &names[0], args.days)
        .map_err(|e| format!("cannot make the certificate: {e}"))
        .and_then(|(cert, key)| {
            std::fs::create_dir_all(&args.out)
                .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
            write_private(&key_path, key.as_bytes())?;
            std::fs::write(&cert_path, cert)
                .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))
        });
    match written {
        Ok(()) => {
            println!(
                "wrote {} and {} (self-signed for {}, {} days)",
                cert_path.display(),
                key_path.display(),
                names.join(", "),
                args.days
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tlsplex cert self-signed: {error}");
            ExitCode::FAILURE
        }
    }
}
