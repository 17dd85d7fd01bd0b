//! `kluis project create|list|show|destroy`: register authorisations as projects, inspect them,
//! and destroy one early when it is no longer needed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use kluis_project::{Authorisation, Project, Status};
use serde_json::json;

use crate::exit::bad_input;
use crate::trust::{Globals, state_error, today};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Register a project for an authorisation, with a fresh key (a steward's action).
    Create {
        #[arg(long, value_name = "FILE")]
        authorisation: PathBuf,
        /// The rule set file, when the authorisation names a rule set that is not built in; it
        /// is sealed into the project (later changes to the file change nothing).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
    },
    /// List the projects with their state and retention dates.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one project: authorisation, state, dates and counts (never keys).
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Destroy a project before its retention date, when it is no longer needed (a steward's
    /// action, audited): its key, pseudonym map, extracts, views and unreleased outputs go;
    /// released tables are kept.
    Destroy {
        id: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let today = today()?;
    match args.command {
        Action::Create {
            authorisation: file,
            rules,
        } => {
            let actor = globals.actor()?;
            let source = std::fs::read_to_string(&file)
                .map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
            let name = file.display().to_string();
            let authorisation =
                Authorisation::parse(&source, &name).map_err(|e| bad_input(e.to_string()))?;
            let rules = crate::rules::for_registration(&authorisation, rules.as_deref())?;
            let state = globals.open()?;
            let project = state
                .create_project_with_rules(
                    &authorisation,
                    &source,
                    &name,
                    rules.as_ref(),
                    actor,
                    today,
                )
                .map_err(state_error)?;
            let record = project.record();
            println!(
                "registered project {} (generation {}) for authorisation {}; retention until {}",
                record.id,
                record.generation,
                authorisation.id,
                authorisation.retention.effective()
            );
            println!("  directory: {}", project.dir().display());
        }
        Action::List { json } => {
            let state = globals.open()?;
            let records = state.projects().map_err(state_error)?;
            if json {
                let list: Vec<_> = records
                    .iter()
                    .map(|r| {
                        json!({
                            "id": r.id,
                            "authorisation": r.authorisation.id,
                            "title": r.authorisation.project.name,
                            "state": r.status(today),
                            "generation": r.generation,
                            "created_at": r.created_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if records.is_empty() {
                println!("no projects yet: kluis project create --authorisation FILE");
            } else {
                println!(
                    "{:<12} {:<10} {:<12} {:<11} project",
                    "id", "state", "retention", "destroyed"
                );
                for r in &records {
                    let status = r.status(today);
                    let destroyed = r
                        .destroyed_on
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "{:<12} {:<10} {:<12} {:<11} {}",
                        r.id,
                        status.name(),
                        r.authorisation.retention.effective().to_string(),
                        destroyed,
                        r.authorisation.project.name
                    );
                }
            }
        }
        Action::Show { id, json } => {
            let state = globals.open()?;
            let project = state.project(&id).map_err(state_error)?;
            show(&project, today, json)?;
        }
        Action::Destroy { id, reason } => {
            if reason.trim().is_empty() {
                return Err(bad_input(
                    "--reason is empty; say why (it goes into the audit log)",
                ));
            }
            let actor = globals.actor()?;
            let state = globals.open()?;
            let d = state
                .destroy_project(actor, &id, &reason)
                .map_err(state_error)?;
            println!(
                "destroyed project {} before its retention date {}: key {}, {} files ({} bytes); {} released tables kept",
                d.project,
                d.retention_until,
                d.key_id,
                d.files.len(),
                d.bytes,
                d.released_kept
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(project: &Project<'_>, today: chrono::NaiveDate, json: bool) -> anyhow::Result<()> {
    let record = project.record();
    let a = &record.authorisation;
    let usage = project.usage().map_err(state_error)?;
    let audit_entries = project
        .state()
        .audit_entries(Some(&record.id))
        .map_err(state_error)?
        .len();
    let status = record.status(today);
    if json {
        let value = json!({
            "id": record.id,
            "state": status,
            "generation": record.generation,
            "key_id": record.key_id,
            "created_at": record.created_at,
            "created_by": record.created_by,
            "authorisation_sha256": record.authorisation_sha256,
            "directory": project.dir(),
            "counts": {
                "audit_entries": audit_entries,
                "files": usage.files,
                "bytes": usage.bytes,
                "released_files": usage.released_files,
            },
            "authorisation": a,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("project {} — {}", record.id, a.project.name);
    println!("  authorisation   {} of {} ({})", a.id, a.date, a.title);
    println!(
        "  provider        {} ({})",
        a.provider.name, a.provider.source
    );
    let partners = if a.recipient.partners.is_empty() {
        String::new()
    } else {
        format!(" with {}", a.recipient.partners.join(", "))
    };
    println!("  recipient       {}{partners}", a.recipient.name);
    match &status {
        Status::Active { until } => println!("  state           active until {until}"),
        Status::Expired { until } => println!(
            "  state           EXPIRED: retention date {until} has passed (run kluis retention enforce)"
        ),
        Status::Destroyed { until, on } => {
            println!("  state           DESTROYED on {on} (retention date {until})")
        }
    }
    println!(
        "  retention       {} ({})",
        a.retention.until, a.retention.reference
    );
    for ext in &a.retention.extensions {
        println!(
            "    extended to   {} by {} of {}",
            ext.until, ext.reference, ext.date
        );
    }
    println!(
        "  population      {}–{}, ages {}–{}, statuut {:?}",
        a.population.first_year,
        a.population.last_year,
        a.population.min_age,
        a.population.max_age,
        a.population.statuut
    );
    for s in &a.strata {
        let groups: Vec<&str> = s.employer_groups.iter().map(|g| g.code()).collect();
        println!(
            "  stratum         {}: {} (sample {})",
            s.name,
            groups.join(" + "),
            s.sample_size
        );
    }
    let vars: Vec<String> = a
        .variables
        .iter()
        .map(|v| format!("{}={}", v.name, v.coding))
        .collect();
    println!("  variables       {}", vars.join(", "));
    match &record.rules {
        Some(rules) => println!(
            "  disclosure      {} (sealed from {})",
            a.disclosure.rules, rules.file
        ),
        None => println!("  disclosure      {} (built in)", a.disclosure.rules),
    }
    println!(
        "  roles           steward {}; researcher {}; reviewer {}",
        a.roles.steward.join(", "),
        a.roles.researcher.join(", "),
        a.roles.reviewer.join(", ")
    );
    println!(
        "  registered      {} by {} (generation {}, key id {})",
        record.created_at, record.created_by, record.generation, record.key_id
    );
    println!(
        "  counts          {audit_entries} audit entries, {} files ({} bytes), {} released tables",
        usage.files, usage.bytes, usage.released_files
    );
    Ok(())
}
