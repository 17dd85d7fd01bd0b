//! Export of a warehouse to CSV in the documented ingest format, so `kluis ingest` reads it back
//! into identical tables: a header of column names, INSZ as 11 digits, dates as `YYYY-MM-DD`,
//! empty fields for missing values.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Int32Type, Int64Type};

use crate::dates::write_date;
use crate::error::{Error, Result};
use crate::read::{Batches, Warehouse};

/// File names written by [`export_csv`].
pub const PERSONS_CSV: &str = "persons.csv";
pub const PERSON_YEARS_CSV: &str = "person_years.csv";

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub persons_file: PathBuf,
    pub persons: u64,
    pub person_years_file: PathBuf,
    pub person_years: u64,
}

/// Writes `OUT/persons.csv` and `OUT/person_years.csv` (all years, ascending), 0600 (they hold
/// INSZ numbers; `OUT` is created 0700 when it does not exist).
pub fn export_csv(warehouse: &Warehouse, out: &Path) -> Result<ExportSummary> {
    crate::write::private_dir(out)?;
    let persons_file = out.join(PERSONS_CSV);
    let persons = write_atomically(&persons_file, |w| {
        write_batches(warehouse.persons_batches()?, w, &persons_file)
    })?;
    let person_years_file = out.join(PERSON_YEARS_CSV);
    let person_years = write_atomically(&person_years_file, |w| {
        let mut rows = 0;
        let mut header = true;
        for &year in warehouse.years() {
            rows += write_table(
                warehouse.person_years_batches(year)?,
                w,
                &person_years_file,
                header,
            )?;
            header = false;
        }
        if header {
            write_header(
                &kluis_model::schema::person_years_schema(),
                w,
                &person_years_file,
            )?;
        }
        Ok(rows)
    })?;
    Ok(ExportSummary {
        persons_file,
        persons,
        person_years_file,
        person_years,
    })
}

/// Writes to a temporary file beside `path` and renames it into place when complete.
fn write_atomically(
    path: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> Result<u64>,
) -> Result<u64> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".kluis-export-")
        .tempfile_in(dir)
        .map_err(Error::io(dir))?;
    let mut writer = BufWriter::with_capacity(1 << 20, tmp.reopen().map_err(Error::io(path))?);
    let rows = body(&mut writer)?;
    writer.flush().map_err(Error::io(path))?;
    drop(writer);
    tmp.persist(path).map_err(|e| Error::io(path)(e.error))?;
    Ok(rows)
}

fn write_batches(batches: Batches, w: &mut impl Write, path: &Path) -> Result<u64> {
    write_table(batches, w, path, true)
}

fn write_header(
    schema: &arrow::datatypes::SchemaRef,
    w: &mut impl Write,
    path: &Path,
) -> Result<()> {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    writeln!(w, "{}", names.join(",")).map_err(Error::io(path))
}

fn write_table(batches: Batches, w: &mut impl Write, path: &Path, header: bool) -> Result<u64> {
    if header {
        write_header(&batches.schema(), w, path)?;
    }
    let mut rows = 0u64;
    let mut line = Vec::with_capacity(256);
    let mut ints = itoa::Buffer::new();
    for batch in batches {
        let batch = batch?;
        for row in 0..batch.num_rows() {
            line.clear();
            write_row(&batch, row, &mut line, &mut ints);
            w.write_all(&line).map_err(Error::io(path))?;
        }
        rows += batch.num_rows() as u64;
    }
    Ok(rows)
}

fn write_row(batch: &RecordBatch, row: usize, line: &mut Vec<u8>, ints: &mut itoa::Buffer) {
    for (i, column) in batch.columns().iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        if column.is_null(row) {
            continue;
        }
        let name = batch.schema_ref().field(i).name().as_str();
        match column.data_type() {
            // The key column: always 11 digits, leading zeros kept.
            DataType::Int64 if name == kluis_model::schema::persons::INSZ => {
                let v = column.as_primitive::<Int64Type>().value(row);
                let s = ints.format(v);
                line.extend(std::iter::repeat_n(b'0', 11usize.saturating_sub(s.len())));
                line.extend_from_slice(s.as_bytes());
            }
            DataType::Int64 => line.extend_from_slice(
                ints.format(column.as_primitive::<Int64Type>().value(row))
                    .as_bytes(),
            ),
            DataType::Int32 => line.extend_from_slice(
                ints.format(column.as_primitive::<Int32Type>().value(row))
                    .as_bytes(),
            ),
            DataType::Date32 => write_date(column.as_primitive::<Date32Type>().value(row), line),
            DataType::Utf8 => {
                // Code-list values never hold commas, quotes or line breaks.
                line.extend_from_slice(column.as_string::<i32>().value(row).as_bytes())
            }
            other => unreachable!("warehouse schemas have no {other} column"),
        }
    }
    line.push(b'\n');
}
