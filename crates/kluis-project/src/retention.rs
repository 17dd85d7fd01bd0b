//! Retention enforcement: destroying everything of a project whose retention date passed.

use std::path::PathBuf;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::json;

use crate::StateError;
use crate::project::walk;
use crate::state::{PROJECTS, SYSTEM_ROLE, State, Status};

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

impl State {
    /// For every project past its retention date on `today`: destroys the key (so pseudonyms
    /// can never be computed again), shreds everything in its directory except released
    /// tables, marks it destroyed and audits what went. With `dry_run`, only says what would go.
    pub fn enforce_retention(
        &self,
        actor: &str,
        today: NaiveDate,
        dry_run: bool,
    ) -> Result<Vec<Destruction>, StateError> {
        let mut done = Vec::new();
        for record in self.projects()? {
            let Status::Expired { until } = record.status(today) else {
                continue;
            };
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
            let destruction = Destruction {
                project: record.id.clone(),
                retention_until: until,
                key_id,
                files,
                bytes,
                released_kept,
            };
            if !dry_run {
                // Files first, the key and the mark last: an interrupted run leaves the project
                // expired, so running again finishes the job.
                if dir.exists() {
                    for entry in std::fs::read_dir(&dir).map_err(|error| StateError::Io {
                        path: dir.display().to_string(),
                        error,
                    })? {
                        let path = entry
                            .map_err(|error| StateError::Io {
                                path: dir.display().to_string(),
                                error,
                            })?
                            .path();
                        if path != released {
                            kluis_pseudo::shred_tree(&path)?;
                        }
                    }
                }
                self.destroy_key(&record.id, today)?;
                self.audit(
                    actor,
                    SYSTEM_ROLE,
                    "retention.destroy",
                    Some(&record.id),
                    json!({
                        "retention_until": until.to_string(),
                        "generation": record.generation,
                        "key_id": destruction.key_id,
                        "files": destruction.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                        "bytes": destruction.bytes,
                        "released_kept": destruction.released_kept,
                    }),
                )?;
            }
            done.push(destruction);
        }
        Ok(done)
    }
}
