//! From an output to kluis-sdc's table model, at the scale it was run or scaled from a sample to
//! the population, and the sample run's forecast of the cells that would fail at full scale.

use std::collections::HashMap;

use kluis_sdc::{Cell as SdcCell, CellStatus, Contributions, RuleSet, Statistic, TOTAL, Table};
use roaring::RoaringBitmap;
use serde::Serialize;

use crate::{Cell, Level, OutputTable};

/// The key text kluis-sdc gets for a NULL dimension value.
pub const MISSING: &str = "(missing)";

/// A level as kluis-sdc's key text: the value, [`MISSING`] or `Total`.
pub fn level_key(level: &Level) -> &str {
    match level {
        Level::Value(v) => v,
        Level::Missing => MISSING,
        Level::Total => TOTAL,
    }
}

/// One stratum of a sample: its units and how many population units each stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct Stratum {
    pub name: String,
    pub units: RoaringBitmap,
    /// 1 / the stratum's sampling fraction.
    pub factor: f64,
}

/// How a run's units scale to the population.
#[derive(Debug, Clone, PartialEq)]
pub enum Scaling {
    /// Every unit stands for `factor` units (1 for a full run).
    Uniform(f64),
    /// Each unit stands for its stratum's factor; a unit in no stratum stands for itself.
    Strata(Vec<Stratum>),
}

impl Scaling {
    /// The population units a set of sample units stands for.
    pub fn scaled(&self, units: &RoaringBitmap) -> f64 {
        match self {
            Scaling::Uniform(f) => units.len() as f64 * f,
            Scaling::Strata(strata) => {
                let mut rest = units.len();
                let mut total = 0.0;
                for s in strata {
                    let n = units.intersection_len(&s.units);
                    rest -= n.min(rest);
                    total += n as f64 * s.factor;
                }
                total + rest as f64
            }
        }
    }

    fn is_identity(&self) -> bool {
        matches!(self, Scaling::Uniform(f) if *f == 1.0)
    }
}

/// The output as a kluis-sdc table, every cell and margin with its unit statistics. Counts keep
/// what they count as their measure, so that different counts are never linked as one quantity.
/// With a scaling other than 1, unit counts, rows and totals are scaled by each cell's mean
/// factor (the largest contributions stay as they are: a person is still one person).
pub fn to_sdc_table(table: &OutputTable, scaling: &Scaling) -> Table {
    let cells = table
        .cells
        .iter()
        .map(|c| {
            let w = if scaling.is_identity() || c.units.is_empty() {
                1.0
            } else {
                scaling.scaled(&c.units) / c.units.len() as f64
            };
            let scale = |n: u64| (n as f64 * w).round() as u64;
            let value = c.value.unwrap_or(f64::NAN);
            let value = match table.statistic {
                Statistic::Count | Statistic::Sum => value * w,
                _ => value,
            };
            let judged = scale(contributors(c, table.statistic));
            let count = table.statistic == Statistic::Count;
            SdcCell {
                key: c.key.iter().map(|l| level_key(l).to_string()).collect(),
                value,
                rows: scale(c.stats.rows),
                units: if count { judged } else { scale(c.stats.units) },
                nonnull_units: judged,
                nonzero_units: if count {
                    judged
                } else {
                    scale(c.stats.nonzero_units)
                },
                contributions: (table.statistic != Statistic::Count).then_some(Contributions {
                    total: c.stats.total * w,
                    abs_total: c.stats.abs_total * w,
                    top1: c.stats.top1.unwrap_or(0.0),
                    top2: c.stats.top2.unwrap_or(0.0),
                    has_negative: c.stats.any_negative,
                }),
            }
        })
        .collect();
    let cell_links = table
        .cells
        .iter()
        .zip(&cells)
        .map(|(c, sdc): (&Cell, &SdcCell)| {
            sdc.additive_value(table.statistic)
                .map_or(0, |value| link_of(&c.units, value))
        })
        .collect();
    Table {
        name: table.name.clone(),
        dimensions: table.dimensions.clone(),
        statistic: table.statistic,
        measure: Some(table.quantity.clone()),
        cells,
        overlapping: table.statistic.is_additive() && !margins_add_up(table),
        dimension_ids: table.dimension_ids.clone(),
        cell_links,
    }
}

/// What links a published number to the same number in other tables, whatever their
/// quantities (`kluis_sdc::Table::cell_links`): its value and its persons, by their count and
/// seventeen of them spread over the set (hashing every person took seconds at full scale).
/// Two numbers that share a link by chance are treated as one: a relation the attacker does
/// not have, which only makes the protection stricter. 0 for nobody's.
pub(crate) fn link_of(units: &roaring::RoaringBitmap, value: f64) -> u64 {
    use std::hash::{Hash, Hasher};
    if units.is_empty() || !value.is_finite() {
        return 0;
    }
    let mut h = std::hash::DefaultHasher::new();
    value.to_bits().hash(&mut h);
    let n = units.len();
    n.hash(&mut h);
    for i in 0..=16u64 {
        units.select(((n - 1) * i / 16) as u32).hash(&mut h);
    }
    h.finish().max(1)
}

/// The persons a cell's number is judged by: the fewest of each of its aggregates' own
/// contributors (a count of naturalised persons is judged by the naturalised, not by everyone in
/// the cell), and for a share also the persons outside its numerator (a share of all but two
/// persons, with its base, gives those two away as a count would).
pub fn contributors(cell: &Cell, statistic: Statistic) -> u64 {
    let numerator = cell.units.len();
    match &cell.denominator {
        None => numerator,
        Some(d) => {
            let mut fewest = numerator.min(d.units.len());
            if statistic == Statistic::Share {
                fewest = fewest.min(d.units.len() - d.units.intersection_len(&cell.units));
            }
            fewest
        }
    }
}

/// Whether every margin's additive quantity (a count, or the sum behind a sum, mean or share)
/// is the sum of its cells' along each dimension it totals (false for distinct persons who are
/// in several cells, e.g. regions over years).
fn margins_add_up(table: &OutputTable) -> bool {
    let additive = |c: &Cell| match table.statistic {
        Statistic::Count | Statistic::Sum => c.value.unwrap_or(0.0),
        _ => c.stats.total,
    };
    let values: HashMap<&[Level], f64> = table
        .cells
        .iter()
        .map(|c| (c.key.as_slice(), additive(c)))
        .collect();
    let mut sums: HashMap<(usize, Vec<Level>), f64> = HashMap::new();
    for c in &table.cells {
        for (j, level) in c.key.iter().enumerate() {
            if *level != Level::Total {
                let mut parent = c.key.clone();
                parent[j] = Level::Total;
                *sums.entry((j, parent)).or_default() += additive(c);
            }
        }
    }
    sums.iter().all(|((_, parent), sum)| {
        values
            .get(parent.as_slice())
            .is_some_and(|v| (v - sum).abs() <= 1e-9 * v.abs().max(1.0))
    })
}

/// A cell of a sample run that would probably fail the primary rules at full scale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AtRisk {
    pub key: Vec<Level>,
    /// Units with a non-null measure in the sample.
    pub nonnull_units: u64,
    /// The population units they stand for.
    pub scaled_units: f64,
    /// The primary rules it would probably fail.
    pub reasons: Vec<&'static str>,
}

/// The cells of `table` that fail the primary rules once scaled to the population.
pub fn at_risk(
    table: &OutputTable,
    scaling: &Scaling,
    rules: &RuleSet,
) -> Result<Vec<AtRisk>, kluis_sdc::SdcError> {
    let scaled = to_sdc_table(table, scaling);
    let verdicts = kluis_sdc::apply_primary(&scaled, rules, &[])?;
    Ok(table
        .cells
        .iter()
        .zip(verdicts)
        .filter(|(_, v)| v.status == CellStatus::Primary)
        .map(|(c, v)| AtRisk {
            key: c.key.clone(),
            nonnull_units: contributors(c, table.statistic),
            scaled_units: scaling.scaled(&c.units),
            reasons: v.reasons.iter().map(|r| r.name()).collect(),
        })
        .collect())
}
