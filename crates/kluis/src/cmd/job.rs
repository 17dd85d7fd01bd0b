//! `kluis job check JOB [--extract DIR]`: validates a job and plans every output against the
//! policy without running it. `kluis job run JOB --on sample --extract DIR`: runs every output on
//! a phase-1 extract and writes the tables, their per-cell statistics and a report of the cells
//! that would probably fail at full scale.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use kluis_enclave::{
    Enclave, EnclaveError, Job, Limits, PersonYearsSource, RiskOptions, write_results,
};

use crate::exit::bad_input;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(clap::Subcommand)]
enum JobCommand {
    /// Validate job.toml and plan every output against the policy, without running anything.
    Check(CheckArgs),
    /// Run every output and write the tables with their per-cell privacy statistics.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct CheckArgs {
    /// The job directory (holding job.toml and its SQL files).
    job: PathBuf,
    /// An extract directory: its person_years.parquet gives the schema to plan against.
    /// Without it only job.toml and the SQL files' presence are checked.
    #[arg(long)]
    extract: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Target {
    /// A phase-1 extract on the researcher's machine.
    Sample,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The job directory (holding job.toml and its SQL files).
    job: PathBuf,
    /// Where to run.
    #[arg(long, value_enum)]
    on: Target,
    /// The extract directory holding person_years.parquet (and manifest.json).
    #[arg(long)]
    extract: PathBuf,
    /// Results directory, replaced as a whole [default: JOB/results/sample].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Memory DataFusion may use, e.g. 512M or 2G; going over stops the run.
    #[arg(long, default_value = "2G", value_parser = kluis_enclave::parse_memory)]
    memory_limit: usize,
    /// Time each output may take, e.g. 90s or 10m; going over stops the run.
    #[arg(long, default_value = "10m", value_parser = kluis_enclave::parse_duration)]
    time_limit: Duration,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Population rows per sample row, to judge cells at full scale. Default: 1 / the
    /// `sampling_fraction` in the extract's manifest.json, or 1 without one.
    #[arg(long)]
    scale_factor: Option<f64>,
    /// Fewest contributing persons (scaled) a cell needs not to be reported as at risk.
    #[arg(long, default_value_t = 10)]
    min_units: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        JobCommand::Check(a) => check(a),
        JobCommand::Run(a) => run_job(a),
    }
}

fn load_job(dir: &Path) -> anyhow::Result<Job> {
    Job::load(dir).map_err(|e| bad_input(e.to_string()))
}

fn open_extract(dir: &Path, limits: Limits) -> anyhow::Result<Enclave> {
    let parquet = dir.join("person_years.parquet");
    if !parquet.is_file() {
        return Err(bad_input(format!(
            "{}: no person_years.parquet; give the directory of a phase-1 extract",
            dir.display()
        )));
    }
    Enclave::open(PersonYearsSource::Parquet(parquet), limits).map_err(|e| match e {
        EnclaveError::Source { .. } => bad_input(e.to_string()),
        e => anyhow::Error::new(e),
    })
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let job = load_job(&args.job)?;
    let Some(extract) = args.extract else {
        println!(
            "{}: job.toml is valid ({} outputs); give --extract DIR to plan them against person_years",
            job.name,
            job.outputs.len()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let enclave = open_extract(&extract, Limits::default())?;
    let mut refused = Vec::new();
    for output in &job.outputs {
        match enclave.check(output) {
            Ok(c) => println!(
                "ok       {}: {} of `{}` by {}",
                c.name,
                c.statistic,
                c.measure,
                if c.dimensions.is_empty() {
                    "nothing (one cell)".to_string()
                } else {
                    c.dimensions.join(", ")
                }
            ),
            Err(e) if e.is_bad_input() => {
                println!("refused  {e}");
                refused.push(e.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
    if refused.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(bad_input(format!(
            "{} of {} outputs refused:\n  {}",
            refused.len(),
            job.outputs.len(),
            refused.join("\n  ")
        )))
    }
}

/// The scale factor from the extract's manifest: 1 / `sampling_fraction`, when present.
fn manifest_scale(extract: &Path) -> anyhow::Result<Option<f64>> {
    let path = extract.join("manifest.json");
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| bad_input(format!("{}: not valid JSON: {e}", path.display())))?;
    match manifest.get("sampling_fraction") {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(f) if f > 0.0 && f <= 1.0 => Ok(Some(1.0 / f)),
            _ => Err(bad_input(format!(
                "{}: field sampling_fraction is {v}; expected a number in (0, 1]",
                path.display()
            ))),
        },
    }
}

fn run_job(args: RunArgs) -> anyhow::Result<ExitCode> {
    let Target::Sample = args.on;
    let job = load_job(&args.job)?;
    let scale_factor = match args.scale_factor {
        Some(f) if f.is_finite() && f >= 1.0 => f,
        Some(f) => {
            return Err(bad_input(format!(
                "--scale-factor {f}: expected a number of at least 1"
            )));
        }
        None => manifest_scale(&args.extract)?.unwrap_or(1.0),
    };
    if args.threads == 0 {
        return Err(bad_input("--threads 0: expected at least 1"));
    }
    let limits = Limits {
        memory_bytes: args.memory_limit,
        time: args.time_limit,
        threads: args.threads,
    };
    let enclave = open_extract(&args.extract, limits)?;
    let tables = enclave.run_job(&job).map_err(|e| {
        if e.is_bad_input() {
            bad_input(e.to_string())
        } else {
            anyhow::Error::new(e)
        }
    })?;
    let out = args
        .out
        .unwrap_or_else(|| args.job.join("results").join("sample"));
    let risk = RiskOptions {
        scale_factor,
        min_units: args.min_units,
    };
    write_results(&out, &job, &tables, risk)
        .with_context(|| format!("writing results to {}", out.display()))?;
    for t in &tables {
        let at_risk = t
            .cells
            .iter()
            .filter(|c| (c.stats.nonnull_units as f64 * scale_factor) < args.min_units as f64)
            .count();
        println!(
            "{}: {} cells with margins, {} probably below {} persons at full scale",
            t.name,
            t.cells.len(),
            at_risk,
            args.min_units
        );
    }
    println!("results written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}
