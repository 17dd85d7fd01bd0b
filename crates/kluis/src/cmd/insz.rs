//! `kluis insz check NUMBER... [--json]`: validity and what each number encodes.

use std::process::ExitCode;

use clap::Subcommand;
use kluis_model::Insz;
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Check numbers; exits 0 when all are valid, 2 when any is not.
    Check {
        /// INSZ numbers; dots, dashes and spaces are accepted as separators.
        #[arg(required = true)]
        numbers: Vec<String>,
        /// Print one JSON object per number (in a JSON array).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Verdict {
    insz: String,
    valid: bool,
    kind: Option<&'static str>,
    birth_date: Option<String>,
    sex: Option<&'static str>,
    error: Option<String>,
}

fn check(number: &str) -> Verdict {
    match Insz::parse(number) {
        Ok(info) => Verdict {
            insz: info.insz.to_string(),
            valid: true,
            kind: Some(info.kind.code()),
            birth_date: Some(info.birth_date.to_string()),
            sex: info.sex.map(|s| s.code()),
            error: None,
        },
        Err(error) => Verdict {
            insz: number.to_owned(),
            valid: false,
            kind: None,
            birth_date: None,
            sex: None,
            error: Some(error.to_string()),
        },
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Action::Check { numbers, json } = args.command;
    let verdicts: Vec<Verdict> = numbers.iter().map(|n| check(n)).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&verdicts)?);
    } else {
        for v in &verdicts {
            match &v.error {
                None => println!(
                    "{}  valid    {:<3}  {}  {}",
                    v.insz,
                    v.kind.unwrap_or_default(),
                    v.birth_date.as_deref().unwrap_or_default(),
                    v.sex.unwrap_or("sex unknown"),
                ),
                Some(error) => println!("{}  invalid  {error}", v.insz),
            }
        }
    }
    Ok(if verdicts.iter().all(|v| v.valid) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
