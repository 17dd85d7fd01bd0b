//! Writing a run's tables, cell statistics and report into a results directory, all at once.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use serde::Serialize;

use crate::{Cell, Job, Level, OutputTable};

/// How a sample run judges which cells would probably fail at full scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskOptions {
    /// Population rows per sample row: 1 / sampling fraction (1 for a full run).
    pub scale_factor: f64,
    /// Fewest contributing units a published cell needs.
    pub min_units: u64,
}

impl Default for RiskOptions {
    fn default() -> Self {
        RiskOptions {
            scale_factor: 1.0,
            min_units: 10,
        }
    }
}

#[derive(Serialize)]
struct AtRisk<'a> {
    key: &'a [Level],
    nonnull_units: u64,
    scaled_units: f64,
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
    /// Cells whose contributing units, scaled to the population, stay under `min_units`.
    at_risk: Vec<AtRisk<'a>>,
}

#[derive(Serialize)]
struct Report<'a> {
    job: &'a str,
    project: &'a str,
    scale_factor: f64,
    min_units: u64,
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
    for Cell { key, value, stats } in &table.cells {
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
    risk: RiskOptions,
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
        let at_risk = table
            .cells
            .iter()
            .filter_map(|c| {
                let scaled = c.stats.nonnull_units as f64 * risk.scale_factor;
                (scaled < risk.min_units as f64).then_some(AtRisk {
                    key: &c.key,
                    nonnull_units: c.stats.nonnull_units,
                    scaled_units: scaled,
                })
            })
            .collect();
        outputs.push(OutputReport {
            name: &table.name,
            statistic: table.statistic.as_str(),
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
        scale_factor: risk.scale_factor,
        min_units: risk.min_units,
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
