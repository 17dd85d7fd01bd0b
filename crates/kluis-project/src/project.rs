//! A project handle and the grants through which every action on a project happens.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use kluis_audit::Entry;
use kluis_pseudo::{ProjectKey, PseudonymMap};
use serde::Serialize;

use crate::StateError;
use crate::authorisation::{Authorisation, Role};
use crate::state::{PROJECTS, ProjectRecord, State, Status};

/// A registered project. Reading it needs no role; acting on it needs a [`Grant`].
#[derive(Debug)]
pub struct Project<'s> {
    pub(crate) state: &'s State,
    pub(crate) record: ProjectRecord,
}

/// What a project holds on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Files that retention will destroy (everything but released tables).
    pub files: u64,
    pub bytes: u64,
    /// Released anonymous tables, kept after retention.
    pub released_files: u64,
}

impl<'s> Project<'s> {
    /// `23-224` for authorisation `23/224`.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    pub fn authorisation(&self) -> &Authorisation {
        &self.record.authorisation
    }

    pub fn record(&self) -> &ProjectRecord {
        &self.record
    }

    pub fn state(&self) -> &'s State {
        self.state
    }

    pub fn status(&self, today: NaiveDate) -> Status {
        self.record.status(today)
    }

    /// The project's directory in the state directory: extracts, analysis views and outputs
    /// live here. Retention shreds all of it except [`Project::released_dir`].
    pub fn dir(&self) -> PathBuf {
        self.state.home().join(PROJECTS).join(&self.record.id)
    }

    /// Where released anonymous tables go; kept after retention.
    pub fn released_dir(&self) -> PathBuf {
        self.dir().join("released")
    }

    /// What an audit entry puts under [`crate::VOUCHED_FILES`] to vouch for every file under
    /// each of `subs` of the project directory (the release ledger `ledger`, a pending output
    /// `outputs/ID`), so that a later change to them is caught by
    /// [`Project::check_vouched_files`] and `audit verify`. Whoever changes a vouched file
    /// vouches for it again in the entry of that change.
    pub fn vouch_for(&self, subs: &[&str]) -> Result<serde_json::Value, StateError> {
        crate::evidence::vouch(&self.dir(), subs)
    }

    /// Fails when a file the project's audit entries vouched for was changed or deleted: check
    /// before relying on them (the ledger, before differencing is judged against it).
    pub fn check_vouched_files(&self) -> Result<(), StateError> {
        let entries = self.state.audit_entries(Some(&self.record.id))?;
        crate::evidence::check_vouched_files(
            &self.dir(),
            &self.record,
            &entries.iter().collect::<Vec<_>>(),
        )
    }

    /// The encrypted pseudonym map.
    pub fn pseudonym_map_path(&self) -> PathBuf {
        self.dir().join("pseudonyms.map")
    }

    /// Fails, naming the retention date, when the project is expired or destroyed.
    pub fn require_active(&self, today: NaiveDate) -> Result<(), StateError> {
        match self.status(today) {
            Status::Active { .. } => Ok(()),
            Status::Expired { until } => Err(StateError::Expired {
                project: self.record.id.clone(),
                until,
            }),
            Status::Destroyed { until, on } => Err(StateError::Destroyed {
                project: self.record.id.clone(),
                until,
                on,
            }),
        }
    }

    /// Fails when the authorisation does not give `actor` the role.
    pub fn require_role(&self, actor: &str, role: Role, action: &str) -> Result<(), StateError> {
        if self.record.authorisation.roles.of(actor).contains(&role) {
            return Ok(());
        }
        let holders = self.record.authorisation.roles.names(role).join(", ");
        Err(StateError::Refused {
            actor: actor.to_owned(),
            action: action.to_owned(),
            project: self.record.id.clone(),
            reason: format!(
                "{action} needs the {role} role, which authorisation {} gives only to {holders}",
                self.record.authorisation.id
            ),
        })
    }

    /// Checks that the project is active on `today` and that `actor` holds `role`; a refusal
    /// is audited before it is returned. The grant is what lets the caller use the key and
    /// record what it did.
    pub fn authorise(
        &self,
        actor: &str,
        role: Role,
        action: &str,
        today: NaiveDate,
    ) -> Result<Grant<'_, 's>, StateError> {
        let checked = self
            .require_active(today)
            .and_then(|()| self.require_role(actor, role, action));
        match checked {
            Ok(()) => Ok(Grant {
                project: self,
                actor: actor.to_owned(),
                role,
                action: action.to_owned(),
            }),
            Err(error) => {
                Err(self
                    .state
                    .refuse(actor, role.name(), action, &self.record.id, error))
            }
        }
    }

    /// [`Project::authorise`] for releasing an output, with the four-eyes rule: the reviewer
    /// must hold the reviewer role and must not be the person who submitted it.
    pub fn authorise_release(
        &self,
        reviewer: &str,
        submitter: &str,
        action: &str,
        today: NaiveDate,
    ) -> Result<Grant<'_, 's>, StateError> {
        if reviewer == submitter {
            let error = StateError::Refused {
                actor: reviewer.to_owned(),
                action: action.to_owned(),
                project: self.record.id.clone(),
                reason: format!(
                    "{reviewer} submitted this output and so cannot release it: a different reviewer must (four eyes)"
                ),
            };
            return Err(self.state.refuse(
                reviewer,
                Role::Reviewer.name(),
                action,
                &self.record.id,
                error,
            ));
        }
        self.authorise(reviewer, Role::Reviewer, action, today)
    }

    /// What the project holds on disk.
    pub fn usage(&self) -> Result<Usage, StateError> {
        let mut usage = Usage::default();
        let dir = self.dir();
        if dir.exists() {
            walk(&dir, &mut |path, len| {
                if path.starts_with(self.released_dir()) {
                    usage.released_files += 1;
                } else {
                    usage.files += 1;
                    usage.bytes += len;
                }
            })?;
        }
        Ok(usage)
    }
}

/// Calls `f` with every file under `dir` and its length (symbolic links are not followed).
pub(crate) fn walk(dir: &Path, f: &mut dyn FnMut(&Path, u64)) -> Result<(), StateError> {
    let io = |error| StateError::Io {
        path: dir.display().to_string(),
        error,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let meta = entry.metadata().map_err(io)?;
        if meta.is_dir() {
            walk(&entry.path(), f)?;
        } else {
            f(&entry.path(), meta.len());
        }
    }
    Ok(())
}

/// Permission to perform one action on one project, given by [`Project::authorise`].
#[derive(Debug)]
pub struct Grant<'p, 's> {
    project: &'p Project<'s>,
    actor: String,
    role: Role,
    action: String,
}

impl<'p, 's> Grant<'p, 's> {
    pub fn project(&self) -> &'p Project<'s> {
        self.project
    }

    pub fn actor(&self) -> &str {
        &self.actor
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn action(&self) -> &str {
        &self.action
    }

    /// The keys of provider-internal person numbers, for the provider-wide ledger: they let the
    /// released cells of different projects be compared person by person.
    pub fn provider_persons(&self) -> kluis_pseudo::ProviderPersons {
        self.project.state.master.provider_persons()
    }

    /// The provider-internal numbers of the persons with these keys
    /// ([`crate::State::provider_numbers`]).
    pub fn provider_numbers(&self, keys: &[u64]) -> Result<Vec<u32>, StateError> {
        self.project.state.provider_numbers(keys)
    }

    /// Runs `f` with the project key, opened from the sealed store for this call only and
    /// wiped afterwards.
    pub fn with_key<T>(&self, f: impl FnOnce(&ProjectKey) -> T) -> Result<T, StateError> {
        let record = &self.project.record;
        let key = self.project.state.open_key(&record.id, record.generation)?;
        Ok(f(&key))
    }

    /// Saves the pseudonym map, encrypted under the project key.
    pub fn save_pseudonym_map(&self, map: &PseudonymMap) -> Result<(), StateError> {
        let path = self.project.pseudonym_map_path();
        self.with_key(|key| map.save(key, &path))??;
        Ok(())
    }

    /// Loads the pseudonym map saved by [`Grant::save_pseudonym_map`].
    pub fn load_pseudonym_map(&self) -> Result<PseudonymMap, StateError> {
        let path = self.project.pseudonym_map_path();
        Ok(self.with_key(|key| PseudonymMap::load(key, &path))??)
    }

    /// Records in the audit log that the granted action was done, with its details (file
    /// names, row counts, hashes; never INSZ numbers or keys).
    pub fn record(&self, details: serde_json::Value) -> Result<Entry, StateError> {
        self.project.state.audit(
            &self.actor,
            self.role.name(),
            &self.action,
            Some(self.project.id()),
            details,
        )
    }
}
