//! `kluis audit show|verify|export`: read, check and hand over the audit log.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

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
    /// Check the whole chain; exits 1 naming the first bad entry if anything was altered,
    /// deleted, inserted or reordered.
    Verify,
    /// Write every entry as JSON Lines, for the oversight body.
    Export { file: PathBuf },
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let state = globals.open()?;
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
        Action::Verify => {
            let verified = state.verify_audit().map_err(state_error)?;
            println!(
                "audit log intact: {} entries; head hash {} (record it: a later export must contain it)",
                verified.entries, verified.head_hash
            );
        }
        Action::Export { file } => {
            let count = state.export_audit(&file).map_err(state_error)?;
            println!("wrote {count} audit entries to {}", file.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
