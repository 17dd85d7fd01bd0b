//! What the state holds must be accounted for in the audit log: the log is the only record of
//! who did what, so a log that was wiped, replaced by another, or cut back must not verify while
//! the projects, keys and outputs it no longer mentions are still there.
//!
//! Checked by `audit verify`, after the chain and its head file:
//! - the log is not empty (`init` writes its first entry) and starts with `init`;
//! - every registered project has its registration in the log, with its authorisation's sha256,
//!   generation and key id, and it is the latest registration the log holds; a destroyed one
//!   has its destruction, and one the log destroyed is marked destroyed;
//! - every project the log registered is still registered;
//! - every sealed key belongs to a registered, undestroyed project of that generation;
//! - every directory under `projects/` is a registered project;
//! - every stored output (`outputs/ID/`) and released table (`released/ID.csv`) of a project is
//!   named in one of that project's entries;
//! - every file an entry vouched for (`vouched_files`: the release ledger) is unchanged.

use std::collections::BTreeSet;
use std::path::Path;

use kluis_audit::Entry;

use crate::StateError;
use crate::state::{HEAD_FILE, PROJECTS, ProjectRecord, State};

fn tampered(what: String) -> StateError {
    StateError::Tampered { what }
}

/// The names of the entries of a directory (none when it does not exist).
fn names(dir: &Path) -> Result<Vec<String>, StateError> {
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(StateError::Io {
            path: dir.display().to_string(),
            error,
        }),
        Ok(entries) => {
            let mut out = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|error| StateError::Io {
                    path: dir.display().to_string(),
                    error,
                })?;
                out.push(entry.file_name().to_string_lossy().into_owned());
            }
            out.sort();
            Ok(out)
        }
    }
}

/// Whether `name` is an output id of `project` (`99-001-0003`).
fn is_output_id(project: &str, name: &str) -> bool {
    name.strip_prefix(project)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn is_destruction(entry: &Entry) -> bool {
    entry.action == "retention.destroy" || entry.action == "project.destroy"
}

/// Refuses a project record older than what the log says of it (`entries`: the project's
/// entries): a generation the log has since replaced, or not destroyed though the log destroyed
/// it. Either is an older copy of the record (and of its key) put back, which would make a
/// destroyed key usable again. kluis writes the record before the entry, so a crash never
/// leaves the log ahead: this is checked on every use of the project.
pub(crate) fn not_behind_log(record: &ProjectRecord, entries: &[&Entry]) -> Result<(), StateError> {
    let generation = u64::from(record.generation);
    let latest = entries
        .iter()
        .filter(|e| e.action == "project.create")
        .filter_map(|e| e.details["generation"].as_u64())
        .max();
    if latest.is_some_and(|latest| latest > generation) {
        return Err(tampered(format!(
            "project {} is registered as generation {generation}, but the audit log registered generation {} since: the project's record was replaced by an older copy",
            record.id,
            latest.unwrap_or_default()
        )));
    }
    let destroyed = entries
        .iter()
        .any(|e| is_destruction(e) && e.details["generation"].as_u64() == Some(generation));
    if destroyed && record.destroyed_on.is_none() {
        return Err(tampered(format!(
            "the audit log records the destruction of project {} generation {generation}, but it is registered as not destroyed: its record (and key) were brought back from an older copy",
            record.id
        )));
    }
    Ok(())
}

pub(crate) fn check(state: &State, entries: u64) -> Result<(), StateError> {
    let records = state.projects()?;
    let keys: Vec<(String, u32)> = {
        let mut stmt = state
            .conn
            .prepare("SELECT project_id, generation FROM keys ORDER BY project_id")?;
        stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    let directories = names(&state.home().join(PROJECTS))?;
    if entries == 0 {
        let mut found = vec![format!("{} registered projects", records.len())];
        found.push(format!("{} sealed project keys", keys.len()));
        found.push(format!("{} project directories", directories.len()));
        if state.home().join(HEAD_FILE).exists() {
            found.push(format!("the head file {HEAD_FILE}"));
        }
        return Err(tampered(format!(
            "the audit log is empty, but `kluis init` writes its first entry, so it was wiped; the state still holds {}",
            found.join(", ")
        )));
    }
    let log = state.audit_entries(None)?;
    if log[0].action != "init" {
        return Err(tampered(format!(
            "the audit log starts with `{}`, not with `init`: its beginning was replaced",
            log[0].action
        )));
    }

    for record in &records {
        let of_project = |e: &&Entry| e.project.as_deref() == Some(record.id.as_str());
        let generation =
            |e: &Entry| e.details["generation"].as_u64() == Some(record.generation.into());
        let registered = log.iter().filter(of_project).any(|e| {
            e.action == "project.create"
                && generation(e)
                && e.details["sha256"] == record.authorisation_sha256.as_str()
                && e.details["key_id"] == record.key_id.as_str()
        });
        if !registered {
            return Err(tampered(format!(
                "project {} (generation {}) is registered, but the audit log holds no registration of it with that authorisation (sha256 {}) and key {}: the project or the log was replaced",
                record.id, record.generation, record.authorisation_sha256, record.key_id
            )));
        }
        let of_record: Vec<&Entry> = log.iter().filter(of_project).collect();
        not_behind_log(record, &of_record)?;
        let destroyed = of_record.iter().any(|e| is_destruction(e) && generation(e));
        if record.destroyed_on.is_some() && !destroyed {
            return Err(tampered(format!(
                "project {} is marked destroyed, but the audit log holds no destruction of generation {}",
                record.id, record.generation
            )));
        }
        let dir = state.home().join(PROJECTS).join(&record.id);
        check_vouched_files(&dir, record, &of_record)?;
        // Outputs and released tables kluis wrote are each named in an entry of the project.
        let mentioned: BTreeSet<String> = log
            .iter()
            .filter(of_project)
            .flat_map(|e| {
                let text = e.details.to_string();
                let mut ids = Vec::new();
                let mut rest = text.as_str();
                while let Some(at) = rest.find(&record.id) {
                    let tail = &rest[at..];
                    let end = tail
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                        .unwrap_or(tail.len());
                    ids.push(tail[..end].to_owned());
                    rest = &tail[end..];
                }
                ids
            })
            .collect();
        let stored = names(&dir.join("outputs"))?
            .into_iter()
            .filter(|n| is_output_id(&record.id, n));
        let released = names(&dir.join("released"))?
            .into_iter()
            .filter_map(|n| n.strip_suffix(".csv").map(str::to_owned))
            .filter(|n| is_output_id(&record.id, n));
        for output in stored.chain(released) {
            if !mentioned.contains(&output) {
                return Err(tampered(format!(
                    "output {output} is in the state directory, but no entry of project {} in the audit log names it: the log was replaced or the output put there outside kluis",
                    record.id
                )));
            }
        }
    }

    // Every project the log registered is still registered (destroyed or not): projects are
    // never unregistered, so a missing one was deleted outside kluis.
    let logged: BTreeSet<&str> = log
        .iter()
        .filter(|e| e.action == "project.create")
        .filter_map(|e| e.project.as_deref())
        .collect();
    for id in logged {
        if !records.iter().any(|r| r.id == id) {
            return Err(tampered(format!(
                "the audit log registered project {id}, but the state holds no project {id}: it was deleted outside kluis"
            )));
        }
    }

    for (project, generation) in &keys {
        let owner = records
            .iter()
            .find(|r| &r.id == project && r.generation == *generation && r.destroyed_on.is_none());
        if owner.is_none() {
            return Err(tampered(format!(
                "the key store holds a key for project {project} generation {generation}, which is not a registered, undestroyed project"
            )));
        }
    }

    for name in &directories {
        if !records.iter().any(|r| &r.id == name) {
            return Err(tampered(format!(
                "{PROJECTS}/{name} is in the state directory, but no project {name} is registered: the database was replaced or emptied"
            )));
        }
    }
    check_provider_files(state.home(), &log)
}

/// The key under which an entry's details vouch for files of its project, so that a file that
/// decides what may happen (the release ledger, which differencing is checked against) and is
/// not kept in the database is still covered by the chain: `{"vouched_files": {"ledger/X.json":
/// "<sha256>", ...}}`, paths relative to the project directory.
pub const VOUCHED_FILES: &str = "vouched_files";

/// The key under which a release entry vouches for the provider-wide ledger
/// (`STATE/ledger/`), paths relative to the state directory. It outlives projects, so every
/// entry of every project counts, the latest per file.
pub const PROVIDER_FILES: &str = "provider_files";

/// `{path relative to dir: sha256}` for every file under each `dir/sub`, or `dir/sub` itself
/// when it is a file (none for a missing one). Lock files (named `.…lock`) hold nothing.
pub(crate) fn vouch(dir: &Path, subs: &[&str]) -> Result<serde_json::Value, StateError> {
    let mut files = serde_json::Map::new();
    for root in subs.iter().map(|sub| dir.join(sub)).filter(|r| r.exists()) {
        let mut paths = Vec::new();
        if root.is_file() {
            paths.push(root.clone());
        } else {
            crate::project::walk(&root, &mut |path, _| paths.push(path.to_owned()))?;
        }
        paths.retain(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.') && n.ends_with(".lock"))
        });
        paths.sort();
        for path in paths {
            let relative = path.strip_prefix(dir).unwrap_or(&path);
            files.insert(
                relative.display().to_string(),
                serde_json::Value::String(sha256_of(&path)?),
            );
        }
    }
    Ok(serde_json::Value::Object(files))
}

fn sha256_of(path: &Path) -> Result<String, StateError> {
    use sha2::Digest;
    let io = |error| StateError::Io {
        path: path.display().to_string(),
        error,
    };
    use std::io::Read;
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buffer).map_err(io)? {
            0 => break,
            n => hasher.update(&buffer[..n]),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks that every file of the provider-wide ledger that an entry vouched for is there with
/// the content the latest entry naming it gave: emptied or edited, the differencing checks
/// across projects would trust it. (A file no entry names yet is a release of another project
/// in progress; one planted outside kluis could only make the checks stricter.)
pub(crate) fn check_provider_files(home: &Path, log: &[Entry]) -> Result<(), StateError> {
    let mut vouched = std::collections::BTreeMap::new();
    for entry in log {
        if let Some(files) = entry.details[PROVIDER_FILES].as_object() {
            for (path, sha) in files {
                vouched.insert(path.clone(), (entry.seq, sha.as_str().unwrap_or_default()));
            }
        }
    }
    for (path, (seq, sha)) in &vouched {
        let file = home.join(path);
        let found = match file.exists() {
            true => Some(sha256_of(&file)?),
            false => None,
        };
        if found.as_deref() != Some(*sha) {
            return Err(tampered(format!(
                "{path}, which audit entry {seq} vouches for, was {} outside kluis: the differencing checks across projects can no longer trust the provider-wide ledger",
                if found.is_some() {
                    "changed"
                } else {
                    "deleted"
                }
            )));
        }
    }
    Ok(())
}

/// Checks that every file the project's entries vouched for (since its latest registration:
/// destruction shreds them) is still there with that content. A destroyed project has none.
pub(crate) fn check_vouched_files(
    dir: &Path,
    record: &ProjectRecord,
    entries: &[&Entry],
) -> Result<(), StateError> {
    if record.destroyed_on.is_some() {
        return Ok(());
    }
    let since = entries
        .iter()
        .rposition(|e| e.action == "project.create")
        .unwrap_or(0);
    let mut vouched = std::collections::BTreeMap::new();
    for entry in &entries[since..] {
        if let Some(files) = entry.details[VOUCHED_FILES].as_object() {
            for (path, sha) in files {
                vouched.insert(path.clone(), (entry.seq, sha.as_str().unwrap_or_default()));
            }
        }
    }
    for (path, (seq, sha)) in vouched {
        let file = dir.join(&path);
        let found = match file.exists() {
            true => Some(sha256_of(&file)?),
            false => None,
        };
        if found.as_deref() != Some(sha) {
            return Err(tampered(format!(
                "{PROJECTS}/{}/{path}, which audit entry {seq} vouches for, was {} outside kluis: what is checked against it can no longer be trusted",
                record.id,
                if found.is_some() {
                    "changed"
                } else {
                    "deleted"
                }
            )));
        }
    }
    Ok(())
}
