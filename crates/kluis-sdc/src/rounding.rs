//! Rounding of published values.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::SdcError;

/// How published values are rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Published as is.
    None,
    /// To the nearest multiple of N (halves away from zero).
    Base(u64),
    /// OpenSAFELY: counts ≤ 7 redacted, the rest rounded to the nearest 5.
    OpenSafely,
    /// Midpoint of 6: 0 stays 0, 1–6 → 3, 7–12 → 9, 13–18 → 15, …
    Midpoint6,
}

impl Rounding {
    /// The published value of a true value; `None` when redacted.
    pub fn apply(self, value: f64) -> Option<f64> {
        match self {
            Rounding::None => Some(value),
            Rounding::Base(n) => {
                let n = n as f64;
                Some((value / n).round() * n)
            }
            Rounding::OpenSafely => (value > 7.0).then(|| (value / 5.0).round() * 5.0),
            Rounding::Midpoint6 => {
                let v = value.round();
                if v <= 0.0 {
                    Some(v)
                } else {
                    Some(((v - 1.0) / 6.0).floor() * 6.0 + 3.0)
                }
            }
        }
    }

    /// Whether the method only makes sense for counts.
    pub fn counts_only(self) -> bool {
        matches!(self, Rounding::OpenSafely | Rounding::Midpoint6)
    }
}

impl FromStr for Rounding {
    type Err = SdcError;

    fn from_str(s: &str) -> Result<Rounding, SdcError> {
        let bad = || {
            SdcError::Input(format!(
                "rounding `{s}` is not known; accepted: none, base:N (N a positive integer), opensafely, midpoint6"
            ))
        };
        match s {
            "none" => Ok(Rounding::None),
            "opensafely" => Ok(Rounding::OpenSafely),
            "midpoint6" => Ok(Rounding::Midpoint6),
            _ => {
                let n = s.strip_prefix("base:").ok_or_else(bad)?;
                match n.parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Rounding::Base(n)),
                    _ => Err(bad()),
                }
            }
        }
    }
}

impl fmt::Display for Rounding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rounding::None => f.write_str("none"),
            Rounding::Base(n) => write!(f, "base:{n}"),
            Rounding::OpenSafely => f.write_str("opensafely"),
            Rounding::Midpoint6 => f.write_str("midpoint6"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(r: &str, values: &[f64]) -> Vec<Option<f64>> {
        let r: Rounding = r.parse().unwrap();
        values.iter().map(|&v| r.apply(v)).collect()
    }

    #[test]
    fn none_publishes_as_is() {
        assert_eq!(
            map("none", &[0.0, 3.0, 7.5]),
            vec![Some(0.0), Some(3.0), Some(7.5)]
        );
    }

    #[test]
    fn base_rounds_to_nearest_multiple() {
        assert_eq!(
            map("base:5", &[0.0, 2.0, 2.5, 3.0, 7.0, 12.0, 13.0]),
            vec![
                Some(0.0),
                Some(0.0),
                Some(5.0),
                Some(5.0),
                Some(5.0),
                Some(10.0),
                Some(15.0)
            ]
        );
        assert_eq!(map("base:10", &[14.0, 15.0]), vec![Some(10.0), Some(20.0)]);
    }

    #[test]
    fn opensafely_redacts_up_to_seven_then_rounds_to_five() {
        assert_eq!(
            map("opensafely", &[0.0, 1.0, 7.0, 8.0, 12.0, 13.0, 100.0]),
            vec![
                None,
                None,
                None,
                Some(10.0),
                Some(10.0),
                Some(15.0),
                Some(100.0)
            ]
        );
    }

    #[test]
    fn midpoint6_maps_each_band_to_its_midpoint() {
        assert_eq!(
            map("midpoint6", &[0.0, 1.0, 6.0, 7.0, 12.0, 13.0, 18.0, 19.0]),
            vec![
                Some(0.0),
                Some(3.0),
                Some(3.0),
                Some(9.0),
                Some(9.0),
                Some(15.0),
                Some(15.0),
                Some(21.0)
            ]
        );
    }

    #[test]
    fn unknown_methods_name_what_is_accepted() {
        for bad in ["base:0", "base:x", "round", "base"] {
            let err = bad.parse::<Rounding>().unwrap_err().to_string();
            assert!(err.contains("accepted: none, base:N"), "{bad}: {err}");
        }
        assert_eq!("base:5".parse::<Rounding>().unwrap().to_string(), "base:5");
    }
}
