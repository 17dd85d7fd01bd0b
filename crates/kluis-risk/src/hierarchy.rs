//! Generalisation hierarchies: the coarser levels a quasi-identifier may be recoded to.
//!
//! A hierarchy is data, as in ARX: one row per value, the value first and then its
//! generalisation at each coarser level, e.g. `37;35-39;30-39;*` or `F41.2;F41;F;*`. Levels
//! must nest: values equal at one level stay equal at every coarser level. A hierarchy is bound
//! to the dictionary of the column it generalises, so that it works on codes.

use std::path::Path;

use crate::coded::{Dictionary, MISSING};
use crate::error::{Result, RiskError};
use crate::hash::fast_map;

/// The levels of one quasi-identifier, level 0 being the column's own values.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    column: String,
    level_names: Vec<String>,
    /// `maps[l][code]`: the level-`l` code of a level-0 code.
    maps: Vec<Vec<u32>>,
    /// `dictionaries[l]`: the labels of the level-`l` codes.
    dictionaries: Vec<Dictionary>,
}

impl Hierarchy {
    /// Builds a hierarchy for `column` (coded with `base`) from rows `[value, level 1, ...]`.
    /// `level_names` names every level, level 0 included. Rows for values absent from the data
    /// are allowed; a value of the data without a row is an error naming it.
    pub fn from_rows(
        column: &str,
        level_names: Vec<String>,
        rows: &[Vec<String>],
        base: &Dictionary,
    ) -> Result<Self> {
        let error = |message: String| RiskError::Hierarchy {
            column: column.into(),
            message,
        };
        let levels = level_names.len();
        if levels == 0 {
            return Err(error("a hierarchy needs at least one level".into()));
        }
        let mut by_value = fast_map::<&str, &[String]>(rows.len());
        for (i, row) in rows.iter().enumerate() {
            if row.len() != levels {
                return Err(error(format!(
                    "row {} has {} entries, expected {} (one per level: {})",
                    i + 1,
                    row.len(),
                    levels,
                    level_names.join(", ")
                )));
            }
            if by_value.insert(row[0].as_str(), row.as_slice()).is_some() {
                return Err(error(format!("value '{}' has two rows", row[0])));
            }
        }
        let mut maps = vec![Vec::with_capacity(base.len()); levels];
        let mut dictionaries = vec![Dictionary::new(); levels];
        for label in base.labels() {
            let row = by_value.get(label.as_str()).ok_or_else(|| {
                error(format!(
                    "value '{label}' occurs in the data but has no row in the hierarchy"
                ))
            })?;
            for (l, generalised) in row.iter().enumerate() {
                let code = dictionaries[l].code(generalised);
                maps[l].push(code);
            }
        }
        let hierarchy = Self {
            column: column.into(),
            level_names,
            maps,
            dictionaries,
        };
        hierarchy.check_nesting()?;
        Ok(hierarchy)
    }

    /// Reads a hierarchy from a CSV file whose header names the levels and whose rows are
    /// `value,level 1,...`.
    pub fn read_csv(path: &Path, column: &str, base: &Dictionary) -> Result<Self> {
        let read_error = |e: csv::Error| RiskError::Read {
            path: path.into(),
            message: e.to_string(),
        };
        let mut reader = csv::Reader::from_path(path).map_err(read_error)?;
        let level_names = reader
            .headers()
            .map_err(read_error)?
            .iter()
            .map(String::from)
            .collect();
        let rows = reader
            .records()
            .map(|r| r.map(|r| r.iter().map(String::from).collect()))
            .collect::<Result<Vec<Vec<String>>, _>>()
            .map_err(read_error)?;
        Self::from_rows(column, level_names, &rows, base).map_err(|e| RiskError::Read {
            path: path.into(),
            message: e.to_string(),
        })
    }

    fn check_nesting(&self) -> Result<()> {
        for l in 1..self.levels() {
            let mut parent = vec![MISSING; self.dictionaries[l - 1].len()];
            for (x, &finer) in self.maps[l - 1].iter().enumerate() {
                let coarser = self.maps[l][x];
                let slot = &mut parent[finer as usize];
                if *slot == MISSING {
                    *slot = coarser;
                } else if *slot != coarser {
                    return Err(RiskError::Hierarchy {
                        column: self.column.clone(),
                        message: format!(
                            "levels do not nest: '{}' at level '{}' generalises to both '{}' and \
                             '{}' at level '{}'",
                            self.dictionaries[l - 1].labels()[finer as usize],
                            self.level_names[l - 1],
                            self.dictionaries[l].labels()[*slot as usize],
                            self.dictionaries[l].labels()[coarser as usize],
                            self.level_names[l],
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    pub fn column(&self) -> &str {
        &self.column
    }

    /// Number of levels, level 0 included.
    pub fn levels(&self) -> usize {
        self.maps.len()
    }

    pub fn level_name(&self, level: usize) -> &str {
        &self.level_names[level]
    }

    /// Level-`level` code of a level-0 code; missing stays missing.
    pub fn generalise(&self, level: usize, code: u32) -> u32 {
        if code == MISSING {
            MISSING
        } else {
            self.maps[level][code as usize]
        }
    }

    /// The labels of the level-`level` codes.
    pub fn dictionary(&self, level: usize) -> &Dictionary {
        &self.dictionaries[level]
    }

    /// Number of distinct values at `level`.
    pub fn cardinality(&self, level: usize) -> usize {
        self.dictionaries[level].len()
    }

    /// Map from level-`from` codes to level-`to` codes (`from <= to`).
    pub(crate) fn up(&self, from: usize, to: usize) -> Vec<u32> {
        let mut up = vec![0; self.cardinality(from)];
        for (x, &finer) in self.maps[from].iter().enumerate() {
            up[finer as usize] = self.maps[to][x];
        }
        up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &[&str]) -> Vec<Vec<String>> {
        text.iter()
            .map(|r| r.split(';').map(String::from).collect())
            .collect()
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn generalises_codes_level_by_level() {
        let mut base = Dictionary::new();
        for v in ["C10", "C11", "G46"] {
            base.code(v);
        }
        let h = Hierarchy::from_rows(
            "nace",
            names(&["division", "section", "*"]),
            &rows(&["G46;G;*", "C10;C;*", "C11;C;*", "A01;A;*"]),
            &base,
        )
        .unwrap();
        assert_eq!(h.levels(), 3);
        let section = |code| {
            h.dictionary(1)
                .label(h.generalise(1, code))
                .unwrap()
                .to_string()
        };
        assert_eq!(section(0), "C");
        assert_eq!(section(1), "C");
        assert_eq!(section(2), "G");
        assert_eq!(h.generalise(2, 0), h.generalise(2, 2));
        assert_eq!(h.generalise(1, MISSING), MISSING);
    }

    #[test]
    fn value_without_row_is_named() {
        let mut base = Dictionary::new();
        base.code("X99");
        let e = Hierarchy::from_rows("nace", names(&["d", "*"]), &rows(&["C10;*"]), &base)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'X99'") && e.contains("nace"), "{e}");
    }

    #[test]
    fn levels_that_do_not_nest_are_refused() {
        let mut base = Dictionary::new();
        base.code("1");
        base.code("2");
        let e = Hierarchy::from_rows(
            "age",
            names(&["age", "band", "wide"]),
            &rows(&["1;a;x", "2;a;y"]),
            &base,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("do not nest"), "{e}");
    }
}
