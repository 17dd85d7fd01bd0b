//! The margins of an output whose measure is an expression of aggregates (a ratio, a cast):
//! the researcher's own expressions over grouping sets of every subset of the GROUP BY keys
//! (an internal plan, not subject to the researcher policy). Bare aggregates get their margins
//! from the unit pass (`units`) instead.
//!
//! DataFusion's internal `__grouping_id` column has one bit per key, the rightmost key in the
//! lowest bit, set when the key is totalled over; kluis reads margins from that bit mask.

use std::sync::Arc;

use datafusion::common::{Column, Result};
use datafusion::logical_expr::{
    Aggregate, Expr, GroupingSet, LogicalPlan, Projection, SubqueryAlias,
};

use crate::policy::Accepted;

/// Name of DataFusion's grouping-set id column.
pub(crate) const GROUPING_ID: &str = Aggregate::INTERNAL_GROUPING_ID;

/// Every subset of `keys`, the full set first; subset `mask` leaves out key `i` when bit
/// `k-1-i` of `mask` is set (DataFusion's grouping id layout).
fn subsets(keys: &[Expr]) -> Vec<Vec<Expr>> {
    let k = keys.len();
    (0u32..1 << k)
        .map(|mask| {
            keys.iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << (k - 1 - i)) == 0)
                .map(|(_, e)| e.clone())
                .collect()
        })
        .collect()
}

/// The researcher's result with every margin: the same columns plus `__grouping_id` last.
/// Without GROUP BY keys there are no margins and the plan is the result plan itself.
pub(crate) fn margins_plan(acc: &Accepted) -> Result<LogicalPlan> {
    let keys = &acc.aggregate.group_expr;
    if keys.is_empty() {
        return Ok(acc.plan.clone());
    }
    let grouped = Aggregate::try_new(
        acc.aggregate.input.clone(),
        vec![Expr::GroupingSet(GroupingSet::GroupingSets(subsets(keys)))],
        acc.aggregate.aggr_expr.clone(),
    )?;
    let mut plan = LogicalPlan::Aggregate(grouped);
    for node in acc.chain.iter().rev() {
        plan = match node {
            LogicalPlan::Projection(p) => {
                let mut exprs = p.expr.clone();
                exprs.push(Expr::Column(Column::from_name(GROUPING_ID)));
                LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(plan))?)
            }
            LogicalPlan::SubqueryAlias(a) => {
                LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(plan), a.alias.clone())?)
            }
            // Cells are matched by key; their order does not matter here.
            _ => plan,
        };
    }
    Ok(plan)
}
