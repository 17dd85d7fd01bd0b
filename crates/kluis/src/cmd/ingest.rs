//! `kluis ingest --persons FILE --person-years FILE --warehouse DIR [--reject-file FILE]`: checks
//! every row of a provider's persons and person-years (CSV or Parquet) and loads them into a new
//! warehouse that replaces the old one in one step.
//!
//! Every bad row is reported on stderr (file, line or row, field, value, reason; never an INSZ).
//! Without `--reject-file` one bad row refuses the whole load and nothing changes; with it, the
//! bad rows go to that file with their reasons and the rest is loaded.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use kluis_warehouse::ingest::{IngestError, IngestOptions, Rejection, ingest};

use crate::exit::bad_input;

#[derive(clap::Args)]
pub struct Args {
    /// The persons file (.csv or .parquet; see the kluis-warehouse README for the columns).
    #[arg(long)]
    persons: PathBuf,
    /// The person-years file (.csv or .parquet).
    #[arg(long)]
    person_years: PathBuf,
    /// The warehouse directory to create or replace.
    #[arg(long)]
    warehouse: PathBuf,
    /// Load the good rows and write the bad ones, with their reasons, to this CSV file.
    #[arg(long)]
    reject_file: Option<PathBuf>,
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    // The reject file is written beside its target and renamed into place when the load is done.
    let mut rejects = match &args.reject_file {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let tmp = tempfile::Builder::new()
                .prefix(".kluis-rejects-")
                .tempfile_in(dir)
                .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
            let mut out = std::io::BufWriter::new(tmp);
            writeln!(out, "file,location,field,value,reason")?;
            Some(out)
        }
        None => None,
    };
    let mut write_error = None;
    let stderr = std::io::stderr();
    let mut on_reject = |r: &Rejection| {
        let _ = writeln!(stderr.lock(), "bad row: {r}");
        if let Some(out) = &mut rejects {
            let line = format!(
                "{},{},{},{},{}\n",
                csv_field(&r.file),
                r.location,
                csv_field(&r.field),
                csv_field(r.value.as_deref().unwrap_or("")),
                csv_field(&r.reason)
            );
            if let Err(e) = out.write_all(line.as_bytes()) {
                write_error.get_or_insert(e);
            }
        }
    };
    let options = IngestOptions {
        persons: args.persons.clone(),
        person_years: args.person_years.clone(),
        warehouse: args.warehouse.clone(),
        load_good_rows: args.reject_file.is_some(),
        writer_threads: 2,
    };
    let result = ingest(&options, &mut on_reject);
    if let Some(e) = write_error {
        return Err(anyhow::Error::new(e).context("writing the reject file"));
    }
    let summary = match result {
        Ok(summary) => summary,
        Err(e @ IngestError::Rejected { .. }) => {
            return Err(bad_input(format!(
                "{e}; give --reject-file FILE to load the good rows and set the bad ones aside"
            )));
        }
        Err(e) if e.is_bad_input() => return Err(bad_input(e.to_string())),
        Err(e) => return Err(anyhow::Error::new(e)),
    };
    if let (Some(out), Some(path)) = (rejects, &args.reject_file) {
        let tmp = out
            .into_inner()
            .map_err(|e| anyhow::anyhow!("writing the reject file: {e}"))?;
        tmp.persist(path)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.error))?;
    }
    let m = &summary.manifest;
    let rows = m.persons + m.person_year_rows() + summary.rejected_rows;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "loaded {} persons and {} person-years ({} years) into {} in {:.1}s ({:.0} rows/s)",
        m.persons,
        m.person_year_rows(),
        m.years.len(),
        args.warehouse.display(),
        seconds,
        rows as f64 / seconds.max(1e-9)
    );
    if summary.rejected_rows > 0 {
        eprintln!(
            "warning: {} bad row(s) left out ({} problem(s)), listed in {}",
            summary.rejected_rows,
            summary.problems,
            args.reject_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
