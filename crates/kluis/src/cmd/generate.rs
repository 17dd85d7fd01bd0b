//! `kluis generate --warehouse DIR [--persons N | --scale full] [--seed S] [--calibration FILE]`:
//! a synthetic, calibrated population written as a warehouse, with its calibration report
//! (`calibration.json` in the warehouse, and a table on stdout).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use kluis_synth::{Calibration, GenerateError, GenerateOptions, REPORT_FILE};

use crate::exit::bad_input;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Scale {
    /// The full Belgian employee population of the calibration (about 5 million persons).
    Full,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("size").required(true).args(["persons", "scale"])))]
pub struct Args {
    /// The warehouse directory to create (a previous warehouse there is replaced).
    #[arg(long)]
    warehouse: PathBuf,
    /// Distinct persons to generate; every count scales with it.
    #[arg(long)]
    persons: Option<u64>,
    /// Generate the full-scale population.
    #[arg(long, value_enum)]
    scale: Option<Scale>,
    /// Seed of every random choice: the same seed gives the same files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Calibration file (TOML) replacing the embedded default.
    #[arg(long)]
    calibration: Option<PathBuf>,
    /// Print only the calibration summary (the last year, the whole period and any check
    /// outside its tolerance); calibration.json always has every check.
    #[arg(long)]
    summary: bool,
    /// Threads drawing persons.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let calibration = match &args.calibration {
        None => Calibration::default_calibration(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
            Calibration::parse(&path.display().to_string(), &text)
                .map_err(|e| bad_input(e.to_string()))?
        }
    };
    let persons = match (args.persons, args.scale) {
        (Some(0), _) => return Err(bad_input("--persons must be at least 1")),
        (Some(n), _) => n,
        (None, _) => calibration.distinct_persons().round() as u64,
    };
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(persons)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} persons ({eta} left)",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let options = GenerateOptions {
        persons,
        seed: args.seed,
        calibration,
        threads: args.threads,
    };
    let generated =
        kluis_synth::generate(&args.warehouse, &options, &|done, _| bar.set_position(done))
            .map_err(|e| match e {
                GenerateError::Calibration(_) => bad_input(e.to_string()),
                GenerateError::Warehouse(kluis_warehouse::Error::NotReplaceable(_)) => {
                    bad_input(e.to_string())
                }
                other => anyhow::Error::new(other),
            })
            .with_context(|| format!("generating into {}", args.warehouse.display()))?;
    bar.finish_and_clear();
    if args.summary {
        print!("{}", generated.report.summary());
    } else {
        print!("{}", generated.report.table());
    }
    let m = &generated.manifest;
    println!(
        "wrote {}: {} persons, {} person-years ({}-{}) in {:.1}s; calibration report in {}",
        args.warehouse.display(),
        m.persons,
        m.person_year_rows(),
        m.years.first().copied().unwrap_or_default(),
        m.years.last().copied().unwrap_or_default(),
        started.elapsed().as_secs_f64(),
        args.warehouse.join(REPORT_FILE).display()
    );
    if generated.report.failed > 0 {
        eprintln!(
            "warning: {} calibration check(s) outside tolerance (marked FAIL above)",
            generated.report.failed
        );
    }
    Ok(ExitCode::SUCCESS)
}
