//! Builders for hand-made tables.
#![allow(dead_code)]

use kluis_sdc::{Cell, Contributions, Statistic, TOTAL, Table};

/// A count cell where rows = units = the count.
pub fn count_cell(key: &[&str], count: u64) -> Cell {
    Cell {
        key: key.iter().map(|s| s.to_string()).collect(),
        value: count as f64,
        rows: count,
        units: count,
        nonnull_units: count,
        nonzero_units: count,
        contributions: None,
    }
}

/// A 2-D count table with every margin, from its interior.
pub fn count_table(rows: &[&str], cols: &[&str], m: &[&[u64]]) -> Table {
    let mut cells = Vec::new();
    let mut col_tot = vec![0u64; cols.len()];
    for (i, r) in rows.iter().enumerate() {
        let mut row_tot = 0;
        for (j, c) in cols.iter().enumerate() {
            cells.push(count_cell(&[r, c], m[i][j]));
            row_tot += m[i][j];
            col_tot[j] += m[i][j];
        }
        cells.push(count_cell(&[r, TOTAL], row_tot));
    }
    for (j, c) in cols.iter().enumerate() {
        cells.push(count_cell(&[TOTAL, c], col_tot[j]));
    }
    cells.push(count_cell(&[TOTAL, TOTAL], col_tot.iter().sum()));
    Table {
        name: "t".into(),
        overlapping: false,
        dimension_ids: Vec::new(),
        cell_links: Vec::new(),
        dimensions: vec!["row".into(), "col".into()],
        statistic: Statistic::Count,
        measure: None,
        cells,
    }
}

/// A one-cell sum table whose per-unit totals are `contributions`.
pub fn sum_cell_table(contributions: &[f64]) -> Table {
    let mut abs: Vec<f64> = contributions.iter().map(|c| c.abs()).collect();
    abs.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = contributions.iter().sum();
    let n = contributions.len() as u64;
    Table {
        name: "s".into(),
        overlapping: false,
        dimension_ids: Vec::new(),
        cell_links: Vec::new(),
        dimensions: vec!["d".into()],
        statistic: Statistic::Sum,
        measure: Some("income".into()),
        cells: vec![Cell {
            key: vec![TOTAL.into()],
            value: total,
            rows: n,
            units: n,
            nonnull_units: n,
            nonzero_units: contributions.iter().filter(|c| **c != 0.0).count() as u64,
            contributions: Some(Contributions {
                total,
                abs_total: abs.iter().sum(),
                top1: abs.first().copied().unwrap_or(0.0),
                top2: abs.get(1).copied().unwrap_or(0.0),
                has_negative: contributions.iter().any(|c| *c < 0.0),
            }),
        }],
    }
}

pub fn cell(t: &Table, key: &[&str]) -> usize {
    t.cells
        .iter()
        .position(|c| c.key.iter().map(String::as_str).eq(key.iter().copied()))
        .expect("cell exists")
}

/// A count table over dimensions of the given sizes (codes c0, c1, …), every margin included, from
/// its interior values in row-major order.
pub fn count_cube(sizes: &[usize], interior: &[u64]) -> Table {
    use std::collections::BTreeMap;
    let d = sizes.len();
    let mut sums: BTreeMap<Vec<String>, u64> = BTreeMap::new();
    for (flat, &v) in interior.iter().enumerate() {
        let mut idx = vec![0usize; d];
        let mut rest = flat;
        for j in (0..d).rev() {
            idx[j] = rest % sizes[j];
            rest /= sizes[j];
        }
        for m in 0..(1usize << d) {
            let key: Vec<String> = (0..d)
                .map(|j| {
                    if m >> j & 1 == 1 {
                        TOTAL.to_string()
                    } else {
                        format!("c{}", idx[j])
                    }
                })
                .collect();
            *sums.entry(key).or_default() += v;
        }
    }
    Table {
        name: "cube".into(),
        overlapping: false,
        dimension_ids: Vec::new(),
        cell_links: Vec::new(),
        dimensions: (0..d).map(|j| format!("d{j}")).collect(),
        statistic: Statistic::Count,
        measure: None,
        cells: sums
            .into_iter()
            .map(|(k, v)| count_cell(&k.iter().map(String::as_str).collect::<Vec<_>>(), v))
            .collect(),
    }
}
