//! `kluis job check JOB [--extract DIR]`: validates a job and plans every output against the
//! policy without running it.
//!
//! `kluis job run JOB --on sample --extract DIR`: runs every output on a phase-1 extract and
//! writes the tables, their per-cell statistics and a forecast of the cells that would fail at
//! full scale (unit counts scaled by the strata's sampling fractions).
//!
//! `kluis job run JOB --on full --project ID`: builds the project's full-population view in
//! memory (same derivation, coding and pseudonyms as the extract), runs the same job on it, checks
//! every output with the project's rule set and the release ledger, and stores them as pending
//! outputs in the state directory, for `kluis output`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use kluis_enclave::{
    Enclave, EnclaveError, Job, Limits, OutputTable, PersonYearsSource, RiskOptions, Scaling,
    Store, Stratum, compact, write_results,
};
use kluis_extract::{Manifest, coded_population};
use kluis_project::{Project, Role};
use kluis_sdc::RuleSet;
use kluis_warehouse::Warehouse;
use roaring::RoaringBitmap;
use serde_json::json;

use crate::exit::bad_input;
use crate::trust::{Globals, state_error, today};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(clap::Subcommand)]
enum JobCommand {
    /// Validate job.toml and plan every output against the policy, without running anything.
    Check(CheckArgs),
    /// Run every output: on a sample (results written beside the job) or on the full population
    /// (outputs stored for review).
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

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    /// A phase-1 extract on the researcher's machine (--extract).
    Sample,
    /// The project's full-population view, inside the enclave (--project, --warehouse).
    Full,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The job directory (holding job.toml and its SQL files).
    job: PathBuf,
    /// Where to run.
    #[arg(long, value_enum)]
    on: Target,
    /// With --on sample: the extract directory holding person_years.parquet and manifest.json.
    #[arg(long)]
    extract: Option<PathBuf>,
    /// With --on sample: results directory, replaced as a whole [default: JOB/results/sample].
    #[arg(long)]
    out: Option<PathBuf>,
    /// With --on sample: the rule set to forecast with (a built-in name or a TOML file).
    #[arg(long, default_value = "default")]
    rules: String,
    /// With --on full: the project (as `kluis project list` shows it, e.g. 99-001).
    #[arg(long, value_name = "ID")]
    project: Option<String>,
    /// With --on full: the warehouse to build the view from.
    #[arg(long, env = "KLUIS_WAREHOUSE", value_name = "DIR")]
    warehouse: Option<PathBuf>,
    /// Memory DataFusion and the statistics may use, e.g. 512M or 2G; going over stops the run.
    #[arg(long, default_value = "3G", value_parser = kluis_enclave::parse_memory)]
    memory_limit: usize,
    /// Time each output may take, e.g. 90s or 10m; going over stops the run.
    #[arg(long, default_value = "10m", value_parser = kluis_enclave::parse_duration)]
    time_limit: Duration,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// With --on full, a steward's diagnostic for benchmarks only (audited): also write the
    /// view's columns the job reads to PROJECT_DIR/view/person_years.parquet (0600), inside the
    /// state directory (retention destroys it). A researcher is refused.
    #[arg(long, hide = true)]
    export_view: bool,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    match args.command {
        JobCommand::Check(a) => check(a),
        JobCommand::Run(a) => match a.on {
            Target::Sample => run_sample(a),
            Target::Full => run_full(a, globals),
        },
    }
}

fn load_job(dir: &Path) -> anyhow::Result<Job> {
    Job::load(dir).map_err(|e| bad_input(e.to_string()))
}

fn enclave_error(e: EnclaveError) -> anyhow::Error {
    if e.is_bad_input() || matches!(e, EnclaveError::Source { .. }) {
        bad_input(e.to_string())
    } else {
        anyhow::Error::new(e)
    }
}

fn extract_parquet(dir: &Path) -> anyhow::Result<PathBuf> {
    let parquet = dir.join("person_years.parquet");
    if parquet.is_file() {
        Ok(parquet)
    } else if dir.join("person_years.parquet.age").is_file() {
        Err(bad_input(format!(
            "{}: person_years.parquet is encrypted (.age); decrypt it with your age identity first",
            dir.display()
        )))
    } else {
        Err(bad_input(format!(
            "{}: no person_years.parquet; give the directory of a phase-1 extract",
            dir.display()
        )))
    }
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
    let parquet = extract_parquet(&extract)?;
    let enclave = Enclave::open(PersonYearsSource::Parquet(parquet), Limits::default())
        .map_err(enclave_error)?;
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

fn limits(args: &RunArgs) -> anyhow::Result<Limits> {
    if args.threads == 0 {
        return Err(bad_input("--threads 0: expected at least 1"));
    }
    Ok(Limits {
        memory_bytes: args.memory_limit,
        time: args.time_limit,
        threads: args.threads,
    })
}

/// Each stratum's sample units (from the extract's `stratum` column) and 1 / its sampling
/// fraction (from manifest.json); without a manifest, no scaling.
fn strata_scaling(extract: &Path, parquet: &Path) -> anyhow::Result<Scaling> {
    let path = extract.join("manifest.json");
    if !path.exists() {
        eprintln!(
            "note: {} has no manifest.json, so cells are judged at the sample's own size, not scaled to the population",
            extract.display()
        );
        return Ok(Scaling::Uniform(1.0));
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| bad_input(format!("{}: not an extract manifest: {e}", path.display())))?;
    let mut strata: Vec<Stratum> = Vec::new();
    for s in &manifest.strata {
        if !(s.sampling_fraction > 0.0 && s.sampling_fraction <= 1.0) {
            return Err(bad_input(format!(
                "{}: stratum `{}` has sampling_fraction {}; expected a number in (0, 1]",
                path.display(),
                s.name,
                s.sampling_fraction
            )));
        }
        strata.push(Stratum {
            name: s.name.clone(),
            units: RoaringBitmap::new(),
            factor: 1.0 / s.sampling_fraction,
        });
    }
    let file =
        std::fs::File::open(parquet).with_context(|| format!("reading {}", parquet.display()))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("reading {}", parquet.display()))?;
    let schema = builder.parquet_schema();
    let wanted: Vec<usize> = ["pseudonym", "stratum"]
        .iter()
        .map(|name| {
            (0..schema.num_columns())
                .find(|&i| schema.column(i).name() == *name)
                .ok_or_else(|| {
                    bad_input(format!(
                        "{}: no column `{name}`; an extract has pseudonym and stratum",
                        parquet.display()
                    ))
                })
        })
        .collect::<anyhow::Result<_>>()?;
    let mask = parquet::arrow::ProjectionMask::leaves(schema, wanted);
    for batch in builder.with_projection(mask).build()? {
        let batch: RecordBatch = batch?;
        let pseudonyms = cast(batch.column(0), &DataType::Int64)?;
        let pseudonyms = pseudonyms.as_primitive::<Int64Type>();
        let stratum = cast(batch.column(1), &DataType::Utf8)?;
        let stratum = stratum.as_string::<i32>();
        for r in 0..batch.num_rows() {
            let Some(s) = strata.iter_mut().find(|s| s.name == stratum.value(r)) else {
                return Err(bad_input(format!(
                    "{}: row {} has a stratum the manifest does not list",
                    parquet.display(),
                    r + 1
                )));
            };
            if let Ok(unit) = u32::try_from(pseudonyms.value(r))
                && !pseudonyms.is_null(r)
            {
                s.units.insert(unit);
            }
        }
    }
    Ok(Scaling::Strata(strata))
}

fn run_sample(args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.project.is_some() {
        return Err(bad_input(
            "--project is for --on full; a sample run reads --extract DIR",
        ));
    }
    let extract = args
        .extract
        .clone()
        .ok_or_else(|| bad_input("--on sample needs --extract DIR (a phase-1 extract)"))?;
    let job = load_job(&args.job)?;
    let rules = RuleSet::load(&args.rules).map_err(|e| bad_input(e.to_string()))?;
    let limits = limits(&args)?;
    let parquet = extract_parquet(&extract)?;
    let scaling = strata_scaling(&extract, &parquet)?;
    let enclave =
        Enclave::open(PersonYearsSource::Parquet(parquet), limits).map_err(enclave_error)?;
    let tables = enclave.run_job(&job).map_err(enclave_error)?;
    let out = args
        .out
        .unwrap_or_else(|| args.job.join("results").join("sample"));
    let risk = RiskOptions { scaling, rules };
    write_results(&out, &job, &tables, &risk)
        .with_context(|| format!("writing results to {}", out.display()))?;
    for t in &tables {
        let at_risk = kluis_enclave::at_risk(t, &risk.scaling, &risk.rules)?;
        println!(
            "{}: {} cells with margins; {} would probably fail rule set `{}` at full scale",
            t.name,
            t.cells.len(),
            at_risk.len(),
            risk.rules.name
        );
    }
    println!("results written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// The job must name the project it runs in (`99/001` or `99-001`).
fn check_job_project(job: &Job, project: &Project<'_>) -> anyhow::Result<()> {
    let named = kluis_project::authorisation::project_id(job.project.trim());
    if named != project.id() {
        return Err(bad_input(format!(
            "{}: field `project` is {:?}, but the run is for project {} (authorisation {})",
            job.dir.join("job.toml").display(),
            job.project,
            project.id(),
            project.authorisation().id
        )));
    }
    Ok(())
}

/// Builds the project's full-population view with only the columns the job reads.
fn full_view(
    warehouse: &Warehouse,
    project: &Project<'_>,
    grant: &kluis_project::Grant<'_, '_>,
    job: &Job,
    limits: Limits,
) -> anyhow::Result<(PersonYearsSource, u64, Vec<u32>)> {
    let threads = limits.threads;
    let population = grant
        .with_key(|key| coded_population(warehouse, project.authorisation(), key))
        .map_err(state_error)?
        .map_err(|e| {
            if e.is_user_error() {
                bad_input(e.to_string())
            } else {
                anyhow::Error::new(e)
            }
        })?;
    let keys = population
        .provider_keys(&grant.provider_persons())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "two persons of the population share a provider-internal key (a chance of about one in a million): the provider-wide ledger cannot tell them apart; tell the kluis maintainers"
            )
        })?;
    let mut persons = vec![0u32];
    persons.extend(grant.provider_numbers(&keys[1..]).map_err(state_error)?);
    // Plan every output against the view's (empty) schema first: a refused or broken output
    // stops the run before any data is read, and the view keeps only the columns used.
    let schema = population.schema();
    let empty = Enclave::open(
        PersonYearsSource::Batches {
            schema: schema.clone(),
            batches: Vec::new(),
        },
        limits,
    )
    .map_err(enclave_error)?;
    let mut columns = std::collections::BTreeSet::new();
    for output in &job.outputs {
        columns.extend(empty.columns_used(output).map_err(enclave_error)?);
    }
    drop(empty);
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| columns.contains(n))
        .collect();
    // Only the columns the job reads are coded (no origin derivation when none is read), one
    // year per thread at a time.
    let mut batches = Vec::new();
    let mut rows = 0u64;
    let coded = population.all_years(&columns, threads, |batch| {
        (batch.num_rows() as u64, compact(&batch, Some(&columns)))
    })?;
    for (year_rows, batch) in coded {
        rows += year_rows;
        batches.push(batch.map_err(anyhow::Error::msg)?);
    }
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => compact(&RecordBatch::new_empty(schema), Some(&columns))
            .map_err(anyhow::Error::msg)?
            .schema(),
    };
    Ok((
        PersonYearsSource::Batches { schema, batches },
        rows,
        persons,
    ))
}

/// Writes the view into the project's directory (benchmarks compare against it).
fn export_view(project: &Project<'_>, source: &PersonYearsSource) -> anyhow::Result<PathBuf> {
    let PersonYearsSource::Batches { schema, batches } = source else {
        unreachable!("the full view is built in memory");
    };
    let dir = project.dir().join("view");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("making {} private", dir.display()))?;
    let target = dir.join("person_years.parquet");
    let tmp = tempfile::NamedTempFile::new_in(&dir)?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(tmp.as_file(), schema.clone(), None)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.close()?;
    tmp.persist(&target)?;
    eprintln!("view exported to {}", target.display());
    Ok(target)
}

fn run_full(args: RunArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    if args.extract.is_some() || args.out.is_some() {
        return Err(bad_input(
            "--extract and --out are for --on sample; a full run reads the project's view and stores its outputs for review",
        ));
    }
    let project_id = args
        .project
        .clone()
        .ok_or_else(|| bad_input("--on full needs --project ID"))?;
    let warehouse_dir = args
        .warehouse
        .clone()
        .ok_or_else(|| bad_input("--on full needs --warehouse DIR (or KLUIS_WAREHOUSE)"))?;
    let job = load_job(&args.job)?;
    let limits = limits(&args)?;
    let actor = globals.actor()?;
    let state = globals.open()?;
    let project = state.project(&project_id).map_err(state_error)?;
    check_job_project(&job, &project)?;
    // The researcher submits; a steward may run it for them. Writing the whole population's
    // coded view out is a steward's diagnostic only.
    let roles = project.authorisation().roles.of(actor);
    let (role, action) = if args.export_view {
        (Role::Steward, "job run with view export")
    } else if roles.contains(&Role::Steward) && !roles.contains(&Role::Researcher) {
        (Role::Steward, "job run")
    } else {
        (Role::Researcher, "job run")
    };
    let grant = project
        .authorise(actor, role, action, today()?)
        .map_err(state_error)?;
    let rules = crate::rules::of_project(&project)?;
    // Differencing is judged against the ledger and the pending outputs: they must be as the
    // log last vouched for them.
    project.check_vouched_files().map_err(state_error)?;
    let warehouse = Warehouse::open(&warehouse_dir)
        .map_err(|e| bad_input(format!("warehouse {}: {e}", warehouse_dir.display())))?;

    let started = std::time::Instant::now();
    let (source, rows, persons) = full_view(&warehouse, &project, &grant, &job, limits)?;
    let view_seconds = started.elapsed().as_secs_f64();
    let exported = if args.export_view {
        Some(export_view(&project, &source)?)
    } else {
        None
    };
    let enclave = Enclave::open(source, limits).map_err(enclave_error)?;
    let tables: Vec<OutputTable> = enclave.run_job(&job).map_err(enclave_error)?;
    drop(enclave);
    let store =
        Store::new(&project.dir(), project.id()).with_provider_ledger(&state.provider_ledger_dir());
    // From the check of the vouched files to the audit entry that names the new outputs, no
    // other run, release or reject of the project comes in between.
    let _held = store.hold().map_err(anyhow::Error::new)?;
    project.check_vouched_files().map_err(state_error)?;
    state.check_provider_ledger().map_err(state_error)?;
    store
        .save_provider_persons(&persons)
        .map_err(anyhow::Error::new)?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let records = store
        .submit(&job, &tables, &rules, actor, &now)
        .map_err(|e| anyhow::Error::new(e).context("checking the outputs"))?;
    // The persons' provider-internal numbers too: changed, they would hide this project's
    // persons from the provider-wide ledger.
    let stored: Vec<String> = records
        .iter()
        .map(|r| format!("outputs/{}", r.id))
        .chain(["persons.bin".to_string()])
        .collect();
    let vouched = project
        .vouch_for(&stored.iter().map(String::as_str).collect::<Vec<_>>())
        .map_err(state_error)?;
    grant
        .record(json!({
            kluis_project::VOUCHED_FILES: vouched,
            "job": job.name,
            "job_dir": job.dir.display().to_string(),
            "view_person_years": rows,
            "view_exported_to": exported.as_ref().map(|p| p.display().to_string()),
            "rules": rules.name,
            "outputs": records.iter().map(|r| json!({
                "id": r.id,
                "output": r.output,
                "verdict": r.verdict,
                "cells": r.cells,
                "suppressed": r.suppressed,
                "differencing": r.differencing.len(),
                "linked_check": r.linked_check,
            })).collect::<Vec<_>>(),
        }))
        .map_err(state_error)
        .context("the outputs were stored but the run could not be audited")?;
    println!(
        "job `{}` ran on the full view of project {} ({} person-years, built in {:.1} s)",
        job.name,
        project.id(),
        rows,
        view_seconds
    );
    for r in &records {
        println!(
            "  {}  {}: {} cells, {} withheld, verdict {}{}",
            r.id,
            r.output,
            r.cells,
            r.suppressed,
            serde_json::to_value(r.verdict)?.as_str().unwrap_or("?"),
            if r.differencing.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} cells differ from released cells by fewer than {} persons)",
                    r.differencing.len(),
                    rules.threshold.min_units
                )
            }
        );
        if let Some(check) = &r.linked_check
            && (check.left_out > 0 || !check.exact)
        {
            println!("      linked check: {}", check.describe());
        }
    }
    println!(
        "pending review: `kluis output show ID`, then `kluis output release|reject ID --reason ...`"
    );
    Ok(ExitCode::SUCCESS)
}
