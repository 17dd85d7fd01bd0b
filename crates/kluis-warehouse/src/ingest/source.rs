//! Input files as rows of raw byte fields in a table's column order: the format, the header, and
//! Parquet rows (CSV rows come from [`super::blocks`]).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, UInt64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{IngestError, Location};

/// The most columns a table has.
pub const MAX_COLUMNS: usize = 11;

/// A row: its location and its fields in the table's column order (empty = missing).
pub type Fields<'a> = [&'a [u8]; MAX_COLUMNS];

/// What a reader found at one location.
pub enum Row<'r, 'a> {
    Fields(&'r Fields<'a>),
    /// A CSV line with the wrong number of fields.
    Shape {
        found: usize,
        expected: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Parquet,
}

fn format_of(path: &Path) -> Result<Format, IngestError> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") | Some("txt") => return Ok(Format::Csv),
        Some("parquet") | Some("pq") => return Ok(Format::Parquet),
        _ => {}
    }
    // A pipe (`<(zcat persons.csv.gz)`, /dev/stdin) cannot be looked into without using up
    // what it holds, and Parquet cannot be read from one anyway: it is read as CSV.
    let regular = std::fs::metadata(path)
        .map_err(|e| IngestError::file(path, e.to_string()))?
        .is_file();
    if !regular {
        return Ok(Format::Csv);
    }
    let mut magic = [0u8; 4];
    let mut file = File::open(path).map_err(|e| IngestError::file(path, e.to_string()))?;
    let n = file
        .read(&mut magic)
        .map_err(|e| IngestError::file(path, e.to_string()))?;
    Ok(if n == 4 && &magic == b"PAR1" {
        Format::Parquet
    } else {
        Format::Csv
    })
}

/// Maps the file's column names onto the table's: every table column must be there, no others.
pub fn column_map(
    path: &Path,
    found: &[String],
    expected: &[&str],
) -> Result<Vec<usize>, IngestError> {
    let missing: Vec<&str> = expected
        .iter()
        .filter(|name| !found.iter().any(|f| f == *name))
        .copied()
        .collect();
    // A file without a header has a data row there: an INSZ in it is not shown.
    let unknown: Vec<&str> = found
        .iter()
        .filter(|f| !expected.contains(&f.as_str()))
        .map(|f| kluis_model::redact_if_insz(f))
        .collect();
    if !missing.is_empty() || !unknown.is_empty() {
        let mut reason = String::new();
        if !missing.is_empty() {
            reason += &format!("missing column(s) {}", missing.join(", "));
        }
        if !unknown.is_empty() {
            if !reason.is_empty() {
                reason += "; ";
            }
            reason += &format!("unknown column(s) {}", unknown.join(", "));
        }
        reason += &format!("; expected exactly the columns {}", expected.join(","));
        return Err(IngestError::file(path, reason));
    }
    Ok(expected
        .iter()
        .map(|name| found.iter().position(|f| f == name).expect("checked above"))
        .collect())
}

/// Whether the file is read as CSV (by extension, else by content) rather than Parquet.
pub fn is_csv(path: &Path) -> Result<bool, IngestError> {
    Ok(format_of(path)? == Format::Csv)
}

/// The column names of a CSV header record, trimmed, without a byte-order mark.
pub fn header_names(record: &csv::ByteRecord) -> Vec<String> {
    record
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = String::from_utf8_lossy(h);
            // A byte-order mark some spreadsheet programs put first.
            let h = if i == 0 {
                h.trim_start_matches('\u{feff}')
            } else {
                &h
            };
            h.trim().to_owned()
        })
        .collect()
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// A Parquet column as text: the same text a CSV file would hold.
fn as_text(path: &Path, name: &str, column: &ArrayRef) -> Result<StringArray, IngestError> {
    let padded = |values: Vec<Option<String>>| StringArray::from(values);
    // INSZ numbers stored as integers lose their leading zero: put it back.
    if name == kluis_model::schema::persons::INSZ {
        match column.data_type() {
            DataType::Int64 => {
                let a = column.as_primitive::<Int64Type>();
                return Ok(padded(
                    a.iter().map(|v| v.map(|v| format!("{v:011}"))).collect(),
                ));
            }
            DataType::UInt64 => {
                let a = column.as_primitive::<UInt64Type>();
                return Ok(padded(
                    a.iter().map(|v| v.map(|v| format!("{v:011}"))).collect(),
                ));
            }
            _ => {}
        }
    }
    let text = cast(column, &DataType::Utf8).map_err(|e| {
        IngestError::file(
            path,
            format!(
                "column {name} ({}) cannot be read as text: {e}",
                column.data_type()
            ),
        )
    })?;
    Ok(text.as_string::<i32>().clone())
}

/// Calls `row` for every row of the Parquet file at `path`, with fields in `columns` order, as
/// the text a CSV file would hold. Stops at the first error `row` returns.
pub fn parquet_rows(
    path: &Path,
    columns: &[&str],
    mut row: impl FnMut(Location, Row) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let file = File::open(path).map_err(|e| IngestError::file(path, e.to_string()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| IngestError::file(path, format!("not a readable Parquet file: {e}")))?;
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let map = column_map(path, &names, columns)?;
    let reader = builder
        .with_batch_size(crate::BATCH_ROWS)
        .build()
        .map_err(|e| IngestError::file(path, e.to_string()))?;
    let mut row_number = 0u64;
    for batch in reader {
        let batch =
            batch.map_err(|e| IngestError::file(path, format!("unreadable Parquet: {e}")))?;
        let texts = map
            .iter()
            .zip(columns)
            .map(|(&i, name)| as_text(path, name, batch.column(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut fields: Fields = [&[]; MAX_COLUMNS];
        for r in 0..batch.num_rows() {
            row_number += 1;
            for (slot, text) in fields.iter_mut().zip(&texts) {
                *slot = if text.is_null(r) {
                    &[]
                } else {
                    trim(text.value(r).as_bytes())
                };
            }
            row(Location::Row(row_number), Row::Fields(&fields))?;
        }
    }
    Ok(())
}
