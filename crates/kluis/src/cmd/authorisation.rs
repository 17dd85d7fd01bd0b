//! `kluis authorisation check FILE`: validate an authorisation against the format and code lists.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use kluis_project::Authorisation;

use crate::exit::bad_input;
use crate::trust::today;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Check a file; every problem is listed with its line and what is accepted (exit 2).
    Check {
        file: PathBuf,
        /// The rule set file, when the authorisation names a rule set that is not built in.
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// Print the parsed authorisation, or the problems, as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Action::Check { file, rules, json } = args.command;
    match Authorisation::load(&file) {
        Ok(authorisation) => {
            crate::rules::for_registration(&authorisation, rules.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&authorisation)?);
                return Ok(ExitCode::SUCCESS);
            }
            let until = authorisation.retention.effective();
            println!(
                "{}: ok: authorisation {} (project {}), {} variables, {} strata, retention until {until}",
                file.display(),
                authorisation.id,
                authorisation.project_id(),
                authorisation.variables.len(),
                authorisation.strata.len(),
            );
            if today()? > until {
                println!(
                    "note: its retention date {until} has passed: kluis will refuse to register, extract or run anything under it"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&error.problems)?);
            }
            Err(bad_input(error.to_string()))
        }
    }
}
