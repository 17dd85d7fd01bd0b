//! The researcher policy, enforced on DataFusion's analyzed logical plan (never on SQL text).
//!
//! An output is accepted only when its result is one aggregation over `person_years`, grouped by
//! the dimensions, whose result columns are the dimensions and one measure. The rules, and why:
//!
//! - Every node must be a projection, filter, join, aggregation, alias, `DISTINCT` or a scan of
//!   `person_years`. Anything else (DDL, DML, `COPY`, statements, `VALUES`, `SELECT` without
//!   `FROM`, other tables, table functions, `UNION`, `UNNEST`, recursive queries) is refused.
//! - `LIMIT` is refused anywhere: with an `ORDER BY` it picks out single persons.
//! - `ORDER BY` is allowed only above the final aggregation, where it reorders cells. A sort
//!   inside a subquery is refused (it only matters together with a limit or a window, and the
//!   simple rule is easy to check and to explain). DataFusion's planner already drops an
//!   `ORDER BY` without `LIMIT` in a derived table, so such a query has no sort to refuse.
//! - Window functions are refused: they return values per row.
//! - Functions must be on the allow-list in `policy.toml`.
//! - Subquery expressions (`IN (SELECT ..)`, `EXISTS`, scalar subqueries) are refused; join on
//!   the privacy unit instead.
//! - The privacy unit column may be used only as itself: selected, grouped by in a subquery,
//!   counted (`count(DISTINCT pseudonym)`), or matched in a join (`a.pseudonym = b.pseudonym`).
//!   Any expression computed from it (`pseudonym + 0`, `CAST`, `CASE`, a filter on it) is
//!   refused, and so is a value derived from it (`min(pseudonym)`) in the result.
//! - A per-person pre-aggregation (a subquery grouped by the unit) is allowed when the outer
//!   query aggregates its values across persons. Its per-person values may not become
//!   dimensions (`GROUP BY n_years` where `n_years` counts each person's rows): a dimension must
//!   describe the rows, not a derived per-person statistic.
//! - Filters above the final aggregation (`HAVING`) are refused: kluis publishes margins over all
//!   cells, and a table with cells left out could be subtracted from its margins.
//! - `GROUPING SETS`, `ROLLUP` and `CUBE` are refused: kluis adds all margins itself.
//! - Every `GROUP BY` key must be a result column; every other result column is the measure.
//!   A second measure must be its own output, so that each one is checked.
//! - The unit column must reach the final aggregation (kluis carries it through projections
//!   itself), so that the units behind every cell can be counted.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, LazyLock};

use arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Distinct, Expr, JoinType, LogicalPlan, Operator, Projection,
    SubqueryAlias,
};
use serde::Deserialize;

use crate::job::Output;
use crate::measure::Shape;
use kluis_sdc::Statistic;

/// Why an output was refused. Each message names the construct.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error(
        "the result is not an aggregation grouped by dimensions: {found} (write SELECT dims, agg(..) FROM person_years GROUP BY dims)"
    )]
    NotAnAggregation { found: String },
    #[error(
        "the privacy unit `{unit}` is used in an expression ({expr}); it may only be selected, grouped by in a subquery, counted, or matched in a join"
    )]
    UnitInExpression { unit: String, expr: String },
    #[error("result column `{column}` is the privacy unit or derived from it")]
    UnitInOutput { column: String },
    #[error(
        "GROUP BY key `{key}` is the privacy unit or derived from it; dimensions must describe groups of persons"
    )]
    UnitAsDimension { key: String },
    #[error(
        "GROUP BY key `{key}` is a per-person value computed by a subquery grouped by the privacy unit; dimensions must come from the rows of person_years"
    )]
    PerUnitDimension { key: String },
    #[error("LIMIT is not allowed (it can isolate single persons)")]
    Limit,
    #[error("ORDER BY is allowed only on the final result, not inside a subquery")]
    SortInSubquery,
    #[error("window functions are not allowed (they return per-row values): {expr}")]
    Window { expr: String },
    #[error("only the table person_years may be read, not `{table}`")]
    ForeignTable { table: String },
    #[error("rows not read from person_years are not allowed: {what}")]
    ConstantRows { what: String },
    #[error("only a SELECT is allowed, not {what}")]
    NotAQuery { what: String },
    #[error("{what} is not allowed")]
    Construct { what: String },
    #[error("{kind} `{name}` is not on the allow-list (allowed: {allowed})")]
    FunctionNotAllowed {
        kind: &'static str,
        name: String,
        allowed: String,
    },
    #[error("`{call}`: {accepted}, so that it cannot fail on some rows and not on others")]
    FunctionArguments {
        call: String,
        accepted: &'static str,
    },
    #[error(
        "a filter on aggregated values (HAVING) is not allowed: kluis publishes margins over all cells ({expr})"
    )]
    Having { expr: String },
    #[error(
        "GROUPING SETS, ROLLUP and CUBE are not allowed: kluis adds the margins itself; use a plain GROUP BY"
    )]
    GroupingSets,
    #[error(
        "subqueries in expressions (IN/EXISTS/scalar subqueries) are not allowed ({expr}); join person_years on the privacy unit instead"
    )]
    SubqueryExpression { expr: String },
    #[error("a join must match rows of the same person: add ON a.{unit} = b.{unit}")]
    JoinNotOnUnit { unit: String },
    #[error(
        "the privacy unit `{unit}` does not reach the final aggregation ({detail}); kluis needs it to count the persons behind each cell"
    )]
    UnitLost { unit: String, detail: String },
    #[error("the table person_years has no column `{unit}` to use as privacy unit")]
    NoUnitColumn { unit: String },
    #[error(
        "GROUP BY key `{key}` is not a result column; select it so that the table shows its cells"
    )]
    HiddenGroupKey { key: String },
    #[error(
        "job.toml lists dimensions {declared:?}, but the GROUP BY keys in the result are {found:?}"
    )]
    DimensionsMismatch {
        declared: Vec<String>,
        found: Vec<String>,
    },
    #[error(
        "result column `{column}` is neither a GROUP BY key nor the measure `{measure}`; put a second measure in its own output"
    )]
    ExtraColumn { column: String, measure: String },
    #[error(
        "job.toml names measure `{measure}`, which is not a non-dimension result column (found: {found:?})"
    )]
    NoSuchMeasure { measure: String, found: Vec<String> },
    #[error("the result has no measure column (an aggregate such as count(*))")]
    NoMeasure,
    #[error(
        "the result has several measure columns {found:?}; name one with `measure` in job.toml and put the others in their own outputs"
    )]
    SeveralMeasures { found: Vec<String> },
    #[error(
        "measure `{measure}` is {found}, which kluis cannot count the persons of; accepted: {accepted}"
    )]
    UnsupportedMeasure {
        measure: String,
        found: String,
        accepted: &'static str,
    },
    #[error(
        "measure `{measure}` is declared statistic `{statistic}` but computes {found}; a {statistic} is {expected}"
    )]
    StatisticMismatch {
        measure: String,
        statistic: Statistic,
        found: String,
        expected: &'static str,
    },
    #[error("measure `{measure}` has type {data_type}; a measure must be numeric")]
    MeasureNotNumeric { measure: String, data_type: String },
    #[error("{count} dimensions; at most {max} are allowed (kluis computes all 2^n margins)")]
    TooManyDimensions { count: usize, max: usize },
}

/// Most dimensions an output may have (margins grow as 2^n).
pub const MAX_DIMENSIONS: usize = 6;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowList {
    aggregates: Vec<String>,
    scalars: Vec<String>,
}

static ALLOW: LazyLock<(HashSet<String>, HashSet<String>)> = LazyLock::new(|| {
    let list: AllowList =
        toml::from_str(include_str!("../policy.toml")).expect("policy.toml is valid");
    (
        list.aggregates.into_iter().collect(),
        list.scalars.into_iter().collect(),
    )
});

fn allowed_list(set: &HashSet<String>) -> String {
    let mut v: Vec<&str> = set.iter().map(String::as_str).collect();
    v.sort_unstable();
    v.join(", ")
}

/// How a column relates to the privacy unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Taint {
    Clean,
    /// A value computed per person by an aggregation grouped by the unit.
    PerUnit,
    /// A value derived from the unit itself (`min(pseudonym)`).
    Identity,
    /// The unit column itself.
    Unit,
}

impl Taint {
    fn identifying(self) -> bool {
        self >= Taint::Identity
    }
}

/// Which aggregate of the final aggregation the measure is, and the result layout.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    /// The analyzed researcher plan, run as it is for the result table.
    pub plan: LogicalPlan,
    /// Plan nodes from the root down to the final aggregation (exclusive).
    pub chain: Vec<LogicalPlan>,
    pub aggregate: Aggregate,
    /// The final aggregation's input, with the unit column carried through.
    pub unit_input: LogicalPlan,
    pub unit_column: Column,
    /// Result column index and GROUP BY index of each dimension, in result order.
    pub dims: Vec<(usize, usize)>,
    pub dim_names: Vec<String>,
    pub measure_index: usize,
    pub measure_name: String,
    /// The aggregates the measure is made of.
    pub shape: Shape,
    /// Whether the measure column is its one aggregate (or `avg`) itself, not an expression of
    /// it: the unit passes then give its values.
    pub measure_bare: bool,
}

pub(crate) fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        e => e,
    }
}

fn bare_column(e: &Expr) -> Option<&Column> {
    match strip_alias(e) {
        Expr::Column(c) => Some(c),
        _ => None,
    }
}

fn describe(plan: &LogicalPlan) -> String {
    plan.display().to_string()
}

/// Checks node kinds, tables and expressions everywhere in the plan.
fn check_nodes(plan: &LogicalPlan, person_years: &Arc<dyn TableProvider>) -> Result<(), Violation> {
    let mut violation = None;
    let _ = plan.apply_with_subqueries(|node| {
        let found = match node {
            LogicalPlan::Ddl(d) => Some(Violation::NotAQuery {
                what: format!("DDL ({})", d.name()),
            }),
            LogicalPlan::Dml(d) => Some(Violation::NotAQuery {
                what: format!("DML ({})", d.op),
            }),
            LogicalPlan::Copy(_) => Some(Violation::NotAQuery {
                what: "COPY".into(),
            }),
            LogicalPlan::Statement(s) => Some(Violation::NotAQuery {
                what: format!("a statement ({})", s.name()),
            }),
            LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => Some(Violation::NotAQuery {
                what: "EXPLAIN".into(),
            }),
            LogicalPlan::DescribeTable(_) => Some(Violation::NotAQuery {
                what: "DESCRIBE".into(),
            }),
            LogicalPlan::Extension(e) => Some(Violation::Construct {
                what: format!("plan node {}", e.node.name()),
            }),
            LogicalPlan::Values(_) => Some(Violation::ConstantRows {
                what: "VALUES".into(),
            }),
            LogicalPlan::EmptyRelation(_) => Some(Violation::ConstantRows {
                what: "a SELECT without FROM".into(),
            }),
            LogicalPlan::RecursiveQuery(_) => Some(Violation::Construct {
                what: "WITH RECURSIVE".into(),
            }),
            LogicalPlan::Unnest(_) => Some(Violation::Construct {
                what: "UNNEST".into(),
            }),
            LogicalPlan::Union(_) => Some(Violation::Construct {
                what: "UNION".into(),
            }),
            LogicalPlan::Limit(_) => Some(Violation::Limit),
            LogicalPlan::Window(w) => Some(Violation::Window {
                expr: w
                    .window_expr
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
            LogicalPlan::Distinct(Distinct::On(_)) => Some(Violation::Construct {
                what: "DISTINCT ON".into(),
            }),
            LogicalPlan::TableScan(scan) => {
                let same = source_as_provider(&scan.source)
                    .is_ok_and(|p| std::ptr::addr_eq(Arc::as_ptr(&p), Arc::as_ptr(person_years)));
                (!same).then(|| Violation::ForeignTable {
                    table: scan.table_name.to_string(),
                })
            }
            _ => None,
        };
        if let Some(v) = found {
            violation = Some(v);
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Some(v) = check_expr(e) {
                    violation = Some(v);
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    violation.map_or(Ok(()), Err)
}

/// Refuses anything but a query before the plan is analyzed: statements, DDL, DML, COPY.
pub(crate) fn check_statement(
    raw: &LogicalPlan,
    person_years: &Arc<dyn TableProvider>,
) -> Result<(), Violation> {
    check_nodes(raw, person_years)?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(raw)
        .map_err(|e| Violation::NotAQuery {
            what: e.find_root().to_string(),
        })
}

fn check_expr(e: &Expr) -> Option<Violation> {
    let (aggregates, scalars) = &*ALLOW;
    match e {
        Expr::ScalarFunction(f) if !scalars.contains(f.func.name()) => {
            Some(Violation::FunctionNotAllowed {
                kind: "scalar function",
                name: f.func.name().to_string(),
                allowed: allowed_list(scalars),
            })
        }
        Expr::ScalarFunction(f) => {
            failing_arguments(f.func.name(), &f.args).map(|accepted| Violation::FunctionArguments {
                call: e.to_string(),
                accepted,
            })
        }
        Expr::AggregateFunction(f) if !aggregates.contains(f.func.name()) => {
            Some(Violation::FunctionNotAllowed {
                kind: "aggregate function",
                name: f.func.name().to_string(),
                allowed: allowed_list(aggregates),
            })
        }
        Expr::WindowFunction(_) => Some(Violation::Window {
            expr: e.to_string(),
        }),
        Expr::ScalarSubquery(_)
        | Expr::Exists(_)
        | Expr::InSubquery(_)
        | Expr::SetComparison(_)
        | Expr::OuterReferenceColumn(..) => Some(Violation::SubqueryExpression {
            expr: e.to_string(),
        }),
        Expr::GroupingSet(_) => Some(Violation::GroupingSets),
        Expr::Placeholder(_) | Expr::ScalarVariable(..) => Some(Violation::Construct {
            what: format!("parameter or variable {e}"),
        }),
        Expr::Unnest(_) => Some(Violation::Construct {
            what: "UNNEST".into(),
        }),
        Expr::HigherOrderFunction(_) | Expr::Lambda(_) | Expr::LambdaVariable(_) => {
            Some(Violation::Construct {
                what: format!("lambda expression {e}"),
            })
        }
        _ => None,
    }
}

/// Parts of a date `date_part` accepts (any other is an error, raised only on rows that reach it).
const DATE_PARTS: &[&str] = &["year", "quarter", "month", "week", "day", "doy", "dow"];

/// For an allowed function that fails on some arguments, what it accepts, when `args` are not
/// that: the failure would be raised by the rows that reach the call (inside a `CASE`, only
/// those it picks), and the run's outcome would tell whether there are any.
fn failing_arguments(name: &str, args: &[Expr]) -> Option<&'static str> {
    fn literal(e: &Expr) -> Option<&ScalarValue> {
        match e {
            Expr::Literal(v, _) => Some(v),
            Expr::Cast(c) => literal(&c.expr),
            Expr::TryCast(c) => literal(&c.expr),
            _ => None,
        }
    }
    let non_negative = |e: &Expr| {
        literal(e)
            .and_then(|v| v.cast_to(&DataType::Int64).ok())
            .is_some_and(|v| matches!(v, ScalarValue::Int64(Some(n)) if n >= 0))
    };
    match name {
        // substr(text, start[, count]): a negative count is an error.
        "substr" if !args.iter().skip(2).all(non_negative) => {
            Some("substr's length must be a constant of at least 0")
        }
        "date_part"
            if !args.first().and_then(literal).is_some_and(|v| {
                matches!(v, ScalarValue::Utf8(Some(p)) | ScalarValue::Utf8View(Some(p)) | ScalarValue::LargeUtf8(Some(p)) if DATE_PARTS.contains(&p.to_lowercase().as_str()))
            }) =>
        {
            Some("date_part's part must be one of 'year', 'quarter', 'month', 'week', 'day', 'doy', 'dow'")
        }
        _ => None,
    }
}

/// Lineage of the unit through a plan: per output field, how it relates to the unit.
struct Lineage<'a> {
    unit: &'a str,
}

impl Lineage<'_> {
    fn taint_of(&self, c: &Column, schema: &DFSchema, taints: &[Taint]) -> Taint {
        schema
            .index_of_column(c)
            .map_or(Taint::Clean, |i| taints[i])
    }

    /// Refuses any non-bare use of an identifying column inside `e`.
    fn no_identity_inside(
        &self,
        e: &Expr,
        schema: &DFSchema,
        taints: &[Taint],
    ) -> Result<(), Violation> {
        let mut bad = false;
        let _ = e.apply(|sub| {
            if let Expr::Column(c) = sub
                && self.taint_of(c, schema, taints).identifying()
            {
                bad = true;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        if bad {
            return Err(Violation::UnitInExpression {
                unit: self.unit.to_string(),
                expr: e.to_string(),
            });
        }
        Ok(())
    }

    /// Taint of a row-wise expression (projection or group key).
    fn row_expr(&self, e: &Expr, schema: &DFSchema, taints: &[Taint]) -> Result<Taint, Violation> {
        if let Some(c) = bare_column(e) {
            return Ok(self.taint_of(c, schema, taints));
        }
        self.no_identity_inside(e, schema, taints)?;
        let mut t = Taint::Clean;
        let _ = e.apply(|sub| {
            if let Expr::Column(c) = sub {
                t = t.max(self.taint_of(c, schema, taints));
            }
            Ok(TreeNodeRecursion::Continue)
        });
        Ok(t)
    }

    /// Taint of an aggregate expression; the unit may only be a bare argument.
    fn agg_expr(&self, e: &Expr, schema: &DFSchema, taints: &[Taint]) -> Result<Taint, Violation> {
        let Expr::AggregateFunction(f) = strip_alias(e) else {
            return self.row_expr(e, schema, taints);
        };
        let mut t = Taint::Clean;
        for arg in &f.params.args {
            let at = match bare_column(arg) {
                Some(c) => self.taint_of(c, schema, taints),
                None => self.row_expr(arg, schema, taints)?,
            };
            t = t.max(at);
        }
        if let Some(filter) = &f.params.filter {
            self.no_identity_inside(filter, schema, taints)?;
        }
        for s in &f.params.order_by {
            self.no_identity_inside(&s.expr, schema, taints)?;
        }
        Ok(match (f.func.name(), t) {
            // Counting persons or rows reveals no one's value.
            ("count", _) => Taint::Clean,
            (_, t) if t.identifying() => Taint::Identity,
            // An aggregate across persons of per-person values is an ordinary statistic.
            _ => Taint::Clean,
        })
    }

    /// Per output field of `plan`, its taint; refuses constructs not allowed below the final
    /// aggregation.
    fn of(&self, plan: &LogicalPlan) -> Result<Vec<Taint>, Violation> {
        match plan {
            LogicalPlan::TableScan(scan) => Ok(scan
                .projected_schema
                .fields()
                .iter()
                .map(|f| {
                    if f.name() == self.unit {
                        Taint::Unit
                    } else {
                        Taint::Clean
                    }
                })
                .collect()),
            LogicalPlan::Projection(p) => {
                let t = self.of(&p.input)?;
                p.expr
                    .iter()
                    .map(|e| self.row_expr(e, p.input.schema(), &t))
                    .collect()
            }
            LogicalPlan::Filter(f) => {
                let t = self.of(&f.input)?;
                self.no_identity_inside(&f.predicate, f.input.schema(), &t)?;
                Ok(t)
            }
            LogicalPlan::SubqueryAlias(a) => self.of(&a.input),
            LogicalPlan::Repartition(r) => self.of(&r.input),
            LogicalPlan::Distinct(Distinct::All(input)) => self.of(input),
            LogicalPlan::Sort(_) => Err(Violation::SortInSubquery),
            LogicalPlan::Aggregate(a) => {
                let t = self.of(&a.input)?;
                let schema = a.input.schema();
                let mut out = Vec::with_capacity(a.schema.fields().len());
                for g in &a.group_expr {
                    out.push(self.row_expr(g, schema, &t)?);
                }
                let per_unit = out.iter().any(|g| g.identifying());
                for e in &a.aggr_expr {
                    let x = self.agg_expr(e, schema, &t)?;
                    out.push(if per_unit && x == Taint::Clean {
                        Taint::PerUnit
                    } else {
                        x
                    });
                }
                Ok(out)
            }
            LogicalPlan::Join(j) => {
                let l = self.of(&j.left)?;
                let r = self.of(&j.right)?;
                let (ls, rs) = (j.left.schema(), j.right.schema());
                let is_unit_pair = |a: &Expr, b: &Expr| match (bare_column(a), bare_column(b)) {
                    (Some(a), Some(b)) => {
                        let ta = ls.index_of_column(a).ok().map(|i| l[i]);
                        let tb = rs.index_of_column(b).ok().map(|i| r[i]);
                        let ta2 = ls.index_of_column(b).ok().map(|i| l[i]);
                        let tb2 = rs.index_of_column(a).ok().map(|i| r[i]);
                        (ta == Some(Taint::Unit) && tb == Some(Taint::Unit))
                            || (ta2 == Some(Taint::Unit) && tb2 == Some(Taint::Unit))
                    }
                    _ => false,
                };
                let mut on_unit = j.on.iter().any(|(a, b)| is_unit_pair(a, b));
                let joined = ls.join(rs).map_err(|e| Violation::Construct {
                    what: format!("join schema: {e}"),
                })?;
                let both: Vec<Taint> = l.iter().chain(r.iter()).copied().collect();
                if let Some(filter) = &j.filter {
                    for conj in split_conjunction(filter) {
                        if let Expr::BinaryExpr(BinaryExpr {
                            left,
                            op: Operator::Eq,
                            right,
                        }) = conj
                            && is_unit_pair(left, right)
                        {
                            on_unit = true;
                            continue;
                        }
                        self.no_identity_inside(conj, &joined, &both)?;
                    }
                }
                if !on_unit {
                    return Err(Violation::JoinNotOnUnit {
                        unit: self.unit.to_string(),
                    });
                }
                Ok(match j.join_type {
                    JoinType::LeftSemi | JoinType::LeftAnti => l,
                    JoinType::RightSemi | JoinType::RightAnti => r,
                    JoinType::LeftMark => l.into_iter().chain([Taint::Clean]).collect(),
                    JoinType::RightMark => r.into_iter().chain([Taint::Clean]).collect(),
                    _ => both,
                })
            }
            other => Err(Violation::Construct {
                what: describe(other),
            }),
        }
    }
}

fn split_conjunction(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut v = split_conjunction(left);
            v.extend(split_conjunction(right));
            v
        }
        e => vec![e],
    }
}

/// Carries the unit column up to the output of `plan`: returns the rewritten plan and the index
/// of the unit field in its output.
fn carry_unit(
    plan: &LogicalPlan,
    lineage: &Lineage,
) -> Result<(LogicalPlan, Option<usize>), Violation> {
    let rebuild = |plan: &LogicalPlan, inputs: Vec<LogicalPlan>| {
        plan.with_new_exprs(plan.expressions(), inputs)
            .map_err(|e| Violation::Construct {
                what: format!("rewriting {}: {e}", describe(plan)),
            })
    };
    match plan {
        LogicalPlan::TableScan(scan) => Ok((
            plan.clone(),
            scan.projected_schema
                .fields()
                .iter()
                .position(|f| f.name() == lineage.unit),
        )),
        LogicalPlan::Projection(p) => {
            let (input, idx) = carry_unit(&p.input, lineage)?;
            let Some(i) = idx else {
                return Ok((rebuild(plan, vec![input])?, None));
            };
            let (q, f) = input.schema().qualified_field(i);
            let unit_col = Column::from((q, f));
            let mut exprs = p.expr.clone();
            let pos = exprs.iter().position(|e| {
                bare_column(e)
                    .is_some_and(|c| input.schema().index_of_column(c).is_ok_and(|j| j == i))
            });
            let pos = match pos {
                Some(pos) => pos,
                None => {
                    exprs.push(Expr::Column(unit_col));
                    exprs.len() - 1
                }
            };
            let proj =
                Projection::try_new(exprs, Arc::new(input)).map_err(|e| Violation::Construct {
                    what: format!("carrying the unit through a projection: {e}"),
                })?;
            Ok((LogicalPlan::Projection(proj), Some(pos)))
        }
        LogicalPlan::Filter(_) | LogicalPlan::Repartition(_) | LogicalPlan::SubqueryAlias(_) => {
            let (input, idx) = carry_unit(plan.inputs()[0], lineage)?;
            let new = match plan {
                LogicalPlan::SubqueryAlias(a) => LogicalPlan::SubqueryAlias(
                    SubqueryAlias::try_new(Arc::new(input), a.alias.clone()).map_err(|e| {
                        Violation::Construct {
                            what: format!("carrying the unit: {e}"),
                        }
                    })?,
                ),
                _ => rebuild(plan, vec![input])?,
            };
            Ok((new, idx))
        }
        LogicalPlan::Distinct(Distinct::All(input)) => {
            let before = lineage.of(input)?;
            if !before.contains(&Taint::Unit) {
                return Err(Violation::UnitLost {
                    unit: lineage.unit.to_string(),
                    detail: "a SELECT DISTINCT drops it".into(),
                });
            }
            let (input, idx) = carry_unit(input, lineage)?;
            Ok((LogicalPlan::Distinct(Distinct::All(Arc::new(input))), idx))
        }
        LogicalPlan::Aggregate(a) => {
            let (input, idx) = carry_unit(&a.input, lineage)?;
            let pos = idx.and_then(|i| {
                a.group_expr.iter().position(|g| {
                    bare_column(g)
                        .is_some_and(|c| input.schema().index_of_column(c).is_ok_and(|j| j == i))
                })
            });
            if pos.is_none() {
                return Err(Violation::UnitLost {
                    unit: lineage.unit.to_string(),
                    detail: "a subquery aggregates without GROUP BY it".into(),
                });
            }
            Ok((rebuild(plan, vec![input])?, pos))
        }
        LogicalPlan::Join(j) => {
            let (left, li) = carry_unit(&j.left, lineage)?;
            let (right, ri) = carry_unit(&j.right, lineage)?;
            let left_len = left.schema().fields().len();
            let idx = match j.join_type {
                JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => ri,
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => li,
                _ => li.or(ri.map(|r| r + left_len)),
            };
            Ok((rebuild(plan, vec![left, right])?, idx))
        }
        other => Err(Violation::Construct {
            what: describe(other),
        }),
    }
}

fn is_numeric(t: &DataType) -> bool {
    t.is_numeric() || matches!(t, DataType::Null)
}

/// Checks an analyzed plan against the policy; returns what the run needs.
pub(crate) fn check(
    plan: LogicalPlan,
    output: &Output,
    person_years: &Arc<dyn TableProvider>,
) -> Result<Accepted, Violation> {
    if person_years.schema().field_with_name(&output.unit).is_err() {
        return Err(Violation::NoUnitColumn {
            unit: output.unit.clone(),
        });
    }
    check_nodes(&plan, person_years)?;

    // The chain of nodes above the final aggregation.
    let mut chain = Vec::new();
    let mut node = &plan;
    let aggregate = loop {
        match node {
            LogicalPlan::Aggregate(a) => break a,
            LogicalPlan::Sort(_) | LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => {
                chain.push(node.clone());
                node = node.inputs()[0];
            }
            LogicalPlan::Filter(f) => {
                let mut below = &*f.input;
                while let LogicalPlan::Projection(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::Sort(_) = below
                {
                    below = below.inputs()[0];
                }
                return Err(if matches!(below, LogicalPlan::Aggregate(_)) {
                    Violation::Having {
                        expr: f.predicate.to_string(),
                    }
                } else {
                    Violation::NotAnAggregation {
                        found: "rows of person_years are returned as they are".into(),
                    }
                });
            }
            LogicalPlan::Distinct(_) => {
                return Err(Violation::NotAnAggregation {
                    found: "SELECT DISTINCT returns rows, not aggregated values".into(),
                });
            }
            LogicalPlan::TableScan(_) | LogicalPlan::Join(_) | LogicalPlan::Repartition(_) => {
                return Err(Violation::NotAnAggregation {
                    found: "rows of person_years are returned as they are".into(),
                });
            }
            other => {
                return Err(Violation::Construct {
                    what: describe(other),
                });
            }
        }
    };
    let lineage = Lineage { unit: &output.unit };
    let input_taints = lineage.of(&aggregate.input)?;
    let in_schema = aggregate.input.schema();
    let k = aggregate.group_expr.len();
    let mut taints = Vec::with_capacity(aggregate.schema.fields().len());
    for g in &aggregate.group_expr {
        let t = lineage.row_expr(g, in_schema, &input_taints)?;
        match t {
            Taint::Unit | Taint::Identity => {
                return Err(Violation::UnitAsDimension { key: g.to_string() });
            }
            Taint::PerUnit => return Err(Violation::PerUnitDimension { key: g.to_string() }),
            Taint::Clean => taints.push(t),
        }
    }
    for e in &aggregate.aggr_expr {
        taints.push(lineage.agg_expr(e, in_schema, &input_taints)?);
    }
    if k > MAX_DIMENSIONS {
        return Err(Violation::TooManyDimensions {
            count: k,
            max: MAX_DIMENSIONS,
        });
    }

    // Follow each field from the aggregation up to the result: its taint, whether it is a bare
    // GROUP BY key, and which aggregation fields it is computed from.
    #[derive(Clone)]
    struct Origin {
        taint: Taint,
        group: Option<usize>,
        refs: BTreeSet<usize>,
        /// The aggregation field it is, unchanged (through aliases only).
        bare: Option<usize>,
    }
    let mut origins: Vec<Origin> = (0..aggregate.schema.fields().len())
        .map(|i| Origin {
            taint: taints[i],
            group: (i < k).then_some(i),
            refs: BTreeSet::from([i]),
            bare: Some(i),
        })
        .collect();
    let mut below_schema = aggregate.schema.clone();
    for node in chain.iter().rev() {
        if let LogicalPlan::Projection(p) = node {
            let mut next = Vec::with_capacity(p.expr.len());
            for e in &p.expr {
                if let Some(c) = bare_column(e) {
                    let i = below_schema
                        .index_of_column(c)
                        .map_err(|_| Violation::Construct {
                            what: format!("unresolved column {c} above the aggregation"),
                        })?;
                    next.push(origins[i].clone());
                    continue;
                }
                let before: Vec<Taint> = origins.iter().map(|o| o.taint).collect();
                lineage.no_identity_inside(e, &below_schema, &before)?;
                let mut o = Origin {
                    taint: Taint::Clean,
                    group: None,
                    refs: BTreeSet::new(),
                    bare: None,
                };
                let _ = e.apply(|sub| {
                    if let Expr::Column(c) = sub
                        && let Ok(i) = below_schema.index_of_column(c)
                    {
                        o.taint = o.taint.max(origins[i].taint);
                        o.refs.extend(origins[i].refs.iter().copied());
                    }
                    Ok(TreeNodeRecursion::Continue)
                });
                next.push(o);
            }
            origins = next;
        }
        below_schema = node.schema().clone();
    }
    let result_schema = plan.schema();
    let names: Vec<String> = result_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    for (name, o) in names.iter().zip(&origins) {
        if o.taint != Taint::Clean {
            return Err(Violation::UnitInOutput {
                column: name.clone(),
            });
        }
    }

    let mut dims = Vec::new();
    let mut others = Vec::new();
    let mut shown = BTreeSet::new();
    for (i, o) in origins.iter().enumerate() {
        match o.group {
            Some(g) if shown.insert(g) => dims.push((i, g)),
            _ => others.push(i),
        }
    }
    if let Some(g) = (0..k).find(|g| !shown.contains(g)) {
        return Err(Violation::HiddenGroupKey {
            key: aggregate.group_expr[g].to_string(),
        });
    }
    let dim_names: Vec<String> = dims.iter().map(|&(i, _)| names[i].clone()).collect();
    if let Some(declared) = &output.dimensions {
        let a: BTreeSet<&String> = declared.iter().collect();
        let b: BTreeSet<&String> = dim_names.iter().collect();
        if a != b {
            return Err(Violation::DimensionsMismatch {
                declared: declared.clone(),
                found: dim_names,
            });
        }
    }
    let other_names: Vec<String> = others.iter().map(|&i| names[i].clone()).collect();
    let measure_index =
        match &output.measure {
            Some(m) => *others.iter().find(|&&i| &names[i] == m).ok_or_else(|| {
                Violation::NoSuchMeasure {
                    measure: m.clone(),
                    found: other_names.clone(),
                }
            })?,
            None => match others.as_slice() {
                [] => return Err(Violation::NoMeasure),
                [i] => *i,
                _ => return Err(Violation::SeveralMeasures { found: other_names }),
            },
        };
    let measure_name = names[measure_index].clone();
    if let Some(&extra) = others.iter().find(|&&i| i != measure_index) {
        return Err(Violation::ExtraColumn {
            column: names[extra].clone(),
            measure: measure_name,
        });
    }
    let data_type = result_schema.field(measure_index).data_type();
    if !is_numeric(data_type) {
        return Err(Violation::MeasureNotNumeric {
            measure: measure_name,
            data_type: data_type.to_string(),
        });
    }

    let shape = crate::measure::shape_of(
        aggregate,
        &chain,
        measure_index,
        &measure_name,
        &output.unit,
        output.statistic,
    )?;
    // The measure column is the one aggregate itself: the unit pass gives its values.
    let bare_aggregate = match &shape {
        Shape::Single { term, scale } => (*scale == 1.0).then_some(term),
        Shape::Ratio { avg, .. } => avg.as_ref(),
    };
    let measure_bare = bare_aggregate.is_some_and(|term| {
        origins[measure_index].bare.is_some_and(|i| {
            i >= k && matches!(strip_alias(&aggregate.aggr_expr[i - k]), Expr::AggregateFunction(f) if f == term)
        })
    });
    let (unit_input, unit_idx) = carry_unit(&aggregate.input, &lineage)?;
    let unit_idx = unit_idx.ok_or_else(|| Violation::UnitLost {
        unit: output.unit.clone(),
        detail: "no column of the aggregated rows is the unit".into(),
    })?;
    let (q, f) = unit_input.schema().qualified_field(unit_idx);
    let unit_column = Column::from((q, f));
    let aggregate = aggregate.clone();
    Ok(Accepted {
        plan,
        chain,
        aggregate,
        unit_input,
        unit_column,
        dims,
        dim_names,
        measure_index,
        measure_name,
        shape,
        measure_bare,
    })
}
