//! The table model: cells keyed by dimension values, with the per-unit statistics every rule needs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The dimension value that marks a margin: the cell sums over every value of that dimension.
pub const TOTAL: &str = "Total";

/// What a table's cells hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Statistic {
    /// Number of rows in the cell.
    Count,
    /// Sum of the measure.
    Sum,
    /// Mean of the non-null measure values (rows); its additive counterpart is the sum.
    Mean,
    /// Smallest measure value.
    Min,
    /// Largest measure value.
    Max,
    /// A proportion within the cell (the mean of an indicator, or a sum over a count). Protected
    /// like a mean, through its numerator's sum.
    Share,
}

impl Statistic {
    /// Whether cells of this statistic add up along margins (directly, or through their sums).
    pub fn is_additive(self) -> bool {
        matches!(
            self,
            Statistic::Count | Statistic::Sum | Statistic::Mean | Statistic::Share
        )
    }

    /// The lower-case name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Statistic::Count => "count",
            Statistic::Sum => "sum",
            Statistic::Mean => "mean",
            Statistic::Min => "min",
            Statistic::Max => "max",
            Statistic::Share => "share",
        }
    }

    /// Every statistic, as listed in error messages.
    pub const ALLOWED: &'static str = "count, sum, mean, min, max, share";

    /// The statistic named `text` (as [`Statistic::name`] writes it).
    pub fn parse(text: &str) -> Option<Statistic> {
        Some(match text {
            "count" => Statistic::Count,
            "sum" => Statistic::Sum,
            "mean" => Statistic::Mean,
            "min" => Statistic::Min,
            "max" => Statistic::Max,
            "share" => Statistic::Share,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Statistic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-unit contributions behind a magnitude cell. A unit's contribution is the total of its
/// measure values in the cell: a person's 20 rows are one contributor.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contributions {
    /// Sum of the per-unit totals: the cell's sum.
    pub total: f64,
    /// Sum of the absolute per-unit totals (equal to `total` when nothing is negative).
    pub abs_total: f64,
    /// Largest absolute per-unit total.
    pub top1: f64,
    /// Second largest absolute per-unit total (0 with a single contributor).
    pub top2: f64,
    /// Whether some unit's total in the cell is negative.
    pub has_negative: bool,
}

/// One cell of a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// One value per table dimension, in the table's dimension order; [`TOTAL`] marks a margin.
    pub key: Vec<String>,
    /// The true value of the statistic (NaN for a mean, min or max without data, or an SQL
    /// NULL). JSON has no NaN: it is written as null and read back as NaN.
    #[serde(with = "nan_as_null")]
    pub value: f64,
    /// Rows behind the cell.
    pub rows: u64,
    /// Distinct units (persons) behind the cell.
    pub units: u64,
    /// Units with at least one non-null measure value (equal to `units` for counts).
    pub nonnull_units: u64,
    /// Units whose total in the cell is not zero (equal to `units` for counts).
    pub nonzero_units: u64,
    /// Per-unit contributions; `None` for counts, or when the table does not carry them.
    pub contributions: Option<Contributions>,
}

impl Cell {
    /// The additive quantity behind the cell that margins sum: the count for counts, the sum of the
    /// measure for sums, means and shares. `None` for min and max.
    pub fn additive_value(&self, statistic: Statistic) -> Option<f64> {
        match statistic {
            Statistic::Count => Some(self.value),
            Statistic::Sum => Some(self.contributions.map_or(self.value, |c| c.total)),
            Statistic::Mean | Statistic::Share => self.contributions.map(|c| c.total),
            Statistic::Min | Statistic::Max => None,
        }
    }

    /// Whether the cell is a margin in at least one dimension.
    pub fn is_margin(&self) -> bool {
        self.key.iter().any(|v| v == TOTAL)
    }
}

/// A table: cells over named dimensions, margins included.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// A name for reports (a file name, an output name).
    pub name: String,
    /// Dimension (column) names.
    pub dimensions: Vec<String>,
    /// What the cells hold.
    pub statistic: Statistic,
    /// The measure column for sums, means, minima and maxima; `None` for counts, or what a
    /// count counts when several kinds of counts are released together (only counts with the
    /// same measure are linked).
    pub measure: Option<String>,
    /// The cells; keys are unique.
    pub cells: Vec<Cell>,
    /// Whether a unit can be in several cells along a dimension (a count of distinct persons
    /// over years in which they move): then margins are not the sums of their cells, the table
    /// is not additive, and only primary suppression applies (every cell goes to review).
    #[serde(default)]
    pub overlapping: bool,
    /// What each dimension is, when its name does not say: cells link to another table's only
    /// when their dimensions are the same (a regrouping named like a column is not that column).
    /// Empty: the names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimension_ids: Vec<String>,
    /// Per cell, what links it to cells of other tables whatever their quantities and keys
    /// (0: nothing): cells with the same link hold the same number (the enclave links cells
    /// with the same persons and value), so the secondary suppression and the audit treat them
    /// as one. Linking two numbers only adds a relation that holds, so it errs on the safe side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cell_links: Vec<u64>,
}

impl Table {
    /// Whether its cells add up along margins: an additive statistic without overlapping units.
    pub fn is_additive(&self) -> bool {
        self.statistic.is_additive() && !self.overlapping
    }

    /// What dimension `i` is, for linking (see [`Table::dimension_ids`]).
    pub fn dimension_id(&self, i: usize) -> &str {
        self.dimension_ids.get(i).unwrap_or(&self.dimensions[i])
    }

    /// The link of cell `c` (see [`Table::cell_links`]), 0 for none.
    pub fn cell_link(&self, c: usize) -> u64 {
        self.cell_links.get(c).copied().unwrap_or(0)
    }

    /// What each dimension is, in order.
    pub fn dimension_identities(&self) -> impl Iterator<Item = &str> + Clone {
        (0..self.dimensions.len()).map(|i| self.dimension_id(i))
    }

    /// A map from key to cell index.
    pub fn index(&self) -> std::collections::HashMap<&[String], usize> {
        self.cells
            .iter()
            .enumerate()
            .map(|(i, c)| (c.key.as_slice(), i))
            .collect()
    }

    /// The key of cell `i` as dimension → value, `Total` for margins.
    pub fn key_map(&self, i: usize) -> BTreeMap<String, String> {
        self.dimensions
            .iter()
            .cloned()
            .zip(self.cells[i].key.iter().cloned())
            .collect()
    }
}

/// A hierarchy of codes for one dimension: each code's parent, the top codes having `Total` as parent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hierarchy {
    /// The dimension it applies to.
    pub dimension: String,
    /// code → parent code (`Total` for a top code).
    pub parent: BTreeMap<String, String>,
}

impl Hierarchy {
    /// The children of every node (`Total` included), each list in code order.
    pub fn children(&self) -> BTreeMap<String, Vec<String>> {
        let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (code, parent) in &self.parent {
            children
                .entry(parent.clone())
                .or_default()
                .push(code.clone());
        }
        children
    }
}

/// A cell released before (from the project's release ledger): the attacker knows its value.
/// It constrains the current tables when a cell there has the same quantity and key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedCell {
    /// The measure whose sum it is (what it counts, for a count table with a measure), `None` for
    /// a plain count.
    pub measure: Option<String>,
    /// Dimension (its [`Table::dimension_id`]) → value for the dimensions it is broken down by
    /// (dimensions at `Total` may be left out).
    pub key: BTreeMap<String, String>,
    /// The released additive value (a count or a sum).
    pub value: f64,
    /// What links it to a cell of the tables being protected (see [`Table::cell_links`]); 0:
    /// nothing.
    #[serde(default)]
    pub link: u64,
}

/// An f64 that may be NaN, as JSON (which has no NaN): NaN is null.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
        if value.is_nan() {
            s.serialize_none()
        } else {
            s.serialize_f64(*value)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_value_survives_json() {
        let cell = Cell {
            key: vec![TOTAL.into()],
            value: f64::NAN,
            rows: 3,
            units: 2,
            nonnull_units: 0,
            nonzero_units: 0,
            contributions: None,
        };
        let text = serde_json::to_string(&cell).unwrap();
        assert!(text.contains("\"value\":null"), "{text}");
        let back: Cell = serde_json::from_str(&text).unwrap();
        assert!(back.value.is_nan());
        let one: Cell = serde_json::from_str(&text.replacen("null", "1.5", 1)).unwrap();
        assert_eq!(one.value, 1.5);
    }
}
