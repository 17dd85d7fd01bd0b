//! `kluis audit show|verify|checkpoint|export|verify-export`: read, check, anchor and hand over
//! the audit log.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::exit::bad_input;
use crate::trust::{Globals, state_error};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// List the entries, oldest first.
    Show {
        /// Only this project's entries.
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Check the whole chain, its head file and that every project, key and output is in it;
    /// exits 1 naming the first problem if anything was altered, deleted, inserted, reordered,
    /// wiped or replaced.
    Verify {
        /// A head hash an earlier `audit verify` printed: the log must still hold that entry
        /// (catches a rollback of the whole state directory to an older copy).
        #[arg(long, value_name = "HASH")]
        expect_head: Option<String>,
        /// A checkpoint file `audit checkpoint` wrote: it must be this state directory's, and
        /// its entry still in the log.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Record a checkpoint in the log and write it, sealed, to FILE for the oversight body to
    /// keep and give back to `audit verify --checkpoint`.
    Checkpoint { file: PathBuf },
    /// Write every entry as JSON Lines, for the oversight body.
    Export { file: PathBuf },
    /// Check the hash chain of an export, with no state directory or key: what the oversight
    /// body can check alone (the seals need the master key; `audit verify` checks them).
    VerifyExport {
        file: PathBuf,
        /// A head hash an earlier verification printed: the export must hold that entry.
        #[arg(long, value_name = "HASH")]
        expect_head: Option<String>,
    },
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    // Every action but verify-export works on the state directory.
    let state = match args.command {
        Action::VerifyExport { file, expect_head } => {
            return verify_export(&file, expect_head.as_deref());
        }
        _ => globals.open()?,
    };
    match args.command {
        Action::Show { project, json } => {
            let entries = state
                .audit_entries(project.as_deref())
                .map_err(state_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                for e in &entries {
                    println!(
                        "{:>5}  {}  {:<12} {:<10} {:<18} {:<10} {}",
                        e.seq,
                        e.time,
                        e.actor,
                        e.role,
                        e.action,
                        e.project.as_deref().unwrap_or("-"),
                        e.details
                    );
                }
            }
        }
        Action::Verify {
            expect_head,
            checkpoint,
        } => {
            // The overseer's anchors first: a rolled-back log must not be called intact.
            let expected = match &expect_head {
                Some(hash) => Some(state.verify_audit_expecting(hash).map_err(state_error)?.1),
                None => None,
            };
            let held = match &checkpoint {
                Some(file) => Some(state.verify_audit_checkpoint(file).map_err(state_error)?.1),
                None => None,
            };
            let verified = state.verify_audit().map_err(state_error)?;
            println!(
                "audit log intact: {} entries; head hash {} (record it: a later `audit verify --expect-head` checks the log still holds it)",
                verified.entries, verified.head_hash
            );
            if let (Some(hash), Some(seq)) = (expect_head, expected) {
                println!("  holds the expected head {hash} as entry {seq}");
            }
            if let (Some(file), Some(c)) = (checkpoint, held) {
                println!(
                    "  holds checkpoint {} (entry {} of {})",
                    file.display(),
                    c.seq,
                    c.time
                );
            }
        }
        Action::Checkpoint { file } => {
            let actor = globals.actor()?;
            let checkpoint = state.checkpoint_audit(actor).map_err(state_error)?;
            write_private(&file, &(serde_json::to_string_pretty(&checkpoint)? + "\n"))?;
            println!(
                "checkpoint of entry {} (head hash {}) written to {}; give it to the oversight body",
                checkpoint.seq,
                checkpoint.hash,
                file.display()
            );
        }
        Action::Export { file } => {
            let count = state.export_audit(&file).map_err(state_error)?;
            println!("wrote {count} audit entries to {}", file.display());
        }
        Action::VerifyExport { .. } => unreachable!("verify-export returned above"),
    }
    Ok(ExitCode::SUCCESS)
}

fn verify_export(file: &std::path::Path, expect_head: Option<&str>) -> anyhow::Result<ExitCode> {
    use kluis_audit::AuditError;
    let input = std::fs::File::open(file)
        .map(std::io::BufReader::new)
        .map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
    let result = match expect_head {
        Some(hash) => {
            kluis_audit::verify_export_expecting(input, hash).map(|(v, seq)| (v, Some(seq)))
        }
        None => kluis_audit::verify_export(input).map(|v| (v, None)),
    };
    let (verified, seq) = result.map_err(|e| match e {
        AuditError::BadExport { .. } => bad_input(format!("{}: {e}", file.display())),
        e => anyhow::Error::new(e).context(format!("audit export {}", file.display())),
    })?;
    println!(
        "audit export chain intact: {} entries; head hash {}",
        verified.entries, verified.head_hash
    );
    if let (Some(hash), Some(seq)) = (expect_head, seq) {
        println!("  holds the expected head {hash} as entry {seq}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` beside `path` and renames it into place.
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".checkpoint-")
        .tempfile_in(dir)
        .with_context(|| format!("writing {}", path.display()))?;
    temp.write_all(text.as_bytes())
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    temp.persist(path)
        .map_err(|e| anyhow::Error::new(e.error).context(format!("writing {}", path.display())))?;
    Ok(())
}
