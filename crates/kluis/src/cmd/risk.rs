//! `kluis risk`: re-identification risk of a CSV or Parquet microdata file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use kluis_risk::{MissingPolicy, RiskOptions, RiskReport, analyse, read_table};

use crate::exit::bad_input;

#[derive(clap::Args)]
pub struct Args {
    /// The microdata file (.csv or .parquet).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Quasi-identifier columns, comma-separated.
    #[arg(long, value_delimiter = ',', required = true, value_name = "A,B,...")]
    quasi_identifiers: Vec<String>,
    /// Column identifying the person (or other unit) behind each record; figures are then also
    /// counted in distinct units.
    #[arg(long, value_name = "COL")]
    unit: Option<String>,
    /// Sensitive columns for l-diversity, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "COL,...")]
    sensitive: Vec<String>,
    /// The k of k-anonymity.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    k: u32,
    /// Prosecutor-risk threshold: records with risk above it are counted (default 1/K).
    #[arg(long, value_name = "RISK")]
    threshold: Option<f64>,
    /// Let a missing quasi-identifier match any value instead of being a value of its own.
    #[arg(long)]
    missing_matches_any: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Print reading and analysis times to standard error.
    #[arg(long)]
    timings: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(t) = args.threshold
        && !(0.0..=1.0).contains(&t)
    {
        return Err(bad_input(format!(
            "--threshold {t} is not a risk between 0 and 1"
        )));
    }
    let mut columns: Vec<&str> = Vec::new();
    for name in args
        .quasi_identifiers
        .iter()
        .chain(args.unit.iter())
        .chain(args.sensitive.iter())
    {
        if !columns.contains(&name.as_str()) {
            columns.push(name);
        }
    }
    let started = Instant::now();
    let table = read_table(&args.data, &columns).map_err(|e| bad_input(e.to_string()))?;
    let read = started.elapsed();
    let qi: Vec<&str> = args.quasi_identifiers.iter().map(String::as_str).collect();
    let sensitive: Vec<&str> = args.sensitive.iter().map(String::as_str).collect();
    let options = RiskOptions {
        k: args.k,
        missing: if args.missing_matches_any {
            MissingPolicy::MatchesAny
        } else {
            MissingPolicy::OwnValue
        },
        threshold: args.threshold,
    };
    let started = Instant::now();
    let report = analyse(&table, &qi, args.unit.as_deref(), &sensitive, &options)
        .map_err(|e| bad_input(format!("{}: {e}", args.data.display())))?;
    let analysed = started.elapsed();
    if args.timings {
        eprintln!(
            "read {:.3} s, analysis {:.3} s ({} rows)",
            read.as_secs_f64(),
            analysed.as_secs_f64(),
            report.records
        );
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("serialising the report")?
        );
    } else {
        print_text(&report, &args.data);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(r: &RiskReport, data: &std::path::Path) {
    println!(
        "{}: {} records, {} units",
        data.display(),
        r.records,
        r.units
    );
    println!(
        "quasi-identifiers: {}{}",
        r.quasi_identifiers.join(", "),
        if r.missing_matches_any {
            " (missing matches any value)"
        } else {
            ""
        }
    );
    println!("classes: {}, smallest class k_min = {}", r.classes, r.k_min);
    println!(
        "records in classes below k = {}: {}",
        r.k, r.records_below_k
    );
    println!("sample uniques: {}", r.sample_uniques);
    if let (Some(kmin), Some(below), Some(uniques)) =
        (r.units_k_min, r.units_below_k, r.unit_uniques)
    {
        println!(
            "units: smallest class {kmin} units, {below} units below k, {uniques} unique units"
        );
    }
    for (column, l) in &r.l_diversity {
        println!(
            "l-diversity of {column}: distinct {}, entropy {:.3}",
            l.distinct, l.entropy
        );
    }
    let p = &r.prosecutor_risk;
    println!(
        "prosecutor risk: mean {:.4}, max {:.4}; {} records ({:.2}%) above {:.4}",
        p.mean,
        p.max,
        p.records_above,
        100.0 * p.share_above,
        p.threshold
    );
}
