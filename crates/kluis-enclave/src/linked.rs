//! Differencing between tables that are published together or were released before, on the
//! persons behind each published number.
//!
//! A published cell `S` of one table, minus the published cells of another table at one level
//! (one set of totalled dimensions) whose persons all lie inside `S`, leaves the persons of `S`
//! in none of them. When those are 1 to threshold − 1 persons, subtracting the numbers gives
//! them away: table B by nationality `WHERE region <> '02000'` minus table A's cells of the other
//! regions is A's withheld cell of region 02000 (25 − 11 − 13 = 1), a released cell of 9,252
//! persons minus a new one of 9,251 is one person. One cell nested in another is the special
//! case of one cell at that level. Tables over the same rows with the same aggregate are left
//! to the secondary suppression, which protects them as one linked system (released cells
//! included) and proves it with its audit.
//!
//! What this does not see (and the closing notes of issue 15 say so): combinations of cells of
//! several levels or several tables at once, and rows: persons are compared, so a person with
//! rows on both sides of a difference (in two regions over the years) hides a difference of
//! rows. Tables over the same rows are also protected together by the secondary suppression.

use roaring::RoaringBitmap;

/// One published number's persons, with where it comes from.
pub(crate) struct PublishedSet<'a> {
    /// Cells of the same source are one table's (and one of its aggregates'): their relations
    /// are the secondary suppression's to judge.
    pub source: usize,
    /// Which dimensions are totalled (a bit per dimension): cells of one source and level
    /// partition its rows.
    pub level: u64,
    pub units: &'a RoaringBitmap,
}

/// A published cell that another source's nested cells leave a few persons of.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Remainder {
    /// The index of the cell `S` in the cells given.
    pub cell: usize,
    /// The nested cells subtracted from it.
    pub nested: Vec<usize>,
    /// Persons of `S` in none of them (1 to threshold − 1).
    pub persons: u64,
}

/// Every remainder of 1 to `threshold − 1` persons of a cell `S` minus the nested cells of one
/// other source and level, for the pairs of sources where `judged(S's source, other source)`.
pub(crate) fn remainders(
    cells: &[PublishedSet],
    threshold: u64,
    judged: impl Fn(usize, usize) -> bool,
) -> Vec<Remainder> {
    let mut groups: std::collections::BTreeMap<(usize, u64), Vec<usize>> = Default::default();
    for (i, c) in cells.iter().enumerate() {
        if !c.units.is_empty() {
            groups.entry((c.source, c.level)).or_default().push(i);
        }
    }
    let mut found = Vec::new();
    for (s, big) in cells.iter().enumerate() {
        let size = big.units.len();
        if size == 0 {
            continue;
        }
        for (&(source, _), members) in &groups {
            if source == big.source || !judged(big.source, source) {
                continue;
            }
            let nested: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&c| {
                    let small = cells[c].units;
                    small.len() <= size
                        && small.min().is_some_and(|m| big.units.contains(m))
                        && small.is_subset(big.units)
                })
                .collect();
            if nested.is_empty() {
                continue;
            }
            // Cells of a level may share persons (over years), so the union is at most the sum:
            // a remainder of at least the threshold by the sum needs no union.
            let sum: u64 = nested.iter().map(|&c| cells[c].units.len()).sum();
            if size.saturating_sub(sum) >= threshold {
                continue;
            }
            let mut union = RoaringBitmap::new();
            for &c in &nested {
                union |= cells[c].units;
            }
            let persons = size - union.len();
            if persons > 0 && persons < threshold {
                found.push(Remainder {
                    cell: s,
                    nested,
                    persons,
                });
            }
        }
    }
    found
}

/// The level of a cell key: a bit for each totalled dimension.
pub(crate) fn level_of(key: &[String]) -> u64 {
    key.iter()
        .enumerate()
        .filter(|(_, v)| *v == kluis_sdc::TOTAL)
        .fold(0, |acc, (i, _)| acc | 1 << i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(units: impl IntoIterator<Item = u32>) -> RoaringBitmap {
        units.into_iter().collect()
    }

    /// Brute force on small cases: every remainder of a cell minus the nested cells of one
    /// (source, level) group, computed person by person.
    #[test]
    fn remainders_equal_a_person_by_person_search() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        for _ in 0..200 {
            let sets: Vec<RoaringBitmap> = (0..8)
                .map(|_| set((0..30).filter(|_| next() % 3 == 0)))
                .collect();
            let meta: Vec<(usize, u64)> = (0..8)
                .map(|_| ((next() % 3) as usize, (next() % 2) as u64))
                .collect();
            let cells: Vec<PublishedSet> = sets
                .iter()
                .zip(&meta)
                .map(|(units, &(source, level))| PublishedSet {
                    source,
                    level,
                    units,
                })
                .collect();
            let found = remainders(&cells, 5, |_, _| true);
            let mut expected = Vec::new();
            for (s, big) in cells.iter().enumerate() {
                for source in 0..3 {
                    for level in 0..2 {
                        if source == big.source || big.units.is_empty() {
                            continue;
                        }
                        let nested: Vec<usize> = (0..cells.len())
                            .filter(|&c| {
                                let cell = &cells[c];
                                (cell.source, cell.level) == (source, level)
                                    && !cell.units.is_empty()
                                    && cell.units.iter().all(|u| big.units.contains(u))
                            })
                            .collect();
                        if nested.is_empty() {
                            continue;
                        }
                        let left = big
                            .units
                            .iter()
                            .filter(|u| nested.iter().all(|&c| !cells[c].units.contains(*u)))
                            .count() as u64;
                        if (1..5).contains(&left) {
                            expected.push(Remainder {
                                cell: s,
                                nested,
                                persons: left,
                            });
                        }
                    }
                }
            }
            assert_eq!(found, expected);
        }
    }

    #[test]
    fn a_filtered_table_minus_published_cells_gives_a_withheld_cell_away() {
        // Table A by region for one nationality: regions 1, 2 published, region 3 withheld (1
        // person). Table B: the nationality outside region 4, which is regions 1..3.
        let r1 = set(0..11);
        let r2 = set(11..24);
        let b = set(0..25);
        let cells = [
            PublishedSet {
                source: 0,
                level: 0,
                units: &r1,
            },
            PublishedSet {
                source: 0,
                level: 0,
                units: &r2,
            },
            PublishedSet {
                source: 1,
                level: 0,
                units: &b,
            },
        ];
        let found = remainders(&cells, 10, |_, _| true);
        assert_eq!(
            found,
            vec![Remainder {
                cell: 2,
                nested: vec![0, 1],
                persons: 1
            }]
        );
    }
}
