//! Field checks: each parses one raw field into its stored form or says why not, naming what is
//! accepted. Code lists are turned into direct-index tables once, because ingest looks codes up
//! tens of millions of times.

use kluis_model::codelists::{self, COUNTRY_FORMS, EmployerType, Statuut};
use kluis_model::{Insz, InszError, InszInfo};

/// A problem with one field of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    /// The offending text ([`show`]); `None` for the INSZ column, which is never shown.
    pub value: Option<String>,
    pub reason: String,
}

/// Shows a raw value, cut short when long. A value that holds a valid INSZ, in whatever column
/// it turns up (a swapped column, a number pasted into the wrong field), is never shown.
pub fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if kluis_model::holds_insz(&text) {
        return kluis_model::redact_if_insz(&text).to_owned();
    }
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(40).collect::<String>())
    } else {
        text.into_owned()
    }
}

pub fn problem(field: &'static str, bytes: &[u8], reason: impl Into<String>) -> Problem {
    Problem {
        field,
        value: Some(show(bytes)),
        reason: reason.into(),
    }
}

/// An INSZ problem, worded without any part of the number.
fn insz_reason(e: &InszError) -> String {
    match e {
        InszError::Length(n) => format!(
            "not a valid INSZ: it has {n} digits, an INSZ has 11 (dots, dashes and spaces are ignored)"
        ),
        InszError::NonDigit(_) => {
            "not a valid INSZ: it holds a character other than digits, dots, dashes and spaces".into()
        }
        InszError::Month(_) => {
            "not a valid INSZ: the month part is neither 00-12 (national register) nor 20-32 or 40-52 (BIS)"
                .into()
        }
        InszError::Day { .. } => "not a valid INSZ: the day part does not exist in its month".into(),
        InszError::Serial => "not a valid INSZ: serial 000 and 999 are never issued".into(),
        InszError::Checksum => {
            "not a valid INSZ: the check digits match neither century (1900 or 2000 rule)".into()
        }
    }
}

pub fn insz(field: &'static str, bytes: &[u8]) -> Result<InszInfo, Problem> {
    let hidden = |reason: String| Problem {
        field,
        value: None,
        reason,
    };
    if bytes.is_empty() {
        return Err(hidden(
            "missing; every row needs its INSZ (11 digits)".into(),
        ));
    }
    // The usual form, 11 bare digits, read directly: this runs for every row.
    if let Ok(digits) = <&[u8; 11]>::try_from(bytes)
        && digits.iter().all(u8::is_ascii_digit)
    {
        let value = digits
            .iter()
            .fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
        return Insz::from_u64(value).map_err(|e| hidden(insz_reason(&e)));
    }
    let text =
        std::str::from_utf8(bytes).map_err(|_| hidden(insz_reason(&InszError::NonDigit('?'))))?;
    Insz::parse(text).map_err(|e| hidden(insz_reason(&e)))
}

pub fn required<'a>(field: &'static str, bytes: &'a [u8], what: &str) -> Result<&'a [u8], Problem> {
    if bytes.is_empty() {
        Err(Problem {
            field,
            value: Some(String::new()),
            reason: format!("missing; expected {what}"),
        })
    } else {
        Ok(bytes)
    }
}

pub fn date(field: &'static str, bytes: &[u8]) -> Result<i32, Problem> {
    crate::dates::parse_date(bytes).ok_or_else(|| {
        problem(
            field,
            bytes,
            "not a date; expected YYYY-MM-DD (a real calendar date)",
        )
    })
}

pub fn int(field: &'static str, bytes: &[u8], what: &str) -> Result<i64, Problem> {
    let bad = || problem(field, bytes, format!("not a whole number; expected {what}"));
    let (negative, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 18 {
        return Err(bad());
    }
    let mut v = 0i64;
    for &b in digits {
        if !b.is_ascii_digit() {
            return Err(bad());
        }
        v = v * 10 + i64::from(b - b'0');
    }
    Ok(if negative { -v } else { v })
}

/// Code lists as direct-index tables.
pub struct Lookups {
    /// ISO alpha-2 (upper case) → canonical alpha-2, indexed by the two letters.
    alpha2: Vec<Option<&'static str>>,
    regions: Vec<&'static str>,
    employer_types: [Option<&'static EmployerType>; 100],
    statuten: [Option<&'static Statuut>; 10],
    nace_divisions: [bool; 100],
    study_fields: Vec<&'static str>,
}

fn letter_index(bytes: &[u8]) -> Option<usize> {
    match bytes {
        [a @ b'A'..=b'Z', b @ b'A'..=b'Z'] => {
            Some(usize::from(a - b'A') * 26 + usize::from(b - b'A'))
        }
        _ => None,
    }
}

impl Lookups {
    pub fn new() -> Lookups {
        let mut alpha2 = vec![None; 26 * 26];
        for c in codelists::countries() {
            let i = letter_index(c.alpha2.as_bytes()).expect("alpha-2 codes are two capitals");
            alpha2[i] = Some(c.alpha2.as_str());
        }
        let mut employer_types = [None; 100];
        for t in codelists::employer_types() {
            employer_types[usize::from(t.code)] = Some(t);
        }
        let mut statuten = [None; 10];
        for s in codelists::statuten() {
            statuten[usize::from(s.code)] = Some(s);
        }
        let mut nace_divisions = [false; 100];
        for d in codelists::nace_divisions() {
            nace_divisions[d.code.parse::<usize>().expect("two-digit division")] = true;
        }
        let codes = |name: &str| -> Vec<&'static str> {
            codelists::get(name)
                .expect("embedded list")
                .codes()
                .collect()
        };
        Lookups {
            alpha2,
            regions: codes("regions"),
            employer_types,
            statuten,
            nace_divisions,
            study_fields: codes("iscedf_fields"),
        }
    }

    /// A country in any accepted form, as its alpha-2 code.
    pub fn country(&self, field: &'static str, bytes: &[u8]) -> Result<&'static str, Problem> {
        if let Some(code) = letter_index(bytes).and_then(|i| self.alpha2[i]) {
            return Ok(code);
        }
        std::str::from_utf8(bytes)
            .ok()
            .and_then(kluis_model::country)
            .map(|c| c.alpha2.as_str())
            .ok_or_else(|| {
                problem(
                    field,
                    bytes,
                    format!("not a known country; expected {COUNTRY_FORMS}"),
                )
            })
    }

    pub fn optional_country(
        &self,
        field: &'static str,
        bytes: &[u8],
    ) -> Result<Option<&'static str>, Problem> {
        if bytes.is_empty() {
            Ok(None)
        } else {
            self.country(field, bytes).map(Some)
        }
    }

    pub fn region(&self, field: &'static str, bytes: &[u8]) -> Result<&'static str, Problem> {
        self.regions
            .iter()
            .find(|r| r.as_bytes() == bytes)
            .copied()
            .ok_or_else(|| {
                problem(
                    field,
                    bytes,
                    format!(
                        "not a region code; expected one of {}",
                        self.regions.join(", ")
                    ),
                )
            })
    }

    pub fn employer_type(
        &self,
        field: &'static str,
        bytes: &[u8],
    ) -> Result<&'static EmployerType, Problem> {
        // Built only for a bad value: this runs for every person-year.
        let bad = || {
            let known: Vec<String> = self
                .employer_types
                .iter()
                .flatten()
                .map(|t| t.code.to_string())
                .collect();
            problem(
                field,
                bytes,
                format!(
                    "not an employer type; expected one of {} (see `kluis codelist show employer_types`)",
                    known.join(", ")
                ),
            )
        };
        match int(field, bytes, "an employer type code") {
            Ok(v) if (0..100).contains(&v) => self.employer_types[v as usize].ok_or_else(bad),
            _ => Err(bad()),
        }
    }

    pub fn statuut(&self, field: &'static str, bytes: &[u8]) -> Result<&'static Statuut, Problem> {
        let bad = || {
            let known: Vec<String> = self
                .statuten
                .iter()
                .flatten()
                .map(|s| s.code.to_string())
                .collect();
            problem(
                field,
                bytes,
                format!(
                    "not a statuut; expected one of {} (see `kluis codelist show statuut`)",
                    known.join(", ")
                ),
            )
        };
        match int(field, bytes, "a statuut code") {
            Ok(v) if (0..10).contains(&v) => self.statuten[v as usize].ok_or_else(bad),
            _ => Err(bad()),
        }
    }

    /// A 5-digit NACE-BEL code whose division exists.
    pub fn nace(&self, field: &'static str, bytes: &[u8]) -> Result<[u8; 5], Problem> {
        let code: [u8; 5] = match bytes.try_into() {
            Ok(code) if bytes.iter().all(u8::is_ascii_digit) => code,
            _ => {
                return Err(problem(
                    field,
                    bytes,
                    "not a NACE-BEL 2008 code; expected 5 digits, for example 84110",
                ));
            }
        };
        let division = usize::from(code[0] - b'0') * 10 + usize::from(code[1] - b'0');
        if self.nace_divisions[division] {
            Ok(code)
        } else {
            Err(problem(
                field,
                bytes,
                format!(
                    "{:02} is not a NACE-BEL 2008 division (see `kluis codelist show nace_divisions`)",
                    division
                ),
            ))
        }
    }

    pub fn study_field(&self, field: &'static str, bytes: &[u8]) -> Result<&'static str, Problem> {
        self.study_fields
            .iter()
            .find(|f| f.as_bytes() == bytes)
            .copied()
            .ok_or_else(|| {
                problem(
                    field,
                    bytes,
                    format!(
                        "not an ISCED-F 2013 broad field; expected one of {}",
                        self.study_fields.join(", ")
                    ),
                )
            })
    }
}
