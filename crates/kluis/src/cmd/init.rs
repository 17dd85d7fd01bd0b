//! `kluis init`: create the state directory (master key and database).

use std::process::ExitCode;

use kluis_project::State;

use crate::trust::{Globals, state_error};

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let home = globals.home()?;
    let actor = globals.actor()?;
    State::init(&home, actor).map_err(state_error)?;
    println!("initialised the kluis state directory {}", home.display());
    println!(
        "  master key: {} (mode 0600; back it up offline: without it no project key opens)",
        home.join("master.key").display()
    );
    Ok(ExitCode::SUCCESS)
}
