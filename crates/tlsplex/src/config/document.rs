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
    /// The table, written for `table` to read back.
    text: TableText,
    /// The digest of `text` and of the settings around it (the folder, `[global]`, `[acme]`).
    pub(super) digest: [u8; 32],
}

impl ServerText {
    /// `table`, with `shared` (what every server is also built from) in its digest.
    pub(super) fn new(table: &toml::Table, shared: &str) -> Self {
        let text = TableText::of(table);
        let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for part in [shared, text.as_str()] {
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
        match &self.text {
            TableText::Json(text) => serde_json::from_str(text).map_err(|e| e.to_string()),
            TableText::Toml(text) => toml::from_str(text).map_err(|e| value::one_line(e.message())),
        }
    }
}

/// A server's table as text. JSON when it can carry every value: serde_json writes a server's
/// table in a fraction of the time toml's serializer takes (a tenth of the start of 10,000
/// servers went there), and toml's `Value` reads its dates back from it. TOML when a float is
/// not finite (`nan`, `inf`), which JSON has no number for.
enum TableText {
    Json(String),
    Toml(String),
}

impl TableText {
    fn of(table: &toml::Table) -> Self {
        if table.values().all(finite) {
            if let Ok(text) = serde_json::to_string(table) {
                return Self::Json(text);
            }
        }
        Self::Toml(toml::to_string(table).unwrap_or_default())
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Json(text) | Self::Toml(text) => text,
        }
    }
}

/// Whether every float in `value` is finite.
fn finite(value: &toml::Value) -> bool {
    match value {
        toml::Value::Float(float) => float.is_finite(),
        toml::Value::Array(values) => values.iter().all(finite),
        toml::Value::Table(table) => table.values().all(finite),
        _ => true,
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
        assert!(
            a.text.as_str().contains("127.0.0.1:8080"),
            "{}",
            a.text.as_str()
        );

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

    #[test]
    fn a_server_table_reads_back_whatever_its_values() {
        let text = "name = \"a\"\nport = 8443\nratio = 0.25\nwhen = 1979-05-27T07:32:00Z\n\
            day = 1979-05-27\nlist = [1, \"two\", { three = 3.0 }]\n\
            handler = { type = \"static\", root = \"/srv\", cache = {} }\n";
        let table: toml::Table = toml::from_str(text).unwrap();
        let server = ServerText::new(&table, "");
        assert!(matches!(server.text, TableText::Json(_)));
        assert_eq!(server.table().ok(), Some(table));

        // JSON has no number for these: the table goes as TOML, and still reads back.
        let table: toml::Table = toml::from_str("name = \"b\"\nlimits = [inf, -inf, nan]").unwrap();
        let server = ServerText::new(&table, "");
        assert!(matches!(server.text, TableText::Toml(_)));
        let back = server.table().unwrap();
        let floats: Vec<f64> = back["limits"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(toml::Value::as_float)
            .collect();
        assert_eq!(floats[..2], [f64::INFINITY, f64::NEG_INFINITY]);
        assert!(floats[2].is_nan());
    }
}
