//! Writing a run's tables, cell statistics and report into a results directory, all at once.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use serde::Serialize;

use kluis_sdc::RuleSet;

use crate::disclosure::{AtRisk, Scaling, at_risk};
use crate::{Cell, Job, Level, OutputTable};

/// How a sample run judges which cells would probably fail at full scale.
#[derive(Debug, Clone)]
pub struct RiskOptions {
    /// How the sample's units scale to the population (1 for a full run).
    pub scaling: Scaling,
    /// The rules the output will be checked with at full scale.
    pub rules: RuleSet,
}

impl Default for RiskOptions {
    fn default() -> Self {
        RiskOptions {
            scaling: Scaling::Uniform(1.0),
            rules: RuleSet::default_set(),
        }
    }
}

#[derive(Serialize)]
struct StratumReport<'a> {
    name: &'a str,
    sampled_units: u64,
    factor: f64,
}

#[derive(Serialize)]
struct OutputReport<'a> {
    name: &'a str,
    statistic: &'a str,
    unit: &'a str,
    dimensions: &'a [String],
    measure: &'a str,
    result_file: String,
    cells_file: String,
    cells: usize,
    /// Cells that, scaled to the population, would probably fail the primary rules.
    at_risk: Vec<AtRisk>,
}

#[derive(Serialize)]
struct Report<'a> {
    job: &'a str,
    project: &'a str,
    /// Population units per sample unit, for the whole sample or per stratum.
    scale_factor: Option<f64>,
    strata: Vec<StratumReport<'a>>,
    rules: &'a str,
    outputs: Vec<OutputReport<'a>>,
}

fn level_text(level: &Level) -> &str {
    match level {
        Level::Value(v) => v,
        Level::Missing => "",
        Level::Total => "Total",
    }
}

fn write_cells(path: &Path, table: &OutputTable) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(BufWriter::new(File::create(path)?));
    let mut header: Vec<&str> = table.dimensions.iter().map(String::as_str).collect();
    header.extend([
        "total_over",
        table.measure.as_str(),
        "units",
        "rows",
        "nonnull_units",
        "nonzero_units",
        "top1",
        "top2",
        "any_negative",
    ]);
    w.write_record(&header)?;
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for Cell {
        key, value, stats, ..
    } in &table.cells
    {
        let mut record: Vec<String> = key.iter().map(|l| level_text(l).to_string()).collect();
        let total_over: Vec<&str> = key
            .iter()
            .zip(&table.dimensions)
            .filter(|(l, _)| **l == Level::Total)
            .map(|(_, d)| d.as_str())
            .collect();
        record.push(total_over.join("+"));
        record.push(opt(*value));
        record.extend(
            [
                stats.units,
                stats.rows,
                stats.nonnull_units,
                stats.nonzero_units,
            ]
            .map(|n| n.to_string()),
        );
        record.extend([
            opt(stats.top1),
            opt(stats.top2),
            stats.any_negative.to_string(),
        ]);
        w.write_record(&record)?;
    }
    w.flush()
}

fn write_result(path: &Path, table: &OutputTable) -> std::io::Result<()> {
    let mut w = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(BufWriter::new(File::create(path)?));
    for batch in &table.result {
        w.write(batch).map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// Writes `NAME.csv` (the result), `NAME.cells.csv` (every cell and margin with its unit
/// statistics) per output and `report.json` into `dir`. Everything is written into a temporary
/// directory beside `dir` and renamed into place, so `dir` is either the previous complete
/// results or the new ones.
pub fn write_results(
    dir: &Path,
    job: &Job,
    tables: &[OutputTable],
    risk: &RiskOptions,
) -> std::io::Result<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(".kluis-results-")
        .tempdir_in(parent)?;
    let mut outputs = Vec::new();
    for table in tables {
        let result_file = format!("{}.csv", table.name);
        let cells_file = format!("{}.cells.csv", table.name);
        write_result(&tmp.path().join(&result_file), table)?;
        write_cells(&tmp.path().join(&cells_file), table)?;
        let at_risk = at_risk(table, &risk.scaling, &risk.rules).map_err(std::io::Error::other)?;
        outputs.push(OutputReport {
            name: &table.name,
            statistic: table.statistic.name(),
            unit: &table.unit,
            dimensions: &table.dimensions,
            measure: &table.measure,
            result_file,
            cells_file,
            cells: table.cells.len(),
            at_risk,
        });
    }
    let report = Report {
        job: &job.name,
        project: &job.project,
        scale_factor: match &risk.scaling {
            Scaling::Uniform(f) => Some(*f),
            Scaling::Strata(_) => None,
        },
        strata: match &risk.scaling {
            Scaling::Uniform(_) => Vec::new(),
            Scaling::Strata(strata) => strata
                .iter()
                .map(|s| StratumReport {
                    name: &s.name,
                    sampled_units: s.units.len(),
                    factor: s.factor,
                })
                .collect(),
        },
        rules: &risk.rules.name,
        outputs,
    };
    let file = File::create(tmp.path().join("report.json"))?;
    serde_json::to_writer_pretty(BufWriter::new(file), &report).map_err(std::io::Error::other)?;

    let staged = tmp.keep();
    if dir.exists() {
        // Move the old results aside first: a directory cannot be renamed over a non-empty one.
        let old = tempfile::Builder::new()
            .prefix(".kluis-old-results-")
            .tempdir_in(parent)?
            .keep();
        std::fs::remove_dir(&old)?;
        std::fs::rename(dir, &old)?;
        if let Err(e) = std::fs::rename(&staged, dir) {
            std::fs::rename(&old, dir)?;
            return Err(e);
        }
        std::fs::remove_dir_all(&old)?;
    } else if let Err(e) = std::fs::rename(&staged, dir) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(e);
    }
    Ok(())
}
