//! kluis-sdc: output disclosure control. It owns the table model (cells with per-unit statistics),
//! rule sets as data, the primary rules, secondary suppression over linked tables and hierarchies,
//! the independent LP audit, rounding, and the report. No DataFusion, no I/O beyond CSV.
//!
//! The usual entry point is [`protect`]; the steps are public for callers that need them one by one:
//! [`apply_primary`] → [`secondary_suppress`] → [`audit`] → report.

mod audit;
mod error;
mod hypercube;
pub mod input;
pub mod microdata;
mod primary;
mod report;
mod rounding;
mod rules;
mod secondary;
mod structure;
mod system;
mod table;

pub use audit::{Audit, AuditCell, audit};
pub use error::SdcError;
pub use primary::{CellStatus, CellVerdict, Reason, apply_primary};
pub use report::{AuditSummary, CellReport, Report, RulesUsed, TableStatus};
pub use rounding::Rounding;
pub use rules::{ClassDisclosure, Dominance, PPercent, Protection, RuleSet, Secondary, Threshold};
pub use secondary::{Method, SecondaryOutcome, secondary_suppress};
pub use table::{Cell, Contributions, Hierarchy, PublishedCell, Statistic, TOTAL, Table};

/// Everything released together: the tables, the hierarchies of their dimensions, and the cells
/// released before (from the release ledger).
#[derive(Clone, Copy, Debug)]
pub struct Release<'a> {
    /// Tables released together (linked through cells with the same quantity and key).
    pub tables: &'a [Table],
    /// Hierarchies, at most one per dimension name.
    pub hierarchies: &'a [Hierarchy],
    /// Cells released before: the attacker knows them.
    pub published: &'a [PublishedCell],
    /// Cells to withhold for a reason outside these tables, as (table index, cell index):
    /// differencing against cells released elsewhere. They are primary, reason `differencing`,
    /// and secondary suppression protects them like any other.
    pub withheld: &'a [(usize, usize)],
}

/// Applies the primary rules, secondary suppression, the audit and rounding to a release, and
/// returns one report per table (in table order).
///
/// The pattern is never unsafe: if the audit finds the optimised pattern wanting, every cell not
/// released before is suppressed, the audit runs again, and the report says so; if even that
/// fails (cells released before pin a primary cell), the report's status is `fail`.
pub fn protect(
    release: Release<'_>,
    rules: &RuleSet,
    rounding: Rounding,
) -> Result<Vec<Report>, SdcError> {
    let Release {
        tables,
        hierarchies,
        published,
        withheld,
    } = release;
    for table in tables {
        if rounding.counts_only() && table.statistic != Statistic::Count {
            return Err(SdcError::Input(format!(
                "rounding `{rounding}` is for counts, and table `{}` holds {} values; accepted here: none, base:N",
                table.name,
                table.statistic.name()
            )));
        }
    }
    let mut verdicts = tables
        .iter()
        .map(|t| apply_primary(t, rules, hierarchies))
        .collect::<Result<Vec<_>, _>>()?;
    for &(t, c) in withheld {
        let verdict = verdicts
            .get_mut(t)
            .and_then(|v| v.get_mut(c))
            .ok_or_else(|| SdcError::Input(format!("no cell {c} in table {t} to withhold")))?;
        verdict.status = CellStatus::Primary;
        if !verdict.reasons.contains(&Reason::Differencing) {
            verdict.reasons.push(Reason::Differencing);
            verdict.reasons.sort();
        }
    }
    let mut outcome = secondary_suppress(tables, &mut verdicts, hierarchies, published, rules)?;
    let mut result = audit(tables, &verdicts, hierarchies, published, rules)?;
    if !result.passed && outcome.method != Method::FallbackAll && outcome.unprotectable.is_empty() {
        for (table, v) in tables.iter().zip(verdicts.iter_mut()) {
            if !table.is_additive() {
                continue;
            }
            for verdict in v.iter_mut().filter(|v| !v.status.is_suppressed()) {
                verdict.status = CellStatus::Secondary;
                verdict.reasons.push(Reason::Secondary);
                verdict.reasons.sort();
            }
        }
        outcome.method = Method::FallbackAll;
        outcome.secondary = verdicts
            .iter()
            .flatten()
            .filter(|v| v.status == CellStatus::Secondary)
            .count();
        outcome.notes.push(if result.unaudited > 0 {
            "the audit could not check the optimised pattern within its budget: kluis fell back to suppressing every cell not released before"
                .into()
        } else {
            "the audit found the optimised pattern unsafe: kluis fell back to suppressing every cell not released before"
                .into()
        });
        result = audit(tables, &verdicts, hierarchies, published, rules)?;
    }
    Ok(tables
        .iter()
        .enumerate()
        .map(|(i, table)| {
            report::build(report::ReportInput {
                table,
                verdicts: &verdicts[i],
                rules,
                rounding,
                secondary: &outcome,
                audit: &result,
                table_index: i,
            })
        })
        .collect())
}
