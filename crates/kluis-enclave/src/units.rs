//! Per-cell unit statistics and unit sets, for every cell and every margin of an output.
//!
//! DataFusion streams the rows of the final aggregation's input as `(keys…, unit, measure
//! argument, filter)`; kluis then works in Rust, in memory it reserves from the session's pool:
//!
//! 1. each partition of the stream is coded on its own task: each row becomes an entry `(unit,
//!    finest cell, rows, non-null values, contribution)`, put in the bucket of its unit's roaring
//!    container (`unit >> 16`); the partitions' cell numbers are then made one;
//! 2. each bucket, on its own thread, is sorted by unit, and unit by unit its entries are rolled
//!    up to every cell they fall in, finest cells and margins (each subset of the dimensions):
//!    there the unit is one contributor, with the sum of its contributions (the minimum or
//!    maximum for `min`/`max`), so a person's 20 rows in a cell are one contributor;
//! 3. each cell accumulates rows, units, units with a counted value (a true filter and a
//!    non-null argument: the aggregate's own contributors), units with a non-zero contribution,
//!    the total and absolute total of contributions, and the two largest absolute
//!    contributions; the buckets' cells are added together;
//! 4. the set of units the number depends on (a counted, non-zero contribution; any counted
//!    value for `min`/`max`), which the release ledger keeps to catch differencing, is a
//!    compressed bitmap per finest cell, and a margin's is the union of its
//!    finest cells' (the buckets hold different containers, so theirs never overlap).
//!
//! Units must be whole numbers from 0 to 2^32 − 1: the extract's and the view's pseudonyms are
//! sequence numbers. For a bare aggregate the same pass gives each margin's value too (an `avg`:
//! its sum's pass over its count's); a ratio written out has its margins computed by DataFusion
//! from the researcher's own expressions.

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
    /// `sum(x)` (a mean is judged as a sum and a count, each its own pass).
    Sum,
    Min,
    Max,
}

impl Kind {
    /// The kind of one of the aggregates `measure` accepts (no `avg`, and `DISTINCT` only in
    /// `count(DISTINCT unit)`).
    fn of(f: &AggregateFunction, unit: &datafusion::common::Column) -> Kind {
        let arg = f.params.args.first();
        match f.func.name() {
            "count" if arg.is_none() || matches!(arg, Some(Expr::Literal(..))) => Kind::CountRows,
            "count" if f.params.distinct => match arg {
                Some(Expr::Column(c)) if c.name == unit.name => Kind::CountUnits,
                _ => unreachable!("measure refuses count(DISTINCT x) of another column"),
            },
            "count" => Kind::CountValues,
            "min" => Kind::Min,
            "max" => Kind::Max,
            _ => Kind::Sum,
        }
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
pub(crate) fn rows_plan(
    acc: &Accepted,
    f: &AggregateFunction,
) -> datafusion::common::Result<LogicalPlan> {
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
        // Disclosure control knows a margin and a NULL by these texts: a value spelled the same
        // would be taken for one, and the table's structure (what adds up to what) misread.
        if value == kluis_sdc::TOTAL || value == crate::MISSING {
            return Err(format!(
                "dimension `{dimension}` has the value `{value}`, which marks a margin or a missing value in the checked table; give it another name"
            ));
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
            if values.is_empty() {
                // A dictionary without values (an all-NULL column); `normalized_keys` panics.
                return Ok(vec![0; array.len()]);
            }
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

/// A unit's rows in one finest cell (several when they were not next to each other).
#[derive(Clone, Copy)]
struct Entry {
    unit: u32,
    /// The finest cell: the partition's own number while streaming, then the job's.
    cell: u32,
    rows: u32,
    /// Rows whose measure counts (see [`Entry::contribution`]).
    values: u32,
    /// The sum (or minimum, maximum) of the counted values; 0 when there are none.
    contribution: f64,
}

impl Entry {
    /// The unit's contribution to the cell, None when none of its values count. Stored as a
    /// plain f64 beside `values`: the entries of a full view take a gigabyte, and Option<f64>
    /// would make them a third larger.
    fn contribution(&self) -> Option<f64> {
        // A unit none of whose rows count (a false FILTER, a NULL argument) is not behind the
        // number, for `count(*)` too.
        (self.values > 0).then_some(self.contribution)
    }

    fn absorb(&mut self, other: &Entry, kind: Kind) {
        let merged = kind.merge(self.contribution(), other.contribution());
        self.rows += other.rows;
        self.values += other.values;
        self.contribution = merged.unwrap_or(0.0);
    }
}

/// A cell's accumulated statistics.
#[derive(Default, Clone)]
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
}

impl Acc {
    fn add(&mut self, rows: u64, values: u64, contribution: Option<f64>) {
        self.rows += rows;
        self.units += 1;
        self.values += values;
        let Some(c) = contribution else { return };
        self.nonnull += 1;
        if c != 0.0 {
            self.nonzero += 1;
        }
        self.total += c;
        self.abs_total += c.abs();
        self.offer_top(c.abs());
        self.min = Some(self.min.map_or(c, |m| m.min(c)));
        self.max = Some(self.max.map_or(c, |m| m.max(c)));
    }

    fn offer_top(&mut self, a: f64) {
        if self.top1.is_none_or(|t| a > t) {
            self.top2 = self.top1;
            self.top1 = Some(a);
        } else if self.top2.is_none_or(|t| a > t) {
            self.top2 = Some(a);
        }
    }

    /// Adds the statistics of the same cell over other units.
    fn merge(&mut self, other: &Acc) {
        self.rows += other.rows;
        self.units += other.units;
        self.nonnull += other.nonnull;
        self.nonzero += other.nonzero;
        self.values += other.values;
        self.total += other.total;
        self.abs_total += other.abs_total;
        for top in [other.top1, other.top2].into_iter().flatten() {
            self.offer_top(top);
        }
        self.min = [self.min, other.min].into_iter().flatten().reduce(f64::min);
        self.max = [self.max, other.max].into_iter().flatten().reduce(f64::max);
    }

    fn value(&self, kind: Kind) -> Option<f64> {
        match kind {
            Kind::CountRows | Kind::CountValues => Some(self.values as f64),
            Kind::CountUnits => Some(self.nonnull as f64),
            Kind::Sum => (self.nonnull > 0).then_some(self.total),
            Kind::Min => self.min,
            Kind::Max => self.max,
        }
    }
}

/// One cell with its statistics, its unit set and its aggregate's value.
pub(crate) struct UnitCell {
    /// One level per GROUP BY key, in GROUP BY order.
    pub key: Vec<Level>,
    pub stats: CellStats,
    pub units: RoaringBitmap,
    pub value: Option<f64>,
}

pub(crate) struct UnitCells {
    pub cells: Vec<UnitCell>,
}

/// Reserves pool memory for the Rust side, so it counts against the memory limit.
struct Budget {
    reservation: MemoryReservation,
}

impl Budget {
    fn new(ctx: &SessionContext) -> Budget {
        Budget {
            reservation: MemoryConsumer::new("kluis unit statistics")
                .register(&ctx.runtime_env().memory_pool),
        }
    }

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

/// Units are split into buckets by their roaring container (units >> 16), so that buckets are
/// rolled up on their own threads and their unit sets never share a container.
fn bucket_of(unit: u32, buckets: usize) -> usize {
    (unit >> 16) as usize % buckets
}

/// What the pass needs to know about the output, shared by its threads.
struct Shape {
    kind: Kind,
    dim_names: Vec<String>,
    unit_name: String,
    buckets: usize,
}

/// One partition of the rows plan: its rows as entries, routed to their unit's bucket, with
/// cell codes of its own.
struct Partial {
    dictionaries: Vec<Dictionary>,
    /// The partition's finest cell numbers → their packed codes.
    finest_keys: Vec<u128>,
    buckets: Vec<Vec<Entry>>,
    /// The pool memory reserved for `buckets`, held until the roll-up reserves it instead.
    budget: Budget,
}

/// Codes the rows of one partition of the rows plan.
async fn code_partition(
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    shape: std::sync::Arc<Shape>,
    mut budget: Budget,
) -> Result<Partial, UnitsError> {
    let k = shape.dim_names.len();
    let kind = shape.kind;
    let mut dictionaries: Vec<Dictionary> = (0..k).map(|_| Dictionary::default()).collect();
    let mut finest: FastMap<u128, u32> = FastMap::default();
    let mut finest_keys: Vec<u128> = Vec::new();
    let mut buckets: Vec<Vec<Entry>> = vec![Vec::new(); shape.buckets];
    while let Some(batch) = stream.next().await {
        let batch: RecordBatch = batch?;
        let n = batch.num_rows();
        let codes: Vec<Vec<u32>> = (0..k)
            .map(|i| dictionaries[i].codes_of(batch.column(i), &shape.dim_names[i]))
            .collect::<Result<_, _>>()?;
        let units = cast(batch.column(k), &DataType::Int64).map_err(|e| e.to_string())?;
        let units = units.as_primitive::<Int64Type>();
        let values = batch.column(k + 1);
        let numbers = cast(values, &DataType::Float64).map_err(|e| e.to_string())?;
        let numbers = numbers.as_primitive::<Float64Type>();
        let filter = cast(batch.column(k + 2), &DataType::Boolean).map_err(|e| e.to_string())?;
        let filter: &BooleanArray = filter.as_boolean();
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
                    "the unit column `{}` is NULL in some row; every row needs its unit",
                    shape.unit_name
                )));
            }
            let unit = u32::try_from(units.value(r)).map_err(|_| {
                format!(
                    "the unit column `{}` holds a value outside 0..4294967295; units must be sequence numbers such as the pseudonym",
                    shape.unit_name
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
                Kind::CountRows => (u32::from(counted), f64::from(u8::from(counted))),
                _ if !counted || values.is_null(r) => (0, 0.0),
                Kind::CountValues | Kind::CountUnits => (1, 1.0),
                Kind::Sum | Kind::Min | Kind::Max => (1, numbers.value(r)),
            };
            let entry = Entry {
                unit,
                cell,
                rows: 1,
                values,
                contribution,
            };
            let bucket = &mut buckets[bucket_of(unit, shape.buckets)];
            match bucket.last_mut() {
                Some(last) if last.unit == unit && last.cell == cell => last.absorb(&entry, kind),
                _ => bucket.push(entry),
            }
        }
        budget.grow_to(buckets.iter().map(Vec::capacity).sum::<usize>() * size_of::<Entry>())?;
    }
    // Sorted by unit here, on the partition's own task, so the roll-up merges the partitions'
    // buckets as they are instead of copying them into one. Stable: the stream gives runs in
    // unit order (one per year), which it merges in a few passes.
    let largest = buckets.iter().map(Vec::len).max().unwrap_or(0);
    budget.grow_to(
        (buckets.iter().map(Vec::capacity).sum::<usize>() + largest / 2) * size_of::<Entry>(),
    )?;
    for bucket in &mut buckets {
        bucket.sort_by_key(|e| e.unit);
    }
    Ok(Partial {
        dictionaries,
        finest_keys,
        buckets,
        budget,
    })
}

/// What one bucket of units adds to every cell.
struct Rolled {
    accs: Vec<Acc>,
    /// The units the number depends on, per finest cell (empty for margins).
    units: Vec<RoaringBitmap>,
}

/// Rolls a bucket's entries up to every cell: unit by unit, its entries are merged into each
/// cell they fall in (`up[mask][finest cell]`) and then added to that cell's statistics, so a
/// unit is one contributor to each cell whatever its number of rows there. The entries come
/// from every partition, each part sorted by unit and with its own cell numbers
/// (`renumbered[part]`), and are merged unit by unit.
fn roll_up(
    parts: Vec<Vec<Entry>>,
    renumbered: &[Vec<u32>],
    up: &[Vec<u32>],
    cells: usize,
    kind: Kind,
) -> Rolled {
    let mut accs = vec![Acc::default(); cells];
    let mut finest_units: Vec<Vec<u32>> = vec![Vec::new(); up.first().map_or(0, Vec::len)];
    // The unit's running total per cell, valid where `seen[cell]` is the unit's turn.
    let mut pending: Vec<(u64, u64, Option<f64>)> = vec![(0, 0, None); cells];
    let mut seen: Vec<u32> = vec![u32::MAX; cells];
    let mut touched: Vec<u32> = Vec::new();
    let mut own: Vec<Entry> = Vec::new();
    let mut next: Vec<usize> = vec![0; parts.len()];
    for turn in 0u32.. {
        let Some(unit) = parts
            .iter()
            .zip(&next)
            .filter_map(|(part, &at)| part.get(at).map(|e| e.unit))
            .min()
        else {
            break;
        };
        // The unit's entries from every part, with neighbours in the same finest cell merged (a
        // person's years in one cell come one after the other), so most are rolled up once.
        own.clear();
        for ((part, at), cell_of) in parts.iter().zip(&mut next).zip(renumbered) {
            while let Some(e) = part.get(*at).filter(|e| e.unit == unit) {
                own.push(Entry {
                    cell: cell_of[e.cell as usize],
                    ..*e
                });
                *at += 1;
            }
        }
        own.dedup_by(|later, kept| {
            let same = later.cell == kept.cell;
            if same {
                kept.absorb(later, kind);
            }
            same
        });
        touched.clear();
        for e in &own {
            let contribution = e.contribution();
            for row in up {
                let id = row[e.cell as usize] as usize;
                if seen[id] == turn {
                    let p = &mut pending[id];
                    p.0 += u64::from(e.rows);
                    p.1 += u64::from(e.values);
                    p.2 = kind.merge(p.2, contribution);
                } else {
                    seen[id] = turn;
                    pending[id] = (u64::from(e.rows), u64::from(e.values), contribution);
                    touched.push(id as u32);
                }
            }
            let members = &mut finest_units[e.cell as usize];
            // The persons the number depends on: a non-zero contribution (a minimum or maximum
            // depends on every value).
            let behind =
                contribution.is_some_and(|c| c != 0.0 || matches!(kind, Kind::Min | Kind::Max));
            if behind && members.last() != Some(&unit) {
                members.push(unit);
            }
        }
        for &id in &touched {
            let (rows, values, contribution) = pending[id as usize];
            accs[id as usize].add(rows, values, contribution);
        }
    }
    drop(parts);
    let units = finest_units
        .into_iter()
        .map(|u| RoaringBitmap::from_sorted_iter(u).expect("units in ascending order"))
        .collect();
    Rolled { accs, units }
}

/// Streams the rows plan and computes every cell's statistics and unit set.
pub(crate) async fn unit_cells(
    ctx: &SessionContext,
    acc: &Accepted,
    term: &AggregateFunction,
    unit_name: &str,
) -> Result<UnitCells, UnitsError> {
    let k = acc.aggregate.group_expr.len();
    let kind = Kind::of(term, &acc.unit_column);
    let shape = std::sync::Arc::new(Shape {
        kind,
        dim_names: acc
            .aggregate
            .group_expr
            .iter()
            .map(|e| e.schema_name().to_string())
            .collect(),
        unit_name: unit_name.to_string(),
        buckets: ctx.state().config().target_partitions().max(1),
    });
    let plan = rows_plan(acc, term)?;
    let streams = datafusion::prelude::DataFrame::new(ctx.state(), plan)
        .execute_stream_partitioned()
        .await?;
    // Every partition is coded at once, on the session's threads (a repartitioned plan needs all
    // its outputs read together). A JoinSet, so that the tasks stop when the run is given up
    // (over the time limit, or another partition failed).
    let mut tasks = tokio::task::JoinSet::new();
    for (i, stream) in streams.into_iter().enumerate() {
        let coding = code_partition(stream, shape.clone(), Budget::new(ctx));
        tasks.spawn(async move { (i, coding.await) });
    }
    let mut partials = Vec::with_capacity(tasks.len());
    while let Some(done) = tasks.join_next().await {
        let (i, partial) =
            done.map_err(|e| UnitsError::Data(format!("a coding task failed: {e}")))?;
        partials.push((i, partial?));
    }
    // In partition order, so the numbering of cells does not depend on which finished first.
    partials.sort_by_key(|(i, _)| *i);

    // One numbering of the values and finest cells for the whole output; each partition's
    // finest cells are renumbered by the roll-up threads.
    let mut dictionaries: Vec<Dictionary> = (0..k).map(|_| Dictionary::default()).collect();
    let mut finest: FastMap<u128, u32> = FastMap::default();
    let mut finest_keys: Vec<u128> = Vec::new();
    let mut renumbered: Vec<Vec<u32>> = Vec::with_capacity(partials.len());
    let mut buckets: Vec<Vec<Vec<Entry>>> = vec![Vec::new(); shape.buckets];
    let mut partition_budgets = Vec::with_capacity(partials.len());
    for (_, partial) in partials {
        partition_budgets.push(partial.budget);
        let recode: Vec<Vec<u32>> = partial
            .dictionaries
            .iter()
            .enumerate()
            .map(|(d, local)| {
                std::iter::once(Ok(0))
                    .chain(
                        local
                            .values
                            .iter()
                            .map(|v| dictionaries[d].code(v, &shape.dim_names[d])),
                    )
                    .collect::<Result<Vec<u32>, String>>()
            })
            .collect::<Result<_, _>>()?;
        renumbered.push(
            partial
                .finest_keys
                .iter()
                .map(|&local| {
                    let codes = unpack(local, k);
                    let global = pack(
                        codes
                            .iter()
                            .enumerate()
                            .map(|(d, &c)| recode[d][c as usize]),
                    );
                    *finest.entry(global).or_insert_with(|| {
                        finest_keys.push(global);
                        finest_keys.len() as u32 - 1
                    })
                })
                .collect(),
        );
        for (bucket, entries) in buckets.iter_mut().zip(partial.buckets) {
            bucket.push(entries);
        }
    }
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
    // Buckets without units are not rolled up (few units fill one container, so one bucket).
    buckets.retain(|parts| parts.iter().any(|p| !p.is_empty()));
    // Per rolled-up bucket and cell: its statistics, the unit's running total and turn; per
    // finest cell its units' list.
    let per_cell = size_of::<Acc>() + size_of::<(u64, u64, Option<f64>)>() + size_of::<u32>();
    // The partitions' reservations are handed over: every partition has finished, so nothing
    // can take the room in between.
    drop(partition_budgets);
    let mut budget = Budget::new(ctx);
    budget.grow_to(
        buckets.iter().flatten().map(Vec::capacity).sum::<usize>() * size_of::<Entry>()
            + buckets.len() * (keys.len() * per_cell + finest_keys.len() * size_of::<Vec<u32>>())
            + masks * finest_keys.len() * size_of::<u32>(),
    )?;

    // Each bucket of units on its own thread, then the buckets' cells added together.
    let cells = keys.len();
    let rolled = on_threads(buckets, |parts| {
        roll_up(parts, &renumbered, &up, cells, kind)
    });
    let mut accs = vec![Acc::default(); cells];
    let mut finest_units = vec![RoaringBitmap::new(); finest_keys.len()];
    for r in rolled {
        for (a, b) in accs.iter_mut().zip(&r.accs) {
            a.merge(b);
        }
        for (a, b) in finest_units.iter_mut().zip(r.units) {
            *a |= b;
        }
    }
    let sets = cell_sets(&up, finest_units, cells, shape.buckets);

    let cells = keys
        .iter()
        .zip(accs)
        .zip(sets)
        .map(|((&packed, a), units)| {
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
                units,
            }
        })
        .collect();
    Ok(UnitCells { cells })
}

/// Every cell's unit set: a finest cell's is its own, a margin's the union of its finest
/// cells' (bitmap unions, word by word, rather than a unit at a time). The masks are split
/// over `threads` threads.
fn cell_sets(
    up: &[Vec<u32>],
    finest_units: Vec<RoaringBitmap>,
    cells: usize,
    threads: usize,
) -> Vec<RoaringBitmap> {
    let parts = on_threads((0..threads).collect(), |t| {
        let mut out: FastMap<u32, RoaringBitmap> = FastMap::default();
        for row in up.iter().skip(t).step_by(threads) {
            for (f, &id) in row.iter().enumerate() {
                *out.entry(id).or_default() |= &finest_units[f];
            }
        }
        out
    });
    let mut sets = vec![RoaringBitmap::new(); cells];
    for (id, set) in parts.into_iter().flatten() {
        sets[id as usize] = set;
    }
    sets
}

/// `work` on each item, each on its own thread; the results in the items' order.
fn on_threads<T: Send, R: Send>(items: Vec<T>, work: impl Fn(T) -> R + Sync) -> Vec<R> {
    let work = &work;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .into_iter()
            .map(|item| scope.spawn(move || work(item)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a worker thread panicked"))
            .collect()
    })
}
