//! Brings a microdata file to k-anonymity with `enforce_k` and prints what it did, with timings.
//! Used by `benches/risk/run.sh`.
//!
//! Usage: `enforce DATA HIERARCHY_DIR K MAX_SUPPRESSED`. Every `COLUMN.csv` in HIERARCHY_DIR is
//! the hierarchy of quasi-identifier COLUMN (header = level names, one row per value).

use std::path::PathBuf;
use std::time::Instant;

use kluis_risk::{Hierarchy, MissingPolicy, RecodingOptions, enforce_k, read_table};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, dir, k, budget] = args.as_slice() else {
        return Err("usage: enforce DATA HIERARCHY_DIR K MAX_SUPPRESSED".into());
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "csv"));
    files.sort();
    let columns: Vec<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();

    let started = Instant::now();
    let table = read_table(PathBuf::from(data).as_path(), &names)?;
    let read = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let hierarchies = files
        .iter()
        .zip(&names)
        .map(|(file, name)| Hierarchy::read_csv(file, name, &table.column(name)?.dictionary))
        .collect::<Result<Vec<_>, _>>()?;
    let options = RecodingOptions {
        k: k.parse()?,
        max_suppressed: budget.parse()?,
    };
    let done = enforce_k(&table, &hierarchies, &options, MissingPolicy::MatchesAny)?;
    let enforce = started.elapsed().as_secs_f64();
    let report = serde_json::json!({
        "rows": table.rows(),
        "read_seconds": read,
        "enforce_seconds": enforce,
        "recoding": done.recoding,
        "suppression": done.suppression,
        "loss": done.loss,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
