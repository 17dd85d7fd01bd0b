//! The plans kluis adds to every accepted output: the table with all its margins, and the
//! per-cell privacy statistics (internal plans, not subject to the researcher policy).
//!
//! Margins use DataFusion grouping sets over every subset of the GROUP BY keys. Its internal
//! `__grouping_id` column has one bit per key, the rightmost key in the lowest bit, set when the
//! key is totalled over; kluis reads margins from that bit mask.
//!
//! Unit statistics are computed in two steps over the final aggregation's own input:
//! 1. group by (cell keys, unit): rows, non-null measure values and the unit's contribution to
//!    the measure (the measure's aggregate applied to the unit's rows; `avg` contributes its sum);
//! 2. group by cell keys: distinct units, rows, units with a non-null measure, units with a
//!    non-zero contribution, the largest and second-largest absolute contribution, and the
//!    smallest contribution (negative contributions weaken dominance rules).
//!
//! Both steps run over the same grouping sets, so margins count each person once even when the
//! person has rows in several cells below the margin.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::{Column, Result};
use datafusion::functions_aggregate::count::count_all;
use datafusion::functions_aggregate::expr_fn::{count, max, min, nth_value, sum};
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, Expr, GroupingSet, LogicalPlan, Projection, SubqueryAlias, cast, lit, when,
};

use crate::policy::Accepted;

/// Name of DataFusion's grouping-set id column.
pub(crate) const GROUPING_ID: &str = Aggregate::INTERNAL_GROUPING_ID;

/// Every subset of `keys`, the full set first; subset `mask` leaves out key `i` when bit
/// `k-1-i` of `mask` is set (DataFusion's grouping id layout).
fn subsets(keys: &[Expr], extra: Option<&Expr>) -> Vec<Vec<Expr>> {
    let k = keys.len();
    (0u32..1 << k)
        .map(|mask| {
            let mut set: Vec<Expr> = keys
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << (k - 1 - i)) == 0)
                .map(|(_, e)| e.clone())
                .collect();
            set.extend(extra.cloned());
            set
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
        vec![Expr::GroupingSet(GroupingSet::GroupingSets(subsets(
            keys, None,
        )))],
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

/// The per-unit contribution aggregate and the count of the unit's non-null measure values.
fn contribution(measure: &AggregateFunction) -> (Expr, Expr) {
    let mut contrib = measure.clone();
    if contrib.func.name() == "avg" {
        // A unit contributes its sum to a mean.
        contrib.func = sum_udaf();
    }
    let mut non_null = match measure.params.args.as_slice() {
        [arg] => match count(arg.clone()) {
            Expr::AggregateFunction(f) => f,
            _ => unreachable!("count() builds an aggregate function"),
        },
        _ => match count_all() {
            Expr::AggregateFunction(f) => f,
            Expr::Alias(a) => match *a.expr {
                Expr::AggregateFunction(f) => f,
                _ => unreachable!("count_all() builds an aggregate function"),
            },
            _ => unreachable!("count_all() builds an aggregate function"),
        },
    };
    non_null.params.filter = measure.params.filter.clone();
    (
        Expr::AggregateFunction(contrib),
        Expr::AggregateFunction(non_null),
    )
}

/// Per-cell unit statistics. Output columns: the k cell keys, then (when k > 0) the grouping id,
/// then units, rows, nonnull_units, nonzero_units, top1, top2, min_contribution.
pub(crate) fn unit_stats_plan(acc: &Accepted) -> Result<LogicalPlan> {
    let keys = &acc.aggregate.group_expr;
    let k = keys.len();
    let unit = Expr::Column(acc.unit_column.clone());
    let group = if k == 0 {
        vec![unit.clone()]
    } else {
        vec![Expr::GroupingSet(GroupingSet::GroupingSets(subsets(
            keys,
            Some(&unit),
        )))]
    };
    let (contrib, non_null) = contribution(&acc.measure_aggregate);
    let per_unit = Aggregate::try_new(
        Arc::new(acc.unit_input.clone()),
        group,
        vec![
            count_all().alias("__rows"),
            non_null.alias("__n"),
            contrib.alias("__contrib"),
        ],
    )?;
    let schema = per_unit.schema.clone();
    let field = |i: usize| Expr::Column(Column::from(schema.qualified_field(i)));
    // Fields of step 1: keys, unit, [grouping id], rows, n, contribution.
    let first_agg = if k == 0 { 1 } else { k + 2 };
    let (rows, n, c) = (
        field(first_agg),
        field(first_agg + 1),
        cast(field(first_agg + 2), DataType::Float64),
    );
    let abs = when(c.clone().lt(lit(0.0)), -c.clone()).otherwise(c.clone())?;
    let mut cell_keys: Vec<Expr> = (0..k).map(field).collect();
    if k > 0 {
        cell_keys.push(field(k + 1));
    }
    let per_cell = Aggregate::try_new(
        Arc::new(LogicalPlan::Aggregate(per_unit)),
        cell_keys,
        vec![
            count_all().alias("units"),
            sum(rows).alias("rows"),
            sum(when(n.gt(lit(0i64)), lit(1i64)).otherwise(lit(0i64))?).alias("nonnull_units"),
            sum(when(c.clone().not_eq(lit(0.0)), lit(1i64)).otherwise(lit(0i64))?)
                .alias("nonzero_units"),
            max(abs.clone()).alias("top1"),
            nth_value(abs.clone(), 2, vec![abs.sort(false, false)]).alias("top2"),
            min(c).alias("min_contribution"),
        ],
    )?;
    Ok(LogicalPlan::Aggregate(per_cell))
}
