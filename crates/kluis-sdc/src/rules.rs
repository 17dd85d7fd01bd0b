//! Rule sets as data: TOML with a name and a version. The built-in `default` is a data file
//! embedded in the crate; a custom set names only what differs from it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::SdcError;

const DEFAULT_TOML: &str = include_str!("../rules/default.toml");

/// A complete disclosure rule set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    /// Its name, quoted in every report.
    pub name: String,
    /// Its version, quoted in every report.
    pub version: u32,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Minimum number of units.
    pub threshold: Threshold,
    /// (n, k) dominance.
    pub dominance: Dominance,
    /// p% rule.
    pub p_percent: PPercent,
    /// Zeros and 100% shares.
    pub class_disclosure: ClassDisclosure,
    /// Required width of a primary cell's feasible interval.
    pub protection: Protection,
    /// Secondary suppression settings.
    pub secondary: Secondary,
}

/// Minimum number of distinct units with a non-null measure behind a cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Fail when fewer units than this.
    pub min_units: u64,
}

/// (n, k) dominance on absolute per-unit totals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dominance {
    /// Whether the rule applies.
    pub enabled: bool,
    /// Number of largest contributors (1 or 2).
    pub n: u8,
    /// Fail when their share is at least this.
    pub k: f64,
}

/// The p% rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PPercent {
    /// Whether the rule applies.
    pub enabled: bool,
    /// Fail when (total − largest − second) / largest is below this.
    pub p: f64,
}

/// Class disclosure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassDisclosure {
    /// Flag empty cells of non-empty groups.
    pub zeros: bool,
    /// Flag cells holding every unit of their parent group.
    pub full_share: bool,
}

/// Required protection of a primary cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protection {
    /// Fraction of the cell's absolute additive value.
    pub relative: f64,
    /// Absolute minimum width.
    pub absolute: f64,
}

/// Secondary suppression settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secondary {
    /// Time budget of the optimising search, in seconds.
    pub time_limit_secs: f64,
}

impl Protection {
    /// The interval width a primary cell with this additive value needs.
    pub fn required_width(&self, additive_value: f64) -> f64 {
        (self.relative * additive_value.abs()).max(self.absolute)
    }
}

impl RuleSet {
    /// The built-in `default` rule set.
    pub fn default_set() -> RuleSet {
        RuleSet::from_toml_str(DEFAULT_TOML).expect("the embedded default rule set is valid")
    }

    /// A built-in rule set by name (`default`).
    pub fn builtin(name: &str) -> Option<RuleSet> {
        (name == "default").then(RuleSet::default_set)
    }

    /// Parses a rule set. Fields it leaves out take the built-in default's values; `name` and
    /// `version` are required.
    pub fn from_toml_str(text: &str) -> Result<RuleSet, SdcError> {
        let custom: toml::Table =
            toml::from_str(text).map_err(|e| SdcError::Rules(e.to_string()))?;
        RuleSet::from_toml_table(custom)
    }

    /// Like [`RuleSet::from_toml_str`] for an already parsed TOML table (an inline table in an
    /// authorisation, for example).
    pub fn from_toml_table(custom: toml::Table) -> Result<RuleSet, SdcError> {
        for required in ["name", "version"] {
            if !custom.contains_key(required) {
                return Err(SdcError::Rules(format!(
                    "a rule set needs a `{required}` (every other field defaults to the built-in `default` set)"
                )));
            }
        }
        let mut merged: toml::Table = toml::from_str(DEFAULT_TOML).expect("valid default");
        merge(&mut merged, custom);
        let rules: RuleSet = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| SdcError::Rules(e.to_string()))?;
        rules.validate()?;
        Ok(rules)
    }

    /// `default` (or another built-in name), or a TOML file.
    pub fn load(name_or_path: &str) -> Result<RuleSet, SdcError> {
        if let Some(rules) = RuleSet::builtin(name_or_path) {
            return Ok(rules);
        }
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path).map_err(|e| {
            SdcError::Rules(format!(
                "`{name_or_path}` is neither a built-in rule set (accepted: default) nor a readable TOML file: {e}"
            ))
        })?;
        RuleSet::from_toml_str(&text)
            .map_err(|e| SdcError::Rules(format!("{}: {}", path.display(), e.message())))
    }

    fn validate(&self) -> Result<(), SdcError> {
        let bad = |field: &str, value: String, accepted: &str| {
            Err(SdcError::Rules(format!(
                "rule set `{}`: {field} = {value} is out of range; accepted: {accepted}",
                self.name
            )))
        };
        if self.threshold.min_units == 0 {
            return bad("threshold.min_units", "0".into(), "an integer ≥ 1");
        }
        if !(1..=2).contains(&self.dominance.n) {
            return bad("dominance.n", self.dominance.n.to_string(), "1 or 2");
        }
        if !(self.dominance.k > 0.0 && self.dominance.k <= 1.0) {
            return bad(
                "dominance.k",
                self.dominance.k.to_string(),
                "a share in (0, 1]",
            );
        }
        if !(self.p_percent.p > 0.0 && self.p_percent.p.is_finite()) {
            return bad(
                "p_percent.p",
                self.p_percent.p.to_string(),
                "a positive fraction, e.g. 0.10",
            );
        }
        if !(self.protection.relative >= 0.0 && self.protection.absolute > 0.0) {
            return bad(
                "protection",
                format!(
                    "relative {} absolute {}",
                    self.protection.relative, self.protection.absolute
                ),
                "relative ≥ 0 and absolute > 0",
            );
        }
        if !(self.secondary.time_limit_secs > 0.0) {
            return bad(
                "secondary.time_limit_secs",
                self.secondary.time_limit_secs.to_string(),
                "a positive number of seconds",
            );
        }
        Ok(())
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_has_the_issue_parameters() {
        let r = RuleSet::default_set();
        assert_eq!(r.name, "default");
        assert_eq!(r.threshold.min_units, 10);
        assert_eq!((r.dominance.n, r.dominance.k), (2, 0.90));
        assert_eq!(r.p_percent.p, 0.10);
        assert!(r.class_disclosure.zeros && r.class_disclosure.full_share);
    }

    #[test]
    fn custom_set_overrides_only_what_it_names() {
        let r =
            RuleSet::from_toml_str("name = \"five\"\nversion = 2\n[threshold]\nmin_units = 5\n")
                .unwrap();
        assert_eq!(
            (r.name.as_str(), r.version, r.threshold.min_units),
            ("five", 2, 5)
        );
        assert_eq!(r.dominance.k, 0.90);
    }

    #[test]
    fn custom_set_needs_a_name_and_rejects_unknown_fields() {
        assert!(
            RuleSet::from_toml_str("version = 1")
                .unwrap_err()
                .to_string()
                .contains("name")
        );
        let err = RuleSet::from_toml_str("name = \"x\"\nversion = 1\n[threshold]\nmin = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("min"), "{err}");
        let err = RuleSet::from_toml_str("name = \"x\"\nversion = 1\n[dominance]\nk = 1.5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("dominance.k = 1.5"), "{err}");
    }

    #[test]
    fn load_names_what_is_accepted() {
        let err = RuleSet::load("/nonexistent/strict.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("accepted: default"), "{err}");
    }
}
