//! Plans that cannot fail on the data: whether a run succeeds must not depend on who is in it.
//!
//! A division by zero or a cast that fails stops a query only when some row reaches it, so
//! `1 / (naturalisation_date - 2003)` in a filter, or a ratio whose base is an empty group,
//! tells by the run's outcome whether anybody has a combination. Before the policy judges a
//! plan, every divisor `b` becomes `nullif(b, 0)` (a NULL, not an error) and every cast a
//! `TRY_CAST` (a NULL for a value that does not convert). The names of the plan's columns are
//! kept. Functions that can fail on their arguments are limited by the policy instead
//! (`policy.toml`, and [`crate::policy`]'s check of literal arguments).

use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::functions::core::expr_fn::nullif;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, LogicalPlan, Operator, TryCast, lit};

/// `plan` with every division and modulo by zero a NULL and every cast a `TRY_CAST`.
pub(crate) fn total(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let names = NamePreserver::new(&node);
        node.map_expressions(|e| {
            let saved = names.save(&e);
            Ok(e.transform_up(total_expr)?
                .update_data(|e| saved.restore(e)))
        })
    })
    .map(|t| t.data)
}

fn total_expr(e: Expr) -> Result<Transformed<Expr>> {
    Ok(match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: op @ (Operator::Divide | Operator::Modulo),
            right,
        }) if safe_divisor(&right).is_none() => Transformed::yes(Expr::BinaryExpr(BinaryExpr {
            left,
            op,
            right: Box::new(nullif(*right, lit(0))),
        })),
        Expr::Cast(Cast { expr, field }) => {
            Transformed::yes(Expr::TryCast(TryCast { expr, field }))
        }
        e => Transformed::no(e),
    })
}

/// The divisor inside `nullif(divisor, 0)`, the form every divisor has in a total plan.
pub(crate) fn safe_divisor(e: &Expr) -> Option<&Expr> {
    match e {
        Expr::ScalarFunction(f) if f.func.name() == "nullif" => match f.args.as_slice() {
            [divisor, Expr::Literal(ScalarValue::Int32(Some(0)), _)] => Some(divisor),
            _ => None,
        },
        _ => None,
    }
}
