//! `kluis extract --project ID --out DIR --warehouse DIR [--seed S] [--recipient AGE_KEY]
//! [--suppress] [--accept-risk REASON]`: the phase-1 delivery of a project (steward only),
//! refused when its re-identification risk exceeds the authorisation's limits; and
//! `kluis extract verify DIR`, which re-checks an extract's manifest hashes (for the recipient).

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
    /// Blank, in each person-year whose quasi-identifiers fewer than k persons of the population
    /// share, the fewest values needed (local suppression).
    #[arg(long, conflicts_with = "recode")]
    suppress: bool,
    /// Deliver quasi-identifiers in coarser codings (age in ten-year classes, nationality as
    /// Statbel group, ...): of the combinations that meet the risk limits, the one that loses the
    /// least information.
    #[arg(long)]
    recode: bool,
    /// Deliver even when a risk limit is exceeded; the written reason is audited and recorded in
    /// risk.json.
    #[arg(long, value_name = "REASON")]
    accept_risk: Option<String>,
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
    if args
        .accept_risk
        .as_ref()
        .is_some_and(|reason| reason.trim().len() < 10)
    {
        return Err(bad_input(
            "--accept-risk needs a written reason (at least 10 characters) saying why the risk is acceptable",
        ));
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
        suppress: args.suppress,
        recode: args.recode,
        accept_risk: args.accept_risk.clone(),
    };
    let delivered = match write_extract(authorisation, &population, &sample, &options) {
        Ok(delivered) => delivered,
        Err(error) => {
            let exceeded = match &error {
                kluis_extract::Error::RiskExceeded { exceeded } => Some(exceeded.clone()),
                kluis_extract::Error::NoRecoding { .. } => Some(vec![error.to_string()]),
                _ => None,
            };
            if let Some(exceeded) = exceeded {
                grant
                    .record(json!({
                        "refused": "re-identification risk above the authorisation's limits",
                        "exceeded": exceeded,
                        "seed": args.seed,
                        "suppress": args.suppress,
                        "recode": args.recode,
                    }))
                    .map_err(state_error)?;
            }
            return Err(extract_error(error));
        }
    };
    let risk = &delivered.risk;
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
            "risk": {
                "k": risk.k,
                "person_years_below_k": risk.person_years.below_k,
                "trajectory_risk_mean": risk.trajectories.journalist_risk_mean,
                "suppressed_values": risk.suppression.as_ref().map(|s| s.cells.values().sum::<u64>()),
                "recoded": risk.recoding.as_ref().map(|r| r.variables.keys().collect::<Vec<_>>()),
                "exceeded": risk.exceeded,
                "accepted_with_reason": risk.accepted_with_reason,
            },
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
    println!(
        "  risk: smallest population class of a person-year {} (k = {}), {} below k; trajectories: mean risk {:.4} (limit {}), {} population uniques",
        risk.person_years.min_frequency,
        risk.k,
        risk.person_years.below_k,
        risk.trajectories.journalist_risk_mean,
        risk.max_trajectory_risk,
        risk.trajectories.population_uniques
    );
    if let Some(s) = &risk.suppression {
        println!(
            "  suppressed {} values in {} person-years: {}",
            s.cells.values().sum::<u64>(),
            s.records,
            s.cells
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(c, n)| format!("{c} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(r) = &risk.recoding {
        println!(
            "  re-coded {} ({:.3} bits per person-year lost, {} combinations judged)",
            r.variables
                .iter()
                .map(|(name, v)| format!("{name} {} -> {}", v.from, v.to))
                .collect::<Vec<_>>()
                .join(", "),
            r.information_lost,
            r.tried
        );
    }
    if let Some(reason) = &risk.accepted_with_reason {
        eprintln!(
            "warning: delivered above the risk limits ({}), accepted by {actor}: {reason}",
            risk.exceeded.join("; ")
        );
    }
    if m.age_recipient.is_none() {
        eprintln!(
            "warning: the extract is in the clear (no --recipient); encrypt it before it leaves this machine"
        );
    }
    Ok(ExitCode::SUCCESS)
}
