//! `kluis sdc`: output disclosure control of a table, from microdata (`sdc table`) or from a
//! finished table (`sdc protect`). The engine is `kluis-sdc`; this module reads files and prints.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};
use clap::{ArgGroup, Subcommand};
use kluis_sdc::microdata::Aggregator;
use kluis_sdc::{
    Hierarchy, Release, Report, Rounding, RuleSet, SdcError, Statistic, Table, TableStatus,
};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::exit::bad_input;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: SdcCommand,
}

#[derive(Subcommand)]
enum SdcCommand {
    /// Compute a table with all its margins from microdata (CSV or Parquet), counting persons by
    /// the unit column, and check it: primary rules, secondary suppression, audit.
    Table(TableArgs),
    /// Check finished tables (CSV: one column per dimension, `Total` for margins, `count`, and
    /// optionally `value`, `top1`, `top2`) released together.
    Protect(ProtectArgs),
}

#[derive(clap::Args)]
#[command(group(ArgGroup::new("statistic").required(true).args(["count", "sum", "mean", "min", "max"])))]
struct TableArgs {
    /// Microdata file: .csv, or .parquet / .pq.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// The column identifying the privacy unit (the person's pseudonym); every rule counts these.
    #[arg(long, value_name = "COL")]
    unit: String,
    /// Dimension columns, comma-separated.
    #[arg(long, value_name = "A[,B...]", value_delimiter = ',', required = true)]
    by: Vec<String>,
    /// Count rows.
    #[arg(long)]
    count: bool,
    /// Sum of a measure column.
    #[arg(long, value_name = "COL")]
    sum: Option<String>,
    /// Mean of a measure column.
    #[arg(long, value_name = "COL")]
    mean: Option<String>,
    /// Minimum of a measure column.
    #[arg(long, value_name = "COL")]
    min: Option<String>,
    /// Maximum of a measure column.
    #[arg(long, value_name = "COL")]
    max: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct ProtectArgs {
    /// A finished table (CSV); repeat for tables released together.
    #[arg(long, value_name = "FILE", required = true)]
    table: Vec<PathBuf>,
    /// A hierarchy for a dimension: CSV `code,parent`, top codes with parent `Total`.
    #[arg(long, value_name = "DIM=FILE")]
    hierarchy: Vec<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct Common {
    /// Rule set: a built-in name (default) or a TOML file.
    #[arg(long, value_name = "FILE|NAME", default_value = "default")]
    rules: String,
    /// Rounding of published values: none, base:N, opensafely, midpoint6.
    #[arg(long, value_name = "METHOD", default_value = "none")]
    rounding: String,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Threads for reading and aggregating.
    #[arg(long, value_name = "N", default_value_t = default_threads())]
    threads: usize,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        SdcCommand::Table(a) => run_table(a),
        SdcCommand::Protect(a) => run_protect(a),
    }
}

fn sdc_error(e: SdcError) -> anyhow::Error {
    if e.is_input() {
        bad_input(e.to_string())
    } else {
        anyhow::Error::new(e)
    }
}

fn settings(common: &Common) -> anyhow::Result<(RuleSet, Rounding)> {
    let rules = RuleSet::load(&common.rules).map_err(sdc_error)?;
    let rounding: Rounding = common.rounding.parse().map_err(sdc_error)?;
    Ok((rules, rounding))
}

fn run_table(a: TableArgs) -> anyhow::Result<ExitCode> {
    let (rules, rounding) = settings(&a.common)?;
    let (statistic, measure) = if a.count {
        (Statistic::Count, None)
    } else if let Some(m) = a.sum.clone() {
        (Statistic::Sum, Some(m))
    } else if let Some(m) = a.mean.clone() {
        (Statistic::Mean, Some(m))
    } else if let Some(m) = a.min.clone() {
        (Statistic::Min, Some(m))
    } else {
        (Statistic::Max, a.max.clone())
    };
    let name = a
        .data
        .file_stem()
        .map_or("table".into(), |s| s.to_string_lossy().into_owned());
    let spec = Spec {
        unit: &a.unit,
        by: &a.by,
        measure: measure.as_deref(),
    };
    let agg =
        Aggregator::new(&name, a.by.clone(), statistic, measure.clone()).map_err(sdc_error)?;
    let agg = match extension(&a.data)?.as_str() {
        "csv" => read_csv(&a.data, &spec, agg, a.common.threads)?,
        _ => read_parquet(&a.data, &spec, agg)?,
    };
    let table = agg.finish(a.common.threads).map_err(sdc_error)?;
    report(&[table], &[], &rules, rounding, a.common.json)
}

fn run_protect(a: ProtectArgs) -> anyhow::Result<ExitCode> {
    let (rules, rounding) = settings(&a.common)?;
    let mut tables = Vec::new();
    for path in &a.table {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let name = path
            .file_stem()
            .map_or("table".into(), |s| s.to_string_lossy().into_owned());
        let mut table =
            kluis_sdc::input::read_table(BufReader::new(file), &path.display().to_string())
                .map_err(sdc_error)?;
        table.name = name;
        tables.push(table);
    }
    let mut hierarchies = Vec::new();
    for spec in &a.hierarchy {
        let (dim, file) = spec.split_once('=').ok_or_else(|| {
            bad_input(format!(
                "--hierarchy `{spec}`: expected DIM=FILE, e.g. --hierarchy region=regions.csv"
            ))
        })?;
        if !tables.iter().any(|t| t.dimensions.iter().any(|d| d == dim)) {
            return Err(bad_input(format!(
                "--hierarchy `{spec}`: no table has a dimension `{dim}`; dimensions: {}",
                tables
                    .iter()
                    .flat_map(|t| t.dimensions.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let f = File::open(file).with_context(|| format!("cannot open {file}"))?;
        hierarchies.push(
            kluis_sdc::input::read_hierarchy(BufReader::new(f), dim, file).map_err(sdc_error)?,
        );
    }
    report(&tables, &hierarchies, &rules, rounding, a.common.json)
}

fn report(
    tables: &[Table],
    hierarchies: &[Hierarchy],
    rules: &RuleSet,
    rounding: Rounding,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let reports = kluis_sdc::protect(
        Release {
            tables,
            hierarchies,
            published: &[],
            withheld: &[],
        },
        rules,
        rounding,
    )
    .map_err(sdc_error)?;
    if json {
        let value = if let [single] = reports.as_slice() {
            serde_json::to_value(single)?
        } else {
            serde_json::json!({ "status": worst(&reports), "tables": reports })
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        for (i, r) in reports.iter().enumerate() {
            if i > 0 {
                println!();
            }
            print!("{}", r.to_text());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn worst(reports: &[Report]) -> TableStatus {
    let rank = |s: TableStatus| match s {
        TableStatus::Pass => 0,
        TableStatus::Review => 1,
        TableStatus::Fail => 2,
    };
    reports
        .iter()
        .map(|r| r.status)
        .max_by_key(|s| rank(*s))
        .unwrap_or(TableStatus::Pass)
}

fn extension(path: &Path) -> anyhow::Result<String> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Ok("csv".into()),
        Some("parquet" | "pq") => Ok("parquet".into()),
        _ => Err(bad_input(format!(
            "{}: unknown data format; use a .csv or .parquet file",
            path.display()
        ))),
    }
}

struct Spec<'a> {
    unit: &'a str,
    by: &'a [String],
    measure: Option<&'a str>,
}

impl Spec<'_> {
    fn columns(&self) -> Vec<&str> {
        let mut cols = vec![self.unit];
        cols.extend(self.by.iter().map(String::as_str));
        cols.extend(self.measure);
        cols
    }
}

fn missing_column(path: &Path, col: &str, available: &[String]) -> anyhow::Error {
    bad_input(format!(
        "{}: no column `{col}`; columns: {}",
        path.display(),
        available.join(", ")
    ))
}

fn parse_measure(raw: &[u8]) -> Option<Option<f64>> {
    match raw {
        b"" | b"NA" | b"NaN" | b"nan" | b"null" | b"NULL" => Some(None),
        _ => std::str::from_utf8(raw)
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Some),
    }
}

/// Reads a CSV file, splitting it at line boundaries over `threads` readers when no field is quoted.
fn read_csv(
    path: &Path,
    spec: &Spec<'_>,
    agg: Aggregator,
    threads: usize,
) -> anyhow::Result<Aggregator> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let header_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |p| p + 1);
    let headers: Vec<String> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&bytes[..header_end])
        .records()
        .next()
        .transpose()
        .with_context(|| format!("{}: cannot read the header", path.display()))?
        .map(|r| r.iter().map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    let index: Vec<usize> = spec
        .columns()
        .iter()
        .map(|c| {
            headers
                .iter()
                .position(|h| h == c)
                .ok_or_else(|| missing_column(path, c, &headers))
        })
        .collect::<anyhow::Result<_>>()?;
    let body = &bytes[header_end..];
    // Quoted fields may hold newlines: then only a single reader finds the record boundaries.
    let parts = if body.contains(&b'"') {
        1
    } else {
        threads.max(1)
    };
    let mut starts = vec![0usize];
    for k in 1..parts {
        let guess = body.len() * k / parts;
        let from = (*starts.last().expect("non-empty")).max(guess);
        let next = body[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |p| from + p + 1);
        starts.push(next);
    }
    starts.push(body.len());
    // Line number of each part's first record, for messages.
    let mut first_line = vec![2u64];
    for w in starts.windows(2).take(parts - 1) {
        let lines = body[w[0]..w[1]].iter().filter(|&&b| b == b'\n').count() as u64;
        first_line.push(first_line.last().expect("non-empty") + lines);
    }
    let results: Vec<anyhow::Result<Aggregator>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..parts)
            .map(|k| {
                let chunk = &body[starts[k]..starts[k + 1]];
                let index = &index;
                let part = agg.empty_like();
                let line0 = first_line[k];
                scope.spawn(move || read_csv_part(path, chunk, index, part, line0))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("reader thread"))
            .collect()
    });
    let mut merged = agg;
    for part in results {
        merged.merge(part?).map_err(sdc_error)?;
    }
    Ok(merged)
}

fn read_csv_part(
    path: &Path,
    chunk: &[u8],
    index: &[usize],
    mut agg: Aggregator,
    first_line: u64,
) -> anyhow::Result<Aggregator> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(chunk);
    let mut record = csv::ByteRecord::new();
    let ndims = index.len() - 1 - usize::from(agg.statistic() != Statistic::Count);
    let mut line = first_line;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(bad_input(format!("{}: line {line}: {e}", path.display()))),
        }
        if record.len() <= *index.iter().max().expect("columns") {
            return Err(bad_input(format!(
                "{}: line {line}: {} fields, fewer than the header has",
                path.display(),
                record.len()
            )));
        }
        let mut dims: [&[u8]; kluis_sdc::microdata::MAX_DIMS] =
            [b""; kluis_sdc::microdata::MAX_DIMS];
        for (slot, &j) in dims.iter_mut().zip(&index[1..=ndims]) {
            *slot = trim(&record[j]);
        }
        let measure = match index.get(ndims + 1) {
            None => None,
            Some(&j) => parse_measure(&record[j]).ok_or_else(|| {
                bad_input(format!(
                    "{}: line {line}, column `{}`: `{}` is not a number; accepted: a number, or empty/NA for a missing value",
                    path.display(),
                    agg.measure().unwrap_or_default(),
                    String::from_utf8_lossy(&record[j])
                ))
            })?,
        };
        let unit = trim(&record[index[0]]);
        if unit.is_empty() {
            return Err(bad_input(format!(
                "{}: line {line}: the unit column is empty; every row needs its unit",
                path.display()
            )));
        }
        agg.push(unit, &dims[..ndims], measure, line)
            .map_err(|e| bad_input(format!("{}: {}", path.display(), e.message())))?;
        line += 1;
    }
    Ok(agg)
}

fn trim(field: &[u8]) -> &[u8] {
    field.trim_ascii()
}

/// Reads a Parquet file batch by batch, only the columns the table needs.
fn read_parquet(path: &Path, spec: &Spec<'_>, mut agg: Aggregator) -> anyhow::Result<Aggregator> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
        bad_input(format!(
            "{}: not a readable Parquet file: {e}",
            path.display()
        ))
    })?;
    let schema = builder.schema().clone();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut roots = Vec::new();
    for c in spec.columns() {
        roots.push(
            names
                .iter()
                .position(|n| n == c)
                .ok_or_else(|| missing_column(path, c, &names))?,
        );
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(65536)
        .build()
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut row = 1u64;
    let ndims = spec.by.len();
    for batch in reader {
        let batch = batch.with_context(|| format!("cannot read {}", path.display()))?;
        let column = |name: &str| -> anyhow::Result<arrow::array::ArrayRef> {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| missing_column(path, name, &names))
        };
        let unit = column(spec.unit)?;
        let dims: Vec<arrow::array::ArrayRef> = spec
            .by
            .iter()
            .map(|d| {
                let c = column(d)?;
                arrow::compute::cast(&c, &DataType::Utf8).with_context(|| {
                    format!("{}: column `{d}` cannot be read as text", path.display())
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let dims: Vec<&arrow::array::StringArray> =
            dims.iter().map(|d| d.as_string::<i32>()).collect();
        let measure = match spec.measure {
            None => None,
            Some(m) => Some(
                arrow::compute::cast(&column(m)?, &DataType::Float64).map_err(|e| {
                    bad_input(format!(
                        "{}: column `{m}` is not numeric: {e}",
                        path.display()
                    ))
                })?,
            ),
        };
        let measure = measure.as_ref().map(|m| m.as_primitive::<Float64Type>());
        let unit_text = match unit.data_type() {
            DataType::Int64 | DataType::Int32 => None,
            _ => Some(
                arrow::compute::cast(&unit, &DataType::Utf8).with_context(|| {
                    format!(
                        "{}: column `{}` cannot be read as text",
                        path.display(),
                        spec.unit
                    )
                })?,
            ),
        };
        let mut values: Vec<&[u8]> = Vec::with_capacity(ndims);
        for i in 0..batch.num_rows() {
            values.clear();
            for d in &dims {
                values.push(if d.is_null(i) {
                    b""
                } else {
                    d.value(i).as_bytes()
                });
            }
            let m = measure.and_then(|m| (!m.is_null(i)).then(|| m.value(i)));
            if unit.is_null(i) {
                return Err(bad_input(format!(
                    "{}: row {row}: the unit column `{}` is empty; every row needs its unit",
                    path.display(),
                    spec.unit
                )));
            }
            let pushed = match (&unit_text, unit.data_type()) {
                (Some(t), _) => agg.push(t.as_string::<i32>().value(i).as_bytes(), &values, m, row),
                (None, DataType::Int64) => {
                    agg.push_int_unit(unit.as_primitive::<Int64Type>().value(i), &values, m, row)
                }
                (None, _) => agg.push_int_unit(
                    i64::from(unit.as_primitive::<Int32Type>().value(i)),
                    &values,
                    m,
                    row,
                ),
            };
            pushed.map_err(|e| bad_input(format!("{}: {}", path.display(), e.message())))?;
            row += 1;
        }
    }
    Ok(agg)
}
