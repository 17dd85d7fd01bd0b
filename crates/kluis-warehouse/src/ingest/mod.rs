//! Loading a provider's persons and person-years (CSV or Parquet) into a new warehouse, checking
//! every row first. See the crate README for the accepted formats and every rule.
//!
//! Every bad row is reported with its file, line (CSV) or row (Parquet), field, value and reason
//! — except the INSZ, which is never shown: a row is identified by where it is, not by its key.
//! Without `load_good_rows`, one bad row refuses the whole load and the previous warehouse stays
//! as it was; with it, the bad rows are left out (and reported) and the rest is loaded.

mod blocks;
mod check;
mod source;
#[cfg(test)]
mod tests;

use std::collections::hash_map::Entry;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray};

use crate::error::Error;
use crate::layout::{Manifest, Source};
use crate::write::{BackgroundWriter, WarehouseWriter};
use check::{Lookups, Problem, problem};
use kluis_model::schema::{person_years as py, persons as p};
use source::{Fields, Row};

/// INSZ numbers are structured (date, serial, check digits), so the hash must mix well; a fixed
/// seed keeps runs reproducible.
type KeyMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// Person-years must fall in these years.
pub const MIN_YEAR: i32 = 1950;
pub const MAX_YEAR: i32 = 2099;
/// A person's age in a person-year (year minus birth year) must be within these bounds: the
/// youngest legal student employment is at 15; beyond 99 is a data error.
pub const MIN_AGE: i32 = 15;
pub const MAX_AGE: i32 = 99;

/// Rows per record batch written.
const BATCH: usize = 131_072;

/// Where a bad row is: a CSV line (the header is line 1) or a Parquet row (the first is row 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Location {
    Line(u64),
    Row(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// One problem in one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The input file's name.
    pub file: String,
    pub location: Location,
    /// The column, or `row` for a problem of the whole row.
    pub field: String,
    /// The offending value; `None` for the INSZ (never shown) and whole-row problems.
    pub value: Option<String>,
    pub reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}, field {}", self.file, self.location, self.field)?;
        if let Some(value) = &self.value {
            write!(f, ", value '{value}'")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Why an ingest stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A file that cannot be read as a whole: unreadable, not CSV/Parquet, wrong columns.
    #[error("{file}: {reason}")]
    File { file: String, reason: String },
    /// Bad rows and no permission to leave them out.
    #[error(
        "{rows} bad row(s) ({problems} problem(s)); nothing was loaded and the warehouse is unchanged"
    )]
    Rejected { rows: u64, problems: u64 },
    #[error(transparent)]
    Warehouse(#[from] Error),
}

impl IngestError {
    fn file(path: &Path, reason: impl Into<String>) -> IngestError {
        IngestError::File {
            file: path.display().to_string(),
            reason: reason.into(),
        }
    }

    /// Whether the input (not the system) is at fault.
    pub fn is_bad_input(&self) -> bool {
        match self {
            IngestError::File { .. } | IngestError::Rejected { .. } => true,
            IngestError::Warehouse(e) => matches!(e, Error::NotReplaceable(_)),
        }
    }
}

/// The name a rejection shows for a file.
fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// What to load, and where.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub persons: PathBuf,
    pub person_years: PathBuf,
    pub warehouse: PathBuf,
    /// Leave bad rows out and load the rest (they are still reported).
    pub load_good_rows: bool,
    /// Threads checking the rows of CSV files (Parquet files are checked on one).
    pub check_threads: usize,
    /// Threads encoding Parquet beside the ones reading and checking.
    pub writer_threads: usize,
}

/// What an ingest loaded.
#[derive(Debug, Clone)]
pub struct IngestSummary {
    pub manifest: Manifest,
    /// Rows left out, in both files.
    pub rejected_rows: u64,
    /// Problems reported (a row can have several).
    pub problems: u64,
}

/// A person accepted so far: its position and what person-years are checked against.
#[derive(Clone, Copy)]
struct Person {
    index: u32,
    birth_year: i32,
}

/// The accepted persons, by INSZ and in file order.
///
/// Person-years usually come grouped by year in the persons' order, or grouped by person, so a
/// lookup first looks at the few persons after the last one found: a walk through memory instead
/// of a probe into a table of millions, which costs a cache miss per row.
struct PersonIndex {
    map: KeyMap<u64, u32>,
    insz: Vec<u64>,
    birth_year: Vec<i32>,
}

impl PersonIndex {
    fn with_capacity(n: usize) -> PersonIndex {
        PersonIndex {
            map: KeyMap::with_capacity_and_hasher(n, Default::default()),
            insz: Vec::with_capacity(n),
            birth_year: Vec::with_capacity(n),
        }
    }

    fn len(&self) -> usize {
        self.insz.len()
    }

    /// Finds a person, looking first just after `cursor` (the last one this caller found).
    fn find(&self, key: u64, cursor: &mut usize) -> Option<Person> {
        let near = *cursor..(*cursor + 8).min(self.insz.len());
        let index = match self.insz[near.clone()].iter().position(|k| *k == key) {
            Some(offset) => near.start + offset,
            None => *self.map.get(&key)? as usize,
        };
        *cursor = index + 1;
        Some(Person {
            index: index as u32,
            birth_year: self.birth_year[index],
        })
    }
}

struct PersonRow {
    insz: u64,
    sex: &'static str,
    birth_date: i32,
    country_of_birth: &'static str,
    first: Option<&'static str>,
    father: Option<&'static str>,
    mother: Option<&'static str>,
    registration: Option<i32>,
    naturalisation: Option<i32>,
    education: Option<i32>,
    study_field: Option<&'static str>,
}

struct YearRow {
    insz: u64,
    year: i32,
    region: &'static str,
    nationality: &'static str,
    employer_id: i64,
    employer_type: i32,
    statuut: i32,
    nace: [u8; 5],
}

/// Collects a field's value or its problem.
fn take<T>(result: Result<T, Problem>, problems: &mut Vec<Problem>) -> Option<T> {
    result.map_err(|p| problems.push(p)).ok()
}

/// The row when every field is good, and the INSZ whenever it is valid.
fn check_person(
    l: &Lookups,
    f: &Fields,
    problems: &mut Vec<Problem>,
) -> (Option<u64>, Option<PersonRow>) {
    let info = take(check::insz(p::INSZ, f[0]), problems);
    let key = info.map(|i| i.insz.value());
    let sex = take(
        match f[1] {
            b"M" => Ok("M"),
            b"F" => Ok("F"),
            other => Err(problem(p::SEX, other, "not a sex; expected M or F")),
        },
        problems,
    );
    let birth = take(
        check::required(p::BIRTH_DATE, f[2], "a date YYYY-MM-DD")
            .and_then(|b| check::date(p::BIRTH_DATE, b)),
        problems,
    );
    let country_of_birth = take(
        check::required(p::COUNTRY_OF_BIRTH, f[3], "a country (XU when unknown)")
            .and_then(|b| l.country(p::COUNTRY_OF_BIRTH, b)),
        problems,
    );
    let first = take(l.optional_country(p::FIRST_NATIONALITY, f[4]), problems);
    let father = take(
        l.optional_country(p::FATHER_FIRST_NATIONALITY, f[5]),
        problems,
    );
    let mother = take(
        l.optional_country(p::MOTHER_FIRST_NATIONALITY, f[6]),
        problems,
    );
    let optional_date = |field, bytes: &[u8]| {
        if bytes.is_empty() {
            Ok(None)
        } else {
            check::date(field, bytes).map(Some)
        }
    };
    let registration = take(optional_date(p::REGISTRATION_DATE, f[7]), problems);
    let naturalisation = take(optional_date(p::NATURALISATION_DATE, f[8]), problems);
    let education = take(
        if f[9].is_empty() {
            Ok(None)
        } else {
            match check::int(
                p::EDUCATION_LEVEL,
                f[9],
                "an ISCED 2011 level 0-8, or 9 for unknown",
            ) {
                Ok(v) if (0..=9).contains(&v) => Ok(Some(v as i32)),
                Ok(_) => Err(problem(
                    p::EDUCATION_LEVEL,
                    f[9],
                    "not an ISCED 2011 level; expected 0-8, or 9 for unknown",
                )),
                Err(e) => Err(e),
            }
        },
        problems,
    );
    let study_field = take(
        if f[10].is_empty() {
            Ok(None)
        } else {
            l.study_field(p::STUDY_FIELD, f[10]).map(Some)
        },
        problems,
    );

    // Consistency between fields, where both sides parsed.
    let year = crate::dates::year_of;
    if let (Some(info), Some(sex)) = (&info, sex)
        && let Some(encoded) = info.sex
        && encoded.code() != sex
    {
        problems.push(problem(
            p::SEX,
            f[1],
            "disagrees with the INSZ, whose serial number is odd for men and even for women",
        ));
    }
    if let (Some(info), Some(birth)) = (&info, birth) {
        let (y, m, d) = crate::dates::civil_from_days(birth);
        let encoded = info.birth_date;
        if encoded.year != y
            || (encoded.month != 0 && u32::from(encoded.month) != m)
            || (encoded.day != 0 && u32::from(encoded.day) != d)
        {
            problems.push(problem(
                p::BIRTH_DATE,
                f[2],
                "disagrees with the birth date the INSZ encodes",
            ));
        }
    }
    if let (Some(Some(reg)), Some(birth)) = (registration, birth) {
        if reg < birth {
            problems.push(problem(
                p::REGISTRATION_DATE,
                f[7],
                "is before the birth date",
            ));
        } else if country_of_birth == Some(kluis_model::codelists::BELGIUM)
            && year(reg) != year(birth)
        {
            problems.push(problem(
                p::REGISTRATION_DATE,
                f[7],
                "people born in Belgium are registered in their birth year",
            ));
        }
    }
    if let Some(Some(nat)) = naturalisation {
        if let Some(Some(reg)) = registration
            && nat < reg
        {
            problems.push(problem(
                p::NATURALISATION_DATE,
                f[8],
                "is before the registration date; registration comes first",
            ));
        }
        if let Some(birth) = birth
            && nat < birth
        {
            problems.push(problem(
                p::NATURALISATION_DATE,
                f[8],
                "is before the birth date",
            ));
        }
        if first == Some(Some(kluis_model::codelists::BELGIUM)) {
            problems.push(problem(
                p::NATURALISATION_DATE,
                f[8],
                "a naturalisation date needs a foreign first nationality, and first_nationality is BE",
            ));
        }
    }
    if !problems.is_empty() {
        return (key, None);
    }
    let row = || {
        Some(PersonRow {
            insz: key?,
            sex: sex?,
            birth_date: birth?,
            country_of_birth: country_of_birth?,
            first: first?,
            father: father?,
            mother: mother?,
            registration: registration?,
            naturalisation: naturalisation?,
            education: education?,
            study_field: study_field?,
        })
    };
    (key, row())
}

/// The row when every field is good, and the INSZ whenever it is valid.
fn check_year_row(
    l: &Lookups,
    f: &Fields,
    problems: &mut Vec<Problem>,
) -> (Option<u64>, Option<YearRow>) {
    let info = take(check::insz(py::INSZ, f[0]), problems);
    let key = info.map(|i| i.insz.value());
    let year = take(
        match check::int(py::YEAR, f[1], "a year") {
            Ok(y) if (i64::from(MIN_YEAR)..=i64::from(MAX_YEAR)).contains(&y) => Ok(y as i32),
            Ok(_) => Err(problem(
                py::YEAR,
                f[1],
                format!("outside the years accepted, {MIN_YEAR}-{MAX_YEAR}"),
            )),
            Err(e) => Err(e),
        },
        problems,
    );
    let region = take(l.region(py::REGION, f[2]), problems);
    let nationality = take(
        check::required(py::CURRENT_NATIONALITY, f[3], "a country (XU when unknown)")
            .and_then(|b| l.country(py::CURRENT_NATIONALITY, b)),
        problems,
    );
    let employer_id = take(
        match check::int(py::EMPLOYER_ID, f[4], "a positive employer number") {
            Ok(v) if v > 0 => Ok(v),
            Ok(_) => Err(problem(
                py::EMPLOYER_ID,
                f[4],
                "not positive; expected a positive employer number",
            )),
            Err(e) => Err(e),
        },
        problems,
    );
    let employer_type = take(l.employer_type(py::EMPLOYER_TYPE, f[5]), problems);
    let statuut = take(l.statuut(py::STATUUT, f[6]), problems);
    let nace = take(l.nace(py::NACE, f[7]), problems);
    if let (Some(t), Some(s)) = (employer_type, statuut)
        && s.public_only
        && !t.public
    {
        problems.push(problem(
            py::STATUUT,
            f[6],
            format!(
                "statuut {} ({}) exists only at public employers; employer type {} ({}) is not public",
                s.code, s.label, t.code, t.label
            ),
        ));
    }
    if !problems.is_empty() {
        return (key, None);
    }
    let row = || {
        Some(YearRow {
            insz: key?,
            year: year?,
            region: region?,
            nationality: nationality?,
            employer_id: employer_id?,
            employer_type: i32::from(employer_type?.code),
            statuut: i32::from(statuut?.code),
            nace: nace?,
        })
    };
    (key, row())
}

#[derive(Default)]
struct PersonsBuf {
    insz: Vec<i64>,
    sex: Vec<&'static str>,
    birth_date: Vec<i32>,
    country_of_birth: Vec<&'static str>,
    first: Vec<Option<&'static str>>,
    father: Vec<Option<&'static str>>,
    mother: Vec<Option<&'static str>>,
    registration: Vec<Option<i32>>,
    naturalisation: Vec<Option<i32>>,
    education: Vec<Option<i32>>,
    study_field: Vec<Option<&'static str>>,
}

impl PersonsBuf {
    fn push(&mut self, r: PersonRow) {
        self.insz.push(r.insz as i64);
        self.sex.push(r.sex);
        self.birth_date.push(r.birth_date);
        self.country_of_birth.push(r.country_of_birth);
        self.first.push(r.first);
        self.father.push(r.father);
        self.mother.push(r.mother);
        self.registration.push(r.registration);
        self.naturalisation.push(r.naturalisation);
        self.education.push(r.education);
        self.study_field.push(r.study_field);
    }

    fn take_batch(&mut self) -> RecordBatch {
        let b = std::mem::take(self);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(b.insz)),
            Arc::new(StringArray::from(b.sex)),
            Arc::new(Date32Array::from(b.birth_date)),
            Arc::new(StringArray::from(b.country_of_birth)),
            Arc::new(StringArray::from(b.first)),
            Arc::new(StringArray::from(b.father)),
            Arc::new(StringArray::from(b.mother)),
            Arc::new(Date32Array::from(b.registration)),
            Arc::new(Date32Array::from(b.naturalisation)),
            Arc::new(Int32Array::from(b.education)),
            Arc::new(StringArray::from(b.study_field)),
        ];
        RecordBatch::try_new(kluis_model::schema::persons_schema(), columns)
            .expect("persons columns match the schema")
    }
}

#[derive(Default)]
struct YearBuf {
    insz: Vec<i64>,
    region: Vec<&'static str>,
    nationality: Vec<&'static str>,
    employer_id: Vec<i64>,
    employer_type: Vec<i32>,
    statuut: Vec<i32>,
    nace: Vec<[u8; 5]>,
}

impl YearBuf {
    fn push(&mut self, r: &YearRow) {
        self.insz.push(r.insz as i64);
        self.region.push(r.region);
        self.nationality.push(r.nationality);
        self.employer_id.push(r.employer_id);
        self.employer_type.push(r.employer_type);
        self.statuut.push(r.statuut);
        self.nace.push(r.nace);
    }

    fn take_batch(&mut self, year: i32) -> RecordBatch {
        let b = std::mem::take(self);
        let rows = b.insz.len();
        let nace = StringArray::from_iter_values(
            b.nace
                .iter()
                .map(|c| std::str::from_utf8(c).expect("digits")),
        );
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(b.insz)),
            Arc::new(Int32Array::from(vec![year; rows])),
            Arc::new(StringArray::from(b.region)),
            Arc::new(StringArray::from(b.nationality)),
            Arc::new(Int64Array::from(b.employer_id)),
            Arc::new(Int32Array::from(b.employer_type)),
            Arc::new(Int32Array::from(b.statuut)),
            Arc::new(nace),
        ];
        RecordBatch::try_new(kluis_model::schema::person_years_schema(), columns)
            .expect("person_years columns match the schema")
    }
}

/// Counts problems and passes them on.
struct Reporter<'a> {
    on_reject: &'a mut dyn FnMut(&Rejection),
    rows: u64,
    problems: u64,
}

impl Reporter<'_> {
    fn row(&mut self, file: &str, location: Location, problems: &mut Vec<Problem>) {
        self.rows += 1;
        for p in problems.drain(..) {
            self.problems += 1;
            (self.on_reject)(&Rejection {
                file: file.to_owned(),
                location,
                field: p.field.to_owned(),
                value: p.value,
                reason: p.reason,
            });
        }
    }
}

/// The writer while rows are still being written: dropped (after its threads stop) as soon as a
/// bad row makes the whole load fail.
struct Output {
    sink: Option<BackgroundWriter>,
    keep_writing: bool,
}

impl Output {
    fn send_persons(&mut self, batch: RecordBatch) -> Result<(), IngestError> {
        match &mut self.sink {
            Some(sink) => Ok(sink.write_persons(batch)?),
            None => Ok(()),
        }
    }

    fn send_year(&mut self, year: i32, batch: RecordBatch) -> Result<(), IngestError> {
        match &mut self.sink {
            Some(sink) => Ok(sink.write_person_years(year, batch)?),
            None => Ok(()),
        }
    }

    /// A bad row was found: stop writing unless bad rows may be left out.
    fn bad_row(&mut self) {
        if !self.keep_writing
            && let Some(sink) = self.sink.take()
        {
            // Wait for the threads so nothing writes into the temporary directory as it goes.
            let _ = sink.finish();
        }
    }
}

/// One row as checked by a worker: where it is, what passed, and its problems so far.
struct Checked<T> {
    location: Location,
    row: Option<T>,
    problems: Vec<Problem>,
}

/// A whole-row problem: the CSV line has the wrong number of fields.
fn shape_problem(found: usize, expected: usize) -> Problem {
    Problem {
        field: "row",
        value: None,
        reason: format!("has {found} fields, the header has {expected}"),
    }
}

/// A persons row checked on its own; `key` is its INSZ whenever that is valid.
struct PersonChecked {
    key: Option<u64>,
    checked: Checked<PersonRow>,
}

fn check_person_row(lookups: &Lookups, location: Location, row: Row) -> PersonChecked {
    let mut problems = Vec::new();
    let (key, row) = match row {
        Row::Fields(fields) => check_person(lookups, fields, &mut problems),
        Row::Shape { found, expected } => {
            problems.push(shape_problem(found, expected));
            (None, None)
        }
    };
    PersonChecked {
        key,
        checked: Checked {
            location,
            row,
            problems,
        },
    }
}

/// The persons in file order: duplicates, the index person-years are checked against, the rows
/// written and the reports.
struct PersonsSink {
    file: String,
    index: PersonIndex,
    /// Where each accepted person's row is, to name it when a duplicate comes.
    rows: Vec<Location>,
    /// Where each rejected INSZ was first seen.
    rejected: KeyMap<u64, Location>,
    buf: PersonsBuf,
}

impl PersonsSink {
    fn row(
        &mut self,
        person: PersonChecked,
        out: &mut Output,
        report: &mut Reporter,
    ) -> Result<(), IngestError> {
        let PersonChecked {
            key,
            checked:
                Checked {
                    location,
                    row,
                    mut problems,
                },
        } = person;
        // A duplicate is recognised by its INSZ even when other fields are bad; a row is a
        // duplicate of the first row with its INSZ, accepted or not.
        if let Some(key) = key {
            let earlier = match self.index.map.entry(key) {
                Entry::Occupied(e) => Some(self.rows[*e.get() as usize]),
                Entry::Vacant(e) => match (self.rejected.get(&key), row) {
                    (Some(earlier), _) => Some(*earlier),
                    (None, Some(row)) if problems.is_empty() => {
                        let index = u32::try_from(self.index.insz.len())
                            .expect("fewer than 4 billion persons");
                        e.insert(index);
                        self.index.insz.push(key);
                        self.index
                            .birth_year
                            .push(crate::dates::year_of(row.birth_date));
                        self.rows.push(location);
                        self.buf.push(row);
                        if self.buf.insz.len() >= BATCH {
                            out.send_persons(self.buf.take_batch())?;
                        }
                        return Ok(());
                    }
                    (None, _) => None,
                },
            };
            if let Some(earlier) = earlier {
                problems.push(Problem {
                    field: p::INSZ,
                    value: None,
                    reason: format!(
                        "duplicate person: {earlier} has the same INSZ; one row per person"
                    ),
                });
            }
            self.rejected.entry(key).or_insert(location);
        }
        report.row(&self.file, location, &mut problems);
        out.bad_row();
        Ok(())
    }

    /// Writes the last rows; the index of the accepted persons.
    fn finish(
        mut self,
        out: &mut Output,
    ) -> Result<(PersonIndex, KeyMap<u64, Location>), IngestError> {
        if !self.buf.insz.is_empty() {
            out.send_persons(self.buf.take_batch())?;
        }
        Ok((self.index, self.rejected))
    }
}

/// What a person-year row is checked against, shared by the threads that check rows.
struct YearCheck<'a> {
    lookups: &'a Lookups,
    persons: &'a PersonIndex,
    rejected_persons: &'a KeyMap<u64, Location>,
    persons_file: &'a str,
}

/// A person-year that passed every check of its own row, with its person's position.
type YearChecked = Checked<(YearRow, u32)>;

impl YearCheck<'_> {
    /// Checks one row: its fields, its person, the person's age. Duplicates across rows are
    /// checked in file order by [`YearSink`]. `cursor` speeds up finding the person.
    fn check(&self, cursor: &mut usize, location: Location, row: Row) -> YearChecked {
        let mut problems = Vec::new();
        let row = match row {
            Row::Fields(fields) => self.fields(fields, cursor, &mut problems),
            Row::Shape { found, expected } => {
                problems.push(shape_problem(found, expected));
                None
            }
        };
        Checked {
            location,
            row,
            problems,
        }
    }

    fn fields(
        &self,
        fields: &Fields,
        cursor: &mut usize,
        problems: &mut Vec<Problem>,
    ) -> Option<(YearRow, u32)> {
        let (key, checked) = check_year_row(self.lookups, fields, problems);
        // The person must exist; this needs only a valid INSZ.
        let Some(person) = self.persons.find(key?, cursor) else {
            problems.push(Problem {
                field: py::INSZ,
                value: None,
                reason: match self.rejected_persons.get(&key?) {
                    Some(at) => format!("its person ({} {at}) was rejected", self.persons_file),
                    None => format!("no person in {} has this INSZ", self.persons_file),
                },
            });
            return None;
        };
        let row = checked?;
        let age = row.year - person.birth_year;
        if !(MIN_AGE..=MAX_AGE).contains(&age) {
            problems.push(problem(
                py::YEAR,
                fields[1],
                format!(
                    "the person is {age} in this year (by birth year); accepted ages are {MIN_AGE}-{MAX_AGE}"
                ),
            ));
            return None;
        }
        Some((row, person.index))
    }
}

/// Checked person-years in file order: one row per person and year (one bit per person and
/// year), the rows written per year, and the reports.
struct YearSink {
    file: String,
    words: usize,
    /// Per year from `MIN_YEAR`: the persons seen, and the rows not yet written.
    seen: Vec<Vec<u64>>,
    buffers: Vec<YearBuf>,
}

impl YearSink {
    fn new(file: String, persons: usize) -> YearSink {
        let years = (MAX_YEAR - MIN_YEAR + 1) as usize;
        YearSink {
            file,
            words: persons.div_ceil(64),
            seen: vec![Vec::new(); years],
            buffers: (0..years).map(|_| YearBuf::default()).collect(),
        }
    }

    fn row(
        &mut self,
        checked: YearChecked,
        out: &mut Output,
        report: &mut Reporter,
    ) -> Result<(), IngestError> {
        let Checked {
            location,
            row,
            mut problems,
        } = checked;
        if let Some((row, person)) = row {
            let slot = (row.year - MIN_YEAR) as usize;
            let bits = &mut self.seen[slot];
            if bits.is_empty() {
                bits.resize(self.words, 0);
            }
            let (word, bit) = (person as usize / 64, person % 64);
            if bits[word] & (1 << bit) == 0 {
                bits[word] |= 1 << bit;
                let buf = &mut self.buffers[slot];
                buf.push(&row);
                if buf.insz.len() >= BATCH {
                    let batch = buf.take_batch(row.year);
                    out.send_year(row.year, batch)?;
                }
                return Ok(());
            }
            problems.push(Problem {
                field: py::YEAR,
                value: Some(row.year.to_string()),
                reason: "duplicate person-year: an earlier row has the same person and year; one row per person and year".into(),
            });
        }
        report.row(&self.file, location, &mut problems);
        out.bad_row();
        Ok(())
    }

    /// Writes the rows still buffered.
    fn finish(self, out: &mut Output) -> Result<(), IngestError> {
        for (year, mut buf) in (MIN_YEAR..).zip(self.buffers) {
            if !buf.insz.is_empty() {
                out.send_year(year, buf.take_batch(year))?;
            }
        }
        Ok(())
    }
}

/// Checks every row of `path` with `check` and passes the results to `merge` in file order: a
/// CSV file on `threads` threads, a Parquet file on this one.
fn each_row<S, T, C, M>(
    path: &Path,
    columns: &[&str],
    threads: usize,
    block_bytes: usize,
    check: &C,
    mut merge: M,
) -> Result<(), IngestError>
where
    S: Default,
    T: Send,
    C: Fn(&mut S, Location, Row) -> T + Sync,
    M: FnMut(T) -> Result<(), IngestError>,
{
    if source::is_csv(path)? {
        blocks::check_rows(path, columns, threads, block_bytes, check, merge)
    } else {
        let mut state = S::default();
        source::parquet_rows(path, columns, |location, row| {
            merge(check(&mut state, location, row))
        })
    }
}

/// Checks and loads `options.persons` and `options.person_years` into a new warehouse at
/// `options.warehouse`, replacing the previous one only when everything went well. Every problem
/// goes to `on_reject` as it is found, in file order.
pub fn ingest(
    options: &IngestOptions,
    on_reject: &mut dyn FnMut(&Rejection),
) -> Result<IngestSummary, IngestError> {
    ingest_in_blocks(options, blocks::BLOCK_BYTES, on_reject)
}

fn ingest_in_blocks(
    options: &IngestOptions,
    block_bytes: usize,
    on_reject: &mut dyn FnMut(&Rejection),
) -> Result<IngestSummary, IngestError> {
    let lookups = Lookups::new();
    let writer = WarehouseWriter::create(&options.warehouse)?;
    let mut out = Output {
        sink: Some(writer.into_background(options.writer_threads)),
        keep_writing: options.load_good_rows,
    };
    let mut report = Reporter {
        on_reject,
        rows: 0,
        problems: 0,
    };
    let threads = options.check_threads;

    // Persons first: person-years are checked against them.
    let persons_file = display_name(&options.persons);
    // Sized from a CSV file (a row has at least 48 bytes), so the table is not rebuilt as it
    // grows: with millions of persons that costs seconds.
    let expected_persons = match source::is_csv(&options.persons)? {
        true => std::fs::metadata(&options.persons).map_or(0, |m| m.len() / 48),
        false => 0,
    };
    let expected_persons = expected_persons.min(100_000_000) as usize;
    let mut persons = PersonsSink {
        file: persons_file.clone(),
        index: PersonIndex::with_capacity(expected_persons),
        rows: Vec::with_capacity(expected_persons),
        rejected: KeyMap::default(),
        buf: PersonsBuf::default(),
    };
    let check = |_: &mut (), location, row: Row<'_, '_>| check_person_row(&lookups, location, row);
    each_row(
        &options.persons,
        &p::ALL,
        threads,
        block_bytes,
        &check,
        |row| persons.row(row, &mut out, &mut report),
    )?;
    let (index, rejected_persons) = persons.finish(&mut out)?;

    let context = YearCheck {
        lookups: &lookups,
        persons: &index,
        rejected_persons: &rejected_persons,
        persons_file: &persons_file,
    };
    let mut years = YearSink::new(display_name(&options.person_years), index.len());
    let check =
        |cursor: &mut usize, location, row: Row<'_, '_>| context.check(cursor, location, row);
    each_row(
        &options.person_years,
        &py::ALL,
        threads,
        block_bytes,
        &check,
        |row| years.row(row, &mut out, &mut report),
    )?;
    years.finish(&mut out)?;

    let Some(sink) = out
        .sink
        .take()
        .filter(|_| report.rows == 0 || options.load_good_rows)
    else {
        return Err(IngestError::Rejected {
            rows: report.rows,
            problems: report.problems,
        });
    };
    let writer = sink.finish()?;
    let manifest = writer.commit(Source::Ingested {
        persons_file: display_name(&options.persons),
        person_years_file: display_name(&options.person_years),
        rejected_rows: report.rows,
    })?;
    Ok(IngestSummary {
        manifest,
        rejected_rows: report.rows,
        problems: report.problems,
    })
}
