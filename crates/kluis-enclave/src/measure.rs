//! What a published value is, worked out from the plan: which aggregates it combines, each with
//! its own argument and filter. Only shapes whose persons kluis can count are accepted (as
//! OpenDP offers only transformations whose effect on privacy is known); everything else is
//! refused with the list below. The declared `statistic` is checked against the shape, not
//! believed.
//!
//! Accepted, each aggregate with any row expression as argument and an optional `FILTER`:
//! - `count(*)`, `count(x)`, `count(DISTINCT pseudonym)`, `sum(x)`, `min(x)`, `max(x)`, alone;
//! - `avg(x)`, which kluis judges as `sum(x) / count(x)`;
//! - a ratio `a / b` of two counts or sums, optionally times a constant (`100.0 * a / b`).
//!
//! A `CAST` around any of these is transparent. Anything else (`count(*) - count(x)`,
//! `count(*) * 0 + sum(x)`, `sum(DISTINCT x)`, a scalar function of an aggregate) is refused:
//! its value could be one person's, and the persons behind it cannot be counted term by term.

use datafusion::common::DFSchema;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, BinaryExpr, Expr, LogicalPlan, Operator};
use datafusion::scalar::ScalarValue;

use crate::policy::{Violation, strip_alias};
use kluis_sdc::Statistic;

/// The accepted shapes, as the refusal lists them.
pub(crate) const ACCEPTED_MEASURES: &str = "count(*), count(x), count(DISTINCT pseudonym), sum(x), min(x), max(x) or avg(x) alone (x any row expression, FILTER allowed, CAST around it allowed), or a ratio a / b of two counts or sums, optionally times a constant";

/// The aggregates a published value is made of.
#[derive(Debug, Clone)]
pub(crate) enum Shape {
    /// One aggregate; `scale` is a constant factor (1 for counts, sums, minima and maxima).
    Single { term: AggregateFunction, scale: f64 },
    /// `numerator / denominator`, perhaps times a constant (an `avg(x)` is `sum(x) / count(x)`).
    Ratio {
        numerator: AggregateFunction,
        denominator: AggregateFunction,
        /// The `avg(x)` it is, unscaled: its value is the numerator's over the denominator's.
        avg: Option<AggregateFunction>,
    },
}

impl Shape {
    /// The aggregates whose contributors are checked: the numerator first.
    pub(crate) fn terms(&self) -> Vec<&AggregateFunction> {
        match self {
            Shape::Single { term, .. } => vec![term],
            Shape::Ratio {
                numerator,
                denominator,
                ..
            } => vec![numerator, denominator],
        }
    }
}

/// A measure expression over the final aggregation's fields.
#[derive(Debug, Clone)]
enum Form {
    Field(usize),
    Constant(f64),
    Product(Box<Form>, Box<Form>),
    Quotient(Box<Form>, Box<Form>),
    Other(String),
}

fn constant(v: &ScalarValue) -> Option<f64> {
    if v.is_null() || !v.data_type().is_numeric() {
        return None;
    }
    v.cast_to(&arrow::datatypes::DataType::Float64)
        .ok()
        .and_then(|v| match v {
            ScalarValue::Float64(Some(f)) => Some(f),
            _ => None,
        })
}

fn form_of(e: &Expr, schema: &DFSchema, below: &[Form]) -> Form {
    match e {
        Expr::Alias(a) => form_of(&a.expr, schema, below),
        Expr::Cast(c) => form_of(&c.expr, schema, below),
        Expr::TryCast(c) => form_of(&c.expr, schema, below),
        Expr::Column(c) => match schema.index_of_column(c) {
            Ok(i) => below[i].clone(),
            Err(_) => Form::Other(e.to_string()),
        },
        Expr::Literal(v, _) => match constant(v) {
            Some(f) => Form::Constant(f),
            None => Form::Other(e.to_string()),
        },
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let right = crate::total::safe_divisor(right).unwrap_or(right);
            let (l, r) = (form_of(left, schema, below), form_of(right, schema, below));
            match op {
                Operator::Multiply => Form::Product(Box::new(l), Box::new(r)),
                Operator::Divide => Form::Quotient(Box::new(l), Box::new(r)),
                _ => Form::Other(e.to_string()),
            }
        }
        _ => Form::Other(e.to_string()),
    }
}

/// A product of aggregation fields with exponents ±1 and a constant, or why it is not one.
fn factors(form: &Form, up: bool, out: &mut Vec<(usize, bool)>, scale: &mut f64) -> bool {
    match form {
        Form::Field(i) => {
            out.push((*i, up));
            true
        }
        Form::Constant(c) if c.is_finite() && *c != 0.0 => {
            *scale = if up { *scale * c } else { *scale / c };
            true
        }
        Form::Product(a, b) => factors(a, up, out, scale) && factors(b, up, out, scale),
        Form::Quotient(a, b) => factors(a, up, out, scale) && factors(b, !up, out, scale),
        _ => false,
    }
}

fn aggregate_at<'a>(aggregate: &'a Aggregate, field: usize) -> Option<&'a AggregateFunction> {
    let k = aggregate.group_expr.len();
    match strip_alias(aggregate.aggr_expr.get(field.checked_sub(k)?)?) {
        Expr::AggregateFunction(f) => Some(f),
        _ => None,
    }
}

fn is_unit(e: Option<&Expr>, unit: &str) -> bool {
    matches!(e, Some(Expr::Column(c)) if c.name == unit)
}

/// `count`, `sum` and the like, with the arguments kluis can count contributors of.
fn check_term(f: &AggregateFunction, unit: &str, measure: &str) -> Result<(), Violation> {
    let name = f.func.name();
    let refuse = |why: &str| Violation::UnsupportedMeasure {
        measure: measure.to_string(),
        found: format!("{} ({why})", Expr::AggregateFunction(f.clone())),
        accepted: ACCEPTED_MEASURES,
    };
    if f.params.distinct && !(name == "count" && is_unit(f.params.args.first(), unit)) {
        return Err(refuse(
            "DISTINCT counts values, not persons; only count(DISTINCT pseudonym) is accepted",
        ));
    }
    if !f.params.order_by.is_empty() {
        return Err(refuse("an ordered aggregate"));
    }
    match name {
        "count" => Ok(()),
        "sum" | "avg" | "min" | "max" => match f.params.args.first() {
            Some(arg) => value_expression(arg, true).map_err(|why| refuse(&why)),
            None => Ok(()),
        },
        _ => Err(refuse("not an aggregate kluis can count persons for")),
    }
}

/// Whether an expression is zero or NULL, the values a filtering `CASE` leaves out.
fn is_zero_or_null(e: &Expr) -> bool {
    match e {
        Expr::Alias(a) => is_zero_or_null(&a.expr),
        Expr::Cast(c) => is_zero_or_null(&c.expr),
        Expr::TryCast(c) => is_zero_or_null(&c.expr),
        Expr::Literal(v, _) => v.is_null() || constant(v) == Some(0.0),
        _ => false,
    }
}

/// The argument of a sum, mean, minimum or maximum: the values of one measure, perhaps
/// filtered. A `CASE` may only pick the rows it counts (one branch with a value, the others 0
/// or NULL), at the top: two valued branches would weigh a group of persons into the sum
/// (`sum(CASE WHEN rare THEN 1.001 ELSE 1 END)` is everyone's count plus a thousandth of the
/// rare group's), where every person contributes and no rule sees the group. For the same
/// reason no function (`coalesce`, `greatest`, `length(concat(..))`, ..) and no truth value
/// turned into a number may be part of the value: columns, constants, arithmetic and casts.
fn value_expression(e: &Expr, top: bool) -> Result<(), String> {
    match e {
        Expr::Alias(a) => value_expression(&a.expr, top),
        // A comparison or test turned into a number is refused below, where it is met.
        Expr::Cast(datafusion::logical_expr::Cast { expr, .. })
        | Expr::TryCast(datafusion::logical_expr::TryCast { expr, .. }) => {
            value_expression(expr, top)
        }
        Expr::Case(case) => {
            if !top {
                return Err(format!(
                    "a CASE inside the value ({e}); a CASE may only pick the rows, at the top"
                ));
            }
            let branches: Vec<&Expr> = case
                .when_then_expr
                .iter()
                .map(|(_, then)| then.as_ref())
                .chain(case.else_expr.as_deref())
                .collect();
            let valued: Vec<&&Expr> = branches.iter().filter(|b| !is_zero_or_null(b)).collect();
            if valued.len() > 1 {
                return Err(format!(
                    "a CASE with {} branches that are not 0 or NULL ({e}); give one branch the value and the others 0 or NULL, or count each group in its own output",
                    valued.len()
                ));
            }
            valued
                .into_iter()
                .try_for_each(|b| value_expression(b, false))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::Plus
            | Operator::Minus
            | Operator::Multiply
            | Operator::Divide
            | Operator::Modulo => {
                value_expression(left, false)?;
                value_expression(crate::total::safe_divisor(right).unwrap_or(right), false)
            }
            _ => Err(format!("a truth value as a number ({e})")),
        },
        Expr::Negative(inner) => value_expression(inner, false),
        Expr::Column(_) | Expr::Literal(..) => Ok(()),
        // No function: `length(concat(CAST(x AS VARCHAR), ''))` is a truth value (is x NULL?)
        // spelled as a number, and text functions can spell any.
        _ => Err(format!(
            "{e} in the value; the value of a sum, mean, minimum or maximum is a measure (columns, constants, arithmetic and casts, no function), perhaps picked by one CASE"
        )),
    }
}

/// `sum(x)` and `count(x)` with `avg(x)`'s argument and filter.
fn split_avg(f: &AggregateFunction) -> (AggregateFunction, AggregateFunction) {
    let mut sum = f.clone();
    sum.func = datafusion::functions_aggregate::sum::sum_udaf();
    let mut count = f.clone();
    count.func = datafusion::functions_aggregate::count::count_udaf();
    (sum, count)
}

/// Works out the shape of the result column `measure_index` of `plan`, whose final aggregation
/// is `aggregate` and whose nodes above it are `chain` (root first), and checks the declared
/// statistic against it.
pub(crate) fn shape_of(
    aggregate: &Aggregate,
    chain: &[LogicalPlan],
    measure_index: usize,
    measure: &str,
    unit: &str,
    statistic: Statistic,
) -> Result<Shape, Violation> {
    let mut forms: Vec<Form> = (0..aggregate.schema.fields().len())
        .map(Form::Field)
        .collect();
    let mut below = aggregate.schema.clone();
    for node in chain.iter().rev() {
        if let LogicalPlan::Projection(p) = node {
            forms = p.expr.iter().map(|e| form_of(e, &below, &forms)).collect();
        }
        below = node.schema().clone();
    }
    let form = &forms[measure_index];
    let refuse = |found: String| Violation::UnsupportedMeasure {
        measure: measure.to_string(),
        found,
        accepted: ACCEPTED_MEASURES,
    };
    let mut parts = Vec::new();
    let mut scale = 1.0;
    if !factors(form, true, &mut parts, &mut scale) {
        let text = match form {
            Form::Other(t) => t.clone(),
            _ => "an expression other than a product or ratio of aggregates".into(),
        };
        return Err(refuse(text));
    }
    let term = |(i, _): (usize, bool)| {
        aggregate_at(aggregate, i)
            .cloned()
            .ok_or_else(|| refuse("a GROUP BY key inside the measure".into()))
    };
    let ups: Vec<_> = parts.iter().copied().filter(|p| p.1).collect();
    let downs: Vec<_> = parts.iter().copied().filter(|p| !p.1).collect();
    let shape = match (ups.as_slice(), downs.as_slice()) {
        ([one], []) => {
            let f = term(*one)?;
            check_term(&f, unit, measure)?;
            if f.func.name() == "avg" {
                let (numerator, denominator) = split_avg(&f);
                Shape::Ratio {
                    numerator,
                    denominator,
                    avg: (scale == 1.0).then_some(f),
                }
            } else {
                Shape::Single { term: f, scale }
            }
        }
        ([a], [b]) => {
            let (numerator, denominator) = (term(*a)?, term(*b)?);
            for f in [&numerator, &denominator] {
                check_term(f, unit, measure)?;
                if !matches!(f.func.name(), "count" | "sum") {
                    return Err(refuse(format!(
                        "a ratio with {} in it; a ratio must be of two counts or sums",
                        Expr::AggregateFunction(f.clone())
                    )));
                }
            }
            Shape::Ratio {
                numerator,
                denominator,
                avg: None,
            }
        }
        _ => {
            return Err(refuse(format!(
                "a product or ratio of {} aggregates",
                parts.len()
            )));
        }
    };
    check_statistic(&shape, statistic, measure)?;
    for term in shape.terms() {
        if let (true, Some(arg)) = (
            matches!(term.func.name(), "sum" | "avg" | "min" | "max"),
            term.params.args.first(),
        ) {
            let mut names = std::collections::HashMap::new();
            referenced(arg, true, &mut names);
            values_below(&aggregate.input, names).map_err(|why| Violation::UnsupportedMeasure {
                measure: measure.to_string(),
                found: format!("{} ({why})", Expr::AggregateFunction(term.clone())),
                accepted: ACCEPTED_MEASURES,
            })?;
        }
    }
    Ok(shape)
}

/// The columns an expression reads, each marked whether it is the whole expression (a bare
/// column, whose definition may then be a filtering CASE).
fn referenced(e: &Expr, top: bool, names: &mut std::collections::HashMap<String, bool>) {
    if let Expr::Column(c) = strip_alias(e) {
        let entry = names.entry(c.name.clone()).or_insert(top);
        *entry = *entry && top;
        return;
    }
    for c in e.column_refs() {
        names.insert(c.name.clone(), false);
    }
}

/// The definitions below the final aggregation of the columns a sum, mean, minimum or maximum
/// reads must be measures too: a subquery's `CASE WHEN rare THEN 1.001 ELSE 1 END AS w` summed
/// outside is the same weighted sum. Columns are followed by name, through every node.
fn values_below(
    plan: &LogicalPlan,
    names: std::collections::HashMap<String, bool>,
) -> Result<(), String> {
    if names.is_empty() {
        return Ok(());
    }
    let mut next = std::collections::HashMap::new();
    match plan {
        LogicalPlan::Projection(p) => {
            for (e, field) in p.expr.iter().zip(p.schema.fields()) {
                if let Some(&top) = names.get(field.name()) {
                    if !matches!(strip_alias(e), Expr::Column(_)) {
                        value_expression(e, top)?;
                    }
                    referenced(e, top, &mut next);
                }
            }
        }
        LogicalPlan::Aggregate(a) => {
            let k = a.group_expr.len();
            for (i, field) in a.schema.fields().iter().enumerate() {
                let Some(&top) = names.get(field.name()) else {
                    continue;
                };
                let e = if i < k {
                    &a.group_expr[i]
                } else {
                    &a.aggr_expr[i - k]
                };
                match strip_alias(e) {
                    // A per-person count is a number of rows: a measure.
                    Expr::AggregateFunction(f) if f.func.name() == "count" => {}
                    Expr::AggregateFunction(f) => {
                        if let Some(arg) = f.params.args.first() {
                            value_expression(arg, top)?;
                            referenced(arg, top, &mut next);
                        }
                    }
                    other => {
                        if !matches!(other, Expr::Column(_)) {
                            value_expression(other, top)?;
                        }
                        referenced(other, top, &mut next);
                    }
                }
            }
        }
        _ => next = names,
    }
    plan.inputs()
        .into_iter()
        .try_for_each(|input| values_below(input, next.clone()))
}

/// The declared statistic must be what the shape computes.
fn check_statistic(shape: &Shape, statistic: Statistic, measure: &str) -> Result<(), Violation> {
    let (found, fits) = match shape {
        Shape::Single { term, scale } => {
            let name = term.func.name();
            let fits = *scale == 1.0
                && match statistic {
                    Statistic::Count => name == "count",
                    Statistic::Sum => name == "sum",
                    Statistic::Min => name == "min",
                    Statistic::Max => name == "max",
                    Statistic::Mean | Statistic::Share => false,
                };
            let found = if *scale == 1.0 {
                format!("{name}(..)")
            } else {
                format!("{scale} * {name}(..)")
            };
            (found, fits)
        }
        Shape::Ratio { .. } => (
            "a ratio (avg, or a / b)".to_string(),
            matches!(statistic, Statistic::Mean | Statistic::Share),
        ),
    };
    if fits {
        return Ok(());
    }
    let expected = match statistic {
        Statistic::Count => "count(..) alone",
        Statistic::Sum => "sum(..) alone",
        Statistic::Min => "min(..) alone",
        Statistic::Max => "max(..) alone",
        Statistic::Mean | Statistic::Share => "avg(..), or a ratio of two counts or sums",
    };
    Err(Violation::StatisticMismatch {
        measure: measure.to_string(),
        statistic,
        found,
        expected,
    })
}
