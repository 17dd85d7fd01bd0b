//! Optimal global recoding over the generalisation lattice.
//!
//! A lattice node gives each quasi-identifier a level of its [`Hierarchy`]. A node is
//! *feasible* when, after recoding every record to its levels, at most `max_suppressed` records
//! sit in classes smaller than k (those are left to local suppression). Generalising only merges
//! classes, so feasibility is monotone: every node above a feasible node is feasible, every node
//! below an infeasible one is infeasible.
//!
//! Information loss of a node (documented metric, data-dependent but cheap): the share of the
//! quasi-identifiers' entropy that the recoding destroys,
//! `loss = Σ_j (H_j(0) − H_j(l_j)) / Σ_j H_j(0)`, where `H_j(l)` is the Shannon entropy of
//! column j at level l over all records. It lies in `[0, 1]`, grows with every coarsening
//! (entropy never rises when values are merged) and needs no grouping to compute. Among
//! feasible nodes the search returns the one with the least loss, ties broken by fewer records
//! to suppress, then by fewer levels, then by the level vector.
//!
//! Search, exact: (1) a bound: climb greedily from the bottom node, each step taking the
//! one-level generalisation that removes most records below k per unit of added loss, until
//! feasible; (2) decide every node whose loss does not exceed the bound, highest first: an
//! infeasible node proves every node below it infeasible without evaluating them
//! (monotonicity), a feasible one lowers the bound. A node is evaluated on the class table
//! (distinct tuples with counts) of the smallest already-evaluated node below it, so most
//! evaluations roll up a small table rather than the records.

use serde::Serialize;

use crate::classes::group;
use crate::coded::{CodedColumn, CodedTable, MISSING};
use crate::error::{Result, RiskError};
use crate::hash::{FastMap, fast_map};
use crate::hierarchy::Hierarchy;

/// Limits for the search.
#[derive(Debug, Clone, Copy)]
pub struct RecodingOptions {
    pub k: u32,
    /// Records that may stay in classes below k, to be suppressed locally.
    pub max_suppressed: u64,
}

/// The chosen lattice node.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Recoding {
    /// Level of each quasi-identifier, in the order of the hierarchies given.
    pub levels: Vec<usize>,
    /// The level names, same order.
    pub level_names: Vec<String>,
    pub loss: f64,
    /// Records still in classes below k at this node.
    pub records_below_k: u64,
    pub lattice_nodes: u64,
    pub nodes_evaluated: u64,
}

const MAX_NODES: u64 = 2_000_000;
// Losses closer than this are ties (floating-point noise in the entropy sums).
const LOSS_TIE: f64 = 1e-12;
// Budget of cached class tables, in stored u32 values (about 256 MB).
const CACHE_WORDS: usize = 64 << 20;

/// Class table of one evaluated node: distinct tuples (flattened, `q` codes each) and counts.
struct ClassTable {
    levels: Vec<usize>,
    tuples: Vec<u32>,
    counts: Vec<u32>,
}

/// Finds the least-loss feasible node; `None` when even the most general node is infeasible.
/// Quasi-identifiers are the columns the hierarchies name.
pub fn optimal_recoding(
    table: &CodedTable,
    hierarchies: &[Hierarchy],
    options: &RecodingOptions,
) -> Result<Option<Recoding>> {
    if options.k == 0 {
        return Err(RiskError::Option("k must be at least 1".into()));
    }
    let q = hierarchies.len();
    let columns: Vec<&[u32]> = hierarchies
        .iter()
        .map(|h| Ok(table.column(h.column())?.codes.as_slice()))
        .collect::<Result<_>>()?;
    for (h, col) in hierarchies.iter().zip(&columns) {
        if let Some(&bad) = col
            .iter()
            .find(|&&c| c != MISSING && c as usize >= h.cardinality(0))
        {
            return Err(RiskError::Hierarchy {
                column: h.column().into(),
                message: format!(
                    "code {bad} is outside the hierarchy; build it from this table's dictionary"
                ),
            });
        }
    }
    let rows = table.rows();

    // Entropy of every column at every level, hence the loss of every node.
    let entropies: Vec<Vec<f64>> = hierarchies
        .iter()
        .zip(&columns)
        .map(|(h, col)| (0..h.levels()).map(|l| level_entropy(h, col, l)).collect())
        .collect();
    let total_entropy: f64 = entropies.iter().map(|e| e[0]).sum();
    let loss_of = |levels: &[usize]| -> f64 {
        if total_entropy <= 0.0 {
            return 0.0;
        }
        levels
            .iter()
            .enumerate()
            .map(|(j, &l)| entropies[j][0] - entropies[j][l])
            .sum::<f64>()
            / total_entropy
    };

    let node_count = hierarchies
        .iter()
        .try_fold(1u64, |acc, h| acc.checked_mul(h.levels() as u64))
        .filter(|&n| n <= MAX_NODES)
        .ok_or_else(|| {
            RiskError::Option(format!(
                "the generalisation lattice has more than {MAX_NODES} nodes"
            ))
        })?;
    let mut nodes: Vec<(f64, Vec<usize>)> = Vec::with_capacity(node_count as usize);
    let mut levels = vec![0usize; q];
    loop {
        nodes.push((loss_of(&levels), levels.clone()));
        // Odometer increment over the level ranges.
        let mut j = 0;
        while j < q {
            levels[j] += 1;
            if levels[j] < hierarchies[j].levels() {
                break;
            }
            levels[j] = 0;
            j += 1;
        }
        if j == q {
            break;
        }
    }
    let height = |n: &[usize]| n.iter().sum::<usize>();

    // The records' own class table is the root every evaluation can roll up from.
    let base = {
        let classes = group(&columns, rows);
        let mut tuples = Vec::with_capacity(classes.len() * q);
        for &r in &classes.first {
            tuples.extend(columns.iter().map(|c| c[r as usize]));
        }
        ClassTable {
            levels: vec![0; q],
            tuples,
            counts: classes.sizes,
        }
    };
    let mut search = Search {
        base,
        cache: Vec::new(),
        evaluated: 0,
        k: options.k,
    };

    // Phase 1, a bound: climb greedily from the bottom, each step taking the one-level
    // generalisation that removes the most records below k per unit of loss, until feasible.
    let mut best: Option<(f64, u64, Vec<usize>)> = None;
    let mut current = vec![0usize; q];
    loop {
        let below = search.evaluate(&current, hierarchies);
        if below <= options.max_suppressed {
            best = Some((loss_of(&current), below, current.clone()));
            break;
        }
        let mut step: Option<(f64, Vec<usize>)> = None;
        for j in 0..q {
            if current[j] + 1 >= hierarchies[j].levels() {
                continue;
            }
            let mut child = current.clone();
            child[j] += 1;
            let gain = below.saturating_sub(search.evaluate(&child, hierarchies)) as f64;
            let cost = (loss_of(&child) - loss_of(&current)).max(LOSS_TIE);
            let score = gain / cost;
            if step.as_ref().is_none_or(|(s, _)| score > *s) {
                step = Some((score, child));
            }
        }
        match step {
            Some((_, child)) => current = child,
            None => break,
        }
    }
    let Some(mut bound) = best.as_ref().map(|b| b.0) else {
        return Ok(None);
    };

    // Phase 2, exact: every node cheaper than the bound is decided, highest first, so that an
    // infeasible node settles everything below it and a feasible one lowers the bound.
    let mut candidates: Vec<&(f64, Vec<usize>)> = nodes
        .iter()
        .filter(|(loss, _)| *loss <= bound + LOSS_TIE)
        .collect();
    candidates.sort_by(|a, b| {
        height(&b.1)
            .cmp(&height(&a.1))
            .then_with(|| a.0.total_cmp(&b.0))
    });
    let mut infeasible: Vec<Vec<usize>> = Vec::new();
    for (loss, node) in candidates {
        if *loss > bound + LOSS_TIE || infeasible.iter().any(|m| dominated(node, m)) {
            continue;
        }
        let below = search.evaluate(node, hierarchies);
        if below <= options.max_suppressed {
            let candidate = (*loss, below, node.clone());
            if best.as_ref().is_none_or(|b| better(&candidate, b)) {
                bound = bound.min(*loss);
                best = Some(candidate);
            }
        } else {
            infeasible.retain(|m| !dominated(m, node));
            infeasible.push(node.clone());
        }
    }
    let evaluated = search.evaluated;
    Ok(best.map(|(loss, below, levels)| Recoding {
        level_names: levels
            .iter()
            .zip(hierarchies)
            .map(|(&l, h)| h.level_name(l).to_string())
            .collect(),
        levels,
        loss,
        records_below_k: below,
        lattice_nodes: node_count,
        nodes_evaluated: evaluated,
    }))
}

/// Whether `a` (loss, records below k, levels) beats `b`: less loss, then fewer records below
/// k, then fewer levels, then the smaller level vector.
fn better(a: &(f64, u64, Vec<usize>), b: &(f64, u64, Vec<usize>)) -> bool {
    if (a.0 - b.0).abs() > LOSS_TIE {
        return a.0 < b.0;
    }
    let ha: usize = a.2.iter().sum();
    let hb: usize = b.2.iter().sum();
    (a.1, ha, &a.2) < (b.1, hb, &b.2)
}

/// Evaluations with a cache of class tables to roll up from.
struct Search {
    base: ClassTable,
    cache: Vec<ClassTable>,
    evaluated: u64,
    k: u32,
}

impl Search {
    /// Records below k at `node`, rolled up from the smallest cached table below it.
    fn evaluate(&mut self, node: &[usize], hierarchies: &[Hierarchy]) -> u64 {
        if let Some(t) = self.cache.iter().find(|t| t.levels == node) {
            return below_k(&t.counts, self.k);
        }
        let source = self
            .cache
            .iter()
            .filter(|t| dominated(&t.levels, node))
            .min_by_key(|t| t.counts.len())
            .unwrap_or(&self.base);
        let rolled = roll_up(source, node, hierarchies);
        self.evaluated += 1;
        let below = below_k(&rolled.counts, self.k);
        self.cache.push(rolled);
        let mut words: usize = self
            .cache
            .iter()
            .map(|t| t.tuples.len() + t.counts.len())
            .sum();
        while words > CACHE_WORDS {
            let largest = (0..self.cache.len())
                .max_by_key(|&i| self.cache[i].counts.len())
                .unwrap();
            let t = self.cache.swap_remove(largest);
            words -= t.tuples.len() + t.counts.len();
        }
        below
    }
}

fn below_k(counts: &[u32], k: u32) -> u64 {
    counts
        .iter()
        .filter(|&&c| c < k)
        .map(|&c| u64::from(c))
        .sum()
}

/// True when `a` is at or below `b` on every quasi-identifier.
fn dominated(a: &[usize], b: &[usize]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y)
}

/// Shannon entropy (bits) of a column at a level; missing is a value of its own.
pub(crate) fn level_entropy(h: &Hierarchy, column: &[u32], level: usize) -> f64 {
    let missing_slot = h.cardinality(level);
    let mut counts = vec![0u64; missing_slot + 1];
    for &c in column {
        let g = h.generalise(level, c);
        counts[if g == MISSING {
            missing_slot
        } else {
            g as usize
        }] += 1;
    }
    entropy_bits(&counts)
}

pub(crate) fn entropy_bits(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let total = total as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total;
            -p * p.log2()
        })
        .sum::<f64>()
        + 0.0 // turns the −0.0 of a single-valued column into 0.0
}

/// Recodes a class table to the levels of `node` and merges equal tuples.
fn roll_up(source: &ClassTable, node: &[usize], hierarchies: &[Hierarchy]) -> ClassTable {
    let q = node.len();
    let ups: Vec<Vec<u32>> = hierarchies
        .iter()
        .enumerate()
        .map(|(j, h)| h.up(source.levels[j], node[j]))
        .collect();
    let radices: Vec<u64> = hierarchies
        .iter()
        .zip(node)
        .map(|(h, &l)| h.cardinality(l) as u64 + 1)
        .collect();
    let space = radices.iter().try_fold(1u64, |acc, &r| acc.checked_mul(r));
    let mut tuples = Vec::new();
    let mut counts: Vec<u32> = Vec::new();
    let mut mapped = vec![0u32; q];
    let map_tuple = |g: usize, mapped: &mut [u32]| {
        for j in 0..q {
            let c = source.tuples[g * q + j];
            mapped[j] = if c == MISSING {
                MISSING
            } else {
                ups[j][c as usize]
            };
        }
    };
    let key_of = |mapped: &[u32]| -> u64 {
        mapped.iter().zip(&radices).fold(0u64, |k, (&c, &r)| {
            k * r + if c == MISSING { r - 1 } else { u64::from(c) }
        })
    };
    let groups = source.counts.len();
    match space {
        Some(space) if space <= (1 << 22) => {
            let mut slot = vec![u32::MAX; space as usize];
            for g in 0..groups {
                map_tuple(g, &mut mapped);
                let s = &mut slot[key_of(&mapped) as usize];
                if *s == u32::MAX {
                    *s = counts.len() as u32;
                    counts.push(0);
                    tuples.extend_from_slice(&mapped);
                }
                counts[*s as usize] += source.counts[g];
            }
        }
        Some(_) => {
            let mut index: FastMap<u64, u32> = fast_map(groups / 2 + 16);
            for g in 0..groups {
                map_tuple(g, &mut mapped);
                let next = counts.len() as u32;
                let s = *index.entry(key_of(&mapped)).or_insert(next);
                if s == next {
                    counts.push(0);
                    tuples.extend_from_slice(&mapped);
                }
                counts[s as usize] += source.counts[g];
            }
        }
        None => {
            let mut index: FastMap<Vec<u32>, u32> = fast_map(groups / 2 + 16);
            for g in 0..groups {
                map_tuple(g, &mut mapped);
                let next = counts.len() as u32;
                let s = *index.entry(mapped.clone()).or_insert(next);
                if s == next {
                    counts.push(0);
                    tuples.extend_from_slice(&mapped);
                }
                counts[s as usize] += source.counts[g];
            }
        }
    }
    ClassTable {
        levels: node.to_vec(),
        tuples,
        counts,
    }
}

/// A copy of `table` with each hierarchy's column recoded to its level in `levels`; every other
/// column is left as it is.
pub fn apply_recoding(
    table: &CodedTable,
    hierarchies: &[Hierarchy],
    levels: &[usize],
) -> Result<CodedTable> {
    if levels.len() != hierarchies.len() {
        return Err(RiskError::Option(format!(
            "{} levels given for {} hierarchies",
            levels.len(),
            hierarchies.len()
        )));
    }
    let mut columns = table.columns().to_vec();
    for (h, &level) in hierarchies.iter().zip(levels) {
        if level >= h.levels() {
            return Err(RiskError::Hierarchy {
                column: h.column().into(),
                message: format!(
                    "level {level} does not exist (it has {} levels)",
                    h.levels()
                ),
            });
        }
        let j = table.index_of(h.column())?;
        let source = &table.columns()[j];
        columns[j] = CodedColumn {
            name: source.name.clone(),
            codes: source
                .codes
                .iter()
                .map(|&c| h.generalise(level, c))
                .collect(),
            dictionary: h.dictionary(level).clone(),
        };
    }
    CodedTable::new(columns)
}
