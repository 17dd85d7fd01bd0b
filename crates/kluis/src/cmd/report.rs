//! `kluis report --project ID --out FILE.html`: one self-contained HTML page of a project's
//! released tables, their charts and its audit trail summary (page built by `kluis-report`).
//!
//! The page holds released material only, so anyone with a role in the project may make it,
//! also after the retention date (released tables are kept). Making it is audited.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kluis_audit::AuditError;
use kluis_project::{Project, State, StateError};
use kluis_report::{
    ActionCount, AuditSummary, AuthorisationSummary, Chain, Extension, ProjectSummary, Report,
    RetentionSummary,
};
use serde_json::json;

use crate::exit::bad_input;
use crate::trust::{Globals, state_error, today};

#[derive(clap::Args)]
pub struct Args {
    /// The project, e.g. 99-001.
    #[arg(long, value_name = "ID")]
    project: String,
    /// The HTML file to write (replaced as a whole when it exists).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

const ACTION: &str = "report";

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let state = globals.open()?;
    let project = state.project(&args.project).map_err(state_error)?;
    let actor = globals.actor()?;
    let today = today()?;

    // Any project role will do; the first the authorisation gives names the audit entry.
    let authorisation = project.authorisation();
    let Some(role) = authorisation.roles.of(actor).first().copied() else {
        let error = StateError::Refused {
            actor: actor.to_string(),
            action: ACTION.to_string(),
            project: project.id().to_string(),
            reason: format!(
                "a report needs a role in the project (steward, researcher or reviewer), and authorisation {} gives {actor} none",
                authorisation.id
            ),
        };
        state
            .audit(
                actor,
                "none",
                "refused",
                Some(project.id()),
                json!({ "attempted": ACTION, "reason": error.to_string() }),
            )
            .map_err(state_error)?;
        return Err(state_error(error));
    };

    let dir = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(bad_input(format!(
            "--out {}: the directory {} does not exist",
            args.out.display(),
            dir.display()
        )));
    }

    let tables = kluis_report::read_released(&project.released_dir(), project.id())?;
    let report = Report {
        project: project_summary(&project, today),
        audit: audit_summary(&state, project.id())?,
        generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        generated_by: actor.to_string(),
        tables,
    };
    let html = kluis_report::page(&report)?;
    let charts = html.matches("<svg class=\"chart\"").count();
    let withheld: usize = report.tables.iter().map(|t| t.withheld()).sum();

    // Written beside the target, audited, then renamed into place: never half a page.
    let mut temp = tempfile::Builder::new()
        .prefix(".report-")
        .suffix(".html")
        .tempfile_in(&dir)
        .map_err(|e| io_error(&dir, e))?;
    std::io::Write::write_all(temp.as_file_mut(), html.as_bytes())
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| io_error(&args.out, e))?;
    state
        .audit(
            actor,
            role.name(),
            ACTION,
            Some(project.id()),
            json!({
                "out": args.out.display().to_string(),
                "tables": report.tables.iter().map(|t| t.output.clone()).collect::<Vec<_>>(),
                "withheld": withheld,
                "charts": charts,
            }),
        )
        .map_err(state_error)?;
    temp.persist(&args.out)
        .map_err(|e| io_error(&args.out, e.error))?;

    println!(
        "wrote the report of project {} to {}: {} released {}, {withheld} withheld {}, {charts} {}; audit log {}",
        project.id(),
        args.out.display(),
        report.tables.len(),
        if report.tables.len() == 1 {
            "table"
        } else {
            "tables"
        },
        if withheld == 1 { "cell" } else { "cells" },
        if charts == 1 { "chart" } else { "charts" },
        match &report.audit.chain {
            Chain::Intact { .. } => "verifies",
            Chain::Broken { .. } => "DOES NOT VERIFY (see the page)",
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn io_error(path: &Path, error: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!("{}: {error}", path.display())
}

fn project_summary(project: &Project<'_>, today: chrono::NaiveDate) -> ProjectSummary {
    let a = project.authorisation();
    ProjectSummary {
        id: project.id().to_string(),
        name: a.project.name.clone(),
        purpose: a.project.purpose.clone(),
        status: project.status(today).name().to_string(),
        authorisation: AuthorisationSummary {
            id: a.id.clone(),
            date: a.date.to_string(),
            title: a.title.clone(),
            provider: a.provider.name.clone(),
            recipient: a.recipient.name.clone(),
            partners: a.recipient.partners.clone(),
        },
        retention: RetentionSummary {
            until: a.retention.effective().to_string(),
            reference: a.retention.reference.clone(),
            extensions: a
                .retention
                .extensions
                .iter()
                .map(|x| Extension {
                    until: x.until.to_string(),
                    date: x.date.to_string(),
                    reference: x.reference.clone(),
                })
                .collect(),
        },
    }
}

/// Counts, times and actors of the project's entries (their details stay in the log), and
/// whether the whole chain verifies.
fn audit_summary(state: &State, project: &str) -> anyhow::Result<AuditSummary> {
    let entries = state.audit_entries(Some(project)).map_err(state_error)?;
    let mut actions: BTreeMap<&str, (u64, BTreeSet<&str>)> = BTreeMap::new();
    for e in &entries {
        let (count, actors) = actions.entry(&e.action).or_default();
        *count += 1;
        actors.insert(&e.actor);
    }
    let chain = match state.verify_audit() {
        Ok(verified) => Chain::Intact {
            entries: verified.entries,
        },
        Err(StateError::Audit(AuditError::Tampered(tamper))) => Chain::Broken {
            reason: tamper.to_string(),
        },
        Err(StateError::Tampered { what }) => Chain::Broken { reason: what },
        Err(e) => return Err(state_error(e)),
    };
    Ok(AuditSummary {
        entries: entries.len() as u64,
        first: entries.first().map(|e| e.time.clone()),
        last: entries.last().map(|e| e.time.clone()),
        actions: actions
            .into_iter()
            .map(|(action, (entries, actors))| ActionCount {
                action: action.to_string(),
                entries,
                actors: actors.into_iter().map(str::to_string).collect(),
            })
            .collect(),
        chain,
    })
}
