//! Reading finished tables and hierarchies from CSV (for `kluis sdc protect`).
//!
//! A table CSV has one column per dimension (`Total` marks a margin), a `count` column (distinct
//! units), and optionally `value` (a sum), with `top1` and `top2` (the two largest absolute per-unit
//! contributions) required alongside it. A hierarchy CSV has the columns `code,parent`; a top
//! code's parent is `Total`.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;

use crate::error::SdcError;
use crate::table::{Cell, Contributions, Hierarchy, Statistic, TOTAL, Table};

const RESERVED: [&str; 4] = ["count", "value", "top1", "top2"];

/// Reads a finished table; `name` names the source in messages and reports.
pub fn read_table<R: Read>(reader: R, name: &str) -> Result<Table, SdcError> {
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = csv
        .headers()
        .map_err(|e| SdcError::Input(format!("{name}: cannot read the header: {e}")))?
        .clone();
    let pos = |col: &str| headers.iter().position(|h| h == col);
    let count_col = pos("count").ok_or_else(|| {
        SdcError::Input(format!(
            "{name}: no `count` column; expected one column per dimension, `count`, and optionally `value`, `top1`, `top2`"
        ))
    })?;
    let value_col = pos("value");
    let (top1_col, top2_col) = (pos("top1"), pos("top2"));
    if value_col.is_some() && (top1_col.is_none() || top2_col.is_none()) {
        return Err(SdcError::Input(format!(
            "{name}: a `value` column needs `top1` and `top2` (the two largest per-unit contributions) to check dominance and p%"
        )));
    }
    let dims: Vec<usize> = (0..headers.len())
        .filter(|&i| !RESERVED.contains(&&headers[i]))
        .collect();
    if dims.is_empty() {
        return Err(SdcError::Input(format!(
            "{name}: no dimension column besides count/value/top1/top2"
        )));
    }
    let mut cells = Vec::new();
    let mut seen = HashSet::new();
    for (i, record) in csv.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| SdcError::Input(format!("{name}: line {line}: {e}")))?;
        let key: Vec<String> = dims.iter().map(|&j| record[j].to_string()).collect();
        if !seen.insert(key.clone()) {
            return Err(SdcError::Input(format!(
                "{name}: line {line}: the cell {key:?} appears twice"
            )));
        }
        let field = |j: usize| -> Result<f64, SdcError> {
            let raw = &record[j];
            raw.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    SdcError::Input(format!(
                        "{name}: line {line}, column `{}`: `{raw}` is not a number",
                        &headers[j]
                    ))
                })
        };
        let count = field(count_col)?;
        if count < 0.0 || count.fract() != 0.0 {
            return Err(SdcError::Input(format!(
                "{name}: line {line}, column `count`: `{}` is not a count; accepted: a whole number ≥ 0",
                &record[count_col]
            )));
        }
        let units = count as u64;
        let (value, contributions) = match value_col {
            None => (count, None),
            Some(v) => {
                let value = field(v)?;
                let (top1, top2) = (
                    field(top1_col.expect("checked"))?,
                    field(top2_col.expect("checked"))?,
                );
                if top1 < 0.0 || top2 < 0.0 || top2 > top1 {
                    return Err(SdcError::Input(format!(
                        "{name}: line {line}: top1 = {top1}, top2 = {top2}; accepted: absolute contributions with top1 ≥ top2 ≥ 0"
                    )));
                }
                let has_negative = value < 0.0 || top1 + top2 > value.abs() * (1.0 + 1e-12);
                let abs_total = value.abs().max(top1 + top2);
                (
                    value,
                    Some(Contributions {
                        total: value,
                        abs_total,
                        top1,
                        top2,
                        has_negative,
                    }),
                )
            }
        };
        cells.push(Cell {
            key,
            value,
            rows: units,
            units,
            nonnull_units: units,
            nonzero_units: units,
            contributions,
        });
    }
    Ok(Table {
        name: name.to_string(),
        dimensions: dims.iter().map(|&j| headers[j].to_string()).collect(),
        statistic: if value_col.is_some() {
            Statistic::Sum
        } else {
            Statistic::Count
        },
        measure: value_col.map(|_| "value".to_string()),
        cells,
        overlapping: false,
        dimension_ids: Vec::new(),
        cell_links: Vec::new(),
    })
}

/// Reads a hierarchy `code,parent` for `dimension`; `name` names the source in messages.
pub fn read_hierarchy<R: Read>(
    reader: R,
    dimension: &str,
    name: &str,
) -> Result<Hierarchy, SdcError> {
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = csv
        .headers()
        .map_err(|e| SdcError::Input(format!("{name}: cannot read the header: {e}")))?
        .clone();
    if headers.iter().collect::<Vec<_>>() != ["code", "parent"] {
        return Err(SdcError::Input(format!(
            "{name}: the header is `{}`; expected `code,parent`",
            headers.iter().collect::<Vec<_>>().join(",")
        )));
    }
    let mut parent = BTreeMap::new();
    for (i, record) in csv.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| SdcError::Input(format!("{name}: line {line}: {e}")))?;
        let (code, p) = (record[0].to_string(), record[1].to_string());
        if code == TOTAL || code.is_empty() {
            return Err(SdcError::Input(format!(
                "{name}: line {line}, column `code`: `{code}` cannot be a code; `{TOTAL}` is the implicit root"
            )));
        }
        if parent.insert(code.clone(), p).is_some() {
            return Err(SdcError::Input(format!(
                "{name}: line {line}: code `{code}` appears twice"
            )));
        }
    }
    Ok(Hierarchy {
        dimension: dimension.to_string(),
        parent,
    })
}
