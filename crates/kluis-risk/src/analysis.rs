//! Sample risk of a microdata table: k-anonymity, uniques, l-diversity, prosecutor risk.
//!
//! Definitions (n records, K the threshold):
//! - a record's *frequency* `f` is the number of records that share its quasi-identifier tuple
//!   (its equivalence class), itself included;
//! - `k_min` is the smallest frequency, `records_below_k` counts records with `f < K`,
//!   `sample_uniques` counts records with `f = 1`;
//! - distinct l-diversity of a sensitive column is the smallest number of distinct values in a
//!   class; entropy l-diversity is `exp(min over classes of −Σ p ln p)`, as pycanon defines them
//!   (pycanon reports the integer part);
//! - prosecutor risk of a record is `1/f`; the report gives its mean and maximum and how many
//!   records are above a threshold (default `1/K`, so those are exactly the records with `f < K`).
//!
//! With a unit column the same figures are counted in distinct units: a class's unit count is
//! the number of distinct units among its records; `units_below_k` counts units with a record in
//! a class of fewer than K units, `unit_uniques` the units alone in some class. Without a unit
//! column every record is its own unit.
//!
//! Missing values are a value of their own ([`MissingPolicy::OwnValue`]), or wildcards
//! ([`MissingPolicy::MatchesAny`], as in sdcMicro's `freqCalc`): two records are *compatible*
//! when they agree on every quasi-identifier where both have a value. A record's frequency is
//! then the number of records compatible with it, itself included; its unit count and its
//! sensitive values are taken over those same compatible records. `classes` still counts the
//! distinct tuples (patterns), missing included. Compatibility is not transitive, so the classes
//! overlap: a record `(a, ∗)` is counted in the frequency of `(a, x)` and of `(a, y)`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::classes::{Classes, group};
use crate::coded::{CodedColumn, CodedTable, MISSING};
use crate::error::{Result, RiskError};
use crate::hash::{FastMap, fast_map};

/// How a missing quasi-identifier value is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingPolicy {
    /// Missing is one more category: it matches only missing.
    #[default]
    OwnValue,
    /// Missing matches any value (sdcMicro's convention).
    MatchesAny,
}

/// What to measure against.
#[derive(Debug, Clone, Copy)]
pub struct RiskOptions {
    /// The k of k-anonymity.
    pub k: u32,
    pub missing: MissingPolicy,
    /// Prosecutor-risk threshold; `None` means `1/k`.
    pub threshold: Option<f64>,
}

impl Default for RiskOptions {
    fn default() -> Self {
        Self {
            k: 5,
            missing: MissingPolicy::OwnValue,
            threshold: None,
        }
    }
}

/// l-diversity of one sensitive column.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LDiversity {
    /// Smallest number of distinct values in a class.
    pub distinct: u64,
    /// `exp` of the smallest entropy (natural log) of the values in a class.
    pub entropy: f64,
}

/// Prosecutor risk, `1/f` per record.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProsecutorRisk {
    pub mean: f64,
    pub max: f64,
    pub threshold: f64,
    pub records_above: u64,
    pub share_above: f64,
}

/// The sample risk report; serialises to the JSON `kluis risk --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct RiskReport {
    pub quasi_identifiers: Vec<String>,
    pub k: u32,
    pub missing_matches_any: bool,
    pub records: u64,
    pub units: u64,
    pub classes: u64,
    pub k_min: u64,
    pub records_below_k: u64,
    pub sample_uniques: u64,
    pub l_diversity: BTreeMap<String, LDiversity>,
    pub prosecutor_risk: ProsecutorRisk,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units_k_min: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units_below_k: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_uniques: Option<u64>,
    /// Frequency `f` of each record (see the module documentation).
    #[serde(skip)]
    pub record_frequency: Vec<u32>,
}

impl RiskReport {
    /// Records whose frequency is below `k`: the ones that break k-anonymity.
    pub fn records_breaking_k(&self) -> Vec<usize> {
        self.record_frequency
            .iter()
            .enumerate()
            .filter(|&(_, &f)| f < self.k)
            .map(|(r, _)| r)
            .collect()
    }
}

/// Measures the sample risk of `table` over the named columns.
pub fn analyse(
    table: &CodedTable,
    quasi_identifiers: &[&str],
    unit: Option<&str>,
    sensitive: &[&str],
    options: &RiskOptions,
) -> Result<RiskReport> {
    if options.k == 0 {
        return Err(RiskError::Option("k must be at least 1".into()));
    }
    let qi = table.code_slices(quasi_identifiers)?;
    let unit_column = unit.map(|u| table.column(u)).transpose()?;
    if let Some(column) = unit_column
        && let Some(row) = column.codes.iter().position(|&c| c == MISSING)
    {
        return Err(RiskError::MissingValue {
            column: column.name.clone(),
            row: row + 1,
            what: "a unit",
        });
    }
    let sensitive_columns: Vec<&CodedColumn> = sensitive
        .iter()
        .map(|s| table.column(s))
        .collect::<Result<_>>()?;
    let rows = table.rows();
    let (classes, compat, record_frequency) = frequencies(&qi, rows, options.missing)?;
    let (offsets, members) = classes.members();
    let members_of = |c: usize| &members[offsets[c]..offsets[c + 1]];

    let k = options.k;
    let k_min = record_frequency.iter().copied().min().unwrap_or(0);
    let records_below_k = record_frequency.iter().filter(|&&f| f < k).count() as u64;
    let sample_uniques = record_frequency.iter().filter(|&&f| f == 1).count() as u64;
    let threshold = options.threshold.unwrap_or(1.0 / f64::from(k));
    let mut risk_sum = 0.0;
    let mut records_above = 0u64;
    for &f in &record_frequency {
        let risk = 1.0 / f64::from(f);
        risk_sum += risk;
        if risk > threshold {
            records_above += 1;
        }
    }
    let n = rows as f64;
    let prosecutor_risk = ProsecutorRisk {
        mean: if rows == 0 { 0.0 } else { risk_sum / n },
        max: if k_min == 0 {
            0.0
        } else {
            1.0 / f64::from(k_min)
        },
        threshold,
        records_above,
        share_above: if rows == 0 {
            0.0
        } else {
            records_above as f64 / n
        },
    };

    let mut l_diversity = BTreeMap::new();
    for column in &sensitive_columns {
        let l = l_diversity_of(column, &classes, &compat, &members_of);
        l_diversity.insert(column.name.clone(), l);
    }

    let (units, units_k_min, units_below_k, unit_uniques) = match unit_column {
        None => (rows as u64, None, None, None),
        Some(column) => {
            let u = unit_figures(column, &classes, &compat, &members_of, k);
            (u.units, Some(u.k_min), Some(u.below_k), Some(u.uniques))
        }
    };

    Ok(RiskReport {
        quasi_identifiers: quasi_identifiers.iter().map(|s| (*s).to_owned()).collect(),
        k,
        missing_matches_any: options.missing == MissingPolicy::MatchesAny,
        records: rows as u64,
        units,
        classes: classes.len() as u64,
        k_min: u64::from(k_min),
        records_below_k,
        sample_uniques,
        l_diversity,
        prosecutor_risk,
        units_k_min,
        units_below_k,
        unit_uniques,
        record_frequency,
    })
}

/// Classes, their compatibility and each record's frequency under `policy`.
fn frequencies(
    qi: &[&[u32]],
    rows: usize,
    policy: MissingPolicy,
) -> Result<(Classes, Compat, Vec<u32>)> {
    let classes = group(qi, rows);
    let compat = match policy {
        MissingPolicy::MatchesAny if qi.iter().any(|c| c.contains(&MISSING)) => {
            Compat::lists(qi, &classes)?
        }
        _ => Compat::Identity,
    };
    let pattern_freq: Vec<u32> = (0..classes.len())
        .map(|c| {
            compat
                .of(c)
                .iter()
                .map(|&d| classes.sizes[d as usize])
                .sum()
        })
        .collect();
    let record_frequency = classes
        .class_of
        .iter()
        .map(|&c| pattern_freq[c as usize])
        .collect();
    Ok((classes, compat, record_frequency))
}

/// Each record's frequency (see the module documentation) over the given code columns.
pub fn record_frequencies(qi: &[&[u32]], rows: usize, policy: MissingPolicy) -> Result<Vec<u32>> {
    Ok(frequencies(qi, rows, policy)?.2)
}

/// For each pattern, the patterns whose records are compatible with it (itself included).
pub(crate) enum Compat {
    Identity,
    Lists(Vec<Vec<u32>>),
}

impl Compat {
    fn of(&self, c: usize) -> CompatSlice<'_> {
        match self {
            Compat::Identity => CompatSlice::One([c as u32]),
            Compat::Lists(lists) => CompatSlice::Many(&lists[c]),
        }
    }

    /// Compatible patterns under "missing matches any". Patterns are grouped by which
    /// quasi-identifiers they miss; for each pair of such groups the patterns are matched on the
    /// quasi-identifiers both groups have.
    pub(crate) fn lists(qi: &[&[u32]], classes: &Classes) -> Result<Self> {
        if qi.len() > 64 {
            return Err(RiskError::Option(
                "missing-as-wildcard supports at most 64 quasi-identifiers".into(),
            ));
        }
        let mut by_mask: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        for (c, &record) in classes.first.iter().enumerate() {
            let mask = qi
                .iter()
                .enumerate()
                .filter(|(_, col)| col[record as usize] == MISSING)
                .fold(0u64, |m, (j, _)| m | (1 << j));
            by_mask.entry(mask).or_default().push(c as u32);
        }
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); classes.len()];
        let project = |record: u32, shared: u64| -> Vec<u32> {
            (0..qi.len())
                .filter(|j| shared & (1 << j) != 0)
                .map(|j| qi[j][record as usize])
                .collect()
        };
        for (&mask_q, patterns_q) in &by_mask {
            for (&mask_p, patterns_p) in &by_mask {
                let shared = !(mask_p | mask_q);
                let mut index: FastMap<Vec<u32>, Vec<u32>> = fast_map(patterns_q.len());
                for &q in patterns_q {
                    index
                        .entry(project(classes.first[q as usize], shared))
                        .or_default()
                        .push(q);
                }
                for &p in patterns_p {
                    if let Some(found) = index.get(&project(classes.first[p as usize], shared)) {
                        lists[p as usize].extend_from_slice(found);
                    }
                }
            }
        }
        Ok(Compat::Lists(lists))
    }
}

enum CompatSlice<'a> {
    One([u32; 1]),
    Many(&'a [u32]),
}

impl CompatSlice<'_> {
    fn iter(&self) -> std::slice::Iter<'_, u32> {
        match self {
            CompatSlice::One(one) => one.iter(),
            CompatSlice::Many(many) => many.iter(),
        }
    }
}

fn l_diversity_of<'m>(
    column: &CodedColumn,
    classes: &Classes,
    compat: &Compat,
    members_of: &impl Fn(usize) -> &'m [u32],
) -> LDiversity {
    let missing_slot = column.cardinality();
    let mut counts = vec![0u32; missing_slot + 1];
    let mut touched: Vec<usize> = Vec::new();
    let mut min_distinct = u64::MAX;
    let mut min_entropy = f64::INFINITY;
    for c in 0..classes.len() {
        let mut total = 0u32;
        for &d in compat.of(c).iter() {
            for &r in members_of(d as usize) {
                let code = column.codes[r as usize];
                let slot = if code == MISSING {
                    missing_slot
                } else {
                    code as usize
                };
                if counts[slot] == 0 {
                    touched.push(slot);
                }
                counts[slot] += 1;
                total += 1;
            }
        }
        min_distinct = min_distinct.min(touched.len() as u64);
        let entropy = if touched.len() == 1 {
            0.0
        } else {
            let total = f64::from(total);
            touched
                .iter()
                .map(|&s| {
                    let p = f64::from(counts[s]) / total;
                    -p * p.ln()
                })
                .sum()
        };
        min_entropy = min_entropy.min(entropy);
        for &s in &touched {
            counts[s] = 0;
        }
        touched.clear();
    }
    if classes.is_empty() {
        return LDiversity {
            distinct: 0,
            entropy: 0.0,
        };
    }
    LDiversity {
        distinct: min_distinct,
        entropy: min_entropy.exp(),
    }
}

struct UnitFigures {
    units: u64,
    k_min: u64,
    below_k: u64,
    uniques: u64,
}

fn unit_figures<'m>(
    column: &CodedColumn,
    classes: &Classes,
    compat: &Compat,
    members_of: &impl Fn(usize) -> &'m [u32],
    k: u32,
) -> UnitFigures {
    let units = column.cardinality();
    let mut seen = vec![u32::MAX; units];
    let mut below = vec![false; units];
    let mut unique = vec![false; units];
    let mut k_min = u64::MAX;
    for c in 0..classes.len() {
        let mut distinct = 0u32;
        for &d in compat.of(c).iter() {
            for &r in members_of(d as usize) {
                let u = column.codes[r as usize] as usize;
                if seen[u] != c as u32 {
                    seen[u] = c as u32;
                    distinct += 1;
                }
            }
        }
        k_min = k_min.min(u64::from(distinct));
        for &r in members_of(c) {
            let u = column.codes[r as usize] as usize;
            if distinct < k {
                below[u] = true;
            }
            if distinct == 1 {
                unique[u] = true;
            }
        }
    }
    let present = {
        let mut present = vec![false; units];
        for &u in &column.codes {
            present[u as usize] = true;
        }
        present.iter().filter(|&&p| p).count() as u64
    };
    UnitFigures {
        units: present,
        k_min: if classes.is_empty() { 0 } else { k_min },
        below_k: below.iter().filter(|&&b| b).count() as u64,
        uniques: unique.iter().filter(|&&b| b).count() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(names: &[&str], rows: &[&[&str]]) -> CodedTable {
        let rows: Vec<Vec<Option<&str>>> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|v| if v.is_empty() { None } else { Some(*v) })
                    .collect()
            })
            .collect();
        CodedTable::from_rows(names, &rows).unwrap()
    }

    fn options(k: u32, missing: MissingPolicy) -> RiskOptions {
        RiskOptions {
            k,
            missing,
            threshold: None,
        }
    }

    /// Six records, five persons (p4 appears twice): classes (M,30)×3, (F,30)×2, (F,40)×1.
    fn people() -> CodedTable {
        table(
            &["sex", "age", "disease", "person"],
            &[
                &["M", "30", "flu", "p1"],
                &["M", "30", "cold", "p2"],
                &["M", "30", "flu", "p3"],
                &["F", "30", "flu", "p4"],
                &["F", "30", "flu", "p4"],
                &["F", "40", "cancer", "p5"],
            ],
        )
    }

    #[test]
    fn known_k_uniques_and_prosecutor_risk() {
        let t = people();
        let r = analyse(
            &t,
            &["sex", "age"],
            None,
            &[],
            &options(3, MissingPolicy::OwnValue),
        )
        .unwrap();
        assert_eq!((r.records, r.units, r.classes), (6, 6, 3));
        assert_eq!(r.k_min, 1);
        assert_eq!(r.records_below_k, 3);
        assert_eq!(r.sample_uniques, 1);
        assert_eq!(r.record_frequency, vec![3, 3, 3, 2, 2, 1]);
        assert_eq!(r.records_breaking_k(), vec![3, 4, 5]);
        assert!((r.prosecutor_risk.mean - 0.5).abs() < 1e-12);
        assert_eq!(r.prosecutor_risk.max, 1.0);
        assert_eq!(r.prosecutor_risk.records_above, 3);
        assert!((r.prosecutor_risk.share_above - 0.5).abs() < 1e-12);
        assert_eq!(r.units_k_min, None);

        let two = analyse(
            &t,
            &["sex", "age"],
            None,
            &[],
            &options(2, MissingPolicy::OwnValue),
        )
        .unwrap();
        assert_eq!(two.records_below_k, 1);
        let loose = RiskOptions {
            threshold: Some(0.4),
            ..options(3, MissingPolicy::OwnValue)
        };
        let r = analyse(&t, &["sex", "age"], None, &[], &loose).unwrap();
        assert_eq!(
            r.prosecutor_risk.records_above, 3,
            "1/2 and 1/1 exceed 0.4, 1/3 does not"
        );
    }

    #[test]
    fn units_are_counted_once_per_class() {
        let t = people();
        let r = analyse(
            &t,
            &["sex", "age"],
            Some("person"),
            &[],
            &options(3, MissingPolicy::OwnValue),
        )
        .unwrap();
        assert_eq!(r.units, 5);
        // (F,30) holds 2 records but 1 person.
        assert_eq!(r.units_k_min, Some(1));
        assert_eq!(r.units_below_k, Some(2));
        assert_eq!(r.unit_uniques, Some(2));
        assert_eq!(r.sample_uniques, 1);
    }

    #[test]
    fn known_l_diversity() {
        let t = people();
        let r = analyse(
            &t,
            &["sex", "age"],
            None,
            &["disease"],
            &options(1, MissingPolicy::OwnValue),
        )
        .unwrap();
        assert_eq!(
            r.l_diversity["disease"],
            LDiversity {
                distinct: 1,
                entropy: 1.0
            }
        );

        // Class A: x,x,x,y (2 distinct, entropy l = 1/(0.75^0.75 · 0.25^0.25) ≈ 1.7548);
        // class B: x,y,z (3 distinct, entropy l = 3).
        let t = table(
            &["q", "s"],
            &[
                &["A", "x"],
                &["A", "x"],
                &["A", "x"],
                &["A", "y"],
                &["B", "x"],
                &["B", "y"],
                &["B", "z"],
            ],
        );
        let r = analyse(
            &t,
            &["q"],
            None,
            &["s"],
            &options(1, MissingPolicy::OwnValue),
        )
        .unwrap();
        let l = &r.l_diversity["s"];
        assert_eq!(l.distinct, 2);
        let expected = 1.0 / (0.75f64.powf(0.75) * 0.25f64.powf(0.25));
        assert!((l.entropy - expected).abs() < 1e-9, "{}", l.entropy);
    }

    #[test]
    fn missing_is_its_own_value_or_a_wildcard() {
        let t = table(
            &["sex", "age"],
            &[
                &["M", "30"],
                &["M", "30"],
                &["M", ""],
                &["F", "40"],
                &["", "40"],
                &["F", "30"],
            ],
        );
        let own = analyse(
            &t,
            &["sex", "age"],
            None,
            &[],
            &options(3, MissingPolicy::OwnValue),
        )
        .unwrap();
        assert_eq!(own.classes, 5);
        assert_eq!(own.record_frequency, vec![2, 2, 1, 1, 1, 1]);
        assert_eq!(own.sample_uniques, 4);
        assert!(!own.missing_matches_any);

        let any = analyse(
            &t,
            &["sex", "age"],
            None,
            &[],
            &options(3, MissingPolicy::MatchesAny),
        )
        .unwrap();
        // (M,∗) matches (M,30)×2, itself and (∗,40), which shares no known QI with it.
        // (∗,40) matches (M,∗), (F,40) and itself; (F,30) matches nothing else.
        assert_eq!(any.record_frequency, vec![3, 3, 4, 2, 3, 1]);
        assert_eq!(any.classes, 5);
        assert_eq!(any.k_min, 1);
        assert_eq!(any.sample_uniques, 1);
        assert_eq!(any.records_below_k, 2);
        assert!(any.missing_matches_any);
    }

    #[test]
    fn wildcard_l_diversity_and_units_use_the_compatible_records() {
        let t = table(
            &["sex", "disease", "person"],
            &[
                &["M", "flu", "a"],
                &["", "cold", "b"],
                &["F", "flu", "c"],
                &["F", "flu", "c"],
            ],
        );
        let r = analyse(
            &t,
            &["sex"],
            Some("person"),
            &["disease"],
            &options(2, MissingPolicy::MatchesAny),
        )
        .unwrap();
        // M: {a, b}; ∗: {a, b, c}; F: {b, c} (c twice).
        assert_eq!(r.record_frequency, vec![2, 4, 3, 3]);
        assert_eq!(r.units_k_min, Some(2));
        assert_eq!(r.l_diversity["disease"].distinct, 2);
        assert_eq!(r.unit_uniques, Some(0));
    }

    #[test]
    fn missing_unit_and_unknown_column_are_refused() {
        let t = table(&["q", "u"], &[&["a", "1"], &["a", ""]]);
        let e = analyse(&t, &["q"], Some("u"), &[], &RiskOptions::default()).unwrap_err();
        assert!(e.to_string().contains("'u' is empty at row 2"), "{e}");
        let e = analyse(&t, &["nope"], None, &[], &RiskOptions::default()).unwrap_err();
        assert!(
            e.to_string().contains("'nope'") && e.to_string().contains("q, u"),
            "{e}"
        );
    }
}
