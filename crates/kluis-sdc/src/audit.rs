//! The independent audit: for every suppressed cell, the smallest and largest value it can take
//! given the published cells, every additive relation of the release and non-negativity (for cells
//! without negative contributions). It shares nothing with the search but the system of relations.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use highs::{Col, HighsModelStatus, Model, RowProblem, Sense, SolvedModel};
use serde::{Deserialize, Serialize};

use crate::error::SdcError;
use crate::primary::{CellStatus, CellVerdict};
use crate::rules::RuleSet;
use crate::system::System;
use crate::table::{Hierarchy, PublishedCell, Table};

/// The audit of one suppressed quantity (a cell, and the cells linked to it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditCell {
    /// Its first occurrence: (table, cell).
    pub table: usize,
    /// Cell index in that table.
    pub cell: usize,
    /// True additive value.
    pub value: f64,
    /// Smallest feasible value.
    pub lower: f64,
    /// Largest feasible value, `None` when unbounded.
    pub upper: Option<f64>,
    /// The width a primary cell needs; `None` for secondary cells.
    pub required_width: Option<f64>,
    /// Whether an attacker can recompute it exactly.
    pub derivable: bool,
    /// Whether its interval is wide enough (for secondary cells: not derivable).
    pub protected: bool,
}

/// The audit's verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    /// Every suppressed quantity protected and none derivable.
    pub passed: bool,
    /// Suppressed quantities an attacker can recompute exactly.
    pub derivable: usize,
    /// Primary quantities whose interval is narrower than required.
    pub underprotected: usize,
    /// Suppressed quantities left unchecked because the audit's time budget ran out (the audit
    /// then fails).
    pub unaudited: usize,
    /// One entry per suppressed quantity checked, in variable order.
    pub cells: Vec<AuditCell>,
    /// What a reviewer should know (an audit cut short).
    pub notes: Vec<String>,
}

/// Audits the suppression pattern in `verdicts` over the release.
pub fn audit(
    tables: &[Table],
    verdicts: &[Vec<CellVerdict>],
    hierarchies: &[Hierarchy],
    published: &[PublishedCell],
    rules: &RuleSet,
) -> Result<Audit, SdcError> {
    let system = System::build(tables, hierarchies, published)?;
    let n = system.vars.len();
    let mut suppressed = vec![false; n];
    let mut primary = vec![false; n];
    for (id, var) in system.vars.iter().enumerate() {
        // A quantity released before is known whatever this release suppresses.
        if var.fixed {
            primary[id] = var
                .cells
                .iter()
                .any(|&(t, c)| verdicts[t][c].status == CellStatus::Primary);
            continue;
        }
        for &(t, c) in &var.cells {
            suppressed[id] |= verdicts[t][c].status.is_suppressed();
            primary[id] |= verdicts[t][c].status == CellStatus::Primary;
        }
    }
    let scale = system.scale();
    let eps = 1e-6
        * system
            .vars
            .iter()
            .map(|v| v.value.abs())
            .fold(1.0, f64::max);

    // Connected components of suppressed variables through the equations.
    let mut uf = UnionFind::new(n);
    for eq in &system.eqs {
        let mut first = None;
        for &(v, _) in eq {
            if suppressed[v] {
                match first {
                    None => first = Some(v),
                    Some(f) => uf.union(f, v),
                }
            }
        }
    }
    let mut members: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for v in (0..n).filter(|&v| suppressed[v]) {
        members.entry(uf.find(v)).or_default().push(v);
    }
    let mut eqs_of: std::collections::HashMap<usize, Vec<usize>> = Default::default();
    for (e, eq) in system.eqs.iter().enumerate() {
        if let Some(&(v, _)) = eq.iter().find(|(v, _)| suppressed[*v]) {
            eqs_of.entry(uf.find(v)).or_default().push(e);
        }
    }

    let deadline = Instant::now() + Duration::from_secs_f64(rules.secondary.time_limit_secs);
    let mut bounds: Vec<Option<(f64, Option<f64>)>> = vec![None; n];
    let mut notes = Vec::new();
    let mut unaudited = 0;
    for (root, vars) in &members {
        let eqs = eqs_of.get(root).map(Vec::as_slice).unwrap_or(&[]);
        let done = Component {
            system: &system,
            vars,
            eqs,
            scale,
        }
        .bounds(deadline, &mut bounds)?;
        if !done {
            unaudited += vars.iter().filter(|&&v| bounds[v].is_none()).count();
        }
    }
    if unaudited > 0 {
        notes.push(format!(
            "the audit ran out of its {} s budget with {unaudited} suppressed cells not yet checked: \
             the pattern is not confirmed safe",
            rules.secondary.time_limit_secs
        ));
    }

    let mut cells = Vec::new();
    let mut derivable_count = 0;
    let mut underprotected = 0;
    for v in 0..n {
        let var = &system.vars[v];
        let (lower, upper) = match bounds[v] {
            Some(b) => b,
            None if primary[v] && !suppressed[v] => (var.value, Some(var.value)),
            None => continue,
        };
        let width = upper.map_or(f64::INFINITY, |u| u - lower);
        let derivable = width <= eps;
        let required_width = primary[v].then(|| rules.protection.required_width(var.value));
        let protected = !derivable && required_width.is_none_or(|w| width >= w - eps);
        derivable_count += usize::from(derivable);
        underprotected += usize::from(primary[v] && !protected);
        let (table, cell) = var.cells[0];
        cells.push(AuditCell {
            table,
            cell,
            value: var.value,
            lower,
            upper,
            required_width,
            derivable,
            protected,
        });
    }
    Ok(Audit {
        passed: derivable_count == 0 && underprotected == 0 && unaudited == 0,
        derivable: derivable_count,
        underprotected,
        unaudited,
        cells,
        notes,
    })
}

/// One connected component of suppressed variables and the equations that hold them.
struct Component<'a> {
    system: &'a System,
    vars: &'a [usize],
    eqs: &'a [usize],
    scale: f64,
}

impl Component<'_> {
    /// The component's equations over its variables, with the published values moved to the
    /// right-hand side (scaled).
    fn rows(&self, member: &HashSet<usize>) -> Vec<(f64, Vec<(usize, f64)>)> {
        self.eqs
            .iter()
            .map(|&e| {
                let mut rhs = 0.0;
                let mut row = Vec::new();
                for &(v, k) in &self.system.eqs[e] {
                    if member.contains(&v) {
                        row.push((v, k));
                    } else {
                        rhs -= k * self.system.vars[v].value / self.scale;
                    }
                }
                (rhs, row)
            })
            .collect()
    }

    /// A model with one column per variable (bounds from `bound`), the equations with their
    /// right-hand sides (or 0 when `homogeneous`), and extra rows from `extra`.
    fn model(
        &self,
        rows: &[(f64, Vec<(usize, f64)>)],
        homogeneous: bool,
        bound: impl Fn(usize) -> (f64, f64),
    ) -> (RowProblem, HashMap<usize, Col>) {
        let mut pb = RowProblem::default();
        let mut col = HashMap::with_capacity(self.vars.len());
        for &v in self.vars {
            let (lo, hi) = bound(v);
            col.insert(v, pb.add_column(0.0, lo..=hi));
        }
        for (rhs, row) in rows {
            let rhs = if homogeneous { 0.0 } else { *rhs };
            pb.add_row(rhs..=rhs, row.iter().map(|&(v, k)| (col[&v], k)));
        }
        (pb, col)
    }

    /// Fills `bounds` for the component's variables; `false` when the deadline came first (the
    /// variables not reached keep `None`).
    fn bounds(
        &self,
        deadline: Instant,
        bounds: &mut [Option<(f64, Option<f64>)>],
    ) -> Result<bool, SdcError> {
        let member: HashSet<usize> = self.vars.iter().copied().collect();
        let rows = self.rows(&member);
        if rows.iter().all(|(rhs, _)| *rhs == 0.0) {
            return self.cone_bounds(&rows, deadline, bounds);
        }
        let (pb, col) = self.model(&rows, false, |v| self.nonnegativity(v));
        let mut model = Model::new(pb);
        let born = Instant::now();
        model.make_quiet();
        model.set_option("threads", 1);
        // Only the objective changes between solves: the previous optimum stays primal
        // feasible, so primal simplex restarts from it (dual simplex is about 8 times slower here).
        model.set_option("simplex_strategy", 4);
        let mut previous: Option<Col> = None;
        for &v in self.vars {
            let c = col[&v];
            if let Some(p) = previous {
                model.change_column_cost(p, 0.0);
            }
            model.change_column_cost(c, 1.0);
            previous = Some(c);
            let mut ends = [None, None];
            for (k, sense) in [Sense::Minimise, Sense::Maximise].into_iter().enumerate() {
                let Some(solved) = solve(model, sense, deadline, born)? else {
                    return Ok(false);
                };
                ends[k] = match solved.status() {
                    HighsModelStatus::Optimal => Some(solved.objective_value() * self.scale),
                    HighsModelStatus::Unbounded | HighsModelStatus::UnboundedOrInfeasible => None,
                    other => return Err(self.failed(other)),
                };
                model = Model::from(solved);
            }
            let lower = ends[0].unwrap_or(f64::NEG_INFINITY);
            bounds[v] = Some((lower, ends[1]));
        }
        Ok(true)
    }

    fn nonnegativity(&self, v: usize) -> (f64, f64) {
        if self.system.vars[v].free {
            (f64::NEG_INFINITY, f64::INFINITY)
        } else {
            (0.0, f64::INFINITY)
        }
    }

    fn failed(&self, status: HighsModelStatus) -> SdcError {
        SdcError::Solver(format!(
            "the audit LP of a component of {} suppressed cells ended with status {status:?}",
            self.vars.len()
        ))
    }

    /// A component whose equations involve no published non-zero value: its feasible set
    /// `{x : A·x = 0, x ≥ 0 where not free}` is a cone. A variable that is positive somewhere in a
    /// cone is unbounded above, else its maximum is 0; likewise below. The true values show most
    /// of it; one LP finds the non-negative variables with a true value of 0 that can be positive,
    /// and each free variable gets two LPs over the cone cut by a box.
    fn cone_bounds(
        &self,
        rows: &[(f64, Vec<(usize, f64)>)],
        deadline: Instant,
        bounds: &mut [Option<(f64, Option<f64>)>],
    ) -> Result<bool, SdcError> {
        let vars = &self.system.vars;
        let zeros: Vec<usize> = self
            .vars
            .iter()
            .copied()
            .filter(|&v| !vars[v].free && vars[v].value <= 0.0)
            .collect();
        let mut positive_somewhere: HashSet<usize> = HashSet::new();
        if !zeros.is_empty() {
            // max Σ z_v with z_v ≤ x_v, z_v ≤ 1: rays add up in a cone and are ≥ 0 on the
            // non-negative variables, so the optimum has z_v = 1 exactly for those that can be
            // positive.
            let (mut pb, x) = self.model(rows, true, |v| self.nonnegativity(v));
            let z: Vec<Col> = zeros
                .iter()
                .map(|_| pb.add_column(1.0, 0.0..=1.0))
                .collect();
            for (&v, &zc) in zeros.iter().zip(&z) {
                pb.add_row(f64::NEG_INFINITY..=0.0, [(zc, 1.0), (x[&v], -1.0)]);
            }
            let mut model = Model::new(pb);
            let born = Instant::now();
            model.make_quiet();
            model.set_option("threads", 1);
            let Some(solved) = solve(model, Sense::Maximise, deadline, born)? else {
                return Ok(false);
            };
            if solved.status() != HighsModelStatus::Optimal {
                return Err(self.failed(solved.status()));
            }
            let sol = solved.get_solution();
            for (&v, &zc) in zeros.iter().zip(&z) {
                if sol[zc] > 0.5 {
                    positive_somewhere.insert(v);
                }
            }
        }
        for &v in self.vars {
            if !vars[v].free {
                let up = vars[v].value > 0.0 || positive_somewhere.contains(&v);
                bounds[v] = Some((0.0, if up { None } else { Some(0.0) }));
            }
        }
        let free: Vec<usize> = self
            .vars
            .iter()
            .copied()
            .filter(|&v| vars[v].free)
            .collect();
        if free.is_empty() {
            return Ok(true);
        }
        // Within the box [-1, 1], a variable of a cone leaves 0 exactly when it is unbounded
        // that way.
        let (pb, x) = self.model(rows, true, |v| {
            if vars[v].free {
                (-1.0, 1.0)
            } else {
                (0.0, 1.0)
            }
        });
        let mut model = Model::new(pb);
        let born = Instant::now();
        model.make_quiet();
        model.set_option("threads", 1);
        if let Ok(v) = std::env::var("KLUIS_HIGHS_OPT") {
            for kv in v.split(',') {
                let (k, val) = kv.split_once('=').unwrap();
                if let Ok(i) = val.parse::<i32>() {
                    model.set_option(k, i);
                } else {
                    model.set_option(k, val);
                }
            }
        }
        let mut previous: Option<Col> = None;
        for &v in &free {
            let c = x[&v];
            if let Some(p) = previous {
                model.change_column_cost(p, 0.0);
            }
            model.change_column_cost(c, 1.0);
            previous = Some(c);
            let mut ends = [0.0, 0.0];
            for (k, sense) in [Sense::Minimise, Sense::Maximise].into_iter().enumerate() {
                let Some(solved) = solve(model, sense, deadline, born)? else {
                    return Ok(false);
                };
                if solved.status() != HighsModelStatus::Optimal {
                    return Err(self.failed(solved.status()));
                }
                ends[k] = solved.objective_value();
                model = Model::from(solved);
            }
            let lower = if ends[0] < -1e-7 {
                f64::NEG_INFINITY
            } else {
                0.0
            };
            let upper = if ends[1] > 1e-7 { None } else { Some(0.0) };
            bounds[v] = Some((lower, upper));
        }
        Ok(true)
    }
}

/// Solves `model` in `sense` within what is left before `deadline`, or `None` when the time ran
/// out. `Model::from` the result keeps its basis for the next solve.
fn solve(
    mut model: Model,
    sense: Sense,
    deadline: Instant,
    born: Instant,
) -> Result<Option<SolvedModel>, SdcError> {
    if Instant::now() >= deadline {
        return Ok(None);
    }
    // HiGHS counts its time limit from the model's first solve, over every solve since.
    model.set_option("time_limit", deadline.duration_since(born).as_secs_f64());
    model.set_sense(sense);
    let solved = model
        .try_solve()
        .map_err(|e| SdcError::Solver(format!("{e:?}")))?;
    if solved.status() == HighsModelStatus::ReachedTimeLimit {
        return Ok(None);
    }
    Ok(Some(solved))
}

struct UnionFind(Vec<usize>);

impl UnionFind {
    fn new(n: usize) -> UnionFind {
        UnionFind((0..n).collect())
    }
    fn find(&mut self, mut x: usize) -> usize {
        while self.0[x] != x {
            self.0[x] = self.0[self.0[x]];
            x = self.0[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
    }
}
