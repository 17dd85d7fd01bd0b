//! The independent audit: for every suppressed cell, the smallest and largest value it can take
//! given the published cells, every additive relation of the release and non-negativity (for cells
//! without negative contributions). It shares nothing with the search but the system of relations.

use highs::{Col, HighsModelStatus, Model, RowProblem, Sense};
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
    /// One entry per suppressed quantity, in variable order.
    pub cells: Vec<AuditCell>,
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

    let mut bounds: Vec<Option<(f64, Option<f64>)>> = vec![None; n];
    for (root, vars) in &members {
        let mut pb = RowProblem::default();
        let mut col: std::collections::HashMap<usize, Col> = Default::default();
        for &v in vars {
            let c = if system.vars[v].free {
                pb.add_column(0.0, f64::NEG_INFINITY..f64::INFINITY)
            } else {
                pb.add_column(0.0, 0.0..f64::INFINITY)
            };
            col.insert(v, c);
        }
        for &e in eqs_of.get(root).map(Vec::as_slice).unwrap_or(&[]) {
            let mut rhs = 0.0;
            let mut row = Vec::new();
            for &(v, k) in &system.eqs[e] {
                match col.get(&v) {
                    Some(&c) => row.push((c, k)),
                    None => rhs -= k * system.vars[v].value / scale,
                }
            }
            pb.add_row(rhs..=rhs, row);
        }
        let mut model = Model::new(pb);
        model.make_quiet();
        model.set_option("threads", 1);
        let mut previous: Option<Col> = None;
        for &v in vars {
            let c = col[&v];
            if let Some(p) = previous {
                model.change_column_cost(p, 0.0);
            }
            model.change_column_cost(c, 1.0);
            previous = Some(c);
            let mut ends = [None, None];
            for (k, sense) in [Sense::Minimise, Sense::Maximise].into_iter().enumerate() {
                model.set_sense(sense);
                let solved = model
                    .try_solve()
                    .map_err(|e| SdcError::Solver(format!("{e:?}")))?;
                ends[k] = match solved.status() {
                    HighsModelStatus::Optimal => Some(solved.objective_value() * scale),
                    HighsModelStatus::Unbounded | HighsModelStatus::UnboundedOrInfeasible => None,
                    other => {
                        return Err(SdcError::Solver(format!(
                            "the audit LP of a component of {} suppressed cells ended with status {other:?}",
                            vars.len()
                        )));
                    }
                };
                model = Model::from(solved);
            }
            let lower = ends[0].unwrap_or(f64::NEG_INFINITY);
            bounds[v] = Some((lower, ends[1]));
        }
    }

    let mut cells = Vec::new();
    let mut derivable_count = 0;
    let mut underprotected = 0;
    for v in 0..n {
        let var = &system.vars[v];
        let (lower, upper) = match bounds[v] {
            Some(b) => b,
            None if primary[v] => (var.value, Some(var.value)),
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
        passed: derivable_count == 0 && underprotected == 0,
        derivable: derivable_count,
        underprotected,
        cells,
    })
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
