//! `kluis risk`: re-identification risk of a CSV or Parquet microdata file (`--data`), or of a
//! project's extract judged against the population in the warehouse (`--project --extract`,
//! provider side, steward only).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use kluis_risk::{MissingPolicy, RiskOptions, RiskReport, analyse, read_table};

use crate::exit::bad_input;
use crate::trust::{Globals, state_error, today};

#[derive(clap::Args)]
pub struct Args {
    /// The microdata file (.csv or .parquet).
    #[arg(long, value_name = "FILE", required_unless_present = "extract", conflicts_with_all = ["extract", "project"])]
    data: Option<PathBuf>,
    /// Quasi-identifier columns, comma-separated (with --extract: default the authorisation's).
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "extract",
        value_name = "A,B,..."
    )]
    quasi_identifiers: Vec<String>,
    /// An extract written by `kluis extract` (in the clear), judged against the population of
    /// the project's warehouse.
    #[arg(long, value_name = "DIR", requires_all = ["project", "warehouse"])]
    extract: Option<PathBuf>,
    /// The project the extract belongs to.
    #[arg(long, value_name = "ID")]
    project: Option<String>,
    /// The warehouse the extract was drawn from.
    #[arg(long, env = "KLUIS_WAREHOUSE", value_name = "DIR")]
    warehouse: Option<PathBuf>,
    /// Column identifying the person (or other unit) behind each record; figures are then also
    /// counted in distinct units.
    #[arg(long, value_name = "COL")]
    unit: Option<String>,
    /// Sensitive columns for l-diversity, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "COL,...")]
    sensitive: Vec<String>,
    /// The k of k-anonymity (default 5; with --extract, the authorisation's).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    k: Option<u32>,
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

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    if let Some(extract) = &args.extract {
        return run_on_extract(&args, extract, globals);
    }
    let data = args
        .data
        .clone()
        .expect("clap requires --data without --extract");
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
    let table = read_table(&data, &columns).map_err(|e| bad_input(e.to_string()))?;
    let read = started.elapsed();
    let qi: Vec<&str> = args.quasi_identifiers.iter().map(String::as_str).collect();
    let sensitive: Vec<&str> = args.sensitive.iter().map(String::as_str).collect();
    let options = RiskOptions {
        k: args.k.unwrap_or(5),
        missing: if args.missing_matches_any {
            MissingPolicy::MatchesAny
        } else {
            MissingPolicy::OwnValue
        },
        threshold: args.threshold,
    };
    let started = Instant::now();
    let report = analyse(&table, &qi, args.unit.as_deref(), &sensitive, &options)
        .map_err(|e| bad_input(format!("{}: {e}", data.display())))?;
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
        print_text(&report, &data);
    }
    Ok(ExitCode::SUCCESS)
}

/// The extract's person-years judged against the population, with the authorisation's limits
/// (or the quasi-identifiers and k given on the command line).
fn run_on_extract(
    args: &Args,
    dir: &std::path::Path,
    globals: &Globals,
) -> anyhow::Result<ExitCode> {
    let project_id = args.project.as_deref().expect("clap requires --project");
    let warehouse_dir = args
        .warehouse
        .as_deref()
        .expect("clap requires --warehouse");
    let data = dir.join(kluis_extract::DATA_PARQUET);
    if !data.exists() {
        let sealed = dir.join(format!("{}.age", kluis_extract::DATA_PARQUET));
        return Err(bad_input(if sealed.exists() {
            format!(
                "{} is encrypted to its recipient; judge the risk on the provider's copy before encryption (risk.json in the extract holds the figures of delivery)",
                sealed.display()
            )
        } else {
            format!(
                "{} has no {}; --extract takes a directory written by `kluis extract`",
                dir.display(),
                kluis_extract::DATA_PARQUET
            )
        }));
    }
    let actor = globals.actor()?;
    let state = globals.open()?;
    let project = state.project(project_id).map_err(state_error)?;
    let grant = project
        .authorise(actor, kluis_project::Role::Steward, "risk", today()?)
        .map_err(state_error)?;
    let authorisation = project.authorisation();
    let mut limits = authorisation.risk.clone();
    if !args.quasi_identifiers.is_empty() {
        limits.quasi_identifiers = args.quasi_identifiers.clone();
    }
    if let Some(k) = args.k {
        limits.k = k;
    }
    let warehouse = kluis_warehouse::Warehouse::open(warehouse_dir)
        .map_err(|e| bad_input(format!("warehouse {}: {e}", warehouse_dir.display())))?;
    let population = grant
        .with_key(|key| kluis_extract::coded_population(&warehouse, authorisation, key))
        .map_err(state_error)?
        .map_err(|e| bad_input(e.to_string()))?;
    let file = std::fs::File::open(&data).with_context(|| format!("opening {}", data.display()))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| bad_input(format!("{}: {e}", data.display())))?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_input(format!("{}: {e}", data.display())))?;
    let schema = population.schema();
    if batches.iter().any(|b| b.schema() != schema) {
        return Err(bad_input(format!(
            "{}: its columns are not those of project {}'s extracts; was it written for another authorisation?",
            data.display(),
            project.id()
        )));
    }
    let delivered = arrow::compute::concat_batches(&schema, &batches)?;
    let report = kluis_extract::assess(&population, &delivered, &limits)
        .map_err(|e| bad_input(format!("{}: {e}", dir.display())))?;
    grant
        .record(serde_json::json!({
            "extract": dir.display().to_string(),
            "k": report.k,
            "person_years_below_k": report.person_years.below_k,
            "trajectory_risk_mean": report.trajectories.journalist_risk_mean,
            "exceeded": report.exceeded,
        }))
        .map_err(state_error)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    for (what, m) in [
        ("person-years", &report.person_years),
        ("trajectories", &report.trajectories),
    ] {
        println!(
            "{what}: {} delivered against {} in the population; smallest population class {}, {} population uniques, {} below k = {}",
            m.records,
            m.population_records,
            m.min_frequency,
            m.population_uniques,
            m.below_k,
            report.k
        );
        println!(
            "  journalist risk: mean {:.4}, max {:.4}; expected re-identifications {:.1}",
            m.journalist_risk_mean, m.journalist_risk_max, m.expected_reidentifications
        );
    }
    println!("quasi-identifiers: {}", report.quasi_identifiers.join(", "));
    println!(
        "trajectory quasi-identifiers: {}",
        report.trajectory_quasi_identifiers.join(", ")
    );
    if report.within_limits() {
        println!("within the authorisation's limits");
    } else {
        for e in &report.exceeded {
            println!("exceeds: {e}");
        }
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
