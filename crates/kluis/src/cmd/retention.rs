//! `kluis retention enforce [--dry-run]`: destroy every project whose retention date passed and
//! that the actor is a steward of.

use std::process::ExitCode;

use clap::Subcommand;

use crate::exit::bad_input;
use crate::trust::{Globals, state_error, today};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Destroy the key, pseudonym map, extracts, views and unreleased outputs of every project
    /// past its retention date (extensions counted) that you are a steward of; released tables
    /// are kept. Due projects of other stewards are left for them (exit 2, naming them); a later
    /// day rehearsed with KLUIS_TODAY only with --dry-run.
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
    let enforcement = state
        .enforce_retention(actor, today, dry_run)
        .map_err(state_error)?;
    let done = &enforcement.destroyed;
    if done.is_empty() && enforcement.left.is_empty() {
        println!("no project is past its retention date on {today}");
    }
    let verb = if dry_run {
        "would destroy"
    } else {
        "destroyed"
    };
    for d in done {
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
    if enforcement.left.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let left: Vec<String> = enforcement
        .left
        .iter()
        .map(|l| {
            format!(
                "{} (retention date {} passed; steward {})",
                l.project,
                l.retention_until,
                l.stewards.join(", ")
            )
        })
        .collect();
    Err(bad_input(format!(
        "{actor} is not a steward of {}, left for its steward to destroy: {}",
        if left.len() == 1 {
            "this project"
        } else {
            "these projects"
        },
        left.join("; ")
    )))
}
