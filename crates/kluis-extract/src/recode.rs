//! Global re-coding: deliver some quasi-identifiers one level coarser (age in ten-year classes
//! instead of five, nationality as Statbel group instead of 30 classes, ...), as the variable
//! catalogue allows (`coarser` in kluis-project's `variables.csv`), choosing among the
//! combinations that meet the risk limits the one that loses the least information.
//!
//! The information a re-coded column loses is its entropy per delivered person-year before
//! minus after; combinations are tried in order of total loss (fewer variables first on ties),
//! so the first that meets the limits is the least costly. Each try is one pass over the
//! population, so at most `max_tries` are made.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use kluis_project::Authorisation;
use kluis_project::authorisation::Variable;
use serde::{Deserialize, Serialize};

use crate::coding::Columns;
use crate::error::Result;
use crate::population::CodedPopulation;
use crate::risk::{RiskReport, assess_coded, column_entropy};

/// A variable delivered coarser than the authorisation grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recoded {
    pub from: String,
    pub to: String,
    /// Entropy (bits per person-year) of the delivered column in each coding.
    pub entropy_before: f64,
    pub entropy_after: f64,
}

/// What re-coding chose, for `risk.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecodingReport {
    pub variables: BTreeMap<String, Recoded>,
    /// Bits per person-year lost over the re-coded columns.
    pub information_lost: f64,
    /// Combinations judged against the population before this one met the limits.
    pub tried: usize,
}

/// The delivery re-coding settled on.
pub struct Recoding {
    /// The authorisation with the chosen variables in their coarser codings (for the codebook).
    pub authorisation: Authorisation,
    pub data: RecordBatch,
    pub risk: RiskReport,
}

/// The outcome of a search: a re-coding that meets the limits, or the number of combinations
/// tried without one.
pub enum Search {
    Found(Box<Recoding>),
    NoneWithin {
        tried: usize,
        candidates: Vec<String>,
    },
}

/// The authorisation's variables with those at `indices` one level coarser.
fn coarsened(authorisation: &Authorisation, indices: &[usize]) -> Authorisation {
    let mut a = authorisation.clone();
    for &i in indices {
        let v: &mut Variable = &mut a.variables[i];
        v.coding = coarser(v).expect("a candidate has a coarser coding");
    }
    a
}

fn coarser(v: &Variable) -> Option<String> {
    kluis_project::variables::coding(&v.name, &v.coding).and_then(|c| c.coarser.clone())
}

/// Searches the combinations of coarser codings of the quasi-identifiers for the one with the
/// least information loss whose sample meets the authorisation's risk limits. `sorted` codes
/// the sample's person-years in the given columns.
pub fn least_loss_recoding(
    population: &CodedPopulation,
    authorisation: &Authorisation,
    sorted: impl Fn(&Columns) -> Result<RecordBatch>,
    max_tries: usize,
) -> Result<Search> {
    let limits = &authorisation.risk;
    let candidates: Vec<usize> = (0..authorisation.variables.len())
        .filter(|&i| {
            let v = &authorisation.variables[i];
            limits.quasi_identifiers.contains(&v.name) && coarser(v).is_some()
        })
        .collect();
    let names: Vec<String> = candidates
        .iter()
        .map(|&i| authorisation.variables[i].name.clone())
        .collect();
    // Each candidate's loss, from the sample coded finely and with every candidate coarsened.
    let fine = sorted(&Columns::new(authorisation)?)?;
    let coarse = sorted(&Columns::new(&coarsened(authorisation, &candidates))?)?;
    let mut entropies = Vec::new();
    for name in &names {
        let before = column_entropy(fine.column_by_name(name).expect("granted column"))?;
        let after = column_entropy(coarse.column_by_name(name).expect("granted column"))?;
        entropies.push((before, after));
    }
    // Every non-empty combination, cheapest first.
    let mut combinations: Vec<(f64, Vec<usize>)> = (1u32..(1 << candidates.len().min(16)))
        .map(|bits| {
            let chosen: Vec<usize> = (0..candidates.len())
                .filter(|j| bits & (1 << j) != 0)
                .collect();
            let loss = chosen
                .iter()
                .map(|&j| entropies[j].0 - entropies[j].1)
                .sum();
            (loss, chosen)
        })
        .collect();
    combinations.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.len().cmp(&b.1.len())));
    for (tried, (loss, chosen)) in combinations.into_iter().take(max_tries).enumerate() {
        let indices: Vec<usize> = chosen.iter().map(|&j| candidates[j]).collect();
        let recoded = coarsened(authorisation, &indices);
        let columns = Columns::new(&recoded)?;
        let data = sorted(&columns)?;
        let mut risk = assess_coded(population, &columns, &data, limits)?;
        if risk.within_limits() {
            risk.recoding = Some(RecodingReport {
                variables: chosen
                    .iter()
                    .map(|&j| {
                        let i = candidates[j];
                        (
                            names[j].clone(),
                            Recoded {
                                from: authorisation.variables[i].coding.clone(),
                                to: recoded.variables[i].coding.clone(),
                                entropy_before: entropies[j].0,
                                entropy_after: entropies[j].1,
                            },
                        )
                    })
                    .collect(),
                information_lost: loss,
                tried: tried + 1,
            });
            return Ok(Search::Found(Box::new(Recoding {
                authorisation: recoded,
                data,
                risk,
            })));
        }
    }
    Ok(Search::NoneWithin {
        tried: ((1usize << candidates.len().min(16)) - 1).min(max_tries),
        candidates: names,
    })
}
