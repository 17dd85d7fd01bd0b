//! Re-identification risk of an extract, judged against the population it was drawn from.
//!
//! kluis holds the whole population, so a delivered record's population frequency `F` is
//! counted, not estimated: the number of persons whose person-year in the same year has the
//! same quasi-identifier values. Journalist risk is `1/F`; an intruder who links each delivered
//! record to a random member of its population class re-identifies `Σ 1/F` records on average.
//!
//! Two measures, each with its limit from the authorisation's `[risk]`:
//! - **person-years**: every delivered person-year must have `F >= k`;
//! - **trajectories**: a person's year-by-year sequence of trajectory quasi-identifiers, judged
//!   the same way against every population person's sequence; the mean of `1/F` over the sampled
//!   persons (the expected share re-identified) must not exceed `max_trajectory_risk`.
//!
//! A value that is null in the extract but not in the population was suppressed: it matches
//! any value. Local suppression ([`suppress`]) blanks, in each person-year with `F < k`, the
//! fewest quasi-identifiers it can find greedily (each step the one whose removal makes `F`
//! largest) until `F >= k`.
//!
//! Values are compared through 64-bit hashes of their column and text; two different tuples
//! share a hash with a probability of about 10⁻⁷ at full scale, which would only make a record
//! look safer by one person.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::kernels::nullif::nullif;
use arrow::datatypes::{DataType, Int32Type, Int64Type};
use kluis_project::RiskLimits;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::coding::Columns;
use crate::error::{Error, Result};
use crate::population::CodedPopulation;
use crate::{PSEUDONYM, YEAR};

/// Risk of one kind of record (person-years or trajectories) against the population.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskMeasure {
    /// Delivered records judged.
    pub records: u64,
    /// Records judged against: the population's person-years or persons.
    pub population_records: u64,
    /// Delivered records whose tuple is unique in the population (`F = 1`).
    pub population_uniques: u64,
    /// Delivered records with `F < k`.
    pub below_k: u64,
    /// The smallest `F` of a delivered record.
    pub min_frequency: u64,
    /// Mean and maximum of `1/F`.
    pub journalist_risk_mean: f64,
    pub journalist_risk_max: f64,
    /// `Σ 1/F`: correct re-identifications an intruder linking to the population can expect.
    pub expected_reidentifications: f64,
}

/// What local suppression did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuppressionReport {
    /// Person-years in which at least one value was blanked.
    pub records: u64,
    /// Values blanked, per quasi-identifier.
    pub cells: BTreeMap<String, u64>,
    /// Information per person-year (bits) of each quasi-identifier: its entropy before, and
    /// after blanking, where a blanked value `x` loses its `-log2 p(x)` (ARX's non-uniform
    /// entropy).
    pub entropy_before: BTreeMap<String, f64>,
    pub entropy_after: BTreeMap<String, f64>,
}

/// `risk.json`: the risk of the delivered extract, the limits, and what was done about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskReport {
    pub quasi_identifiers: Vec<String>,
    pub trajectory_quasi_identifiers: Vec<String>,
    pub k: u32,
    pub max_trajectory_risk: f64,
    pub person_years: RiskMeasure,
    pub trajectories: RiskMeasure,
    /// Each limit the extract exceeds, in words; empty when it meets them all.
    pub exceeded: Vec<String>,
    /// Set when local suppression was applied before delivery.
    pub suppression: Option<SuppressionReport>,
    /// Set when variables were re-coded to coarser codings before delivery.
    #[serde(default)]
    pub recoding: Option<crate::recode::RecodingReport>,
    /// The steward's written reason for delivering despite `exceeded`.
    pub accepted_with_reason: Option<String>,
}

impl RiskReport {
    pub fn within_limits(&self) -> bool {
        self.exceeded.is_empty()
    }
}

/// Column positions of the quasi-identifiers in a schema.
struct Layout {
    person_year: Vec<usize>,
    trajectory: Vec<usize>,
}

impl Layout {
    fn new(limits: &RiskLimits, schema: &arrow::datatypes::Schema) -> Result<Layout> {
        let positions = |names: &[String]| -> Result<Vec<usize>> {
            names
                .iter()
                .map(|n| schema.index_of(n).map_err(|_| Error::RiskColumn(n.clone())))
                .collect()
        };
        Ok(Layout {
            person_year: positions(&limits.quasi_identifiers)?,
            trajectory: positions(&limits.trajectory_quasi_identifiers)?,
        })
    }
}

const NULL_HASH: u64 = 0x9e37_79b9_7f4a_7c15;

/// Per-row value hashes of one column (nulls get [`NULL_HASH`]), seeded by the column's place
/// among the quasi-identifiers so equal text in two columns differs.
fn column_hashes(column: &ArrayRef, seed: usize) -> Result<Vec<u64>> {
    let seed = foldhash::fast::FixedState::with_seed(seed as u64);
    let hash_bytes = |bytes: &[u8]| {
        let mut h = seed.build_hasher();
        h.write(bytes);
        h.finish()
    };
    let rows = column.len();
    Ok(match column.data_type() {
        DataType::Utf8 => {
            let a = column.as_string::<i32>();
            (0..rows)
                .map(|r| {
                    if a.is_null(r) {
                        NULL_HASH
                    } else {
                        hash_bytes(a.value(r).as_bytes())
                    }
                })
                .collect()
        }
        // The population's compact form: each code hashed once, as the text form hashes it.
        DataType::Dictionary(_, values) if **values == DataType::Utf8 => {
            let a = column.as_any_dictionary();
            let texts = a.values().as_string::<i32>();
            let value_hashes: Vec<u64> = (0..texts.len())
                .map(|v| {
                    if texts.is_null(v) {
                        NULL_HASH
                    } else {
                        hash_bytes(texts.value(v).as_bytes())
                    }
                })
                .collect();
            if value_hashes.is_empty() {
                // No values: every row is NULL (and `normalized_keys` would panic).
                return Ok(vec![NULL_HASH; rows]);
            }
            let keys = a.normalized_keys();
            (0..rows)
                .map(|r| {
                    if column.is_null(r) {
                        NULL_HASH
                    } else {
                        value_hashes[keys[r]]
                    }
                })
                .collect()
        }
        DataType::Int32 => {
            let a = column.as_primitive::<Int32Type>();
            (0..rows)
                .map(|r| {
                    if a.is_null(r) {
                        NULL_HASH
                    } else {
                        hash_bytes(&a.value(r).to_le_bytes())
                    }
                })
                .collect()
        }
        other => return Err(Error::RiskColumnType(format!("{other}"))),
    })
}

/// The hashes of the columns at `positions`, each seeded by its place in that list.
fn hashes_of(batch: &RecordBatch, positions: &[usize]) -> Result<Vec<Vec<u64>>> {
    positions
        .iter()
        .enumerate()
        .map(|(seed, &c)| column_hashes(batch.column(c), seed))
        .collect()
}

/// One year of the population, hashed: its pseudonyms (ascending), and per row the hashes of
/// the person-year and the trajectory quasi-identifiers.
struct HashedYear {
    year: i32,
    pseudonyms: Vec<u32>,
    person_year: Vec<Vec<u64>>,
    trajectory: Vec<Vec<u64>>,
}

/// Codes and hashes the population's years on two threads while the caller counts; only the
/// quasi-identifier columns are coded. Years arrive in any order (every use is per year or
/// order-free).
fn for_each_population_year(
    population: &CodedPopulation,
    coding: &Columns,
    limits: &RiskLimits,
    mut each: impl FnMut(HashedYear) -> Result<()>,
) -> Result<()> {
    let mut names = limits.quasi_identifiers.clone();
    names.extend(limits.trajectory_quasi_identifiers.iter().cloned());
    let columns = coding.keep(&names);
    let layout = Layout::new(limits, &columns.schema())?;
    let years: Vec<i32> = population.years().collect();
    const PRODUCERS: usize = 2;
    std::thread::scope(|scope| {
        // A rendezvous channel: a hashed year (a few hundred MB at full scale) waits for the
        // counter instead of piling up.
        let (send, receive) = std::sync::mpsc::sync_channel::<Result<HashedYear>>(0);
        for producer in 0..PRODUCERS {
            let (send, columns, layout, years) = (send.clone(), &columns, &layout, &years);
            scope.spawn(move || {
                for &year in years.iter().skip(producer).step_by(PRODUCERS) {
                    let hashed = population
                        .year_batch_of(year, None, columns)
                        .and_then(|batch| {
                            Ok(HashedYear {
                                year,
                                pseudonyms: pseudonyms(&batch),
                                person_year: hashes_of(&batch, &layout.person_year)?,
                                trajectory: hashes_of(&batch, &layout.trajectory)?,
                            })
                        });
                    let failed = hashed.is_err();
                    if send.send(hashed).is_err() || failed {
                        return;
                    }
                }
            });
        }
        drop(send);
        for hashed in receive {
            each(hashed?)?;
        }
        Ok(())
    })
}

/// Combines the hashes of the columns in `mask` (bit i = the i-th quasi-identifier).
fn combine(hashes: &[Vec<u64>], mask: u32, row: usize) -> u64 {
    combine_values(hashes.iter().map(|column| column[row]), mask)
}

/// [`combine`] over one row's column hashes, given in column order.
fn combine_values(values: impl Iterator<Item = u64>, mask: u32) -> u64 {
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    for (i, value) in values.enumerate() {
        if mask & (1 << i) != 0 {
            h = (h ^ value).wrapping_mul(0x0100_0000_01b3).rotate_left(29);
        }
    }
    h
}

/// Population frequencies of the tuples asked for: per mask of known quasi-identifiers, the keys
/// of the delivered person-years with that mask. One scan of the year's population for all the
/// masks, counting only the keys asked for (a few thousand), so no class table of the whole
/// population is ever built. The rows are split over two threads; most rows match no key, which
/// a small bit filter per mask tells before the map is asked.
fn frequencies(
    hashes: &[Vec<u64>],
    queries: &FxHashMap<u32, Vec<u64>>,
) -> FxHashMap<(u32, u64), u32> {
    let rows = hashes.first().map_or(0, Vec::len);
    let masks: Vec<MaskQuery> = queries
        .iter()
        .map(|(&mask, keys)| MaskQuery::new(mask, hashes.len(), keys))
        .collect();
    const THREADS: usize = 2;
    let chunk = rows.div_ceil(THREADS).max(1);
    let counted: Vec<Vec<FxHashMap<u64, u32>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..rows)
            .step_by(chunk)
            .map(|first| {
                let masks = &masks;
                scope.spawn(move || count_rows(hashes, masks, first..(first + chunk).min(rows)))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a counting thread panicked"))
            .collect()
    });
    let mut out: FxHashMap<(u32, u64), u32> = FxHashMap::default();
    for (m, query) in masks.iter().enumerate() {
        for &key in query.counts.keys() {
            let total = counted.iter().map(|part| part[m][&key]).sum();
            out.insert((query.mask, key), total);
        }
    }
    out
}

/// The keys asked for under one mask, with what the scan needs to reject a row quickly.
struct MaskQuery {
    mask: u32,
    /// The quasi-identifiers in the mask, in column order (as [`combine_values`] takes them).
    columns: Vec<usize>,
    /// Bit `key % FILTER_BITS` is set for every key asked for.
    filter: Vec<u64>,
    counts: FxHashMap<u64, u32>,
}

const FILTER_BITS: u64 = 1 << 14;

impl MaskQuery {
    fn new(mask: u32, columns: usize, keys: &[u64]) -> MaskQuery {
        let mut filter = vec![0u64; (FILTER_BITS / 64) as usize];
        for &k in keys {
            let bit = k % FILTER_BITS;
            filter[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        MaskQuery {
            mask,
            columns: (0..columns).filter(|&i| mask & (1 << i) != 0).collect(),
            filter,
            counts: keys.iter().map(|&k| (k, 0)).collect(),
        }
    }

    fn may_hold(&self, key: u64) -> bool {
        let bit = key % FILTER_BITS;
        self.filter[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }
}

/// Counts the asked-for keys of every mask over `rows` of the population.
fn count_rows(
    hashes: &[Vec<u64>],
    masks: &[MaskQuery],
    rows: std::ops::Range<usize>,
) -> Vec<FxHashMap<u64, u32>> {
    let mut counts: Vec<FxHashMap<u64, u32>> = masks.iter().map(|m| m.counts.clone()).collect();
    for r in rows {
        for (query, counts) in masks.iter().zip(&mut counts) {
            let key = combine_values(query.columns.iter().map(|&c| hashes[c][r]), u32::MAX);
            if query.may_hold(key)
                && let Some(c) = counts.get_mut(&key)
            {
                *c += 1;
            }
        }
    }
    counts
}

fn pseudonyms(batch: &RecordBatch) -> Vec<u32> {
    let column = batch
        .column_by_name(PSEUDONYM)
        .expect("extract schema")
        .as_primitive::<Int64Type>();
    column.values().iter().map(|&p| p as u32).collect()
}

/// Running totals of `1/F`.
#[derive(Default)]
struct Tally {
    records: u64,
    uniques: u64,
    below_k: u64,
    min: u64,
    sum: f64,
    max: f64,
}

impl Tally {
    fn add(&mut self, frequency: u32, k: u32) {
        // A delivered record is itself in the population, so F >= 1.
        let f = frequency.max(1);
        let risk = 1.0 / f as f64;
        self.records += 1;
        self.uniques += u64::from(f == 1);
        self.below_k += u64::from(f < k);
        self.min = if self.records == 1 {
            f as u64
        } else {
            self.min.min(f as u64)
        };
        self.sum += risk;
        self.max = self.max.max(risk);
    }

    fn measure(&self, population_records: u64) -> RiskMeasure {
        RiskMeasure {
            records: self.records,
            population_records,
            population_uniques: self.uniques,
            below_k: self.below_k,
            min_frequency: self.min,
            journalist_risk_mean: if self.records == 0 {
                0.0
            } else {
                self.sum / self.records as f64
            },
            journalist_risk_max: self.max,
            expected_reidentifications: self.sum,
        }
    }
}

/// The delivered rows' positions per year (the extract is sorted by pseudonym, then year).
fn rows_by_year(delivered: &RecordBatch) -> BTreeMap<i32, Vec<usize>> {
    let years = delivered
        .column_by_name(YEAR)
        .expect("extract schema")
        .as_primitive::<Int32Type>();
    let mut out: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (row, year) in years.values().iter().enumerate() {
        out.entry(*year).or_default().push(row);
    }
    out
}

/// What [`judge`] found, with the mask of known quasi-identifiers of each delivered row.
struct Assessment {
    report: RiskReport,
    known: Vec<u32>,
}

/// Judges the delivered rows (`delivered`, in the extract schema) against the population.
pub fn assess(
    population: &CodedPopulation,
    delivered: &RecordBatch,
    limits: &RiskLimits,
) -> Result<RiskReport> {
    Ok(judge(population, population.columns(), delivered, limits, false)?.report)
}

/// [`assess`] of person-years coded in `coding` (another coding of the same authorisation's
/// variables, as re-coding tries).
pub(crate) fn assess_coded(
    population: &CodedPopulation,
    coding: &Columns,
    delivered: &RecordBatch,
    limits: &RiskLimits,
) -> Result<RiskReport> {
    Ok(judge(population, coding, delivered, limits, false)?.report)
}

/// One pass over the population, year by year. With `suppress`, each delivered person-year with
/// `F < k` loses, greedily, the quasi-identifier whose removal leaves the largest class, until
/// `F >= k`; the figures are those after suppression.
fn judge(
    population: &CodedPopulation,
    coding: &Columns,
    delivered: &RecordBatch,
    limits: &RiskLimits,
    suppress: bool,
) -> Result<Assessment> {
    if limits.quasi_identifiers.len() > 31 {
        return Err(Error::RiskColumn("more than 31 quasi-identifiers".into()));
    }
    let layout = Layout::new(limits, &delivered.schema())?;
    let full: u32 = (1u32 << layout.person_year.len()) - 1;
    let delivered_hashes = hashes_of(delivered, &layout.person_year)?;
    let delivered_pseudonyms = pseudonyms(delivered);
    let by_year = rows_by_year(delivered);

    let mut trajectory = vec![0u64; population.persons() + 1];
    let mut population_person_years = 0u64;
    let mut known = vec![full; delivered.num_rows()];
    let mut frequency = vec![0u32; delivered.num_rows()];
    for_each_population_year(population, coding, limits, |hashed| {
        let year = hashed.year;
        population_person_years += hashed.pseudonyms.len() as u64;
        // Trajectories: an order-free sum of (year, values) hashes per person.
        let all = (1u32 << hashed.trajectory.len()) - 1;
        for (r, &p) in hashed.pseudonyms.iter().enumerate() {
            let step = combine(&hashed.trajectory, all, r) ^ (year as u64).wrapping_mul(NULL_HASH);
            trajectory[p as usize] =
                trajectory[p as usize].wrapping_add(step.wrapping_mul(0xff51_afd7_ed55_8ccd));
        }
        let population = &hashed.person_year;
        // Each delivered person-year of this year: its delivered row, its population row, the
        // mask of its known quasi-identifiers (not blanked: null in the extract where the
        // population has a value), and its frequency.
        let mut rows: Vec<(usize, usize, u32, u32)> = Vec::new();
        for &row in by_year.get(&year).map_or(&[][..], |v| v) {
            let Ok(at) = hashed.pseudonyms.binary_search(&delivered_pseudonyms[row]) else {
                return Err(Error::NotInPopulation { year });
            };
            let mut mask = full;
            for (i, column) in delivered_hashes.iter().enumerate() {
                if column[row] == NULL_HASH && population[i][at] != NULL_HASH {
                    mask &= !(1 << i);
                }
            }
            rows.push((row, at, mask, 0));
        }
        let mut queries: FxHashMap<u32, Vec<u64>> = FxHashMap::default();
        for &(_, at, mask, _) in &rows {
            queries
                .entry(mask)
                .or_default()
                .push(combine(population, mask, at));
        }
        let counted = frequencies(population, &queries);
        for (_, at, mask, f) in &mut rows {
            *f = counted[&(*mask, combine(population, *mask, *at))];
        }
        // Suppression, greedily and level by level: every person-year still below k blanks the
        // one value (among those there) whose removal leaves the largest class.
        if suppress {
            loop {
                let pending: Vec<usize> =
                    (0..rows.len()).filter(|&j| rows[j].3 < limits.k).collect();
                let candidates = |&(_, at, mask, _): &(usize, usize, u32, u32)| {
                    (0..layout.person_year.len())
                        .filter(move |&i| mask & (1 << i) != 0 && population[i][at] != NULL_HASH)
                        .map(move |i| mask & !(1 << i))
                };
                let mut queries: FxHashMap<u32, Vec<u64>> = FxHashMap::default();
                for &j in &pending {
                    for fewer in candidates(&rows[j]) {
                        queries
                            .entry(fewer)
                            .or_default()
                            .push(combine(population, fewer, rows[j].1));
                    }
                }
                if queries.is_empty() {
                    break;
                }
                let counted = frequencies(population, &queries);
                for &j in &pending {
                    let at = rows[j].1;
                    if let Some(best) = candidates(&rows[j])
                        .map(|fewer| (fewer, counted[&(fewer, combine(population, fewer, at))]))
                        .max_by_key(|&(_, f)| f)
                    {
                        (rows[j].2, rows[j].3) = best;
                    }
                }
            }
        }
        for (row, _, mask, f) in rows {
            known[row] = mask;
            frequency[row] = f;
        }
        Ok(())
    })?;

    // Summed in row order, so the figures do not depend on the order years were counted in.
    let mut person_years = Tally::default();
    for f in frequency {
        person_years.add(f, limits.k);
    }

    // Trajectory classes over every population person with a qualifying year.
    let mut classes: FxHashMap<u64, u32> = FxHashMap::default();
    let mut population_persons = 0u64;
    for &t in &trajectory[1..] {
        if t != 0 {
            population_persons += 1;
            *classes.entry(t).or_insert(0) += 1;
        }
    }
    let mut sampled = delivered_pseudonyms;
    sampled.sort_unstable();
    sampled.dedup();
    let mut trajectories = Tally::default();
    for p in sampled {
        trajectories.add(
            classes.get(&trajectory[p as usize]).copied().unwrap_or(0),
            0,
        );
    }
    let person_years = person_years.measure(population_person_years);
    let trajectories = trajectories.measure(population_persons);
    let mut exceeded = Vec::new();
    if person_years.below_k > 0 {
        exceeded.push(format!(
            "{} delivered person-years share their quasi-identifiers with fewer than k = {} persons of the population that year (smallest: {})",
            person_years.below_k, limits.k, person_years.min_frequency
        ));
    }
    if trajectories.journalist_risk_mean > limits.max_trajectory_risk {
        exceeded.push(format!(
            "the expected share of sampled persons re-identified by their trajectory is {:.4}, above the limit {}",
            trajectories.journalist_risk_mean, limits.max_trajectory_risk
        ));
    }
    Ok(Assessment {
        report: RiskReport {
            quasi_identifiers: limits.quasi_identifiers.clone(),
            trajectory_quasi_identifiers: limits.trajectory_quasi_identifiers.clone(),
            k: limits.k,
            max_trajectory_risk: limits.max_trajectory_risk,
            person_years,
            trajectories,
            exceeded,
            suppression: None,
            recoding: None,
            accepted_with_reason: None,
        },
        known,
    })
}

/// Entropy in bits per row of a column's values.
pub(crate) fn column_entropy(column: &ArrayRef) -> Result<f64> {
    let hashes = column_hashes(column, 0)?;
    let none = BooleanArray::from(vec![false; hashes.len()]);
    Ok(information(&hashes, &none).0)
}

/// The information per row of one hashed column (its entropy in bits), and what is left when
/// the rows in `blank` lose theirs.
fn information(hashes: &[u64], blank: &BooleanArray) -> (f64, f64) {
    let mut counts: FxHashMap<u64, u64> = FxHashMap::default();
    for &h in hashes {
        *counts.entry(h).or_insert(0) += 1;
    }
    let n = hashes.len() as f64;
    let bits = |h: &u64| -(counts[h] as f64 / n).log2();
    let before: f64 = hashes.iter().map(bits).sum::<f64>() / n;
    let lost: f64 = hashes
        .iter()
        .zip(blank.values().iter())
        .filter(|(_, b)| *b)
        .map(|(h, _)| bits(h))
        .sum::<f64>()
        / n;
    (before, before - lost)
}

/// Local suppression: blanks quasi-identifiers in the delivered person-years whose population
/// frequency is below k (see [`judge`]). Returns the suppressed rows and their risk report,
/// which says how many values went and the entropy of each quasi-identifier before and after.
pub fn suppress(
    population: &CodedPopulation,
    delivered: &RecordBatch,
    limits: &RiskLimits,
) -> Result<(RecordBatch, RiskReport)> {
    let layout = Layout::new(limits, &delivered.schema())?;
    let Assessment { mut report, known } =
        judge(population, population.columns(), delivered, limits, true)?;
    let schema = delivered.schema();
    let mut columns: Vec<ArrayRef> = delivered.columns().to_vec();
    let mut cells = BTreeMap::new();
    let mut entropy_before = BTreeMap::new();
    let mut entropy_after = BTreeMap::new();
    let mut blanked_rows = vec![false; known.len()];
    for (i, &c) in layout.person_year.iter().enumerate() {
        let name = schema.field(c).name().clone();
        let original = &columns[c];
        // Only values that were there count as blanked (a missing fact stays missing).
        let blank: BooleanArray = known
            .iter()
            .enumerate()
            .map(|(r, m)| Some(m & (1 << i) == 0 && original.is_valid(r)))
            .collect();
        for (r, b) in blank.iter().enumerate() {
            blanked_rows[r] |= b == Some(true);
        }
        let (before, after) = information(&column_hashes(original, i)?, &blank);
        entropy_before.insert(name.clone(), before);
        entropy_after.insert(name.clone(), after);
        let count = blank.true_count() as u64;
        if count > 0 {
            columns[c] = nullif(original, &blank).map_err(Error::arrow("suppressing"))?;
        }
        cells.insert(name, count);
    }
    let suppressed = RecordBatch::try_new(schema, columns).map_err(Error::arrow("suppressing"))?;
    report.suppression = Some(SuppressionReport {
        records: blanked_rows.iter().filter(|&&b| b).count() as u64,
        cells,
        entropy_before,
        entropy_after,
    });
    Ok((suppressed, report))
}
