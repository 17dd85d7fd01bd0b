//! The state directory: master key, SQLite database (projects, sealed keys, audit log) and one
//! directory per project.
//!
//! ```text
//! HOME/                 0700
//!   master.key          0600, 32 random bytes
//!   audit.head          0600, the audit log's sealed head marks, appended after every entry
//!   kluis.db            0600, SQLite: projects (sealed), keys, audit, audit_head
//!   projects/ID/        0700, everything of a project; retention shreds it all but released/
//!     pseudonyms.map    the pseudonym map, encrypted under the project key
//!     released/         released anonymous tables: kept after retention
//! ```
//!
//! What decides what may happen (a project's registered authorisation and rule set) is stored
//! with a seal under the master key ([`State::seal`]) and checked on every read, so an edit of
//! the database stops every command instead of taking effect.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use kluis_audit::anchor::{Checkpoint, HeadFile};
use kluis_audit::{AnchorKey, Entry, NewEntry, Verified};
use kluis_pseudo::{MasterKey, ProjectKey, SealedKey};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::authorisation::{Authorisation, Role};
use crate::{Project, StateError};

pub(crate) const MASTER_KEY: &str = "master.key";
pub(crate) const DATABASE: &str = "kluis.db";
pub(crate) const HEAD_FILE: &str = "audit.head";
pub(crate) const PROJECTS: &str = "projects";
/// The tables `kluis init` creates; a database without one of them was tampered with.
const TABLES: [&str; 4] = ["projects", "keys", "audit", "audit_head"];
/// The seal kind of a project record.
const PROJECT_SEAL: &str = "project";
/// Provider-internal person numbers ([`State::provider_numbers`]).
const PROVIDER_PERSONS: &str = "provider-persons.bin";
/// The provider-wide release ledger's directory in the state directory.
pub(crate) const PROVIDER_LEDGER: &str = "ledger";

/// The role recorded for actions no authorisation governs (initialising, enforcing retention).
pub const SYSTEM_ROLE: &str = "system";

/// Where the state lives when neither `--home` nor `KLUIS_HOME` says:
/// `$XDG_DATA_HOME/kluis`, else `~/.local/share/kluis`.
pub fn default_home() -> Option<PathBuf> {
    let non_empty = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    non_empty("XDG_DATA_HOME")
        .map(|dir| dir.join("kluis"))
        .or_else(|| non_empty("HOME").map(|home| home.join(".local/share/kluis")))
}

/// Whether a project is usable on a given day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Status {
    Active {
        until: NaiveDate,
    },
    /// The retention date passed; retention enforcement has not destroyed it yet.
    Expired {
        until: NaiveDate,
    },
    Destroyed {
        until: NaiveDate,
        on: NaiveDate,
    },
}

impl Status {
    pub fn name(&self) -> &'static str {
        match self {
            Status::Active { .. } => "active",
            Status::Expired { .. } => "expired",
            Status::Destroyed { .. } => "destroyed",
        }
    }
}

/// A project as registered.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectRecord {
    pub id: String,
    pub authorisation: Authorisation,
    /// SHA-256 of the authorisation file as registered.
    pub authorisation_sha256: String,
    /// 1 for the first registration, +1 each time a destroyed project is registered again (with
    /// a fresh key).
    pub generation: u32,
    /// The public name of the project's current (or destroyed) key.
    pub key_id: String,
    pub created_at: String,
    pub created_by: String,
    pub destroyed_on: Option<NaiveDate>,
    /// The rule set file the steward gave when the authorisation names no built-in set; `None`
    /// for a built-in one.
    pub rules: Option<RulesFile>,
}

/// A disclosure rule set file, as the steward gave it at registration and sealed with the
/// project: later changes to the file change nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RulesFile {
    /// The file's name as given.
    pub file: String,
    /// Its text (TOML, interpreted by kluis-sdc).
    pub text: String,
}

impl ProjectRecord {
    pub fn status(&self, today: NaiveDate) -> Status {
        let until = self.authorisation.retention.effective();
        match self.destroyed_on {
            Some(on) => Status::Destroyed { until, on },
            None if today > until => Status::Expired { until },
            None => Status::Active { until },
        }
    }
}

/// The open state directory. Holds the master key in memory (wiped on drop).
pub struct State {
    home: PathBuf,
    pub(crate) conn: Connection,
    pub(crate) master: MasterKey,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |error| StateError::Io {
        path: path.display().to_string(),
        error,
    }
}

#[cfg(unix)]
pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), StateError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

#[cfg(not(unix))]
pub(crate) fn set_mode(_path: &Path, _mode: u32) -> Result<(), StateError> {
    Ok(())
}

/// Creates a private (0700) directory and its missing parents (0700 too, whatever the umask).
pub(crate) fn private_dir(path: &Path) -> Result<(), StateError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(io(path))?;
    set_mode(path, 0o700)
}

/// Refuses a database some of whose tables were dropped.
fn check_tables(conn: &Connection) -> Result<(), StateError> {
    let mut stmt = conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")?;
    let present: Vec<String> = stmt
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let missing: Vec<&str> = TABLES
        .into_iter()
        .filter(|t| !present.iter().any(|p| p == t))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StateError::Tampered {
            what: format!(
                "kluis.db has no table {}: it was dropped outside kluis",
                missing.join(", no table ")
            ),
        })
    }
}

fn schema(conn: &Connection) -> Result<(), StateError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS projects (
            id TEXT PRIMARY KEY,
            authorisation TEXT NOT NULL,
            authorisation_file TEXT NOT NULL,
            authorisation_sha256 TEXT NOT NULL,
            generation INTEGER NOT NULL,
            key_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            destroyed_on TEXT,
            rules_file TEXT,
            rules TEXT,
            seal TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS keys (
            project_id TEXT NOT NULL,
            generation INTEGER NOT NULL,
            nonce BLOB NOT NULL,
            ciphertext BLOB NOT NULL,
            PRIMARY KEY (project_id, generation)
        );",
    )?;
    kluis_audit::create_schema(conn)?;
    Ok(())
}

/// Opens the database; `create` only for `init`: anywhere else a missing database is a deleted
/// one, and creating an empty one in its place would hide that.
fn connect(path: &Path, create: bool) -> Result<Connection, StateError> {
    use rusqlite::OpenFlags;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    // Deleted rows (a destroyed key's ciphertext) are overwritten with zeros, not just unlinked.
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

impl State {
    /// Creates a state directory: a fresh master key (0600) and the database. Refuses to touch
    /// one that exists: overwriting a master key would lose every project key.
    pub fn init(home: &Path, actor: &str) -> Result<State, StateError> {
        let key_path = home.join(MASTER_KEY);
        if key_path.exists() || home.join(DATABASE).exists() {
            return Err(StateError::AlreadyInitialised {
                home: home.display().to_string(),
            });
        }
        refuse_leftovers(home)?;
        private_dir(home)?;
        private_dir(&home.join(PROJECTS))?;
        let master = MasterKey::generate()?;
        let mut temp = tempfile::Builder::new()
            .prefix(".master-")
            .tempfile_in(home)
            .map_err(io(home))?;
        set_mode(temp.path(), 0o600)?;
        temp.write_all(master.as_bytes())
            .and_then(|()| temp.as_file().sync_all())
            .map_err(io(&key_path))?;
        temp.persist_noclobber(&key_path)
            .map_err(|e| StateError::Io {
                path: key_path.display().to_string(),
                error: e.error,
            })?;

        let db_path = home.join(DATABASE);
        let conn = connect(&db_path, true)?;
        schema(&conn)?;
        set_mode(&db_path, 0o600)?;
        let state = State {
            home: home.to_owned(),
            conn,
            master,
        };
        state.audit(
            actor,
            SYSTEM_ROLE,
            "init",
            None,
            json!({"home": home.display().to_string()}),
        )?;
        Ok(state)
    }

    /// Opens an initialised state directory. Refuses a master key file others can read.
    pub fn open(home: &Path) -> Result<State, StateError> {
        let key_path = home.join(MASTER_KEY);
        if !key_path.exists() {
            return Err(StateError::NotInitialised {
                home: home.display().to_string(),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_path)
                .map_err(io(&key_path))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(StateError::MasterKeyExposed {
                    path: key_path.display().to_string(),
                    mode: mode & 0o777,
                });
            }
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(33));
        std::fs::File::open(&key_path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io(&key_path))?;
        let key: [u8; 32] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| StateError::MasterKeyCorrupt {
                    path: key_path.display().to_string(),
                })?;
        let master = MasterKey::from_bytes(key);
        let db_path = home.join(DATABASE);
        if !db_path.exists() {
            return Err(StateError::Tampered {
                what: format!(
                    "{} is missing beside the master key: the database (projects, keys, audit log) was deleted; restore it from a backup",
                    db_path.display()
                ),
            });
        }
        let conn = connect(&db_path, false)?;
        check_tables(&conn)?;
        Ok(State {
            home: home.to_owned(),
            conn,
            master,
        })
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Dense provider-internal person numbers (1, 2, ...) for `keys`, each a person's
    /// [`kluis_pseudo::ProviderPersons::key`] (distinct): a person seen before keeps their
    /// number, a new one gets the next. The provider-wide ledger's person sets are bitmaps of
    /// these numbers, compact because they are dense. The table (`provider-persons.bin`, 0600:
    /// the keys, which only the master key links to an INSZ, and their numbers) lives as long as
    /// the state directory, like the ledger.
    pub fn provider_numbers(&self, keys: &[u64]) -> Result<Vec<u32>, StateError> {
        let path = self.home.join(PROVIDER_PERSONS);
        let lock_path = self.home.join(".provider-persons.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        set_mode(&lock_path, 0o600)?;
        lock.lock().map_err(io(&lock_path))?;
        let mut known: Vec<(u64, u32)> = match std::fs::read(&path) {
            Ok(bytes) if bytes.len() % 12 == 0 => bytes
                .chunks_exact(12)
                .map(|b| {
                    let key = u64::from_le_bytes(b[..8].try_into().expect("eight bytes"));
                    let number = u32::from_le_bytes(b[8..].try_into().expect("four bytes"));
                    (key, number)
                })
                .collect(),
            Ok(_) => {
                return Err(StateError::Tampered {
                    what: format!(
                        "{} is not a whole number of 12-byte entries: the provider-wide person numbers were altered; restore the file from a backup",
                        path.display()
                    ),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(&path)(e)),
        };
        let mut next = known.len() as u32 + 1;
        let mut added = Vec::new();
        let numbers = keys
            .iter()
            .map(|&key| match known.binary_search_by_key(&key, |&(k, _)| k) {
                Ok(i) => known[i].1,
                Err(_) => {
                    added.push((key, next));
                    next += 1;
                    next - 1
                }
            })
            .collect();
        if !added.is_empty() {
            known.extend(added);
            known.sort_unstable();
            let mut bytes = Vec::with_capacity(known.len() * 12);
            for (key, number) in &known {
                bytes.extend_from_slice(&key.to_le_bytes());
                bytes.extend_from_slice(&number.to_le_bytes());
            }
            let mut temp = tempfile::Builder::new()
                .prefix(".provider-persons-")
                .tempfile_in(&self.home)
                .map_err(io(&self.home))?;
            set_mode(temp.path(), 0o600)?;
            temp.write_all(&bytes)
                .and_then(|()| temp.as_file().sync_all())
                .map_err(io(&path))?;
            temp.persist(&path).map_err(|e| StateError::Io {
                path: path.display().to_string(),
                error: e.error,
            })?;
        }
        Ok(numbers)
    }

    /// The provider-wide release ledger: every project's released cells, with their persons by
    /// provider-internal number. It outlives the projects (see the guide, "Retention").
    pub fn provider_ledger_dir(&self) -> PathBuf {
        self.home.join(PROVIDER_LEDGER)
    }

    /// What a release entry puts under [`crate::PROVIDER_FILES`]: every file of the
    /// provider-wide ledger, so that emptying or editing it is caught.
    pub fn vouch_provider_ledger(&self) -> Result<serde_json::Value, StateError> {
        crate::evidence::vouch(&self.home, &[PROVIDER_LEDGER])
    }

    /// Fails when a file of the provider-wide ledger is not as the latest entry naming it
    /// vouched for: check before judging differencing against it.
    pub fn check_provider_ledger(&self) -> Result<(), StateError> {
        crate::evidence::check_provider_files(&self.home, &self.audit_entries(None)?)
    }

    fn anchor(&self) -> AnchorKey {
        AnchorKey::new(*self.master.derive("audit-anchor"))
    }

    fn head_file(&self) -> HeadFile {
        HeadFile::new(self.home.join(HEAD_FILE))
    }

    /// The seal (hex) of a stored record of `kind` with these fields, under the master key.
    /// Everything that decides what may happen is stored with one: project records now, accounts
    /// and their roles when the service has them. Check it on every read with
    /// [`State::check_seal`].
    pub fn seal(&self, kind: &str, fields: &[&[u8]]) -> String {
        hex::encode(self.master.seal_record(kind, fields))
    }

    /// Fails, naming `what` (e.g. `project 99-001`), when `seal` is not the seal of the record.
    pub fn check_seal(
        &self,
        kind: &str,
        what: &str,
        fields: &[&[u8]],
        seal: &str,
    ) -> Result<(), StateError> {
        let matches = hex::decode(seal)
            .map(|bytes| self.master.record_seal_matches(kind, fields, &bytes))
            .unwrap_or(false);
        if matches {
            Ok(())
        } else {
            Err(StateError::Tampered {
                what: format!(
                    "the stored record of {what} was changed outside kluis (its seal under the master key does not match); nothing may be done with it until the database is restored from a backup"
                ),
            })
        }
    }

    /// Appends one audit entry. `details`: file names, counts, hashes; never INSZ or keys.
    pub fn audit(
        &self,
        actor: &str,
        role: &str,
        action: &str,
        project: Option<&str>,
        details: serde_json::Value,
    ) -> Result<Entry, StateError> {
        let entry = NewEntry {
            actor,
            role,
            action,
            project,
            details,
        };
        Ok(kluis_audit::append_anchored(
            &self.conn,
            &self.anchor(),
            &self.head_file(),
            entry,
        )?)
    }

    pub fn audit_entries(&self, project: Option<&str>) -> Result<Vec<Entry>, StateError> {
        Ok(kluis_audit::entries(&self.conn, project)?)
    }

    /// Checks the whole audit chain, its head file beside the master key, and that everything
    /// the state holds (projects, keys, project directories, outputs) is accounted for in it:
    /// a wiped, dropped, emptied or replaced log fails, naming what was found. The error names
    /// the first problem.
    pub fn verify_audit(&self) -> Result<Verified, StateError> {
        let verified = kluis_audit::verify_anchored(&self.conn, &self.anchor(), &self.head_file())?;
        crate::evidence::check(self, verified.entries)?;
        Ok(verified)
    }

    /// [`State::verify_audit`], and that the log still holds the entry with `hash` an earlier
    /// verification printed (an overseer's record): a rollback of the whole state directory to
    /// before it is caught. Returns that entry's number too.
    pub fn verify_audit_expecting(&self, hash: &str) -> Result<(Verified, u64), StateError> {
        let verified = self.verify_audit()?;
        let seq = kluis_audit::expect_head(&self.conn, hash)?;
        Ok((verified, seq))
    }

    /// [`State::verify_audit`], and that the checkpoint at `path` was sealed by this state
    /// directory and its entry is still in the log.
    pub fn verify_audit_checkpoint(
        &self,
        path: &Path,
    ) -> Result<(Verified, Checkpoint), StateError> {
        let checkpoint = Checkpoint::read(path)?;
        let verified = self.verify_audit()?;
        kluis_audit::check_checkpoint(&self.conn, &self.anchor(), &checkpoint)?;
        Ok((verified, checkpoint))
    }

    /// Records a checkpoint in the log and returns it sealed, for the oversight body to keep: it
    /// names that very entry. Only an intact log is checkpointed.
    pub fn checkpoint_audit(&self, actor: &str) -> Result<Checkpoint, StateError> {
        let verified = self.verify_audit()?;
        let entry = self.audit(
            actor,
            SYSTEM_ROLE,
            "audit.checkpoint",
            None,
            json!({"verified_entries": verified.entries, "verified_head": verified.head_hash}),
        )?;
        Ok(Checkpoint::of(&self.anchor(), &entry)?)
    }

    /// Writes the audit log as JSON Lines to `path` (via a temporary file renamed into place).
    pub fn export_audit(&self, path: &Path) -> Result<u64, StateError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut temp = tempfile::Builder::new()
            .prefix(".audit-")
            .tempfile_in(dir)
            .map_err(io(dir))?;
        let count = {
            let mut out = std::io::BufWriter::new(temp.as_file_mut());
            let count = kluis_audit::export_jsonl(&self.conn, &mut out)?;
            out.flush().map_err(io(path))?;
            count
        };
        temp.as_file().sync_all().map_err(io(path))?;
        temp.persist(path).map_err(|e| StateError::Io {
            path: path.display().to_string(),
            error: e.error,
        })?;
        Ok(count)
    }

    /// Every project row, each checked against its seal and its authorisation's sha256.
    fn stored_projects(&self) -> Result<Vec<StoredProject>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, authorisation, authorisation_file, authorisation_sha256, generation,
                    key_id, created_at, created_by, destroyed_on, rules_file, rules, seal
             FROM projects ORDER BY id",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(StoredProject {
                id: row.get(0)?,
                text: row.get(1)?,
                file: row.get(2)?,
                sha256: row.get(3)?,
                generation: row.get(4)?,
                key_id: row.get(5)?,
                created_at: row.get(6)?,
                created_by: row.get(7)?,
                destroyed_on: row.get(8)?,
                rules_file: row.get(9)?,
                rules: row.get(10)?,
                seal: row.get(11)?,
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            let stored = row?;
            self.check_project_seal(&stored)?;
            if hex::encode(Sha256::digest(stored.text.as_bytes())) != stored.sha256 {
                return Err(StateError::Tampered {
                    what: format!(
                        "the stored authorisation of project {} no longer has the sha256 it was registered with",
                        stored.id
                    ),
                });
            }
            out.push(stored);
        }
        Ok(out)
    }

    fn stored_project(&self, id: &str) -> Result<StoredProject, StateError> {
        self.stored_projects()?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| StateError::UnknownProject {
                id: id.to_owned(),
                known: Vec::new(),
            })
    }

    /// Every registered project, by id.
    pub fn projects(&self) -> Result<Vec<ProjectRecord>, StateError> {
        let mut out = Vec::new();
        for stored in self.stored_projects()? {
            let StoredProject {
                id,
                text,
                file,
                sha256: sha,
                generation,
                key_id,
                created_at,
                created_by,
                destroyed_on: destroyed,
                rules_file,
                rules,
                ..
            } = stored;
            // The text was checked when registered; a failure now means the database was edited.
            let authorisation = Authorisation::parse(&text, &file)?;
            let destroyed_on = destroyed
                .map(|d| {
                    d.parse::<NaiveDate>().map_err(|_| {
                        StateError::Corrupt(format!("project {id}: destroyed_on {d:?}"))
                    })
                })
                .transpose()?;
            out.push(ProjectRecord {
                id,
                authorisation,
                authorisation_sha256: sha,
                generation,
                key_id,
                created_at,
                created_by,
                destroyed_on,
                rules: match (rules_file, rules) {
                    (Some(file), Some(text)) => Some(RulesFile { file, text }),
                    _ => None,
                },
            });
        }
        Ok(out)
    }

    /// The project with this id, also found by its authorisation's id (`23/224` for `23-224`).
    /// Its record is checked against its seal and against the audit log: an older copy put
    /// back (a destroyed or replaced key brought back to life) is refused.
    pub fn project(&self, id: &str) -> Result<Project<'_>, StateError> {
        let mut all = self.projects()?;
        let wanted = crate::authorisation::project_id(id);
        match all.iter().position(|p| p.id == wanted) {
            Some(i) => {
                let record = all.swap_remove(i);
                let entries = self.audit_entries(Some(&record.id))?;
                crate::evidence::not_behind_log(&record, &entries.iter().collect::<Vec<_>>())?;
                Ok(Project {
                    state: self,
                    record,
                })
            }
            None => Err(StateError::UnknownProject {
                id: id.to_owned(),
                known: all.into_iter().map(|p| p.id).collect(),
            }),
        }
    }

    /// Records a refusal in the audit log and returns the error that explains it.
    pub(crate) fn refuse(
        &self,
        actor: &str,
        role: &str,
        action: &str,
        project: &str,
        error: StateError,
    ) -> StateError {
        let details = json!({"attempted": action, "reason": error.to_string()});
        match self.audit(actor, role, "refused", Some(project), details) {
            Ok(_) => error,
            Err(audit_error) => audit_error,
        }
    }

    /// Registers a project for a checked authorisation, with a fresh key sealed under the master
    /// key. Only a steward the authorisation names may do so, and only before its retention
    /// date. A destroyed project can be registered again (e.g. after an extension decision):
    /// it gets a new generation and a new key, so none of its old pseudonyms return.
    pub fn create_project(
        &self,
        authorisation: &Authorisation,
        source: &str,
        file_name: &str,
        actor: &str,
        today: NaiveDate,
    ) -> Result<Project<'_>, StateError> {
        self.create_project_with_rules(authorisation, source, file_name, None, actor, today)
    }

    /// [`State::create_project`] with the rule set file the steward gives when the
    /// authorisation names no built-in rule set (the caller checks that it is one and bears the
    /// name the authorisation gives). It is sealed into the project with the authorisation.
    pub fn create_project_with_rules(
        &self,
        authorisation: &Authorisation,
        source: &str,
        file_name: &str,
        rules: Option<&RulesFile>,
        actor: &str,
        today: NaiveDate,
    ) -> Result<Project<'_>, StateError> {
        let id = authorisation.project_id();
        let action = "project.create";
        if !authorisation.roles.steward.iter().any(|s| s == actor) {
            let error = StateError::Refused {
                actor: actor.to_owned(),
                action: action.to_owned(),
                project: id.clone(),
                reason: format!(
                    "registering a project needs the steward role, and authorisation {} names as steward only {}",
                    authorisation.id,
                    authorisation.roles.steward.join(", ")
                ),
            };
            return Err(self.refuse(actor, "none", action, &id, error));
        }
        let until = authorisation.retention.effective();
        if today > until {
            let error = StateError::Expired {
                project: id.clone(),
                until,
            };
            return Err(self.refuse(actor, Role::Steward.name(), action, &id, error));
        }
        let existing = self.projects()?.into_iter().find(|p| p.id == id);
        let generation = match &existing {
            Some(p) if p.destroyed_on.is_none() => {
                let error = StateError::ProjectExists { id: id.clone() };
                return Err(self.refuse(actor, Role::Steward.name(), action, &id, error));
            }
            Some(p) => p.generation + 1,
            None => 1,
        };

        let key = ProjectKey::generate()?;
        let sealed = self.master.seal(&key_context(&id, generation), &key)?;
        let sha = hex::encode(Sha256::digest(source.as_bytes()));
        let created_at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let dir = self.home.join(PROJECTS).join(&id);
        private_dir(&dir.join("released"))?;
        let stored = StoredProject {
            id: id.clone(),
            text: source.to_owned(),
            file: file_name.to_owned(),
            sha256: sha.clone(),
            generation,
            key_id: key.key_id(),
            created_at,
            created_by: actor.to_owned(),
            destroyed_on: None,
            rules_file: rules.map(|r| r.file.clone()),
            rules: rules.map(|r| r.text.clone()),
            seal: String::new(),
        };
        let seal = self.seal_project(&stored);
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO projects (id, authorisation, authorisation_file, authorisation_sha256,
                                   generation, key_id, created_at, created_by, destroyed_on,
                                   rules_file, rules, seal)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9, ?10, ?11)
             ON CONFLICT (id) DO UPDATE SET authorisation = excluded.authorisation,
                authorisation_file = excluded.authorisation_file,
                authorisation_sha256 = excluded.authorisation_sha256,
                generation = excluded.generation, key_id = excluded.key_id,
                created_at = excluded.created_at,
                created_by = excluded.created_by, destroyed_on = NULL,
                rules_file = excluded.rules_file, rules = excluded.rules, seal = excluded.seal",
            params![
                stored.id,
                stored.text,
                stored.file,
                stored.sha256,
                stored.generation,
                stored.key_id,
                stored.created_at,
                stored.created_by,
                stored.rules_file,
                stored.rules,
                seal,
            ],
        )?;
        tx.execute(
            "INSERT INTO keys (project_id, generation, nonce, ciphertext) VALUES (?1, ?2, ?3, ?4)",
            params![id, generation, sealed.nonce.as_slice(), sealed.ciphertext],
        )?;
        tx.commit()?;
        self.audit(
            actor,
            Role::Steward.name(),
            action,
            Some(&id),
            json!({
                "authorisation": authorisation.id,
                "file": file_name,
                "sha256": sha,
                "generation": generation,
                "key_id": key.key_id(),
                "retention_until": until.to_string(),
                "rules": authorisation.disclosure.rules,
                "rules_file": rules.map(|r| r.file.clone()),
                "rules_sha256": rules.map(|r| hex::encode(Sha256::digest(r.text.as_bytes()))),
            }),
        )?;
        self.project(&id)
    }

    /// Opens a project's key (it exists only while the project is not destroyed).
    pub(crate) fn open_key(&self, id: &str, generation: u32) -> Result<ProjectKey, StateError> {
        let sealed: Option<(Vec<u8>, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT nonce, ciphertext FROM keys WHERE project_id = ?1 AND generation = ?2",
                params![id, generation],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let (nonce, ciphertext) = sealed.ok_or_else(|| StateError::KeyMissing {
            project: id.to_owned(),
        })?;
        let nonce: [u8; 24] = nonce
            .try_into()
            .map_err(|_| StateError::Corrupt(format!("project {id}: sealed key nonce")))?;
        Ok(self.master.open(
            &key_context(id, generation),
            &SealedKey { nonce, ciphertext },
        )?)
    }

    /// Overwrites then deletes a project's sealed key rows (secure_delete zeroes the freed
    /// pages too) and marks it destroyed, in one transaction.
    pub(crate) fn destroy_key(&self, id: &str, on: NaiveDate) -> Result<(), StateError> {
        let mut stored = self.stored_project(id)?;
        stored.destroyed_on = Some(on.to_string());
        let seal = self.seal_project(&stored);
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "UPDATE keys SET nonce = zeroblob(length(nonce)), ciphertext = zeroblob(length(ciphertext))
             WHERE project_id = ?1",
            params![id],
        )?;
        tx.execute("DELETE FROM keys WHERE project_id = ?1", params![id])?;
        tx.execute(
            "UPDATE projects SET destroyed_on = ?2, seal = ?3 WHERE id = ?1",
            params![id, on.to_string(), seal],
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// A project row as stored, before its seal is checked.
struct StoredProject {
    id: String,
    text: String,
    file: String,
    sha256: String,
    generation: u32,
    key_id: String,
    created_at: String,
    created_by: String,
    destroyed_on: Option<String>,
    rules_file: Option<String>,
    rules: Option<String>,
    seal: String,
}

impl StoredProject {
    /// What the seal covers: every column but the seal, a missing value told apart from an
    /// empty one.
    fn fields(&self) -> Vec<Vec<u8>> {
        let mut fields: Vec<Vec<u8>> = [
            &self.id,
            &self.text,
            &self.file,
            &self.sha256,
            &self.key_id,
            &self.created_at,
            &self.created_by,
        ]
        .into_iter()
        .map(|v| v.as_bytes().to_vec())
        .collect();
        fields.push(self.generation.to_string().into_bytes());
        for value in [&self.destroyed_on, &self.rules_file, &self.rules] {
            match value {
                None => fields.push(b"none".to_vec()),
                Some(v) => fields.extend([b"some".to_vec(), v.as_bytes().to_vec()]),
            }
        }
        fields
    }
}

impl State {
    fn seal_project(&self, stored: &StoredProject) -> String {
        let fields = stored.fields();
        let fields: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        self.seal(PROJECT_SEAL, &fields)
    }

    fn check_project_seal(&self, stored: &StoredProject) -> Result<(), StateError> {
        let fields = stored.fields();
        let fields: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        self.check_seal(
            PROJECT_SEAL,
            &format!("project {}", stored.id),
            &fields,
            &stored.seal,
        )
    }
}

/// Refuses to start a new state directory over the remains of one whose database and master key
/// are gone: a new log there would hide what the old one recorded.
fn refuse_leftovers(home: &Path) -> Result<(), StateError> {
    let mut leftovers = Vec::new();
    if home.join(HEAD_FILE).exists() {
        leftovers.push(HEAD_FILE.to_owned());
    }
    if let Ok(entries) = std::fs::read_dir(home.join(PROJECTS)) {
        for entry in entries.flatten() {
            leftovers.push(format!(
                "{PROJECTS}/{}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    if leftovers.is_empty() {
        return Ok(());
    }
    leftovers.sort();
    Err(StateError::Tampered {
        what: format!(
            "{} holds {} of an earlier state directory whose master key and database are gone; kluis init will not start a new audit log over it (restore master.key and kluis.db from a backup, or move the directory away and tell the oversight body)",
            home.display(),
            leftovers.join(", ")
        ),
    })
}

/// Associated data binding a sealed key to its project and generation.
fn key_context(id: &str, generation: u32) -> String {
    format!("kluis project key {id}#{generation}")
}
