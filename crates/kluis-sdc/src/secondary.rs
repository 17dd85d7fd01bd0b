//! Secondary suppression: extend the suppressed set until every primary cell's feasible interval is
//! wide enough.
//!
//! For each primary cell p (largest first) one linear program looks for a deviation vector `y` that
//! keeps every relation (`A·y = 0`), moves p up by its required width, leaves cells released before
//! untouched and keeps every cell non-negative (`y ≥ −x`), at minimum cost `Σ c_i·|y_i|` where
//! `c_i = 0` for cells already suppressed and `|x_i| + 1` otherwise. The cells it moves are
//! suppressed: with them unknown, both x and x + y are consistent with the published cells, so p's
//! interval is at least the required width, and every cell moved is not exactly derivable. The
//! deviation of an earlier primary stays available, since suppressing more only widens intervals.
//! One HiGHS model is kept and re-solved from its previous basis, changing only bounds and costs.
//! Ties are broken by cell order, so the pattern is deterministic.

use std::collections::HashMap;
use std::time::Instant;

use highs::{Col, HighsModelStatus, Model, RowProblem, Sense};
use serde::{Deserialize, Serialize};

use crate::error::SdcError;
use crate::hypercube::Cubes;
use crate::primary::{CellStatus, CellVerdict, Reason};
use crate::rules::RuleSet;
use crate::system::System;
use crate::table::{Hierarchy, PublishedCell, Table};

/// How the suppression pattern was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// No primary cell needed protecting.
    None,
    /// One minimum-cost protection LP per primary cell.
    LpGreedy,
    /// The cheapest hypercube per primary cell in flat tables, a protection LP where no cube
    /// applies or is wide enough.
    Hypercube,
    /// The time budget ran out: every cell not released before is suppressed.
    FallbackAll,
}

/// What secondary suppression did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecondaryOutcome {
    /// How the pattern was found.
    pub method: Method,
    /// Primary cells (counting linked cells once).
    pub primary: usize,
    /// Cells suppressed to protect them (counting linked cells once).
    pub secondary: usize,
    /// Total additive value of the secondary cells.
    pub secondary_value: f64,
    /// Primary cells that no pattern can protect (released before, or pinned by cells released
    /// before), as (table, cell) of their first occurrence.
    pub unprotectable: Vec<(usize, usize)>,
    /// Seconds spent.
    pub seconds: f64,
    /// What a reviewer should know (fallback, non-additive tables).
    pub notes: Vec<String>,
}

/// Extends `verdicts` (one list per table, from [`crate::apply_primary`]) with secondary
/// suppressions over all `tables` released together, their `hierarchies`, and the cells
/// `published` before. Cells turned secondary get [`CellStatus::Secondary`] and the reason
/// [`Reason::Secondary`].
pub fn secondary_suppress(
    tables: &[Table],
    verdicts: &mut [Vec<CellVerdict>],
    hierarchies: &[Hierarchy],
    published: &[PublishedCell],
    rules: &RuleSet,
) -> Result<SecondaryOutcome, SdcError> {
    let start = Instant::now();
    let system = System::build(tables, hierarchies, published)?;
    let mut notes = Vec::new();
    for table in tables {
        if !table.is_additive() {
            let what = if table.overlapping {
                "counts of units that can be in several cells".to_string()
            } else {
                format!("{} values", table.statistic.name())
            };
            notes.push(format!(
                "table `{}` holds {what}, which do not add up: only its primary cells are suppressed, \
                 and every cell goes to review",
                table.name,
            ));
        }
    }
    let n = system.vars.len();
    let mut suppressed = vec![false; n];
    let mut primary = vec![false; n];
    for (id, var) in system.vars.iter().enumerate() {
        for &(t, c) in &var.cells {
            suppressed[id] |= verdicts[t][c].status.is_suppressed();
            primary[id] |= verdicts[t][c].status == CellStatus::Primary;
        }
    }
    let scale = system.scale();
    let sums = cells_for_sums_of_primaries(tables, &system, &primary, &suppressed, rules);
    if !sums.is_empty() {
        notes.push(format!(
            "{} cells suppressed and protected like primary cells, where primary cells alone in a relation would sum to fewer than {} units",
            sums.len(),
            rules.threshold.min_units
        ));
    }
    for &v in &sums {
        suppressed[v] = true;
    }
    let mut order: Vec<usize> = (0..n).filter(|&i| primary[i]).chain(sums).collect();
    order.sort_by(|&a, &b| {
        system.vars[b]
            .value
            .abs()
            .total_cmp(&system.vars[a].value.abs())
            .then(a.cmp(&b))
    });
    let mut unprotectable = Vec::new();
    let mut method = if order.is_empty() {
        Method::None
    } else {
        Method::LpGreedy
    };
    let budget = rules.secondary.time_limit_secs;

    // Tables that share no cell are independent: each connected part of the system gets its own,
    // smaller LP. The pattern is the same as with one LP over everything.
    let part = system.parts();
    let mut lps: HashMap<usize, ProtectionLp> = HashMap::new();
    let cubes = Cubes::new(tables, hierarchies, &system);
    let (mut by_cube, mut by_lp) = (0, 0);
    if !order.is_empty() {
        for (done, &p) in order.iter().enumerate() {
            if system.vars[p].fixed {
                unprotectable.push(system.vars[p].cells[0]);
                continue;
            }
            let remaining = budget - start.elapsed().as_secs_f64();
            if remaining <= 0.0 {
                notes.push(format!(
                    "the {budget} s budget of the optimising search ran out after {done} of {} primary cells: \
                     kluis fell back to suppressing every cell not released before (safe, larger pattern)",
                    order.len()
                ));
                method = Method::FallbackAll;
                break;
            }
            let width = rules.protection.required_width(system.vars[p].value);
            if let Some(corners) = cubes.best(&system, p, width, &suppressed) {
                by_cube += 1;
                for i in corners {
                    if !suppressed[i] {
                        suppressed[i] = true;
                        if let Some(lp) = lps.get_mut(&part[i]) {
                            lp.mark_suppressed(i);
                        }
                    }
                }
                continue;
            }
            by_lp += 1;
            let width = width / scale;
            let lp = lps.entry(part[p]).or_insert_with(|| {
                let members: Vec<bool> = part.iter().map(|&q| q == part[p]).collect();
                ProtectionLp::new(&system, &suppressed, scale, &members)
            });
            match lp.protect(p, width, remaining)? {
                Some(moved) => {
                    for i in moved {
                        if !suppressed[i] {
                            suppressed[i] = true;
                            lp.mark_suppressed(i);
                        }
                    }
                }
                None if lp.timed_out => {
                    notes.push(format!(
                        "the {budget} s budget of the optimising search ran out after {done} of {} primary cells: \
                         kluis fell back to suppressing every cell not released before (safe, larger pattern)",
                        order.len()
                    ));
                    method = Method::FallbackAll;
                    break;
                }
                None => unprotectable.push(system.vars[p].cells[0]),
            }
        }
    }
    if method == Method::LpGreedy && by_cube > 0 {
        method = Method::Hypercube;
        notes.push(format!(
            "{by_cube} primary cells protected by a hypercube, {by_lp} by a protection LP"
        ));
    }
    if method == Method::FallbackAll {
        for (i, var) in system.vars.iter().enumerate() {
            suppressed[i] |= !var.fixed;
        }
    }

    let mut secondary = 0;
    let mut secondary_value = 0.0;
    for (id, var) in system.vars.iter().enumerate() {
        if !suppressed[id] {
            continue;
        }
        let mut newly = false;
        for &(t, c) in &var.cells {
            let v = &mut verdicts[t][c];
            if !v.status.is_suppressed() {
                v.status = CellStatus::Secondary;
                v.reasons.push(Reason::Secondary);
                v.reasons.sort();
                newly = true;
            }
        }
        if newly && !primary[id] {
            secondary += 1;
            secondary_value += var.value.abs();
        }
    }
    Ok(SecondaryOutcome {
        method,
        primary: primary.iter().filter(|p| **p).count(),
        secondary,
        secondary_value,
        unprotectable,
        seconds: start.elapsed().as_secs_f64(),
        notes,
    })
}

/// Primary cells that are the only suppressed cells of a relation (a margin and its cells) add
/// up to what the relation's other cells leave: each may be protected, but their sum is a group
/// of their units (tau-Argus's singleton problem). Where those are fewer than the threshold, the
/// cheapest other cell of the relation is returned, to be suppressed and protected like a
/// primary cell, so that the sum is as uncertain as that cell.
fn cells_for_sums_of_primaries(
    tables: &[Table],
    system: &System,
    primary: &[bool],
    suppressed: &[bool],
    rules: &RuleSet,
) -> Vec<usize> {
    let units = |v: usize| -> u64 {
        let (t, c) = system.vars[v].cells[0];
        tables[t].cells[c].units
    };
    let mut chosen = vec![false; system.vars.len()];
    let mut found = Vec::new();
    for eq in &system.eqs {
        let hidden: Vec<usize> = eq
            .iter()
            .map(|&(v, _)| v)
            .filter(|&v| suppressed[v] || chosen[v])
            .collect();
        if hidden.len() < 2 || !hidden.iter().all(|&v| primary[v]) {
            continue;
        }
        if hidden.iter().map(|&v| units(v)).sum::<u64>() >= rules.threshold.min_units {
            continue;
        }
        let cheapest = eq
            .iter()
            .map(|&(v, _)| v)
            .filter(|&v| !suppressed[v] && !system.vars[v].fixed)
            .min_by(|&a, &b| {
                system.vars[a]
                    .value
                    .abs()
                    .total_cmp(&system.vars[b].value.abs())
                    .then(a.cmp(&b))
            });
        if let Some(v) = cheapest {
            chosen[v] = true;
            found.push(v);
        }
    }
    found
}

/// The protection LP over deviations `y = y⁺ − y⁻` of every variable not released before.
struct ProtectionLp {
    model: Option<Model>,
    /// Columns (y⁺, y⁻) of each variable, `None` when fixed.
    col: Vec<Option<(Col, Col)>>,
    values: Vec<f64>,
    free: Vec<bool>,
    timed_out: bool,
    /// When the model was made: HiGHS's time limit runs from there.
    born: Instant,
}

impl ProtectionLp {
    /// The LP over the variables marked in `members` (a connected part of the system).
    fn new(system: &System, suppressed: &[bool], scale: f64, members: &[bool]) -> ProtectionLp {
        let n = system.vars.len();
        let mut pb = RowProblem::default();
        let values: Vec<f64> = system.vars.iter().map(|v| v.value / scale).collect();
        let free: Vec<bool> = system.vars.iter().map(|v| v.free).collect();
        let mut col = vec![None; n];
        for (i, var) in system.vars.iter().enumerate() {
            if var.fixed || !members[i] {
                continue;
            }
            let cost = if suppressed[i] {
                0.0
            } else {
                base_cost(values[i], i, n)
            };
            let down = if free[i] {
                f64::INFINITY
            } else {
                values[i].max(0.0)
            };
            let up = pb.add_column(cost, 0.0..f64::INFINITY);
            let dn = pb.add_column(cost, 0.0..=down);
            col[i] = Some((up, dn));
        }
        for eq in &system.eqs {
            let row: Vec<(Col, f64)> = eq
                .iter()
                .filter_map(|&(v, k)| col[v].map(|(up, dn)| [(up, k), (dn, -k)]))
                .flatten()
                .collect();
            if !row.is_empty() {
                pb.add_row(0.0..=0.0, row);
            }
        }
        let mut model = Model::new(pb);
        model.make_quiet();
        model.set_sense(Sense::Minimise);
        model.set_option("threads", 1);
        ProtectionLp {
            model: Some(model),
            col,
            values,
            free,
            timed_out: false,
            born: Instant::now(),
        }
    }

    fn mark_suppressed(&mut self, i: usize) {
        if let (Some((up, dn)), Some(model)) = (self.col[i], self.model.as_mut()) {
            model.change_column_cost(up, 0.0);
            model.change_column_cost(dn, 0.0);
        }
    }

    /// The variables a cheapest deviation moving `p` up by `width` touches, or `None` when none exists.
    fn protect(
        &mut self,
        p: usize,
        width: f64,
        seconds: f64,
    ) -> Result<Option<Vec<usize>>, SdcError> {
        let (up, dn) = self.col[p].expect("a primary cell being protected is not fixed");
        let mut model = self.model.take().expect("model present");
        model.change_column_bounds(up, width..=width);
        model.change_column_bounds(dn, 0.0..=0.0);
        // HiGHS counts its time limit from the model's first solve, over every solve since.
        model.set_option(
            "time_limit",
            self.born.elapsed().as_secs_f64() + seconds.max(0.001),
        );
        let solved = model
            .try_solve()
            .map_err(|e| SdcError::Solver(format!("{e:?}")))?;
        let status = solved.status();
        let moved = if status == HighsModelStatus::Optimal {
            let sol = solved.get_solution();
            let tol = 1e-7 * width.max(1.0);
            let moved: Vec<usize> = self
                .col
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let (u, d) = (*c)?;
                    ((sol[u] - sol[d]).abs() > tol).then_some(i)
                })
                .collect();
            Some(moved)
        } else {
            self.timed_out = status == HighsModelStatus::ReachedTimeLimit;
            None
        };
        let mut model = Model::from(solved);
        let down = if self.free[p] {
            f64::INFINITY
        } else {
            self.values[p].max(0.0)
        };
        model.change_column_bounds(up, 0.0..f64::INFINITY);
        model.change_column_bounds(dn, 0.0..=down);
        self.model = Some(model);
        Ok(moved)
    }
}

fn base_cost(value: f64, i: usize, n: usize) -> f64 {
    (value.abs() + 1.0) * (1.0 + 1e-6 * i as f64 / n.max(1) as f64)
}
