//! The `kluis` command-line program: it parses arguments and wires the library crates together.
//! Each subcommand lives in its own module under `cmd/`.

mod cmd;
mod exit;
mod rules;
mod table_file;
mod trust;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kluis",
    version,
    about = "Pseudonymised research extracts and a disclosure-controlled SQL enclave for person-year data"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    globals: trust::Globals,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Print the code lists (countries, employer types, statuut, education, NACE, ...).
    Codelist(cmd::codelist::Args),
    /// Validate INSZ numbers (national register and BIS) and show what they encode.
    Insz(cmd::insz::Args),
    /// Derive origin, Statbel origin and migration background for rows of a CSV or Parquet file.
    Derive(cmd::derive::Args),
    /// Create the state directory: master key (0600) and database.
    Init(cmd::init::Args),
    /// Check authorisation files against the format and the code lists.
    Authorisation(cmd::authorisation::Args),
    /// Register, list and show projects.
    Project(cmd::project::Args),
    /// Show, verify and export the hash-chained audit log.
    Audit(cmd::audit::Args),
    /// Destroy projects past their retention date.
    Retention(cmd::retention::Args),
    /// Write a project's phase-1 extract (pseudonymised, minimised sample); verify one.
    Extract(cmd::extract::Args),
    /// Output disclosure control: check and protect tables (from microdata or finished tables).
    Sdc(cmd::sdc::Args),
    /// Re-identification risk of a microdata file: k-anonymity, uniques, l-diversity, prosecutor risk.
    Risk(cmd::risk::Args),
    /// Generate a calibrated synthetic employee population as a warehouse.
    Generate(cmd::generate::Args),
    /// Load persons and person-years (CSV or Parquet) into a warehouse, checking every row.
    Ingest(cmd::ingest::Args),
    /// Show or export a warehouse.
    Warehouse(cmd::warehouse::Args),
    /// Check and run a job (SQL over person_years) on a sample extract or the full population.
    Job(cmd::job::Args),
    /// Review the outputs of full runs: list, show, release (four eyes) or reject them.
    Output(cmd::output::Args),
    /// Write a project's released tables, charts and audit summary as one self-contained HTML page.
    Report(cmd::report::Args),
    /// Show every step end to end on a synthetic population, narrated: warehouse, project,
    /// extract with risk report, a research job on the sample and the full population,
    /// disclosure control, review and release, audit, retention.
    Demo(cmd::demo::Args),
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so writing to a closed pipe (`kluis ... | head`) would panic in
    // println!. Restoring the default action ends kluis quietly there, as it ends `cat`.
    // SAFETY: called first, before any thread exists; SIG_DFL is a valid action for SIGPIPE.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let Cli { globals, command } = Cli::parse();
    match run(command, &globals) {
        Ok(status) => status,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit::status_for(&error))
        }
    }
}

/// Runs one command: what `kluis COMMAND ...` does, also for the demo's steps.
pub(crate) fn run(command: Command, globals: &trust::Globals) -> anyhow::Result<ExitCode> {
    match command {
        Command::Codelist(args) => cmd::codelist::run(args),
        Command::Insz(args) => cmd::insz::run(args),
        Command::Derive(args) => cmd::derive::run(args),
        Command::Init(args) => cmd::init::run(args, globals),
        Command::Authorisation(args) => cmd::authorisation::run(args),
        Command::Project(args) => cmd::project::run(args, globals),
        Command::Audit(args) => cmd::audit::run(args, globals),
        Command::Retention(args) => cmd::retention::run(args, globals),
        Command::Extract(args) => cmd::extract::run(args, globals),
        Command::Sdc(args) => cmd::sdc::run(args),
        Command::Risk(args) => cmd::risk::run(args, globals),
        Command::Generate(args) => cmd::generate::run(args),
        Command::Ingest(args) => cmd::ingest::run(args),
        Command::Warehouse(args) => cmd::warehouse::run(args),
        Command::Job(args) => cmd::job::run(args, globals),
        Command::Output(args) => cmd::output::run(args, globals),
        Command::Report(args) => cmd::report::run(args, globals),
        Command::Demo(args) => cmd::demo::run(args),
    }
}
