//! The `kluis` command-line program: it parses arguments and wires the library crates together.
//! Each subcommand lives in its own module under `cmd/`.

mod cmd;
mod exit;
mod table_file;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kluis",
    version,
    about = "Pseudonymised research extracts and a disclosure-controlled SQL enclave for person-year data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the code lists (countries, employer types, statuut, education, NACE, ...).
    Codelist(cmd::codelist::Args),
    /// Validate INSZ numbers (national register and BIS) and show what they encode.
    Insz(cmd::insz::Args),
    /// Derive origin, Statbel origin and migration background for rows of a CSV or Parquet file.
    Derive(cmd::derive::Args),
    /// Generate a calibrated synthetic employee population as a warehouse.
    Generate(cmd::generate::Args),
    /// Load persons and person-years (CSV or Parquet) into a warehouse, checking every row.
    Ingest(cmd::ingest::Args),
    /// Show or export a warehouse.
    Warehouse(cmd::warehouse::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Codelist(args) => cmd::codelist::run(args),
        Command::Insz(args) => cmd::insz::run(args),
        Command::Derive(args) => cmd::derive::run(args),
        Command::Generate(args) => cmd::generate::run(args),
        Command::Ingest(args) => cmd::ingest::run(args),
        Command::Warehouse(args) => cmd::warehouse::run(args),
    };
    match result {
        Ok(status) => status,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit::status_for(&error))
        }
    }
}
