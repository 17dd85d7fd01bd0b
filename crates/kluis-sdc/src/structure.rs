//! The additive structure of a table: for each dimension, which codes sum to which node (`Total`,
//! or a hierarchy's internal code).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::error::SdcError;
use crate::table::{Hierarchy, TOTAL, Table};

/// One dimension's tree: children of each node that has any, and each code's parent.
#[derive(Debug)]
pub(crate) struct DimTree {
    pub children: BTreeMap<String, Vec<String>>,
    pub parent: HashMap<String, String>,
}

/// The tree of every dimension of `table`, from its hierarchy when one is given for that dimension,
/// else the flat tree (every code a child of `Total`).
pub(crate) fn dim_trees(
    table: &Table,
    hierarchies: &[Hierarchy],
) -> Result<Vec<DimTree>, SdcError> {
    let mut trees = Vec::with_capacity(table.dimensions.len());
    for (j, dim) in table.dimensions.iter().enumerate() {
        let codes: BTreeSet<&str> = table
            .cells
            .iter()
            .map(|c| c.key[j].as_str())
            .filter(|v| *v != TOTAL)
            .collect();
        let tree = match hierarchies.iter().find(|h| &h.dimension == dim) {
            Some(h) => {
                for code in &codes {
                    if !h.parent.contains_key(*code) {
                        return Err(SdcError::Input(format!(
                            "table `{}`: dimension `{dim}` has the value `{code}`, which its hierarchy does not list; \
                             accepted: the hierarchy's codes or `{TOTAL}`",
                            table.name
                        )));
                    }
                }
                check_acyclic(h)?;
                DimTree {
                    children: h.children(),
                    parent: h
                        .parent
                        .iter()
                        .map(|(c, p)| (c.clone(), p.clone()))
                        .collect(),
                }
            }
            None => DimTree {
                children: if codes.is_empty() {
                    BTreeMap::new()
                } else {
                    BTreeMap::from([(
                        TOTAL.to_string(),
                        codes.iter().map(|c| c.to_string()).collect(),
                    )])
                },
                parent: codes
                    .iter()
                    .map(|c| (c.to_string(), TOTAL.to_string()))
                    .collect(),
            },
        };
        trees.push(tree);
    }
    Ok(trees)
}

fn check_acyclic(h: &Hierarchy) -> Result<(), SdcError> {
    for start in h.parent.keys() {
        let mut node = start.as_str();
        for _ in 0..=h.parent.len() {
            match h.parent.get(node) {
                Some(p) if p == TOTAL => break,
                Some(p) => node = p,
                None => {
                    return Err(SdcError::Input(format!(
                        "hierarchy of `{}`: code `{node}` (an ancestor of `{start}`) has no parent; \
                         every chain must end at `{TOTAL}`",
                        h.dimension
                    )));
                }
            }
            if node == start {
                return Err(SdcError::Input(format!(
                    "hierarchy of `{}`: code `{start}` is its own ancestor",
                    h.dimension
                )));
            }
        }
    }
    Ok(())
}
