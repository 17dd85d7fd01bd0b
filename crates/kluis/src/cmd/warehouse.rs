//! `kluis warehouse info --warehouse DIR`: row counts per year, schemas and size on disk.
//! `kluis warehouse export --warehouse DIR --out DIR`: the tables as CSV in the ingest format.

use std::path::PathBuf;
use std::process::ExitCode;

use arrow::datatypes::SchemaRef;
use kluis_warehouse::{Source, Warehouse};

use crate::exit::bad_input;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Row counts per year, the schemas, and the size on disk.
    Info {
        #[arg(long)]
        warehouse: PathBuf,
    },
    /// Write OUT/persons.csv and OUT/person_years.csv in the format `kluis ingest` reads.
    Export {
        #[arg(long)]
        warehouse: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

fn open(dir: &PathBuf) -> anyhow::Result<Warehouse> {
    Warehouse::open(dir).map_err(|e| match e {
        kluis_warehouse::Error::NotAWarehouse(_) | kluis_warehouse::Error::Manifest { .. } => {
            bad_input(e.to_string())
        }
        other => anyhow::Error::new(other),
    })
}

fn size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < units.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[unit])
    }
}

fn print_schema(name: &str, schema: &SchemaRef) {
    println!("schema {name}:");
    for f in schema.fields() {
        println!(
            "  {:<26} {:<8}{}",
            f.name(),
            f.data_type().to_string(),
            if f.is_nullable() { "" } else { " not null" }
        );
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Info { warehouse } => {
            let info = open(&warehouse)?.info()?;
            let m = &info.manifest;
            println!(
                "warehouse {} (format {} {}, created {} by {})",
                info.dir.display(),
                m.format,
                m.format_version,
                m.created_at,
                m.created_by
            );
            match &m.source {
                Source::Generated {
                    seed,
                    persons_requested,
                    calibration,
                    calibration_sha256,
                } => println!(
                    "source: generated, seed {seed}, {persons_requested} persons, calibration {calibration} (sha256 {calibration_sha256})"
                ),
                Source::Ingested {
                    persons_file,
                    person_years_file,
                    rejected_rows,
                } => println!(
                    "source: ingested from {persons_file} and {person_years_file}, {rejected_rows} bad row(s) left out"
                ),
            }
            println!(
                "persons: {} rows, {}",
                info.persons.rows,
                size(info.persons.bytes)
            );
            let total: u64 = info.person_years.values().map(|t| t.rows).sum();
            let bytes: u64 = info.person_years.values().map(|t| t.bytes).sum();
            println!(
                "person_years: {} rows in {} years, {}",
                total,
                info.person_years.len(),
                size(bytes)
            );
            println!(
                "  {:>4} {:>12} {:>6} {:>10}",
                "year", "rows", "files", "size"
            );
            for (year, t) in &info.person_years {
                println!(
                    "  {:>4} {:>12} {:>6} {:>10}",
                    year,
                    t.rows,
                    t.files,
                    size(t.bytes)
                );
            }
            print_schema("persons", &info.persons_schema);
            print_schema("person_years", &info.person_years_schema);
            println!("size on disk: {}", size(info.total_bytes));
        }
        Command::Export { warehouse, out } => {
            let summary = kluis_warehouse::export::export_csv(&open(&warehouse)?, &out)?;
            println!(
                "wrote {} ({} persons) and {} ({} person-years)",
                summary.persons_file.display(),
                summary.persons,
                summary.person_years_file.display(),
                summary.person_years
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
