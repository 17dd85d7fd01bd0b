//! `kluis codelist list` and `kluis codelist show NAME [--format table|csv|json]`.

use std::io::Write;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use kluis_model::codelists::{self, CodeList};

use crate::exit::bad_input;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// List the code lists with their size and source note.
    List,
    /// Print one code list.
    Show {
        /// The list's name, as `kluis codelist list` prints it.
        name: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match args.command {
        Action::List => {
            for list in codelists::all() {
                writeln!(
                    out,
                    "{:<24} {:>4} codes  {}",
                    list.name,
                    list.rows.len(),
                    list.note
                )?;
            }
        }
        Action::Show { name, format } => {
            let list = codelists::get(&name).ok_or_else(|| {
                let names: Vec<&str> = codelists::all().iter().map(|l| l.name).collect();
                bad_input(format!(
                    "no code list '{name}'; the lists are: {}",
                    names.join(", ")
                ))
            })?;
            match format {
                Format::Table => print_table(&mut out, list)?,
                Format::Csv => print_csv(&mut out, list)?,
                Format::Json => print_json(&mut out, list)?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(out: &mut impl Write, list: &CodeList) -> anyhow::Result<()> {
    writeln!(out, "# {}", list.note)?;
    let widths: Vec<usize> = (0..list.columns.len())
        .map(|i| {
            list.rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain([list.columns[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&list.columns).chain(&list.rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

fn print_csv(out: &mut impl Write, list: &CodeList) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(&list.columns)?;
    for row in &list.rows {
        writer.write_record(row)?;
    }
    writer.flush()?;
    Ok(())
}

fn print_json(out: &mut impl Write, list: &CodeList) -> anyhow::Result<()> {
    let codes: Vec<serde_json::Map<String, serde_json::Value>> = list
        .rows
        .iter()
        .map(|row| {
            list.columns
                .iter()
                .cloned()
                .zip(row.iter().map(|v| v.clone().into()))
                .collect()
        })
        .collect();
    let document = serde_json::json!({ "name": list.name, "note": list.note, "codes": codes });
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)?;
    Ok(())
}
