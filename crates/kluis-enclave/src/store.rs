//! Outputs of full runs and the project's release ledger, as files in the project's directory
//! (inside the state directory, destroyed at retention end; only released tables are kept).
//!
//! ```text
//! PROJECT_DIR/outputs/ID/output.json   the record: job, output, submitter, verdict, status
//!                       table.json    the table as kluis-sdc sees it (true values)
//!                       report.json   the disclosure report (true values, for the reviewer)
//!                       units.bin     per finest cell, the units behind it (roaring bitmaps;
//!                                     a margin's are the union of its finest cells')
//!                       denominator.bin  the same for a ratio's denominator (means, shares)
//! PROJECT_DIR/ledger/ID.json           per released output: its published cells
//! PROJECT_DIR/ledger/ID.units          the units behind each of them (roaring bitmaps)
//! PROJECT_DIR/persons.bin              per pseudonym, the person's provider-internal number
//! STATE_DIR/ledger/ID.json, ID.units,  the provider-wide ledger: every project's released
//!                  ID.withheld         cells and withheld cells' persons by provider-internal
//!                                      number; kept when a project is shredded
//! RELEASED_DIR/ID.csv, ID.report.json  what leaves: published values and the safe report
//! ```
//!
//! Every file is written beside its target and renamed into place.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use kluis_sdc::{
    CellStatus, CellVerdict, PublishedCell, Reason, Release, Report, Rounding, RuleSet, Statistic,
    TOTAL, Table, TableStatus,
};
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::disclosure::{Scaling, to_sdc_table};
use crate::linked::{Persons, PublishedSet, level_of, remainders, row_differences};
use crate::span::{self, Budget, Outcome};
use crate::{Job, OutputTable};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("no output {id} in project {project}; `kluis output list` shows them")]
    NoSuchOutput { id: String, project: String },
    #[error("output {id} is {status}; only a pending output can be {action}")]
    NotPending {
        id: String,
        status: &'static str,
        action: &'static str,
    },
    #[error(
        "output {id} failed the disclosure checks ({why}); it cannot be released, only rejected"
    )]
    Failed { id: String, why: String },
    #[error(
        "output {id} no longer passes against the release ledger ({why}); reject it and run the job again"
    )]
    Stale { id: String, why: String },
    #[error("disclosure control: {0}")]
    Sdc(kluis_sdc::SdcError),
}

impl From<kluis_sdc::SdcError> for StoreError {
    /// An inconsistency names the cells' true values, which are not protected yet: a full run's
    /// tables are kluis's own, so the researcher is told what happened, not the values.
    fn from(e: kluis_sdc::SdcError) -> Self {
        StoreError::Sdc(match e {
            kluis_sdc::SdcError::Inconsistent(_) => kluis_sdc::SdcError::Inconsistent(
                "the tables' margins or linked cells do not agree (an internal error; the values are not shown, they are not protected)".into(),
            ),
            e => e,
        })
    }
}

impl StoreError {
    /// True when the user asked for something the state does not allow (exit 2).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            StoreError::NoSuchOutput { .. }
                | StoreError::NotPending { .. }
                | StoreError::Failed { .. }
                | StoreError::Stale { .. }
        )
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where an output is in review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStatus {
    Pending,
    Released,
    Rejected,
}

impl OutputStatus {
    pub fn name(self) -> &'static str {
        match self {
            OutputStatus::Pending => "pending",
            OutputStatus::Released => "released",
            OutputStatus::Rejected => "rejected",
        }
    }
}

/// A published cell of the new output whose units differ from those of a released cell by
/// between 1 and threshold − 1: together they would disclose the few units in between.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Differencing {
    /// The new cell (dimension → value, `Total` for margins).
    pub key: BTreeMap<String, String>,
    /// The released output and cell it is too close to.
    pub released_output: String,
    pub released_key: BTreeMap<String, String>,
    /// The persons their difference counts: of the larger side in none of the cells of the
    /// other.
    pub units_apart: u64,
    /// How many cells of the other side take part (1: a cell nested in another).
    #[serde(default = "one")]
    pub nested_cells: usize,
}

fn one() -> usize {
    1
}

/// A reviewer's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub by: String,
    pub at: String,
    pub reason: String,
}

/// What the exact linked check ([`crate::span`]) judged for an output: every published cell of
/// the submission and of the releases before it, all together, on the persons behind them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkedCheck {
    /// Whether the cells were judged together. `false`: the system was beyond the check's
    /// budget, and the output fails (what cannot be judged is not released).
    pub exact: bool,
    /// Published cells and atoms (persons in exactly the same cells) of the system.
    pub cells: usize,
    pub atoms: usize,
    /// Cells of this submission withheld because with everything published they counted a
    /// group of fewer than the threshold.
    pub withheld: usize,
    /// Published cells of this table left out: a person has several rows in some of its cells
    /// (over years), so its numbers are not sums of persons, and only the pairwise searches
    /// judge them.
    #[serde(default)]
    pub left_out: usize,
}

impl LinkedCheck {
    /// A line for the reviewer.
    pub fn describe(&self) -> String {
        let mut said = vec![if self.exact {
            format!(
                "{} published cells over {} atoms judged together",
                self.cells, self.atoms
            )
        } else {
            format!(
                "{} published cells are beyond the exact check's budget: the output fails",
                self.cells
            )
        }];
        if self.left_out > 0 {
            said.push(format!(
                "its {} published cells left out (a person has several rows in a cell), judged pairwise",
                self.left_out
            ));
        }
        if self.withheld > 0 {
            said.push(format!("{} cells withheld for it", self.withheld));
        }
        said.join("; ")
    }
}

/// `output.json`: what a reviewer lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub id: String,
    pub project: String,
    pub job: String,
    pub output: String,
    pub statistic: Statistic,
    pub dimensions: Vec<String>,
    pub measure: String,
    pub submitter: String,
    pub submitted_at: String,
    /// The disclosure verdict: `fail` also when a cell differences a released one.
    pub verdict: TableStatus,
    pub cells: usize,
    pub suppressed: usize,
    pub differencing: Vec<Differencing>,
    /// The released outputs the checks were made against.
    pub checked_against: Vec<String>,
    /// The exact linked check's verdict (none for outputs submitted before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_check: Option<LinkedCheck>,
    pub status: OutputStatus,
    pub decision: Option<Decision>,
}

/// A released cell in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerCell {
    pub key: BTreeMap<String, String>,
    /// The published additive value (a count, or the sum behind a mean); null for min/max and
    /// for a denominator.
    pub value: Option<f64>,
    /// The units are those of the cell's denominator (a mean's count, a share's base).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub denominator: bool,
    /// Its persons and value as a link to the same number in a later table
    /// (`kluis_sdc::Table::cell_links`); 0 for none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub link: u64,
    /// Its number is a sum of persons ([`counts_persons`]): the exact linked check takes it in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counts_persons: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LedgerEntry {
    output: String,
    quantity: String,
    /// Dimension name → what it is ([`Table::dimension_ids`]); a name missing is itself.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    dimension_ids: BTreeMap<String, String>,
    statistic: Statistic,
    cells: Vec<LedgerCell>,
    /// How many withheld cells' person sets `ID.withheld` holds (none in older ledgers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    withheld: Option<usize>,
}

impl LedgerEntry {
    fn dimension_id<'a>(&'a self, name: &'a str) -> &'a str {
        self.dimension_ids.get(name).map_or(name, String::as_str)
    }

    /// What its dimensions are (every cell's key names them all).
    fn dimensions(&self) -> impl Iterator<Item = &str> + Clone {
        self.cells
            .first()
            .into_iter()
            .flat_map(|c| c.key.keys())
            .map(|d| self.dimension_id(d))
    }
}

/// Whether two tables with the same quantity are one linked system for the secondary
/// suppression: every cell of the one with fewer dimensions is a cell of the other. Otherwise
/// (a regrouping of a dimension, other dimensions on both sides) their relations are not
/// margins, and only the persons behind the cells can judge them.
fn nested_dimensions<'a>(
    a: impl IntoIterator<Item = &'a str>,
    b: impl IntoIterator<Item = &'a str>,
) -> bool {
    let a: BTreeSet<&str> = a.into_iter().collect();
    let b: BTreeSet<&str> = b.into_iter().collect();
    a.is_subset(&b) || b.is_subset(&a)
}

/// What the project has released, cell by cell, with the units behind each cell. The
/// provider-wide ledger is one too, with provider-internal person numbers.
#[derive(Debug)]
pub struct Ledger<S = RoaringBitmap> {
    entries: Vec<(LedgerEntry, Vec<S>)>,
    /// The persons of every cell the released tables withheld: a later table must not publish
    /// one of them, which would break the pattern that protects the cell it was withheld for.
    withheld: Vec<S>,
}

impl<S> Default for Ledger<S> {
    fn default() -> Self {
        Ledger {
            entries: Vec::new(),
            withheld: Vec::new(),
        }
    }
}

/// A person set as stored in a ledger's or an output's `.units` file.
pub(crate) trait StoredSet: Persons {
    fn read_from(r: &mut impl std::io::Read) -> std::io::Result<Self>;
    fn write_to(&self, w: &mut impl Write) -> std::io::Result<()>;
}

macro_rules! stored_set {
    ($set:ty) => {
        impl StoredSet for $set {
            fn read_from(r: &mut impl std::io::Read) -> std::io::Result<Self> {
                <$set>::deserialize_from(r)
            }
            fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
                self.serialize_into(w)
            }
        }
    };
}
stored_set!(RoaringBitmap);

impl<S> Ledger<S> {
    /// The released outputs, in release order of their ids.
    pub fn outputs(&self) -> Vec<String> {
        self.entries.iter().map(|(e, _)| e.output.clone()).collect()
    }

    /// Released cells as published cells for linked secondary suppression.
    pub fn published(&self) -> Vec<PublishedCell> {
        self.entries
            .iter()
            .filter(|(e, _)| e.statistic.is_additive())
            .flat_map(|(e, _)| {
                e.cells.iter().filter_map(|c| {
                    c.value.map(|value| PublishedCell {
                        measure: Some(e.quantity.clone()),
                        key: c
                            .key
                            .iter()
                            .map(|(d, v)| (e.dimension_id(d).to_string(), v.clone()))
                            .collect(),
                        value,
                        link: c.link,
                    })
                })
            })
            .collect()
    }
}

impl<S: Persons> Ledger<S> {
    /// The published cells of a new table (cell index, aggregate, persons) that, with released
    /// cells, leave 1 to `threshold − 1` persons: a released cell minus new cells nested in it,
    /// or a new cell minus released cells of one output and level nested in it.
    ///
    /// `in_suppression`: the released cells were known to the new table's secondary
    /// suppression (the project's own; not another project's).
    pub(crate) fn differencing<'a>(
        &'a self,
        table: &Table,
        cells: impl Iterator<Item = (usize, usize, &'a S)>,
        threshold: u64,
        in_suppression: bool,
    ) -> Vec<Differencing> {
        enum Origin<'l> {
            New(usize),
            Released(&'l str, &'l LedgerCell),
        }
        let mut sets = Vec::new();
        let mut origins = Vec::new();
        let count_of = |statistic: Statistic, value: f64| {
            (statistic == Statistic::Count && value.is_finite() && value >= 0.0)
                .then_some(value as u64)
        };
        for (cell, term, units) in cells {
            sets.push(PublishedSet {
                source: term,
                level: level_of(&table.cells[cell].key),
                units,
                rows: (term == 0)
                    .then(|| count_of(table.statistic, table.cells[cell].value))
                    .flatten(),
            });
            origins.push(Origin::New(cell));
        }
        // New sources are 0 and 1 (numerator, denominator), each released one two more.
        let new_sources = 2;
        for (e, (entry, units)) in self.entries.iter().enumerate() {
            for (c, set) in entry.cells.iter().zip(units) {
                let key: Vec<String> = c.key.values().cloned().collect();
                sets.push(PublishedSet {
                    source: new_sources + 2 * e + usize::from(c.denominator),
                    level: level_of(&key),
                    units: set,
                    rows: c
                        .value
                        .filter(|_| !c.denominator)
                        .and_then(|v| count_of(entry.statistic, v)),
                });
                origins.push(Origin::Released(&entry.output, c));
            }
        }
        let is_new = |source: usize| source < new_sources;
        // A released table over the same rows with the same aggregate is linked to this one in
        // the secondary suppression, whose audit treats its cells as known.
        let quantity = |source: usize| {
            if is_new(source) {
                table.measure.as_deref().unwrap_or_default()
            } else {
                self.entries[(source - new_sources) / 2].0.quantity.as_str()
            }
        };
        let linked = |released: usize| {
            let entry = &self.entries[(released - new_sources) / 2].0;
            in_suppression
                && quantity(0) == quantity(released)
                && nested_dimensions(table.dimension_identities(), entry.dimensions())
        };
        let judged = |s: usize, t: usize| is_new(s) != is_new(t) && !linked(s.max(t));
        let mut found = remainders(&sets, threshold, judged);
        found.extend(row_differences(&sets, threshold, judged));
        found
            .into_iter()
            .map(|r| {
                let (new, (output, cell)) = match (&origins[r.cell], &origins[r.nested[0]]) {
                    (Origin::New(new), Origin::Released(output, cell))
                    | (Origin::Released(output, cell), Origin::New(new)) => (*new, (output, cell)),
                    _ => unreachable!("a finding pairs new cells with released ones"),
                };
                Differencing {
                    key: table.key_map(new),
                    released_output: output.to_string(),
                    released_key: cell.key.clone(),
                    units_apart: r.persons,
                    nested_cells: r.nested.len(),
                }
            })
            .collect()
    }
}

/// The cells of a submission's tables to withhold because, with the published cells of another
/// table of the same submission (they will be released together), they leave a few persons
/// (see [`crate::linked`]): (table index, cell index).
fn differencing_within(
    reports: &[Report],
    tables: &[Table],
    sets: &[Vec<Vec<&RoaringBitmap>>],
    threshold: u64,
) -> Vec<(usize, usize)> {
    let mut published = Vec::new();
    let mut origin = Vec::new();
    for (t, (report, table)) in reports.iter().zip(tables).enumerate() {
        for (c, r) in report.cells.iter().enumerate() {
            if r.status.is_suppressed() {
                continue;
            }
            for (term, &units) in sets[t][c].iter().enumerate() {
                let value = table.cells[c].value;
                published.push(PublishedSet {
                    source: 2 * t + term,
                    level: level_of(&table.cells[c].key),
                    units,
                    rows: (term == 0
                        && table.statistic == Statistic::Count
                        && value.is_finite()
                        && value >= 0.0)
                        .then_some(value as u64),
                });
                origin.push((t, c));
            }
        }
    }
    // A table's own relations (a ratio's numerator and base included) are the secondary
    // suppression's to judge, and so are those of tables linked in it. Of each finding, a cell of the later table is withheld: the
    // larger cell, or the smallest of the nested ones (the next round sees whether that is
    // enough).
    // Tables over the same rows with the same aggregate are protected together by the
    // secondary suppression, whose audit proves their relations.
    let linked = |s: usize, t: usize| {
        let (a, b) = (&tables[s / 2], &tables[t / 2]);
        a.measure == b.measure
            && nested_dimensions(a.dimension_identities(), b.dimension_identities())
    };
    let mut found = remainders(&published, threshold, |s, t| !linked(s, t));
    found.extend(row_differences(&published, threshold, |s, t| !linked(s, t)));
    let mut withheld: Vec<(usize, usize)> = found
        .into_iter()
        .map(|r| {
            let larger = origin[r.cell];
            let smallest = r
                .nested
                .iter()
                .copied()
                .min_by_key(|&c| (published[c].units.len(), c))
                .expect("a finding has nested cells");
            let nested = origin[smallest];
            if nested.0 > larger.0 { nested } else { larger }
        })
        .collect();
    withheld.sort_unstable();
    withheld.dedup();
    withheld
}

/// The outputs and ledger of one project.
pub struct Store {
    dir: PathBuf,
    project: String,
    /// The provider-wide ledger's directory, when outputs are checked against other projects'.
    provider: Option<PathBuf>,
    linked_budget: Budget,
}

/// A held project store ([`Store::hold`]); released when dropped.
pub struct StoreHold {
    _file: File,
}

/// A stored output with its table and report.
#[derive(Debug, Clone)]
pub struct StoredOutput {
    pub record: OutputRecord,
    pub table: Table,
    pub report: Report,
}

/// Creates a directory 0700 whatever the umask: pending outputs and the ledger hold true values
/// and the persons behind each cell. (Their files are 0600: temporary files renamed into place.)
fn private_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io(dir))
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), StoreError> {
    let parent = path.parent().expect("a file in a directory");
    let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(io(parent))?;
    serde_json::to_writer_pretty(BufWriter::new(tmp.as_file_mut()), value)
        .map_err(|e| io(path)(std::io::Error::other(e)))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, StoreError> {
    let file = File::open(path).map_err(io(path))?;
    serde_json::from_reader(BufReader::new(file)).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn write_sets<S: StoredSet>(path: &Path, sets: &[&S]) -> Result<(), StoreError> {
    let parent = path.parent().expect("a file in a directory");
    let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(io(parent))?;
    {
        let mut w = BufWriter::new(tmp.as_file_mut());
        for set in sets {
            set.write_to(&mut w).map_err(io(path))?;
        }
        w.flush().map_err(io(path))?;
    }
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    Ok(())
}

/// Writes a pending output's unit sets: the finest cells' only, a margin's as empty, since a
/// margin's units are the union of its finest cells' ([`read_output_sets`] rebuilds them). At
/// full scale the margins made the file ten times larger.
fn write_output_sets(
    path: &Path,
    table: &Table,
    sets: &[&RoaringBitmap],
) -> Result<(), StoreError> {
    let empty = RoaringBitmap::new();
    let finest: Vec<&RoaringBitmap> = table
        .cells
        .iter()
        .zip(sets)
        .map(|(cell, &set)| if cell.is_margin() { &empty } else { set })
        .collect();
    write_sets(path, &finest)
}

/// A pending output's unit sets, one per cell, the margins' rebuilt from the finest cells'.
fn read_output_sets(path: &Path, table: &Table) -> Result<Vec<RoaringBitmap>, StoreError> {
    let mut sets = read_sets(path, table.cells.len())?;
    let finest: Vec<usize> = (0..table.cells.len())
        .filter(|&i| !table.cells[i].is_margin())
        .collect();
    for (i, margin) in table.cells.iter().enumerate() {
        if !margin.is_margin() {
            continue;
        }
        let mut union = RoaringBitmap::new();
        for &f in &finest {
            let below =
                (margin.key.iter().zip(&table.cells[f].key)).all(|(m, c)| m == TOTAL || m == c);
            if below {
                union |= &sets[f];
            }
        }
        sets[i] = union;
    }
    Ok(sets)
}

fn read_sets<S: StoredSet>(path: &Path, n: usize) -> Result<Vec<S>, StoreError> {
    let mut r = BufReader::new(File::open(path).map_err(io(path))?);
    (0..n)
        .map(|_| {
            S::read_from(&mut r).map_err(|e| StoreError::Corrupt {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// The ledger in `dir` (`ID.json` with `ID.units`), the entries `keep` keeps.
fn read_ledger<S: StoredSet>(
    dir: &Path,
    keep: impl Fn(&LedgerEntry) -> bool,
) -> Result<Ledger<S>, StoreError> {
    if !dir.exists() {
        return Ok(Ledger::default());
    }
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let mut entries = Vec::new();
    let mut withheld = Vec::new();
    for path in names {
        let entry: LedgerEntry = read_json(&path)?;
        if keep(&entry) {
            let sets = read_sets(&path.with_extension("units"), entry.cells.len())?;
            if let Some(n) = entry.withheld {
                withheld.extend(read_sets(&path.with_extension("withheld"), n)?);
            }
            entries.push((entry, sets));
        }
    }
    Ok(Ledger { entries, withheld })
}

/// Writes a ledger entry: its sets first, so an entry is never without them.
fn write_ledger_entry<S: StoredSet>(
    dir: &Path,
    entry: &LedgerEntry,
    sets: &[&S],
    withheld: &[&S],
) -> Result<(), StoreError> {
    private_dir(dir)?;
    write_sets(&dir.join(format!("{}.units", entry.output)), sets)?;
    write_sets(&dir.join(format!("{}.withheld", entry.output)), withheld)?;
    write_json(&dir.join(format!("{}.json", entry.output)), entry)
}

/// The published cells of new tables (table, cell) whose persons are those of a cell a
/// released table withheld: published, it would be that cell's number (or a number about its
/// persons), and the released pattern would protect nothing.
fn republished(
    reports: &[Report],
    sets: &[Vec<Vec<&RoaringBitmap>>],
    withheld: &[RoaringBitmap],
) -> Vec<(usize, usize)> {
    let key = |set: &RoaringBitmap| (set.len(), set.min(), set.max());
    let by_key: std::collections::HashMap<_, Vec<&RoaringBitmap>> = withheld
        .iter()
        .filter(|s| !s.is_empty())
        .fold(Default::default(), |mut m, s| {
            m.entry(key(s)).or_insert_with(Vec::new).push(s);
            m
        });
    let mut found = Vec::new();
    for (t, report) in reports.iter().enumerate() {
        for (c, r) in report.cells.iter().enumerate() {
            if r.status.is_suppressed() {
                continue;
            }
            let units = sets[t][c][0];
            if by_key
                .get(&key(units))
                .is_some_and(|candidates| candidates.iter().any(|w| *w == units))
            {
                found.push((t, c));
            }
        }
    }
    found
}

/// [`republished`] against the cells other projects withheld, the persons compared by
/// provider-internal number (`persons`); only cells with as many persons as a withheld one are
/// translated.
fn republished_elsewhere(
    reports: &[Report],
    sets: &[Vec<Vec<&RoaringBitmap>>],
    (ledger, persons): &(Ledger, Vec<u32>),
) -> Vec<(usize, usize)> {
    let sizes: BTreeSet<u64> = ledger.withheld.iter().map(RoaringBitmap::len).collect();
    let mut found = Vec::new();
    for (t, report) in reports.iter().enumerate() {
        for (c, r) in report.cells.iter().enumerate() {
            let units = sets[t][c][0];
            if r.status.is_suppressed() || !sizes.contains(&units.len()) {
                continue;
            }
            let numbers: RoaringBitmap = units
                .iter()
                .filter_map(|p| persons.get(p as usize).copied())
                .collect();
            if ledger.withheld.contains(&numbers) {
                found.push((t, c));
            }
        }
    }
    found
}

fn key_map(table: &Table, i: usize) -> BTreeMap<String, String> {
    table.key_map(i)
}

/// Suppressed cells of an overlapping count: also withhold every margin above them, since
/// margins that are not sums still bound the cells below them.
fn withhold_margins_above(table: &Table, report: &mut Report) {
    let suppressed: Vec<Vec<String>> = report
        .cells
        .iter()
        .zip(&table.cells)
        .filter(|(r, _)| r.status.is_suppressed())
        .map(|(_, c)| c.key.clone())
        .collect();
    let above = |margin: &[String], cell: &[String]| {
        margin != cell && margin.iter().zip(cell).all(|(m, c)| m == c || m == TOTAL)
    };
    let mut withheld = 0;
    for (r, c) in report.cells.iter_mut().zip(&table.cells) {
        if !r.status.is_suppressed() && suppressed.iter().any(|s| above(&c.key, s)) {
            r.status = CellStatus::Secondary;
            r.published = None;
            r.reasons.push(Reason::Secondary);
            r.reasons.sort();
            withheld += 1;
        }
    }
    if withheld > 0 {
        report.secondary.notes.push(format!(
            "kluis withheld the {withheld} margins of `{}` above its withheld cells (margins that are not sums still bound them)",
            table.name
        ));
    }
}

/// Takes the lock file `name` in `dir` (flock; it goes when the process does).
fn lock_in(dir: &Path, name: &str) -> Result<File, StoreError> {
    private_dir(dir)?;
    let path = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path).map_err(io(&path))?;
    file.lock().map_err(io(&path))?;
    Ok(file)
}

/// The published cells of a table: (cell index, term, persons).
fn published_sets<'a, B: std::borrow::Borrow<RoaringBitmap>>(
    report: &'a Report,
    sets: &'a [Vec<B>],
) -> impl Iterator<Item = (usize, usize, &'a RoaringBitmap)> {
    report
        .cells
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.status.is_suppressed())
        .flat_map(|(i, _)| {
            sets[i]
                .iter()
                .enumerate()
                .map(move |(term, s)| (i, term, s.borrow()))
        })
}

/// The release ledger's verdict on a table: its differencing findings.
fn check_differencing<B: std::borrow::Borrow<RoaringBitmap>>(
    ledger: &Ledger,
    table: &Table,
    report: &Report,
    sets: &[Vec<B>],
    threshold: u64,
) -> Vec<Differencing> {
    ledger.differencing(table, published_sets(report, sets), threshold, true)
}

/// The provider-wide ledger's verdict on a table: differencing with the cells other projects
/// released, their persons and the table's compared by provider-internal number.
fn check_provider_differencing<B: std::borrow::Borrow<RoaringBitmap>>(
    (ledger, persons): &(Ledger, Vec<u32>),
    table: &Table,
    report: &Report,
    sets: &[Vec<B>],
    threshold: u64,
) -> Result<Vec<Differencing>, StoreError> {
    if ledger.entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut translated = Vec::new();
    for (cell, term, units) in published_sets(report, sets) {
        translated.push((cell, term, provider_numbers(units, persons)?));
    }
    Ok(ledger.differencing(
        table,
        translated.iter().map(|(c, t, n)| (*c, *t, n)),
        threshold,
        false,
    ))
}

/// Whether a table's numbers are sums of persons, as the exact linked check needs them: it
/// counts distinct persons, or each person has one row in each of its cells (a single year, or
/// one row per person). A cell with several rows of one person counts rows, not persons. The
/// whole table is judged or none of it: the cells of several years that do have one row per
/// person make every person an atom of their own, and the check beyond any budget.
fn counts_persons(table: &Table) -> bool {
    // `measure` only admits `count(DISTINCT x)` of the unit.
    let distinct_units = table
        .measure
        .as_deref()
        .is_some_and(|q| q.starts_with("count(DISTINCT "));
    distinct_units || table.cells.iter().all(|c| c.rows == c.units)
}

/// What the exact linked check judges new tables against: the project's releases and, with a
/// provider-wide ledger, every other project's (their persons by provider-internal number).
struct System<'a> {
    own: &'a Ledger,
    provider: Option<ProviderSystem<'a>>,
    budget: Budget,
}

struct ProviderSystem<'a> {
    /// The other projects' releases.
    others: &'a Ledger,
    /// This project's pseudonyms' provider-internal numbers.
    persons: &'a [u32],
    /// The provider-wide ledger's directory, where this project's releases are kept by number
    /// too, and the prefix of this project's output ids.
    dir: &'a Path,
    project: &'a str,
}

/// The sets of the released cells that count persons (the exact check's).
fn judged_sets(ledger: &Ledger) -> impl Iterator<Item = &RoaringBitmap> {
    ledger.entries.iter().flat_map(|(e, units)| {
        e.cells
            .iter()
            .zip(units)
            .filter(|(c, _)| c.counts_persons)
            .map(|(_, u)| u)
    })
}

/// What the exact linked check found.
struct Exact {
    outcome: Outcome,
    /// One new cell (table, cell) to withhold for each small group given away: the one with the
    /// fewest persons of the cells that count it.
    withhold: Vec<(usize, usize)>,
    /// Per table, its published cells left out (not sums of persons).
    left_out: Vec<usize>,
}

/// The exact linked check of new tables against `system`: every published cell that counts
/// persons, of the tables and of the releases, all together.
fn exact_linked(
    system: &System,
    tables: &[&Table],
    reports: &[&Report],
    sets: &[&[Vec<&RoaringBitmap>]],
    threshold: u64,
) -> Result<Exact, StoreError> {
    let mut new: Vec<&RoaringBitmap> = Vec::new();
    let mut origin: Vec<(usize, usize)> = Vec::new();
    let mut left_out = vec![0; reports.len()];
    for (t, report) in reports.iter().enumerate() {
        let judged = counts_persons(tables[t]);
        for (c, r) in report.cells.iter().enumerate() {
            if r.status.is_suppressed() {
                continue;
            }
            if !judged {
                left_out[t] += 1;
                continue;
            }
            for &set in &sets[t][c] {
                new.push(set);
                origin.push((t, c));
            }
        }
    }
    if new.is_empty() {
        // Nothing new to judge: what the releases give away on their own is not this
        // submission's doing.
        let outcome = Outcome::Judged {
            cells: 0,
            atoms: 0,
            groups: Vec::new(),
        };
        return Ok(Exact {
            outcome,
            withhold: Vec::new(),
            left_out,
        });
    }
    // The project's own releases count once: by pseudonym, or by number in the provider-wide
    // ledger (the same sets, so the same sizes).
    let own: Vec<&RoaringBitmap> = judged_sets(system.own).collect();
    let others: Vec<&RoaringBitmap> = system
        .provider
        .as_ref()
        .map(|p| judged_sets(p.others).collect())
        .unwrap_or_default();
    let budget = system.budget;
    let incidences: u64 = new.iter().chain(&own).chain(&others).map(|s| s.len()).sum();
    if incidences > budget.incidences {
        let outcome = Outcome::TooLarge {
            cells: new.len() + own.len() + others.len(),
            incidences,
            atoms: 0,
        };
        return Ok(Exact {
            outcome,
            withhold: Vec::new(),
            left_out,
        });
    }
    let (translated, own_numbered): (Vec<RoaringBitmap>, Ledger) = match &system.provider {
        None => (Vec::new(), Ledger::default()),
        Some(p) => {
            let prefix = format!("{}-", p.project);
            (
                new.iter()
                    .map(|set| provider_numbers(set, p.persons))
                    .collect::<Result<_, _>>()?,
                read_ledger(p.dir, |e| {
                    e.output.starts_with(&prefix) && e.cells.iter().any(|c| c.counts_persons)
                })?,
            )
        }
    };
    let (mut cells, released): (Vec<&RoaringBitmap>, Vec<&RoaringBitmap>) = match &system.provider {
        None => (new.clone(), own),
        Some(_) => (
            translated.iter().collect(),
            others
                .into_iter()
                .chain(judged_sets(&own_numbered))
                .collect(),
        ),
    };
    let n_new = cells.len();
    cells.extend(released);
    let outcome = span::small_groups(&cells, |c| c < n_new, threshold, budget);
    let mut withhold = Vec::new();
    if let Outcome::Judged { groups, .. } = &outcome {
        for group in groups {
            let cell = group
                .cells()
                .filter(|&c| c < n_new)
                .min_by_key(|&c| (cells[c].len(), c))
                .expect("a group the new cells give away has one of them");
            withhold.push(origin[cell]);
        }
    }
    withhold.sort_unstable();
    withhold.dedup();
    Ok(Exact {
        outcome,
        withhold,
        left_out,
    })
}

/// The exact linked check of a pending output at its release, against what was released since
/// it was checked: refused as stale when it now gives a small group away, or cannot be judged.
fn exact_again(
    id: &str,
    system: &System,
    table: &Table,
    report: &Report,
    sets: &[Vec<&RoaringBitmap>],
    rules: &RuleSet,
) -> Result<(), StoreError> {
    let threshold = rules.threshold.min_units;
    let exact = exact_linked(system, &[table], &[report], &[sets], threshold)?;
    let why = match exact.outcome {
        Outcome::TooLarge { cells, .. } => format!(
            "with the tables released since, its {cells} published cells and theirs are beyond the exact linked check's budget"
        ),
        _ if !exact.withhold.is_empty() => format!(
            "with the tables released since, {} of its cells would count a group of fewer than {threshold} persons",
            exact.withhold.len()
        ),
        _ => return Ok(()),
    };
    Err(StoreError::Stale {
        id: id.to_string(),
        why,
    })
}

/// A table's persons as provider-internal numbers.
fn provider_numbers(units: &RoaringBitmap, persons: &[u32]) -> Result<RoaringBitmap, StoreError> {
    let mut numbers = RoaringBitmap::new();
    for pseudonym in units {
        match persons.get(pseudonym as usize) {
            Some(&n) if n != 0 => {
                numbers.insert(n);
            }
            _ => {
                return Err(StoreError::Corrupt {
                    path: PathBuf::from("persons.bin"),
                    message: "a pseudonym of the table has no provider-internal number; run the job again".into(),
                });
            }
        }
    }
    Ok(numbers)
}

impl Store {
    /// The store of the project whose directory is `dir` (created on first use).
    pub fn new(dir: &Path, project: &str) -> Store {
        Store {
            dir: dir.to_path_buf(),
            project: project.to_string(),
            provider: None,
            linked_budget: Budget::default(),
        }
    }

    /// Holds the project's store for one submit, release or reject: checking against the
    /// ledger and writing to it are one step, and output numbers are never handed out twice.
    /// The lock is the operating system's (flock) and goes when the process does.
    fn lock(&self) -> Result<File, StoreError> {
        self.lock_file(".store.lock")
    }

    /// Holds the project's outputs for a caller's whole step around a submit, release or
    /// reject: checking that the files are as the audit log vouched for them, the step itself,
    /// and the audit entry that vouches for them again. Another process's step waits, so it
    /// never sees an output stored but not yet audited. Taken before the store's own lock.
    pub fn hold(&self) -> Result<StoreHold, StoreError> {
        Ok(StoreHold {
            _file: self.lock_file(".step.lock")?,
        })
    }

    fn lock_file(&self, name: &str) -> Result<File, StoreError> {
        lock_in(&self.dir, name)
    }

    fn outputs_dir(&self) -> PathBuf {
        self.dir.join("outputs")
    }

    fn ledger_dir(&self) -> PathBuf {
        self.dir.join("ledger")
    }

    /// Reads the ledger.
    pub fn ledger(&self) -> Result<Ledger, StoreError> {
        read_ledger(&self.ledger_dir(), |_| true)
    }

    /// The work the exact linked check may do (an output beyond it fails).
    pub fn with_linked_budget(mut self, budget: Budget) -> Store {
        self.linked_budget = budget;
        self
    }

    /// Checks outputs against the released cells of the provider's other projects too, in the
    /// provider-wide ledger in `dir` (see [`Store::save_provider_persons`]).
    pub fn with_provider_ledger(mut self, dir: &Path) -> Store {
        self.provider = Some(dir.to_path_buf());
        self
    }

    fn persons_path(&self) -> PathBuf {
        self.dir.join("persons.bin")
    }

    /// Saves, per pseudonym of the project, the person's provider-internal number (0 for a
    /// pseudonym nobody has): the provider-wide ledger compares persons by it. The file stays
    /// in the project's directory and is shredded with it.
    pub fn save_provider_persons(&self, numbers: &[u32]) -> Result<(), StoreError> {
        private_dir(&self.dir)?;
        let path = self.persons_path();
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io(&self.dir))?;
        {
            let mut w = BufWriter::new(tmp.as_file_mut());
            for n in numbers {
                w.write_all(&n.to_le_bytes()).map_err(io(&path))?;
            }
            w.flush().map_err(io(&path))?;
        }
        tmp.persist(&path).map_err(|e| io(&path)(e.error))?;
        Ok(())
    }

    fn provider_persons(&self) -> Result<Vec<u32>, StoreError> {
        let path = self.persons_path();
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        if bytes.len() % 4 != 0 {
            return Err(StoreError::Corrupt {
                path,
                message: "not a whole number of 4-byte person numbers".into(),
            });
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("four bytes")))
            .collect())
    }

    /// The other projects' released cells, and this project's persons by provider-internal
    /// number; `None` without a provider-wide ledger.
    fn provider_ledger(&self) -> Result<Option<(Ledger, Vec<u32>)>, StoreError> {
        let Some(dir) = &self.provider else {
            return Ok(None);
        };
        let prefix = format!("{}-", self.project);
        let ledger = read_ledger(dir, |entry| !entry.output.starts_with(&prefix))?;
        Ok(Some((ledger, self.provider_persons()?)))
    }

    /// Every output, oldest first.
    pub fn list(&self) -> Result<Vec<OutputRecord>, StoreError> {
        let dir = self.outputs_dir();
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut records = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path().join("output.json");
            if path.is_file() {
                records.push(read_json::<OutputRecord>(&path)?);
            }
        }
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }

    /// One output with its table and report.
    pub fn load(&self, id: &str) -> Result<StoredOutput, StoreError> {
        let dir = self.outputs_dir().join(id);
        if !dir.join("output.json").is_file() {
            return Err(StoreError::NoSuchOutput {
                id: id.to_string(),
                project: self.project.clone(),
            });
        }
        Ok(StoredOutput {
            record: read_json(&dir.join("output.json"))?,
            table: read_json(&dir.join("table.json"))?,
            report: read_json(&dir.join("report.json"))?,
        })
    }

    fn next_number(&self) -> Result<u32, StoreError> {
        Ok(self
            .list()?
            .iter()
            .filter_map(|r| {
                r.id.rsplit_once('-')
                    .and_then(|(_, n)| n.parse::<u32>().ok())
            })
            .max()
            .unwrap_or(0)
            + 1)
    }

    /// Checks a full run's tables together (primary rules, linked secondary suppression against
    /// the released cells, the audit, and the ledger's differencing check) and stores each as a
    /// pending output.
    pub fn submit(
        &self,
        job: &Job,
        tables: &[OutputTable],
        rules: &RuleSet,
        submitter: &str,
        now: &str,
    ) -> Result<Vec<OutputRecord>, StoreError> {
        let _lock = self.lock()?;
        let ledger = self.ledger()?;
        let provider = self.provider_ledger()?;
        let published = ledger.published();
        let sdc: Vec<Table> = tables
            .iter()
            .map(|t| to_sdc_table(t, &Scaling::Uniform(1.0)))
            .collect();
        // Borrowed, not copied: at full scale a table's sets take hundreds of megabytes. Per
        // cell, the persons behind each aggregate of its value.
        let sets: Vec<Vec<Vec<&RoaringBitmap>>> = tables
            .iter()
            .map(|t| {
                t.cells
                    .iter()
                    .map(|c| {
                        std::iter::once(&c.units)
                            .chain(c.denominator.as_ref().map(|d| &d.units))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        // Tables submitted together are released together: a cell nested a few units inside a
        // published cell of an earlier table is withheld, and the pattern is computed again
        // around it. Withholding only grows, so this ends.
        let mut withheld: Vec<(usize, usize)> = Vec::new();
        // The exact check runs over the provider-wide ledger when there is one (it holds this
        // project's releases too), otherwise over the project's.
        let system = System {
            own: &ledger,
            provider: provider.as_ref().zip(self.provider.as_deref()).map(
                |((others, persons), dir)| ProviderSystem {
                    others,
                    persons,
                    dir,
                    project: &self.project,
                },
            ),
            budget: self.linked_budget,
        };
        let mut exact_outcome = None;
        let mut exact_withheld: Vec<(usize, usize)> = Vec::new();
        let mut reports = loop {
            let mut reports = kluis_sdc::protect(
                Release {
                    tables: &sdc,
                    hierarchies: &[],
                    published: &published,
                    withheld: &withheld,
                },
                rules,
                Rounding::None,
            )?;
            for (sdc_table, report) in sdc.iter().zip(reports.iter_mut()) {
                if sdc_table.overlapping {
                    withhold_margins_above(sdc_table, report);
                }
            }
            let mut more = differencing_within(&reports, &sdc, &sets, rules.threshold.min_units);
            more.extend(republished(&reports, &sets, &ledger.withheld));
            if let Some(provider) = &provider {
                more.extend(republished_elsewhere(&reports, &sets, provider));
            }
            if more.is_empty() {
                // Everything published together, this submission's cells and every release's.
                let exact = exact_linked(
                    &system,
                    &sdc.iter().collect::<Vec<_>>(),
                    &reports.iter().collect::<Vec<_>>(),
                    &sets.iter().map(Vec::as_slice).collect::<Vec<_>>(),
                    rules.threshold.min_units,
                )?;
                exact_withheld.extend(&exact.withhold);
                more = exact.withhold;
                exact_outcome = Some((exact.outcome, exact.left_out));
            }
            if more.is_empty() {
                break reports;
            }
            withheld.extend(more);
        };
        let Some((outcome, left_out)) = exact_outcome else {
            unreachable!("the loop ends after the exact check")
        };
        let (exact, system_cells, atoms) = match outcome {
            Outcome::Judged { cells, atoms, .. } => (true, cells, atoms),
            Outcome::TooLarge { cells, atoms, .. } => (false, cells, atoms),
        };
        let outputs = self.outputs_dir();
        private_dir(&outputs)?;
        let mut records = Vec::new();
        let numbered =
            (self.next_number()?..).zip(tables.iter().zip(&sdc).zip(reports.iter_mut()).zip(&sets));
        for (t, (number, (((table, sdc_table), report), sets))) in numbered.enumerate() {
            let mut differencing =
                check_differencing(&ledger, sdc_table, report, sets, rules.threshold.min_units);
            if let Some(provider) = &provider {
                differencing.extend(check_provider_differencing(
                    provider,
                    sdc_table,
                    report,
                    sets,
                    rules.threshold.min_units,
                )?);
            }
            // Beyond the exact check's budget, a table with cells it would judge is not released:
            // padding the ledger must not switch the check off.
            let unjudged = !exact && left_out[t] < published_sets(report, sets).count();
            let verdict = if differencing.is_empty() && !unjudged {
                report.status
            } else {
                TableStatus::Fail
            };
            let id = format!("{}-{number:04}", self.project);
            let record = OutputRecord {
                id: id.clone(),
                project: self.project.clone(),
                job: job.name.clone(),
                output: table.name.clone(),
                statistic: table.statistic,
                dimensions: table.dimensions.clone(),
                measure: table.measure.clone(),
                submitter: submitter.to_string(),
                submitted_at: now.to_string(),
                verdict,
                cells: report.cells.len(),
                suppressed: report
                    .cells
                    .iter()
                    .filter(|c| c.status.is_suppressed())
                    .count(),
                differencing,
                checked_against: ledger.outputs(),
                linked_check: Some(LinkedCheck {
                    exact,
                    cells: system_cells,
                    atoms,
                    withheld: exact_withheld.iter().filter(|w| w.0 == t).count(),
                    left_out: left_out[t],
                }),
                status: OutputStatus::Pending,
                decision: None,
            };
            let mut builder = tempfile::Builder::new();
            // It becomes the output's directory: 0700 (tempfile would make it 0777 less the
            // umask).
            #[cfg(unix)]
            builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
            let staged = builder
                .prefix(".kluis-output-")
                .tempdir_in(&outputs)
                .map_err(io(&outputs))?;
            write_json(&staged.path().join("table.json"), sdc_table)?;
            write_json(&staged.path().join("report.json"), report)?;
            let numerators: Vec<&RoaringBitmap> = sets.iter().map(|s| s[0]).collect();
            write_output_sets(&staged.path().join("units.bin"), sdc_table, &numerators)?;
            if table.cells.iter().any(|c| c.denominator.is_some()) {
                let denominators: Vec<&RoaringBitmap> = sets.iter().map(|s| s[1]).collect();
                write_output_sets(
                    &staged.path().join("denominator.bin"),
                    sdc_table,
                    &denominators,
                )?;
            }
            write_json(&staged.path().join("output.json"), &record)?;
            let target = outputs.join(&id);
            std::fs::rename(staged.keep(), &target).map_err(io(&target))?;
            records.push(record);
        }
        Ok(records)
    }

    fn save_record(&self, record: &OutputRecord) -> Result<(), StoreError> {
        write_json(
            &self.outputs_dir().join(&record.id).join("output.json"),
            record,
        )
    }

    fn pending(&self, id: &str, action: &'static str) -> Result<StoredOutput, StoreError> {
        let stored = self.load(id)?;
        if stored.record.status != OutputStatus::Pending {
            return Err(StoreError::NotPending {
                id: id.to_string(),
                status: stored.record.status.name(),
                action,
            });
        }
        Ok(stored)
    }

    /// Releases a pending output: checks it again when something was released since it was
    /// checked, adds its published cells to the ledger, and writes `ID.csv` (the published
    /// table) and `ID.report.json` (the report without true values of withheld cells) into
    /// `released_dir`. The caller has checked who may release (four eyes).
    pub fn release(
        &self,
        id: &str,
        reviewer: &str,
        reason: &str,
        now: &str,
        rules: &RuleSet,
        released_dir: &Path,
    ) -> Result<(OutputRecord, Vec<PathBuf>), StoreError> {
        let _lock = self.lock()?;
        let StoredOutput {
            mut record,
            table,
            report,
        } = self.pending(id, "released")?;
        if record.verdict == TableStatus::Fail {
            let unjudged = record.linked_check.as_ref().filter(|check| !check.exact);
            let why = if let Some(check) = unjudged.filter(|_| record.differencing.is_empty()) {
                check.describe()
            } else if record.differencing.is_empty() {
                report.summary.clone()
            } else {
                format!(
                    "{} cells differ from released cells by fewer than {} units",
                    record.differencing.len(),
                    rules.threshold.min_units
                )
            };
            return Err(StoreError::Failed {
                id: id.to_string(),
                why,
            });
        }
        let dir = self.outputs_dir().join(id);
        let numerators = read_output_sets(&dir.join("units.bin"), &table)?;
        let denominator = dir.join("denominator.bin");
        let denominators = if denominator.is_file() {
            Some(read_output_sets(&denominator, &table)?)
        } else {
            None
        };
        let sets: Vec<Vec<RoaringBitmap>> = match denominators {
            None => numerators.into_iter().map(|n| vec![n]).collect(),
            Some(d) => numerators
                .into_iter()
                .zip(d)
                .map(|(n, d)| vec![n, d])
                .collect(),
        };
        let judged = counts_persons(&table);
        // The sets as the checks below take them (borrowed, per cell).
        let borrowed: Vec<Vec<&RoaringBitmap>> = sets.iter().map(|s| s.iter().collect()).collect();
        let ledger = self.ledger()?;
        if ledger.outputs() != record.checked_against {
            let found =
                check_differencing(&ledger, &table, &report, &sets, rules.threshold.min_units);
            if !found.is_empty() {
                return Err(StoreError::Stale {
                    id: id.to_string(),
                    why: format!(
                        "{} cells now differ from released cells by fewer than {} units",
                        found.len(),
                        rules.threshold.min_units
                    ),
                });
            }
            let again = republished(
                std::slice::from_ref(&report),
                std::slice::from_ref(&borrowed),
                &ledger.withheld,
            );
            if !again.is_empty() {
                return Err(StoreError::Stale {
                    id: id.to_string(),
                    why: format!(
                        "{} cells have the persons of cells a table released since withheld",
                        again.len()
                    ),
                });
            }
            let verdicts: Vec<CellVerdict> = report
                .cells
                .iter()
                .map(|c| CellVerdict {
                    status: c.status,
                    reasons: c.reasons.clone(),
                })
                .collect();
            let audit = kluis_sdc::audit(
                std::slice::from_ref(&table),
                &[verdicts],
                &[],
                &ledger.published(),
                rules,
            )?;
            if !audit.passed {
                return Err(StoreError::Stale {
                    id: id.to_string(),
                    why: "with the tables released since, a withheld cell can be derived".into(),
                });
            }
            // With a provider-wide ledger the exact check is made against it, below.
            if self.provider.is_none() {
                let system = System {
                    own: &ledger,
                    provider: None,
                    budget: self.linked_budget,
                };
                exact_again(id, &system, &table, &report, &borrowed, rules)?;
            }
        }

        // Another project's release in between would not be seen otherwise: the provider-wide
        // ledger is checked again, and written, under its own lock.
        let provider = match &self.provider {
            Some(dir) => {
                let lock = lock_in(dir, ".ledger.lock")?;
                let provider = self.provider_ledger()?.expect("a provider-wide ledger");
                let found = check_provider_differencing(
                    &provider,
                    &table,
                    &report,
                    &sets,
                    rules.threshold.min_units,
                )?;
                if !found.is_empty() {
                    return Err(StoreError::Stale {
                        id: id.to_string(),
                        why: format!(
                            "{} cells differ from cells another project released by fewer than {} persons",
                            found.len(),
                            rules.threshold.min_units
                        ),
                    });
                }
                let again = republished_elsewhere(
                    std::slice::from_ref(&report),
                    std::slice::from_ref(&borrowed),
                    &provider,
                );
                if !again.is_empty() {
                    return Err(StoreError::Stale {
                        id: id.to_string(),
                        why: format!(
                            "{} cells have the persons of cells another project's released tables withheld",
                            again.len()
                        ),
                    });
                }
                let system = System {
                    own: &ledger,
                    provider: Some(ProviderSystem {
                        others: &provider.0,
                        persons: &provider.1,
                        dir,
                        project: &self.project,
                    }),
                    budget: self.linked_budget,
                };
                exact_again(id, &system, &table, &report, &borrowed, rules)?;
                Some((lock, dir, provider.1))
            }
            None => None,
        };

        // The ledgers first: a released table is never missing from them.
        let table_ref = &table;
        let (cells, kept): (Vec<LedgerCell>, Vec<&RoaringBitmap>) = report
            .cells
            .iter()
            .enumerate()
            .filter(|(_, r)| r.published.is_some())
            .flat_map(|(i, _)| {
                sets[i].iter().enumerate().map(move |(term, set)| {
                    let value = (term == 0)
                        .then(|| table_ref.cells[i].additive_value(table_ref.statistic))
                        .flatten();
                    (
                        LedgerCell {
                            key: key_map(table_ref, i),
                            value,
                            denominator: term > 0,
                            link: value.map_or(0, |v| crate::disclosure::link_of(set, v)),
                            counts_persons: judged,
                        },
                        set,
                    )
                })
            })
            .unzip();
        let withheld: Vec<&RoaringBitmap> = report
            .cells
            .iter()
            .enumerate()
            .filter(|(_, r)| r.published.is_none())
            .map(|(i, _)| &sets[i][0])
            .collect();
        let entry = LedgerEntry {
            withheld: Some(withheld.len()),
            output: id.to_string(),
            quantity: table.measure.clone().unwrap_or_default(),
            dimension_ids: (0..table.dimensions.len())
                .map(|i| {
                    (
                        table.dimensions[i].clone(),
                        table.dimension_id(i).to_string(),
                    )
                })
                .filter(|(name, id)| name != id)
                .collect(),
            statistic: table.statistic,
            cells,
        };
        if let Some((_lock, dir, persons)) = &provider {
            // Checked above: every pseudonym has its number.
            let numbers: Vec<RoaringBitmap> = kept
                .iter()
                .map(|set| set.iter().map(|p| persons[p as usize]).collect())
                .collect();
            let withheld_numbers: Vec<RoaringBitmap> = withheld
                .iter()
                .map(|set| set.iter().map(|p| persons[p as usize]).collect())
                .collect();
            write_ledger_entry(
                dir,
                &entry,
                &numbers.iter().collect::<Vec<_>>(),
                &withheld_numbers.iter().collect::<Vec<_>>(),
            )?;
        }
        write_ledger_entry(&self.ledger_dir(), &entry, &kept, &withheld)?;

        // The decision goes into the released report, so it is made first (and saved last).
        record.status = OutputStatus::Released;
        record.decision = Some(Decision {
            by: reviewer.to_string(),
            at: now.to_string(),
            reason: reason.to_string(),
        });
        std::fs::create_dir_all(released_dir).map_err(io(released_dir))?;
        let csv_path = released_dir.join(format!("{id}.csv"));
        write_published_csv(&csv_path, &record, &table, &report)?;
        let report_path = released_dir.join(format!("{id}.report.json"));
        write_json(&report_path, &safe_report(&record, &report))?;
        self.save_record(&record)?;
        Ok((record, vec![csv_path, report_path]))
    }

    /// Rejects a pending output.
    pub fn reject(
        &self,
        id: &str,
        reviewer: &str,
        reason: &str,
        now: &str,
    ) -> Result<OutputRecord, StoreError> {
        let _lock = self.lock()?;
        let mut record = self.pending(id, "rejected")?.record;
        record.status = OutputStatus::Rejected;
        record.decision = Some(Decision {
            by: reviewer.to_string(),
            at: now.to_string(),
            reason: reason.to_string(),
        });
        self.save_record(&record)?;
        Ok(record)
    }
}

/// The published table: one row per cell, margins included, the measure empty when withheld.
fn write_published_csv(
    path: &Path,
    record: &OutputRecord,
    table: &Table,
    report: &Report,
) -> Result<(), StoreError> {
    let parent = path.parent().expect("a file in a directory");
    let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(io(parent))?;
    {
        let mut w = csv::Writer::from_writer(BufWriter::new(tmp.as_file_mut()));
        let mut header: Vec<&str> = table.dimensions.iter().map(String::as_str).collect();
        header.push(&record.measure);
        header.push("status");
        let csv_err = |e: csv::Error| io(path)(std::io::Error::other(e));
        w.write_record(&header).map_err(csv_err)?;
        for (cell, r) in table.cells.iter().zip(&report.cells) {
            let mut row: Vec<String> = cell.key.clone();
            row.push(r.published.map(|v| v.to_string()).unwrap_or_default());
            row.push(
                match r.status {
                    CellStatus::Ok => "ok",
                    CellStatus::Review => "ok (reviewed)",
                    CellStatus::Primary | CellStatus::Secondary => "withheld",
                }
                .to_string(),
            );
            w.write_record(&row).map_err(csv_err)?;
        }
        w.flush().map_err(io(path))?;
    }
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    Ok(())
}

/// What of the report may leave: per cell its key, published value, status and reasons; the
/// rules and the verdict. No true values, unit counts or intervals of withheld cells.
fn safe_report(record: &OutputRecord, report: &Report) -> serde_json::Value {
    serde_json::json!({
        "output": record.id,
        "project": record.project,
        "job": record.job,
        "table": record.output,
        "statistic": record.statistic,
        "measure": record.measure,
        "dimensions": record.dimensions,
        "status": report.status,
        "summary": report.summary,
        "rules": { "name": report.rules.name, "version": report.rules.version },
        "secondary": report.secondary.method,
        "audit_passed": report.audit.passed,
        "released_by": record.decision.as_ref().map(|d| d.by.clone()),
        "cells": report.cells.iter().map(|c| serde_json::json!({
            "key": c.key,
            "published": c.published,
            "status": c.status,
            "reasons": c.reasons,
        })).collect::<Vec<_>>(),
    })
}
