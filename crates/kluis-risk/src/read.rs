//! Reading the needed columns of a CSV or Parquet file straight into coded columns.
//!
//! Parquet string columns are read as Arrow dictionaries, so each row group's dictionary page is
//! coded once and rows are translated by key. CSV is read with every column as text; an empty
//! cell is missing. Columns are coded on two threads.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

use crate::coded::{CodedColumn, CodedTable, Dictionary};
use crate::error::{Result, RiskError};

const BATCH_ROWS: usize = 64 * 1024;

/// Reads `columns` of the CSV or Parquet file at `path` (chosen by extension) into a coded
/// table whose columns are in the order asked. Duplicated names are read once per mention.
pub fn read_table(path: &Path, columns: &[&str]) -> Result<CodedTable> {
    read_table_with(path, columns, vec![Dictionary::new(); columns.len()])
}

/// Like [`read_table`], continuing the given dictionaries (one per column) so that the codes
/// are comparable with a table read earlier.
pub fn read_table_with(
    path: &Path,
    columns: &[&str],
    dictionaries: Vec<Dictionary>,
) -> Result<CodedTable> {
    if dictionaries.len() != columns.len() {
        return Err(RiskError::Option(format!(
            "{} dictionaries given for {} columns",
            dictionaries.len(),
            columns.len()
        )));
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let (batches, positions) = match extension.as_deref() {
        Some("parquet") | Some("pq") => read_parquet(path, columns)?,
        Some("csv") => read_csv(path, columns)?,
        _ => {
            return Err(RiskError::UnsupportedFile {
                path: path.to_owned(),
            });
        }
    };
    let mut coded: Vec<CodedColumn> = columns
        .iter()
        .zip(dictionaries)
        .map(|(name, dictionary)| CodedColumn::empty(*name, dictionary))
        .collect();
    // Two threads, each coding every other column across all batches.
    let half = coded.len().div_ceil(2);
    let (left, right) = coded.split_at_mut(half);
    let code_part = |part: &mut [CodedColumn], offset: usize| -> Result<()> {
        for (i, column) in part.iter_mut().enumerate() {
            for batch in &batches {
                column.append_array(batch.column(positions[offset + i]).as_ref())?;
            }
        }
        Ok(())
    };
    std::thread::scope(|scope| {
        let handle = scope.spawn(|| code_part(right, half));
        let first = code_part(left, 0);
        let second = handle.join().expect("column coding thread panicked");
        first.and(second)
    })?;
    CodedTable::new(coded)
}

fn read_error(path: &Path, error: impl std::fmt::Display) -> RiskError {
    RiskError::Read {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

/// Position of each asked column in the file's schema.
fn positions(path: &Path, schema: &Schema, columns: &[&str]) -> Result<Vec<usize>> {
    columns
        .iter()
        .map(|name| {
            schema.index_of(name).map_err(|_| RiskError::MissingColumn {
                path: path.to_owned(),
                column: (*name).to_owned(),
                available: schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        })
        .collect()
}

/// Returns the batches (holding only the asked columns, deduplicated) and, for each asked
/// column, its position in those batches.
fn read_parquet(path: &Path, columns: &[&str]) -> Result<(Vec<RecordBatch>, Vec<usize>)> {
    let file = File::open(path).map_err(|e| read_error(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| read_error(path, e))?;
    let file_schema = builder.schema().clone();
    let wanted = positions(path, &file_schema, columns)?;
    // Ask for strings as dictionaries so dictionary-encoded pages are not expanded.
    let hinted: SchemaRef = Arc::new(Schema::new(
        file_schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Arc::new(Field::new(
                    f.name(),
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                    f.is_nullable(),
                )),
                _ => f.clone(),
            })
            .collect::<Vec<_>>(),
    ));
    let file = File::open(path).map_err(|e| read_error(path, e))?;
    let options = ArrowReaderOptions::new().with_schema(hinted);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
        .map_err(|e| read_error(path, e))?;
    let mut roots: Vec<usize> = wanted.clone();
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| read_error(path, e))?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(path, e))?;
    let positions = wanted
        .iter()
        .map(|w| roots.binary_search(w).expect("projected"))
        .collect();
    Ok((batches, positions))
}

fn read_csv(path: &Path, columns: &[&str]) -> Result<(Vec<RecordBatch>, Vec<usize>)> {
    let header = csv::Reader::from_path(path)
        .and_then(|mut r| r.headers().cloned())
        .map_err(|e| read_error(path, e))?;
    let schema = Schema::new(
        header
            .iter()
            .map(|name| Field::new(name, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let wanted = positions(path, &schema, columns)?;
    let mut roots: Vec<usize> = wanted.clone();
    roots.sort_unstable();
    roots.dedup();
    let file = File::open(path).map_err(|e| read_error(path, e))?;
    let reader = arrow::csv::ReaderBuilder::new(Arc::new(schema))
        .with_header(true)
        .with_batch_size(BATCH_ROWS)
        .with_projection(roots.clone())
        .build(file)
        .map_err(|e| read_error(path, e))?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(path, e))?;
    let positions = wanted
        .iter()
        .map(|w| roots.binary_search(w).expect("projected"))
        .collect();
    Ok((batches, positions))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;

    use super::*;

    #[test]
    fn csv_and_parquet_give_the_same_codes() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("d.csv");
        std::fs::write(&csv, "age,sex,other\n30,M,x\n40,,y\n30,F,z\n").unwrap();
        let parquet = dir.path().join("d.parquet");
        let schema = Arc::new(Schema::new(vec![
            Field::new("age", DataType::Int32, true),
            Field::new("sex", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from(vec![30, 40, 30])),
                Arc::new(StringArray::from(vec![Some("M"), None, Some("F")])),
            ],
        )
        .unwrap();
        let mut writer =
            ArrowWriter::try_new(File::create(&parquet).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        for path in [&csv, &parquet] {
            let t = read_table(path, &["sex", "age"]).unwrap();
            assert_eq!(t.names(), vec!["sex", "age"]);
            assert_eq!(t.column("age").unwrap().codes, vec![0, 1, 0]);
            assert_eq!(t.column("age").unwrap().label(1), Some("40"));
            assert_eq!(t.column("sex").unwrap().codes, vec![0, crate::MISSING, 1]);
        }
    }

    #[test]
    fn errors_name_the_file_and_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("d.csv");
        std::fs::write(&csv, "age,sex\n30,M\n").unwrap();
        let e = read_table(&csv, &["age", "nationality"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("d.csv") && e.contains("'nationality'") && e.contains("age, sex"),
            "{e}"
        );
        let e = read_table(&dir.path().join("absent.parquet"), &["age"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("absent.parquet"), "{e}");
        let e = read_table(&dir.path().join("d.xlsx"), &["age"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("d.xlsx") && e.contains(".csv or .parquet"),
            "{e}"
        );
    }
}
