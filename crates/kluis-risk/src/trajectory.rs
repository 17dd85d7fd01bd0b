//! Trajectories: a unit's quasi-identifiers across the years, as one record.
//!
//! A person can be unique by the sequence of her yearly values (employer type, sector, region,
//! nationality...) even when each year on its own is k-anonymous. Turning a (unit, year, QIs)
//! table into one trajectory code per unit lets the same class, risk and population machinery
//! judge persons instead of person-years.
//!
//! A trajectory is the year-ordered list of `(year, QI tuple)` pairs of a unit; years are part
//! of it, so two units with the same values over different periods differ. Codes come from a
//! [`TrajectoryCoder`], which must be shared between a sample and its population so that equal
//! trajectories get equal codes.

use crate::coded::{CodedColumn, CodedTable, Dictionary, MISSING};
use crate::error::{Result, RiskError};
use crate::hash::FastMap;

/// Gives each distinct trajectory a code; share one coder across the tables to compare.
#[derive(Debug, Clone, Default)]
pub struct TrajectoryCoder {
    index: FastMap<Vec<u32>, u32>,
    labels: Vec<String>,
}

/// One trajectory per unit, units in ascending code order.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectories {
    /// Unit code of each trajectory.
    pub units: Vec<u32>,
    /// Trajectory code of each unit.
    pub trajectory: Vec<u32>,
    /// Number of years in each unit's trajectory.
    pub years: Vec<u32>,
}

impl TrajectoryCoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct trajectories coded so far.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Codes the trajectories of rows given as a unit code, a year and QI codes per row.
    /// `render` gives a readable label of one row's QI codes (used for the trajectory labels).
    /// A unit with two rows for one year is an error naming the row.
    pub fn encode(
        &mut self,
        unit: &[u32],
        year: &[u32],
        quasi_identifiers: &[&[u32]],
        render: impl Fn(usize) -> String,
    ) -> Result<Trajectories> {
        let rows = unit.len();
        for (name, len) in std::iter::once(("year", year.len())).chain(
            quasi_identifiers
                .iter()
                .map(|c| ("quasi-identifier", c.len())),
        ) {
            if len != rows {
                return Err(RiskError::LengthMismatch {
                    column: name.into(),
                    got: len,
                    expected: rows,
                });
            }
        }
        let mut order: Vec<u32> = (0..rows as u32).collect();
        order.sort_unstable_by_key(|&r| (unit[r as usize], year[r as usize], r));
        let mut out = Trajectories {
            units: Vec::new(),
            trajectory: Vec::new(),
            years: Vec::new(),
        };
        let mut key: Vec<u32> = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let u = unit[order[start] as usize];
            let mut end = start;
            key.clear();
            while end < order.len() && unit[order[end] as usize] == u {
                let r = order[end] as usize;
                if end > start && year[order[end - 1] as usize] == year[r] {
                    return Err(RiskError::DuplicateUnitYear {
                        row: r + 1,
                        year: year[r],
                    });
                }
                key.push(year[r]);
                key.extend(quasi_identifiers.iter().map(|c| c[r]));
                end += 1;
            }
            let code = match self.index.get(&key) {
                Some(&code) => code,
                None => {
                    let code = self.labels.len() as u32;
                    let label = order[start..end]
                        .iter()
                        .map(|&r| format!("{}={}", year[r as usize], render(r as usize)))
                        .collect::<Vec<_>>()
                        .join("; ");
                    self.labels.push(label);
                    self.index.insert(key.clone(), code);
                    code
                }
            };
            out.units.push(u);
            out.trajectory.push(code);
            out.years.push((end - start) as u32);
            start = end;
        }
        Ok(out)
    }

    /// Codes the trajectories of a coded table and returns a table with one row per unit and
    /// two columns: the unit (same dictionary as the input) and `trajectory`. The year column's
    /// values must be whole numbers.
    pub fn encode_table(
        &mut self,
        table: &CodedTable,
        unit: &str,
        year: &str,
        quasi_identifiers: &[&str],
    ) -> Result<CodedTable> {
        let unit_column = table.column(unit)?;
        if let Some(row) = unit_column.codes.iter().position(|&c| c == MISSING) {
            return Err(RiskError::MissingValue {
                column: unit.into(),
                row: row + 1,
                what: "a unit",
            });
        }
        let year_column = table.column(year)?;
        // Parse each distinct year label once.
        let year_of_code: Vec<u32> = year_column
            .dictionary
            .labels()
            .iter()
            .enumerate()
            .map(|(code, label)| {
                label.trim().parse::<u32>().map_err(|_| RiskError::BadYear {
                    column: year.into(),
                    row: year_column
                        .codes
                        .iter()
                        .position(|&c| c as usize == code)
                        .unwrap_or(0)
                        + 1,
                    value: label.clone(),
                })
            })
            .collect::<Result<_>>()?;
        let years: Vec<u32> = year_column
            .codes
            .iter()
            .enumerate()
            .map(|(row, &c)| {
                if c == MISSING {
                    Err(RiskError::MissingValue {
                        column: year.into(),
                        row: row + 1,
                        what: "a year",
                    })
                } else {
                    Ok(year_of_code[c as usize])
                }
            })
            .collect::<Result<_>>()?;
        let qi_columns: Vec<&CodedColumn> = quasi_identifiers
            .iter()
            .map(|n| table.column(n))
            .collect::<Result<_>>()?;
        let qi: Vec<&[u32]> = qi_columns.iter().map(|c| c.codes.as_slice()).collect();
        let render = |r: usize| {
            qi_columns
                .iter()
                .map(|c| escape(c.label(r).unwrap_or("")))
                .collect::<Vec<_>>()
                .join("|")
        };
        let out = self.encode(&unit_column.codes, &years, &qi, render)?;
        let unit_out = CodedColumn {
            name: unit.into(),
            codes: out.units,
            dictionary: unit_column.dictionary.clone(),
        };
        CodedTable::new(vec![unit_out, self.column("trajectory", out.trajectory)])
    }

    /// A coded column of trajectory codes whose dictionary holds the labels coded so far.
    fn column(&self, name: &str, codes: Vec<u32>) -> CodedColumn {
        let mut dictionary = Dictionary::new();
        for label in &self.labels {
            dictionary.code(label);
        }
        CodedColumn {
            name: name.into(),
            codes,
            dictionary,
        }
    }
}

/// Escapes the separators of a trajectory label so that labels of distinct trajectories differ.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        if matches!(ch, '\\' | '|' | ';' | '=') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{RiskOptions, analyse};

    /// Five persons over two years. Each year every sector holds at least two persons, so each
    /// year is 2-anonymous; but only p1 went A→A: her trajectory is unique.
    #[test]
    fn trajectory_is_unique_although_every_year_is_k_anonymous() {
        let rows: Vec<Vec<Option<&str>>> = [
            ("p1", "2020", "A"),
            ("p2", "2020", "A"),
            ("p3", "2020", "B"),
            ("p4", "2020", "B"),
            ("p1", "2021", "A"),
            ("p2", "2021", "B"),
            ("p3", "2021", "A"),
            ("p4", "2021", "B"),
            ("p5", "2020", "A"),
            ("p5", "2021", "B"),
        ]
        .iter()
        .map(|(p, y, s)| vec![Some(*p), Some(*y), Some(*s)])
        .collect();
        let table = CodedTable::from_rows(&["person", "year", "sector"], &rows).unwrap();
        let options = RiskOptions {
            k: 2,
            ..RiskOptions::default()
        };
        let yearly = analyse(&table, &["year", "sector"], Some("person"), &[], &options).unwrap();
        assert_eq!(yearly.k_min, 2);
        assert_eq!(yearly.units_k_min, Some(2));

        let mut coder = TrajectoryCoder::new();
        let trajectories = coder
            .encode_table(&table, "person", "year", &["sector"])
            .unwrap();
        assert_eq!(trajectories.rows(), 5);
        let report = analyse(
            &trajectories,
            &["trajectory"],
            Some("person"),
            &[],
            &options,
        )
        .unwrap();
        // p1 A→A, p3 B→A and p4 B→B are unique; p2 and p5 share A→B.
        assert_eq!(report.k_min, 1);
        assert_eq!(report.classes, 4);
        assert_eq!(report.sample_uniques, 3);
        assert_eq!(report.unit_uniques, Some(3));
        assert_eq!(report.records_below_k, 3);
        let labels = trajectories.column("trajectory").unwrap();
        assert_eq!(labels.label(0), Some("2020=A; 2021=A"));
    }

    #[test]
    fn shared_coder_gives_equal_trajectories_equal_codes() {
        let mut coder = TrajectoryCoder::new();
        let render = |_: usize| String::new();
        let a = coder
            .encode(&[7, 7, 3], &[2021, 2020, 2020], &[&[1, 2, 2]], render)
            .unwrap();
        let b = coder
            .encode(&[0, 0], &[2020, 2021], &[&[2, 1]], render)
            .unwrap();
        assert_eq!(a.units, vec![3, 7]);
        assert_eq!(a.years, vec![1, 2]);
        // Unit 7 (2020→2, 2021→1) in the first table equals unit 0 in the second.
        assert_eq!(a.trajectory[1], b.trajectory[0]);
        assert_ne!(a.trajectory[0], a.trajectory[1]);
    }

    #[test]
    fn duplicate_unit_year_is_refused_with_its_row() {
        let mut coder = TrajectoryCoder::new();
        let error = coder
            .encode(&[1, 1], &[2020, 2020], &[&[0, 1]], |_| String::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("row 2") && error.contains("2020"), "{error}");
    }
}
