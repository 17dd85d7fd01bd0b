//! The linear system behind one release: one variable per distinct additive quantity (cells with the
//! same quantity and key in linked tables are one variable) and one equation per additive relation
//! (each margin or hierarchy node as the sum of its children, along every dimension).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::SdcError;
use crate::structure::dim_trees;
use crate::table::{Hierarchy, PublishedCell, Statistic, TOTAL, Table};

/// One unknown of the system.
#[derive(Clone, Debug)]
pub(crate) struct Var {
    /// True additive value.
    pub value: f64,
    /// Whether it may be negative (some contribution is negative).
    pub free: bool,
    /// Known to the attacker whatever this release does (released before).
    pub fixed: bool,
    /// (table, cell) occurrences.
    pub cells: Vec<(usize, usize)>,
}

/// Variables and homogeneous equations `Σ coef · x = 0`.
#[derive(Debug)]
pub(crate) struct System {
    pub vars: Vec<Var>,
    pub eqs: Vec<Vec<(usize, f64)>>,
}

/// Identity of a quantity across tables: what is summed, and the non-Total part of the key.
type QuantityKey = (Option<String>, Vec<(String, String)>);

fn quantity(table: &Table) -> Option<String> {
    match table.statistic {
        // A count table may name what it counts (rows, persons, values of a column); counts
        // naming different things are different quantities.
        Statistic::Count => table.measure.clone(),
        _ => table.measure.clone().or_else(|| Some(String::new())),
    }
}

fn canonical(table: &Table, key: &[String]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = key
        .iter()
        .enumerate()
        .filter(|(_, v)| *v != TOTAL)
        .map(|(i, v)| (table.dimension_id(i).to_string(), v.clone()))
        .collect();
    pairs.sort();
    pairs
}

impl System {
    /// For each variable, the connected part of the system it is in (the smallest variable id
    /// of the part): variables linked by equations, directly or through others.
    pub fn parts(&self) -> Vec<usize> {
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        let mut parent: Vec<usize> = (0..self.vars.len()).collect();
        for eq in &self.eqs {
            let Some(&(first, _)) = eq.first() else {
                continue;
            };
            for &(v, _) in &eq[1..] {
                let (a, b) = (root(&mut parent, first), root(&mut parent, v));
                parent[a.max(b)] = a.min(b);
            }
        }
        (0..parent.len()).map(|i| root(&mut parent, i)).collect()
    }

    pub fn build(
        tables: &[Table],
        hierarchies: &[Hierarchy],
        published: &[PublishedCell],
    ) -> Result<System, SdcError> {
        let mut vars: Vec<Var> = Vec::new();
        let mut by_key: HashMap<QuantityKey, usize> = HashMap::new();
        let mut by_link: HashMap<u64, usize> = HashMap::new();
        let mut cell_var = Vec::with_capacity(tables.len());
        for (t, table) in tables.iter().enumerate() {
            let additive = table.is_additive();
            let mut ids = Vec::with_capacity(table.cells.len());
            for (c, cell) in table.cells.iter().enumerate() {
                let value = if additive {
                    cell.additive_value(table.statistic)
                } else {
                    None
                };
                let Some(value) = value else {
                    if additive {
                        return Err(SdcError::Input(format!(
                            "table `{}`: cell {:?} of a mean table carries no contributions, so its sum is unknown",
                            table.name, cell.key
                        )));
                    }
                    ids.push(None);
                    continue;
                };
                let qk = (quantity(table), canonical(table, &cell.key));
                let free = cell.contributions.is_some_and(|c| c.has_negative) || value < 0.0;
                let link = table.cell_link(c);
                // A cell linked to one of another table is that number, under another key
                // too. (Within a table, a margin with one child that has persons is that
                // child's number already, by its equation.)
                if let Some(&id) = (link != 0).then(|| by_link.get(&link)).flatten()
                    && close(vars[id].value, value)
                    && vars[id].cells.iter().all(|&(other, _)| other != t)
                {
                    by_key.entry(qk.clone()).or_insert(id);
                }
                let id = match by_key.get(&qk) {
                    Some(&id) => {
                        let var = &mut vars[id];
                        if !close(var.value, value) {
                            return Err(SdcError::Inconsistent(format!(
                                "table `{}`: cell {:?} = {value} but a linked table has {} for the same quantity",
                                table.name, cell.key, var.value
                            )));
                        }
                        var.free |= free;
                        var.cells.push((t, c));
                        id
                    }
                    None => {
                        vars.push(Var {
                            value,
                            free,
                            fixed: false,
                            cells: vec![(t, c)],
                        });
                        by_key.insert(qk, vars.len() - 1);
                        vars.len() - 1
                    }
                };
                if link != 0 {
                    by_link.entry(link).or_insert(id);
                }
                ids.push(Some(id));
            }
            cell_var.push(ids);
        }
        for p in published {
            let key: Vec<(String, String)> = {
                let mut k: Vec<(String, String)> = p
                    .key
                    .iter()
                    .filter(|(_, v)| *v != TOTAL)
                    .map(|(d, v)| (d.clone(), v.clone()))
                    .collect();
                k.sort();
                k
            };
            let by_quantity = by_key.get(&(p.measure.clone(), key)).copied();
            let by_persons = (p.link != 0)
                .then(|| by_link.get(&p.link).copied())
                .flatten()
                .filter(|&id| close(vars[id].value, p.value));
            if let Some(id) = by_quantity.or(by_persons) {
                vars[id].fixed = true;
            }
        }

        let mut eqs = Vec::new();
        let mut seen: HashSet<Vec<(usize, i64)>> = HashSet::new();
        for (t, table) in tables.iter().enumerate() {
            if !table.is_additive() {
                continue;
            }
            let trees = dim_trees(table, hierarchies)?;
            let index = table.index();
            for (c, cell) in table.cells.iter().enumerate() {
                let parent_var = cell_var[t][c].expect("additive");
                for (j, tree) in trees.iter().enumerate() {
                    let Some(children) = tree.children.get(&cell.key[j]) else {
                        continue;
                    };
                    let mut eq = vec![(parent_var, 1.0)];
                    let mut sum = 0.0;
                    let mut key = cell.key.clone();
                    for child in children {
                        key[j] = child.clone();
                        if let Some(&ci) = index.get(key.as_slice()) {
                            let v = cell_var[t][ci].expect("additive");
                            eq.push((v, -1.0));
                            sum += vars[v].value;
                        }
                    }
                    if !close(vars[parent_var].value, sum) {
                        return Err(SdcError::Inconsistent(format!(
                            "table `{}`: cell {} = {} but its children along `{}` ({}) sum to {sum}; \
                             list every cell, margins included, with true totals",
                            table.name,
                            describe(&table.dimensions, &cell.key),
                            vars[parent_var].value,
                            table.dimensions[j],
                            children.join(", "),
                        )));
                    }
                    // Linked cells are one variable: a margin and its one child with persons
                    // leave nothing to say about that variable.
                    let has_children = eq.len() > 1;
                    let mut merged: BTreeMap<usize, f64> = BTreeMap::new();
                    for (v, k) in eq {
                        *merged.entry(v).or_default() += k;
                    }
                    let eq: Vec<(usize, f64)> =
                        merged.into_iter().filter(|&(_, k)| k != 0.0).collect();
                    let mut sig: Vec<(usize, i64)> =
                        eq.iter().map(|&(v, k)| (v, k as i64)).collect();
                    sig.sort();
                    if has_children && !eq.is_empty() && seen.insert(sig) {
                        eqs.push(eq);
                    }
                }
            }
        }
        Ok(System { vars, eqs })
    }

    /// A scale that brings the largest value to about 1e4, for the LP's numerics.
    pub fn scale(&self) -> f64 {
        let max = self.vars.iter().map(|v| v.value.abs()).fold(0.0, f64::max);
        (max / 1e4).max(1.0)
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// `dim=value, ...` for messages.
pub(crate) fn describe(dims: &[String], key: &[String]) -> String {
    let map: BTreeMap<&str, &str> = dims
        .iter()
        .map(String::as_str)
        .zip(key.iter().map(String::as_str))
        .collect();
    dims.iter()
        .map(|d| format!("{d}={}", map[d.as_str()]))
        .collect::<Vec<_>>()
        .join(", ")
}
