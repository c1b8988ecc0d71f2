//! A config text read into tables: its top-level tables, and each `[[server]]` table (pools
//! resolved) as text with the digest a server's inputs start from. A reload of the same text (a
//! certificate renewed, a SIGHUP with nothing edited) takes these from the last load instead of
//! parsing the file again: with 10,000 servers the parse and the digests were most of a reload.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{ConfigError, Problems};
use super::pool;
use super::value::{self, server_tables};

/// A config text, read.
pub(crate) struct Document {
    /// The text's SHA-256 and the folder its paths resolve against: what a reload compares.
    sha256: [u8; 32],
    base: PathBuf,
    /// The top-level tables but `[[server]]` and `[[pool]]` (pools are resolved into servers).
    pub(super) top: toml::Table,
    /// Every `[[server]]`, in file order.
    pub(super) servers: Arc<[ServerText]>,
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("servers", &self.servers.len())
            .finish_non_exhaustive()
    }
}

/// One `[[server]]` table, pools resolved.
pub(super) struct ServerText {
    /// Its `name`, when it is a string.
    pub(super) name: Option<String>,
    /// The table, in TOML.
    text: String,
    /// The digest of `text` and of the settings around it (the folder, `[global]`, `[acme]`).
    pub(super) digest: [u8; 32],
}

impl ServerText {
    /// `table`, with `shared` (what every server is also built from) in its digest.
    pub(super) fn new(table: &toml::Table, shared: &str) -> Self {
        let text = toml::to_string(table).unwrap_or_default();
        let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for part in [shared, &text] {
            digest.update(&(part.len() as u64).to_be_bytes());
            digest.update(part.as_bytes());
        }
        Self {
            name: value::server_name(table).map(str::to_owned),
            text,
            digest: sha256_of(digest),
        }
    }

    /// The table again (only from text this module wrote: it parses).
    pub(super) fn table(&self) -> Result<toml::Table, String> {
        toml::from_str(&self.text).map_err(|e| value::one_line(e.message()))
    }
}

/// A text read: the document, and the server tables as parsed (empty when the document is the
/// last load's: a server validated again parses its own text).
pub(super) struct Read {
    pub(super) document: Arc<Document>,
    pub(super) tables: Vec<Option<toml::Table>>,
}

/// Reads `text` (from `file`, paths resolving against `base`), or takes `last` when it was
/// read from the same text. Problems of the structure (a `[[server]]` that is no table, a pool
/// that does not resolve) go to `problems`.
pub(super) fn read(
    text: &str,
    file: &Path,
    base: &Path,
    last: Option<&Arc<Document>>,
    problems: &mut Problems,
) -> Result<Read, ConfigError> {
    let sha256 = sha256_of({
        let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        digest.update(text.as_bytes());
        digest
    });
    if let Some(last) = last.filter(|last| last.sha256 == sha256 && last.base == base) {
        return Ok(Read {
            document: last.clone(),
            tables: Vec::new(),
        });
    }
    let mut top = value::document(text, file)?;
    let mut tables = top
        .remove("server")
        .map(|value| server_tables(value, problems))
        .unwrap_or_default();
    let pools = top
        .remove("pool")
        .map(|value| pool::pool_tables(value, problems))
        .unwrap_or_default();
    for (i, server) in tables.iter_mut().enumerate() {
        pool::resolve_pools(server, i, &pools, problems);
    }
    // Every server is also built from these: a change here updates them all.
    let shared = [top.get("global"), top.get("acme")]
        .map(|table| table.map(toml::Value::to_string).unwrap_or_default())
        .join("\n");
    let shared = format!("{}\n{shared}", base.display());
    let servers = tables.iter().map(|t| ServerText::new(t, &shared)).collect();
    Ok(Read {
        document: Arc::new(Document {
            sha256,
            base: base.to_owned(),
            top,
            servers,
        }),
        tables: tables.into_iter().map(Some).collect(),
    })
}

fn sha256_of(digest: aws_lc_rs::digest::Context) -> [u8; 32] {
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(digest.finish().as_ref());
    sha256
}

/// One `[[server]]` table given on its own (the admin API's), around no other settings.
pub(super) fn single(table: toml::Table, base: &Path) -> Read {
    let server = ServerText::new(&table, &base.display().to_string());
    Read {
        document: Arc::new(Document {
            sha256: [0; 32],
            base: base.to_owned(),
            top: toml::Table::new(),
            servers: Arc::new([server]),
        }),
        tables: vec![Some(table)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[global]\nmax_connections = 10\n[[pool]]\nname = \"app\"\nbackends = [\"127.0.0.1:8080\"]\n\
        [[server]]\nname = \"a\"\nhandler = { type = \"proxy\", pool = \"app\" }\n[[server]]\nname = \"b\"\n";

    fn read_text(text: &str, last: Option<&Arc<Document>>) -> Read {
        let mut problems = Problems::default();
        let read = read(
            text,
            Path::new("t.toml"),
            Path::new("/etc"),
            last,
            &mut problems,
        );
        assert!(problems.into_result(PathBuf::new(), ()).is_ok());
        read.ok().unwrap_or_else(|| panic!("{text} did not read"))
    }

    #[test]
    fn the_same_text_is_read_once_and_a_server_table_survives_its_text() {
        let first = read_text(TEXT, None);
        assert_eq!(first.tables.len(), 2);
        let names: Vec<_> = first
            .document
            .servers
            .iter()
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(names, [Some("a".to_owned()), Some("b".to_owned())]);
        // Pools are resolved into the table, and the text parses back to the same table.
        let a = &first.document.servers[0];
        assert_eq!(a.table().ok(), first.tables[0].clone());
        assert!(a.text.contains("127.0.0.1:8080"), "{}", a.text);

        let again = read_text(TEXT, Some(&first.document));
        assert!(Arc::ptr_eq(&again.document, &first.document));
        assert!(again.tables.is_empty());

        // Another text, or [global] changed: read anew, and every digest moves with [global].
        let edited = TEXT.replace("max_connections = 10", "max_connections = 11");
        let other = read_text(&edited, Some(&first.document));
        assert!(!Arc::ptr_eq(&other.document, &first.document));
        for (old, new) in first
            .document
            .servers
            .iter()
            .zip(other.document.servers.iter())
        {
            assert_ne!(old.digest, new.digest);
        }
    }
}
