//! The calibration file: targets the report checks and the generator parameters that reach them.
//! The default is embedded (`calibration/default.toml`); `--calibration FILE` replaces it.

use std::collections::BTreeMap;

use kluis_model::{EducationBand, EmployerGroup, OriginGroup, StatbelOrigin};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The embedded default calibration.
pub const DEFAULT: &str = include_str!("../calibration/default.toml");

/// Why a calibration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: not a valid calibration file: {reason}")]
    Parse { file: String, reason: String },
    #[error("{file}: {reason}")]
    Invalid { file: String, reason: String },
}

/// A target as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub measure: String,
    #[serde(default)]
    pub label: Option<String>,
    pub source: String,
    #[serde(default)]
    pub values: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    pub interpolate: bool,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub range: Option<[f64; 2]>,
    pub tolerance: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ages {
    pub first_year: BTreeMap<String, f64>,
    pub entry: BTreeMap<String, f64>,
    pub retirement: BTreeMap<String, f64>,
    pub other_exit: BTreeMap<String, f64>,
    pub emigration_share: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mobility {
    pub employer_change: f64,
    pub region_move: f64,
    pub statuut_change: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    pub arrival_age: BTreeMap<String, f64>,
    pub naturalisation_wait: i32,
    pub adult_parents_unknown: f64,
    pub two_foreign_parents: f64,
    pub belgian_at_birth_born_in_belgium: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Belgian {
    pub born_in_belgium: f64,
    pub born_abroad_countries: BTreeMap<String, f64>,
    pub undetermined_missing: BTreeMap<String, f64>,
    pub abroad: f64,
    pub regions: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unknown {
    pub stateless: f64,
    pub regions: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignOrigin {
    pub countries: BTreeMap<String, f64>,
    pub belgian_at_birth: f64,
    pub born_in_belgium: f64,
    pub naturalisation: f64,
    pub recent_arrival: f64,
    pub abroad: f64,
    pub regions: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Federal {
    pub belgian_origin_share: f64,
    pub reference_year: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedEmployer {
    pub name: String,
    pub nace: String,
    pub weight: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratedEmployers {
    /// Number of employers at full scale.
    pub count: u64,
    /// Weight of all of them together, beside the named employers' weights.
    pub weight: f64,
    pub nace: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmployerTypeSpec {
    pub code: u8,
    pub share: f64,
    pub women: f64,
    pub statuut: BTreeMap<String, f64>,
    #[serde(default)]
    pub employers: Vec<NamedEmployer>,
    #[serde(default)]
    pub generated: Option<GeneratedEmployers>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Education {
    pub levels: BTreeMap<String, f64>,
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    pub first_year: i32,
    pub last_year: i32,
    #[serde(rename = "target")]
    pub targets: Vec<TargetSpec>,
    pub ages: Ages,
    pub mobility: Mobility,
    pub migration: Migration,
    pub belgian: Belgian,
    pub unknown: Unknown,
    pub origins: BTreeMap<String, ForeignOrigin>,
    pub federal: Federal,
    #[serde(rename = "employer_type")]
    pub employer_types: Vec<EmployerTypeSpec>,
    pub education: BTreeMap<String, Education>,
    pub study_fields: BTreeMap<String, BTreeMap<String, f64>>,
    /// Which file this came from (`default` for the embedded one); not part of the TOML.
    #[serde(skip)]
    pub name: String,
    /// SHA-256 of the file's text.
    #[serde(skip)]
    pub sha256: String,
}

/// What a target measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    Employees,
    DistinctPersons,
    OriginShare(OriginGroup),
    StatbelOriginShare(StatbelOrigin),
    RegionShare(Vec<String>),
    ForeignBackgroundShare(String),
    EmployerGroupShare(EmployerGroup),
    FederalBelgianOriginShare,
    EmployerTypeCount(Vec<u8>),
    WomenShare(Vec<u8>),
    CivilServantShare(Vec<u8>),
    /// NACE codes or 2-digit divisions.
    NaceCount(Vec<String>),
}

impl Measure {
    pub fn parse(text: &str) -> Result<Measure, String> {
        let (name, arg) = match text.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (text, None),
        };
        let list = |arg: Option<&str>| -> Result<Vec<String>, String> {
            let arg = arg.ok_or_else(|| format!("{name} needs an argument after ':'"))?;
            Ok(arg.split('+').map(str::to_owned).collect())
        };
        let types = |arg: Option<&str>| -> Result<Vec<u8>, String> {
            list(arg)?
                .iter()
                .map(|t| {
                    t.parse::<u8>()
                        .ok()
                        .filter(|c| kluis_model::codelists::employer_type(*c).is_some())
                        .ok_or_else(|| format!("{t} is not an employer type code"))
                })
                .collect()
        };
        fn one<'a>(name: &str, arg: Option<&'a str>) -> Result<&'a str, String> {
            arg.ok_or_else(|| format!("{name} needs an argument after ':'"))
        }
        Ok(match name {
            "employees" => Measure::Employees,
            "distinct_persons" => Measure::DistinctPersons,
            "federal_belgian_origin_share" => Measure::FederalBelgianOriginShare,
            "origin_share" => {
                Measure::OriginShare(OriginGroup::from_code(one(name, arg)?).ok_or_else(|| {
                    format!("{} is not an origin group", one(name, arg).unwrap_or(""))
                })?)
            }
            "statbel_origin_share" => {
                Measure::StatbelOriginShare(StatbelOrigin::from_code(one(name, arg)?).ok_or_else(
                    || format!("{} is not a Statbel origin", one(name, arg).unwrap_or("")),
                )?)
            }
            "employer_group_share" => {
                Measure::EmployerGroupShare(EmployerGroup::from_code(one(name, arg)?).ok_or_else(
                    || format!("{} is not an employer group", one(name, arg).unwrap_or("")),
                )?)
            }
            "region_share" => {
                let regions = list(arg)?;
                if let Some(bad) = regions
                    .iter()
                    .find(|r| !kluis_model::codelists::is_region(r))
                {
                    return Err(format!("{bad} is not a region code"));
                }
                Measure::RegionShare(regions)
            }
            "foreign_background_share" => {
                let region = one(name, arg)?;
                if !kluis_model::codelists::is_region(region) {
                    return Err(format!("{region} is not a region code"));
                }
                Measure::ForeignBackgroundShare(region.to_owned())
            }
            "employer_type_count" => Measure::EmployerTypeCount(types(arg)?),
            "women_share" => Measure::WomenShare(types(arg)?),
            "civil_servant_share" => Measure::CivilServantShare(types(arg)?),
            "nace_count" => {
                let codes = list(arg)?;
                if let Some(bad) = codes.iter().find(|c| {
                    !(c.len() == 2 || c.len() == 5) || !c.bytes().all(|b| b.is_ascii_digit())
                }) {
                    return Err(format!(
                        "{bad} is neither a 5-digit NACE-BEL code nor a 2-digit division"
                    ));
                }
                Measure::NaceCount(codes)
            }
            other => return Err(format!("unknown measure {other}")),
        })
    }

    /// Counts scale with the population; shares do not.
    pub fn is_count(&self) -> bool {
        matches!(
            self,
            Measure::Employees
                | Measure::DistinctPersons
                | Measure::EmployerTypeCount(_)
                | Measure::NaceCount(_)
        )
    }
}

/// An age class key: `"18-24"` or a single age `"60"`.
pub fn age_range(key: &str) -> Result<(i32, i32), String> {
    let (lo, hi) = key.split_once('-').unwrap_or((key, key));
    let lo: i32 = lo
        .trim()
        .parse()
        .map_err(|_| format!("bad age class {key}"))?;
    let hi: i32 = hi
        .trim()
        .parse()
        .map_err(|_| format!("bad age class {key}"))?;
    if lo > hi {
        return Err(format!("bad age class {key}"));
    }
    Ok((lo, hi))
}

impl Calibration {
    /// The embedded default.
    pub fn default_calibration() -> Calibration {
        Calibration::parse("default", DEFAULT).expect("the embedded calibration is valid")
    }

    /// Parses and checks a calibration file's text.
    pub fn parse(name: &str, text: &str) -> Result<Calibration, ConfigError> {
        let mut c: Calibration = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: name.to_owned(),
            reason: e.to_string(),
        })?;
        c.name = name.to_owned();
        c.sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        c.check().map_err(|reason| ConfigError::Invalid {
            file: name.to_owned(),
            reason,
        })?;
        Ok(c)
    }

    pub fn years(&self) -> std::ops::RangeInclusive<i32> {
        self.first_year..=self.last_year
    }

    fn check(&self) -> Result<(), String> {
        if self.first_year > self.last_year || self.last_year - self.first_year > 60 {
            return Err(format!(
                "years {}-{} are not a sensible range",
                self.first_year, self.last_year
            ));
        }
        for t in &self.targets {
            let m = Measure::parse(&t.measure).map_err(|e| format!("target {}: {e}", t.measure))?;
            let forms = [t.values.is_some(), t.value.is_some(), t.range.is_some()];
            if forms.iter().filter(|f| **f).count() != 1 {
                return Err(format!(
                    "target {}: give exactly one of values, value, range",
                    t.measure
                ));
            }
            if let Some(values) = &t.values {
                for year in values.keys() {
                    year.parse::<i32>()
                        .map_err(|_| format!("target {}: {year} is not a year", t.measure))?;
                }
            }
            if t.value.is_some() && m != Measure::DistinctPersons {
                return Err(format!(
                    "target {}: only distinct_persons takes a single value",
                    t.measure
                ));
            }
            if t.tolerance < 0.0 {
                return Err(format!("target {}: negative tolerance", t.measure));
            }
        }
        for m in ["employees", "distinct_persons"] {
            if !self.targets.iter().any(|t| t.measure == m) {
                return Err(format!("the generator needs a target {m}"));
            }
        }
        for g in OriginGroup::ALL {
            let key = format!("origin_share:{}", g.code());
            let t = self
                .targets
                .iter()
                .find(|t| t.measure == key)
                .ok_or_else(|| format!("the generator needs a target {key}"))?;
            let values = t
                .values
                .as_ref()
                .ok_or_else(|| format!("target {key} needs per-year values"))?;
            for y in [self.first_year, self.last_year] {
                if !values.contains_key(&y.to_string()) {
                    return Err(format!("target {key} needs values for {y}"));
                }
            }
            if g.is_foreign() && !self.origins.contains_key(g.code()) {
                return Err(format!("no [origins.{}] section", g.code()));
            }
        }
        for y in [self.first_year, self.last_year] {
            let sum: f64 = OriginGroup::ALL
                .iter()
                .map(|g| self.target_values(&format!("origin_share:{}", g.code()))[&y.to_string()])
                .sum();
            if (sum - 1.0).abs() > 1e-6 {
                return Err(format!("origin shares of {y} sum to {sum}, not 1"));
            }
        }
        for (key, o) in &self.origins {
            let group = OriginGroup::from_code(key)
                .filter(|g| g.is_foreign())
                .ok_or_else(|| format!("[origins.{key}]: not a foreign origin group"))?;
            for c in o.countries.keys() {
                let country = kluis_model::country(c)
                    .ok_or_else(|| format!("[origins.{key}]: unknown country {c}"))?;
                if country.origin_group != group {
                    return Err(format!(
                        "[origins.{key}]: {c} belongs to origin group {}",
                        country.origin_group
                    ));
                }
            }
            check_regions(&format!("origins.{key}"), &o.regions)?;
            for p in [
                o.belgian_at_birth,
                o.born_in_belgium,
                o.naturalisation,
                o.recent_arrival,
                o.abroad,
            ] {
                check_probability(&format!("origins.{key}"), p)?;
            }
        }
        check_regions("belgian", &self.belgian.regions)?;
        check_regions("unknown", &self.unknown.regions)?;
        for c in self.belgian.born_abroad_countries.keys() {
            kluis_model::country(c).ok_or_else(|| format!("[belgian]: unknown country {c}"))?;
        }
        for key in self.belgian.undetermined_missing.keys() {
            if !["father", "mother", "both"].contains(&key.as_str()) {
                return Err(format!(
                    "[belgian] undetermined_missing: {key} is not father, mother or both"
                ));
            }
        }
        for (name, classes) in [
            ("first_year", &self.ages.first_year),
            ("entry", &self.ages.entry),
            ("other_exit", &self.ages.other_exit),
        ] {
            for key in classes.keys() {
                let (lo, hi) = age_range(key).map_err(|e| format!("[ages] {name}: {e}"))?;
                if lo < 18 || hi > 64 {
                    return Err(format!(
                        "[ages] {name}: {key} is outside the working ages 18-64"
                    ));
                }
            }
        }
        for key in self.ages.retirement.keys() {
            age_range(key).map_err(|e| format!("[ages] retirement: {e}"))?;
        }
        for key in self.migration.arrival_age.keys() {
            age_range(key).map_err(|e| format!("[migration] arrival_age: {e}"))?;
        }
        let mut share = 0.0;
        for t in &self.employer_types {
            let known = kluis_model::codelists::employer_type(t.code)
                .ok_or_else(|| format!("employer type {}: not in employer_types.csv", t.code))?;
            share += t.share;
            for (code, _) in &t.statuut {
                let s = code
                    .parse::<u8>()
                    .ok()
                    .and_then(kluis_model::codelists::statuut)
                    .ok_or_else(|| format!("employer type {}: {code} is not a statuut", t.code))?;
                if s.public_only && !known.public {
                    return Err(format!(
                        "employer type {}: statuut {code} exists only at public employers",
                        t.code
                    ));
                }
            }
            if t.employers.is_empty() && t.generated.is_none() {
                return Err(format!("employer type {}: no employers", t.code));
            }
            let naces = t
                .employers
                .iter()
                .map(|e| &e.nace)
                .chain(t.generated.iter().flat_map(|g| g.nace.keys()));
            for nace in naces {
                kluis_model::codelists::nace_division(nace)
                    .map_err(|e| format!("employer type {}: NACE {nace}: {e}", t.code))?;
            }
        }
        if (share - 1.0).abs() > 1e-6 {
            return Err(format!("employer type shares sum to {share}, not 1"));
        }
        for group in [
            EmployerGroup::Federal,
            EmployerGroup::NonFederalPublic,
            EmployerGroup::Private,
        ] {
            if !self.education.contains_key(group.code()) {
                return Err(format!("no [education.{}] section", group.code()));
            }
        }
        for band in EducationBand::ALL {
            let fields = self
                .study_fields
                .get(band.code())
                .ok_or_else(|| format!("[study_fields] has no {}", band.code()))?;
            for f in fields.keys() {
                if !kluis_model::codelists::is_study_field(f) {
                    return Err(format!(
                        "[study_fields] {}: {f} is not an ISCED-F field",
                        band.code()
                    ));
                }
            }
        }
        check_probability("federal", self.federal.belgian_origin_share)?;
        Ok(())
    }

    /// The per-year values of a target, by year text.
    pub fn target_values(&self, measure: &str) -> &BTreeMap<String, f64> {
        self.targets
            .iter()
            .find(|t| t.measure == measure)
            .and_then(|t| t.values.as_ref())
            .unwrap_or_else(|| panic!("checked: target {measure} has values"))
    }

    /// The full-scale distinct persons target.
    pub fn distinct_persons(&self) -> f64 {
        self.targets
            .iter()
            .find(|t| t.measure == "distinct_persons")
            .and_then(|t| t.value)
            .expect("checked: distinct_persons has a value")
    }
}

fn check_regions(section: &str, regions: &BTreeMap<String, f64>) -> Result<(), String> {
    for r in regions.keys() {
        if !kluis_model::codelists::is_region(r) || r == "ABROAD" {
            return Err(format!(
                "[{section}] regions: {r} is not a region of residence (abroad has its own parameter)"
            ));
        }
    }
    Ok(())
}

fn check_probability(section: &str, p: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(format!("[{section}]: {p} is not a probability"))
    }
}

/// Linear interpolation through per-year points; outside them the nearest point holds.
pub fn interpolate(points: &BTreeMap<i32, f64>, year: i32) -> f64 {
    let mut below = None;
    let mut above = None;
    for (&y, &v) in points {
        if y <= year {
            below = Some((y, v));
        }
        if y >= year && above.is_none() {
            above = Some((y, v));
        }
    }
    match (below, above) {
        (Some((y0, v0)), Some((y1, v1))) if y1 != y0 => {
            v0 + (v1 - v0) * f64::from(year - y0) / f64::from(y1 - y0)
        }
        (Some((_, v)), _) | (None, Some((_, v))) => v,
        (None, None) => f64::NAN,
    }
}

/// Per-year points of a map keyed by year text.
pub fn year_points(values: &BTreeMap<String, f64>) -> BTreeMap<i32, f64> {
    values
        .iter()
        .map(|(y, v)| (y.parse().expect("checked year"), *v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_calibration_is_valid() {
        let c = Calibration::default_calibration();
        assert_eq!((c.first_year, c.last_year), (2010, 2021));
        assert_eq!(c.distinct_persons(), 5_000_000.0);
        assert_eq!(c.sha256.len(), 64);
    }

    #[test]
    fn a_broken_file_names_its_problem() {
        let broken = DEFAULT.replace(
            "measure = \"origin_share:EU13\"",
            "measure = \"origin_share:EU99\"",
        );
        let e = Calibration::parse("mine.toml", &broken)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mine.toml") && e.contains("EU99"), "{e}");
        let shares = DEFAULT.replace(
            "values = { 2010 = 0.73, 2021 = 0.66 }",
            "values = { 2010 = 0.83, 2021 = 0.66 }",
        );
        let e = Calibration::parse("mine.toml", &shares)
            .unwrap_err()
            .to_string();
        assert!(e.contains("origin shares of 2010 sum to"), "{e}");
        let civil = DEFAULT.replace(
            "statuut = { 1 = 0.38, 2 = 0.60, 4 = 0.02 }",
            "statuut = { 1 = 0.38, 3 = 0.60, 4 = 0.02 }",
        );
        let e = Calibration::parse("mine.toml", &civil)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("statuut 3 exists only at public employers"),
            "{e}"
        );
    }

    #[test]
    fn interpolation_between_and_beyond_points() {
        let points = BTreeMap::from([(2010, 100.0), (2015, 150.0), (2021, 90.0)]);
        assert_eq!(interpolate(&points, 2010), 100.0);
        assert_eq!(interpolate(&points, 2012), 120.0);
        assert_eq!(interpolate(&points, 2018), 120.0);
        assert_eq!(interpolate(&points, 2005), 100.0);
        assert_eq!(interpolate(&points, 2030), 90.0);
    }

    #[test]
    fn measures_parse() {
        assert_eq!(
            Measure::parse("employer_type_count:13+15").unwrap(),
            Measure::EmployerTypeCount(vec![13, 15])
        );
        assert!(Measure::parse("employer_type_count:19").is_err());
        assert!(Measure::parse("nace_count:8422").is_err());
        assert_eq!(
            Measure::parse("region_share:ABROAD+UNKNOWN").unwrap(),
            Measure::RegionShare(vec!["ABROAD".into(), "UNKNOWN".into()])
        );
        assert!(Measure::parse("wage_share").is_err());
    }
}
