//! The independent audit: for every suppressed cell, the smallest and largest value it can take
//! given the published cells, every additive relation of the release and non-negativity (for cells
//! without negative contributions). It shares nothing with the search but the system of relations.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use highs::{Col, HighsModelStatus, Model, RowProblem, Sense, SolvedModel};
use serde::{Deserialize, Serialize};

use crate::error::SdcError;
use crate::hypercube::Cubes;
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
    /// Whether `[lower, upper]` are the true extremes; when not, they are the range of feasible
    /// values found, inside the true interval (large components: see the audit's notes).
    pub exact: bool,
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
    // The LPs work on values scaled to at most about 1e4, with HiGHS's tolerances of 1e-7: a
    // bound is good to well within 1e-5 in scaled units. (1e-6 of the largest value, as before,
    // called cells of a large sum table with intervals of 300,000 derivable.)
    let eps = 1e-5 * scale;

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
    let cubes = Cubes::new(tables, hierarchies, &system);
    let mut eqs_by_var: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (e, eq) in system.eqs.iter().enumerate() {
        for &(v, _) in eq {
            eqs_by_var[v].push(e);
        }
    }
    let mut bounds: Vec<Option<Bound>> = vec![None; n];
    let need: Vec<Option<f64>> = (0..n)
        .map(|v| primary[v].then(|| rules.protection.required_width(system.vars[v].value)))
        .collect();
    let mut notes = Vec::new();
    let mut unaudited = 0;
    for (root, vars) in &members {
        let eqs = eqs_of.get(root).map(Vec::as_slice).unwrap_or(&[]);
        let done = Component {
            system: &system,
            vars,
            eqs,
            scale,
            cubes: &cubes,
            suppressed: &suppressed,
            eqs_by_var: &eqs_by_var,
        }
        .bounds(deadline, &need, eps, &mut bounds)?;
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

    let inner = bounds.iter().flatten().filter(|b| !b.exact).count();
    if inner > 0 {
        notes.push(format!(
            "{inner} suppressed cells are in components too large for every interval to be computed \
             exactly: their interval is the range of feasible values the audit found, inside the true \
             interval (the true one can only be wider), which suffices for the verdict"
        ));
    }

    let mut cells = Vec::new();
    let mut derivable_count = 0;
    let mut underprotected = 0;
    for v in 0..n {
        let var = &system.vars[v];
        let (lower, upper, exact) = match bounds[v] {
            Some(b) => (b.lower, b.upper, b.exact),
            None if primary[v] && !suppressed[v] => (var.value, Some(var.value), true),
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
            exact,
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

/// Components with more suppressed variables than this get exact intervals only where the
/// verdict needs them; elsewhere the audit reports the range of feasible values it found.
const EXACT_MAX: usize = 2_000;

/// At most this many LPs that push all undecided variables at once, while at least
/// [`SPREAD_MIN`] are undecided.
const SPREAD_ROUNDS: usize = 8;
const SPREAD_MIN: usize = 50;

/// A suppressed variable's interval as the audit found it.
#[derive(Clone, Copy, Debug)]
struct Bound {
    lower: f64,
    /// `None` when unbounded.
    upper: Option<f64>,
    /// Both ends are the true extremes; else `[lower, upper]` is the range of feasible values
    /// found, inside the true interval.
    exact: bool,
}

/// One connected component of suppressed variables and the equations that hold them.
struct Component<'a> {
    system: &'a System,
    vars: &'a [usize],
    eqs: &'a [usize],
    scale: f64,
    /// Where hypercubes give feasible points without an LP.
    cubes: &'a Cubes,
    suppressed: &'a [bool],
    eqs_by_var: &'a [Vec<usize>],
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
    /// variables not decided keep `None`).
    ///
    /// The verdict needs, per variable, only a feasible range wide enough: every LP optimum is a
    /// feasible point, and the range of values seen over those points (the true values first) is
    /// inside the true interval. So the LPs go first to the variables whose range seen is not yet
    /// wide enough; then, in components of at most [`EXACT_MAX`] variables, to the bounds still
    /// unknown. A non-negative variable seen at 0 has its lower bound exactly.
    fn bounds(
        &self,
        deadline: Instant,
        need: &[Option<f64>],
        eps: f64,
        bounds: &mut [Option<Bound>],
    ) -> Result<bool, SdcError> {
        let member: HashSet<usize> = self.vars.iter().copied().collect();
        let rows = self.rows(&member);
        if rows.iter().all(|(rhs, _)| *rhs == 0.0) {
            return self.cone_bounds(&rows, deadline, bounds);
        }
        let vars = &self.system.vars;
        let n = self.vars.len();
        let (pb, col) = self.model(&rows, false, |v| self.nonnegativity(v));
        let mut model = Some(Model::new(pb));
        let born = Instant::now();
        if let Some(m) = model.as_mut() {
            m.make_quiet();
            m.set_option("threads", 1);
            // Only the objective changes between solves: the previous optimum stays primal
            // feasible, so primal simplex restarts from it (dual simplex: about 8 times slower).
            m.set_option("simplex_strategy", 4);
        }
        let mut seen_lo: Vec<f64> = self.vars.iter().map(|&v| vars[v].value).collect();
        let mut seen_hi = seen_lo.clone();
        // Exact bounds found: `Some(None)` when unbounded that way.
        let mut lo: Vec<Option<Option<f64>>> = vec![None; n];
        let mut hi: Vec<Option<Option<f64>>> = vec![None; n];
        for (i, &v) in self.vars.iter().enumerate() {
            if !vars[v].free && vars[v].value == 0.0 {
                lo[i] = Some(Some(0.0));
            }
        }
        let decided = |i: usize, seen_lo: &[f64], seen_hi: &[f64]| {
            let width = seen_hi[i] - seen_lo[i];
            width > eps && need[self.vars[i]].is_none_or(|w| width >= w - eps)
        };
        // Feasible points without an LP: a hypercube of suppressed cells around the variable,
        // checked here against every equation it touches, moved as far as non-negativity allows
        // both ways.
        let position: HashMap<usize, usize> =
            self.vars.iter().enumerate().map(|(i, &v)| (v, i)).collect();
        for i in 0..n {
            if decided(i, &seen_lo, &seen_hi) {
                continue;
            }
            let v = self.vars[i];
            let width = need[v].unwrap_or(0.0).max(2.0 * eps);
            let Some(y) = self.cubes.witness(self.system, v, width, self.suppressed) else {
                continue;
            };
            let Some((up, down)) = self.check_deviation(&y) else {
                continue;
            };
            for &(w, sign) in &y {
                let j = position[&w];
                let x = vars[w].value;
                for t in [up, -down] {
                    let moved = x + t * sign;
                    seen_lo[j] = seen_lo[j].min(moved);
                    seen_hi[j] = seen_hi[j].max(moved);
                    if t.is_infinite() {
                        // A ray of feasible points: unbounded that way, exactly.
                        if moved > 0.0 {
                            hi[j] = Some(None);
                        } else {
                            lo[j] = Some(None);
                        }
                    } else if !vars[w].free && moved == 0.0 && lo[j].is_none() {
                        lo[j] = Some(Some(0.0));
                    }
                }
            }
        }
        // A few LPs that push every undecided variable at once, half of them up and half down
        // (alternating each round): each optimum is a vertex where many variables sit at an end.
        for round in 0..SPREAD_ROUNDS {
            let undecided: Vec<usize> = (0..n)
                .filter(|&i| !decided(i, &seen_lo, &seen_hi))
                .collect();
            if undecided.len() < SPREAD_MIN {
                break;
            }
            let mut m = model.take().expect("model");
            for (k, &i) in undecided.iter().enumerate() {
                let up = (k + round) % 2 == 0;
                m.change_column_cost(col[&self.vars[i]], if up { 1.0 } else { -1.0 });
            }
            // Keep the optimum finite: an unbounded direction tells nothing here.
            let Some(solved) = solve(m, Sense::Maximise, deadline, born)? else {
                return Ok(false);
            };
            if solved.status() == HighsModelStatus::Optimal {
                let sol = solved.get_solution();
                for (j, &x) in sol.columns().iter().enumerate() {
                    let x = x * self.scale;
                    seen_lo[j] = seen_lo[j].min(x);
                    seen_hi[j] = seen_hi[j].max(x);
                    if lo[j].is_none() && !vars[self.vars[j]].free && x.abs() <= 1e-9 * self.scale {
                        lo[j] = Some(Some(0.0));
                    }
                }
            }
            let mut m = Model::from(solved);
            for &i in &undecided {
                m.change_column_cost(col[&self.vars[i]], 0.0);
            }
            model = Some(m);
        }
        let mut previous: Option<Col> = None;
        // One LP: the bound of variable i in `sense`; false when the deadline came first.
        let mut side = |i: usize,
                        sense: Sense,
                        seen_lo: &mut [f64],
                        seen_hi: &mut [f64],
                        lo: &mut [Option<Option<f64>>],
                        hi: &mut [Option<Option<f64>>]|
         -> Result<bool, SdcError> {
            let mut m = model.take().expect("model");
            let c = col[&self.vars[i]];
            if let Some(p) = previous {
                m.change_column_cost(p, 0.0);
            }
            m.change_column_cost(c, 1.0);
            previous = Some(c);
            let Some(solved) = solve(m, sense, deadline, born)? else {
                return Ok(false);
            };
            let end = match solved.status() {
                HighsModelStatus::Optimal => {
                    let sol = solved.get_solution();
                    for (j, &x) in sol.columns().iter().enumerate() {
                        let x = x * self.scale;
                        seen_lo[j] = seen_lo[j].min(x);
                        seen_hi[j] = seen_hi[j].max(x);
                        if lo[j].is_none()
                            && !vars[self.vars[j]].free
                            && x.abs() <= 1e-9 * self.scale
                        {
                            lo[j] = Some(Some(0.0));
                        }
                    }
                    Some(solved.objective_value() * self.scale)
                }
                HighsModelStatus::Unbounded | HighsModelStatus::UnboundedOrInfeasible => None,
                other => return Err(self.failed(other)),
            };
            if sense == Sense::Maximise {
                hi[i] = Some(end);
                seen_hi[i] = end.unwrap_or(f64::INFINITY).max(seen_hi[i]);
            } else {
                lo[i] = Some(end);
                seen_lo[i] = end.unwrap_or(f64::NEG_INFINITY).min(seen_lo[i]);
            }
            model = Some(Model::from(solved));
            Ok(true)
        };
        let mut verdict_done = true;
        'verdict: for i in 0..n {
            for sense in [Sense::Maximise, Sense::Minimise] {
                let known = if sense == Sense::Maximise { &hi } else { &lo };
                if decided(i, &seen_lo, &seen_hi) || known[i].is_some() {
                    continue;
                }
                if !side(i, sense, &mut seen_lo, &mut seen_hi, &mut lo, &mut hi)? {
                    verdict_done = false;
                    break 'verdict;
                }
            }
        }
        if verdict_done && n <= EXACT_MAX {
            'exact: for i in 0..n {
                for sense in [Sense::Maximise, Sense::Minimise] {
                    let known = if sense == Sense::Maximise { &hi } else { &lo };
                    if known[i].is_some() {
                        continue;
                    }
                    if !side(i, sense, &mut seen_lo, &mut seen_hi, &mut lo, &mut hi)? {
                        break 'exact;
                    }
                }
            }
        }
        let mut complete = true;
        for (i, &v) in self.vars.iter().enumerate() {
            if !verdict_done
                && !decided(i, &seen_lo, &seen_hi)
                && (lo[i].is_none() || hi[i].is_none())
            {
                complete = false;
                continue;
            }
            bounds[v] = Some(Bound {
                lower: lo[i].map_or(seen_lo[i], |l| l.unwrap_or(f64::NEG_INFINITY)),
                upper: hi[i].map_or(Some(seen_hi[i]), |u| u),
                exact: lo[i].is_some() && hi[i].is_some(),
            });
        }
        Ok(complete)
    }

    /// For a deviation `y` (variable, sign) over suppressed variables: how far `x + t·y` can go
    /// up and down (t) keeping non-negativity, or `None` when `y` breaks an equation, moves a
    /// published variable, or cannot move at all.
    fn check_deviation(&self, y: &[(usize, f64)]) -> Option<(f64, f64)> {
        let vars = &self.system.vars;
        let sign: HashMap<usize, f64> = y.iter().copied().collect();
        if y.iter().any(|&(v, _)| !self.suppressed[v]) {
            return None;
        }
        for &(v, _) in y {
            for &e in &self.eqs_by_var[v] {
                let sum: f64 = self.system.eqs[e]
                    .iter()
                    .map(|(w, k)| k * sign.get(w).copied().unwrap_or(0.0))
                    .sum();
                if sum != 0.0 {
                    return None;
                }
            }
        }
        let (mut up, mut down) = (f64::INFINITY, f64::INFINITY);
        for &(v, s) in y {
            if vars[v].free {
                continue;
            }
            let room = vars[v].value.max(0.0);
            if s < 0.0 {
                up = up.min(room);
            } else {
                down = down.min(room);
            }
        }
        (up + down > 0.0).then_some((up, down))
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
        bounds: &mut [Option<Bound>],
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
                bounds[v] = Some(Bound {
                    lower: 0.0,
                    upper: if up { None } else { Some(0.0) },
                    exact: true,
                });
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
            bounds[v] = Some(Bound {
                lower,
                upper,
                exact: true,
            });
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
