//! Reading the released tables back: `ID.csv` (the published table) and `ID.report.json` (each
//! cell's status and reasons) as `kluis output release` writes them, checked against each other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ReportError;

/// A cell's disclosure status as released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellStatus {
    /// Published.
    Ok,
    /// Published after a reviewer agreed.
    Reviewed,
    /// Withheld: disclosive on its own.
    Primary,
    /// Withheld to protect another withheld cell.
    Secondary,
}

impl CellStatus {
    pub fn is_withheld(self) -> bool {
        matches!(self, CellStatus::Primary | CellStatus::Secondary)
    }

    fn parse(text: &str) -> Option<CellStatus> {
        Some(match text {
            "ok" => CellStatus::Ok,
            "review" => CellStatus::Reviewed,
            "primary" => CellStatus::Primary,
            "secondary" => CellStatus::Secondary,
            _ => return None,
        })
    }
}

/// One released cell (margins included).
#[derive(Debug, Clone, PartialEq)]
pub struct ReleasedCell {
    /// One value per dimension, in the table's order; [`crate::TOTAL`] marks a margin.
    pub key: Vec<String>,
    /// The published value; `None` when withheld (or not published).
    pub value: Option<f64>,
    /// The value exactly as the released CSV writes it (empty when withheld).
    pub text: String,
    pub status: CellStatus,
    /// Why it is withheld or needed review (`threshold`, `secondary`, ...).
    pub reasons: Vec<String>,
}

/// One released table.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleasedTable {
    /// The output id, e.g. `99-001-0001`.
    pub output: String,
    pub job: String,
    /// The output's name in its job.
    pub name: String,
    /// count, sum, mean, min, max or share.
    pub statistic: String,
    pub measure: String,
    pub dimensions: Vec<String>,
    /// The verdict (`pass` or `review`) and its one-line summary.
    pub verdict: String,
    pub summary: String,
    /// The rule set, e.g. `default v1`.
    pub rules: String,
    pub released_by: Option<String>,
    pub cells: Vec<ReleasedCell>,
}

impl ReleasedTable {
    pub fn withheld(&self) -> usize {
        self.cells.iter().filter(|c| c.status.is_withheld()).count()
    }
}

/// The part of `ID.report.json` the page uses.
#[derive(Deserialize)]
struct SafeReport {
    output: String,
    project: String,
    job: String,
    table: String,
    statistic: String,
    measure: String,
    dimensions: Vec<String>,
    status: String,
    summary: String,
    rules: Rules,
    released_by: Option<String>,
    cells: Vec<SafeCell>,
}

#[derive(Deserialize)]
struct Rules {
    name: String,
    version: u32,
}

#[derive(Deserialize)]
struct SafeCell {
    key: BTreeMap<String, String>,
    published: Option<f64>,
    status: String,
    reasons: Vec<String>,
}

fn bad(path: &Path, what: impl Into<String>) -> ReportError {
    ReportError::Released {
        path: path.display().to_string(),
        what: what.into(),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |error| ReportError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// Every released table of `project` in `dir` (the project's `released/` directory), in output
/// id order. A missing directory means nothing was released yet. Every `ID.csv` needs its
/// `ID.report.json` and the other way round; other files are not kluis's and are left alone.
pub fn read_released(dir: &Path, project: &str) -> Result<Vec<ReleasedTable>, ReportError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut ids = BTreeMap::<String, (Option<PathBuf>, Option<PathBuf>)>::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if let Some(id) = name.strip_suffix(".report.json") {
            ids.entry(id.to_string()).or_default().1 = Some(path.clone());
        } else if let Some(id) = name.strip_suffix(".csv") {
            ids.entry(id.to_string()).or_default().0 = Some(path.clone());
        }
    }
    ids.into_iter()
        .map(|(id, files)| match files {
            (Some(csv), Some(json)) => read_table(&csv, &json, &id, project),
            (Some(csv), None) => Err(bad(
                &csv,
                format!("released table without its report: {id}.report.json is missing beside it"),
            )),
            (None, Some(json)) => Err(bad(
                &json,
                format!("released report without its table: {id}.csv is missing beside it"),
            )),
            (None, None) => unreachable!("an id comes from a file"),
        })
        .collect()
}

fn read_table(
    csv_path: &Path,
    json_path: &Path,
    id: &str,
    project: &str,
) -> Result<ReleasedTable, ReportError> {
    let text = std::fs::read_to_string(json_path).map_err(io(json_path))?;
    let report: SafeReport = serde_json::from_str(&text).map_err(|e| {
        bad(
            json_path,
            format!("not a released report as `kluis output release` writes it: {e}"),
        )
    })?;
    if report.output != id {
        return Err(bad(
            json_path,
            format!(
                "field `output` is {:?}, but the file is named for output {id:?}",
                report.output
            ),
        ));
    }
    if report.project != project {
        return Err(bad(
            json_path,
            format!(
                "field `project` is {:?}; this is project {project:?}'s released directory",
                report.project
            ),
        ));
    }

    let mut reader = csv::Reader::from_path(csv_path).map_err(|e| bad(csv_path, e.to_string()))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| bad(csv_path, e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut expected = report.dimensions.clone();
    expected.push(report.measure.clone());
    expected.push("status".into());
    if header != expected {
        return Err(bad(
            csv_path,
            format!(
                "the header is {}; its report says the columns are {}",
                header.join(","),
                expected.join(",")
            ),
        ));
    }
    let dims = report.dimensions.len();
    let mut cells = Vec::with_capacity(report.cells.len());
    for (i, row) in reader.records().enumerate() {
        // Row 1 is the header.
        let line = i + 2;
        let row = row.map_err(|e| bad(csv_path, format!("row {line}: {e}")))?;
        let Some(safe) = report.cells.get(i) else {
            return Err(bad(
                csv_path,
                format!(
                    "row {line}: the table has more rows than its report has cells ({})",
                    report.cells.len()
                ),
            ));
        };
        let key: Vec<String> = row.iter().take(dims).map(str::to_string).collect();
        for (dim, value) in report.dimensions.iter().zip(&key) {
            if safe.key.get(dim) != Some(value) {
                return Err(bad(
                    csv_path,
                    format!(
                        "row {line}: {dim} is {value:?}, but cell {} of its report has {dim} {:?}",
                        i + 1,
                        safe.key.get(dim).map_or("(none)", String::as_str)
                    ),
                ));
            }
        }
        let text = row[dims].to_string();
        let value = if text.is_empty() {
            None
        } else {
            Some(text.parse::<f64>().map_err(|_| {
                bad(
                    csv_path,
                    format!(
                        "row {line}, column {}: {text:?} is not a number (a released value is a number, or empty when withheld)",
                        report.measure
                    ),
                )
            })?)
        };
        let status = CellStatus::parse(&safe.status).ok_or_else(|| {
            bad(
                json_path,
                format!(
                    "cell {}: status {:?}; a released cell is ok, review, primary or secondary",
                    i + 1,
                    safe.status
                ),
            )
        })?;
        let csv_status = &row[dims + 1];
        let agrees = match csv_status {
            "withheld" => status.is_withheld() && value.is_none(),
            "ok" | "ok (reviewed)" => !status.is_withheld(),
            _ => false,
        };
        if !agrees || value != safe.published {
            return Err(bad(
                csv_path,
                format!(
                    "row {line}: {} {text:?} with status {csv_status:?} does not match its report (published {:?}, status {})",
                    report.measure, safe.published, safe.status
                ),
            ));
        }
        cells.push(ReleasedCell {
            key,
            value,
            text,
            status,
            reasons: safe.reasons.clone(),
        });
    }
    if cells.len() != report.cells.len() {
        return Err(bad(
            csv_path,
            format!(
                "{} rows, but its report has {} cells",
                cells.len(),
                report.cells.len()
            ),
        ));
    }
    Ok(ReleasedTable {
        output: report.output,
        job: report.job,
        name: report.table,
        statistic: report.statistic,
        measure: report.measure,
        dimensions: report.dimensions,
        verdict: report.status,
        summary: report.summary,
        rules: format!("{} v{}", report.rules.name, report.rules.version),
        released_by: report.released_by,
        cells,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"{
      "output": "99-001-0001", "project": "99-001", "job": "careers", "table": "by_year",
      "statistic": "count", "measure": "persons", "dimensions": ["year"], "status": "pass",
      "summary": "pass; threshold: 1 cells", "rules": {"name": "default", "version": 1},
      "secondary": "none", "audit_passed": true, "released_by": "vera",
      "cells": [
        {"key": {"year": "2010"}, "published": 120.0, "status": "ok", "reasons": []},
        {"key": {"year": "2011"}, "published": null, "status": "primary", "reasons": ["threshold"]},
        {"key": {"year": "Total"}, "published": 124.0, "status": "ok", "reasons": []}
      ]
    }"#;
    const CSV: &str = "year,persons,status\n2010,120,ok\n2011,,withheld\nTotal,124,ok\n";

    fn write(dir: &Path, csv: &str, report: &str) {
        std::fs::write(dir.join("99-001-0001.csv"), csv).unwrap();
        std::fs::write(dir.join("99-001-0001.report.json"), report).unwrap();
    }

    #[test]
    fn reads_a_released_table_with_its_withheld_cells() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), CSV, REPORT);
        let tables = read_released(dir.path(), "99-001").unwrap();
        assert_eq!(tables.len(), 1);
        let t = &tables[0];
        assert_eq!(t.output, "99-001-0001");
        assert_eq!(t.rules, "default v1");
        assert_eq!(t.withheld(), 1);
        assert_eq!(t.cells[0].value, Some(120.0));
        assert_eq!(t.cells[1].status, CellStatus::Primary);
        assert_eq!(t.cells[1].reasons, vec!["threshold"]);
        assert_eq!(t.cells[1].value, None);
    }

    #[test]
    fn a_missing_directory_is_nothing_released() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            read_released(&dir.path().join("released"), "99-001")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_broken_csv_is_named_with_its_row() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "year,persons,status\n2010,12O,ok\n2011,,withheld\nTotal,124,ok\n",
            REPORT,
        );
        let error = read_released(dir.path(), "99-001").unwrap_err().to_string();
        assert!(
            error.contains("99-001-0001.csv: row 2, column persons: \"12O\" is not a number"),
            "{error}"
        );

        // A withheld cell whose value was filled in afterwards.
        write(
            dir.path(),
            "year,persons,status\n2010,120,ok\n2011,3,withheld\nTotal,124,ok\n",
            REPORT,
        );
        let error = read_released(dir.path(), "99-001").unwrap_err().to_string();
        assert!(
            error.contains(
                "row 3: persons \"3\" with status \"withheld\" does not match its report"
            ),
            "{error}"
        );
    }

    #[test]
    fn a_table_without_its_report_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("99-001-0002.csv"), CSV).unwrap();
        let error = read_released(dir.path(), "99-001").unwrap_err().to_string();
        assert!(
            error.contains("99-001-0002.csv: released table without its report"),
            "{error}"
        );
    }

    #[test]
    fn a_report_of_another_project_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), CSV, REPORT);
        let error = read_released(dir.path(), "99-002").unwrap_err().to_string();
        assert!(error.contains("field `project` is \"99-001\""), "{error}");
    }
}
