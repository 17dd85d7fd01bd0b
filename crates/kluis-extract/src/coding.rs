//! Coding: each authorised variable becomes one output column, in the coding the authorisation
//! grants (see `kluis-project/data/variables.csv`). Values are codes from the kluis-model code
//! lists (Utf8) or calendar years (Int32); missing facts are null.

use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, Int32Builder, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use kluis_model::codelists::{self, AgeClasses, Country};
use kluis_model::{Background, MigrationThresholds};
use kluis_project::Authorisation;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::{PSEUDONYM, STRATUM, YEAR};

/// "No value" in the compact per-person facts.
pub(crate) const NONE16: u16 = u16::MAX;
pub(crate) const NONE8: u8 = u8::MAX;
pub(crate) const NO_YEAR: i16 = i16::MIN;

/// Country codes (alpha-2) → index into `codelists::countries()`.
pub(crate) fn country_index(code: &str) -> Option<u16> {
    static INDEX: OnceLock<FxHashMap<&'static str, u16>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            codelists::countries()
                .iter()
                .enumerate()
                .map(|(i, c)| (c.alpha2.as_str(), i as u16))
                .collect()
        })
        .get(code)
        .copied()
}

fn country_at(index: u16) -> Option<&'static Country> {
    (index != NONE16).then(|| &codelists::countries()[index as usize])
}

/// Position of `code` in a code list (its codes are `&'static`).
pub(crate) fn code_position(list: &str, code: &str) -> Option<u8> {
    codelists::get(list)
        .expect("code list embedded")
        .codes()
        .position(|c| c == code)
        .map(|i| i as u8)
}

fn code_at(list: &str, position: u8) -> Option<&'static str> {
    (position != NONE8).then(|| {
        codelists::get(list).expect("code list embedded").rows[position as usize][0].as_str()
    })
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
        match self {
            Coder::Sex => code_at("sexes", p.sex),
            Coder::Age(classes) => classes.class_of(row.year - p.birth_year()),
            Coder::Region => codelists::get("regions")
                .expect("embedded")
                .codes()
                .find(|c| *c == row.region),
            Coder::Country(source, coding) => {
                let index = match source {
                    CountrySource::Current => row.current_nationality,
                    CountrySource::Birth => p.country_of_birth,
                    CountrySource::First => p.first_nationality,
                    CountrySource::Father => p.father_first_nationality,
                    CountrySource::Mother => p.mother_first_nationality,
                };
                let country = country_at(index)?;
                Some(match coding {
                    CountryCoding::Class30 => class_code(country.nationality_class),
                    CountryCoding::StatbelGroup => country.statbel_group.code(),
                })
            }
            Coder::Origin => Some(background?.origin().group.code()),
            Coder::StatbelOrigin => Some(background?.statbel_origin().code()),
            Coder::MigrationBackground => Some(
                background?
                    .migration_background(row.year, &thresholds)
                    .code(),
            ),
            Coder::IscedLevel => code_at("isced_levels", p.education_level),
            Coder::EducationBand => (p.education_level != NONE8)
                .then(|| codelists::education_band(p.education_level))
                .flatten()
                .map(|b| b.code()),
            Coder::StudyField => code_at("iscedf_fields", p.study_field),
            Coder::Statuut => codelists::statuut(row.statuut).map(|s| code_text(s.code)),
            Coder::NaceSection => codelists::nace_division(row.nace)
                .ok()
                .and_then(|d| section_code(d.section)),
            Coder::NaceDivision => codelists::nace_division(row.nace)
                .ok()
                .map(|d| d.code.as_str()),
            Coder::EmployerType => {
                codelists::employer_type(row.employer_type).map(|t| code_text(t.code))
            }
            Coder::EmployerGroup => {
                codelists::employer_type(row.employer_type).map(|t| t.group.code())
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

/// The code of nationality class `n` in `nationality_classes`.
fn class_code(n: u8) -> &'static str {
    codelists::get("nationality_classes")
        .expect("embedded")
        .codes()
        .find(|c| c.parse::<u8>() == Ok(n))
        .expect("every country's class is listed (kluis-model tests it)")
}

fn section_code(section: char) -> Option<&'static str> {
    let mut buffer = [0u8; 4];
    let section = section.encode_utf8(&mut buffer);
    codelists::get("nace_sections")
        .expect("embedded")
        .codes()
        .find(|c| *c == section)
}

/// Small numeric codes as `&'static str` (statuut and employer type codes are below 100).
fn code_text(code: u8) -> &'static str {
    static TEXT: OnceLock<Vec<String>> = OnceLock::new();
    TEXT.get_or_init(|| (0..=255u16).map(|n| n.to_string()).collect())[code as usize].as_str()
}

/// The output columns of an authorisation: pseudonym, year, stratum, then every authorised
/// variable in the order the authorisation lists them.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    variables: Vec<(String, Coder)>,
    schema: SchemaRef,
    background: bool,
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
        let background = variables.iter().any(|(_, c)| c.needs_background());
        Ok(Columns {
            variables,
            schema: Arc::new(Schema::new(fields)),
            background,
        })
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub fn builder(&self, capacity: usize) -> RowsBuilder<'_> {
        RowsBuilder {
            columns: self,
            pseudonym: Int64Builder::with_capacity(capacity),
            year: Int32Builder::with_capacity(capacity),
            stratum: StringBuilder::with_capacity(capacity, capacity * 8),
            values: self
                .variables
                .iter()
                .map(|(_, coder)| {
                    if coder.is_year() {
                        ValueBuilder::Year(Int32Builder::with_capacity(capacity))
                    } else {
                        ValueBuilder::Code(StringBuilder::with_capacity(capacity, capacity * 4))
                    }
                })
                .collect(),
        }
    }
}

/// The output schema for an authorisation (what [`crate::CodedPopulation::year_batches`]
/// yields and the extract's files hold).
pub fn output_schema(authorisation: &Authorisation) -> Result<SchemaRef> {
    Ok(Columns::new(authorisation)?.schema())
}

enum ValueBuilder {
    Code(StringBuilder),
    Year(Int32Builder),
}

/// Accumulates coded rows into one record batch.
pub(crate) struct RowsBuilder<'c> {
    columns: &'c Columns,
    pseudonym: Int64Builder,
    year: Int32Builder,
    stratum: StringBuilder,
    values: Vec<ValueBuilder>,
}

impl RowsBuilder<'_> {
    pub fn push(&mut self, pseudonym: u32, stratum: &str, row: &Row) {
        self.pseudonym.append_value(pseudonym as i64);
        self.year.append_value(row.year);
        self.stratum.append_value(stratum);
        let background = self
            .columns
            .background
            .then(|| row.person.background(row.current_nationality));
        for ((_, coder), builder) in self.columns.variables.iter().zip(&mut self.values) {
            match builder {
                ValueBuilder::Code(b) => b.append_option(coder.code(row, background.as_ref())),
                ValueBuilder::Year(b) => b.append_option(coder.year(row)),
            }
        }
    }

    pub fn finish(mut self) -> Result<arrow::array::RecordBatch> {
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(self.pseudonym.finish()),
            Arc::new(self.year.finish()),
            Arc::new(self.stratum.finish()),
        ];
        for builder in &mut self.values {
            arrays.push(match builder {
                ValueBuilder::Code(b) => Arc::new(b.finish()),
                ValueBuilder::Year(b) => Arc::new(b.finish()),
            });
        }
        arrow::array::RecordBatch::try_new(self.columns.schema(), arrays)
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
