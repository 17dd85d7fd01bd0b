//! Tables from microdata: every margin combination, with per-unit aggregation first (a person's
//! rows are one contributor).
//!
//! Rows are pushed one at a time; dimension values are dictionary-encoded to small integers on the
//! way in, and each row is kept as (unit hash, packed codes, value) in one of 256 buckets by unit.
//! [`Aggregator::finish`] sorts each bucket by (unit, cell), folds each unit's rows per finest cell,
//! and adds the unit once to every margin cell it falls in (all 2^d combinations of its codes and
//! `Total`), in a dense cell array; buckets are split over threads and the arrays merged.
//!
//! Units are identified by a 64-bit hash of the unit value. Two units sharing a hash would be
//! counted as one contributor: fewer units and larger contributions, so every rule only gets
//! stricter (and with 10 million units the chance is about 3 in a million per table).

use std::collections::HashMap;
use std::hash::BuildHasher;

use foldhash::quality::FixedState;

use crate::error::SdcError;
use crate::table::{Cell, Contributions, Statistic, TOTAL, Table};

/// Most cells (margins included) a table from microdata may have.
pub const MAX_CELLS: usize = 1 << 22;
/// Most dimensions.
pub const MAX_DIMS: usize = 8;
const MAX_CODES: usize = u16::MAX as usize;
const BUCKETS: usize = 256;
const SEED: u64 = 0x6b6c_7569_735f_7364;

#[derive(Clone, Copy)]
struct Rec {
    unit: u64,
    key: u128,
    /// NaN for a null measure.
    value: f64,
}

#[derive(Default, Clone)]
struct Dict {
    codes: HashMap<Vec<u8>, u16, foldhash::fast::FixedState>,
    values: Vec<String>,
    last: Option<(Vec<u8>, u16)>,
}

/// Builds one [`Table`] from rows of microdata.
pub struct Aggregator {
    name: String,
    dimensions: Vec<String>,
    statistic: Statistic,
    measure: Option<String>,
    dicts: Vec<Dict>,
    buckets: Vec<Vec<Rec>>,
    hasher: FixedState,
}

impl Aggregator {
    /// An empty aggregator for `statistic` (of `measure`, unless a count) by `dimensions`.
    pub fn new(
        name: &str,
        dimensions: Vec<String>,
        statistic: Statistic,
        measure: Option<String>,
    ) -> Result<Aggregator, SdcError> {
        if dimensions.is_empty() || dimensions.len() > MAX_DIMS {
            return Err(SdcError::Input(format!(
                "{} dimensions given; accepted: 1 to {MAX_DIMS}",
                dimensions.len()
            )));
        }
        if (statistic == Statistic::Count) != measure.is_none() {
            return Err(SdcError::Input(
                "a count takes no measure; every other statistic needs one".into(),
            ));
        }
        Ok(Aggregator {
            name: name.to_string(),
            dicts: vec![Dict::default(); dimensions.len()],
            dimensions,
            statistic,
            measure,
            buckets: vec![Vec::new(); BUCKETS],
            hasher: FixedState::with_seed(SEED),
        })
    }

    /// Adds one row: the unit's identifier, the dimension values (in dimension order) and the
    /// measure (`None` when null, or for counts). `row` (1-based, for messages) names the row.
    pub fn push(
        &mut self,
        unit: &[u8],
        dims: &[&[u8]],
        measure: Option<f64>,
        row: u64,
    ) -> Result<(), SdcError> {
        let unit = self.hasher.hash_one(unit);
        self.push_hashed(unit, dims, measure, row)
    }

    /// Like [`Aggregator::push`] for an integer unit identifier.
    pub fn push_int_unit(
        &mut self,
        unit: i64,
        dims: &[&[u8]],
        measure: Option<f64>,
        row: u64,
    ) -> Result<(), SdcError> {
        let unit = self.hasher.hash_one(unit.to_le_bytes());
        self.push_hashed(unit, dims, measure, row)
    }

    fn push_hashed(
        &mut self,
        unit: u64,
        dims: &[&[u8]],
        measure: Option<f64>,
        row: u64,
    ) -> Result<(), SdcError> {
        let mut key: u128 = 0;
        for (j, value) in dims.iter().enumerate() {
            let code = self.code(j, value, row)?;
            key |= u128::from(code) << (16 * j);
        }
        let value = match measure {
            Some(v) if v.is_nan() => f64::NAN,
            Some(v) => v,
            None => f64::NAN,
        };
        self.buckets[(unit >> 56) as usize].push(Rec { unit, key, value });
        Ok(())
    }

    fn code(&mut self, j: usize, value: &[u8], row: u64) -> Result<u16, SdcError> {
        let dict = &mut self.dicts[j];
        if let Some((last, code)) = &dict.last
            && last.as_slice() == value
        {
            return Ok(*code);
        }
        let code = match dict.codes.get(value) {
            Some(&c) => c,
            None => {
                let text = String::from_utf8_lossy(value).into_owned();
                if text == TOTAL {
                    return Err(SdcError::Input(format!(
                        "row {row}, column `{}`: the value `{TOTAL}` marks margins; rename it in the data",
                        self.dimensions[j]
                    )));
                }
                if dict.values.len() >= MAX_CODES {
                    return Err(SdcError::Input(format!(
                        "row {row}, column `{}`: more than {MAX_CODES} distinct values; accepted: a categorical column",
                        self.dimensions[j]
                    )));
                }
                let c = dict.values.len() as u16;
                dict.values.push(text);
                dict.codes.insert(value.to_vec(), c);
                c
            }
        };
        dict.last = Some((value.to_vec(), code));
        Ok(code)
    }

    /// An empty aggregator with the same table definition, for reading in parallel.
    pub fn empty_like(&self) -> Aggregator {
        Aggregator {
            name: self.name.clone(),
            dicts: vec![Dict::default(); self.dimensions.len()],
            dimensions: self.dimensions.clone(),
            statistic: self.statistic,
            measure: self.measure.clone(),
            buckets: vec![Vec::new(); BUCKETS],
            hasher: FixedState::with_seed(SEED),
        }
    }

    /// The statistic being computed.
    pub fn statistic(&self) -> Statistic {
        self.statistic
    }

    /// The measure column, `None` for counts.
    pub fn measure(&self) -> Option<&str> {
        self.measure.as_deref()
    }

    /// Folds another aggregator's rows (same dimensions and statistic, read in parallel) into this one.
    pub fn merge(&mut self, other: Aggregator) -> Result<(), SdcError> {
        if self.dicts.iter().all(|d| d.values.is_empty()) && self.buckets.iter().all(Vec::is_empty)
        {
            self.dicts = other.dicts;
            self.buckets = other.buckets;
            return Ok(());
        }
        let d = self.dimensions.len();
        let mut remap: Vec<Vec<u16>> = Vec::with_capacity(d);
        for j in 0..d {
            let mut m = Vec::with_capacity(other.dicts[j].values.len());
            for value in &other.dicts[j].values {
                m.push(self.code(j, value.as_bytes(), 0)?);
            }
            remap.push(m);
        }
        for bucket in other.buckets {
            for mut rec in bucket {
                let mut key = 0u128;
                for (j, m) in remap.iter().enumerate() {
                    let code = ((rec.key >> (16 * j)) & 0xffff) as usize;
                    key |= u128::from(m[code]) << (16 * j);
                }
                rec.key = key;
                self.buckets[(rec.unit >> 56) as usize].push(rec);
            }
        }
        Ok(())
    }

    /// Computes every cell, margins included, on `threads` threads.
    pub fn finish(self, threads: usize) -> Result<Table, SdcError> {
        let d = self.dimensions.len();
        // Codes in display order: numeric when every value parses as a number, else by text.
        let mut rank: Vec<Vec<u32>> = Vec::with_capacity(d);
        let mut sorted_values: Vec<Vec<String>> = Vec::with_capacity(d);
        for dict in &self.dicts {
            let mut order: Vec<usize> = (0..dict.values.len()).collect();
            let numeric: Option<Vec<f64>> = dict
                .values
                .iter()
                .map(|v| v.trim().parse::<f64>().ok())
                .collect();
            match numeric {
                Some(n) => order.sort_by(|&a, &b| {
                    n[a].total_cmp(&n[b])
                        .then(dict.values[a].cmp(&dict.values[b]))
                }),
                None => order.sort_by(|&a, &b| dict.values[a].cmp(&dict.values[b])),
            }
            let mut r = vec![0u32; order.len()];
            for (pos, &code) in order.iter().enumerate() {
                r[code] = pos as u32;
            }
            rank.push(r);
            sorted_values.push(order.iter().map(|&c| dict.values[c].clone()).collect());
        }
        let radix: Vec<usize> = self.dicts.iter().map(|x| x.values.len() + 1).collect();
        let ncells = radix.iter().try_fold(1usize, |acc, &r| {
            acc.checked_mul(r).filter(|&n| n <= MAX_CELLS)
        });
        let Some(ncells) = ncells else {
            return Err(SdcError::Input(format!(
                "the table by {} would have more than {MAX_CELLS} cells (margins included); use fewer or coarser dimensions",
                self.dimensions.join(", ")
            )));
        };
        let mut stride = vec![1usize; d];
        for j in (0..d.saturating_sub(1)).rev() {
            stride[j] = stride[j + 1] * radix[j + 1];
        }
        let geometry = Geometry {
            d,
            rank,
            radix: radix.clone(),
            stride,
        };
        let threads = threads.clamp(1, BUCKETS);
        let buckets = self.buckets;
        let mut accs: Vec<Vec<Acc>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let geometry = &geometry;
                    let mine: Vec<&Vec<Rec>> = buckets.iter().skip(t).step_by(threads).collect();
                    scope.spawn(move || {
                        let mut acc = vec![Acc::EMPTY; ncells];
                        let mut scratch = Scratch::default();
                        for bucket in mine {
                            let mut recs = bucket.clone();
                            recs.sort_unstable_by_key(|r| (r.unit, r.key));
                            geometry.fold(&recs, &mut acc, &mut scratch);
                        }
                        acc
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("aggregation thread"))
                .collect()
        });
        let mut acc = accs.pop().expect("at least one thread");
        for other in accs {
            for (a, b) in acc.iter_mut().zip(other) {
                a.merge(&b);
            }
        }

        let mut cells = Vec::with_capacity(ncells);
        let mut digits = vec![0usize; d];
        for a in &acc {
            let key: Vec<String> = (0..d)
                .map(|j| {
                    if digits[j] == radix[j] - 1 {
                        TOTAL.to_string()
                    } else {
                        sorted_values[j][digits[j]].clone()
                    }
                })
                .collect();
            cells.push(a.cell(key, self.statistic));
            for j in (0..d).rev() {
                digits[j] += 1;
                if digits[j] < radix[j] {
                    break;
                }
                digits[j] = 0;
            }
        }
        Ok(Table {
            name: self.name,
            dimensions: self.dimensions,
            statistic: self.statistic,
            measure: self.measure,
            cells,
            overlapping: false,
            dimension_ids: Vec::new(),
            cell_links: Vec::new(),
        })
    }
}

struct Geometry {
    d: usize,
    rank: Vec<Vec<u32>>,
    radix: Vec<usize>,
    stride: Vec<usize>,
}

#[derive(Default)]
struct Scratch {
    /// (finest-cell offsets per dimension, unit aggregate) of the current unit.
    entries: Vec<([usize; MAX_DIMS], UnitAgg)>,
    cells: Vec<(usize, UnitAgg)>,
}

#[derive(Clone, Copy)]
struct UnitAgg {
    rows: u64,
    nonnull_rows: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl UnitAgg {
    fn of(value: f64) -> UnitAgg {
        if value.is_nan() {
            UnitAgg {
                rows: 1,
                nonnull_rows: 0,
                sum: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
            }
        } else {
            UnitAgg {
                rows: 1,
                nonnull_rows: 1,
                sum: value,
                min: value,
                max: value,
            }
        }
    }
    fn add(&mut self, o: &UnitAgg) {
        self.rows += o.rows;
        self.nonnull_rows += o.nonnull_rows;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
}

impl Geometry {
    /// Adds the units of `recs` (sorted by unit, then key) to every cell they fall in.
    fn fold(&self, recs: &[Rec], acc: &mut [Acc], scratch: &mut Scratch) {
        let patterns = 1usize << self.d;
        let mut i = 0;
        while i < recs.len() {
            let unit = recs[i].unit;
            scratch.entries.clear();
            while i < recs.len() && recs[i].unit == unit {
                let key = recs[i].key;
                let mut agg = UnitAgg::of(recs[i].value);
                i += 1;
                while i < recs.len() && recs[i].unit == unit && recs[i].key == key {
                    agg.add(&UnitAgg::of(recs[i].value));
                    i += 1;
                }
                let mut offsets = [0usize; MAX_DIMS];
                for (j, o) in offsets.iter_mut().enumerate().take(self.d) {
                    *o = self.rank[j][((key >> (16 * j)) & 0xffff) as usize] as usize
                        * self.stride[j];
                }
                scratch.entries.push((offsets, agg));
            }
            for m in 0..patterns {
                let cell_of = |offsets: &[usize]| -> usize {
                    (0..self.d)
                        .map(|j| {
                            if m >> j & 1 == 1 {
                                (self.radix[j] - 1) * self.stride[j]
                            } else {
                                offsets[j]
                            }
                        })
                        .sum()
                };
                if scratch.entries.len() == 1 {
                    let (offsets, agg) = &scratch.entries[0];
                    acc[cell_of(offsets)].add_unit(agg);
                    continue;
                }
                scratch.cells.clear();
                for (offsets, agg) in &scratch.entries {
                    scratch.cells.push((cell_of(offsets), *agg));
                }
                scratch.cells.sort_unstable_by_key(|c| c.0);
                let mut k = 0;
                while k < scratch.cells.len() {
                    let (cell, mut agg) = scratch.cells[k];
                    k += 1;
                    while k < scratch.cells.len() && scratch.cells[k].0 == cell {
                        agg.add(&scratch.cells[k].1);
                        k += 1;
                    }
                    acc[cell].add_unit(&agg);
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Acc {
    rows: u64,
    nonnull_rows: u64,
    units: u64,
    nonnull_units: u64,
    nonzero_units: u64,
    sum: f64,
    abs_total: f64,
    top1: f64,
    top2: f64,
    min: f64,
    max: f64,
    has_negative: bool,
}

impl Acc {
    const EMPTY: Acc = Acc {
        rows: 0,
        nonnull_rows: 0,
        units: 0,
        nonnull_units: 0,
        nonzero_units: 0,
        sum: 0.0,
        abs_total: 0.0,
        top1: 0.0,
        top2: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        has_negative: false,
    };

    fn add_unit(&mut self, u: &UnitAgg) {
        self.rows += u.rows;
        self.units += 1;
        if u.nonnull_rows == 0 {
            return;
        }
        self.nonnull_rows += u.nonnull_rows;
        self.nonnull_units += 1;
        self.nonzero_units += u64::from(u.sum != 0.0);
        self.sum += u.sum;
        let abs = u.sum.abs();
        self.abs_total += abs;
        self.push_top(abs);
        self.has_negative |= u.sum < 0.0;
        self.min = self.min.min(u.min);
        self.max = self.max.max(u.max);
    }

    fn push_top(&mut self, x: f64) {
        if x > self.top1 {
            self.top2 = self.top1;
            self.top1 = x;
        } else if x > self.top2 {
            self.top2 = x;
        }
    }

    /// Merges another thread's accumulator: units are disjoint between threads.
    fn merge(&mut self, o: &Acc) {
        self.rows += o.rows;
        self.nonnull_rows += o.nonnull_rows;
        self.units += o.units;
        self.nonnull_units += o.nonnull_units;
        self.nonzero_units += o.nonzero_units;
        self.sum += o.sum;
        self.abs_total += o.abs_total;
        self.push_top(o.top1);
        self.push_top(o.top2);
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.has_negative |= o.has_negative;
    }

    fn cell(&self, key: Vec<String>, statistic: Statistic) -> Cell {
        let has_data = self.nonnull_rows > 0;
        let value = match statistic {
            Statistic::Count => self.rows as f64,
            Statistic::Sum => self.sum,
            Statistic::Mean | Statistic::Share if has_data => self.sum / self.nonnull_rows as f64,
            Statistic::Min if has_data => self.min,
            Statistic::Max if has_data => self.max,
            _ => f64::NAN,
        };
        let count = statistic == Statistic::Count;
        Cell {
            key,
            value,
            rows: self.rows,
            units: self.units,
            nonnull_units: if count {
                self.units
            } else {
                self.nonnull_units
            },
            nonzero_units: if count {
                self.units
            } else {
                self.nonzero_units
            },
            contributions: (!count).then_some(Contributions {
                total: self.sum,
                abs_total: self.abs_total,
                top1: self.top1,
                top2: self.top2,
                has_negative: self.has_negative,
            }),
        }
    }
}
