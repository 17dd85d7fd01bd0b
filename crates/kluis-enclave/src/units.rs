//! Per-cell unit statistics and unit sets, for every cell and every margin of an output.
//!
//! DataFusion streams the rows of the final aggregation's input as `(keys…, unit, measure
//! argument, filter)`; kluis then works in Rust, in memory it reserves from the session's pool:
//!
//! 1. each row becomes an entry `(unit, finest cell, rows, non-null values, contribution)`;
//!    entries are sorted by unit and merged, so each unit has one entry per finest cell
//!    (a person's 20 rows in a cell are one contributor);
//! 2. unit by unit, in ascending order, its finest entries are rolled up to every margin
//!    (each subset of the dimensions): there the unit is one contributor again, with the sum of
//!    its contributions (the minimum or maximum for `min`/`max`);
//! 3. each cell accumulates rows, units, units with a non-null measure, units with a non-zero
//!    contribution, the total and absolute total of contributions, the two largest absolute
//!    contributions, and the set of units with a non-null measure as a compressed bitmap (the
//!    release ledger keeps it to catch differencing).
//!
//! Units must be whole numbers from 0 to 2^32 − 1: the extract's and the view's pseudonyms are
//! sequence numbers. For the usual aggregates (`count(*)`, `count(x)`, `count(DISTINCT unit)`,
//! `sum`, `avg`, `min`, `max`) the same pass gives each margin's value too; anything else has its
//! margins computed by DataFusion from the researcher's own expressions.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Expr, LogicalPlan, Projection, lit};
use datafusion::prelude::SessionContext;
use foldhash::fast::FixedState;
use futures::StreamExt;
use roaring::RoaringBitmap;

use crate::policy::Accepted;
use crate::{CellStats, Level};

type FastMap<K, V> = HashMap<K, V, FixedState>;

/// Bits per dimension in a packed cell key; code 0 is NULL, the all-ones code a margin.
const BITS: u32 = 20;
const TOTAL_CODE: u32 = (1 << BITS) - 1;

/// How a unit's rows make its contribution to the measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `count(*)`: the unit's rows.
    CountRows,
    /// `count(x)`: the unit's non-null values.
    CountValues,
    /// `count(DISTINCT unit)`: 1.
    CountUnits,
    /// `count(DISTINCT x)` of another column: the unit's non-null values, an upper bound.
    CountDistinct,
    /// `sum(x)`, or `avg(x)` (a unit contributes its sum to a mean).
    Sum {
        avg: bool,
        distinct: bool,
    },
    Min,
    Max,
}

impl Kind {
    fn of(f: &AggregateFunction, unit: &datafusion::common::Column) -> Kind {
        let distinct = f.params.distinct;
        let arg = f.params.args.first();
        match f.func.name() {
            "count" if arg.is_none() || matches!(arg, Some(Expr::Literal(..))) => Kind::CountRows,
            "count" if distinct => match arg {
                Some(Expr::Column(c)) if c.name == unit.name => Kind::CountUnits,
                _ => Kind::CountDistinct,
            },
            "count" => Kind::CountValues,
            "avg" => Kind::Sum {
                avg: true,
                distinct,
            },
            "min" => Kind::Min,
            "max" => Kind::Max,
            _ => Kind::Sum {
                avg: false,
                distinct,
            },
        }
    }

    /// Whether the pass computes the measure's value exactly (for a bare aggregate).
    fn gives_values(self) -> bool {
        !matches!(self, Kind::CountDistinct | Kind::Sum { distinct: true, .. })
    }

    fn merge(self, a: Option<f64>, b: Option<f64>) -> Option<f64> {
        match (a, b) {
            (None, x) | (x, None) => x,
            (Some(a), Some(b)) => Some(match self {
                Kind::Min => a.min(b),
                Kind::Max => a.max(b),
                Kind::CountUnits => 1.0,
                _ => a + b,
            }),
        }
    }
}

/// The rows plan: the final aggregation's input with the unit carried, as
/// `keys…, unit, measure argument, filter`.
pub(crate) fn rows_plan(acc: &Accepted) -> datafusion::common::Result<LogicalPlan> {
    let f = &acc.measure_aggregate;
    let mut exprs: Vec<Expr> = acc
        .aggregate
        .group_expr
        .iter()
        .enumerate()
        .map(|(i, e)| e.clone().alias(format!("__k{i}")))
        .collect();
    exprs.push(Expr::Column(acc.unit_column.clone()).alias("__unit"));
    let arg = match f.params.args.first() {
        Some(a) if !matches!(a, Expr::Literal(..)) => a.clone(),
        _ => lit(1i64),
    };
    exprs.push(arg.alias("__v"));
    let filter = f.params.filter.as_deref().cloned().unwrap_or(lit(true));
    exprs.push(filter.alias("__f"));
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        std::sync::Arc::new(acc.unit_input.clone()),
    )?))
}

/// Text of every value of a dimension column (NULL stays NULL).
pub(crate) fn as_text(array: &ArrayRef) -> Result<ArrayRef, String> {
    cast(array, &DataType::Utf8).map_err(|e| e.to_string())
}

/// Distinct values of one dimension, coded 1.. (0 is NULL).
#[derive(Default)]
struct Dictionary {
    codes: FastMap<Box<str>, u32>,
    values: Vec<Box<str>>,
    /// Integer values already coded, so an integer dimension (a year) is not turned into text
    /// row by row.
    integers: FastMap<i64, u32>,
}

impl Dictionary {
    fn code(&mut self, value: &str, dimension: &str) -> Result<u32, String> {
        if let Some(&c) = self.codes.get(value) {
            return Ok(c);
        }
        let c = self.values.len() as u32 + 1;
        if c >= TOTAL_CODE {
            return Err(format!(
                "dimension `{dimension}` has more than {} distinct values; a table cannot have that many cells",
                TOTAL_CODE - 1
            ));
        }
        self.values.push(value.into());
        self.codes.insert(value.into(), c);
        Ok(c)
    }

    fn codes_of(&mut self, array: &ArrayRef, dimension: &str) -> Result<Vec<u32>, String> {
        if let DataType::Dictionary(_, _) = array.data_type() {
            let dict = array.as_any_dictionary();
            let values = as_text(dict.values())?;
            let values = values.as_string::<i32>();
            let value_codes = (0..values.len())
                .map(|i| {
                    if values.is_null(i) {
                        Ok(0)
                    } else {
                        self.code(values.value(i), dimension)
                    }
                })
                .collect::<Result<Vec<u32>, String>>()?;
            let keys = dict.normalized_keys();
            return Ok((0..array.len())
                .map(|r| {
                    if array.is_null(r) {
                        0
                    } else {
                        value_codes[keys[r]]
                    }
                })
                .collect());
        }
        // Every integer type that fits an i64 (a UInt64 may not: it goes through text).
        if array.data_type().is_integer() && *array.data_type() != DataType::UInt64 {
            let integers = cast(array, &DataType::Int64).map_err(|e| e.to_string())?;
            let integers = integers.as_primitive::<Int64Type>();
            return (0..integers.len())
                .map(|r| {
                    if integers.is_null(r) {
                        return Ok(0);
                    }
                    let v = integers.value(r);
                    if let Some(&c) = self.integers.get(&v) {
                        return Ok(c);
                    }
                    // The same text as casting the column to Utf8 gives.
                    let c = self.code(&v.to_string(), dimension)?;
                    self.integers.insert(v, c);
                    Ok(c)
                })
                .collect();
        }
        let text = as_text(array)?;
        let text = text.as_string::<i32>();
        (0..text.len())
            .map(|r| {
                if text.is_null(r) {
                    Ok(0)
                } else {
                    self.code(text.value(r), dimension)
                }
            })
            .collect()
    }

    fn level(&self, code: u32) -> Level {
        match code {
            0 => Level::Missing,
            TOTAL_CODE => Level::Total,
            c => Level::Value(self.values[c as usize - 1].to_string()),
        }
    }
}

fn pack(codes: impl Iterator<Item = u32>) -> u128 {
    codes.fold(0u128, |acc, c| (acc << BITS) | c as u128)
}

fn unpack(key: u128, k: usize) -> Vec<u32> {
    (0..k)
        .map(|i| ((key >> (BITS as usize * (k - 1 - i))) as u32) & TOTAL_CODE)
        .collect()
}

#[derive(Clone, Copy)]
struct Entry {
    /// unit << 32 | finest cell
    key: u64,
    contribution: Option<f64>,
    rows: u32,
    values: u32,
}

/// A cell's accumulated statistics.
#[derive(Default)]
struct Acc {
    rows: u64,
    units: u64,
    nonnull: u64,
    nonzero: u64,
    values: u64,
    total: f64,
    abs_total: f64,
    top1: Option<f64>,
    top2: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    set: RoaringBitmap,
}

impl Acc {
    fn add(&mut self, unit: u32, rows: u64, values: u64, contribution: Option<f64>) {
        self.rows += rows;
        self.units += 1;
        self.values += values;
        let Some(c) = contribution else { return };
        self.nonnull += 1;
        // Not `push`: roaring's push finds a bitmap container's maximum by scanning it from
        // the end, which made building the unit sets the most expensive part of a job.
        self.set.insert(unit);
        if c != 0.0 {
            self.nonzero += 1;
        }
        self.total += c;
        self.abs_total += c.abs();
        let a = c.abs();
        if self.top1.is_none_or(|t| a > t) {
            self.top2 = self.top1;
            self.top1 = Some(a);
        } else if self.top2.is_none_or(|t| a > t) {
            self.top2 = Some(a);
        }
        self.min = Some(self.min.map_or(c, |m| m.min(c)));
        self.max = Some(self.max.map_or(c, |m| m.max(c)));
    }

    fn value(&self, kind: Kind) -> Option<f64> {
        match kind {
            Kind::CountRows | Kind::CountValues | Kind::CountDistinct => Some(self.values as f64),
            Kind::CountUnits => Some(self.nonnull as f64),
            Kind::Sum { avg: false, .. } => (self.nonnull > 0).then_some(self.total),
            Kind::Sum { avg: true, .. } => {
                (self.values > 0).then(|| self.total / self.values as f64)
            }
            Kind::Min => self.min,
            Kind::Max => self.max,
        }
    }
}

/// One cell with its statistics, its unit set and (when the pass computes it) its value.
pub(crate) struct UnitCell {
    /// One level per GROUP BY key, in GROUP BY order.
    pub key: Vec<Level>,
    pub stats: CellStats,
    pub units: RoaringBitmap,
    pub value: Option<f64>,
}

pub(crate) struct UnitCells {
    pub cells: Vec<UnitCell>,
    /// Whether [`UnitCell::value`] is the measure's value.
    pub gives_values: bool,
}

/// Reserves pool memory for the Rust side, so it counts against the memory limit.
struct Budget {
    reservation: MemoryReservation,
}

impl Budget {
    fn grow_to(&mut self, bytes: usize) -> Result<(), datafusion::error::DataFusionError> {
        if bytes > self.reservation.size() {
            self.reservation.try_grow(bytes - self.reservation.size())?;
        }
        Ok(())
    }
}

/// What can go wrong in the pass.
pub(crate) enum UnitsError {
    DataFusion(datafusion::error::DataFusionError),
    Data(String),
}

impl From<datafusion::error::DataFusionError> for UnitsError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        UnitsError::DataFusion(e)
    }
}

impl From<String> for UnitsError {
    fn from(e: String) -> Self {
        UnitsError::Data(e)
    }
}

/// Streams the rows plan and computes every cell's statistics and unit set.
pub(crate) async fn unit_cells(
    ctx: &SessionContext,
    acc: &Accepted,
    unit_name: &str,
) -> Result<UnitCells, UnitsError> {
    let k = acc.aggregate.group_expr.len();
    let kind = Kind::of(&acc.measure_aggregate, &acc.unit_column);
    let dim_names: Vec<String> = acc
        .aggregate
        .group_expr
        .iter()
        .map(|e| e.schema_name().to_string())
        .collect();
    let plan = rows_plan(acc)?;
    let mut stream = datafusion::prelude::DataFrame::new(ctx.state(), plan)
        .execute_stream()
        .await?;
    let mut budget = Budget {
        reservation: MemoryConsumer::new("kluis unit statistics")
            .register(&ctx.runtime_env().memory_pool),
    };
    let mut dictionaries: Vec<Dictionary> = (0..k).map(|_| Dictionary::default()).collect();
    let mut finest: FastMap<u128, u32> = FastMap::default();
    let mut finest_keys: Vec<u128> = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch: RecordBatch = batch?;
        let n = batch.num_rows();
        let codes: Vec<Vec<u32>> = (0..k)
            .map(|i| dictionaries[i].codes_of(batch.column(i), &dim_names[i]))
            .collect::<Result<_, _>>()?;
        let units = cast(batch.column(k), &DataType::Int64).map_err(|e| e.to_string())?;
        let units = units.as_primitive::<Int64Type>();
        let values = batch.column(k + 1);
        let numbers = cast(values, &DataType::Float64).map_err(|e| e.to_string())?;
        let numbers = numbers.as_primitive::<Float64Type>();
        let filter = cast(batch.column(k + 2), &DataType::Boolean).map_err(|e| e.to_string())?;
        let filter: &BooleanArray = filter.as_boolean();
        entries.reserve(n);
        budget.grow_to(entries.capacity() * size_of::<Entry>())?;
        // Pack each row's codes into its cell key, column by column.
        let mut packed_keys = vec![0u128; n];
        for column in &codes {
            for (p, &c) in packed_keys.iter_mut().zip(column) {
                *p = (*p << BITS) | c as u128;
            }
        }
        for (r, &packed) in packed_keys.iter().enumerate() {
            if units.is_null(r) {
                return Err(UnitsError::Data(format!(
                    "the unit column `{unit_name}` is NULL in some row; every row needs its unit"
                )));
            }
            let unit = u32::try_from(units.value(r)).map_err(|_| {
                format!(
                    "the unit column `{unit_name}` holds a value outside 0..4294967295; units must be sequence numbers such as the pseudonym"
                )
            })?;
            let cell = match finest.get(&packed) {
                Some(&c) => c,
                None => {
                    let c = finest_keys.len() as u32;
                    finest.insert(packed, c);
                    finest_keys.push(packed);
                    c
                }
            };
            let counted = filter.is_valid(r) && filter.value(r);
            let (values, contribution) = match kind {
                Kind::CountRows => (u32::from(counted), Some(f64::from(u8::from(counted)))),
                _ if !counted || values.is_null(r) => (0, None),
                Kind::CountValues | Kind::CountDistinct | Kind::CountUnits => (1, Some(1.0)),
                Kind::Sum { .. } | Kind::Min | Kind::Max => (1, Some(numbers.value(r))),
            };
            let key = (u64::from(unit) << 32) | u64::from(cell);
            match entries.last_mut() {
                Some(last) if last.key == key => {
                    last.rows += 1;
                    last.values += values;
                    last.contribution = kind.merge(last.contribution, contribution);
                }
                _ => entries.push(Entry {
                    key,
                    contribution,
                    rows: 1,
                    values,
                }),
            }
        }
    }
    drop(stream);
    entries.sort_unstable_by_key(|e| e.key);

    // Every cell: the finest cells and their margins, through one interner of packed keys.
    let masks = 1usize << k;
    let mut cell_of: FastMap<u128, u32> = FastMap::default();
    let mut keys: Vec<u128> = Vec::new();
    let mut up: Vec<Vec<u32>> = vec![Vec::with_capacity(finest_keys.len()); masks];
    for &fk in &finest_keys {
        let codes = unpack(fk, k);
        for (mask, row) in up.iter_mut().enumerate() {
            let packed = pack(
                codes.iter().enumerate().map(
                    |(i, &c)| {
                        if mask & (1 << i) != 0 { TOTAL_CODE } else { c }
                    },
                ),
            );
            let id = *cell_of.entry(packed).or_insert_with(|| {
                keys.push(packed);
                keys.len() as u32 - 1
            });
            row.push(id);
        }
    }
    if k == 0 && keys.is_empty() {
        // No rows: the one cell of a table without dimensions is still there, empty.
        keys.push(0);
    }
    let mut accs: Vec<Acc> = (0..keys.len()).map(|_| Acc::default()).collect();
    budget.grow_to(
        entries.capacity() * size_of::<Entry>()
            + accs.len() * size_of::<Acc>()
            + masks * finest_keys.len() * 4,
    )?;

    // Unit by unit: merge its entries per finest cell, then roll them up to every cell.
    let mut own: Vec<(u32, u64, u64, Option<f64>)> = Vec::new();
    let mut rolled: Vec<(u32, u64, u64, Option<f64>)> = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let unit = (entries[i].key >> 32) as u32;
        own.clear();
        while i < entries.len() && (entries[i].key >> 32) as u32 == unit {
            let e = entries[i];
            let cell = e.key as u32;
            match own.last_mut() {
                Some(last) if last.0 == cell => {
                    last.1 += u64::from(e.rows);
                    last.2 += u64::from(e.values);
                    last.3 = kind.merge(last.3, e.contribution);
                }
                _ => own.push((cell, u64::from(e.rows), u64::from(e.values), e.contribution)),
            }
            i += 1;
        }
        for row in &up {
            rolled.clear();
            for &(cell, rows, values, contribution) in &own {
                let id = row[cell as usize];
                match rolled.iter_mut().find(|x| x.0 == id) {
                    Some(x) => {
                        x.1 += rows;
                        x.2 += values;
                        x.3 = kind.merge(x.3, contribution);
                    }
                    None => rolled.push((id, rows, values, contribution)),
                }
            }
            for &(id, rows, values, contribution) in &rolled {
                accs[id as usize].add(unit, rows, values, contribution);
            }
        }
    }
    drop(entries);

    let cells = keys
        .iter()
        .zip(accs)
        .map(|(&packed, a)| {
            let key = unpack(packed, k)
                .into_iter()
                .enumerate()
                .map(|(i, c)| dictionaries[i].level(c))
                .collect();
            UnitCell {
                key,
                value: a.value(kind),
                stats: CellStats {
                    rows: a.rows,
                    units: a.units,
                    nonnull_units: a.nonnull,
                    nonzero_units: a.nonzero,
                    total: a.total,
                    abs_total: a.abs_total,
                    top1: a.top1,
                    top2: a.top2,
                    any_negative: a.min.is_some_and(|m| m < 0.0),
                },
                units: a.set,
            }
        })
        .collect();
    Ok(UnitCells {
        cells,
        gives_values: kind.gives_values(),
    })
}
