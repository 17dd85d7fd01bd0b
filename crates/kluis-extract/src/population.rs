//! The project's population, read from the warehouse in two streaming passes: the first finds
//! the qualifying person-years and each person's stratum, then the whole qualifying population is
//! numbered with the project key; the second codes the person-years of one year at a time.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Int32Type, Int64Type};
use kluis_model::EmployerGroup;
use kluis_model::codelists;
use kluis_model::schema::{person_years as py, persons as ps};
use kluis_project::Authorisation;
use kluis_pseudo::{ProjectKey, PseudonymMap};
use kluis_warehouse::Warehouse;
use kluis_warehouse::dates::year_of;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::coding::{
    Columns, Facts, NONE8, NONE16, Row, country_index, sex_position, study_field_position,
};
use crate::error::{Error, Result};

/// How a person's age in a year is computed (recorded in the codebook and manifest).
pub const AGE_RULE: &str =
    "age in a year = that year minus the birth year (the age reached during the year)";
/// Which person-years qualify.
pub const QUALIFYING_RULE: &str = "a person-year qualifies when its year lies in the authorised period, the person's age that year lies in the authorised range, its employment status (statuut) is authorised, and its employer type belongs to an employer group of one of the authorisation's strata";
/// Which stratum a person belongs to.
pub const STRATUM_RULE: &str = "a person belongs to the first stratum, in the order the authorisation lists them, in whose employer groups the person has at least one qualifying person-year (so with strata federal, then other: a person with any qualifying federal year is federal)";

/// A stratum of the population.
#[derive(Debug, Clone, PartialEq)]
pub struct StratumPopulation {
    pub name: String,
    pub employer_groups: Vec<EmployerGroup>,
    /// Persons the authorisation lets phase 1 sample.
    pub sample_size: u32,
    /// Persons in the stratum.
    pub persons: u64,
    /// Their qualifying person-years.
    pub person_years: u64,
}

/// A stratified simple random sample of persons without replacement.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub seed: u64,
    /// Per stratum (in authorisation order), the sampled pseudonyms, ascending.
    pub strata: Vec<Vec<u32>>,
    selected: Vec<bool>,
}

impl Sample {
    pub fn contains(&self, pseudonym: u32) -> bool {
        self.selected
            .get(pseudonym as usize)
            .copied()
            .unwrap_or(false)
    }
}

/// Which person-years qualify, as lookups by code.
#[derive(Debug, Clone)]
struct Rules {
    first_year: i32,
    last_year: i32,
    min_age: i32,
    max_age: i32,
    statuut: [bool; 256],
    /// Employer type code → index of the first stratum holding its group, or NONE8.
    stratum_of_type: [u8; 256],
}

impl Rules {
    fn new(authorisation: &Authorisation) -> Result<Rules> {
        if authorisation.strata.len() >= NONE8 as usize {
            return Err(Error::TooManyStrata(authorisation.strata.len()));
        }
        let p = &authorisation.population;
        let mut statuut = [false; 256];
        for &code in &p.statuut {
            statuut[code as usize] = true;
        }
        let mut stratum_of_type = [NONE8; 256];
        for t in codelists::employer_types() {
            if let Some(i) = authorisation
                .strata
                .iter()
                .position(|s| s.employer_groups.contains(&t.group))
            {
                stratum_of_type[t.code as usize] = i as u8;
            }
        }
        Ok(Rules {
            first_year: p.first_year,
            last_year: p.last_year,
            min_age: p.min_age as i32,
            max_age: p.max_age as i32,
            statuut,
            stratum_of_type,
        })
    }

    /// The stratum index a qualifying person-year counts towards, or None.
    fn qualifies(
        &self,
        year: i32,
        birth_year: i32,
        statuut: i32,
        employer_type: i32,
    ) -> Option<u8> {
        let age = year - birth_year;
        let byte = |v: i32| u8::try_from(v).ok();
        if !(self.first_year..=self.last_year).contains(&year)
            || !(self.min_age..=self.max_age).contains(&age)
            || !byte(statuut).is_some_and(|s| self.statuut[s as usize])
        {
            return None;
        }
        let stratum = self.stratum_of_type[byte(employer_type)? as usize];
        (stratum != NONE8).then_some(stratum)
    }
}

/// The years of the authorised period the warehouse does not have.
pub fn missing_years(warehouse: &Warehouse, authorisation: &Authorisation) -> Vec<i32> {
    let p = &authorisation.population;
    (p.first_year..=p.last_year)
        .filter(|y| !warehouse.years().contains(y))
        .collect()
}

/// A project's whole qualifying population, numbered and ready to be coded year by year.
/// It holds INSZ numbers (to join the warehouse tables): it stays on the provider's side, and
/// `Debug` shows counts only.
pub struct CodedPopulation {
    warehouse: Warehouse,
    columns: Columns,
    rules: Rules,
    strata: Vec<StratumPopulation>,
    /// Per authorised year, per person-year row in file order: the person row when the
    /// person-year qualifies, else [`NOT_QUALIFYING`]. Found once in the first pass, so the
    /// coding passes neither look INSZ numbers up again nor re-apply the rules.
    qualifying_rows: Vec<Vec<u32>>,
    facts: Vec<Facts>,
    /// Per person row: stratum index, or NONE8 outside the population.
    stratum_of: Vec<u8>,
    /// Per person row: sequence number, 0 outside the population.
    number_of: Vec<u32>,
    map: PseudonymMap,
}

impl std::fmt::Debug for CodedPopulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CodedPopulation({} persons in {} strata)",
            self.map.len(),
            self.strata.len()
        )
    }
}

/// Reads the warehouse, selects the authorisation's qualifying person-years (see
/// [`QUALIFYING_RULE`], [`AGE_RULE`]), assigns every person a stratum ([`STRATUM_RULE`]) and
/// numbers the whole qualifying population with the project key ([`PseudonymMap`]).
/// Refuses a warehouse that lacks a year of the authorised period.
pub fn coded_population(
    warehouse: &Warehouse,
    authorisation: &Authorisation,
    key: &ProjectKey,
) -> Result<CodedPopulation> {
    let missing = missing_years(warehouse, authorisation);
    if !missing.is_empty() {
        return Err(Error::MissingYears {
            dir: warehouse.dir().to_owned(),
            authorisation: authorisation.id.clone(),
            first: authorisation.population.first_year,
            last: authorisation.population.last_year,
            missing,
            have: warehouse.years().to_vec(),
        });
    }
    let columns = Columns::new(authorisation)?;
    let rules = Rules::new(authorisation)?;
    let (index, facts, insz) = load_persons(warehouse)?;

    // The years are scanned on two threads, each keeping its own per-person tallies.
    let years: Vec<i32> = (rules.first_year..=rules.last_year).collect();
    let scans: Vec<std::result::Result<YearScan, (i32, Error)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..SCAN_THREADS)
            .map(|t| {
                let (years, rules) = (&years, &rules);
                let persons = (&index, facts.as_slice(), insz.as_slice());
                scope.spawn(move || {
                    let mut scan = YearScan::new(persons.1.len());
                    for &year in years.iter().skip(t).step_by(SCAN_THREADS) {
                        scan.year(warehouse, year, persons, rules)
                            .map_err(|e| (year, e))?;
                    }
                    Ok(scan)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a scanning thread panicked"))
            .collect()
    });
    let mut stratum_of = vec![NONE8; facts.len()];
    let mut person_years_of = vec![0u16; facts.len()];
    // The earliest year's error, whichever thread met it.
    let (scans, failed): (Vec<_>, Vec<_>) = scans.into_iter().partition(|s| s.is_ok());
    if let Some((_, e)) = failed
        .into_iter()
        .filter_map(|s| s.err())
        .min_by_key(|(year, _)| *year)
    {
        return Err(e);
    }
    let mut rows_by_year = std::collections::BTreeMap::new();
    for scan in scans.into_iter().flatten() {
        for (mine, theirs) in stratum_of.iter_mut().zip(&scan.stratum_of) {
            *mine = (*mine).min(*theirs);
        }
        for (mine, theirs) in person_years_of.iter_mut().zip(&scan.person_years_of) {
            *mine = mine.saturating_add(*theirs);
        }
        rows_by_year.extend(scan.rows_by_year);
    }
    let qualifying_rows: Vec<Vec<u32>> = rows_by_year.into_values().collect();

    // Number the population, visiting persons in INSZ order as the map holds them.
    let by_insz: Vec<(u64, u32)> = index
        .0
        .iter()
        .filter(|&&(_, person)| stratum_of[person as usize] != NONE8)
        .map(|&(n, person)| (n as u64, person))
        .collect();
    let map = PseudonymMap::build(key, by_insz.iter().map(|&(n, _)| n))?;
    let mut number_of = vec![0u32; facts.len()];
    let mut strata: Vec<StratumPopulation> = authorisation
        .strata
        .iter()
        .map(|s| StratumPopulation {
            name: s.name.clone(),
            employer_groups: s.employer_groups.clone(),
            sample_size: s.sample_size,
            persons: 0,
            person_years: 0,
        })
        .collect();
    for (&(n, person), (in_map, number)) in by_insz.iter().zip(map.iter()) {
        // No values in the message: they are INSZ numbers.
        assert!(n == in_map, "the map holds the population in INSZ order");
        let person = person as usize;
        let s = stratum_of[person] as usize;
        number_of[person] = number;
        strata[s].persons += 1;
        strata[s].person_years += person_years_of[person] as u64;
    }
    Ok(CodedPopulation {
        warehouse: warehouse.clone(),
        columns,
        rules,
        strata,
        qualifying_rows,
        facts,
        stratum_of,
        number_of,
        map,
    })
}

/// Threads the first pass reads the years on.
const SCAN_THREADS: usize = 2;

/// How many persons past the last one found the first pass compares before it asks the index.
const LOOK_AHEAD: usize = 8;

/// What the first pass learns from some of the years.
struct YearScan {
    /// Per person row: the first stratum it qualifies for in these years, or NONE8.
    stratum_of: Vec<u8>,
    /// Per person row: its qualifying person-years in these years.
    person_years_of: Vec<u16>,
    /// Per year scanned: per person-year row in file order, the person row or NOT_QUALIFYING.
    rows_by_year: Vec<(i32, Vec<u32>)>,
}

impl YearScan {
    fn new(persons: usize) -> YearScan {
        YearScan {
            stratum_of: vec![NONE8; persons],
            person_years_of: vec![0; persons],
            rows_by_year: Vec::new(),
        }
    }

    fn year(
        &mut self,
        warehouse: &Warehouse,
        year: i32,
        (index, facts, insz): (&InszIndex, &[Facts], &[i64]),
        rules: &Rules,
    ) -> Result<()> {
        let mut rows_of_year: Vec<u32> = Vec::new();
        let mut next_person = 0u32;
        for batch in
            warehouse
                .person_years_batches(year)?
                .only(&[py::INSZ, py::EMPLOYER_TYPE, py::STATUUT])
        {
            let batch = batch?;
            let column = |name: &str| batch.column_by_name(name).expect("projected column");
            let insz_col = column(py::INSZ).as_primitive::<Int64Type>();
            let types = column(py::EMPLOYER_TYPE).as_primitive::<Int32Type>();
            let statuut = column(py::STATUUT).as_primitive::<Int32Type>();
            for row in 0..batch.num_rows() {
                let n = insz_col.value(row);
                // Warehouses usually list a year's person-years in the persons' order, less the
                // persons without a job that year: the next few persons after the last one found
                // are tried before the index (a random memory access for each of 46 million
                // person-years).
                let ahead = insz.get(next_person as usize..).unwrap_or_default();
                let person = match ahead.iter().take(LOOK_AHEAD).position(|&m| m == n) {
                    Some(skipped) => next_person + skipped as u32,
                    None => index.get(n).ok_or(Error::UnknownPerson {
                        year,
                        row: rows_of_year.len() + 1,
                    })?,
                };
                next_person = person + 1;
                let birth_year = facts[person as usize].birth_year();
                let qualifies =
                    rules.qualifies(year, birth_year, statuut.value(row), types.value(row));
                if let Some(s) = qualifies {
                    let person = person as usize;
                    self.stratum_of[person] = self.stratum_of[person].min(s);
                    self.person_years_of[person] = self.person_years_of[person].saturating_add(1);
                }
                rows_of_year.push(qualifies.map_or(NOT_QUALIFYING, |_| person));
            }
        }
        self.rows_by_year.push((year, rows_of_year));
        Ok(())
    }
}

/// A person-year that does not qualify, in [`CodedPopulation::qualifying_rows`].
const NOT_QUALIFYING: u32 = u32::MAX;

/// INSZ → person row, as (INSZ, person row) pairs in INSZ order. A sorted array rather than a
/// hash map: building a map of five million persons took seconds of cache misses, while the
/// first pass asks it for few person-years (see [`LOOK_AHEAD`]) and the numbering walks it in
/// order.
struct InszIndex(Vec<(i64, u32)>);

impl InszIndex {
    /// Sorts the persons' INSZ numbers; refuses a number given twice.
    fn new(insz_of: &[i64]) -> Result<InszIndex> {
        let refuse = |row: u32, value: &str, expected| Error::BadValue {
            table: "persons",
            context: format!("row {}", row + 1),
            column: ps::INSZ,
            value: value.to_owned(),
            expected,
        };
        if let Some(row) = insz_of
            .iter()
            .position(|&n| !(0..kluis_pseudo::INSZ_LIMIT as i64).contains(&n))
        {
            return Err(refuse(
                row as u32,
                "(not shown)",
                "an INSZ of at most 11 digits",
            ));
        }
        let mut pairs: Vec<(i64, u32)> = insz_of.iter().copied().zip(0..).collect();
        pairs.sort_unstable();
        // Equal numbers sort by row: the earliest row that repeats a number.
        let repeated = pairs
            .windows(2)
            .filter(|w| w[0].0 == w[1].0)
            .map(|w| w[1].1)
            .min();
        if let Some(row) = repeated {
            return Err(refuse(
                row,
                "(a number already seen in an earlier row)",
                "each person once",
            ));
        }
        Ok(InszIndex(pairs))
    }

    fn get(&self, insz: i64) -> Option<u32> {
        self.0
            .binary_search_by_key(&insz, |&(n, _)| n)
            .ok()
            .map(|i| self.0[i].1)
    }
}

/// The persons' INSZ index, each person row's compact facts, and each person row's INSZ.
type Persons = (InszIndex, Vec<Facts>, Vec<i64>);

/// Reads `persons` into compact facts.
fn load_persons(warehouse: &Warehouse) -> Result<Persons> {
    let mut facts = Vec::new();
    let mut insz_of = Vec::new();
    for batch in warehouse.persons_batches()? {
        let batch = batch?;
        let col = |name: &str| batch.column_by_name(name).expect("schema checked on read");
        let insz = col(ps::INSZ).as_primitive::<Int64Type>();
        let sex = col(ps::SEX).as_string::<i32>();
        let birth = col(ps::BIRTH_DATE).as_primitive::<Date32Type>();
        let countries = [
            (
                ps::COUNTRY_OF_BIRTH,
                col(ps::COUNTRY_OF_BIRTH).as_string::<i32>(),
            ),
            (
                ps::FIRST_NATIONALITY,
                col(ps::FIRST_NATIONALITY).as_string::<i32>(),
            ),
            (
                ps::FATHER_FIRST_NATIONALITY,
                col(ps::FATHER_FIRST_NATIONALITY).as_string::<i32>(),
            ),
            (
                ps::MOTHER_FIRST_NATIONALITY,
                col(ps::MOTHER_FIRST_NATIONALITY).as_string::<i32>(),
            ),
        ];
        let registration = col(ps::REGISTRATION_DATE).as_primitive::<Date32Type>();
        let naturalisation = col(ps::NATURALISATION_DATE).as_primitive::<Date32Type>();
        let education = col(ps::EDUCATION_LEVEL).as_primitive::<Int32Type>();
        let study = col(ps::STUDY_FIELD).as_string::<i32>();
        for row in 0..batch.num_rows() {
            let position = facts.len();
            let bad = |column: &'static str, value: &str, expected: &'static str| Error::BadValue {
                table: "persons",
                context: format!("row {}", position + 1),
                column,
                value: value.to_owned(),
                expected,
            };
            let mut codes = [NONE16; 4];
            for (slot, (name, array)) in codes.iter_mut().zip(&countries) {
                if array.is_valid(row) {
                    let code = array.value(row);
                    *slot = country_index(code)
                        .ok_or_else(|| bad(name, code, "an alpha-2 code of `countries`"))?;
                }
            }
            let year =
                |a: &arrow::array::Date32Array| a.is_valid(row).then(|| year_of(a.value(row)));
            let sex_code = sex_position(sex.value(row))
                .ok_or_else(|| bad(ps::SEX, sex.value(row), "M or F"))?;
            let level = if education.is_valid(row) {
                u8::try_from(education.value(row))
                    .ok()
                    .filter(|l| *l <= 9)
                    .ok_or_else(|| {
                        bad(
                            ps::EDUCATION_LEVEL,
                            &education.value(row).to_string(),
                            "an ISCED level 0-9",
                        )
                    })?
            } else {
                NONE8
            };
            let field = if study.is_valid(row) {
                study_field_position(study.value(row)).ok_or_else(|| {
                    bad(
                        ps::STUDY_FIELD,
                        study.value(row),
                        "an ISCED-F broad field 00-10 or 99",
                    )
                })?
            } else {
                NONE8
            };
            insz_of.push(insz.value(row));
            facts.push(Facts::new(
                year_of(birth.value(row)),
                year(registration),
                year(naturalisation),
                codes,
                sex_code,
                level,
                field,
            ));
        }
    }
    Ok((InszIndex::new(&insz_of)?, facts, insz_of))
}

impl CodedPopulation {
    /// The strata with their population sizes, in authorisation order.
    pub fn strata(&self) -> &[StratumPopulation] {
        &self.strata
    }

    /// Persons in the population (N: the sequence numbers run 1..=N).
    pub fn persons(&self) -> usize {
        self.map.len()
    }

    /// The years the population spans, ascending.
    pub fn years(&self) -> std::ops::RangeInclusive<i32> {
        self.rules.first_year..=self.rules.last_year
    }

    /// Per pseudonym (the index; 0 is nobody's), the key of the person's provider-internal
    /// number, for the provider-wide release ledger; `None` when two persons of the population
    /// share one (a chance of about one in a million), since the ledger could not tell them
    /// apart.
    pub fn provider_keys(&self, provider: &kluis_pseudo::ProviderPersons) -> Option<Vec<u64>> {
        let mut keys = vec![0u64; self.persons() + 1];
        for (insz, pseudonym) in self.map.iter() {
            keys[pseudonym as usize] = provider.key(insz);
        }
        let mut sorted = keys[1..].to_vec();
        sorted.sort_unstable();
        sorted.windows(2).all(|w| w[0] != w[1]).then_some(keys)
    }

    /// The INSZ → sequence number map, to save encrypted on the provider side
    /// (`Grant::save_pseudonym_map`). Never part of any output.
    pub fn pseudonym_map(&self) -> &PseudonymMap {
        &self.map
    }

    /// The schema of [`CodedPopulation::year_batch`] and of the extract's files.
    pub fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.columns.schema()
    }

    /// The pseudonyms of a stratum's persons, ascending.
    pub fn stratum_pseudonyms(&self, stratum: usize) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .stratum_of
            .iter()
            .zip(&self.number_of)
            .filter(|(s, _)| **s as usize == stratum)
            .map(|(_, &n)| n)
            .collect();
        out.sort_unstable();
        out
    }

    /// A simple random sample without replacement of each stratum's authorised size (all of
    /// the stratum when it is smaller). Persons are taken in pseudonym order and each stratum
    /// draws from its own ChaCha8 stream of `seed`, so the sample depends only on the seed and
    /// the numbered population.
    pub fn sample(&self, seed: u64) -> Sample {
        let mut selected = vec![false; self.persons() + 1];
        let strata = self
            .strata
            .iter()
            .enumerate()
            .map(|(i, stratum)| {
                let mut persons = self.stratum_pseudonyms(i);
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(i as u64);
                let k = (stratum.sample_size as usize).min(persons.len());
                // Partial Fisher-Yates: the first k places get a uniform k-subset.
                for j in 0..k {
                    let pick = rng.random_range(j..persons.len());
                    persons.swap(j, pick);
                }
                persons.truncate(k);
                persons.sort_unstable();
                for &n in &persons {
                    selected[n as usize] = true;
                }
                persons
            })
            .collect();
        Sample {
            seed,
            strata,
            selected,
        }
    }

    /// The coded person-years of `year`, sorted by pseudonym: all of the population's (phase 2)
    /// or only the sampled persons' (phase 1).
    pub fn year_batch(&self, year: i32, sample: Option<&Sample>) -> Result<RecordBatch> {
        self.columns
            .decode(&self.year_batch_of(year, sample, &self.columns)?)
    }

    /// Every year's coded person-years of the whole population (the enclave's view), with only
    /// the named variables coded (pseudonym, year and stratum always), on `threads` threads, each
    /// year's batch handed to `each` as soon as it is coded; the results in year order. Codes
    /// are dictionary keys into their code lists ([`crate::coding::code_type`]).
    pub fn all_years<T: Send>(
        &self,
        variables: &[String],
        threads: usize,
        each: impl Fn(RecordBatch) -> T + Sync,
    ) -> Result<Vec<T>> {
        let columns = self.columns.keep(variables);
        let years: Vec<i32> = self.years().collect();
        let threads = threads.clamp(1, years.len().max(1));
        let mut coded: Vec<(i32, Result<T>)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let (years, columns, each) = (&years, &columns, &each);
                    scope.spawn(move || {
                        years
                            .iter()
                            .skip(t)
                            .step_by(threads)
                            .map(|&year| (year, self.year_batch_of(year, None, columns).map(each)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a coding thread panicked"))
                .collect()
        });
        coded.sort_by_key(|(year, _)| *year);
        coded.into_iter().map(|(_, batch)| batch).collect()
    }

    /// The output columns the population is coded in.
    pub(crate) fn columns(&self) -> &Columns {
        &self.columns
    }

    /// [`Self::year_batch`] with only the given columns coded, in the compact form (codes as
    /// dictionary keys; see [`Columns::decode`]).
    pub(crate) fn year_batch_of(
        &self,
        year: i32,
        sample: Option<&Sample>,
        columns: &Columns,
    ) -> Result<RecordBatch> {
        let rows_of_year = &self.qualifying_rows[(year - self.rules.first_year) as usize];
        let changed = || Error::WarehouseChanged(self.warehouse.dir().to_owned());
        let reads_nationality = columns.reads_current_nationality();
        // Columns the coding does not read are not decoded; their values are never asked for.
        let text_column = |batch: &RecordBatch, name: &str| {
            batch
                .column_by_name(name)
                .map(|c| c.as_string::<i32>().clone())
        };
        fn text(a: &Option<arrow::array::StringArray>, row: usize) -> &str {
            a.as_ref().map_or("", |a| a.value(row))
        }
        let int_column = |batch: &RecordBatch, name: &str| {
            batch
                .column_by_name(name)
                .map(|c| c.as_primitive::<Int32Type>().clone())
        };
        // Rows are coded in file order, which reads the warehouse's columns front to back, and
        // only then put in pseudonym order: coding in pseudonym order jumped across the batches
        // and spent most of its time waiting for memory.
        let capacity = if sample.is_some() {
            0
        } else {
            rows_of_year.len()
        };
        let mut builder = columns.builder(capacity);
        let mut numbers: Vec<u32> = Vec::new();
        let mut offset = 0;
        for batch in self
            .warehouse
            .person_years_batches(year)?
            .only(&columns.person_year_inputs())
        {
            let batch = batch?;
            let first_row = offset;
            let persons = rows_of_year
                .get(offset..offset + batch.num_rows())
                .ok_or_else(changed)?;
            offset += batch.num_rows();
            let nationalities = text_column(&batch, py::CURRENT_NATIONALITY);
            let regions = text_column(&batch, py::REGION);
            let naces = text_column(&batch, py::NACE);
            let types = int_column(&batch, py::EMPLOYER_TYPE);
            let statuut = int_column(&batch, py::STATUUT);
            let code = |a: &Option<arrow::array::Int32Array>, row| {
                a.as_ref()
                    .map_or(NONE8, |a| u8::try_from(a.value(row)).unwrap_or(NONE8))
            };
            for (row, &person) in persons.iter().enumerate() {
                if person == NOT_QUALIFYING {
                    continue;
                }
                let number = self.number_of[person as usize];
                if sample.is_some_and(|s| !s.contains(number)) {
                    continue;
                }
                let current_nationality = if reads_nationality {
                    let nationality = text(&nationalities, row);
                    country_index(nationality).ok_or_else(|| Error::BadValue {
                        table: "person_years",
                        context: format!("year {year}, row {}", first_row + row + 1),
                        column: py::CURRENT_NATIONALITY,
                        value: nationality.to_owned(),
                        expected: "an alpha-2 code of `countries`",
                    })?
                } else {
                    NONE16
                };
                numbers.push(number);
                builder.push(
                    number,
                    self.stratum_of[person as usize],
                    &Row {
                        year,
                        person: &self.facts[person as usize],
                        region: text(&regions, row),
                        current_nationality,
                        employer_type: code(&types, row),
                        statuut: code(&statuut, row),
                        nace: text(&naces, row),
                    },
                );
            }
        }
        if offset != rows_of_year.len() {
            return Err(changed());
        }
        let coded = builder.finish()?;
        // (number, row) packed in one integer: sorted without looking anything up.
        let mut order: Vec<u64> = numbers
            .iter()
            .enumerate()
            .map(|(row, &n)| (u64::from(n) << 32) | row as u64)
            .collect();
        order.sort_unstable();
        let rows = arrow::array::UInt32Array::from_iter_values(order.iter().map(|&o| o as u32));
        arrow::compute::take_record_batch(&coded, &rows)
            .map_err(Error::arrow("ordering the coded person-years"))
    }
}
