//! `kluis extract --project ID --out DIR --warehouse DIR [--seed S] [--recipient AGE_KEY]`: the
//! phase-1 delivery of a project (steward only), and `kluis extract verify DIR`, which re-checks
//! an extract's manifest hashes (for the recipient).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use kluis_extract::{ExtractOptions, coded_population, parse_recipient, verify, write_extract};
use kluis_project::Role;
use kluis_warehouse::Warehouse;
use serde_json::json;

use crate::exit::bad_input;
use crate::trust::{Globals, state_error, today};

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Action>,
    /// The project (as `kluis project list` shows it, e.g. 99-001).
    #[arg(long, value_name = "ID")]
    project: Option<String>,
    /// The directory to create for the extract; it must not exist.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The warehouse to read (as written by `kluis generate` or `kluis ingest`).
    #[arg(long, env = "KLUIS_WAREHOUSE", value_name = "DIR")]
    warehouse: Option<PathBuf>,
    /// Seed of the sample; the same seed on the same population gives the same sample.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The recipient's age public key (age1...): the data files are encrypted to it.
    #[arg(long, value_name = "AGE_PUBLIC_KEY")]
    recipient: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Re-check every file of an extract against the SHA-256 in its manifest.
    Verify {
        /// The extract directory.
        dir: PathBuf,
    },
}

fn extract_error(error: kluis_extract::Error) -> anyhow::Error {
    if error.is_user_error() {
        bad_input(error.to_string())
    } else {
        anyhow::Error::new(error)
    }
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    if let Some(Action::Verify { dir }) = args.command {
        let verified = verify(&dir).map_err(anyhow::Error::new)?;
        for name in &verified.unlisted {
            eprintln!(
                "note: {name} is in {} but not in its manifest",
                dir.display()
            );
        }
        println!(
            "ok: {} files of extract {} (authorisation {}, seed {}) match manifest.json",
            verified.manifest.files.len(),
            dir.display(),
            verified.manifest.authorisation,
            verified.manifest.seed
        );
        return Ok(ExitCode::SUCCESS);
    }
    let missing = |flag: &str| {
        bad_input(format!(
            "kluis extract needs {flag} (or use `kluis extract verify DIR`)"
        ))
    };
    let project_id = args.project.ok_or_else(|| missing("--project ID"))?;
    let out = args.out.ok_or_else(|| missing("--out DIR"))?;
    let warehouse_dir = args
        .warehouse
        .ok_or_else(|| missing("--warehouse DIR (or KLUIS_WAREHOUSE)"))?;
    if let Some(recipient) = &args.recipient {
        parse_recipient(recipient).map_err(extract_error)?;
    }
    if out.symlink_metadata().is_ok() {
        return Err(bad_input(format!(
            "{} already exists; an extract goes into a new directory",
            out.display()
        )));
    }

    let actor = globals.actor()?;
    let state = globals.open()?;
    let project = state.project(&project_id).map_err(state_error)?;
    let grant = project
        .authorise(actor, Role::Steward, "extract", today()?)
        .map_err(state_error)?;
    let authorisation = project.authorisation();
    let warehouse = Warehouse::open(&warehouse_dir)
        .map_err(|e| bad_input(format!("warehouse {}: {e}", warehouse_dir.display())))?;

    let population = grant
        .with_key(|key| coded_population(&warehouse, authorisation, key))
        .map_err(state_error)?
        .map_err(extract_error)?;
    grant
        .save_pseudonym_map(population.pseudonym_map())
        .map_err(state_error)?;
    let sample = population.sample(args.seed);
    let options = ExtractOptions {
        out: out.clone(),
        seed: args.seed,
        recipient: args.recipient.clone(),
        kluis_version: format!("kluis {}", env!("CARGO_PKG_VERSION")),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let delivered =
        write_extract(authorisation, &population, &sample, &options).map_err(extract_error)?;
    let m = &delivered.manifest;
    grant
        .record(json!({
            "out": out.display().to_string(),
            "warehouse": warehouse_dir.display().to_string(),
            "seed": args.seed,
            "recipient": m.age_recipient,
            "population_persons": population.persons(),
            "rows": m.rows,
            "strata": m.strata.iter().map(|s| json!({
                "name": s.name,
                "population_persons": s.population_persons,
                "sampled_persons": s.sampled_persons,
                "rows": s.rows,
                "rows_by_year": s.rows_by_year,
            })).collect::<Vec<_>>(),
            "files": m.files.iter().map(|f| json!({"name": f.name, "sha256": f.sha256})).collect::<Vec<_>>(),
        }))
        .map_err(state_error)
        .context("the extract was written but could not be audited")?;

    println!(
        "extract of project {} (authorisation {}) written to {}: {} person-years, seed {}",
        project.id(),
        m.authorisation,
        out.display(),
        m.rows,
        m.seed
    );
    for s in &m.strata {
        println!(
            "  {}: {} of {} persons sampled (fraction {:.6}), {} person-years",
            s.name, s.sampled_persons, s.population_persons, s.sampling_fraction, s.rows
        );
    }
    if m.age_recipient.is_none() {
        eprintln!(
            "warning: the extract is in the clear (no --recipient); encrypt it before it leaves this machine"
        );
    }
    Ok(ExitCode::SUCCESS)
}
