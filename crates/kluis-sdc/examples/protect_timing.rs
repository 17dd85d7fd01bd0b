//! Times each step of `protect` on one table, for the secondary-suppression benchmark.
//!
//! ```text
//! cargo run --release -p kluis-sdc --example protect_timing -- table FILE.csv
//! cargo run --release -p kluis-sdc --example protect_timing -- micro FILE.csv UNIT DIM,DIM,... MEASURE [ROWS]
//! ```
//!
//! `table` reads a finished table (as `kluis sdc protect`); `micro` aggregates the mean of MEASURE
//! per unit column UNIT by the dimensions (as `kluis sdc table --mean`), from the first ROWS rows
//! when given. It prints the time of the aggregation, primary rules, search and audit, the counts of
//! primary and secondary cells, the method and the audit's verdict.

use std::fs::File;
use std::io::BufReader;
use std::time::Instant;

use kluis_sdc::microdata::Aggregator;
use kluis_sdc::{
    CellStatus, Method, RuleSet, Statistic, Table, apply_primary, audit, secondary_suppress,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: protect_timing table FILE | micro FILE UNIT DIMS MEASURE [ROWS]";
    let start = Instant::now();
    let table = match args.first().map(String::as_str) {
        Some("table") if args.len() == 2 => {
            kluis_sdc::input::read_table(BufReader::new(File::open(&args[1])?), &args[1])?
        }
        Some("micro") if args.len() == 5 || args.len() == 6 => {
            let limit = match args.get(5) {
                Some(n) => n.parse::<u64>()?,
                None => u64::MAX,
            };
            aggregate(&args[1], &args[2], &args[3], &args[4], limit)?
        }
        _ => return Err(usage.into()),
    };
    println!(
        "load:      {:8.3} s  ({} cells)",
        start.elapsed().as_secs_f64(),
        table.cells.len()
    );

    let rules = RuleSet::default_set();
    let tables = [table];
    let t = Instant::now();
    let mut verdicts = vec![apply_primary(&tables[0], &rules, &[])?];
    println!("primary:   {:8.3} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let outcome = secondary_suppress(&tables, &mut verdicts, &[], &[], &rules)?;
    println!(
        "secondary: {:8.3} s  method {:?}, {} primary, {} secondary (value {})",
        t.elapsed().as_secs_f64(),
        outcome.method,
        outcome.primary,
        outcome.secondary,
        outcome.secondary_value
    );
    for note in &outcome.notes {
        println!("  note: {note}");
    }
    let t = Instant::now();
    let result = audit(&tables, &verdicts, &[], &[], &rules)?;
    println!(
        "audit:     {:8.3} s  passed {}, {} derivable, {} underprotected, {} suppressed audited",
        t.elapsed().as_secs_f64(),
        result.passed,
        result.derivable,
        result.underprotected,
        result.cells.len()
    );
    for note in &result.notes {
        println!("  note: {note}");
    }
    for c in result.cells.iter().filter(|c| !c.protected).take(8) {
        println!(
            "  unprotected: {:?} value {} interval [{}, {:?}] required {:?}",
            tables[0].cells[c.cell].key, c.value, c.lower, c.upper, c.required_width
        );
    }
    let suppressed = verdicts[0]
        .iter()
        .filter(|v| v.status.is_suppressed())
        .count();
    let primary = verdicts[0]
        .iter()
        .filter(|v| v.status == CellStatus::Primary)
        .count();
    println!(
        "total:     {:8.3} s  {suppressed} of {} cells suppressed ({primary} primary){}",
        start.elapsed().as_secs_f64(),
        tables[0].cells.len(),
        if outcome.method == Method::FallbackAll {
            ", FALLBACK"
        } else {
            ""
        }
    );
    Ok(())
}

fn aggregate(
    path: &str,
    unit: &str,
    dims: &str,
    measure: &str,
    limit: u64,
) -> Result<Table, Box<dyn std::error::Error>> {
    let dims: Vec<String> = dims.split(',').map(str::to_string).collect();
    let mut agg = Aggregator::new(
        "micro",
        dims.clone(),
        Statistic::Mean,
        Some(measure.to_string()),
    )?;
    let mut reader = csv::Reader::from_reader(BufReader::new(File::open(path)?));
    let header = reader.headers()?.clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("{path}: no column `{name}`"))
    };
    let unit_col = col(unit)?;
    let dim_cols = dims.iter().map(|d| col(d)).collect::<Result<Vec<_>, _>>()?;
    let measure_col = col(measure)?;
    let mut record = csv::ByteRecord::new();
    let mut row = 0;
    while row < limit && reader.read_byte_record(&mut record)? {
        row += 1;
        let values: Vec<&[u8]> = dim_cols.iter().map(|&j| &record[j]).collect();
        let m = std::str::from_utf8(&record[measure_col])?
            .parse::<f64>()
            .ok();
        agg.push(&record[unit_col], &values, m, row)?;
    }
    Ok(agg.finish(2)?)
}
