//! Loading a provider's persons and person-years (CSV or Parquet) into a new warehouse, checking
//! every row first. See the crate README for the accepted formats and every rule.
//!
//! Every bad row is reported with its file, line (CSV) or row (Parquet), field, value and reason
//! — except the INSZ, which is never shown: a row is identified by where it is, not by its key.
//! Without `load_good_rows`, one bad row refuses the whole load and the previous warehouse stays
//! as it was; with it, the bad rows are left out (and reported) and the rest is loaded.

mod check;
mod source;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray};
use rustc_hash::FxHashMap;

use crate::error::Error;
use crate::layout::{Manifest, Source};
use crate::write::{BackgroundWriter, WarehouseWriter};
use check::{Lookups, Problem, problem};
use kluis_model::schema::{person_years as py, persons as p};
use source::{Fields, Row, for_each_row};

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
    /// Threads encoding Parquet beside the one reading and checking.
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

fn check_person(l: &Lookups, f: &Fields, problems: &mut Vec<Problem>) -> Option<PersonRow> {
    let info = take(check::insz(p::INSZ, f[0]), problems);
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
        return None;
    }
    Some(PersonRow {
        insz: info?.insz.value(),
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
}

fn check_year_row(l: &Lookups, f: &Fields, problems: &mut Vec<Problem>) -> Option<YearRow> {
    let info = take(check::insz(py::INSZ, f[0]), problems);
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
        return None;
    }
    Some(YearRow {
        insz: info?.insz.value(),
        year: year?,
        region: region?,
        nationality: nationality?,
        employer_id: employer_id?,
        employer_type: i32::from(employer_type?.code),
        statuut: i32::from(statuut?.code),
        nace: nace?,
    })
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

/// Checks and loads `options.persons` and `options.person_years` into a new warehouse at
/// `options.warehouse`, replacing the previous one only when everything went well. Every problem
/// goes to `on_reject` as it is found.
pub fn ingest(
    options: &IngestOptions,
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
    let mut problems = Vec::new();

    // Persons first: person-years are checked against them.
    let persons_name = display_name(&options.persons);
    let mut persons: FxHashMap<u64, Person> = FxHashMap::default();
    // Where each INSZ was first seen (accepted or not), to name the earlier row of a duplicate.
    let mut first_seen: FxHashMap<u64, Location> = FxHashMap::default();
    let mut rejected_persons: FxHashMap<u64, Location> = FxHashMap::default();
    let mut buf = PersonsBuf::default();
    for_each_row(&options.persons, &p::ALL, |location, row| {
        let fields = match row {
            Row::Fields(fields) => fields,
            Row::Shape { found, expected } => {
                problems.push(Problem {
                    field: "row",
                    value: None,
                    reason: format!("has {found} fields, the header has {expected}"),
                });
                report.row(&persons_name, location, &mut problems);
                out.bad_row();
                return Ok(());
            }
        };
        let checked = check_person(&lookups, fields, &mut problems);
        // A duplicate is recognised by its INSZ even when other fields are bad.
        if let Ok(info) = check::insz(p::INSZ, fields[0]) {
            let key = info.insz.value();
            match first_seen.get(&key) {
                Some(earlier) => problems.push(Problem {
                    field: p::INSZ,
                    value: None,
                    reason: format!(
                        "duplicate person: {earlier} has the same INSZ; one row per person"
                    ),
                }),
                None => {
                    first_seen.insert(key, location);
                }
            }
            if !problems.is_empty() {
                rejected_persons.entry(key).or_insert(location);
            }
        }
        match checked {
            Some(row) if problems.is_empty() => {
                let index = u32::try_from(persons.len()).expect("fewer than 4 billion persons");
                persons.insert(
                    row.insz,
                    Person {
                        index,
                        birth_year: crate::dates::year_of(row.birth_date),
                    },
                );
                buf.push(row);
                if buf.insz.len() >= BATCH {
                    out.send_persons(buf.take_batch())?;
                }
            }
            _ => {
                report.row(&persons_name, location, &mut problems);
                out.bad_row();
            }
        }
        Ok(())
    })?;
    if !buf.insz.is_empty() {
        out.send_persons(buf.take_batch())?;
    }
    drop(first_seen);

    // Person-years: one bit per person and year for "one row per person and year".
    let years_name = display_name(&options.person_years);
    let words = persons.len().div_ceil(64);
    let mut seen: FxHashMap<i32, Vec<u64>> = FxHashMap::default();
    let mut years: BTreeMap<i32, YearBuf> = BTreeMap::new();
    for_each_row(&options.person_years, &py::ALL, |location, row| {
        let fields = match row {
            Row::Fields(fields) => fields,
            Row::Shape { found, expected } => {
                problems.push(Problem {
                    field: "row",
                    value: None,
                    reason: format!("has {found} fields, the header has {expected}"),
                });
                report.row(&years_name, location, &mut problems);
                out.bad_row();
                return Ok(());
            }
        };
        let checked = check_year_row(&lookups, fields, &mut problems);
        // The person must exist; these checks need only a valid INSZ and year.
        let key = check::insz(py::INSZ, fields[0])
            .ok()
            .map(|info| info.insz.value());
        let person = key.and_then(|k| persons.get(&k).copied());
        match (key, person) {
            (Some(k), None) => problems.push(Problem {
                field: py::INSZ,
                value: None,
                reason: match rejected_persons.get(&k) {
                    Some(at) => format!("its person ({persons_name} {at}) was rejected"),
                    None => format!("no person in {persons_name} has this INSZ"),
                },
            }),
            (_, Some(person)) => {
                if let Some(row) = &checked {
                    let age = row.year - person.birth_year;
                    if !(MIN_AGE..=MAX_AGE).contains(&age) {
                        problems.push(problem(
                            py::YEAR,
                            fields[1],
                            format!("the person is {age} in this year (by birth year); accepted ages are {MIN_AGE}-{MAX_AGE}"),
                        ));
                    } else {
                        let bits = seen.entry(row.year).or_insert_with(|| vec![0; words]);
                        let (word, bit) = (person.index as usize / 64, person.index % 64);
                        if bits[word] & (1 << bit) != 0 {
                            problems.push(Problem {
                                field: py::YEAR,
                                value: Some(row.year.to_string()),
                                reason: "duplicate person-year: an earlier row has the same person and year; one row per person and year".into(),
                            });
                        } else if problems.is_empty() {
                            bits[word] |= 1 << bit;
                        }
                    }
                }
            }
            (None, None) => {}
        }
        match checked {
            Some(row) if problems.is_empty() => {
                let buf = years.entry(row.year).or_default();
                buf.push(&row);
                if buf.insz.len() >= BATCH {
                    let batch = buf.take_batch(row.year);
                    out.send_year(row.year, batch)?;
                }
            }
            _ => {
                report.row(&years_name, location, &mut problems);
                out.bad_row();
            }
        }
        Ok(())
    })?;
    for (year, mut buf) in years {
        if !buf.insz.is_empty() {
            out.send_year(year, buf.take_batch(year))?;
        }
    }

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
