//! The Belgian social security number (INSZ / NISS): national register numbers and BIS numbers.
//!
//! Layout `YYMMDD SSS CC` (DOMAIN.md §6). `CC = 97 − (YYMMDDSSS mod 97)`; for people born in 2000
//! or later a `2` is put in front of the nine digits first, so the matching rule tells the century.
//! BIS numbers add 40 to the month when the sex was known at issue and 20 when it was not. A month
//! or day of `00` means unknown. The serial is odd for men and even for women (001–998).
//!
//! `Display` and `Debug` of [`Insz`] print the number itself: only provider-side code that must
//! handle INSZ numbers (the warehouse, `kluis insz check`) may format one.

use std::fmt;

/// A validated INSZ number, stored as its 11-digit value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Insz(u64);

/// National register (`rr`) or BIS number (`bis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InszKind {
    Rr,
    Bis,
}

impl InszKind {
    pub fn code(self) -> &'static str {
        match self {
            InszKind::Rr => "rr",
            InszKind::Bis => "bis",
        }
    }
}

/// Sex as far as the number encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    M,
    F,
}

impl Sex {
    pub fn code(self) -> &'static str {
        match self {
            Sex::M => "M",
            Sex::F => "F",
        }
    }

    pub fn from_code(code: &str) -> Option<Sex> {
        match code {
            "M" => Some(Sex::M),
            "F" => Some(Sex::F),
            _ => None,
        }
    }
}

/// A birth date whose month or day may be unknown (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartialDate {
    pub year: i32,
    /// 1–12, or 0 when unknown.
    pub month: u8,
    /// 1–31, or 0 when unknown.
    pub day: u8,
}

impl fmt::Display for PartialDate {
    /// `YYYY-MM-DD`, keeping `00` where the month or day is unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Whether the sex was known when the number was issued (BIS numbers only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BisSex {
    Known,
    Unknown,
}

/// Why a string is not a valid INSZ.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InszError {
    #[error("an INSZ has 11 digits, this has {0} (dots, dashes and spaces are ignored)")]
    Length(usize),
    #[error("an INSZ has digits only (and optional dots, dashes, spaces); found '{0}'")]
    NonDigit(char),
    #[error("bad date: month {0:02} is neither 00-12 (national register) nor 20-32 or 40-52 (BIS)")]
    Month(u8),
    #[error("bad date: day {day:02} does not exist in month {month:02} of {year}")]
    Day { year: i32, month: u8, day: u8 },
    #[error("bad serial: 000 and 999 are never issued")]
    Serial,
    #[error("checksum matches neither century (1900 rule nor 2000 rule)")]
    Checksum,
}

/// What a valid number encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InszInfo {
    pub insz: Insz,
    pub kind: InszKind,
    pub birth_date: PartialDate,
    pub sex: Option<Sex>,
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

fn check_digits(first_nine: u64, born_2000_or_later: bool) -> u64 {
    let base = if born_2000_or_later {
        2_000_000_000 + first_nine
    } else {
        first_nine
    };
    97 - base % 97
}

impl Insz {
    /// Parses and validates a number; dots, dashes and spaces are ignored.
    pub fn parse(text: &str) -> Result<InszInfo, InszError> {
        let mut value = 0u64;
        let mut digits = 0usize;
        for c in text.chars() {
            match c {
                '0'..='9' => {
                    digits += 1;
                    if digits <= 11 {
                        value = value * 10 + u64::from(c as u8 - b'0');
                    }
                }
                '.' | '-' | ' ' => {}
                other => return Err(InszError::NonDigit(other)),
            }
        }
        if digits != 11 {
            return Err(InszError::Length(digits));
        }
        Insz(value).info()
    }

    /// Validates an 11-digit value (as stored in the warehouse).
    pub fn from_u64(value: u64) -> Result<InszInfo, InszError> {
        if value >= 100_000_000_000 {
            return Err(InszError::Length(value.to_string().len()));
        }
        Insz(value).info()
    }

    /// The 11-digit value.
    pub fn value(self) -> u64 {
        self.0
    }

    /// The 11 ASCII digits, with leading zeros: the canonical form for hashing.
    pub fn digits(self) -> [u8; 11] {
        let mut out = [b'0'; 11];
        let mut v = self.0;
        for slot in out.iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out
    }

    fn info(self) -> Result<InszInfo, InszError> {
        let first_nine = self.0 / 100;
        let cc = self.0 % 100;
        let yy = (first_nine / 10_000_000) as i32;
        let mm = ((first_nine / 100_000) % 100) as u8;
        let dd = ((first_nine / 1_000) % 100) as u8;
        let serial = (first_nine % 1_000) as u16;

        let (kind, month, sex_known) = match mm {
            0..=12 => (InszKind::Rr, mm, true),
            20..=32 => (InszKind::Bis, mm - 20, false),
            40..=52 => (InszKind::Bis, mm - 40, true),
            _ => return Err(InszError::Month(mm)),
        };
        let year = if cc == check_digits(first_nine, true) {
            2000 + yy
        } else if cc == check_digits(first_nine, false) {
            1900 + yy
        } else {
            return Err(InszError::Checksum);
        };
        let max_day = if month == 0 {
            31
        } else {
            days_in_month(year, month)
        };
        if dd > max_day {
            return Err(InszError::Day {
                year,
                month,
                day: dd,
            });
        }
        if serial == 0 || serial == 999 {
            return Err(InszError::Serial);
        }
        let sex = sex_known.then_some(if serial % 2 == 1 { Sex::M } else { Sex::F });
        Ok(InszInfo {
            insz: self,
            kind,
            birth_date: PartialDate {
                year,
                month,
                day: dd,
            },
            sex,
        })
    }

    /// Builds the valid number for a birth date, a serial (1–998; odd = man, even = woman) and a
    /// kind. For a BIS number, `bis_sex` says whether the sex was known at issue.
    ///
    /// Panics when the inputs cannot form a number (year outside 1900–2099, month > 12, a day
    /// the month does not have, serial outside 1–998): callers generate these values themselves.
    pub fn generate(date: PartialDate, serial: u16, kind: InszKind, bis_sex: BisSex) -> Insz {
        assert!(
            (1900..=2099).contains(&date.year),
            "INSZ birth year outside 1900-2099"
        );
        assert!(date.month <= 12, "month > 12");
        let max_day = if date.month == 0 {
            31
        } else {
            days_in_month(date.year, date.month)
        };
        assert!(date.day <= max_day, "day does not exist");
        assert!((1..=998).contains(&serial), "serial outside 1-998");
        let month = match (kind, bis_sex) {
            (InszKind::Rr, _) => date.month,
            (InszKind::Bis, BisSex::Known) => date.month + 40,
            (InszKind::Bis, BisSex::Unknown) => date.month + 20,
        };
        let first_nine = u64::from((date.year % 100) as u16) * 10_000_000
            + u64::from(month) * 100_000
            + u64::from(date.day) * 1_000
            + u64::from(serial);
        Insz(first_nine * 100 + check_digits(first_nine, date.year >= 2000))
    }

    /// The serial for the `n`-th person (0-based, up to 498) of a sex born on one day.
    pub fn serial_for(sex: Sex, n: u16) -> u16 {
        assert!(n < 499, "at most 499 serials per sex and day");
        match sex {
            Sex::M => 2 * n + 1,
            Sex::F => 2 * n + 2,
        }
    }
}

/// A cell value fit for an error message: the value itself, unless it holds a valid INSZ number
/// anywhere (alone or inside other text, with or without separators), which must never reach a
/// message, a reject file or a log.
pub fn redact_if_insz(value: &str) -> &str {
    if holds_insz(value) {
        "<a valid INSZ number, not shown>"
    } else {
        value
    }
}

/// Whether `text` holds a valid INSZ: 11 consecutive digits, separators (`.`, `-`, space, as
/// [`Insz::parse`] allows) between them ignored, with a valid date, serial and check digits.
pub fn holds_insz(text: &str) -> bool {
    let mut run: Vec<u8> = Vec::new();
    let mut in_run = false;
    for c in text.chars().chain(std::iter::once('\0')) {
        match c {
            '0'..='9' => {
                run.push(c as u8 - b'0');
                in_run = true;
            }
            '.' | '-' | ' ' if in_run => {}
            _ => {
                if run.windows(11).any(|w| {
                    let value = w.iter().fold(0u64, |v, d| v * 10 + u64::from(*d));
                    Insz(value).info().is_ok()
                }) {
                    return true;
                }
                run.clear();
                in_run = false;
            }
        }
    }
    false
}

impl fmt::Display for Insz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:011}", self.0)
    }
}

impl fmt::Debug for Insz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Insz({:011})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_insz_is_found_alone_inside_text_and_with_separators() {
        for text in [
            "93051822361",
            "93.05.18-223.61",
            "born 93051822361 here",
            "x93051822361y",
            "193051822361",
        ] {
            assert!(holds_insz(text), "{text}");
            assert_eq!(redact_if_insz(text), "<a valid INSZ number, not shown>");
        }
        // Wrong check digits, too few digits, and ordinary codes stay visible.
        for text in [
            "93051822362",
            "9305182236",
            "02000",
            "84110",
            "2015-01-01",
            "BE",
        ] {
            assert!(!holds_insz(text), "{text}");
            assert_eq!(redact_if_insz(text), text);
        }
    }

    fn date(year: i32, month: u8, day: u8) -> PartialDate {
        PartialDate { year, month, day }
    }

    #[test]
    fn worked_example_from_domain_md() {
        let info = Insz::parse("93.05.18-223.61").unwrap();
        assert_eq!(info.kind, InszKind::Rr);
        assert_eq!(info.birth_date, date(1993, 5, 18));
        assert_eq!(info.sex, Some(Sex::M));
        assert_eq!(info.insz.to_string(), "93051822361");
    }

    #[test]
    fn the_2000_rule_gives_the_century() {
        let n = Insz::generate(date(2003, 2, 1), 2, InszKind::Rr, BisSex::Known);
        let info = Insz::parse(&n.to_string()).unwrap();
        assert_eq!(info.birth_date, date(2003, 2, 1));
        assert_eq!(info.sex, Some(Sex::F));
        // The same nine digits with the 1900 check digits belong to 1903.
        let old = Insz::generate(date(1903, 2, 1), 2, InszKind::Rr, BisSex::Known);
        assert_eq!(old.value() / 100, n.value() / 100);
        assert_ne!(old, n);
        assert_eq!(Insz::parse(&old.to_string()).unwrap().birth_date.year, 1903);
    }

    #[test]
    fn bis_numbers_and_unknown_dates() {
        let known = Insz::generate(date(1985, 7, 0), 17, InszKind::Bis, BisSex::Known);
        let info = Insz::parse(&known.to_string()).unwrap();
        assert_eq!((info.kind, info.sex), (InszKind::Bis, Some(Sex::M)));
        assert_eq!(info.birth_date.to_string(), "1985-07-00");
        let unknown = Insz::generate(date(1970, 0, 0), 18, InszKind::Bis, BisSex::Unknown);
        let info = Insz::parse(&unknown.to_string()).unwrap();
        assert_eq!((info.kind, info.sex), (InszKind::Bis, None));
        assert_eq!(info.birth_date.to_string(), "1970-00-00");
        assert_eq!(&unknown.to_string()[2..4], "20");
    }

    #[test]
    fn each_kind_of_error() {
        assert_eq!(Insz::parse("9305182236"), Err(InszError::Length(10)));
        assert_eq!(Insz::parse("930518223611"), Err(InszError::Length(12)));
        assert_eq!(Insz::parse("93051822X61"), Err(InszError::NonDigit('X')));
        assert_eq!(Insz::parse("93051822362"), Err(InszError::Checksum));
        // Month 13 with a checksum that would otherwise match.
        let first_nine = 931_318_223u64;
        let bad_month = first_nine * 100 + check_digits(first_nine, false);
        assert_eq!(Insz::from_u64(bad_month), Err(InszError::Month(13)));
        let feb30 = 930_230_223u64;
        let bad_day = feb30 * 100 + check_digits(feb30, false);
        assert!(matches!(
            Insz::from_u64(bad_day),
            Err(InszError::Day { day: 30, .. })
        ));
        let serial0 = 930_518_000u64;
        assert_eq!(
            Insz::from_u64(serial0 * 100 + check_digits(serial0, false)),
            Err(InszError::Serial)
        );
    }

    #[test]
    fn valid_numbers_are_redacted_from_messages() {
        assert_eq!(
            redact_if_insz("93.05.18-223.61"),
            "<a valid INSZ number, not shown>"
        );
        assert_eq!(redact_if_insz("93051822362"), "93051822362");
        assert_eq!(redact_if_insz("MA"), "MA");
    }

    #[test]
    fn leap_days() {
        assert!(
            Insz::parse(
                &Insz::generate(date(2000, 2, 29), 1, InszKind::Rr, BisSex::Known).to_string()
            )
            .is_ok()
        );
        let feb29_1900 = 1_000_229_001u64 % 1_000_000_000; // 00 02 29 001
        let n = feb29_1900 * 100 + check_digits(feb29_1900, false);
        assert!(matches!(
            Insz::from_u64(n),
            Err(InszError::Day { year: 1900, .. })
        ));
    }

    fn arb_date() -> impl Strategy<Value = PartialDate> {
        (1900i32..2100, 0u8..=12, 0u8..=31).prop_map(|(year, month, day)| {
            let max = if month == 0 {
                31
            } else {
                days_in_month(year, month)
            };
            PartialDate {
                year,
                month,
                day: day.min(max),
            }
        })
    }

    fn arb_kind() -> impl Strategy<Value = (InszKind, BisSex)> {
        prop_oneof![
            Just((InszKind::Rr, BisSex::Known)),
            Just((InszKind::Bis, BisSex::Known)),
            Just((InszKind::Bis, BisSex::Unknown)),
        ]
    }

    proptest! {
        #[test]
        fn every_generated_number_validates_and_round_trips(
            d in arb_date(), serial in 1u16..=998, (kind, bis_sex) in arb_kind()
        ) {
            let n = Insz::generate(d, serial, kind, bis_sex);
            let info = Insz::parse(&n.to_string()).unwrap();
            prop_assert_eq!(info.insz, n);
            prop_assert_eq!(info.kind, kind);
            prop_assert_eq!(info.birth_date, d);
            let expected_sex = match (kind, bis_sex) {
                (InszKind::Bis, BisSex::Unknown) => None,
                _ => Some(if serial % 2 == 1 { Sex::M } else { Sex::F }),
            };
            prop_assert_eq!(info.sex, expected_sex);
        }

        #[test]
        fn any_single_digit_change_is_caught(
            d in arb_date(), serial in 1u16..=998, (kind, bis_sex) in arb_kind(),
            position in 0usize..11, delta in 1u8..10
        ) {
            let n = Insz::generate(d, serial, kind, bis_sex);
            let mut digits = n.digits();
            digits[position] = b'0' + (digits[position] - b'0' + delta) % 10;
            let changed = std::str::from_utf8(&digits).unwrap();
            // Mod 97 catches every single-digit change, with one exception the two-century rule
            // brings: moving the year's units digit by 6 shifts the value by 6·10^7 ≡ ±68, exactly
            // the 2·10^9 ≡ 68 the 2000 rule adds, so the number validates with the other century.
            if let Ok(info) = Insz::parse(changed) {
                prop_assert_eq!(position, 1, "{} accepted", changed);
                prop_assert_ne!(info.birth_date.year / 100, d.year / 100);
            }
        }
    }
}
