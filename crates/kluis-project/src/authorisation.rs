//! Authorisations as code: the TOML format, its parser and its checker.
//!
//! Parsing goes section by section over `toml`'s spanned document, so one mistake does not hide
//! the next: every problem found is reported, each with its line and what would be accepted.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use chrono::NaiveDate;
use kluis_model::EmployerGroup;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::variables;

/// The top-level fields of an authorisation file, in the order the format documents them.
pub const FIELDS: &[&str] = &[
    "id",
    "date",
    "title",
    "provider",
    "recipient",
    "project",
    "retention",
    "population",
    "strata",
    "variables",
    "disclosure",
    "roles",
];

/// An authorisation (a deliberation) in machine-readable form. See `authorisations/23-224.toml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Authorisation {
    /// The deliberation's number, e.g. `23/224`.
    pub id: String,
    /// The date of the deliberation.
    pub date: NaiveDate,
    pub title: String,
    pub provider: Provider,
    pub recipient: Recipient,
    pub project: ProjectInfo,
    pub retention: Retention,
    pub population: Population,
    pub strata: Vec<Stratum>,
    /// The variables granted, in catalogue order (the extract's column order).
    pub variables: Vec<Variable>,
    pub disclosure: Disclosure,
    pub roles: Roles,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub name: String,
    /// The data source the authorisation draws on (the warehouse).
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    pub name: String,
    /// Institutions the recipient works with under the same authorisation.
    #[serde(default)]
    pub partners: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectInfo {
    pub name: String,
    pub purpose: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retention {
    /// The retention date the authorisation itself sets.
    pub until: NaiveDate,
    /// Where the authorisation sets it (paragraph).
    pub reference: String,
    /// Later decisions extending it, in order.
    pub extensions: Vec<Extension>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Extension {
    /// The new retention date.
    pub until: NaiveDate,
    /// The date of the extension decision.
    pub date: NaiveDate,
    /// The decision's reference.
    pub reference: String,
}

impl Retention {
    /// The retention date in force: the last extension's, or the original.
    pub fn effective(&self) -> NaiveDate {
        self.extensions.last().map_or(self.until, |e| e.until)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Population {
    pub first_year: i32,
    pub last_year: i32,
    pub min_age: u8,
    pub max_age: u8,
    /// The employment statuses (statuut codes) included.
    pub statuut: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stratum {
    pub name: String,
    pub employer_groups: Vec<EmployerGroup>,
    /// Persons to sample for phase 1.
    pub sample_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variable {
    /// The extract's column name.
    pub name: String,
    /// How it is coded; see [`crate::variables::catalogue`].
    pub coding: String,
}

/// The disclosure rule set outputs are checked against: a named set and optional overrides of
/// its parameters, both interpreted by `kluis-sdc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disclosure {
    pub rules: String,
    #[serde(default)]
    pub overrides: toml::Table,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Roles {
    pub steward: Vec<String>,
    pub researcher: Vec<String>,
    pub reviewer: Vec<String>,
}

/// What a person may do in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The provider's data steward: registers, extracts, reviews runs, destroys.
    Steward,
    /// Develops on the sample and submits jobs for the full population.
    Researcher,
    /// Reviews outputs and releases them (never their own).
    Reviewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Steward, Role::Researcher, Role::Reviewer];

    pub fn name(self) -> &'static str {
        match self {
            Role::Steward => "steward",
            Role::Researcher => "researcher",
            Role::Reviewer => "reviewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Roles {
    pub fn names(&self, role: Role) -> &[String] {
        match role {
            Role::Steward => &self.steward,
            Role::Researcher => &self.researcher,
            Role::Reviewer => &self.reviewer,
        }
    }

    /// The roles this authorisation gives `actor`.
    pub fn of(&self, actor: &str) -> Vec<Role> {
        Role::ALL
            .into_iter()
            .filter(|&role| self.names(role).iter().any(|n| n == actor))
            .collect()
    }
}

impl Authorisation {
    /// The project id: the authorisation id with `/` replaced by `-` (`23/224` → `23-224`).
    pub fn project_id(&self) -> String {
        project_id(&self.id)
    }

    /// The granted coding of a variable, if it is granted.
    pub fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables.iter().find(|v| v.name == name)
    }

    /// Reads and checks a file; see [`Authorisation::parse`].
    pub fn load(path: &Path) -> Result<Self, CheckError> {
        let text = std::fs::read_to_string(path).map_err(|e| CheckError {
            file: path.display().to_string(),
            problems: vec![Problem {
                line: 0,
                field: String::new(),
                message: e.to_string(),
            }],
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks an authorisation. `file` names it in messages.
    pub fn parse(text: &str, file: &str) -> Result<Self, CheckError> {
        let mut checker = Checker {
            text,
            problems: Vec::new(),
        };
        let parsed = checker.authorisation();
        match parsed {
            Some(authorisation) if checker.problems.is_empty() => Ok(authorisation),
            _ => {
                let mut problems = checker.problems;
                problems.sort_by_key(|p| p.line);
                Err(CheckError {
                    file: file.to_owned(),
                    problems,
                })
            }
        }
    }
}

/// The project id of an authorisation id.
pub fn project_id(authorisation_id: &str) -> String {
    authorisation_id.replace('/', "-")
}

/// One mistake in an authorisation file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based; 0 when the file could not be read.
    pub line: usize,
    /// Dotted path of the field, e.g. `strata[1].employer_groups`.
    pub field: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

/// Every mistake found in an authorisation file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CheckError {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "{}: {count} problem{}",
            self.file,
            if count == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {}:{}: ", self.file, p.line)?;
            if !p.field.is_empty() {
                write!(f, "{}: ", p.field)?;
            }
            f.write_str(&p.message)?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    until: Spanned<toml::value::Datetime>,
    reference: String,
    #[serde(default)]
    extensions: Vec<RawExtension>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtension {
    until: Spanned<toml::value::Datetime>,
    date: Spanned<toml::value::Datetime>,
    reference: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPopulation {
    first_year: Spanned<i64>,
    last_year: Spanned<i64>,
    min_age: Spanned<i64>,
    max_age: Spanned<i64>,
    statuut: Spanned<Vec<Spanned<i64>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStratum {
    name: Spanned<String>,
    employer_groups: Spanned<Vec<Spanned<String>>>,
    sample_size: Spanned<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoles {
    steward: Spanned<Vec<Spanned<String>>>,
    researcher: Spanned<Vec<Spanned<String>>>,
    reviewer: Spanned<Vec<Spanned<String>>>,
}

type Value<'t> = Spanned<DeValue<'t>>;

struct Checker<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl<'t> Checker<'t> {
    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn problem(
        &mut self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let line = self.line(&span);
        self.problems.push(Problem {
            line,
            field: field.into(),
            message: message.into(),
        });
    }

    fn de<T: DeserializeOwned>(&mut self, value: &Value<'t>, field: &str) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                let span = error.span().unwrap_or(value.span());
                // serde names Rust types; say what to write instead.
                let message = error
                    .message()
                    .replace("expected i64", "expected a whole number");
                self.problem(span, field, message);
                None
            }
        }
    }

    fn date(&mut self, value: &Spanned<toml::value::Datetime>, field: &str) -> Option<NaiveDate> {
        let datetime = value.get_ref();
        let date = match (datetime.date, datetime.time, datetime.offset) {
            (Some(d), None, None) => {
                NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
            }
            _ => None,
        };
        if date.is_none() {
            self.problem(
                value.span(),
                field,
                format!("`{datetime}` is not a date; write a date without time, like 2024-12-31"),
            );
        }
        date
    }

    fn int<T: TryFrom<i64>>(
        &mut self,
        value: &Spanned<i64>,
        field: &str,
        accepted: &str,
    ) -> Option<T> {
        let parsed = T::try_from(*value.get_ref()).ok();
        if parsed.is_none() {
            self.problem(
                value.span(),
                field,
                format!("{} is out of range; {accepted}", value.get_ref()),
            );
        }
        parsed
    }

    fn authorisation(&mut self) -> Option<Authorisation> {
        let doc = match DeTable::parse(self.text) {
            Ok(doc) => doc,
            Err(error) => {
                let span = error.span().unwrap_or(0..0);
                self.problem(span, "", format!("not valid TOML: {}", error.message()));
                return None;
            }
        };
        let table = doc.get_ref();
        for (key, _) in table.iter() {
            if !FIELDS.contains(&key.get_ref().as_ref()) {
                self.problem(
                    key.span(),
                    key.get_ref().to_string(),
                    format!(
                        "unknown field; the fields of an authorisation are {}",
                        FIELDS.join(", ")
                    ),
                );
            }
        }
        let get = |name: &str| {
            table
                .iter()
                .find(|(k, _)| k.get_ref() == name)
                .map(|(_, v)| v)
        };
        let required = |checker: &mut Self, name: &str, what: &str| {
            let value = get(name);
            if value.is_none() {
                checker.problem(
                    0..0,
                    name,
                    format!("missing: the authorisation needs {what}"),
                );
            }
            value
        };

        let id = required(self, "id", "`id = \"23/224\"`").and_then(|v| self.id(v));
        let date = required(self, "date", "the deliberation's `date = 2023-11-07`")
            .and_then(|v| self.de::<Spanned<toml::value::Datetime>>(v, "date"))
            .and_then(|v| self.date(&v, "date"));
        let title =
            required(self, "title", "a `title`").and_then(|v| self.de::<String>(v, "title"));
        let provider = required(self, "provider", "a [provider] table with name and source")
            .and_then(|v| self.de::<Provider>(v, "provider"));
        let recipient = required(
            self,
            "recipient",
            "a [recipient] table with name and partners",
        )
        .and_then(|v| self.de::<Recipient>(v, "recipient"));
        let project = required(self, "project", "a [project] table with name and purpose")
            .and_then(|v| self.de::<ProjectInfo>(v, "project"));
        let retention = required(
            self,
            "retention",
            "a [retention] table with until and reference",
        )
        .and_then(|v| self.retention(v, date));
        let population =
            required(self, "population", "a [population] table").and_then(|v| self.population(v));
        let strata =
            required(self, "strata", "at least one [[strata]] table").and_then(|v| self.strata(v));
        let variables = required(
            self,
            "variables",
            "a [variables] table (variable = \"coding\")",
        )
        .and_then(|v| self.variables(v));
        let disclosure = required(
            self,
            "disclosure",
            "a [disclosure] table naming the rule set",
        )
        .and_then(|v| self.disclosure(v));
        let roles = required(
            self,
            "roles",
            "a [roles] table with steward, researcher and reviewer",
        )
        .and_then(|v| self.roles(v));

        Some(Authorisation {
            id: id?,
            date: date?,
            title: title?,
            provider: provider?,
            recipient: recipient?,
            project: project?,
            retention: retention?,
            population: population?,
            strata: strata?,
            variables: variables?,
            disclosure: disclosure?,
            roles: roles?,
        })
    }

    fn id(&mut self, value: &Value<'t>) -> Option<String> {
        let id: Spanned<String> = self.de(value, "id")?;
        let text = id.get_ref();
        let valid = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
            && !text.starts_with(['/', '.', '-'])
            && !text.ends_with('/')
            && !text.contains("..");
        if !valid {
            self.problem(
                id.span(),
                "id",
                format!(
                    "`{text}` cannot name a project; use letters, digits, `/`, `-`, `_` and `.`, like \"23/224\""
                ),
            );
            return None;
        }
        Some(id.into_inner())
    }

    fn retention(&mut self, value: &Value<'t>, issued: Option<NaiveDate>) -> Option<Retention> {
        let raw: RawRetention = self.de(value, "retention")?;
        let until = self.date(&raw.until, "retention.until");
        if let (Some(until), Some(issued)) = (until, issued)
            && until < issued
        {
            self.problem(
                    raw.until.span(),
                    "retention.until",
                    format!(
                        "the retention date {until} is before the authorisation's date {issued}; it must be on or after it"
                    ),
                );
        }
        let mut extensions = Vec::new();
        let mut previous = until;
        for (i, ext) in raw.extensions.iter().enumerate() {
            let field = format!("retention.extensions[{}]", i + 1);
            let ext_until = self.date(&ext.until, &format!("{field}.until"));
            let ext_date = self.date(&ext.date, &format!("{field}.date"));
            if let (Some(d), Some(issued)) = (ext_date, issued)
                && d < issued
            {
                self.problem(
                        ext.date.span(),
                        format!("{field}.date"),
                        format!("the extension decision of {d} predates the authorisation ({issued}); it must be on or after it"),
                    );
            }
            if let (Some(new), Some(old)) = (ext_until, previous)
                && new <= old
            {
                self.problem(
                    ext.until.span(),
                    format!("{field}.until"),
                    format!(
                        "an extension must move the retention date later than {old}, not to {new}"
                    ),
                );
            }
            previous = ext_until.or(previous);
            if let (Some(until), Some(date)) = (ext_until, ext_date) {
                extensions.push(Extension {
                    until,
                    date,
                    reference: ext.reference.clone(),
                });
            }
        }
        if extensions.len() != raw.extensions.len() {
            return None;
        }
        Some(Retention {
            until: until?,
            reference: raw.reference,
            extensions,
        })
    }

    fn population(&mut self, value: &Value<'t>) -> Option<Population> {
        let raw: RawPopulation = self.de(value, "population")?;
        let years = "years run from 1900 to 2100";
        let first_year = self.int::<i32>(&raw.first_year, "population.first_year", years);
        let last_year = self.int::<i32>(&raw.last_year, "population.last_year", years);
        let mut years_ok = true;
        for (year, span, field) in [
            (first_year, raw.first_year.span(), "population.first_year"),
            (last_year, raw.last_year.span(), "population.last_year"),
        ] {
            if let Some(year) = year.filter(|y| !(1900..=2100).contains(y)) {
                self.problem(
                    span,
                    field,
                    format!("{year} is not a plausible year; {years}"),
                );
                years_ok = false;
            }
        }
        if let (Some(first), Some(last)) = (first_year, last_year)
            && first > last
        {
            self.problem(
                    raw.last_year.span(),
                    "population.last_year",
                    format!("the period ends ({last}) before it starts ({first}); last_year must be at least first_year"),
                );
            years_ok = false;
        }
        let ages = "ages run from 0 to 120";
        let min_age = self.int::<u8>(&raw.min_age, "population.min_age", ages);
        let max_age = self.int::<u8>(&raw.max_age, "population.max_age", ages);
        let mut ages_ok = true;
        for (age, span, field) in [
            (min_age, raw.min_age.span(), "population.min_age"),
            (max_age, raw.max_age.span(), "population.max_age"),
        ] {
            if let Some(age) = age.filter(|&a| a > 120) {
                self.problem(span, field, format!("{age} is not a plausible age; {ages}"));
                ages_ok = false;
            }
        }
        if let (Some(min), Some(max)) = (min_age, max_age)
            && min > max
        {
            self.problem(
                    raw.max_age.span(),
                    "population.max_age",
                    format!("the age range ends ({max}) below its start ({min}); max_age must be at least min_age"),
                );
            ages_ok = false;
        }
        let allowed = kluis_model::codelists::statuten()
            .iter()
            .map(|s| format!("{} ({})", s.code, s.label))
            .collect::<Vec<_>>()
            .join(", ");
        let mut statuut = Vec::new();
        if raw.statuut.get_ref().is_empty() {
            self.problem(
                raw.statuut.span(),
                "population.statuut",
                format!("is empty; list the employment statuses included: {allowed}"),
            );
        }
        for code in raw.statuut.get_ref() {
            let known = u8::try_from(*code.get_ref())
                .ok()
                .filter(|&c| kluis_model::codelists::statuut(c).is_some());
            match known {
                Some(c) => statuut.push(c),
                None => self.problem(
                    code.span(),
                    "population.statuut",
                    format!(
                        "{} is not an employment status; the statuses are {allowed}",
                        code.get_ref()
                    ),
                ),
            }
        }
        if !years_ok
            || !ages_ok
            || statuut.len() != raw.statuut.get_ref().len()
            || statuut.is_empty()
        {
            return None;
        }
        Some(Population {
            first_year: first_year?,
            last_year: last_year?,
            min_age: min_age?,
            max_age: max_age?,
            statuut,
        })
    }

    fn strata(&mut self, value: &Value<'t>) -> Option<Vec<Stratum>> {
        let Some(items) = value.get_ref().as_array() else {
            self.problem(
                value.span(),
                "strata",
                "must be an array of tables: write each stratum as [[strata]]",
            );
            return None;
        };
        let groups = EmployerGroup::ALL
            .iter()
            .map(|g| g.code())
            .collect::<Vec<_>>()
            .join(", ");
        let mut strata = Vec::new();
        let mut ok = true;
        // Which stratum claimed each employer group first, and where.
        let mut claimed: Vec<(EmployerGroup, String, usize)> = Vec::new();
        let mut names: Vec<(String, usize)> = Vec::new();
        if items.is_empty() {
            self.problem(
                value.span(),
                "strata",
                "is empty; an authorisation needs at least one stratum",
            );
            return None;
        }
        for (i, item) in items.iter().enumerate() {
            let field = format!("strata[{}]", i + 1);
            let Some(raw) = self.de::<RawStratum>(item, &field) else {
                ok = false;
                continue;
            };
            let name = raw.name.get_ref().trim().to_owned();
            let name_line = self.line(&raw.name.span());
            if name.is_empty() {
                self.problem(
                    raw.name.span(),
                    format!("{field}.name"),
                    "is empty; give the stratum a name",
                );
                ok = false;
            } else if let Some((_, line)) = names.iter().find(|(n, _)| *n == name) {
                self.problem(raw.name.span(), format!("{field}.name"), format!("`{name}` is already the name of the stratum on line {line}; stratum names must differ"));
                ok = false;
            }
            names.push((name.clone(), name_line));
            let mut employer_groups = Vec::new();
            if raw.employer_groups.get_ref().is_empty() {
                self.problem(
                    raw.employer_groups.span(),
                    format!("{field}.employer_groups"),
                    format!("is empty; list the employer groups of this stratum: {groups}"),
                );
                ok = false;
            }
            for code in raw.employer_groups.get_ref() {
                let Some(group) = EmployerGroup::from_code(code.get_ref()) else {
                    self.problem(
                        code.span(),
                        format!("{field}.employer_groups"),
                        format!(
                            "`{}` is not an employer group; the groups are {groups}",
                            code.get_ref()
                        ),
                    );
                    ok = false;
                    continue;
                };
                if let Some((_, other, line)) = claimed.iter().find(|(g, _, _)| *g == group) {
                    self.problem(
                        code.span(),
                        format!("{field}.employer_groups"),
                        format!("employer group {group} is already in stratum `{other}` (line {line}); strata must not overlap"),
                    );
                    ok = false;
                    continue;
                }
                claimed.push((group, name.clone(), self.line(&code.span())));
                employer_groups.push(group);
            }
            let sample_size = self.int::<u32>(
                &raw.sample_size,
                &format!("{field}.sample_size"),
                "a sample size is a whole number from 1",
            );
            if sample_size == Some(0) {
                self.problem(
                    raw.sample_size.span(),
                    format!("{field}.sample_size"),
                    "is 0; a stratum samples at least 1 person",
                );
                ok = false;
            }
            if let Some(sample_size) = sample_size {
                strata.push(Stratum {
                    name,
                    employer_groups,
                    sample_size,
                });
            } else {
                ok = false;
            }
        }
        ok.then_some(strata)
    }

    fn variables(&mut self, value: &Value<'t>) -> Option<Vec<Variable>> {
        let Some(table) = value.get_ref().as_table() else {
            self.problem(
                value.span(),
                "variables",
                "must be a table of `variable = \"coding\"` lines",
            );
            return None;
        };
        let names = variables::variable_names();
        let mut granted: Vec<Variable> = Vec::new();
        let mut ok = true;
        for (key, coding) in table.iter() {
            let name = key.get_ref().as_ref();
            let field = format!("variables.{name}");
            if !names.contains(&name) {
                self.problem(
                    key.span(),
                    field,
                    format!("unknown variable; the variables are {}", names.join(", ")),
                );
                ok = false;
                continue;
            }
            let codings = variables::codings_of(name)
                .iter()
                .map(|c| c.coding.as_str())
                .collect::<Vec<_>>();
            let Some(text) = coding.get_ref().as_str() else {
                self.problem(
                    coding.span(),
                    field,
                    format!(
                        "must be a coding as a string, one of {}",
                        codings.join(", ")
                    ),
                );
                ok = false;
                continue;
            };
            if variables::coding(name, text).is_none() {
                self.problem(
                    coding.span(),
                    field,
                    format!(
                        "`{text}` is not a coding of {name}; its codings are {}",
                        codings.join(", ")
                    ),
                );
                ok = false;
                continue;
            }
            granted.push(Variable {
                name: name.to_owned(),
                coding: text.to_owned(),
            });
        }
        if table.is_empty() {
            self.problem(
                value.span(),
                "variables",
                "is empty; an authorisation grants at least one variable",
            );
            ok = false;
        }
        granted.sort_by_key(|v| names.iter().position(|n| *n == v.name));
        ok.then_some(granted)
    }

    fn disclosure(&mut self, value: &Value<'t>) -> Option<Disclosure> {
        let disclosure: Disclosure = self.de(value, "disclosure")?;
        let valid = !disclosure.rules.is_empty()
            && disclosure
                .rules
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !valid {
            self.problem(
                value.span(),
                "disclosure.rules",
                format!("`{}` cannot name a rule set; use letters, digits, `-` and `_`, like \"default\"", disclosure.rules),
            );
            return None;
        }
        Some(disclosure)
    }

    fn roles(&mut self, value: &Value<'t>) -> Option<Roles> {
        let raw: RawRoles = self.de(value, "roles")?;
        let mut ok = true;
        let mut list = |checker: &mut Self, role: Role, names: &Spanned<Vec<Spanned<String>>>| {
            let field = format!("roles.{role}");
            if names.get_ref().is_empty() {
                checker.problem(
                    names.span(),
                    &field,
                    format!("is empty; name at least one {role}"),
                );
                ok = false;
            }
            let mut out: Vec<String> = Vec::new();
            for name in names.get_ref() {
                let text = name.get_ref();
                if text.trim().is_empty()
                    || text.trim() != text
                    || text.chars().any(char::is_control)
                {
                    checker.problem(name.span(), &field, format!("{text:?} is not a usable name; names have no surrounding spaces and are not empty"));
                    ok = false;
                } else if out.contains(text) {
                    checker.problem(name.span(), &field, format!("`{text}` is listed twice"));
                    ok = false;
                } else {
                    out.push(text.clone());
                }
            }
            out
        };
        let steward = list(self, Role::Steward, &raw.steward);
        let researcher = list(self, Role::Researcher, &raw.researcher);
        let reviewer = list(self, Role::Reviewer, &raw.reviewer);
        ok.then_some(Roles {
            steward,
            researcher,
            reviewer,
        })
    }
}

#[cfg(test)]
mod tests;
