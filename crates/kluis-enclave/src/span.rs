//! The exact linked check: which groups of 1 to threshold − 1 persons the published cells, all
//! together, let an attacker count.
//!
//! The published cells partition the persons into *atoms*: persons in exactly the same published
//! cells. Every published number of a cell with one row per person is the sum of its atoms'
//! sizes, so an attacker who knows how every cell is defined can compute the size of a union `U`
//! of atoms exactly when its indicator vector is a linear combination of the cells' (the row
//! space of the cell × atom matrix). A union of atoms with fewer than `threshold` persons in that
//! row space is a small group given away, whatever tables, filters and releases the cells come
//! from. Atoms that exist are known to be non-empty here, which only grants the attacker more
//! than he knows: the check errs on the side of protection.
//!
//! The method:
//! 1. atoms by partition refinement over the cells' person sets;
//! 2. Gaussian elimination over GF(2^61 − 1) of the cells, with the atoms of `threshold` persons
//!    or more as the leading columns: the echelon rows that lead with a small atom span every
//!    vector of the row space that is zero on the large atoms (a small union lies there);
//! 3. that space in reduced form: a 0/1 vector in it is the sum of the rows of its pivots, and
//!    its pivots hold fewer than `threshold` persons, so the subsets of pivots within that
//!    budget, per connected block of the space, are every candidate;
//! 4. each small union found comes with the cells that combine to it (their coefficients), so the
//!    caller can withhold one of them.
//!
//! Over a prime field the rank can fall below the rational rank only when the prime divides a
//! minor of the matrix, which for a 61-bit prime does not happen by chance. The work is bounded
//! ([`Budget`]); a system beyond it is reported as such, never judged half.

use std::collections::{BTreeMap, HashMap};

use roaring::RoaringBitmap;

const P: u64 = (1 << 61) - 1;

fn add(a: u64, b: u64) -> u64 {
    let s = a + b;
    if s >= P { s - P } else { s }
}

fn sub(a: u64, b: u64) -> u64 {
    if a >= b { a - b } else { a + P - b }
}

fn mul(a: u64, b: u64) -> u64 {
    let m = a as u128 * b as u128;
    let lo = (m as u64) & P;
    let hi = (m >> 61) as u64;
    add(lo, hi)
}

fn inverse(a: u64) -> u64 {
    let (mut base, mut exp, mut acc) = (a, P - 2, 1u64);
    while exp > 0 {
        if exp & 1 == 1 {
            acc = mul(acc, base);
        }
        base = mul(base, base);
        exp >>= 1;
    }
    acc
}

/// A sparse vector over GF(P), sorted by index, without zeros.
type Sparse = Vec<(u32, u64)>;

/// `a - f·b`.
fn axpy(a: &Sparse, f: u64, b: &Sparse) -> Sparse {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let next = match (a.get(i), b.get(j)) {
            (Some(&(x, u)), Some(&(y, _))) if x < y => {
                i += 1;
                (x, u)
            }
            (Some(&(x, u)), Some(&(y, v))) if x == y => {
                i += 1;
                j += 1;
                (x, sub(u, mul(f, v)))
            }
            (_, Some(&(y, v))) => {
                j += 1;
                (y, sub(0, mul(f, v)))
            }
            (Some(&(x, u)), None) => {
                i += 1;
                (x, u)
            }
            (None, None) => unreachable!(),
        };
        if next.1 != 0 {
            out.push(next);
        }
    }
    out
}

fn scale(a: &mut Sparse, f: u64) {
    for (_, v) in a.iter_mut() {
        *v = mul(*v, f);
    }
}

/// How much work the check may do before it reports the system as beyond it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Person-in-cell incidences (the sum of the cells' sizes).
    pub incidences: u64,
    /// Entries touched by the elimination and the search.
    pub operations: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            incidences: 150_000_000,
            operations: 400_000_000,
        }
    }
}

/// A group of fewer than `threshold` persons the published cells give away.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SmallGroup {
    pub persons: u64,
    /// The cells whose combination counts it (indices into the cells given), with their
    /// coefficients in GF(2^61 − 1).
    pub combination: Vec<(usize, u64)>,
}

impl SmallGroup {
    /// The cells whose combination counts it.
    pub fn cells(&self) -> impl Iterator<Item = usize> + '_ {
        self.combination.iter().map(|&(c, _)| c)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// The system was judged whole: these groups (each caused by a new cell) are given away.
    Judged {
        cells: usize,
        atoms: usize,
        groups: Vec<SmallGroup>,
    },
    /// Beyond the budget: nothing was judged.
    TooLarge {
        cells: usize,
        incidences: u64,
        atoms: usize,
    },
}

struct Atoms {
    /// Persons per atom.
    sizes: Vec<u64>,
    /// Per atom, the cells it lies in.
    cells: Vec<Vec<u32>>,
}

/// Persons grouped by the cells they are in (partition refinement, exact).
fn atoms(cells: &[&RoaringBitmap]) -> Atoms {
    const NONE: u32 = u32::MAX;
    // Persons are dense numbers (pseudonyms, provider-internal numbers): an array by person
    // when they are, a map otherwise.
    let max = cells.iter().filter_map(|c| c.max()).max().unwrap_or(0);
    let mut dense: Vec<u32> = Vec::new();
    let mut sparse: HashMap<u32, u32> = HashMap::new();
    let use_dense = max < 1 << 24;
    if use_dense {
        dense = vec![NONE; max as usize + 1];
    }
    let mut member_cells: Vec<Vec<u32>> = Vec::new();
    for (c, set) in cells.iter().enumerate() {
        // Each atom met in this cell splits into its part inside (a new atom) and the rest.
        let mut inside: HashMap<u32, u32> = HashMap::new();
        let mut last = (NONE, NONE);
        for p in set.iter() {
            let slot = if use_dense {
                &mut dense[p as usize]
            } else {
                sparse.entry(p).or_insert(NONE)
            };
            let parent = *slot;
            // Neighbouring persons mostly share an atom: spare the map its lookup.
            let child = if last.0 == parent && last.1 != NONE {
                last.1
            } else {
                *inside.entry(parent).or_insert_with(|| {
                    let mut list = if parent == NONE {
                        Vec::new()
                    } else {
                        member_cells[parent as usize].clone()
                    };
                    list.push(c as u32);
                    member_cells.push(list);
                    (member_cells.len() - 1) as u32
                })
            };
            last = (parent, child);
            *slot = child;
        }
    }
    let mut sizes = vec![0u64; member_cells.len()];
    let assigned: Box<dyn Iterator<Item = &u32>> = if use_dense {
        Box::new(dense.iter().filter(|&&a| a != NONE))
    } else {
        Box::new(sparse.values())
    };
    for &a in assigned {
        sizes[a as usize] += 1;
    }
    // Atoms all of whose persons moved on are empty; renumber the rest.
    let (sizes, cells) = sizes
        .into_iter()
        .zip(member_cells)
        .filter(|(n, _)| *n > 0)
        .unzip();
    Atoms { sizes, cells }
}

/// A row of the elimination: its vector over atom columns and the cells it combines.
#[derive(Clone)]
struct Row {
    atoms: Sparse,
    cells: Sparse,
}

/// Echelon form by leading column, rows normalised to lead with 1.
#[derive(Default)]
struct Echelon {
    rows: BTreeMap<u32, Row>,
}

impl Echelon {
    /// Reduces `row` by the echelon; `work` counts the entries touched.
    fn reduce(&self, mut row: Row, work: &mut u64) -> Row {
        while let Some(&(lead, f)) = row.atoms.first() {
            let Some(pivot) = self.rows.get(&lead) else {
                break;
            };
            *work +=
                (row.atoms.len() + pivot.atoms.len() + row.cells.len() + pivot.cells.len()) as u64;
            row = Row {
                atoms: axpy(&row.atoms, f, &pivot.atoms),
                cells: axpy(&row.cells, f, &pivot.cells),
            };
        }
        row
    }

    fn insert(&mut self, row: Row, work: &mut u64) {
        let mut row = self.reduce(row, work);
        if let Some(&(lead, f)) = row.atoms.first() {
            let inv = inverse(f);
            scale(&mut row.atoms, inv);
            scale(&mut row.cells, inv);
            self.rows.insert(lead, row);
        }
    }
}

/// Every group of 1 to `threshold − 1` persons that the `cells` together give away and that
/// the cells `is_new` says are not (those not new were published before: a group they give
/// away on their own is not this release's doing).
pub(crate) fn small_groups(
    cells: &[&RoaringBitmap],
    is_new: impl Fn(usize) -> bool,
    threshold: u64,
    budget: Budget,
) -> Outcome {
    let incidences: u64 = cells.iter().map(|c| c.len()).sum();
    if incidences > budget.incidences {
        return Outcome::TooLarge {
            cells: cells.len(),
            incidences,
            atoms: 0,
        };
    }
    let atoms = atoms(cells);
    let n_atoms = atoms.sizes.len();
    let too_large = Outcome::TooLarge {
        cells: cells.len(),
        incidences,
        atoms: n_atoms,
    };
    // Columns: the large atoms first, so that rows leading with a small one are zero on every
    // large atom.
    let mut order: Vec<usize> = (0..n_atoms).collect();
    order.sort_by_key(|&a| (atoms.sizes[a] < threshold, a));
    let mut column = vec![0u32; n_atoms];
    for (col, &a) in order.iter().enumerate() {
        column[a] = col as u32;
    }
    let first_small = order.partition_point(|&a| atoms.sizes[a] >= threshold) as u32;
    let size_of = |col: u32| atoms.sizes[order[col as usize]];
    let mut rows: Vec<Sparse> = vec![Vec::new(); cells.len()];
    for (a, list) in atoms.cells.iter().enumerate() {
        for &c in list {
            rows[c as usize].push((column[a], 1));
        }
    }
    for r in &mut rows {
        r.sort_unstable_by_key(|e| e.0);
    }
    let mut work = 0u64;
    let mut echelon = Echelon::default();
    // Sparse rows first keep the fill-in down.
    let mut by_size: Vec<usize> = (0..cells.len()).filter(|&c| !rows[c].is_empty()).collect();
    by_size.sort_by_key(|&c| (rows[c].len(), c));
    for &c in &by_size {
        echelon.insert(
            Row {
                atoms: rows[c].clone(),
                cells: vec![(c as u32, 1)],
            },
            &mut work,
        );
        if work > budget.operations {
            return too_large;
        }
    }
    // The space of published combinations that are zero on every large atom, reduced.
    let mut small: BTreeMap<u32, Row> = echelon.rows.split_off(&first_small);
    let pivots: Vec<u32> = small.keys().copied().collect();
    for &p in pivots.iter().rev() {
        let row = small[&p].clone();
        for q in pivots.iter().filter(|&&q| q < p) {
            let other = &small[q];
            if let Ok(i) = other.atoms.binary_search_by_key(&p, |e| e.0) {
                let f = other.atoms[i].1;
                work += (other.atoms.len() + row.atoms.len()) as u64;
                let reduced = Row {
                    atoms: axpy(&other.atoms, f, &row.atoms),
                    cells: axpy(&other.cells, f, &row.cells),
                };
                small.insert(*q, reduced);
            }
        }
        if work > budget.operations {
            return too_large;
        }
    }
    let found = match search(&small, threshold, &size_of, budget.operations - work) {
        Some(found) => found,
        None => return too_large,
    };
    // Groups the earlier cells give away on their own are not this release's to withhold.
    let mut released: Option<Echelon> = None;
    let mut groups = Vec::new();
    for (union, combination) in found {
        let new_cells: Vec<usize> = combination
            .iter()
            .map(|&(c, _)| c as usize)
            .filter(|&c| is_new(c))
            .collect();
        if new_cells.is_empty() {
            continue;
        }
        let earlier = released.get_or_insert_with(|| {
            let mut e = Echelon::default();
            let mut w = 0;
            for &c in by_size.iter().filter(|&&c| !is_new(c)) {
                e.insert(
                    Row {
                        atoms: rows[c].clone(),
                        cells: Vec::new(),
                    },
                    &mut w,
                );
            }
            e
        });
        let target = Row {
            atoms: union.iter().map(|&col| (col, 1)).collect(),
            cells: Vec::new(),
        };
        if earlier.reduce(target, &mut work).atoms.is_empty() {
            continue;
        }
        groups.push(SmallGroup {
            persons: union.iter().map(|&col| size_of(col)).sum(),
            combination: combination.iter().map(|&(c, f)| (c as usize, f)).collect(),
        });
    }
    Outcome::Judged {
        cells: cells.len(),
        atoms: n_atoms,
        groups,
    }
}

/// Every 0/1 vector of the reduced space `rows` (keyed by pivot column) whose columns hold 1 to
/// `threshold − 1` persons, with the cells combining to it; `None` beyond `operations`.
#[allow(clippy::type_complexity)]
fn search(
    rows: &BTreeMap<u32, Row>,
    threshold: u64,
    size_of: &impl Fn(u32) -> u64,
    operations: u64,
) -> Option<Vec<(Vec<u32>, Sparse)>> {
    // Blocks: rows that share a column belong together; a 0/1 vector splits into one per block,
    // and a small one lies in a single block.
    let pivots: Vec<u32> = rows.keys().copied().collect();
    let mut parent: Vec<usize> = (0..pivots.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut owner: HashMap<u32, usize> = HashMap::new();
    for (i, p) in pivots.iter().enumerate() {
        for &(col, _) in &rows[p].atoms {
            if let Some(&j) = owner.get(&col) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a] = b;
            } else {
                owner.insert(col, i);
            }
        }
    }
    let mut blocks: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..pivots.len() {
        let r = root(&mut parent, i);
        blocks.entry(r).or_default().push(i);
    }
    let mut found = Vec::new();
    let mut work = 0u64;
    for members in blocks.values() {
        // Only pivots of fewer than `threshold` persons can be in a small union.
        let candidates: Vec<&Row> = members
            .iter()
            .map(|&i| &rows[&pivots[i]])
            .filter(|r| size_of(r.atoms[0].0) < threshold)
            .collect();
        let mut chosen: Vec<usize> = Vec::new();
        if !subsets(
            &candidates,
            0,
            0,
            &mut chosen,
            threshold,
            size_of,
            &mut found,
            &mut work,
            operations,
        ) {
            return None;
        }
    }
    Some(found)
}

/// Depth-first over subsets of `candidates` from `from`, their pivots within the budget.
#[allow(clippy::too_many_arguments)]
fn subsets(
    candidates: &[&Row],
    from: usize,
    persons: u64,
    chosen: &mut Vec<usize>,
    threshold: u64,
    size_of: &impl Fn(u32) -> u64,
    found: &mut Vec<(Vec<u32>, Sparse)>,
    work: &mut u64,
    operations: u64,
) -> bool {
    for i in from..candidates.len() {
        let size = size_of(candidates[i].atoms[0].0);
        if persons + size >= threshold {
            continue;
        }
        chosen.push(i);
        let mut atoms = Sparse::new();
        let mut cells = Sparse::new();
        for &k in chosen.iter() {
            atoms = axpy(&atoms, P - 1, &candidates[k].atoms);
            cells = axpy(&cells, P - 1, &candidates[k].cells);
        }
        *work += (atoms.len() + cells.len()) as u64 * chosen.len() as u64;
        if *work > operations {
            return false;
        }
        if atoms.iter().all(|&(_, v)| v == 1) {
            let total: u64 = atoms.iter().map(|&(col, _)| size_of(col)).sum();
            if (1..threshold).contains(&total) {
                found.push((atoms.iter().map(|&(col, _)| col).collect(), cells));
            }
        }
        if !subsets(
            candidates,
            i + 1,
            persons + size,
            chosen,
            threshold,
            size_of,
            found,
            work,
            operations,
        ) {
            return false;
        }
        chosen.pop();
    }
    true
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// Whether `target` is a rational combination of `rows` (floating elimination; the cases
    /// are tiny).
    fn in_span(rows: &[Vec<f64>], target: &[f64]) -> bool {
        let rank = |mut m: Vec<Vec<f64>>| {
            let cols = m.first().map_or(0, Vec::len);
            let mut rank = 0;
            for c in 0..cols {
                let Some(p) =
                    (rank..m.len()).max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs()))
                else {
                    break;
                };
                if m[p][c].abs() < 1e-9 {
                    continue;
                }
                m.swap(rank, p);
                for i in 0..m.len() {
                    if i != rank {
                        let f = m[i][c] / m[rank][c];
                        for j in c..cols {
                            m[i][j] -= f * m[rank][j];
                        }
                    }
                }
                rank += 1;
            }
            rank
        };
        let mut with = rows.to_vec();
        with.push(target.to_vec());
        rank(rows.to_vec()) == rank(with)
    }

    /// Person by person: every set of 1 to threshold − 1 persons whose indicator the cells span
    /// and the earlier cells alone do not; and those the earlier cells span.
    fn brute_force(
        persons: u32,
        cells: &[RoaringBitmap],
        new_from: usize,
        threshold: u64,
    ) -> (BTreeSet<Vec<u32>>, BTreeSet<Vec<u32>>) {
        let vector = |set: &RoaringBitmap| -> Vec<f64> {
            (0..persons)
                .map(|p| f64::from(u8::from(set.contains(p))))
                .collect()
        };
        let all: Vec<Vec<f64>> = cells.iter().map(vector).collect();
        let earlier = &all[..new_from];
        // Persons in no cell are in no atom: the attacker has no number about them.
        let covered: RoaringBitmap = cells.iter().fold(RoaringBitmap::new(), |a, c| a | c);
        let (mut found, mut before) = (BTreeSet::new(), BTreeSet::new());
        for subset in 1u32..(1 << persons) {
            let members: RoaringBitmap = (0..persons).filter(|p| subset >> p & 1 == 1).collect();
            if !(1..threshold).contains(&members.len()) || !members.is_subset(&covered) {
                continue;
            }
            let target = vector(&members);
            if in_span(earlier, &target) {
                before.insert(members.iter().collect());
            } else if in_span(&all, &target) {
                found.insert(members.iter().collect());
            }
        }
        (found, before)
    }

    /// The exact check finds, person for person, the groups the brute force finds.
    #[test]
    fn small_groups_equal_a_brute_force_over_every_set_of_persons() {
        let mut rng = Rng(3);
        let mut disclosing = 0;
        for case in 0..300 {
            let persons = 6 + rng.below(6) as u32;
            let threshold = 2 + rng.below(3);
            let n_cells = 1 + rng.below(6) as usize;
            let cells: Vec<RoaringBitmap> = (0..n_cells)
                .map(|_| (0..persons).filter(|_| rng.below(3) > 0).collect())
                .collect();
            let new_from = rng.below(n_cells as u64) as usize;
            let (expected, before) = brute_force(persons, &cells, new_from, threshold);
            let refs: Vec<&RoaringBitmap> = cells.iter().collect();
            let Outcome::Judged { groups, .. } =
                small_groups(&refs, |c| c >= new_from, threshold, Budget::default())
            else {
                panic!("case {case} is within the budget");
            };
            // A group's persons are those its combination of cells counts once.
            let got: BTreeSet<Vec<u32>> = groups
                .iter()
                .map(|g| {
                    assert!(g.cells().any(|c| c >= new_from), "case {case}");
                    (0..persons)
                        .filter(|&p| {
                            let n = g
                                .combination
                                .iter()
                                .filter(|&&(c, _)| cells[c].contains(p))
                                .fold(0, |acc, &(_, f)| add(acc, f));
                            assert!(n <= 1, "case {case}: a combination counts 0 or 1");
                            n == 1
                        })
                        .collect()
                })
                .collect();
            // Every group found is given away, and every group given away is made of groups found
            // or given away before (a small union across independent blocks is its blocks' small
            // groups together).
            let context = format!(
                "case {case}: {persons} persons, threshold {threshold}, cells {cells:?}, new from {new_from}: found {got:?}, expected {expected:?}"
            );
            assert!(got.is_subset(&expected), "{context}");
            for union in &expected {
                let made_of: BTreeSet<u32> = got
                    .iter()
                    .chain(&before)
                    .filter(|g| g.iter().all(|p| union.contains(p)))
                    .flatten()
                    .copied()
                    .collect();
                assert_eq!(made_of, union.iter().copied().collect(), "{context}");
            }
            disclosing += usize::from(!expected.is_empty());
        }
        assert!(
            disclosing > 30,
            "the cases exercise disclosures: {disclosing}"
        );
    }
}
