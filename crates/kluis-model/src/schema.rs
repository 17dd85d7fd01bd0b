//! Arrow schemas of the warehouse tables, defined once here for every crate that reads or writes
//! them (generator, ingest, extract, enclave). Column names are constants so code never spells
//! them twice.
//!
//! `persons`: one row per person. `person_years`: one row per person and year the person was an
//! employee; stored partitioned by year, the `year` column is kept inside the files.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// Column names of the `persons` table.
pub mod persons {
    /// The 11-digit INSZ value (Int64, never null).
    pub const INSZ: &str = "insz";
    /// `M` or `F`.
    pub const SEX: &str = "sex";
    pub const BIRTH_DATE: &str = "birth_date";
    /// ISO alpha-2 as in `countries.csv`; `XU` when unknown.
    pub const COUNTRY_OF_BIRTH: &str = "country_of_birth";
    pub const FIRST_NATIONALITY: &str = "first_nationality";
    pub const FATHER_FIRST_NATIONALITY: &str = "father_first_nationality";
    pub const MOTHER_FIRST_NATIONALITY: &str = "mother_first_nationality";
    /// First registration in the National Register.
    pub const REGISTRATION_DATE: &str = "registration_date";
    pub const NATURALISATION_DATE: &str = "naturalisation_date";
    /// ISCED 2011 level 0-8, 9 unknown.
    pub const EDUCATION_LEVEL: &str = "education_level";
    /// ISCED-F 2013 broad field `00`..`10`, `99` unknown.
    pub const STUDY_FIELD: &str = "study_field";
    /// Every column, in schema order.
    pub const ALL: [&str; 11] = [
        INSZ,
        SEX,
        BIRTH_DATE,
        COUNTRY_OF_BIRTH,
        FIRST_NATIONALITY,
        FATHER_FIRST_NATIONALITY,
        MOTHER_FIRST_NATIONALITY,
        REGISTRATION_DATE,
        NATURALISATION_DATE,
        EDUCATION_LEVEL,
        STUDY_FIELD,
    ];
}

/// Column names of the `person_years` table.
pub mod person_years {
    pub const INSZ: &str = "insz";
    pub const YEAR: &str = "year";
    /// Region code from `regions.csv`.
    pub const REGION: &str = "region";
    /// ISO alpha-2 nationality on 1 January of the year.
    pub const CURRENT_NATIONALITY: &str = "current_nationality";
    pub const EMPLOYER_ID: &str = "employer_id";
    /// Code from `employer_types.csv`.
    pub const EMPLOYER_TYPE: &str = "employer_type";
    /// Code from `statuut.csv`.
    pub const STATUUT: &str = "statuut";
    /// 5-digit NACE-BEL 2008 code.
    pub const NACE: &str = "nace";
    /// Every column, in schema order.
    pub const ALL: [&str; 8] = [
        INSZ,
        YEAR,
        REGION,
        CURRENT_NATIONALITY,
        EMPLOYER_ID,
        EMPLOYER_TYPE,
        STATUUT,
        NACE,
    ];
}

/// Schema of the `persons` table.
pub fn persons_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            use persons::*;
            Arc::new(Schema::new(vec![
                Field::new(INSZ, DataType::Int64, false),
                Field::new(SEX, DataType::Utf8, false),
                Field::new(BIRTH_DATE, DataType::Date32, false),
                Field::new(COUNTRY_OF_BIRTH, DataType::Utf8, false),
                Field::new(FIRST_NATIONALITY, DataType::Utf8, true),
                Field::new(FATHER_FIRST_NATIONALITY, DataType::Utf8, true),
                Field::new(MOTHER_FIRST_NATIONALITY, DataType::Utf8, true),
                Field::new(REGISTRATION_DATE, DataType::Date32, true),
                Field::new(NATURALISATION_DATE, DataType::Date32, true),
                Field::new(EDUCATION_LEVEL, DataType::Int32, true),
                Field::new(STUDY_FIELD, DataType::Utf8, true),
            ]))
        })
        .clone()
}

/// Schema of the `person_years` table.
pub fn person_years_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            use person_years::*;
            Arc::new(Schema::new(vec![
                Field::new(INSZ, DataType::Int64, false),
                Field::new(YEAR, DataType::Int32, false),
                Field::new(REGION, DataType::Utf8, false),
                Field::new(CURRENT_NATIONALITY, DataType::Utf8, false),
                Field::new(EMPLOYER_ID, DataType::Int64, false),
                Field::new(EMPLOYER_TYPE, DataType::Int32, false),
                Field::new(STATUUT, DataType::Int32, false),
                Field::new(NACE, DataType::Utf8, false),
            ]))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_lists_match_the_schemas() {
        let names = |s: &SchemaRef| {
            s.fields()
                .iter()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&persons_schema()), persons::ALL);
        assert_eq!(names(&person_years_schema()), person_years::ALL);
        // The key is never null; the optional facts of a person are.
        assert!(!persons_schema().field(0).is_nullable());
        assert!(
            persons_schema()
                .field_with_name(persons::NATURALISATION_DATE)
                .unwrap()
                .is_nullable()
        );
        assert!(
            person_years_schema()
                .fields()
                .iter()
                .all(|f| !f.is_nullable())
        );
    }
}
