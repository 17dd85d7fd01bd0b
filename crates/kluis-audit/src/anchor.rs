//! Anchoring the log outside its database.
//!
//! The sealed `audit_head` row lives in the same database as the log, so whoever deletes or
//! replaces the database takes it with them. Two anchors stay out of its reach:
//!
//! - the **head file**, beside the master key: one sealed line (`seq hash seal`) appended after
//!   every entry is committed. An empty, dropped or older database is caught against it.
//! - the **checkpoint**, a small sealed JSON file naming one entry, that the oversight body keeps
//!   (`kluis audit checkpoint`). A rollback of the *whole* state directory, head file included,
//!   is caught only against a checkpoint (or a head hash) the verifier was given.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{AnchorKey, AuditError, Entry, Tamper, parse_hash};

/// The format name a checkpoint file carries.
pub const CHECKPOINT_FORMAT: &str = "kluis-audit-checkpoint";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |error| AuditError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// One sealed line of the head file: the log had reached entry `seq` with hash `hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadMark {
    pub seq: u64,
    pub hash: [u8; 32],
}

/// The append-only head file. kluis only ever appends to it (`O_APPEND`, one short write per
/// line, so concurrent appends do not interleave); it is created 0600.
#[derive(Debug, Clone)]
pub struct HeadFile {
    path: PathBuf,
}

impl HeadFile {
    pub fn new(path: impl Into<PathBuf>) -> HeadFile {
        HeadFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Appends a sealed mark for entry `seq` and makes it durable.
    pub fn record(&self, key: &AnchorKey, seq: u64, hash: &[u8; 32]) -> Result<(), AuditError> {
        let line = format!(
            "{seq} {} {}\n",
            hex::encode(hash),
            hex::encode(key.file_seal(seq, hash))
        );
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.path).map_err(io(&self.path))?;
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(io(&self.path))
    }

    /// Every mark, each checked against its seal. A missing file reads as no marks; a line that
    /// is not a mark kluis wrote is tampering.
    pub fn marks(&self, key: &AnchorKey) -> Result<Vec<HeadMark>, AuditError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.path)(e)),
        };
        let mut marks = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let bad = || Tamper::BadHeadFile { line: index + 1 };
            let mut parts = line.split(' ');
            let (Some(seq), Some(hash), Some(seal), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad().into());
            };
            let seq: u64 = seq.parse().map_err(|_| bad())?;
            let hash = parse_hash(hash).ok_or_else(bad)?;
            if seal != hex::encode(key.file_seal(seq, &hash)) {
                return Err(bad().into());
            }
            marks.push(HeadMark { seq, hash });
        }
        Ok(marks)
    }
}

/// Checks the log (entry hashes by position: `hashes[seq - 1]`) against the head file's marks.
/// Every mark must name an entry the log has, with the same hash. A mark may be missing where
/// kluis was stopped between committing an entry and appending its mark, so one entry may lack
/// its mark at the end, at the start or between two marks; never two in a row: that means marks
/// were removed, or the head file was deleted and started again by a later append.
pub(crate) fn check_marks(hashes: &[[u8; 32]], marks: &[HeadMark]) -> Result<(), Tamper> {
    let mut seqs: Vec<u64> = marks.iter().map(|m| m.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let mut before = 0;
    for &seq in &seqs {
        if seq > before + 2 {
            return Err(Tamper::HeadFileGap {
                after: before,
                next: seq,
            });
        }
        before = seq;
    }
    let last = hashes.len() as u64;
    let highest = marks.iter().map(|m| m.seq).max().unwrap_or(0);
    if highest > last {
        return Err(Tamper::BehindHeadFile {
            marked: highest,
            last,
        });
    }
    for mark in marks {
        match mark.seq.checked_sub(1).and_then(|i| hashes.get(i as usize)) {
            Some(hash) if *hash == mark.hash => {}
            _ => return Err(Tamper::NotTheMarkedEntry { seq: mark.seq }),
        }
    }
    if last > highest + 1 {
        return Err(Tamper::HeadFileTruncated {
            marked: highest,
            last,
        });
    }
    Ok(())
}

/// A sealed statement that the log had reached entry `seq` with hash `hash` at `time`, for the
/// oversight body to keep and give back to `audit verify --checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub format: String,
    pub seq: u64,
    pub hash: String,
    /// The time of entry `seq`.
    pub time: String,
    /// HMAC-SHA-256 under the anchor key: only this state directory's master key makes it.
    pub seal: String,
}

impl Checkpoint {
    /// The checkpoint of an entry of the log.
    pub fn of(key: &AnchorKey, entry: &Entry) -> Result<Checkpoint, AuditError> {
        let hash = parse_hash(&entry.hash).ok_or_else(|| Tamper::Malformed {
            seq: entry.seq,
            reason: "hash is not 64 hex digits".into(),
        })?;
        Ok(Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            seq: entry.seq,
            hash: entry.hash.clone(),
            time: entry.time.clone(),
            seal: hex::encode(key.checkpoint_seal(entry.seq, &hash, &entry.time)),
        })
    }

    /// Reads a checkpoint file (not yet checked: see [`Checkpoint::check_seal`]).
    pub fn read(path: &Path) -> Result<Checkpoint, AuditError> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let checkpoint: Checkpoint =
            serde_json::from_str(&text).map_err(|e| AuditError::BadCheckpoint {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        if checkpoint.format != CHECKPOINT_FORMAT {
            return Err(AuditError::BadCheckpoint {
                path: path.display().to_string(),
                reason: format!(
                    "format is {:?}, not {CHECKPOINT_FORMAT:?}",
                    checkpoint.format
                ),
            });
        }
        Ok(checkpoint)
    }

    /// Whether this state directory's anchor key sealed it (a checkpoint of another state
    /// directory, or an edited one, does not pass).
    pub fn check_seal(&self, key: &AnchorKey) -> Result<(), Tamper> {
        let hash = parse_hash(&self.hash).ok_or(Tamper::BadCheckpoint)?;
        if self.seal != hex::encode(key.checkpoint_seal(self.seq, &hash, &self.time)) {
            return Err(Tamper::BadCheckpoint);
        }
        Ok(())
    }
}
