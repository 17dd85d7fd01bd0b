//! Coding: each authorised variable becomes one output column, in the coding the authorisation
//! grants (see `kluis-project/data/variables.csv`). Values are codes from the kluis-model code
//! lists or calendar years (Int32); missing facts are null. Codes are built as dictionary keys
//! into their code list (`Dictionary(Int16, Utf8)`) and decoded to Utf8 for the extract's files.

use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, DictionaryArray, Int16Builder, Int32Builder, Int64Builder, RecordBatch, StringArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int16Type, Schema, SchemaRef};
use kluis_model::codelists::{self, AgeClasses, Country};
use kluis_model::schema::person_years as py;
use kluis_model::{Background, MigrationThresholds};
use kluis_project::Authorisation;

use crate::error::{Error, Result};
use crate::{PSEUDONYM, STRATUM, YEAR};

/// "No value" in the compact per-person facts.
pub(crate) const NONE16: u16 = u16::MAX;
pub(crate) const NONE8: u8 = u8::MAX;
pub(crate) const NO_YEAR: i16 = i16::MIN;

/// Country codes (alpha-2) → index into `codelists::countries()`: a table over the 26×26
/// two-letter codes, since it is asked once per person-year.
pub(crate) fn country_index(code: &str) -> Option<u16> {
    static INDEX: OnceLock<Vec<u16>> = OnceLock::new();
    let slot = |bytes: &[u8]| match bytes {
        [a @ b'A'..=b'Z', b @ b'A'..=b'Z'] => Some((a - b'A') as usize * 26 + (b - b'A') as usize),
        _ => None,
    };
    let index = INDEX.get_or_init(|| {
        let mut index = vec![NONE16; 26 * 26];
        for (i, c) in codelists::countries().iter().enumerate() {
            index[slot(c.alpha2.as_bytes()).expect("alpha-2 codes are two capitals")] = i as u16;
        }
        index
    });
    slot(code.as_bytes())
        .map(|s| index[s])
        .filter(|&i| i != NONE16)
}

fn country_at(index: u16) -> Option<&'static Country> {
    (index != NONE16).then(|| &codelists::countries()[index as usize])
}

/// Position of a sex code in `sexes` (asked once per person: the list is looked up once).
pub(crate) fn sex_position(code: &str) -> Option<u8> {
    position(&lookups().sexes, code)
}

/// Position of an ISCED-F broad field in `iscedf_fields`.
pub(crate) fn study_field_position(code: &str) -> Option<u8> {
    position(&lookups().iscedf_fields, code)
}

fn position(codes: &[&str], code: &str) -> Option<u8> {
    codes.iter().position(|c| *c == code).map(|i| i as u8)
}

/// The codes of the lists the coding reads, indexed, built once: coding runs per person-year
/// (46 million at full scale), so no list is searched by name or scanned per row.
struct Lookups {
    sexes: Vec<&'static str>,
    isced_levels: Vec<&'static str>,
    iscedf_fields: Vec<&'static str>,
    /// Region codes with their numeric value (NIS codes are five digits; ABROAD and UNKNOWN
    /// are not).
    regions: Vec<(Option<u32>, &'static str)>,
    /// Nationality class number → its code.
    class_code: Vec<Option<&'static str>>,
    /// NACE division (two digits as a number) → its code and its section's code.
    division: Vec<Option<(&'static str, &'static str)>>,
    /// Employer type code → its code as text and its group's code.
    employer_type: Vec<Option<(&'static str, &'static str)>>,
    /// Statuut code → its code as text.
    statuut: Vec<Option<&'static str>>,
    /// ISCED level → its education band's code.
    education_band: Vec<Option<&'static str>>,
    /// Age (0..=[`MAX_AGE`]) → its class, per class width.
    age_class_5: Vec<Option<&'static str>>,
    age_class_10: Vec<Option<&'static str>>,
}

/// The oldest age the age-class tables cover; older ages have no class.
const MAX_AGE: i32 = 150;

fn lookups() -> &'static Lookups {
    static LOOKUPS: OnceLock<Lookups> = OnceLock::new();
    LOOKUPS.get_or_init(|| {
        let codes = |name: &str| -> Vec<&'static str> {
            codelists::get(name)
                .expect("code list embedded")
                .codes()
                .collect()
        };
        let mut class_code = vec![None; 256];
        for code in codes("nationality_classes") {
            if let Ok(n) = code.parse::<u8>() {
                class_code[n as usize] = Some(code);
            }
        }
        let sections = codes("nace_sections");
        let mut division = vec![None; 100];
        for d in codelists::nace_divisions() {
            if let Ok(n) = d.code.parse::<usize>() {
                let section = sections.iter().copied().find(|c| c.starts_with(d.section));
                division[n] = section.map(|section| (d.code.as_str(), section));
            }
        }
        let mut employer_type = vec![None; 256];
        for t in codelists::employer_types() {
            employer_type[t.code as usize] = Some((code_text(t.code), t.group.code()));
        }
        let statuut = (0..=255u8)
            .map(|c| codelists::statuut(c).map(|s| code_text(s.code)))
            .collect();
        let education_band = (0..=255u8)
            .map(|l| codelists::education_band(l).map(|b| b.code()))
            .collect();
        Lookups {
            sexes: codes("sexes"),
            isced_levels: codes("isced_levels"),
            iscedf_fields: codes("iscedf_fields"),
            regions: codes("regions")
                .into_iter()
                .map(|c| (five_digits(c), c))
                .collect(),
            class_code,
            division,
            employer_type,
            statuut,
            education_band,
            age_class_5: ages(AgeClasses::FiveYear),
            age_class_10: ages(AgeClasses::TenYear),
        }
    })
}

fn ages(classes: AgeClasses) -> Vec<Option<&'static str>> {
    (0..=MAX_AGE).map(|age| classes.class_of(age)).collect()
}

/// The value of a code of exactly five ASCII digits.
fn five_digits(code: &str) -> Option<u32> {
    let b = code.as_bytes();
    (b.len() == 5 && b.iter().all(u8::is_ascii_digit))
        .then(|| b.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

fn code_at(codes: &[&'static str], position: u8) -> Option<&'static str> {
    codes.get(position as usize).copied()
}

/// The division (two leading digits) of a 5-digit NACE-BEL code: its code and section code.
fn nace(code: &str) -> Option<(&'static str, &'static str)> {
    let b = code.as_bytes();
    if b.len() != 5 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    lookups().division[((b[0] - b'0') * 10 + (b[1] - b'0')) as usize]
}

/// What the coding needs to know of a person, kept compact (a full-scale warehouse has five
/// million persons): code-list positions and years instead of strings and dates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts {
    pub birth_year: i16,
    pub registration_year: i16,
    pub naturalisation_year: i16,
    pub country_of_birth: u16,
    pub first_nationality: u16,
    pub father_first_nationality: u16,
    pub mother_first_nationality: u16,
    /// Position in `sexes`.
    pub sex: u8,
    /// ISCED level 0-9.
    pub education_level: u8,
    /// Position in `iscedf_fields`.
    pub study_field: u8,
}

fn year16(year: Option<i32>) -> i16 {
    year.map_or(NO_YEAR, |y| y as i16)
}

fn from16(year: i16) -> Option<i32> {
    (year != NO_YEAR).then_some(year as i32)
}

impl Facts {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        birth_year: i32,
        registration_year: Option<i32>,
        naturalisation_year: Option<i32>,
        countries: [u16; 4],
        sex: u8,
        education_level: u8,
        study_field: u8,
    ) -> Facts {
        Facts {
            birth_year: birth_year as i16,
            registration_year: year16(registration_year),
            naturalisation_year: year16(naturalisation_year),
            country_of_birth: countries[0],
            first_nationality: countries[1],
            father_first_nationality: countries[2],
            mother_first_nationality: countries[3],
            sex,
            education_level,
            study_field,
        }
    }

    pub fn birth_year(&self) -> i32 {
        self.birth_year as i32
    }

    fn background(&self, current_nationality: u16) -> Background<'static> {
        Background {
            current_nationality: country_at(current_nationality),
            first_nationality: country_at(self.first_nationality),
            father_first_nationality: country_at(self.father_first_nationality),
            mother_first_nationality: country_at(self.mother_first_nationality),
            country_of_birth: country_at(self.country_of_birth),
            registration_year: from16(self.registration_year),
            naturalisation_year: from16(self.naturalisation_year),
        }
    }
}

/// One qualifying person-year, as the coding sees it.
pub(crate) struct Row<'a> {
    pub year: i32,
    pub person: &'a Facts,
    pub region: &'a str,
    pub current_nationality: u16,
    pub employer_type: u8,
    pub statuut: u8,
    pub nace: &'a str,
}

#[derive(Debug, Clone, Copy)]
enum CountryCoding {
    Class30,
    StatbelGroup,
}

#[derive(Debug, Clone, Copy)]
enum CountrySource {
    Current,
    Birth,
    First,
    Father,
    Mother,
}

#[derive(Debug, Clone, Copy)]
enum Coder {
    Sex,
    Age(AgeClasses),
    Region,
    Country(CountrySource, CountryCoding),
    RegistrationYear,
    NaturalisationYear,
    Origin,
    StatbelOrigin,
    MigrationBackground,
    IscedLevel,
    EducationBand,
    StudyField,
    Statuut,
    NaceSection,
    NaceDivision,
    EmployerType,
    EmployerGroup,
}

impl Coder {
    fn of(variable: &str, coding: &str) -> Result<Coder> {
        use CountryCoding::*;
        use CountrySource::*;
        let country = |source| match coding {
            "nationality_class_30" => Some(Coder::Country(source, Class30)),
            "statbel_group" => Some(Coder::Country(source, StatbelGroup)),
            _ => None,
        };
        let coder = match (variable, coding) {
            ("sex", "code") => Some(Coder::Sex),
            ("age", "age_class_5") => Some(Coder::Age(AgeClasses::FiveYear)),
            ("age", "age_class_10") => Some(Coder::Age(AgeClasses::TenYear)),
            ("region", "code") => Some(Coder::Region),
            ("current_nationality", _) => country(Current),
            ("country_of_birth", _) => country(Birth),
            ("first_nationality", _) => country(First),
            ("father_first_nationality", _) => country(Father),
            ("mother_first_nationality", _) => country(Mother),
            ("registration_date", "year") => Some(Coder::RegistrationYear),
            ("naturalisation_date", "year") => Some(Coder::NaturalisationYear),
            ("origin", "origin_group") => Some(Coder::Origin),
            ("statbel_origin", "code") => Some(Coder::StatbelOrigin),
            ("migration_background", "code") => Some(Coder::MigrationBackground),
            ("education_level", "isced_level") => Some(Coder::IscedLevel),
            ("education_level", "isced_low_medium_high") => Some(Coder::EducationBand),
            ("study_field", "iscedf_broad") => Some(Coder::StudyField),
            ("statuut", "code") => Some(Coder::Statuut),
            ("nace", "section") => Some(Coder::NaceSection),
            ("nace", "division") => Some(Coder::NaceDivision),
            ("employer_type", "code") => Some(Coder::EmployerType),
            ("employer_type", "employer_group") => Some(Coder::EmployerGroup),
            _ => None,
        };
        coder.ok_or_else(|| Error::UnsupportedCoding {
            variable: variable.to_owned(),
            coding: coding.to_owned(),
        })
    }

    /// The code list every code of this coder comes from.
    fn list(self) -> Option<&'static str> {
        Some(match self {
            Coder::Sex => "sexes",
            Coder::Age(AgeClasses::FiveYear) => "age_classes_5",
            Coder::Age(AgeClasses::TenYear) => "age_classes_10",
            Coder::Region => "regions",
            Coder::Country(_, CountryCoding::Class30) => "nationality_classes",
            Coder::Country(_, CountryCoding::StatbelGroup) => "statbel_groups",
            Coder::Origin => "origin_groups",
            Coder::StatbelOrigin => "statbel_origins",
            Coder::MigrationBackground => "migration_backgrounds",
            Coder::IscedLevel => "isced_levels",
            Coder::EducationBand => "education_bands",
            Coder::StudyField => "iscedf_fields",
            Coder::Statuut => "statuut",
            Coder::NaceSection => "nace_sections",
            Coder::NaceDivision => "nace_divisions",
            Coder::EmployerType => "employer_types",
            Coder::EmployerGroup => "employer_groups",
            Coder::RegistrationYear | Coder::NaturalisationYear => return None,
        })
    }

    fn reads_current_nationality(self) -> bool {
        self.needs_background() || matches!(self, Coder::Country(CountrySource::Current, _))
    }

    fn is_year(self) -> bool {
        matches!(self, Coder::RegistrationYear | Coder::NaturalisationYear)
    }

    fn needs_background(self) -> bool {
        matches!(
            self,
            Coder::Origin | Coder::StatbelOrigin | Coder::MigrationBackground
        )
    }

    fn code(self, row: &Row, background: Option<&Background<'static>>) -> Option<&'static str> {
        let p = row.person;
        let thresholds = MigrationThresholds::default();
        let l = lookups();
        match self {
            Coder::Sex => code_at(&l.sexes, p.sex),
            Coder::Age(classes) => {
                let table = match classes {
                    AgeClasses::FiveYear => &l.age_class_5,
                    AgeClasses::TenYear => &l.age_class_10,
                };
                let age = usize::try_from(row.year - p.birth_year()).ok()?;
                table.get(age).copied().flatten()
            }
            Coder::Region => match five_digits(row.region) {
                Some(n) => l.regions.iter().find(|(m, _)| *m == Some(n)),
                None => l.regions.iter().find(|(_, code)| *code == row.region),
            }
            .map(|(_, code)| *code),
            Coder::Country(source, coding) => {
                let index = match source {
                    CountrySource::Current => row.current_nationality,
                    CountrySource::Birth => p.country_of_birth,
                    CountrySource::First => p.first_nationality,
                    CountrySource::Father => p.father_first_nationality,
                    CountrySource::Mother => p.mother_first_nationality,
                };
                let country = country_at(index)?;
                match coding {
                    CountryCoding::Class30 => l.class_code[country.nationality_class as usize],
                    CountryCoding::StatbelGroup => Some(country.statbel_group.code()),
                }
            }
            Coder::Origin => Some(background?.origin().group.code()),
            Coder::StatbelOrigin => Some(background?.statbel_origin().code()),
            Coder::MigrationBackground => Some(
                background?
                    .migration_background(row.year, &thresholds)
                    .code(),
            ),
            Coder::IscedLevel => code_at(&l.isced_levels, p.education_level),
            Coder::EducationBand => l.education_band[p.education_level as usize],
            Coder::StudyField => code_at(&l.iscedf_fields, p.study_field),
            Coder::Statuut => l.statuut[row.statuut as usize],
            Coder::NaceSection => nace(row.nace).map(|(_, section)| section),
            Coder::NaceDivision => nace(row.nace).map(|(division, _)| division),
            Coder::EmployerType => {
                l.employer_type[row.employer_type as usize].map(|(code, _)| code)
            }
            Coder::EmployerGroup => {
                l.employer_type[row.employer_type as usize].map(|(_, group)| group)
            }
            Coder::RegistrationYear | Coder::NaturalisationYear => None,
        }
    }

    fn year(self, row: &Row) -> Option<i32> {
        match self {
            Coder::RegistrationYear => from16(row.person.registration_year),
            Coder::NaturalisationYear => from16(row.person.naturalisation_year),
            _ => None,
        }
    }
}

/// Small numeric codes as `&'static str` (statuut and employer type codes are below 100).
fn code_text(code: u8) -> &'static str {
    static TEXT: OnceLock<Vec<String>> = OnceLock::new();
    TEXT.get_or_init(|| (0..=255u16).map(|n| n.to_string()).collect())[code as usize].as_str()
}

/// The output columns of an authorisation: pseudonym, year, stratum, then every authorised
/// variable in the order the authorisation lists them.
///
/// Rows are coded into their compact form: each coded column holds dictionary keys into its
/// code list ([`code_type`]), the stratum keys into the strata. The extract's files hold the
/// codes as text ([`Columns::schema`], [`Columns::decode`]).
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    variables: Vec<(String, Coder)>,
    strata: Arc<StringArray>,
    schema: SchemaRef,
    background: bool,
    current_nationality: bool,
}

/// The type of a coded column in the compact form (the sample's text columns become the same
/// type in the enclave, so both give the same columns).
pub(crate) fn code_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Utf8))
}

impl Columns {
    pub fn new(authorisation: &Authorisation) -> Result<Columns> {
        let mut variables = Vec::new();
        let mut fields = vec![
            Field::new(PSEUDONYM, DataType::Int64, false),
            Field::new(YEAR, DataType::Int32, false),
            Field::new(STRATUM, DataType::Utf8, false),
        ];
        for variable in &authorisation.variables {
            let coder = Coder::of(&variable.name, &variable.coding)?;
            let data_type = if coder.is_year() {
                DataType::Int32
            } else {
                DataType::Utf8
            };
            fields.push(Field::new(&variable.name, data_type, true));
            variables.push((variable.name.clone(), coder));
        }
        let strata = authorisation.strata.iter().map(|s| Some(s.name.as_str()));
        Ok(Columns::with(
            variables,
            Arc::new(StringArray::from_iter(strata)),
            Arc::new(Schema::new(fields)),
        ))
    }

    fn with(variables: Vec<(String, Coder)>, strata: Arc<StringArray>, schema: SchemaRef) -> Self {
        Columns {
            background: variables.iter().any(|(_, c)| c.needs_background()),
            current_nationality: variables.iter().any(|(_, c)| c.reads_current_nationality()),
            variables,
            strata,
            schema,
        }
    }

    /// The schema of the extract's files: codes as text.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The schema of the compact form: codes as dictionary keys.
    fn compact_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 => f.as_ref().clone().with_data_type(code_type()),
                _ => f.as_ref().clone(),
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// Whether any column reads the person-year's current nationality.
    pub fn reads_current_nationality(&self) -> bool {
        self.current_nationality
    }

    /// The warehouse's person-year columns the coding reads: decoding a text column of 46
    /// million rows costs more than coding it, so the others are not read.
    pub fn person_year_inputs(&self) -> Vec<&'static str> {
        let reads = |wanted: fn(Coder) -> bool| self.variables.iter().any(|(_, c)| wanted(*c));
        let mut inputs = vec![py::STATUUT];
        if reads(|c| matches!(c, Coder::Region)) {
            inputs.push(py::REGION);
        }
        if reads(|c| matches!(c, Coder::NaceSection | Coder::NaceDivision)) {
            inputs.push(py::NACE);
        }
        if reads(|c| matches!(c, Coder::EmployerType | Coder::EmployerGroup)) {
            inputs.push(py::EMPLOYER_TYPE);
        }
        if self.current_nationality {
            inputs.push(py::CURRENT_NATIONALITY);
        }
        inputs
    }

    /// The same columns with only the named variables (pseudonym, year and stratum stay).
    pub fn keep(&self, names: &[String]) -> Columns {
        let variables: Vec<(String, Coder)> = self
            .variables
            .iter()
            .filter(|(name, _)| names.contains(name))
            .cloned()
            .collect();
        let schema = self.schema.project(
            &(0..self.schema.fields().len())
                .filter(|&i| i < 3 || names.contains(self.schema.field(i).name()))
                .collect::<Vec<_>>(),
        );
        Columns::with(
            variables,
            self.strata.clone(),
            Arc::new(schema.expect("indices of the schema's own fields")),
        )
    }

    /// A batch of the compact form in the files' form: every code as text.
    pub fn decode(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let arrays = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(array, field)| cast(array, field.data_type()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::arrow("decoding the coded person-years"))?;
        RecordBatch::try_new(self.schema(), arrays)
            .map_err(Error::arrow("decoding the coded person-years"))
    }

    pub fn builder(&self, capacity: usize) -> RowsBuilder<'_> {
        RowsBuilder {
            columns: self,
            pseudonym: Int64Builder::with_capacity(capacity),
            year: Int32Builder::with_capacity(capacity),
            stratum: Int16Builder::with_capacity(capacity),
            values: self
                .variables
                .iter()
                .map(|(_, coder)| match coder.list() {
                    None => ValueBuilder::Year(Int32Builder::with_capacity(capacity)),
                    Some(list) => ValueBuilder::Code(CodeBuilder::new(list, capacity)),
                })
                .collect(),
        }
    }
}

/// The output schema for an authorisation (what the extract's files hold).
pub fn output_schema(authorisation: &Authorisation) -> Result<SchemaRef> {
    Ok(Columns::new(authorisation)?.schema())
}

enum ValueBuilder {
    Code(CodeBuilder),
    Year(Int32Builder),
}

/// One coded column, as keys into its code list.
struct CodeBuilder {
    list: &'static str,
    codes: Vec<&'static str>,
    keys: Int16Builder,
    /// Each code the coder returned → its key. Codes are `&'static str`, so they are found by
    /// address: one small integer lookup per row instead of hashing text.
    keys_by_address: rustc_hash::FxHashMap<(usize, usize), i16>,
}

impl CodeBuilder {
    fn new(list: &'static str, capacity: usize) -> CodeBuilder {
        let codes: Vec<&'static str> = codelists::get(list)
            .expect("code list embedded")
            .codes()
            .collect();
        CodeBuilder {
            list,
            codes,
            keys: Int16Builder::with_capacity(capacity),
            keys_by_address: Default::default(),
        }
    }

    fn append(&mut self, code: Option<&'static str>) {
        let Some(code) = code else {
            self.keys.append_null();
            return;
        };
        let address = (code.as_ptr() as usize, code.len());
        let key = match self.keys_by_address.get(&address) {
            Some(&key) => key,
            None => {
                let position = self
                    .codes
                    .iter()
                    .position(|c| *c == code)
                    .unwrap_or_else(|| {
                        panic!(
                            "coding produced `{code}`, which is not in code list {}",
                            self.list
                        )
                    });
                let key = i16::try_from(position).expect("code lists are short");
                self.keys_by_address.insert(address, key);
                key
            }
        };
        self.keys.append_value(key);
    }

    fn finish(&mut self) -> ArrayRef {
        let values = Arc::new(StringArray::from_iter_values(&self.codes));
        Arc::new(DictionaryArray::<Int16Type>::new(
            self.keys.finish(),
            values,
        ))
    }
}

/// Accumulates coded rows into one record batch.
pub(crate) struct RowsBuilder<'c> {
    columns: &'c Columns,
    pseudonym: Int64Builder,
    year: Int32Builder,
    stratum: Int16Builder,
    values: Vec<ValueBuilder>,
}

impl RowsBuilder<'_> {
    /// Adds a row of the stratum at `stratum` (its index in the authorisation).
    pub fn push(&mut self, pseudonym: u32, stratum: u8, row: &Row) {
        self.pseudonym.append_value(pseudonym as i64);
        self.year.append_value(row.year);
        self.stratum.append_value(i16::from(stratum));
        let background = self
            .columns
            .background
            .then(|| row.person.background(row.current_nationality));
        for ((_, coder), builder) in self.columns.variables.iter().zip(&mut self.values) {
            match builder {
                ValueBuilder::Code(b) => b.append(coder.code(row, background.as_ref())),
                ValueBuilder::Year(b) => b.append_option(coder.year(row)),
            }
        }
    }

    /// The rows in the compact form.
    pub fn finish(mut self) -> Result<RecordBatch> {
        let strata =
            DictionaryArray::<Int16Type>::new(self.stratum.finish(), self.columns.strata.clone());
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(self.pseudonym.finish()),
            Arc::new(self.year.finish()),
            Arc::new(strata),
        ];
        for builder in &mut self.values {
            arrays.push(match builder {
                ValueBuilder::Code(b) => b.finish(),
                ValueBuilder::Year(b) => Arc::new(b.finish()),
            });
        }
        RecordBatch::try_new(self.columns.compact_schema(), arrays)
            .map_err(Error::arrow("building the coded person-years"))
    }
}

/// What each authorised column means and how it is coded, for the codebook.
pub(crate) fn describe(
    authorisation: &Authorisation,
) -> Vec<(String, String, Option<String>, String)> {
    authorisation
        .variables
        .iter()
        .map(|v| {
            let entry = kluis_project::variables::coding(&v.name, &v.coding);
            (
                v.name.clone(),
                v.coding.clone(),
                entry.and_then(|e| e.codelist.clone()),
                entry.map(|e| e.meaning.clone()).unwrap_or_default(),
            )
        })
        .collect()
}
