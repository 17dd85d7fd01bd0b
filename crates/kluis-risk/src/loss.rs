//! What recoding and suppression cost, and the one-call enforcement of k.
//!
//! The information-loss report compares the released quasi-identifiers with the original ones:
//! per column the level it was recoded to, the cells suppressed (missing now, present before),
//! and the Shannon entropy in bits before and after (missing counted as a value of its own).

use serde::Serialize;

use crate::analysis::MissingPolicy;
use crate::coded::{CodedTable, MISSING};
use crate::error::{Result, RiskError};
use crate::hash::fast_map;
use crate::hierarchy::Hierarchy;
use crate::recode::{Recoding, RecodingOptions, apply_recoding, entropy_bits, optimal_recoding};
use crate::suppress::{Suppression, suppress_to_k};

/// Loss in one quasi-identifier.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ColumnLoss {
    pub column: String,
    pub level: usize,
    pub level_name: String,
    pub cells_suppressed: u64,
    pub entropy_before: f64,
    pub entropy_after: f64,
}

/// Loss over all quasi-identifiers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InformationLoss {
    pub columns: Vec<ColumnLoss>,
    pub cells_suppressed: u64,
    /// Records with at least one suppressed cell.
    pub records_suppressed: u64,
    /// Sum of the levels over the quasi-identifiers (0 when nothing was coarsened).
    pub levels_coarsened: u64,
}

/// Compares `released` with `original` on the hierarchies' columns. `levels` gives the level
/// each column was recoded to (all 0 when only suppression was applied).
pub fn information_loss(
    original: &CodedTable,
    released: &CodedTable,
    hierarchies: &[Hierarchy],
    levels: &[usize],
) -> Result<InformationLoss> {
    if original.rows() != released.rows() || levels.len() != hierarchies.len() {
        return Err(RiskError::Option(
            "information loss needs tables of equal length and one level per hierarchy".into(),
        ));
    }
    let mut record_touched = vec![false; original.rows()];
    let mut columns = Vec::with_capacity(hierarchies.len());
    for (h, &level) in hierarchies.iter().zip(levels) {
        let before = &original.column(h.column())?.codes;
        let after = &released.column(h.column())?.codes;
        let mut cells = 0u64;
        for (r, (&b, &a)) in before.iter().zip(after).enumerate() {
            if a == MISSING && b != MISSING {
                cells += 1;
                record_touched[r] = true;
            }
        }
        columns.push(ColumnLoss {
            column: h.column().into(),
            level,
            level_name: h.level_name(level).into(),
            cells_suppressed: cells,
            entropy_before: code_entropy(before),
            entropy_after: code_entropy(after),
        });
    }
    Ok(InformationLoss {
        cells_suppressed: columns.iter().map(|c| c.cells_suppressed).sum(),
        records_suppressed: record_touched.iter().filter(|&&t| t).count() as u64,
        levels_coarsened: levels.iter().map(|&l| l as u64).sum(),
        columns,
    })
}

/// Shannon entropy (bits) of a code column, missing as a value of its own.
pub fn code_entropy(codes: &[u32]) -> f64 {
    let mut counts = fast_map::<u32, u64>(64);
    for &c in codes {
        *counts.entry(c).or_insert(0) += 1;
    }
    entropy_bits(&counts.into_values().collect::<Vec<_>>())
}

/// Everything [`enforce_k`] did.
#[derive(Debug, Clone)]
pub struct Enforcement {
    /// The table with recoded and suppressed quasi-identifiers; other columns untouched.
    pub table: CodedTable,
    /// The chosen lattice node; `None` when no node was feasible within the suppression budget,
    /// in which case the most general node was used.
    pub recoding: Option<Recoding>,
    pub levels: Vec<usize>,
    pub suppression: Suppression,
    pub loss: InformationLoss,
}

/// Brings `table` to k-anonymity over the hierarchies' columns: the least-loss global recoding
/// that leaves at most `max_suppressed` records below k, then local suppression of those.
pub fn enforce_k(
    table: &CodedTable,
    hierarchies: &[Hierarchy],
    options: &RecodingOptions,
    policy: MissingPolicy,
) -> Result<Enforcement> {
    let recoding = optimal_recoding(table, hierarchies, options)?;
    let levels = match &recoding {
        Some(r) => r.levels.clone(),
        None => hierarchies.iter().map(|h| h.levels() - 1).collect(),
    };
    let mut released = apply_recoding(table, hierarchies, &levels)?;
    let names: Vec<&str> = hierarchies.iter().map(Hierarchy::column).collect();
    let suppression = suppress_to_k(&mut released, &names, options.k, policy)?;
    let loss = information_loss(table, &released, hierarchies, &levels)?;
    Ok(Enforcement {
        table: released,
        recoding,
        levels,
        suppression,
        loss,
    })
}
