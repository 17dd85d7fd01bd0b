//! Journalist risk: each sample record judged by the size of its class in the full population.
//!
//! ARX and sdcMicro estimate a sample record's population frequency `F` with a model; kluis
//! holds the population the sample was drawn from and counts it. Sample and population must be
//! coded with the same dictionaries (read the population with
//! [`read_table_with`](crate::read::read_table_with) and the sample's dictionaries, or code both
//! from one [`Dictionary`](crate::coded::Dictionary) per column). Missing is a value of its own.
//!
//! For sample records `s` with population frequencies `F_s`:
//! journalist risk `1/F_s` (mean and maximum), population uniques (`F_s = 1`), and the expected
//! number of correct re-identifications `Σ 1/F_s` (an intruder who links each sample record to a
//! random member of its population class). A sample record whose tuple does not occur in the
//! population at all (`F_s = 0`, only when the sample is not a subset of the population) is
//! counted in `not_in_population` and given risk 1.

use serde::Serialize;

use crate::coded::{CodedTable, MISSING};
use crate::error::{Result, RiskError};
use crate::hash::{FastMap, fast_map};

/// Journalist risk `1/F` over the sample records.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JournalistRisk {
    pub mean: f64,
    pub max: f64,
}

/// Risk of a sample measured against its population.
#[derive(Debug, Clone, Serialize)]
pub struct PopulationRisk {
    pub sample_records: u64,
    pub population_records: u64,
    pub journalist_risk: JournalistRisk,
    pub population_uniques: u64,
    pub expected_reidentifications: f64,
    pub not_in_population: u64,
    /// Population frequency `F` of each sample record.
    #[serde(skip)]
    pub frequencies: Vec<u32>,
}

/// Population risk of the sample rows given as code columns (same order and coding as the
/// population columns).
pub fn population_risk(sample: &[&[u32]], population: &[&[u32]]) -> Result<PopulationRisk> {
    if sample.len() != population.len() {
        return Err(RiskError::Option(format!(
            "sample has {} quasi-identifiers, population {}",
            sample.len(),
            population.len()
        )));
    }
    let sample_rows = check_lengths(sample)?;
    let population_rows = check_lengths(population)?;
    let radices: Vec<u64> = sample
        .iter()
        .zip(population)
        .map(|(s, p)| radix(s).max(radix(p)))
        .collect();
    let fits = radices
        .iter()
        .try_fold(1u64, |acc, &r| acc.checked_mul(r))
        .is_some();
    let frequencies: Vec<u32> = if fits {
        let key = |cols: &[&[u32]], r: usize| -> u64 {
            cols.iter().zip(&radices).fold(0u64, |k, (col, &radix)| {
                let code = col[r];
                k * radix
                    + if code == MISSING {
                        radix - 1
                    } else {
                        u64::from(code)
                    }
            })
        };
        let mut counts: FastMap<u64, u32> = fast_map(population_rows / 4 + 16);
        for r in 0..population_rows {
            *counts.entry(key(population, r)).or_insert(0) += 1;
        }
        (0..sample_rows)
            .map(|r| counts.get(&key(sample, r)).copied().unwrap_or(0))
            .collect()
    } else {
        let key = |cols: &[&[u32]], r: usize| -> Vec<u32> { cols.iter().map(|c| c[r]).collect() };
        let mut counts: FastMap<Vec<u32>, u32> = fast_map(population_rows / 4 + 16);
        for r in 0..population_rows {
            *counts.entry(key(population, r)).or_insert(0) += 1;
        }
        (0..sample_rows)
            .map(|r| counts.get(&key(sample, r)).copied().unwrap_or(0))
            .collect()
    };
    let mut sum = 0.0;
    let mut max: f64 = 0.0;
    let mut uniques = 0u64;
    let mut absent = 0u64;
    for &f in &frequencies {
        let risk = if f == 0 {
            absent += 1;
            1.0
        } else {
            1.0 / f64::from(f)
        };
        if f == 1 {
            uniques += 1;
        }
        sum += risk;
        max = max.max(risk);
    }
    Ok(PopulationRisk {
        sample_records: sample_rows as u64,
        population_records: population_rows as u64,
        journalist_risk: JournalistRisk {
            mean: if sample_rows == 0 {
                0.0
            } else {
                sum / sample_rows as f64
            },
            max,
        },
        population_uniques: uniques,
        expected_reidentifications: sum,
        not_in_population: absent,
        frequencies,
    })
}

/// [`population_risk`] over the named quasi-identifiers of two coded tables, after checking
/// that they were coded with the same dictionaries (one's labels a prefix of the other's).
pub fn population_risk_tables(
    sample: &CodedTable,
    population: &CodedTable,
    quasi_identifiers: &[&str],
) -> Result<PopulationRisk> {
    for name in quasi_identifiers {
        let s = sample.column(name)?.dictionary.labels();
        let p = population.column(name)?.dictionary.labels();
        let shared = s.len().min(p.len());
        if s[..shared] != p[..shared] {
            return Err(RiskError::Option(format!(
                "column '{name}' of the sample and of the population were coded with different \
                 dictionaries; read the population with the sample's dictionaries"
            )));
        }
    }
    population_risk(
        &sample.code_slices(quasi_identifiers)?,
        &population.code_slices(quasi_identifiers)?,
    )
}

fn check_lengths(columns: &[&[u32]]) -> Result<usize> {
    let rows = columns.first().map_or(0, |c| c.len());
    for (j, c) in columns.iter().enumerate() {
        if c.len() != rows {
            return Err(RiskError::LengthMismatch {
                column: format!("quasi-identifier {}", j + 1),
                got: c.len(),
                expected: rows,
            });
        }
    }
    Ok(rows)
}

fn radix(column: &[u32]) -> u64 {
    column
        .iter()
        .filter(|&&c| c != MISSING)
        .max()
        .map_or(0, |&m| u64::from(m) + 1)
        + 1
}

#[cfg(test)]
// The brute force indexes rows across parallel columns on purpose.
#[allow(clippy::needless_range_loop)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn counts_population_classes_of_sample_records() {
        let population = CodedTable::from_rows(
            &["sex", "age"],
            &[
                vec![Some("M"), Some("30")],
                vec![Some("M"), Some("30")],
                vec![Some("M"), Some("30")],
                vec![Some("F"), Some("30")],
                vec![Some("F"), None],
                vec![Some("F"), None],
            ],
        )
        .unwrap();
        let mut sample_columns = Vec::new();
        for (name, values) in [
            ("sex", [Some("M"), Some("F"), Some("F")]),
            ("age", [Some("30"), Some("30"), None]),
        ] {
            let dictionary = population.column(name).unwrap().dictionary.clone();
            sample_columns.push(crate::coded::CodedColumn::from_values_with(
                name, values, dictionary,
            ));
        }
        let sample = CodedTable::new(sample_columns).unwrap();
        let risk = population_risk_tables(&sample, &population, &["sex", "age"]).unwrap();
        assert_eq!(risk.frequencies, vec![3, 1, 2]);
        assert_eq!(risk.population_uniques, 1);
        assert_eq!(risk.journalist_risk.max, 1.0);
        let expected = 1.0 / 3.0 + 1.0 + 0.5;
        assert!((risk.expected_reidentifications - expected).abs() < 1e-12);
        assert!((risk.journalist_risk.mean - expected / 3.0).abs() < 1e-12);
    }

    #[test]
    fn refuses_tables_coded_with_different_dictionaries() {
        let a = CodedTable::from_rows(&["x"], &[vec![Some("a")], vec![Some("b")]]).unwrap();
        let b = CodedTable::from_rows(&["x"], &[vec![Some("b")], vec![Some("a")]]).unwrap();
        let error = population_risk_tables(&a, &b, &["x"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("different dictionaries"), "{error}");
    }

    fn table(cols: usize, max_rows: usize) -> impl Strategy<Value = Vec<Vec<u32>>> {
        // Small code ranges (with MISSING now and then) so classes collide often.
        let code = prop_oneof![9 => 0u32..4, 1 => Just(MISSING)];
        (0..max_rows).prop_flat_map(move |rows| {
            proptest::collection::vec(proptest::collection::vec(code.clone(), rows), cols)
        })
    }

    proptest! {
        #[test]
        fn population_frequency_equals_brute_force_count(
            population in table(3, 60),
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
            strangers in table(3, 5),
        ) {
            // A sample drawn from the population, plus a few rows that may not be in it.
            let pop_rows = population[0].len();
            let mut sample: Vec<Vec<u32>> = vec![Vec::new(); 3];
            if pop_rows > 0 {
                for pick in &picks {
                    let r = pick.index(pop_rows);
                    for j in 0..3 { sample[j].push(population[j][r]); }
                }
            }
            for j in 0..3 { sample[j].extend_from_slice(&strangers[j]); }
            let s: Vec<&[u32]> = sample.iter().map(Vec::as_slice).collect();
            let p: Vec<&[u32]> = population.iter().map(Vec::as_slice).collect();
            let risk = population_risk(&s, &p).unwrap();
            let mut expected_sum = 0.0;
            for r in 0..sample[0].len() {
                let f = (0..pop_rows).filter(|&q| (0..3).all(|j| population[j][q] == sample[j][r])).count();
                prop_assert_eq!(risk.frequencies[r] as usize, f);
                expected_sum += if f == 0 { 1.0 } else { 1.0 / f as f64 };
            }
            prop_assert!((risk.expected_reidentifications - expected_sum).abs() < 1e-9);
            let uniques = risk.frequencies.iter().filter(|&&f| f == 1).count() as u64;
            prop_assert_eq!(risk.population_uniques, uniques);
        }
    }
}
