//! The calibration report: every target against what the generated population achieved, per
//! year where the target is per year, with its tolerance and a pass or fail.
//!
//! The stated tolerance is what full scale must meet. A smaller population also carries sampling
//! noise, so each check is widened by three standard errors (of a share: sqrt(p(1-p)/n); of a
//! count: sqrt(count)); the report lists this allowance beside the tolerance.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use kluis_model::{EmployerGroup, OriginGroup, StatbelOrigin};

use crate::config::{Calibration, Measure, TargetSpec, interpolate, year_points};
use crate::plan::Plan;
use crate::stats::{Stats, YearStats};

/// One target in one year.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub measure: String,
    pub label: String,
    pub source: String,
    pub year: Option<i32>,
    /// `count` (scaled with the population) or `share`.
    pub unit: &'static str,
    /// The target at this population's scale (None for a range).
    pub target: Option<f64>,
    pub range: Option<[f64; 2]>,
    /// The target at full scale (counts only).
    pub full_scale_target: Option<f64>,
    /// The year's target lies between given years.
    pub interpolated: bool,
    pub achieved: f64,
    /// Achieved minus target (relative for counts), or distance outside the range.
    pub difference: f64,
    pub tolerance: f64,
    pub sampling_allowance: f64,
    pub pass: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Flows {
    pub exits_retirement: u64,
    pub exits_emigration: u64,
    pub exits_inactivity: u64,
    pub naturalisations: BTreeMap<i32, u64>,
    /// The solved yearly level of exits other than retirement (before the age profile).
    pub other_exit_level: f64,
}

/// The whole report, as written to `calibration.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub calibration: String,
    pub calibration_sha256: String,
    pub seed: u64,
    pub persons: u64,
    pub person_years: u64,
    /// persons / the full-scale distinct persons target.
    pub scale: f64,
    pub note: String,
    pub checks: Vec<Check>,
    pub passed: usize,
    pub failed: usize,
    pub flows: Flows,
}

fn share(n: u64, d: u64) -> (f64, u64) {
    (
        if d == 0 {
            f64::NAN
        } else {
            n as f64 / d as f64
        },
        d,
    )
}

fn types_sum(counts: &[u64; 100], types: &[u8]) -> u64 {
    types.iter().map(|t| counts[usize::from(*t)]).sum()
}

fn region_index(code: &str) -> usize {
    kluis_model::codelists::get("regions")
        .expect("embedded")
        .codes()
        .position(|c| c == code)
        .expect("checked region")
}

/// A measure in one year: its value and, for shares, the count it is a share of.
fn evaluate(m: &Measure, y: &YearStats) -> (f64, u64) {
    match m {
        Measure::Employees => (y.employees as f64, 0),
        Measure::DistinctPersons => unreachable!("not per year"),
        Measure::OriginShare(g) => share(
            y.origin[OriginGroup::ALL.iter().position(|x| x == g).expect("group")],
            y.employees,
        ),
        Measure::StatbelOriginShare(s) => share(
            y.statbel[StatbelOrigin::ALL
                .iter()
                .position(|x| x == s)
                .expect("origin")],
            y.employees,
        ),
        Measure::RegionShare(regions) => share(
            regions.iter().map(|r| y.region[region_index(r)]).sum(),
            y.employees,
        ),
        Measure::ForeignBackgroundShare(r) => {
            let i = region_index(r);
            share(y.region_foreign[i], y.region[i])
        }
        Measure::EmployerGroupShare(g) => share(
            y.employer_group[EmployerGroup::ALL
                .iter()
                .position(|x| x == g)
                .expect("group")],
            y.employees,
        ),
        Measure::FederalBelgianOriginShare => share(y.federal_belgian_origin, y.federal),
        Measure::EmployerTypeCount(types) => (types_sum(&y.employer_type, types) as f64, 0),
        Measure::WomenShare(types) => share(
            types_sum(&y.employer_type_women, types),
            types_sum(&y.employer_type, types),
        ),
        Measure::CivilServantShare(types) => share(
            types_sum(&y.employer_type_civil_servants, types),
            types_sum(&y.employer_type, types),
        ),
        Measure::NaceCount(codes) => {
            let n = y
                .nace
                .iter()
                .filter(|(code, _)| codes.iter().any(|c| code.starts_with(c.as_bytes())))
                .map(|(_, n)| *n)
                .sum::<u64>();
            (n as f64, 0)
        }
    }
}

fn check(
    spec: &TargetSpec,
    m: &Measure,
    year: Option<i32>,
    target: Option<f64>,
    interpolated: bool,
    achieved: (f64, u64),
    scale: f64,
) -> Check {
    let count = m.is_count();
    let (value, denominator) = achieved;
    let (target_scaled, full_scale_target) = match target {
        Some(t) if count => (Some(t * scale), Some(t)),
        other => (other, None),
    };
    let (difference, allowance) = match (target_scaled, spec.range) {
        (Some(t), _) if count => ((value - t) / t, 3.0 / t.max(1.0).sqrt()),
        (Some(t), _) => (
            value - t,
            3.0 * (t * (1.0 - t) / denominator.max(1) as f64).sqrt(),
        ),
        (None, Some([lo, hi])) => {
            let p = value.clamp(lo, hi);
            let outside = if value < lo {
                value - lo
            } else if value > hi {
                value - hi
            } else {
                0.0
            };
            (
                outside,
                3.0 * (p * (1.0 - p) / denominator.max(1) as f64).sqrt(),
            )
        }
        (None, None) => unreachable!("checked: values, value or range"),
    };
    Check {
        measure: spec.measure.clone(),
        label: spec.label.clone().unwrap_or_else(|| spec.measure.clone()),
        source: spec.source.clone(),
        year,
        unit: if count { "count" } else { "share" },
        target: target_scaled,
        range: spec.range,
        full_scale_target,
        interpolated,
        achieved: value,
        difference,
        tolerance: spec.tolerance,
        sampling_allowance: allowance,
        pass: value.is_finite() && difference.abs() <= spec.tolerance + allowance,
    }
}

impl Report {
    pub fn new(c: &Calibration, plan: &Plan, stats: &Stats, seed: u64) -> Report {
        let mut checks = Vec::new();
        for spec in &c.targets {
            let m = Measure::parse(&spec.measure).expect("checked");
            if let Some(v) = spec.value {
                checks.push(check(
                    spec,
                    &m,
                    None,
                    Some(v),
                    false,
                    (stats.persons as f64, 0),
                    plan.scale,
                ));
                continue;
            }
            if spec.range.is_some() {
                for year in c.years() {
                    let y = stats.year(year).expect("panel year");
                    checks.push(check(
                        spec,
                        &m,
                        Some(year),
                        None,
                        false,
                        evaluate(&m, y),
                        plan.scale,
                    ));
                }
                continue;
            }
            let points = year_points(spec.values.as_ref().expect("checked"));
            let years: Vec<(i32, bool)> = if spec.interpolate {
                let lo = (*points.keys().next().expect("values")).max(c.first_year);
                let hi = (*points.keys().last().expect("values")).min(c.last_year);
                (lo..=hi).map(|y| (y, !points.contains_key(&y))).collect()
            } else {
                points
                    .keys()
                    .filter(|y| c.years().contains(y))
                    .map(|y| (*y, false))
                    .collect()
            };
            for (year, interpolated) in years {
                let y = stats.year(year).expect("panel year");
                let target = interpolate(&points, year);
                checks.push(check(
                    spec,
                    &m,
                    Some(year),
                    Some(target),
                    interpolated,
                    evaluate(&m, y),
                    plan.scale,
                ));
            }
        }
        let passed = checks.iter().filter(|c| c.pass).count();
        Report {
            calibration: c.name.clone(),
            calibration_sha256: c.sha256.clone(),
            seed,
            persons: stats.persons,
            person_years: stats.years.iter().map(|y| y.employees).sum(),
            scale: plan.scale,
            note: "tolerance: relative for counts, absolute for shares; a check passes when |difference| <= tolerance + sampling_allowance (three standard errors of this population's sampling noise, which vanishes at full scale)".into(),
            failed: checks.len() - passed,
            passed,
            checks,
            flows: Flows {
                exits_retirement: stats.exits[0],
                exits_emigration: stats.exits[1],
                exits_inactivity: stats.exits[2],
                naturalisations: stats
                    .naturalisations
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (stats.first_year + i as i32, *n))
                    .collect(),
                other_exit_level: plan.other_exit_level,
            },
        }
    }

    /// The report as a table for people: every check.
    pub fn table(&self) -> String {
        self.render(|_| true)
    }

    /// The headline: the checks of the last year and of the whole period, and every check
    /// outside its tolerance, whatever its year.
    pub fn summary(&self) -> String {
        let last = self.checks.iter().filter_map(|c| c.year).max();
        self.render(|c| !c.pass || c.year.is_none() || c.year == last)
    }

    fn render(&self, shown: impl Fn(&Check) -> bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "calibration {} (sha256 {}), seed {}, {} persons, {} person-years, scale {:.4}",
            self.calibration,
            &self.calibration_sha256[..12],
            self.seed,
            self.persons,
            self.person_years,
            self.scale
        );
        let _ = writeln!(
            out,
            "{:<44} {:>5} {:>15} {:>12} {:>9} {:>9}  result",
            "target", "year", "target", "achieved", "diff", "tol"
        );
        let fmt = |unit: &str, v: f64| {
            if unit == "count" {
                format!("{v:.0}")
            } else {
                format!("{:.2}%", 100.0 * v)
            }
        };
        for c in self.checks.iter().filter(|c| shown(c)) {
            let target = match (c.target, c.range) {
                (Some(t), _) => format!(
                    "{}{}",
                    fmt(c.unit, t),
                    if c.interpolated { "*" } else { "" }
                ),
                (None, Some([lo, hi])) if lo == hi => fmt(c.unit, lo),
                (None, Some([lo, hi])) => format!("{}-{}", fmt(c.unit, lo), fmt(c.unit, hi)),
                (None, None) => String::new(),
            };
            let (diff, tol) = if c.unit == "count" {
                (
                    format!("{:+.2}%", 100.0 * c.difference),
                    format!("{:.1}%", 100.0 * c.tolerance),
                )
            } else {
                (
                    format!("{:+.2}pp", 100.0 * c.difference),
                    format!("{:.1}pp", 100.0 * c.tolerance),
                )
            };
            let label: String = c.label.chars().take(44).collect();
            let _ = writeln!(
                out,
                "{:<44} {:>5} {:>15} {:>12} {:>9} {:>9}  {}",
                label,
                c.year.map(|y| y.to_string()).unwrap_or_default(),
                target,
                fmt(c.unit, c.achieved),
                diff,
                tol,
                if c.pass { "ok" } else { "FAIL" }
            );
        }
        let _ = writeln!(
            out,
            "{} of {} checks pass (* interpolated target; tolerances are for full scale, widened by the sampling allowance in calibration.json below it)",
            self.passed,
            self.passed + self.failed
        );
        out
    }
}
