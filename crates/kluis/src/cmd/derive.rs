//! `kluis derive --input FILE --output FILE`: appends national origin, Statbel origin and
//! migration background to every row of a CSV or Parquet file (format chosen by extension).
//!
//! A bad cell stops the run with file, row, column, value and the accepted forms; the output is
//! written to a temporary file beside the target and only renamed into place when complete.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use kluis_model::codelists::COUNTRY_FORMS;
use kluis_model::{Background, Country, MigrationThresholds, country, redact_if_insz};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::exit::bad_input;
use crate::table_file::{TableFormat, write_atomically};

#[derive(clap::Args)]
pub struct Args {
    /// CSV or Parquet file with the input columns (extra columns are passed through).
    #[arg(long)]
    input: PathBuf,
    /// Where to write the rows with the derived columns appended (.csv or .parquet).
    #[arg(long)]
    output: PathBuf,
}

/// The input columns, in the order `derive_row` takes them.
const INPUT_COLUMNS: [&str; 8] = [
    "current_nationality",
    "first_nationality",
    "father_first_nationality",
    "mother_first_nationality",
    "country_of_birth",
    "registration_year",
    "naturalisation_year",
    "reference_year",
];

const OUTPUT_COLUMNS: [&str; 4] = [
    "origin_country",
    "origin_group",
    "statbel_origin",
    "migration_background",
];

/// Where a cell sits, for error messages.
struct CellAt<'a> {
    file: &'a Path,
    row: usize,
}

impl CellAt<'_> {
    fn error(&self, column: &str, value: &str, accepted: &str) -> anyhow::Error {
        bad_input(format!(
            "{}: row {}, column {column}: '{}' is not accepted; expected {accepted}",
            self.file.display(),
            self.row,
            redact_if_insz(value),
        ))
    }

    fn country(&self, column: &str, value: &str) -> anyhow::Result<Option<&'static Country>> {
        if value.trim().is_empty() {
            return Ok(None);
        }
        country(value)
            .map(Some)
            .ok_or_else(|| self.error(column, value, &format!("{COUNTRY_FORMS}, or empty")))
    }

    fn year(&self, column: &str, value: &str, required: bool) -> anyhow::Result<Option<i32>> {
        let value = value.trim();
        if value.is_empty() && !required {
            return Ok(None);
        }
        match value.parse::<i32>() {
            Ok(year) if (1850..=2100).contains(&year) => Ok(Some(year)),
            _ => Err(self.error(
                column,
                value,
                if required {
                    "a year 1850-2100"
                } else {
                    "a year 1850-2100, or empty"
                },
            )),
        }
    }
}

/// The four derived values for one row's input cells.
fn derive_row(at: &CellAt, cells: [&str; 8]) -> anyhow::Result<[String; 4]> {
    let c = INPUT_COLUMNS;
    let background = Background {
        current_nationality: at.country(c[0], cells[0])?,
        first_nationality: at.country(c[1], cells[1])?,
        father_first_nationality: at.country(c[2], cells[2])?,
        mother_first_nationality: at.country(c[3], cells[3])?,
        country_of_birth: at.country(c[4], cells[4])?,
        registration_year: at.year(c[5], cells[5], false)?,
        naturalisation_year: at.year(c[6], cells[6], false)?,
    };
    let reference_year = at.year(c[7], cells[7], true)?.expect("required year");
    let origin = background.origin();
    Ok([
        origin.country.map(|c| c.alpha2.clone()).unwrap_or_default(),
        origin.group.code().to_owned(),
        background.statbel_origin().code().to_owned(),
        background
            .migration_background(reference_year, &MigrationThresholds::default())
            .code()
            .to_owned(),
    ])
}

fn column_indices(file: &Path, names: &[String]) -> anyhow::Result<[usize; 8]> {
    if let Some(clash) = OUTPUT_COLUMNS
        .iter()
        .find(|c| names.iter().any(|n| n == *c))
    {
        return Err(bad_input(format!(
            "{}: already has a column {clash}; derive appends {} and will not overwrite",
            file.display(),
            OUTPUT_COLUMNS.join(", ")
        )));
    }
    let mut indices = [0; 8];
    for (slot, wanted) in indices.iter_mut().zip(INPUT_COLUMNS) {
        *slot = names.iter().position(|n| n == wanted).ok_or_else(|| {
            bad_input(format!(
                "{}: no column {wanted}; the input needs {}",
                file.display(),
                INPUT_COLUMNS.join(", ")
            ))
        })?;
    }
    Ok(indices)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let input_format = TableFormat::of(&args.input)?;
    let output_format = TableFormat::of(&args.output)?;
    if input_format != output_format {
        return Err(bad_input(format!(
            "--input is {} but --output is {}; derive keeps the format (same extension on both)",
            input_format.name(),
            output_format.name()
        )));
    }
    let rows = write_atomically(&args.output, |out| match input_format {
        TableFormat::Csv => derive_csv(&args.input, out),
        TableFormat::Parquet => derive_parquet(&args.input, out),
    })?;
    eprintln!("derived {rows} rows into {}", args.output.display());
    Ok(ExitCode::SUCCESS)
}

fn derive_csv(input: &Path, out: &File) -> anyhow::Result<usize> {
    let mut reader = csv::Reader::from_path(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| bad_input(format!("{}: bad CSV header: {e}", input.display())))?
        .iter()
        .map(str::to_owned)
        .collect();
    let indices = column_indices(input, &headers)?;
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(out));
    writer.write_record(headers.iter().map(String::as_str).chain(OUTPUT_COLUMNS))?;
    let mut record = csv::StringRecord::new();
    let mut row = 0;
    while reader.read_record(&mut record).map_err(|e| {
        bad_input(format!(
            "{}: row {}: bad CSV: {e}",
            input.display(),
            row + 1
        ))
    })? {
        row += 1;
        let at = CellAt { file: input, row };
        let derived = derive_row(&at, indices.map(|i| record.get(i).unwrap_or("")))?;
        writer.write_record(record.iter().chain(derived.iter().map(String::as_str)))?;
    }
    writer.flush()?;
    Ok(row)
}

fn derive_parquet(input: &Path, out: &File) -> anyhow::Result<usize> {
    let file = File::open(input).with_context(|| format!("cannot read {}", input.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| {
            bad_input(format!(
                "{}: not a readable Parquet file: {e}",
                input.display()
            ))
        })?
        .build()?;
    let input_schema = arrow::record_batch::RecordBatchReader::schema(&reader);
    let names: Vec<String> = input_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let indices = column_indices(input, &names)?;
    let mut fields: Vec<Field> = input_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(OUTPUT_COLUMNS[0], DataType::Utf8, true));
    fields.extend(
        OUTPUT_COLUMNS[1..]
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, false)),
    );
    let output_schema = Arc::new(Schema::new(fields));
    let mut writer = ArrowWriter::try_new(out, output_schema.clone(), None)?;
    let mut row = 0;
    for batch in reader {
        let batch = batch?;
        let inputs: Vec<StringArray> = indices
            .iter()
            .map(|&i| {
                let cast = arrow::compute::cast(batch.column(i), &DataType::Utf8)?;
                Ok(cast
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("cast to Utf8")
                    .clone())
            })
            .collect::<anyhow::Result<_>>()?;
        let mut builders: [StringBuilder; 4] = std::array::from_fn(|_| StringBuilder::new());
        for i in 0..batch.num_rows() {
            row += 1;
            let cells = std::array::from_fn(|c| {
                if inputs[c].is_null(i) {
                    ""
                } else {
                    inputs[c].value(i)
                }
            });
            let derived = derive_row(&CellAt { file: input, row }, cells)?;
            if derived[0].is_empty() {
                builders[0].append_null();
            } else {
                builders[0].append_value(&derived[0]);
            }
            for (builder, value) in builders[1..].iter_mut().zip(&derived[1..]) {
                builder.append_value(value);
            }
        }
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.extend(
            builders
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        writer.write(&RecordBatch::try_new(output_schema.clone(), columns)?)?;
    }
    writer.close()?;
    Ok(row)
}
