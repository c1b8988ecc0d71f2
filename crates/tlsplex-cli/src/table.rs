//! Columns aligned under a header, as `probe`, `check` and `ctl` print them.

/// A table being built: a header and rows of the same width, each row with optional lines
/// printed under it (a probe's error, say).
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<(Vec<String>, Option<String>)>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; `under` is printed beneath it, indented.
    pub fn row(&mut self, cells: Vec<String>, under: Option<String>) {
        self.rows.push((cells, under));
    }

    /// The table as text, one line per row.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for (cells, _) in &self.rows {
            for (width, cell) in widths.iter_mut().zip(cells) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let padded: Vec<String> = cells
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            padded.join("  ").trim_end().to_owned()
        };
        let mut out = line(&mut self.header.iter().copied());
        for (cells, under) in &self.rows {
            out.push('\n');
            out.push_str(&line(&mut cells.iter().map(String::as_str)));
            if let Some(under) = under {
                out.push_str(&format!("\n  └ {under}"));
            }
        }
        out
    }
}
