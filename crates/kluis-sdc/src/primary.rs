//! Primary rules: which cells are disclosive on their own.

use serde::{Deserialize, Serialize};

use crate::error::SdcError;
use crate::rules::RuleSet;
use crate::structure::dim_trees;
use crate::table::{Cell, Hierarchy, Statistic, TOTAL, Table};

/// Why a cell is not published as is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Fewer units with a non-null measure than the threshold.
    Threshold,
    /// The largest contributors dominate the cell.
    Dominance,
    /// The second largest contributor could estimate the largest too closely.
    PPercent,
    /// A zero or a 100% share.
    ClassDisclosure,
    /// A minimum or maximum: one unit's value, never passed without review.
    ExtremeValue,
    /// Some unit's contribution is negative.
    NegativeValues,
    /// Its units are nested in (or contain) those of a cell released elsewhere, a few units
    /// apart: the difference of the two would count those few.
    Differencing,
    /// Suppressed to protect a primary cell.
    Secondary,
}

impl Reason {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Threshold => "threshold",
            Reason::Dominance => "dominance",
            Reason::PPercent => "p_percent",
            Reason::ClassDisclosure => "class_disclosure",
            Reason::ExtremeValue => "extreme_value",
            Reason::NegativeValues => "negative_values",
            Reason::Differencing => "differencing",
            Reason::Secondary => "secondary",
        }
    }
}

/// A cell's disclosure status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellStatus {
    /// Published.
    Ok,
    /// Suppressed: disclosive on its own.
    Primary,
    /// Suppressed: protects a primary cell.
    Secondary,
    /// Published only after a reviewer agrees.
    Review,
}

impl CellStatus {
    /// Whether the cell's value is withheld.
    pub fn is_suppressed(self) -> bool {
        matches!(self, CellStatus::Primary | CellStatus::Secondary)
    }
}

/// The verdict on one cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellVerdict {
    /// Its status.
    pub status: CellStatus,
    /// Every reason that applies, in a fixed order.
    pub reasons: Vec<Reason>,
}

/// Relative tolerance of rule boundaries, so that a value exactly at k or at p is judged as
/// exactly at it despite floating-point rounding.
const BOUNDARY_EPS: f64 = 1e-9;

/// Applies the rule set's primary rules to every cell of `table`, in cell order.
///
/// - threshold: `nonnull_units < min_units` fails (cells with no unit at all are left to the zeros rule);
/// - dominance: `top1 (+ top2) ≥ k · abs_total` fails, on absolute per-unit totals;
/// - p%: `(abs_total − top1 − top2) < p · top1` fails;
/// - class disclosure: an empty cell of a non-empty group (zeros), a cell with every unit of its
///   parent group when that group has at least two categories (full share);
/// - min and max cells go to review (`extreme_value`), as do cells with a negative contribution.
pub fn apply_primary(
    table: &Table,
    rules: &RuleSet,
    hierarchies: &[Hierarchy],
) -> Result<Vec<CellVerdict>, SdcError> {
    let trees = dim_trees(table, hierarchies)?;
    let index = table.index();
    let mut verdicts = Vec::with_capacity(table.cells.len());
    for cell in &table.cells {
        let mut reasons = magnitude_reasons(cell, table.statistic, rules);
        if cell.units == 0 && rules.class_disclosure.zeros {
            let group_not_empty = parents(cell, &trees).any(|(_, key)| {
                index
                    .get(key.as_slice())
                    .is_some_and(|&p| table.cells[p].units > 0)
            });
            if group_not_empty {
                reasons.push(Reason::ClassDisclosure);
            }
        }
        if cell.units > 0 && rules.class_disclosure.full_share {
            let full = parents(cell, &trees).any(|(siblings, key)| {
                siblings >= 2
                    && index
                        .get(key.as_slice())
                        .is_some_and(|&p| table.cells[p].units == cell.units)
            });
            if full {
                reasons.push(Reason::ClassDisclosure);
            }
        }
        reasons.sort();
        reasons.dedup();
        verdicts.push(verdict_from(reasons));
    }
    Ok(verdicts)
}

/// The status implied by a list of reasons.
pub(crate) fn verdict_from(reasons: Vec<Reason>) -> CellVerdict {
    let primary = reasons.iter().any(|r| {
        matches!(
            r,
            Reason::Threshold | Reason::Dominance | Reason::PPercent | Reason::ClassDisclosure
        )
    });
    let status = if primary {
        CellStatus::Primary
    } else if reasons.is_empty() {
        CellStatus::Ok
    } else {
        CellStatus::Review
    };
    CellVerdict { status, reasons }
}

/// Threshold, dominance, p%, extreme and negative-value reasons of one cell.
fn magnitude_reasons(cell: &Cell, statistic: Statistic, rules: &RuleSet) -> Vec<Reason> {
    let mut reasons = Vec::new();
    let units = if statistic == Statistic::Count {
        cell.units
    } else {
        cell.nonnull_units
    };
    if cell.units > 0 && units < rules.threshold.min_units {
        reasons.push(Reason::Threshold);
    }
    if matches!(statistic, Statistic::Min | Statistic::Max) && cell.nonnull_units > 0 {
        reasons.push(Reason::ExtremeValue);
    }
    if let Some(c) = cell.contributions.filter(|_| statistic != Statistic::Count) {
        if c.abs_total > 0.0 {
            let top = if rules.dominance.n == 1 {
                c.top1
            } else {
                c.top1 + c.top2
            };
            if rules.dominance.enabled
                && top >= rules.dominance.k * c.abs_total * (1.0 - BOUNDARY_EPS)
            {
                reasons.push(Reason::Dominance);
            }
            let rest = c.abs_total - c.top1 - c.top2;
            if rules.p_percent.enabled && rest < rules.p_percent.p * c.top1 * (1.0 - BOUNDARY_EPS) {
                reasons.push(Reason::PPercent);
            }
        }
        if c.has_negative {
            reasons.push(Reason::NegativeValues);
        }
    }
    reasons
}

/// For each non-Total dimension of `cell`: the number of categories under its parent node, and the
/// key of the parent cell.
fn parents<'a>(
    cell: &'a Cell,
    trees: &'a [crate::structure::DimTree],
) -> impl Iterator<Item = (usize, Vec<String>)> + 'a {
    cell.key
        .iter()
        .enumerate()
        .filter(|(_, v)| *v != TOTAL)
        .filter_map(move |(j, v)| {
            let parent = trees[j].parent.get(v)?;
            let siblings = trees[j].children.get(parent).map_or(0, Vec::len);
            let mut key = cell.key.clone();
            key[j] = parent.clone();
            Some((siblings, key))
        })
}
