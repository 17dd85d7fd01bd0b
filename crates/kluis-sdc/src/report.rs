//! The report: one JSON object per table (status, rules, cells with reasons), the fields of ACRO's
//! `results.json` for SACRO-style reviewing tools, and a text form for a human reviewer.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::audit::Audit;
use crate::primary::{CellStatus, CellVerdict, Reason};
use crate::rounding::Rounding;
use crate::rules::RuleSet;
use crate::secondary::SecondaryOutcome;
use crate::table::{Statistic, TOTAL, Table};

/// A table's overall verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableStatus {
    /// Safe to release as published.
    Pass,
    /// Safe pattern, but some cells (or the table) need a reviewer's decision.
    Review,
    /// No safe pattern: the audit failed or a primary cell cannot be protected. Do not release.
    Fail,
}

/// The rule set quoted in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RulesUsed {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// Every parameter.
    pub parameters: RuleSet,
}

/// One cell in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellReport {
    /// Dimension → value, `Total` for margins.
    pub key: BTreeMap<String, String>,
    /// The true value (null for a mean, min or max without data).
    pub value: Option<f64>,
    /// The published value; null when suppressed or redacted by rounding.
    pub published: Option<f64>,
    /// Rows behind the cell.
    pub rows: u64,
    /// Distinct units behind the cell.
    pub units: u64,
    /// Units with a non-null measure.
    pub nonnull_units: u64,
    /// Units with a non-zero total.
    pub nonzero_units: u64,
    /// Its status.
    pub status: CellStatus,
    /// Why.
    pub reasons: Vec<Reason>,
    /// For suppressed cells: the audit's feasible interval of the additive value [lower, upper]
    /// (upper null when unbounded).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub interval: Option<(f64, Option<f64>)>,
    /// True when `interval` is the range of feasible values the audit found, inside the true
    /// interval (cells of a large component: see the audit's notes), not its exact extremes.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub interval_inner: bool,
}

/// The audit's verdict in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditSummary {
    /// No suppressed cell derivable and every primary interval wide enough.
    pub passed: bool,
    /// Suppressed quantities checked (linked cells count once).
    pub checked: usize,
    /// Exactly derivable suppressed quantities.
    pub derivable: usize,
    /// Primary quantities with too narrow an interval.
    pub underprotected: usize,
    /// Suppressed quantities left unchecked when the audit's time budget ran out (it then fails).
    #[serde(default)]
    pub unaudited: usize,
    /// What a reviewer should know about the audit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The report on one table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Overall verdict.
    pub status: TableStatus,
    /// The table's name.
    pub table: String,
    /// Its statistic.
    pub statistic: Statistic,
    /// Its measure.
    pub measure: Option<String>,
    /// Its dimensions, in order.
    pub dimensions: Vec<String>,
    /// The rule set applied.
    pub rules: RulesUsed,
    /// The rounding applied to published values.
    pub rounding: String,
    /// One line for a reviewer.
    pub summary: String,
    /// Secondary suppression over the whole release.
    pub secondary: SecondaryOutcome,
    /// The independent audit over the whole release.
    pub audit: AuditSummary,
    /// Every cell, margins included.
    pub cells: Vec<CellReport>,
    /// The same verdict in the shape of one output of ACRO's `results.json`.
    pub acro: serde_json::Value,
}

pub(crate) struct ReportInput<'a> {
    pub table: &'a Table,
    pub verdicts: &'a [CellVerdict],
    pub rules: &'a RuleSet,
    pub rounding: Rounding,
    pub secondary: &'a SecondaryOutcome,
    pub audit: &'a Audit,
    pub table_index: usize,
}

pub(crate) fn build(input: ReportInput<'_>) -> Report {
    let ReportInput {
        table,
        verdicts,
        rules,
        rounding,
        secondary,
        audit,
        table_index,
    } = input;
    let intervals: HashMap<usize, ((f64, Option<f64>), bool)> = audit
        .cells
        .iter()
        .filter(|a| a.table == table_index)
        .map(|a| (a.cell, ((a.lower, a.upper), !a.exact)))
        .collect();
    let cells: Vec<CellReport> = table
        .cells
        .iter()
        .zip(verdicts)
        .enumerate()
        .map(|(i, (cell, v))| {
            let value = (!cell.value.is_nan()).then_some(cell.value);
            let published = if v.status.is_suppressed() {
                None
            } else {
                value.and_then(|x| rounding.apply(x))
            };
            CellReport {
                key: table.key_map(i),
                value,
                published,
                rows: cell.rows,
                units: cell.units,
                nonnull_units: cell.nonnull_units,
                nonzero_units: cell.nonzero_units,
                status: v.status,
                reasons: v.reasons.clone(),
                interval: if v.status.is_suppressed() {
                    intervals.get(&i).map(|(b, _)| *b)
                } else {
                    None
                },
                interval_inner: v.status.is_suppressed()
                    && intervals.get(&i).is_some_and(|(_, inner)| *inner),
            }
        })
        .collect();
    let failed = !audit.passed || !secondary.unprotectable.is_empty();
    let review = cells.iter().any(|c| c.status == CellStatus::Review) || !table.is_additive();
    let status = if failed {
        TableStatus::Fail
    } else if review {
        TableStatus::Review
    } else {
        TableStatus::Pass
    };
    let count = |r: Reason| cells.iter().filter(|c| c.reasons.contains(&r)).count();
    let mut summary = status_name(status).to_string();
    for r in [
        Reason::Threshold,
        Reason::Dominance,
        Reason::PPercent,
        Reason::ClassDisclosure,
        Reason::ExtremeValue,
        Reason::NegativeValues,
        Reason::Differencing,
        Reason::Secondary,
    ] {
        let n = count(r);
        if n > 0 {
            let _ = write!(summary, "; {}: {n} cells", r.name());
        }
    }
    if !audit.passed {
        let _ = write!(
            summary,
            "; audit failed: {} derivable, {} under-protected, {} not checked in time",
            audit.derivable, audit.underprotected, audit.unaudited
        );
    }
    let acro = acro_output(table, &cells, status, &summary);
    Report {
        status,
        table: table.name.clone(),
        statistic: table.statistic,
        measure: table.measure.clone(),
        dimensions: table.dimensions.clone(),
        rules: RulesUsed {
            name: rules.name.clone(),
            version: rules.version,
            parameters: rules.clone(),
        },
        rounding: rounding.to_string(),
        summary,
        secondary: secondary.clone(),
        audit: AuditSummary {
            passed: audit.passed,
            checked: audit.cells.len(),
            derivable: audit.derivable,
            underprotected: audit.underprotected,
            unaudited: audit.unaudited,
            notes: audit.notes.clone(),
        },
        cells,
        acro,
    }
}

fn status_name(s: TableStatus) -> &'static str {
    match s {
        TableStatus::Pass => "pass",
        TableStatus::Review => "review",
        TableStatus::Fail => "fail",
    }
}

/// Positions as ACRO gives them: [row, column] of a crosstab whose columns are the last dimension
/// and whose rows are the other dimensions' combinations, each in order of first appearance.
fn crosstab_positions(table: &Table, cells: &[CellReport]) -> Vec<[usize; 2]> {
    let d = table.dimensions.len();
    let mut rows: HashMap<Vec<&str>, usize> = HashMap::new();
    let mut cols: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(cells.len());
    for cell in &table.cells {
        let row_key: Vec<&str> = cell.key[..d.saturating_sub(1)]
            .iter()
            .map(String::as_str)
            .collect();
        let col_key = cell.key.last().map_or(TOTAL, String::as_str);
        let next_row = rows.len();
        let r = *rows.entry(row_key).or_insert(next_row);
        let next_col = cols.len();
        let c = *cols.entry(col_key).or_insert(next_col);
        out.push([r, c]);
    }
    debug_assert_eq!(out.len(), cells.len());
    out
}

fn acro_output(
    table: &Table,
    cells: &[CellReport],
    status: TableStatus,
    summary: &str,
) -> serde_json::Value {
    let positions = crosstab_positions(table, cells);
    let flagged = |r: Reason| -> Vec<[usize; 2]> {
        cells
            .iter()
            .zip(&positions)
            .filter(|(c, _)| c.reasons.contains(&r))
            .map(|(_, p)| *p)
            .collect()
    };
    let missing: Vec<[usize; 2]> = Vec::new();
    let suppressed = cells.iter().any(|c| c.status.is_suppressed());
    let checks = [
        ("negative", flagged(Reason::NegativeValues)),
        ("missing", missing),
        ("threshold", flagged(Reason::Threshold)),
        ("p-ratio", flagged(Reason::PPercent)),
        ("nk-rule", flagged(Reason::Dominance)),
        ("all-values-are-same", flagged(Reason::ClassDisclosure)),
    ];
    let mut sdc_summary = serde_json::Map::new();
    sdc_summary.insert("suppressed".into(), suppressed.into());
    let mut sdc_cells = serde_json::Map::new();
    for (name, list) in checks {
        sdc_summary.insert(name.into(), list.len().into());
        sdc_cells.insert(
            name.into(),
            serde_json::to_value(list).expect("positions serialise"),
        );
    }
    let method = match table.statistic {
        Statistic::Count => "crosstab",
        _ => "pivot_table",
    };
    serde_json::json!({
        "uid": table.name,
        "status": status_name(status),
        "type": "table",
        "properties": { "method": method },
        "files": [{ "name": format!("{}.csv", table.name), "sdc": { "summary": sdc_summary, "cells": sdc_cells } }],
        "command": format!("kluis sdc ({} by {})", table.statistic.name(), table.dimensions.join(", ")),
        "summary": summary,
        "comments": [],
        "exception": null,
    })
}

impl Report {
    /// A table a reviewer can read: one aligned line per cell with its status and reasons.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let measure = self
            .measure
            .as_deref()
            .map(|m| format!(" of {m}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "table {}: {}{measure} by {}",
            self.table,
            self.statistic.name(),
            self.dimensions.join(", ")
        );
        let _ = writeln!(
            out,
            "rules: {} v{}   rounding: {}   status: {}",
            self.rules.name,
            self.rules.version,
            self.rounding,
            status_name(self.status).to_uppercase()
        );
        let s = &self.secondary;
        let _ = writeln!(
            out,
            "suppression: {} primary, {} secondary ({:?}, {:.2} s); audit: {} ({} suppressed checked, {} derivable, {} under-protected)",
            s.primary,
            s.secondary,
            s.method,
            s.seconds,
            if self.audit.passed {
                "passed"
            } else {
                "FAILED"
            },
            self.audit.checked,
            self.audit.derivable,
            self.audit.underprotected
        );
        for note in s.notes.iter().chain(&self.audit.notes) {
            let _ = writeln!(out, "note: {note}");
        }
        out.push('\n');
        let mut header: Vec<String> = self.dimensions.clone();
        header.extend(
            [
                "value",
                "published",
                "rows",
                "units",
                "status",
                "reasons",
                "interval",
            ]
            .map(String::from),
        );
        let mut rows: Vec<Vec<String>> = vec![header];
        for c in &self.cells {
            let mut row: Vec<String> = self.dimensions.iter().map(|d| c.key[d].clone()).collect();
            row.push(c.value.map_or("-".into(), fmt_num));
            row.push(c.published.map_or("-".into(), fmt_num));
            row.push(c.rows.to_string());
            row.push(c.units.to_string());
            row.push(format!("{:?}", c.status).to_lowercase());
            row.push(
                c.reasons
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            row.push(c.interval.map_or(String::new(), |(lo, hi)| {
                format!("[{}, {}]", fmt_num(lo), hi.map_or("∞".into(), fmt_num))
            }));
            rows.push(row);
        }
        let ncols = rows[0].len();
        let numeric = |j: usize| j >= self.dimensions.len() && j < self.dimensions.len() + 4;
        let widths: Vec<usize> = (0..ncols)
            .map(|j| rows.iter().map(|r| r[j].chars().count()).max().unwrap_or(0))
            .collect();
        for row in &rows {
            let mut line = String::new();
            for (j, field) in row.iter().enumerate() {
                let pad = widths[j] - field.chars().count();
                if numeric(j) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(field);
                } else {
                    line.push_str(field);
                    line.push_str(&" ".repeat(pad));
                }
                line.push_str("  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn fmt_num(x: f64) -> String {
    // LP bounds come back as 23.9999999 for 24: whole to within solver tolerance reads whole.
    if (x - x.round()).abs() < 1e-6 && x.abs() < 1e15 {
        format!("{:.0}", x.round())
    } else {
        format!("{x:.4}")
    }
}
