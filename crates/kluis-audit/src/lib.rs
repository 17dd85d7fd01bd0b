//! The append-only, hash-chained audit log of kluis, kept in a SQLite table.
//!
//! Every entry carries the SHA-256 hash of its own fields and of the entry before it, so anyone
//! holding an export can check the chain. Because a plain hash chain can be recomputed by whoever
//! edits the database, each entry also carries a *seal* (HMAC-SHA-256 under an anchor key that
//! lives outside the database), and the head of the chain (last sequence number and hash) is
//! kept sealed in a second table, updated in the same transaction as every append. Outside the
//! database, a sealed head file and checkpoints anchor it (see [`anchor`]). See the README for
//! the threat model.

pub mod anchor;

use std::io::{BufRead, Write};

use hmac::{KeyInit, Mac};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

type HmacSha256 = hmac::Hmac<Sha256>;

/// The `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// The secret that seals entries and the chain head. kluis derives it from the master key; it is
/// never stored in the database.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AnchorKey([u8; 32]);

impl AnchorKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        AnchorKey(bytes)
    }

    fn mac(&self, domain: &[u8], seq: u64, hash: &[u8; 32]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(domain);
        mac.update(&seq.to_be_bytes());
        mac.update(hash);
        mac.finalize().into_bytes().into()
    }

    fn seal(&self, seq: u64, hash: &[u8; 32]) -> [u8; 32] {
        self.mac(b"kluis-audit-entry-seal-v1", seq, hash)
    }

    fn head_seal(&self, seq: u64, hash: &[u8; 32]) -> [u8; 32] {
        self.mac(b"kluis-audit-head-seal-v1", seq, hash)
    }

    fn file_seal(&self, seq: u64, hash: &[u8; 32]) -> [u8; 32] {
        self.mac(b"kluis-audit-head-file-seal-v1", seq, hash)
    }

    fn checkpoint_seal(&self, seq: u64, hash: &[u8; 32], time: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"kluis-audit-checkpoint-seal-v1");
        mac.update(&seq.to_be_bytes());
        mac.update(hash);
        mac.update(&(time.len() as u64).to_be_bytes());
        mac.update(time.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for AnchorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnchorKey(..)")
    }
}

/// What a caller records. `details` holds file names, row counts, hashes: never INSZ numbers or
/// keys.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub actor: &'a str,
    pub role: &'a str,
    pub action: &'a str,
    pub project: Option<&'a str>,
    pub details: serde_json::Value,
}

/// One entry as stored (and as exported, one JSON object per line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// UTC, RFC 3339 with microseconds.
    pub time: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub project: Option<String>,
    pub details: serde_json::Value,
    /// Hex SHA-256 of the previous entry (all zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 over the canonical encoding of all fields above.
    pub hash: String,
}

/// Why the log does not verify, naming the first bad entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Tamper {
    #[error("entry {expected} is missing: the log jumps from entry {} to entry {found} (entries were deleted or renumbered)", expected - 1)]
    Missing { expected: u64, found: u64 },
    #[error("entry {seq} was altered: its fields no longer match its hash")]
    Altered { seq: u64 },
    #[error("entry {seq} does not follow entry {}: its prev_hash is not that entry's hash (entries were inserted, deleted or reordered)", seq - 1)]
    BrokenLink { seq: u64 },
    #[error("entry {seq} has no valid seal: it was written or rewritten outside kluis")]
    BadSeal { seq: u64 },
    #[error("entry {seq} is not valid: {reason}")]
    Malformed { seq: u64, reason: String },
    #[error("the chain head record is missing or altered: it cannot vouch for the end of the log")]
    BadHead,
    #[error(
        "entries {first}..={last} were deleted from the end of the log (the sealed head is entry {last})"
    )]
    TailDeleted { first: u64, last: u64 },
    #[error("entry {seq} was added after the sealed head (entry {head}) outside kluis")]
    Appended { seq: u64, head: u64 },
    #[error("entry {seq} is not the entry the sealed head vouches for")]
    HeadMismatch { seq: u64 },
    #[error("line {line} of the head file is not a mark kluis sealed: the head file was edited")]
    BadHeadFile { line: usize },
    #[error(
        "the head file beside the master key records entry {marked}, but the log {}: entries were deleted, or the database was wiped or replaced by an older copy",
        if *last == 0 { "is empty".to_owned() } else { format!("ends at entry {last}") }
    )]
    BehindHeadFile { marked: u64, last: u64 },
    #[error("entry {seq} is not the entry the head file recorded: the log was replaced")]
    NotTheMarkedEntry { seq: u64 },
    #[error(
        "the log has {last} entries but the head file beside the master key {}: the head file was deleted or cut short",
        if *marked == 0 { "is missing or empty".to_owned() } else { format!("records only up to entry {marked}") }
    )]
    HeadFileTruncated { marked: u64, last: u64 },
    #[error(
        "the head file beside the master key has no marks between entry {after} and entry {next}: marks were removed, or the head file was deleted and started again"
    )]
    HeadFileGap { after: u64, next: u64 },
    #[error(
        "the checkpoint is not sealed by this state directory's master key (edited, or from another state directory)"
    )]
    BadCheckpoint,
    #[error(
        "the log does not hold the entry {expected} that was given as an earlier head{}: the log was rolled back to an older copy or replaced",
        seq.map(|s| format!(" (entry {s})")).unwrap_or_default()
    )]
    ExpectedHeadMissing { expected: String, seq: Option<u64> },
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log database: {0}")]
    Sql(rusqlite::Error),
    #[error("the audit log fails verification: {0}")]
    Tampered(Tamper),
    #[error("audit export {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("audit export line {line}: {reason}")]
    BadExport { line: usize, reason: String },
    #[error("audit checkpoint {path}: {reason}")]
    BadCheckpoint { path: String, reason: String },
}

impl From<rusqlite::Error> for AuditError {
    fn from(error: rusqlite::Error) -> Self {
        AuditError::Sql(error)
    }
}

impl From<Tamper> for AuditError {
    fn from(tamper: Tamper) -> Self {
        AuditError::Tampered(tamper)
    }
}

/// A chain that verified: how many entries, and the head hash an overseer can write down and
/// later check the log still extends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    pub entries: u64,
    pub head_hash: String,
}

/// Creates the audit tables if they do not exist.
pub fn create_schema(conn: &Connection) -> Result<(), AuditError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS audit (
            seq INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            actor TEXT NOT NULL,
            role TEXT NOT NULL,
            action TEXT NOT NULL,
            project TEXT,
            details TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            seal TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS audit_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL,
            seal TEXT NOT NULL
        );",
    )?;
    Ok(())
}

/// The fields an entry's hash covers.
struct Fields<'a> {
    seq: u64,
    time: &'a str,
    actor: &'a str,
    role: &'a str,
    action: &'a str,
    project: Option<&'a str>,
    details: &'a str,
    prev_hash: &'a [u8; 32],
}

impl Fields<'_> {
    /// The canonical byte encoding: a version tag, then each field length-prefixed so no two
    /// different entries encode alike.
    fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.details.len());
        out.extend_from_slice(b"kluis-audit-v1\0");
        out.extend_from_slice(&self.seq.to_be_bytes());
        for field in [self.time, self.actor, self.role, self.action] {
            put(&mut out, field);
        }
        match self.project {
            None => out.push(0),
            Some(project) => {
                out.push(1);
                put(&mut out, project);
            }
        }
        put(&mut out, self.details);
        out.extend_from_slice(self.prev_hash);
        out
    }

    fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.canonical()).into()
    }
}

fn put(out: &mut Vec<u8>, field: &str) {
    out.extend_from_slice(&(field.len() as u64).to_be_bytes());
    out.extend_from_slice(field.as_bytes());
}

pub(crate) fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Appends one entry, chained to the current head, and moves the sealed head, in one
/// transaction.
pub fn append(
    conn: &Connection,
    key: &AnchorKey,
    entry: NewEntry<'_>,
) -> Result<Entry, AuditError> {
    // IMMEDIATE: two kluis processes appending at once must not both chain to the same head.
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let last: Option<(u64, String)> = tx
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((seq_at(row, 0)?, row.get(1)?)),
        )
        .optional()?;
    let (seq, prev_hash) = match last {
        None => (1, GENESIS),
        Some((seq, hash)) => (
            seq + 1,
            parse_hash(&hash).ok_or(Tamper::Malformed {
                seq,
                reason: "hash is not hex".into(),
            })?,
        ),
    };
    let time = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let details = serde_json::to_string(&entry.details).expect("JSON values serialise");
    let hash = Fields {
        seq,
        time: &time,
        actor: entry.actor,
        role: entry.role,
        action: entry.action,
        project: entry.project,
        details: &details,
        prev_hash: &prev_hash,
    }
    .hash();
    tx.execute(
        "INSERT INTO audit (seq, time, actor, role, action, project, details, prev_hash, hash, seal)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            seq as i64,
            time,
            entry.actor,
            entry.role,
            entry.action,
            entry.project,
            details,
            hex::encode(prev_hash),
            hex::encode(hash),
            hex::encode(key.seal(seq, &hash)),
        ],
    )?;
    tx.execute(
        "INSERT INTO audit_head (id, seq, hash, seal) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, seal = excluded.seal",
        params![seq as i64, hex::encode(hash), hex::encode(key.head_seal(seq, &hash))],
    )?;
    tx.commit()?;
    Ok(Entry {
        seq,
        time,
        actor: entry.actor.to_owned(),
        role: entry.role.to_owned(),
        action: entry.action.to_owned(),
        project: entry.project.map(str::to_owned),
        details: entry.details,
        prev_hash: hex::encode(prev_hash),
        hash: hex::encode(hash),
    })
}

/// SQLite integers are signed; sequence numbers start at 1.
fn seq_at(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let seq: i64 = row.get(index)?;
    u64::try_from(seq).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, seq))
}

struct Row {
    entry: Entry,
    details_text: String,
    seal: String,
}

fn rows(conn: &Connection, project: Option<&str>) -> Result<Vec<Row>, AuditError> {
    let mut stmt = conn.prepare(
        "SELECT seq, time, actor, role, action, project, details, prev_hash, hash, seal FROM audit
         WHERE ?1 IS NULL OR project = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![project], |row| {
        let details_text: String = row.get(6)?;
        Ok(Row {
            entry: Entry {
                seq: seq_at(row, 0)?,
                time: row.get(1)?,
                actor: row.get(2)?,
                role: row.get(3)?,
                action: row.get(4)?,
                project: row.get(5)?,
                // A detail that is not JSON shows as a string; verify reports the entry.
                details: serde_json::from_str(&details_text)
                    .unwrap_or_else(|_| serde_json::Value::String(details_text.clone())),
                prev_hash: row.get(7)?,
                hash: row.get(8)?,
            },
            details_text,
            seal: row.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The entries, in order, optionally only those of one project.
pub fn entries(conn: &Connection, project: Option<&str>) -> Result<Vec<Entry>, AuditError> {
    Ok(rows(conn, project)?
        .into_iter()
        .map(|row| row.entry)
        .collect())
}

/// Walks a chain in order and checks numbering, hashes and links; `seal_ok` adds a check per
/// entry. Returns the last entry's seq and hash.
fn check_chain<'a>(
    entries: impl IntoIterator<Item = (&'a Entry, &'a str)>,
    mut seal_ok: impl FnMut(usize, &[u8; 32]) -> bool,
) -> Result<(u64, [u8; 32]), Tamper> {
    let mut last = (0u64, GENESIS);
    for (index, (entry, details_text)) in entries.into_iter().enumerate() {
        let expected = last.0 + 1;
        if entry.seq != expected {
            return Err(Tamper::Missing {
                expected,
                found: entry.seq,
            });
        }
        let malformed = |reason: &str| Tamper::Malformed {
            seq: entry.seq,
            reason: reason.into(),
        };
        let stored =
            parse_hash(&entry.hash).ok_or_else(|| malformed("hash is not 64 hex digits"))?;
        let prev = parse_hash(&entry.prev_hash)
            .ok_or_else(|| malformed("prev_hash is not 64 hex digits"))?;
        let computed = Fields {
            seq: entry.seq,
            time: &entry.time,
            actor: &entry.actor,
            role: &entry.role,
            action: &entry.action,
            project: entry.project.as_deref(),
            details: details_text,
            prev_hash: &prev,
        }
        .hash();
        if computed != stored {
            return Err(Tamper::Altered { seq: entry.seq });
        }
        if prev != last.1 {
            return Err(Tamper::BrokenLink { seq: entry.seq });
        }
        if !seal_ok(index, &stored) {
            return Err(Tamper::BadSeal { seq: entry.seq });
        }
        last = (entry.seq, stored);
    }
    Ok(last)
}

/// Checks the whole log: every entry's hash, link and seal, and the sealed head. Detects entries
/// altered, deleted (anywhere, including from the end), inserted or reordered, and a chain
/// rewritten consistently by someone without the anchor key. It cannot see a wiped or replaced
/// database: [`verify_anchored`] adds the head file for that.
pub fn verify(conn: &Connection, key: &AnchorKey) -> Result<Verified, AuditError> {
    verify_hashes(conn, key).map(|hashes| verified(&hashes))
}

fn verified(hashes: &[[u8; 32]]) -> Verified {
    Verified {
        entries: hashes.len() as u64,
        head_hash: hex::encode(hashes.last().copied().unwrap_or(GENESIS)),
    }
}

/// [`verify`], then the log against the head file beside the master key: a log emptier, shorter
/// or other than the one the head file recorded is caught even when the whole database went.
pub fn verify_anchored(
    conn: &Connection,
    key: &AnchorKey,
    head_file: &anchor::HeadFile,
) -> Result<Verified, AuditError> {
    let hashes = verify_hashes(conn, key)?;
    anchor::check_marks(&hashes, &head_file.marks(key)?)?;
    Ok(verified(&hashes))
}

/// The hash of every entry, in order, once the chain and the sealed head checked out.
fn verify_hashes(conn: &Connection, key: &AnchorKey) -> Result<Vec<[u8; 32]>, AuditError> {
    let rows = rows(conn, None)?;
    let mut hashes = Vec::with_capacity(rows.len());
    let (last_seq, last_hash) = check_chain(
        rows.iter()
            .map(|row| (&row.entry, row.details_text.as_str())),
        |index, hash| {
            let row = &rows[index];
            hashes.push(*hash);
            row.seal == hex::encode(key.seal(row.entry.seq, hash))
        },
    )?;
    let head: Option<(u64, String, String)> = conn
        .query_row(
            "SELECT seq, hash, seal FROM audit_head WHERE id = 1",
            [],
            |row| Ok((seq_at(row, 0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    match head {
        None if last_seq == 0 => {}
        None => return Err(Tamper::BadHead.into()),
        Some((head_seq, head_hash, head_seal)) => {
            let head_hash = parse_hash(&head_hash).ok_or(Tamper::BadHead)?;
            if head_seal != hex::encode(key.head_seal(head_seq, &head_hash)) {
                return Err(Tamper::BadHead.into());
            }
            if head_seq > last_seq {
                return Err(Tamper::TailDeleted {
                    first: last_seq + 1,
                    last: head_seq,
                }
                .into());
            }
            if head_seq < last_seq {
                return Err(Tamper::Appended {
                    seq: head_seq + 1,
                    head: head_seq,
                }
                .into());
            }
            if head_hash != last_hash {
                return Err(Tamper::HeadMismatch { seq: head_seq }.into());
            }
        }
    }
    Ok(hashes)
}

/// [`append`], then the entry's mark in the head file. The mark goes after the commit: a crash
/// in between leaves the log one entry ahead of the head file, which [`verify_anchored`]
/// accepts, never a mark of an entry the log does not have.
pub fn append_anchored(
    conn: &Connection,
    key: &AnchorKey,
    head_file: &anchor::HeadFile,
    entry: NewEntry<'_>,
) -> Result<Entry, AuditError> {
    let entry = append(conn, key, entry)?;
    let hash = parse_hash(&entry.hash).expect("append writes 64 hex digits");
    head_file.record(key, entry.seq, &hash)?;
    Ok(entry)
}

/// The entry with this sequence number, if the log has it.
pub fn entry_at(conn: &Connection, seq: u64) -> Result<Option<Entry>, AuditError> {
    Ok(entries(conn, None)?.into_iter().find(|e| e.seq == seq))
}

/// Checks that the log holds an entry with `hash` (hex), given by an overseer as the head an
/// earlier `audit verify` printed: a log rolled back to before it, or replaced, does not.
/// Returns that entry's sequence number.
pub fn expect_head(conn: &Connection, hash: &str) -> Result<u64, AuditError> {
    let wanted = hash.trim().to_ascii_lowercase();
    let seq: Option<u64> = conn
        .query_row("SELECT seq FROM audit WHERE hash = ?1", [&wanted], |row| {
            seq_at(row, 0)
        })
        .optional()?;
    seq.ok_or_else(|| {
        Tamper::ExpectedHeadMissing {
            expected: wanted,
            seq: None,
        }
        .into()
    })
}

/// Checks a checkpoint: sealed by this key, and its entry is in the log with its hash.
pub fn check_checkpoint(
    conn: &Connection,
    key: &AnchorKey,
    checkpoint: &anchor::Checkpoint,
) -> Result<(), AuditError> {
    checkpoint.check_seal(key)?;
    match entry_at(conn, checkpoint.seq)? {
        Some(entry) if entry.hash == checkpoint.hash => Ok(()),
        _ => Err(Tamper::ExpectedHeadMissing {
            expected: checkpoint.hash.clone(),
            seq: Some(checkpoint.seq),
        }
        .into()),
    }
}

/// Writes every entry as one JSON object per line, in order.
pub fn export_jsonl(conn: &Connection, out: &mut impl Write) -> Result<u64, AuditError> {
    let io = |error| AuditError::Io {
        path: "output".into(),
        error,
    };
    let mut count = 0;
    for entry in entries(conn, None)? {
        serde_json::to_writer(&mut *out, &entry).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
        count += 1;
    }
    Ok(count)
}

/// Checks the hash chain of an export without the anchor key: what an overseer can check alone.
/// Compare the returned head hash with one kluis printed at an earlier `audit verify` to be sure
/// the log was only ever extended ([`verify_export_expecting`] does).
pub fn verify_export(input: impl BufRead) -> Result<Verified, AuditError> {
    read_export(input).map(|(verified, _)| verified)
}

/// [`verify_export`], and that the export holds the entry with `hash` (hex), a head an earlier
/// verification printed: an export of a log rolled back to before it, or replaced, does not.
/// Returns that entry's sequence number too.
pub fn verify_export_expecting(
    input: impl BufRead,
    hash: &str,
) -> Result<(Verified, u64), AuditError> {
    let wanted = hash.trim().to_ascii_lowercase();
    let (verified, entries) = read_export(input)?;
    match entries.iter().find(|entry| entry.hash == wanted) {
        Some(entry) => Ok((verified, entry.seq)),
        None => Err(Tamper::ExpectedHeadMissing {
            expected: wanted,
            seq: None,
        }
        .into()),
    }
}

/// The entries of an export, once their chain checked out.
fn read_export(input: impl BufRead) -> Result<(Verified, Vec<Entry>), AuditError> {
    let mut entries = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line = line.map_err(|error| AuditError::Io {
            path: "export".into(),
            error,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: Entry = serde_json::from_str(&line).map_err(|e| AuditError::BadExport {
            line: index + 1,
            reason: e.to_string(),
        })?;
        let details = serde_json::to_string(&entry.details).expect("JSON values serialise");
        entries.push((entry, details));
    }
    let (count, head) = check_chain(
        entries
            .iter()
            .map(|(entry, details)| (entry, details.as_str())),
        |_, _| true,
    )?;
    let verified = Verified {
        entries: count,
        head_hash: hex::encode(head),
    };
    Ok((
        verified,
        entries.into_iter().map(|(entry, _)| entry).collect(),
    ))
}

#[cfg(test)]
mod tests;
