//! Retention enforcement: destroying everything of a project whose retention date passed.

use std::path::PathBuf;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::json;

use crate::StateError;
use crate::authorisation::Role;
use crate::project::walk;
use crate::state::{PROJECTS, ProjectRecord, SYSTEM_ROLE, State, Status};

/// What retention destroyed (or, in a dry run, would destroy) of one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destruction {
    pub project: String,
    /// The retention date in force (extensions counted).
    pub retention_until: NaiveDate,
    /// The public name of the destroyed key.
    pub key_id: String,
    /// Files under the project directory, relative to it: the pseudonym map, extracts, analysis
    /// views, unreleased outputs.
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    /// Released anonymous tables, kept.
    pub released_kept: u64,
}

/// What a run of retention enforcement did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enforcement {
    /// The due projects the actor is a steward of.
    pub destroyed: Vec<Destruction>,
    /// The due projects the actor is not a steward of: left for their stewards (each refusal
    /// audited).
    pub left: Vec<LeftForSteward>,
}

/// A project past its retention date that the actor may not destroy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeftForSteward {
    pub project: String,
    pub retention_until: NaiveDate,
    pub stewards: Vec<String>,
}

/// The day the system clock says it is: destruction is judged on it, never on a rehearsed one.
pub fn real_today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

impl State {
    /// For every project past its retention date on `today`: destroys the key (so pseudonyms
    /// can never be computed again), shreds everything in its directory except released
    /// tables, marks it destroyed and audits what went. With `dry_run`, only says what would go.
    ///
    /// Destruction needs a steward: only the due projects `actor` is a steward of are destroyed;
    /// the others are left for their stewards, each refusal audited. When `actor` is a steward
    /// of none of the due projects, the run is refused. A `today` later than the system's date
    /// only rehearses: it is refused unless `dry_run`.
    pub fn enforce_retention(
        &self,
        actor: &str,
        today: NaiveDate,
        dry_run: bool,
    ) -> Result<Enforcement, StateError> {
        let action = "retention.destroy";
        let due: Vec<ProjectRecord> = self
            .projects()?
            .into_iter()
            .filter(|r| matches!(r.status(today), Status::Expired { .. }))
            .collect();
        let refusal = |projects: &[&ProjectRecord], reason: String| StateError::Refused {
            actor: actor.to_owned(),
            action: action.to_owned(),
            project: projects
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            reason,
        };
        if !dry_run && today > real_today() && !due.is_empty() {
            let reason = format!(
                "{today} is a rehearsed day, later than today ({}); a rehearsal only shows what would go (--dry-run) and never destroys",
                real_today()
            );
            let all: Vec<&ProjectRecord> = due.iter().collect();
            for record in &due {
                let refused = refusal(&all[..], reason.clone());
                if let error @ StateError::Audit(_) =
                    self.refuse(actor, SYSTEM_ROLE, action, &record.id, refused)
                {
                    return Err(error);
                }
            }
            return Err(refusal(&all[..], reason));
        }
        let (mine, not_steward): (Vec<ProjectRecord>, Vec<ProjectRecord>) = due
            .into_iter()
            .partition(|r| r.authorisation.roles.of(actor).contains(&Role::Steward));
        let mut left = Vec::new();
        if !not_steward.is_empty() {
            let others: Vec<&ProjectRecord> = not_steward.iter().collect();
            let reason = format!(
                "destroying a project needs its steward ({})",
                others
                    .iter()
                    .map(|r| format!("{}: {}", r.id, r.authorisation.roles.steward.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            for record in &others {
                let refused = refusal(&[record], reason.clone());
                if let error @ StateError::Audit(_) =
                    self.refuse(actor, "none", action, &record.id, refused)
                {
                    return Err(error);
                }
            }
            if mine.is_empty() {
                return Err(refusal(&others, format!("{reason}; nothing was destroyed")));
            }
            left = others
                .iter()
                .map(|r| LeftForSteward {
                    project: r.id.clone(),
                    retention_until: r.authorisation.retention.effective(),
                    stewards: r.authorisation.roles.steward.clone(),
                })
                .collect();
        }
        let mut done = Vec::new();
        for record in mine {
            let until = record.authorisation.retention.effective();
            let destruction = self.plan_destruction(&record, until)?;
            if !dry_run {
                self.destroy(&record, &destruction, today)?;
                self.audit(
                    actor,
                    Role::Steward.name(),
                    action,
                    Some(&record.id),
                    destruction_details(&record, &destruction, None),
                )?;
            }
            done.push(destruction);
        }
        Ok(Enforcement {
            destroyed: done,
            left,
        })
    }

    /// Destroys a project before its retention date, when it is no longer needed: only one of
    /// its stewards may, with a reason, which is audited. Dated by the system clock.
    pub fn destroy_project(
        &self,
        actor: &str,
        id: &str,
        reason: &str,
    ) -> Result<Destruction, StateError> {
        let action = "project.destroy";
        let project = self.project(id)?;
        let today = real_today();
        let checked = match project.status(today) {
            Status::Destroyed { until, on } => Err(StateError::Destroyed {
                project: project.id().to_owned(),
                until,
                on,
            }),
            _ => project.require_role(actor, Role::Steward, action),
        };
        if let Err(error) = checked {
            return Err(self.refuse(actor, Role::Steward.name(), action, project.id(), error));
        }
        let record = project.record().clone();
        let until = record.authorisation.retention.effective();
        let destruction = self.plan_destruction(&record, until)?;
        self.destroy(&record, &destruction, today)?;
        self.audit(
            actor,
            Role::Steward.name(),
            action,
            Some(&record.id),
            destruction_details(&record, &destruction, Some(reason)),
        )?;
        Ok(destruction)
    }

    /// What destroying a project takes: its key id and every file but the released tables.
    fn plan_destruction(
        &self,
        record: &ProjectRecord,
        until: NaiveDate,
    ) -> Result<Destruction, StateError> {
        let dir = self.home().join(PROJECTS).join(&record.id);
        let released = dir.join("released");
        let mut files = Vec::new();
        let mut bytes = 0;
        let mut released_kept = 0;
        if dir.exists() {
            walk(&dir, &mut |path, len| {
                if path.starts_with(&released) {
                    released_kept += 1;
                } else {
                    files.push(path.strip_prefix(&dir).unwrap_or(path).to_owned());
                    bytes += len;
                }
            })?;
        }
        files.sort();
        let key_id = self.open_key(&record.id, record.generation)?.key_id();
        Ok(Destruction {
            project: record.id.clone(),
            retention_until: until,
            key_id,
            files,
            bytes,
            released_kept,
        })
    }

    /// Shreds the project's files but released tables, then its key, and marks it destroyed.
    /// Files first, the key and the mark last: an interrupted run leaves the project as it was
    /// (expired, or active), so running again finishes the job.
    fn destroy(
        &self,
        record: &ProjectRecord,
        destruction: &Destruction,
        on: NaiveDate,
    ) -> Result<(), StateError> {
        let dir = self.home().join(PROJECTS).join(&destruction.project);
        let released = dir.join("released");
        if dir.exists() {
            let io = |error| StateError::Io {
                path: dir.display().to_string(),
                error,
            };
            for entry in std::fs::read_dir(&dir).map_err(io)? {
                let path = entry.map_err(io)?.path();
                if path != released {
                    kluis_pseudo::shred_tree(&path)?;
                }
            }
        }
        self.destroy_key(&record.id, on)
    }
}

fn destruction_details(
    record: &ProjectRecord,
    destruction: &Destruction,
    reason: Option<&str>,
) -> serde_json::Value {
    json!({
        "retention_until": destruction.retention_until.to_string(),
        "generation": record.generation,
        "key_id": destruction.key_id,
        "reason": reason,
        "files": destruction.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "bytes": destruction.bytes,
        "released_kept": destruction.released_kept,
    })
}
