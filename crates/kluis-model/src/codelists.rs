//! Code lists: CSV files under `codelists/`, embedded at build time and parsed once on first use.
//!
//! Each list is available generically ([`all`], [`get`]) for printing, and through typed lookups
//! ([`country`], [`employer_type`], [`nace_division`], ...) for the code that derives and checks data.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::groups::{EducationBand, EmployerGroup, OriginGroup, StatbelGroup};

/// One embedded code list, as printed by `kluis codelist`.
#[derive(Debug, Clone)]
pub struct CodeList {
    /// The name users type (`kluis codelist show countries`).
    pub name: &'static str,
    /// The source/decision note: the `#` lines at the top of the file.
    pub note: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl CodeList {
    /// The row whose first column (the code) equals `code`.
    pub fn row(&self, code: &str) -> Option<&[String]> {
        self.rows
            .iter()
            .find(|row| row[0] == code)
            .map(Vec::as_slice)
    }

    /// All codes (first column), in file order.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().map(|row| row[0].as_str())
    }

    fn column(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("code list {} has no column {name}", self.name))
    }
}

/// The embedded files, in the order `kluis codelist list` shows them.
const FILES: &[(&str, &str)] = &[
    ("countries", include_str!("../codelists/countries.csv")),
    (
        "nationality_classes",
        include_str!("../codelists/nationality_classes.csv"),
    ),
    (
        "origin_groups",
        include_str!("../codelists/origin_groups.csv"),
    ),
    (
        "statbel_groups",
        include_str!("../codelists/statbel_groups.csv"),
    ),
    (
        "statbel_origins",
        include_str!("../codelists/statbel_origins.csv"),
    ),
    (
        "migration_backgrounds",
        include_str!("../codelists/migration_backgrounds.csv"),
    ),
    (
        "employer_types",
        include_str!("../codelists/employer_types.csv"),
    ),
    (
        "employer_groups",
        include_str!("../codelists/employer_groups.csv"),
    ),
    ("statuut", include_str!("../codelists/statuut.csv")),
    (
        "isced_levels",
        include_str!("../codelists/isced_levels.csv"),
    ),
    (
        "education_bands",
        include_str!("../codelists/education_bands.csv"),
    ),
    (
        "iscedf_fields",
        include_str!("../codelists/iscedf_fields.csv"),
    ),
    (
        "age_classes_5",
        include_str!("../codelists/age_classes_5.csv"),
    ),
    (
        "age_classes_10",
        include_str!("../codelists/age_classes_10.csv"),
    ),
    ("regions", include_str!("../codelists/regions.csv")),
    (
        "nace_sections",
        include_str!("../codelists/nace_sections.csv"),
    ),
    (
        "nace_divisions",
        include_str!("../codelists/nace_divisions.csv"),
    ),
    ("sexes", include_str!("../codelists/sexes.csv")),
];

fn parse(name: &'static str, text: &str) -> CodeList {
    let note = text
        .lines()
        .take_while(|line| line.starts_with('#'))
        .map(|line| line.trim_start_matches('#').trim())
        .collect::<Vec<_>>()
        .join(" ");
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let columns = reader
        .headers()
        .unwrap_or_else(|e| panic!("code list {name}: bad header: {e}"))
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|record| {
            record
                .unwrap_or_else(|e| panic!("code list {name}: {e}"))
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect();
    CodeList {
        name,
        note,
        columns,
        rows,
    }
}

/// Every embedded code list.
pub fn all() -> &'static [CodeList] {
    static LISTS: OnceLock<Vec<CodeList>> = OnceLock::new();
    LISTS.get_or_init(|| FILES.iter().map(|(name, text)| parse(name, text)).collect())
}

/// The code list called `name`.
pub fn get(name: &str) -> Option<&'static CodeList> {
    all().iter().find(|list| list.name == name)
}

fn list(name: &str) -> &'static CodeList {
    get(name).unwrap_or_else(|| panic!("code list {name} is not embedded"))
}

/// A country or nationality, keyed by ISO 3166-1 alpha-2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Country {
    pub alpha2: String,
    pub alpha3: String,
    pub name: String,
    pub geobel: Option<u16>,
    pub nationality_class: u8,
    pub origin_group: OriginGroup,
    pub statbel_group: StatbelGroup,
}

/// Alpha-2 code of the "stateless" entry.
pub const STATELESS: &str = "XA";
/// Alpha-2 code of the "unknown" entry; derivation rules treat it as missing.
pub const UNKNOWN_COUNTRY: &str = "XU";
/// Alpha-2 code of Belgium.
pub const BELGIUM: &str = "BE";

impl Country {
    // Byte patterns rather than string equality: the rules ask these per person-year.
    pub fn is_belgian(&self) -> bool {
        matches!(self.alpha2.as_bytes(), [b'B', b'E'])
    }

    /// The "unknown" code, which counts as a missing value.
    pub fn is_unknown(&self) -> bool {
        matches!(self.alpha2.as_bytes(), [b'X', b'U'])
    }
}

struct CountryIndex {
    countries: Vec<Country>,
    by_code: HashMap<String, usize>,
}

fn country_index() -> &'static CountryIndex {
    static INDEX: OnceLock<CountryIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let list = list("countries");
        let [a2, a3, name, geobel, class, origin, statbel] = [
            "alpha2",
            "alpha3",
            "name",
            "geobel",
            "nationality_class",
            "origin_group",
            "statbel_group",
        ]
        .map(|c| list.column(c));
        let countries: Vec<Country> = list
            .rows
            .iter()
            .map(|row| Country {
                alpha2: row[a2].clone(),
                alpha3: row[a3].clone(),
                name: row[name].clone(),
                geobel: (!row[geobel].is_empty())
                    .then(|| row[geobel].parse().expect("countries.csv: bad geobel code")),
                nationality_class: row[class].parse().expect("countries.csv: bad class"),
                origin_group: OriginGroup::from_code(&row[origin])
                    .expect("countries.csv: bad origin group"),
                statbel_group: StatbelGroup::from_code(&row[statbel])
                    .expect("countries.csv: bad statbel group"),
            })
            .collect();
        let mut by_code = HashMap::new();
        for (i, c) in countries.iter().enumerate() {
            by_code.insert(c.alpha2.clone(), i);
            by_code.insert(c.alpha3.clone(), i);
            if let Some(g) = c.geobel {
                by_code.insert(g.to_string(), i);
            }
        }
        CountryIndex { countries, by_code }
    })
}

/// Every country, in code-list order.
pub fn countries() -> &'static [Country] {
    &country_index().countries
}

/// Looks a country up by ISO alpha-2, ISO alpha-3 (any case) or GEOBEL code.
pub fn country(code: &str) -> Option<&'static Country> {
    let index = country_index();
    let code = code.trim();
    index
        .by_code
        .get(code)
        .or_else(|| index.by_code.get(&code.to_ascii_uppercase()))
        .map(|&i| &index.countries[i])
}

/// What a country cell accepts, for error messages.
pub const COUNTRY_FORMS: &str = "an ISO 3166-1 alpha-2 or alpha-3 code (BE, BEL), a known GEOBEL code (150), XA (stateless) or XU (unknown); see `kluis codelist show countries`";

/// An employer type ("inrichtende macht").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmployerType {
    pub code: u8,
    pub label: String,
    pub group: EmployerGroup,
    pub public: bool,
}

/// Every employer type.
pub fn employer_types() -> &'static [EmployerType] {
    static TYPES: OnceLock<Vec<EmployerType>> = OnceLock::new();
    TYPES.get_or_init(|| {
        let list = list("employer_types");
        let [label, group, public] = ["label", "employer_group", "public"].map(|c| list.column(c));
        list.rows
            .iter()
            .map(|row| EmployerType {
                code: row[0].parse().expect("employer_types.csv: bad code"),
                label: row[label].clone(),
                group: EmployerGroup::from_code(&row[group]).expect("employer_types.csv: group"),
                public: row[public] == "true",
            })
            .collect()
    })
}

/// The employer type with this code.
pub fn employer_type(code: u8) -> Option<&'static EmployerType> {
    employer_types().iter().find(|t| t.code == code)
}

/// An employment status (statuut).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statuut {
    pub code: u8,
    pub label: String,
    /// Exists only at public employers (civil servants).
    pub public_only: bool,
}

/// Every employment status.
pub fn statuten() -> &'static [Statuut] {
    static ALL: OnceLock<Vec<Statuut>> = OnceLock::new();
    ALL.get_or_init(|| {
        let list = list("statuut");
        let [label, public_only] = ["label", "public_only"].map(|c| list.column(c));
        list.rows
            .iter()
            .map(|row| Statuut {
                code: row[0].parse().expect("statuut.csv: bad code"),
                label: row[label].clone(),
                public_only: row[public_only] == "true",
            })
            .collect()
    })
}

/// The employment status with this code.
pub fn statuut(code: u8) -> Option<&'static Statuut> {
    statuten().iter().find(|s| s.code == code)
}

/// The low/medium/high band of an ISCED 2011 level (0-8, 9 unknown).
pub fn education_band(isced_level: u8) -> Option<EducationBand> {
    let list = list("isced_levels");
    let band = list.column("band");
    list.row(&isced_level.to_string())
        .map(|row| EducationBand::from_code(&row[band]).expect("isced_levels.csv: bad band"))
}

/// Whether `code` is an ISCED-F 2013 broad field (two digits, 99 unknown).
pub fn is_study_field(code: &str) -> bool {
    list("iscedf_fields").row(code).is_some()
}

/// Whether `code` is a region of residence.
pub fn is_region(code: &str) -> bool {
    list("regions").row(code).is_some()
}

/// Age-class schemes: five-year and ten-year classes over the working ages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeClasses {
    FiveYear,
    TenYear,
}

impl AgeClasses {
    fn list(self) -> &'static CodeList {
        list(match self {
            AgeClasses::FiveYear => "age_classes_5",
            AgeClasses::TenYear => "age_classes_10",
        })
    }

    /// The class holding `age`, or None outside 18-64.
    pub fn class_of(self, age: i32) -> Option<&'static str> {
        let list = self.list();
        let [min, max] = ["min_age", "max_age"].map(|c| list.column(c));
        list.rows.iter().find_map(|row| {
            let lo: i32 = row[min].parse().ok()?;
            let hi: i32 = row[max].parse().ok()?;
            (lo..=hi).contains(&age).then_some(row[0].as_str())
        })
    }
}

/// A NACE-BEL 2008 division.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaceDivision {
    pub code: String,
    pub label: String,
    pub section: char,
}

/// Every NACE division.
pub fn nace_divisions() -> &'static [NaceDivision] {
    static ALL: OnceLock<Vec<NaceDivision>> = OnceLock::new();
    ALL.get_or_init(|| {
        let list = list("nace_divisions");
        let [label, section] = ["label", "section"].map(|c| list.column(c));
        list.rows
            .iter()
            .map(|row| NaceDivision {
                code: row[0].clone(),
                label: row[label].clone(),
                section: row[section]
                    .chars()
                    .next()
                    .expect("nace_divisions.csv: section"),
            })
            .collect()
    })
}

/// Why a NACE-BEL code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NaceError {
    #[error("a NACE-BEL 2008 code has 5 digits (for example 84110), this has {0} characters")]
    Length(usize),
    #[error("a NACE-BEL 2008 code has digits only")]
    NonDigit,
    #[error("{0} is not a NACE-BEL 2008 division (see `kluis codelist show nace_divisions`)")]
    UnknownDivision(String),
}

/// Validates a 5-digit NACE-BEL code against its division and returns that division.
pub fn nace_division(code: &str) -> Result<&'static NaceDivision, NaceError> {
    if code.len() != 5 {
        return Err(NaceError::Length(code.chars().count()));
    }
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NaceError::NonDigit);
    }
    let division = &code[..2];
    nace_divisions()
        .iter()
        .find(|d| d.code == division)
        .ok_or_else(|| NaceError::UnknownDivision(division.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_list_parses_with_unique_codes_and_a_note() {
        for list in all() {
            assert!(!list.rows.is_empty(), "{} is empty", list.name);
            assert!(!list.note.is_empty(), "{} has no source note", list.name);
            let mut seen = HashSet::new();
            for row in &list.rows {
                assert_eq!(row.len(), list.columns.len(), "{}: ragged row", list.name);
                assert!(
                    seen.insert(&row[0]),
                    "{}: duplicate code {}",
                    list.name,
                    row[0]
                );
            }
        }
    }

    #[test]
    fn every_iso_country_maps_to_exactly_one_class_and_group() {
        let classes: HashSet<u8> = list("nationality_classes")
            .codes()
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(classes, (1..=30).collect());
        // 249 ISO 3166-1 entries + Kosovo + stateless + unknown.
        assert_eq!(countries().len(), 252);
        let mut alpha3 = HashSet::new();
        for c in countries() {
            assert!(
                classes.contains(&c.nationality_class),
                "{}: class",
                c.alpha2
            );
            assert!(alpha3.insert(&c.alpha3), "{}: duplicate alpha-3", c.alpha2);
            assert_eq!(c.alpha2.len(), 2);
            assert_eq!(c.alpha3.len(), 3);
            // Each lookup form finds the one entry.
            assert_eq!(country(&c.alpha2), Some(c));
            assert_eq!(country(&c.alpha3.to_lowercase()), Some(c));
            if let Some(g) = c.geobel {
                assert_eq!(country(&g.to_string()), Some(c));
            }
        }
        // Every class is used by some country.
        let used: HashSet<u8> = countries().iter().map(|c| c.nationality_class).collect();
        assert_eq!(used, classes);
    }

    #[test]
    fn known_countries_sit_where_domain_md_puts_them() {
        let be = country("150").unwrap();
        assert!(be.is_belgian());
        assert_eq!(
            (be.nationality_class, be.origin_group),
            (1, OriginGroup::Be)
        );
        let ma = country("MAR").unwrap();
        assert_eq!(
            (ma.nationality_class, ma.origin_group),
            (19, OriginGroup::Maghreb)
        );
        assert_eq!(ma.statbel_group, StatbelGroup::NonEu27);
        let gb = country("GB").unwrap();
        assert_eq!(gb.origin_group, OriginGroup::Eu14);
        assert_eq!(gb.statbel_group, StatbelGroup::Neighbouring);
        assert_eq!(country("PL").unwrap().origin_group, OriginGroup::Eu13);
        assert_eq!(
            country("PL").unwrap().statbel_group,
            StatbelGroup::OtherEu27
        );
        assert_eq!(country("TR").unwrap().origin_group, OriginGroup::Candidate);
        assert_eq!(country("AF").unwrap().nationality_class, 25);
        assert_eq!(
            country("AF").unwrap().origin_group,
            OriginGroup::NearMiddleEast
        );
        assert_eq!(country("CD").unwrap().geobel, Some(306));
        assert_eq!(
            country("US").unwrap().origin_group,
            OriginGroup::NorthAmerica
        );
        assert_eq!(
            country("BR").unwrap().origin_group,
            OriginGroup::CentralSouthAmerica
        );
        assert_eq!(country("711").unwrap().alpha2, UNKNOWN_COUNTRY);
        assert_eq!(
            country(STATELESS).unwrap().origin_group,
            OriginGroup::Unknown
        );
        assert_eq!(country(STATELESS).unwrap().nationality_class, 30);
        assert!(country("QQ").is_none());
    }

    #[test]
    fn employer_types_statuut_education_and_ages() {
        assert_eq!(employer_type(11).unwrap().group, EmployerGroup::Federal);
        assert_eq!(
            employer_type(24).unwrap().group,
            EmployerGroup::NonFederalPublic
        );
        assert_eq!(employer_type(30).unwrap().group, EmployerGroup::Private);
        assert!(!employer_type(30).unwrap().public);
        assert!(employer_type(19).is_none());
        assert!(statuut(3).unwrap().public_only);
        assert!(!statuut(1).unwrap().public_only);
        assert_eq!(education_band(2), Some(EducationBand::Low));
        assert_eq!(education_band(4), Some(EducationBand::Medium));
        assert_eq!(education_band(8), Some(EducationBand::High));
        assert_eq!(education_band(10), None);
        assert!(is_study_field("04") && !is_study_field("4"));
        assert!(is_region("04000") && !is_region("05000"));
        assert_eq!(AgeClasses::FiveYear.class_of(18), Some("18-24"));
        assert_eq!(AgeClasses::FiveYear.class_of(64), Some("60-64"));
        assert_eq!(AgeClasses::FiveYear.class_of(65), None);
        assert_eq!(AgeClasses::TenYear.class_of(34), Some("25-34"));
        for age in 18..=64 {
            assert!(AgeClasses::FiveYear.class_of(age).is_some());
            assert!(AgeClasses::TenYear.class_of(age).is_some());
        }
    }

    #[test]
    fn nace_codes_are_validated_against_their_division() {
        let d = nace_division("84110").unwrap();
        assert_eq!((d.code.as_str(), d.section), ("84", 'O'));
        assert_eq!(nace_division("85201").unwrap().section, 'P');
        assert_eq!(
            nace_division("04100"),
            Err(NaceError::UnknownDivision("04".into()))
        );
        assert_eq!(nace_division("8411"), Err(NaceError::Length(4)));
        assert_eq!(nace_division("84a10"), Err(NaceError::NonDigit));
        let sections: HashSet<char> = nace_divisions().iter().map(|d| d.section).collect();
        let listed: HashSet<char> = list("nace_sections")
            .codes()
            .map(|c| c.chars().next().unwrap())
            .collect();
        assert_eq!(
            sections, listed,
            "every section has divisions and vice versa"
        );
    }
}
