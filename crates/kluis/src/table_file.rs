//! Table files on the command line: format by extension, and atomic writes.

use std::fs::File;
use std::path::Path;

use anyhow::Context;

use crate::exit::bad_input;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Csv,
    Parquet,
}

impl TableFormat {
    /// The format a path's extension names: `.csv`, or `.parquet` / `.pq`.
    pub fn of(path: &Path) -> anyhow::Result<TableFormat> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => Ok(TableFormat::Csv),
            Some("parquet" | "pq") => Ok(TableFormat::Parquet),
            _ => Err(bad_input(format!(
                "{}: unknown table format; use a .csv or .parquet file",
                path.display()
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TableFormat::Csv => "CSV",
            TableFormat::Parquet => "Parquet",
        }
    }
}

/// Runs `write` on a temporary file beside `target` and renames it into place only when `write`
/// succeeds; on failure the temporary file is removed and `target` is untouched.
pub fn write_atomically<T>(
    target: &Path,
    write: impl FnOnce(&File) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".kluis-partial-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let result = write(temp.as_file())?;
    temp.as_file().sync_all()?;
    temp.persist(target)
        .with_context(|| format!("cannot write {}", target.display()))?;
    Ok(result)
}
