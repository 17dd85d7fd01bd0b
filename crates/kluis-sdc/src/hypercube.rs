//! The hypercube method (GHMITER, tau-Argus "Hypercube") for flat tables: to protect a cell of a
//! k-dimensional table, pick for every dimension one other category (`Total` included) and suppress
//! the 2^k corners of that cube.
//!
//! Along one flat dimension, +1 on the cell's category and −1 on another category (or +1 on both
//! when one is `Total`) satisfies the dimension's one equation (`Total` = sum of the categories);
//! the product of those vectors over the dimensions satisfies every equation of the table. So the
//! cube's cells can move by ±t together without changing any published cell: the primary cell can
//! go up by the smallest value among the corners that go down, and down by the smallest value among
//! the corners that go up with it. A cube whose two reaches add up to the required width protects
//! the cell by construction, and none of its corners is derivable.
//!
//! This holds only where the cube's cells appear in no other equation: tables without hierarchies,
//! corners linked to no other table and not released before. Elsewhere the LP does the work.

use std::collections::HashMap;

use crate::system::System;
use crate::table::{Hierarchy, TOTAL, Table};

/// More corner evaluations than this per primary cell and the table is left to the LP.
const MAX_WORK: usize = 4_000_000;

/// The tables where cubes apply, as dense grids of variables.
pub(crate) struct Cubes {
    /// For each variable a cube may be centred on: (grid, position in the grid).
    at: Vec<Option<(usize, usize)>>,
    grids: Vec<Grid>,
}

struct Grid {
    /// Per dimension: categories + 1, the last index being `Total`.
    sizes: Vec<usize>,
    strides: Vec<usize>,
    /// The variable at each position, when it exists and may move (not released before, in no
    /// other table).
    var: Vec<Option<usize>>,
}

impl Cubes {
    pub fn new(tables: &[Table], hierarchies: &[Hierarchy], system: &System) -> Cubes {
        let n = system.vars.len();
        let mut at = vec![None; n];
        let mut grids = Vec::new();
        let mut cell_var: Vec<Vec<Option<usize>>> =
            tables.iter().map(|t| vec![None; t.cells.len()]).collect();
        for (id, var) in system.vars.iter().enumerate() {
            for &(t, c) in &var.cells {
                cell_var[t][c] = Some(id);
            }
        }
        for (t, table) in tables.iter().enumerate() {
            let hierarchical = table
                .dimensions
                .iter()
                .any(|d| hierarchies.iter().any(|h| &h.dimension == d));
            if !table.is_additive() || hierarchical || table.dimensions.is_empty() {
                continue;
            }
            let d = table.dimensions.len();
            let mut codes: Vec<Vec<&str>> = (0..d)
                .map(|j| {
                    let mut v: Vec<&str> = table
                        .cells
                        .iter()
                        .map(|c| c.key[j].as_str())
                        .filter(|v| *v != TOTAL)
                        .collect();
                    v.sort_unstable();
                    v.dedup();
                    v
                })
                .collect();
            let sizes: Vec<usize> = codes.iter().map(|c| c.len() + 1).collect();
            if d > 16 {
                continue;
            }
            let cubes_per_cell: usize = sizes.iter().map(|&s| s - 1).product();
            if cubes_per_cell.saturating_mul(1 << d) > MAX_WORK {
                continue;
            }
            let mut strides = vec![1; d];
            for j in (0..d.saturating_sub(1)).rev() {
                strides[j] = strides[j + 1] * sizes[j + 1];
            }
            for c in &mut codes {
                c.push(TOTAL);
            }
            let index: Vec<HashMap<&str, usize>> = codes
                .iter()
                .map(|c| c.iter().enumerate().map(|(k, v)| (*v, k)).collect())
                .collect();
            let mut var = vec![None; sizes.iter().product()];
            for (c, cell) in table.cells.iter().enumerate() {
                let Some(id) = cell_var[t][c] else { continue };
                let v = &system.vars[id];
                if v.fixed || v.cells.len() != 1 {
                    continue;
                }
                let pos: usize = (0..d)
                    .map(|j| index[j][cell.key[j].as_str()] * strides[j])
                    .sum();
                var[pos] = Some(id);
                at[id] = Some((grids.len(), pos));
            }
            grids.push(Grid {
                sizes,
                strides,
                var,
            });
        }
        Cubes { at, grids }
    }

    /// The cheapest cube around variable `p` that lets it move over at least `width`: the
    /// variables to suppress (its corners, `p` included), or `None` when no cube applies or none is
    /// wide enough. A corner costs nothing when already `suppressed`, else `|value| + 1`; ties go
    /// to the first cube in category order.
    pub fn best(
        &self,
        system: &System,
        p: usize,
        width: f64,
        suppressed: &[bool],
    ) -> Option<Vec<usize>> {
        self.search(
            system,
            p,
            width,
            |v| {
                Some(if suppressed[v] {
                    0.0
                } else {
                    system.vars[v].value.abs() + 1.0
                })
            },
            false,
        )
        .map(|corners| corners.into_iter().map(|(v, _)| v).collect())
    }

    /// The first cube around `p` whose corners are all `allowed` and that lets `p` move over at
    /// least `width`: its corners with their signs (`p` first, +1), a deviation that keeps every
    /// equation of the table.
    pub fn witness(
        &self,
        system: &System,
        p: usize,
        width: f64,
        allowed: &[bool],
    ) -> Option<Vec<(usize, f64)>> {
        self.search(system, p, width, |v| allowed[v].then_some(0.0), true)
    }

    /// The cheapest cube (corner costs from `cost`, `None` when a corner may not be used), or the
    /// first one when `first`.
    fn search(
        &self,
        system: &System,
        p: usize,
        width: f64,
        cost: impl Fn(usize) -> Option<f64>,
        first: bool,
    ) -> Option<Vec<(usize, f64)>> {
        let (g, pos) = self.at[p]?;
        let grid = &self.grids[g];
        let d = grid.sizes.len();
        // Per dimension: (offset from p's position, sign) of each other category.
        let mut alts: Vec<Vec<(isize, f64)>> = Vec::with_capacity(d);
        for j in 0..d {
            let total = grid.sizes[j] - 1;
            let here = pos / grid.strides[j] % grid.sizes[j];
            let offset = |c: usize| (c as isize - here as isize) * grid.strides[j] as isize;
            let a: Vec<(isize, f64)> = if here == total {
                (0..total).map(|c| (offset(c), 1.0)).collect()
            } else {
                (0..total)
                    .filter(|&c| c != here)
                    .map(|c| (offset(c), -1.0))
                    .chain([(offset(total), 1.0)])
                    .collect()
            };
            if a.is_empty() {
                return None;
            }
            alts.push(a);
        }
        let capacity = |v: usize| {
            let var = &system.vars[v];
            if var.free {
                f64::INFINITY
            } else {
                var.value.max(0.0)
            }
        };
        let need = width * (1.0 - 1e-9);
        let mut best: Option<(f64, Vec<(usize, f64)>)> = None;
        let mut choice = vec![0usize; d];
        let mut corners = vec![(0usize, 0.0); 1 << d];
        'cubes: loop {
            let mut total_cost = 0.0;
            let (mut up, mut down) = (f64::INFINITY, f64::INFINITY);
            for (mask, slot) in corners.iter_mut().enumerate() {
                let mut at = pos as isize;
                let mut sign = 1.0;
                for j in 0..d {
                    if mask >> j & 1 == 1 {
                        let (off, s) = alts[j][choice[j]];
                        at += off;
                        sign *= s;
                    }
                }
                let Some((v, c)) = grid.var[at as usize].and_then(|v| Some((v, cost(v)?))) else {
                    total_cost = f64::INFINITY;
                    break;
                };
                *slot = (v, sign);
                total_cost += c;
                if best.as_ref().is_some_and(|(c, _)| total_cost >= *c) {
                    break;
                }
                // p goes up as far as the corners going down allow, and down as far as the
                // corners going down with it allow.
                if sign < 0.0 {
                    up = up.min(capacity(v));
                } else {
                    down = down.min(capacity(v));
                }
            }
            let reach = up + down;
            if best.as_ref().is_none_or(|(c, _)| total_cost < *c)
                && total_cost.is_finite()
                && reach >= need
                && reach > 0.0
            {
                best = Some((total_cost, corners.clone()));
                if first {
                    break;
                }
            }
            // Next cube, in mixed radix (the last dimension fastest).
            for j in (0..d).rev() {
                choice[j] += 1;
                if choice[j] < alts[j].len() {
                    continue 'cubes;
                }
                choice[j] = 0;
            }
            break;
        }
        best.map(|(_, c)| c)
    }
}
