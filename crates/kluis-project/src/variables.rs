//! The catalogue of variables an authorisation may grant and their codings, from
//! `data/variables.csv` (embedded).

use std::sync::OnceLock;

/// One way a variable can be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coding {
    pub variable: String,
    pub coding: String,
    /// The kluis-model code list the delivered values come from; `None` for a calendar year.
    pub codelist: Option<String>,
    pub meaning: String,
}

/// Every (variable, coding) pair, in file order (which is also the extract's column order).
pub fn catalogue() -> &'static [Coding] {
    static ALL: OnceLock<Vec<Coding>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut reader = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .from_reader(include_str!("../data/variables.csv").as_bytes());
        reader
            .records()
            .map(|record| {
                let record = record.expect("variables.csv is well-formed");
                Coding {
                    variable: record[0].to_owned(),
                    coding: record[1].to_owned(),
                    codelist: (!record[2].is_empty()).then(|| record[2].to_owned()),
                    meaning: record[3].to_owned(),
                }
            })
            .collect()
    })
}

/// Variable names in catalogue order, each once.
pub fn variable_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = Vec::new();
    for coding in catalogue() {
        if !names.contains(&coding.variable.as_str()) {
            names.push(&coding.variable);
        }
    }
    names
}

/// The codings a variable may take (empty if the variable is unknown).
pub fn codings_of(variable: &str) -> Vec<&'static Coding> {
    catalogue()
        .iter()
        .filter(|c| c.variable == variable)
        .collect()
}

/// The catalogue entry for a variable in a coding.
pub fn coding(variable: &str, coding: &str) -> Option<&'static Coding> {
    catalogue()
        .iter()
        .find(|c| c.variable == variable && c.coding == coding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_coding_names_a_code_list_that_kluis_model_embeds() {
        for coding in catalogue() {
            match &coding.codelist {
                Some(list) => assert!(
                    kluis_model::codelists::get(list).is_some(),
                    "{}.{}: no code list {list}",
                    coding.variable,
                    coding.coding
                ),
                None => assert_eq!(coding.coding, "year", "{}", coding.variable),
            }
        }
    }

    #[test]
    fn the_catalogue_covers_the_variables_of_authorisation_23_224() {
        let names = variable_names();
        for variable in [
            "sex",
            "age",
            "region",
            "current_nationality",
            "first_nationality",
            "father_first_nationality",
            "mother_first_nationality",
            "country_of_birth",
            "registration_date",
            "naturalisation_date",
            "origin",
            "statbel_origin",
            "migration_background",
            "education_level",
            "study_field",
            "statuut",
            "nace",
            "employer_type",
        ] {
            assert!(names.contains(&variable), "{variable}");
        }
        assert_eq!(names.len(), 18);
        assert!(coding("nace", "division").is_some());
        assert!(coding("nace", "year").is_none());
    }
}
