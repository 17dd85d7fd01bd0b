//! `kluis retention enforce [--dry-run]`: destroy every project whose retention date passed.

use std::process::ExitCode;

use clap::Subcommand;

use crate::trust::{Globals, state_error, today};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Destroy the key, pseudonym map, extracts, views and unreleased outputs of every project
    /// past its retention date (extensions counted); released tables are kept. Needs a steward
    /// of every project that is due (else nothing is destroyed); a later day rehearsed with
    /// KLUIS_TODAY only with --dry-run.
    Enforce {
        /// Only list what would be destroyed.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let Action::Enforce { dry_run } = args.command;
    let actor = globals.actor()?;
    let state = globals.open()?;
    let today = today()?;
    let done = state
        .enforce_retention(actor, today, dry_run)
        .map_err(state_error)?;
    if done.is_empty() {
        println!("no project is past its retention date on {today}");
    }
    let verb = if dry_run {
        "would destroy"
    } else {
        "destroyed"
    };
    for d in &done {
        println!(
            "{verb} project {} (retention date {} passed): key {}, {} files ({} bytes); {} released tables kept",
            d.project,
            d.retention_until,
            d.key_id,
            d.files.len(),
            d.bytes,
            d.released_kept
        );
        for file in &d.files {
            println!("  {}", file.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
