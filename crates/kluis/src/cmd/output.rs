//! `kluis output list|show|release|reject`: the review of a full run's outputs. Outputs stay in
//! the project's directory of the state directory until a reviewer other than the submitter
//! releases them into the project's releases directory; release and reject are audited.

use std::process::ExitCode;

use clap::Subcommand;
use kluis_enclave::{OutputRecord, Store, StoreError};
use kluis_project::{Project, Role, State};
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
    /// List the outputs of the projects you have a role in: id, job, output, submitter, verdict
    /// and status (no values).
    List {
        /// Only this project's outputs.
        #[arg(long, value_name = "ID")]
        project: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show an output to a reviewer: the table with every cell's value, status and reasons.
    Show {
        /// The output id, e.g. 99-001-0001.
        id: String,
        /// The full report as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Release an output: its published table (CSV) and report (JSON) go to the project's
    /// releases directory, its cells into the release ledger. Needs a reviewer other than the
    /// submitter.
    Release {
        id: String,
        /// Why it may leave (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Refuse an output; it never leaves the state directory.
    Reject {
        id: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
}

/// The project of an output id (`99-001-0001` belongs to project `99-001`).
fn project_of<'s>(state: &'s State, id: &str) -> anyhow::Result<Project<'s>> {
    let (project, number) = id.rsplit_once('-').ok_or_else(|| {
        bad_input(format!(
            "{id:?} is not an output id; they look like 99-001-0001 (`kluis output list`)"
        ))
    })?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_input(format!(
            "{id:?} is not an output id; they look like 99-001-0001 (`kluis output list`)"
        )));
    }
    state.project(project).map_err(state_error)
}

fn store_error(e: StoreError) -> anyhow::Error {
    if e.is_user_error() {
        bad_input(e.to_string())
    } else {
        anyhow::Error::new(e)
    }
}

fn reason_given(reason: &str) -> anyhow::Result<()> {
    if reason.trim().is_empty() {
        return Err(bad_input(
            "--reason is empty; say why (it goes into the audit log)",
        ));
    }
    Ok(())
}

/// The outputs as aligned columns, one line each (no values: those are for `show`).
fn listing(records: &[OutputRecord]) -> String {
    let mut rows =
        vec![["id", "status", "verdict", "output", "job", "submitter"].map(String::from)];
    for r in records {
        rows.push([
            r.id.clone(),
            r.status.name().to_string(),
            serde_json::to_value(r.verdict)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            r.output.clone(),
            r.job.clone(),
            r.submitter.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|j| rows.iter().map(|r| r[j].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(field, &w)| format!("{field:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let state = globals.open()?;
    match args.command {
        Action::List { project, json } => {
            // Only the projects the person has a role in; without one, nothing.
            let actor = globals.actor()?;
            let candidates = match project {
                Some(id) => vec![state.project(&id).map_err(state_error)?.record().clone()],
                None => state.projects().map_err(state_error)?,
            };
            let (mine, others): (Vec<_>, Vec<_>) = candidates
                .into_iter()
                .partition(|r| !r.authorisation.roles.of(actor).is_empty());
            if mine.is_empty() {
                return Err(bad_input(match others.first() {
                    Some(r) if others.len() == 1 => format!(
                        "{actor} has no role in project {}; listing its outputs needs one",
                        r.id
                    ),
                    _ => format!("{actor} has no role in any project, so has no outputs to list"),
                }));
            }
            let projects: Vec<String> = mine.into_iter().map(|r| r.id).collect();
            let mut records = Vec::new();
            for id in projects {
                let project = state.project(&id).map_err(state_error)?;
                records.extend(
                    Store::new(&project.dir(), project.id())
                        .list()
                        .map_err(store_error)?,
                );
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else if records.is_empty() {
                println!("no outputs");
            } else {
                print!("{}", listing(&records));
            }
        }
        Action::Show { id, json } => {
            let project = project_of(&state, &id)?;
            let actor = globals.actor()?;
            // Unprotected values: a reviewer's (or steward's) eyes only, and audited.
            let roles = project.authorisation().roles.of(actor);
            let role = if roles.contains(&Role::Reviewer) || !roles.contains(&Role::Steward) {
                Role::Reviewer
            } else {
                Role::Steward
            };
            let grant = project
                .authorise(actor, role, "output show", today()?)
                .map_err(state_error)?;
            let stored = Store::new(&project.dir(), project.id())
                .load(&id)
                .map_err(store_error)?;
            grant.record(json!({ "output": id })).map_err(state_error)?;
            let r = &stored.record;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "record": r,
                        "report": stored.report,
                    }))?
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "output {} of job `{}` ({}), submitted by {} at {}",
                r.id, r.job, r.output, r.submitter, r.submitted_at
            );
            println!(
                "status {}; {} of `{}` by {}",
                r.status.name(),
                r.statistic,
                r.measure,
                r.dimensions.join(", ")
            );
            if let Some(d) = &r.decision {
                println!("decided by {} at {}: {}", d.by, d.at, d.reason);
            }
            for d in &r.differencing {
                println!(
                    "differencing: cell {:?} differs from cell {:?} of released output {} by {} units",
                    d.key, d.released_key, d.released_output, d.units_apart
                );
            }
            if let Some(check) = &r.linked_check {
                println!("linked check: {}", check.describe());
            }
            // The report's own measure is kluis's internal linking key; the reviewer reads the
            // output's column name.
            let mut report = stored.report;
            report.measure = Some(r.measure.clone());
            print!("{}", report.to_text());
        }
        Action::Release { id, reason } => {
            reason_given(&reason)?;
            let project = project_of(&state, &id)?;
            let actor = globals.actor()?;
            // The output as checked (its verdict, report and person sets) and the ledger it is
            // judged against must be as the log last vouched for them, until this release is
            // audited.
            let store = Store::new(&project.dir(), project.id())
                .with_provider_ledger(&state.provider_ledger_dir());
            let _held = store.hold().map_err(store_error)?;
            project.check_vouched_files().map_err(state_error)?;
            state.check_provider_ledger().map_err(state_error)?;
            let record = store.load(&id).map_err(store_error)?.record;
            let grant = project
                .authorise_release(actor, &record.submitter, "output release", today()?)
                .map_err(state_error)?;
            let rules = crate::rules::of_project(&project)?;
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let (record, files) = store
                .release(&id, actor, &reason, &now, &rules, &project.released_dir())
                .map_err(store_error)?;
            grant
                .record(json!({
                    "output": id,
                    "submitter": record.submitter,
                    "reason": reason,
                    "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                    "cells": record.cells,
                    "withheld": record.suppressed,
                    kluis_project::VOUCHED_FILES: project
                        .vouch_for(&["ledger", &format!("outputs/{id}")])
                        .map_err(state_error)?,
                    kluis_project::PROVIDER_FILES: state
                        .vouch_provider_ledger()
                        .map_err(state_error)?,
                }))
                .map_err(state_error)?;
            println!("released output {id}:");
            for f in &files {
                println!("  {}", f.display());
            }
        }
        Action::Reject { id, reason } => {
            reason_given(&reason)?;
            let project = project_of(&state, &id)?;
            let actor = globals.actor()?;
            let grant = project
                .authorise(actor, Role::Reviewer, "output reject", today()?)
                .map_err(state_error)?;
            let store = Store::new(&project.dir(), project.id());
            let _held = store.hold().map_err(store_error)?;
            let record = store
                .reject(
                    &id,
                    actor,
                    &reason,
                    &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                )
                .map_err(store_error)?;
            grant
                .record(json!({
                    "output": id,
                    "submitter": record.submitter,
                    "reason": reason,
                    kluis_project::VOUCHED_FILES: project
                        .vouch_for(&[&format!("outputs/{id}")])
                        .map_err(state_error)?,
                }))
                .map_err(state_error)?;
            println!("rejected output {id}; it stays in the state directory until retention ends");
        }
    }
    Ok(ExitCode::SUCCESS)
}
