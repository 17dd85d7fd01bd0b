//! Local suppression: set quasi-identifier values to missing in the records that break k.
//!
//! Greedy, in rounds (documented heuristic, in the spirit of sdcMicro's `localSuppression`):
//! 1. compute every record's frequency under the missing-value policy; the records below k are
//!    the offending ones; stop when there are none;
//! 2. rank the quasi-identifiers by how many distinct values they take among the offending
//!    records (most first: the column that splits them most is the one whose removal merges
//!    them most);
//! 3. in each offending record, suppress the highest-ranked quasi-identifier it still has;
//! 4. repeat. Each round removes one cell per offending record, so at most one round per
//!    quasi-identifier is needed.
//!
//! Only offending records are touched, and only in quasi-identifier columns. Suppressing a
//! record never lowers another record's frequency: with [`MissingPolicy::MatchesAny`] missing
//! only adds matches; with [`MissingPolicy::OwnValue`] the record leaves a class made only of
//! offending records. So records that met k still meet it. Under `MatchesAny` a fully
//! suppressed record matches every record, so k is always reached when the table has at least
//! k records; under `OwnValue` the fully suppressed records form one class of their own, which
//! may stay below k: `k_reached` says so.

use serde::Serialize;

use crate::analysis::{MissingPolicy, record_frequencies};
use crate::coded::{CodedTable, MISSING};
use crate::error::{Result, RiskError};

/// What local suppression did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Suppression {
    /// Cells set to missing.
    pub cells: u64,
    /// Cells set to missing per quasi-identifier, in the order given.
    pub cells_per_column: Vec<(String, u64)>,
    /// Records with at least one cell suppressed.
    pub records: u64,
    pub rounds: u32,
    /// Whether every record now meets k.
    pub k_reached: bool,
    /// Smallest record frequency after suppression.
    pub k_min: u64,
}

/// Suppresses cells of the named quasi-identifier columns of `table`, in place, until every
/// record's frequency is at least `k` (or no cell is left to suppress).
pub fn suppress_to_k(
    table: &mut CodedTable,
    quasi_identifiers: &[&str],
    k: u32,
    policy: MissingPolicy,
) -> Result<Suppression> {
    if k == 0 {
        return Err(RiskError::Option("k must be at least 1".into()));
    }
    let indices: Vec<usize> = quasi_identifiers
        .iter()
        .map(|n| table.index_of(n))
        .collect::<Result<_>>()?;
    let rows = table.rows();
    let q = indices.len();
    let mut per_column = vec![0u64; q];
    let mut touched = vec![false; rows];
    let mut rounds = 0;
    let frequency = loop {
        let frequency = {
            let qi: Vec<&[u32]> = indices
                .iter()
                .map(|&j| table.columns()[j].codes.as_slice())
                .collect();
            record_frequencies(&qi, rows, policy)?
        };
        let offending: Vec<usize> = (0..rows).filter(|&r| frequency[r] < k).collect();
        if offending.is_empty() || rounds as usize >= q {
            break frequency;
        }
        let rank = rank_columns(table, &indices, &offending);
        let mut changed = false;
        for &r in &offending {
            if let Some(&pick) = rank
                .iter()
                .find(|&&p| table.columns()[indices[p]].codes[r] != MISSING)
            {
                table.columns_mut()[indices[pick]].codes[r] = MISSING;
                per_column[pick] += 1;
                touched[r] = true;
                changed = true;
            }
        }
        rounds += 1;
        if !changed {
            break frequency;
        }
    };
    let k_min = frequency.iter().copied().min().unwrap_or(0);
    Ok(Suppression {
        cells: per_column.iter().sum(),
        cells_per_column: quasi_identifiers
            .iter()
            .zip(&per_column)
            .map(|(n, &c)| ((*n).to_owned(), c))
            .collect(),
        records: touched.iter().filter(|&&t| t).count() as u64,
        rounds,
        k_reached: frequency.iter().all(|&f| f >= k),
        k_min: u64::from(k_min),
    })
}

/// Quasi-identifier positions ordered by distinct non-missing values among `offending`, most
/// first; ties keep the given order.
fn rank_columns(table: &CodedTable, indices: &[usize], offending: &[usize]) -> Vec<usize> {
    let distinct: Vec<usize> = indices
        .iter()
        .map(|&j| {
            let column = &table.columns()[j];
            let mut seen = vec![false; column.cardinality()];
            let mut count = 0;
            for &r in offending {
                let c = column.codes[r];
                if c != MISSING && !seen[c as usize] {
                    seen[c as usize] = true;
                    count += 1;
                }
            }
            count
        })
        .collect();
    let mut rank: Vec<usize> = (0..indices.len()).collect();
    rank.sort_by_key(|&p| std::cmp::Reverse(distinct[p]));
    rank
}
