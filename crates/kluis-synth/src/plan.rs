//! Everything derived from the calibration before any person is drawn: cohort sizes that make
//! the yearly employee counts come out right, the exit rate that gives the number of distinct
//! persons, each cohort's origin mix that makes the origin shares drift as targeted, the
//! employer-type probabilities by origin and sex, and the employers themselves.
//!
//! The population is a stock-flow model. Cohort 0 is everyone employed in the first year; cohort
//! k is everyone who enters employment in year first+k. After each year a person of age a leaves
//! with probability q(a) = r(a) + (1 - r(a)) * o * m(a): retirement r (certain after 64), or
//! another exit (emigration, inactivity) at a level o solved so that the cohorts together have
//! the targeted number of distinct persons. Origin does not change the exit rate, so a cohort
//! keeps its origin mix as it shrinks and each entry cohort's mix can be solved year by year.

use rand::RngExt;

use kluis_model::codelists::{self, Country};
use kluis_model::{EducationBand, EmployerGroup, OriginGroup};

use crate::config::{Calibration, age_range, interpolate, year_points};

/// Highest working age; everyone has left by 65.
pub const MAX_AGE: usize = 64;
pub const MIN_AGE: usize = 18;

/// Draws an index with probability proportional to its weight.
#[derive(Debug, Clone)]
pub struct Categorical {
    cumulative: Vec<f64>,
}

impl Categorical {
    pub fn new(weights: &[f64]) -> Result<Categorical, String> {
        let total: f64 = weights.iter().sum();
        if weights.is_empty()
            || !(total > 0.0)
            || weights.iter().any(|w| *w < 0.0 || !w.is_finite())
        {
            return Err(format!("weights {weights:?} cannot be drawn from"));
        }
        let mut sum = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                sum += w / total;
                sum
            })
            .collect();
        Ok(Categorical { cumulative })
    }

    pub fn sample(&self, rng: &mut impl rand::Rng) -> usize {
        let u: f64 = rng.random();
        self.cumulative
            .partition_point(|c| *c <= u)
            .min(self.cumulative.len() - 1)
    }

    /// The probability of index `i`.
    pub fn probability(&self, i: usize) -> f64 {
        self.cumulative[i] - if i == 0 { 0.0 } else { self.cumulative[i - 1] }
    }

    pub fn len(&self) -> usize {
        self.cumulative.len()
    }
}

/// Age weights 0..=MAX_AGE from age classes (uniform within a class).
fn age_weights(classes: &std::collections::BTreeMap<String, f64>) -> Vec<f64> {
    let mut w = vec![0.0; MAX_AGE + 1];
    for (key, weight) in classes {
        let (lo, hi) = age_range(key).expect("checked");
        for a in lo..=hi {
            w[a as usize] += weight / f64::from(hi - lo + 1);
        }
    }
    w
}

/// Values by age 0..=MAX_AGE from classes (the class's value for each age in it).
fn age_values(classes: &std::collections::BTreeMap<String, f64>, default: f64) -> Vec<f64> {
    let mut v = vec![default; MAX_AGE + 1];
    for (key, value) in classes {
        let (lo, hi) = age_range(key).expect("checked");
        for a in lo..=hi.min(MAX_AGE as i32) {
            v[a as usize] = *value;
        }
    }
    v
}

/// A categorical draw over string keys.
#[derive(Debug, Clone)]
pub struct Choice<T> {
    pub items: Vec<T>,
    pub dist: Categorical,
}

impl<T: Clone> Choice<T> {
    pub fn new(items: Vec<T>, weights: &[f64]) -> Result<Choice<T>, String> {
        Ok(Choice {
            items,
            dist: Categorical::new(weights)?,
        })
    }

    pub fn sample(&self, rng: &mut impl rand::Rng) -> T {
        self.items[self.dist.sample(rng)].clone()
    }
}

fn country(code: &str) -> &'static Country {
    kluis_model::country(code).expect("checked country")
}

fn countries(map: &std::collections::BTreeMap<String, f64>) -> Choice<&'static Country> {
    let (items, weights): (Vec<_>, Vec<_>) = map.iter().map(|(c, w)| (country(c), *w)).unzip();
    Choice::new(items, &weights).expect("checked weights")
}

/// Regions of residence (code-list order) as a draw.
fn regions(map: &std::collections::BTreeMap<String, f64>) -> Choice<&'static str> {
    let list = codelists::get("regions").expect("embedded");
    let (items, weights): (Vec<_>, Vec<_>) = list
        .codes()
        .filter_map(|code| map.get(code).map(|w| (code, *w)))
        .unzip();
    Choice::new(items, &weights).expect("checked weights")
}

/// What the generator knows about one origin group.
#[derive(Debug, Clone)]
pub struct OriginPlan {
    pub group: OriginGroup,
    /// For foreign groups: the country of origin.
    pub countries: Option<Choice<&'static Country>>,
    pub belgian_at_birth: f64,
    pub born_in_belgium: f64,
    pub naturalisation: f64,
    pub recent_arrival: f64,
    pub abroad: f64,
    pub regions: Choice<&'static str>,
    /// Employer type (index into `Plan::types`) by sex (0 = M, 1 = F).
    pub type_by_sex: [Categorical; 2],
    /// Employer type regardless of sex.
    pub types: Categorical,
}

/// One employer.
#[derive(Debug, Clone, Copy)]
pub struct Employer {
    pub id: i64,
    pub nace: [u8; 5],
}

#[derive(Debug, Clone)]
pub struct TypePlan {
    pub code: u8,
    pub group: EmployerGroup,
    pub women: f64,
    pub statuut: Choice<i32>,
    pub employers: Vec<Employer>,
    pub employer_dist: Categorical,
}

/// The plan every chunk draws from.
#[derive(Debug, Clone)]
pub struct Plan {
    pub first_year: i32,
    pub last_year: i32,
    /// Distinct persons asked for / the full-scale target.
    pub scale: f64,
    pub persons: u64,
    pub cohort: Categorical,
    /// Age at the cohort's start year, per cohort.
    pub cohort_age: Vec<Categorical>,
    pub cohort_origin: Vec<Categorical>,
    /// Retirement probability after working at each age.
    pub retirement: Vec<f64>,
    /// Other-exit probability after working at each age.
    pub other_exit: Vec<f64>,
    pub other_exit_level: f64,
    pub emigration_share: f64,
    pub origins: Vec<OriginPlan>,
    pub types: Vec<TypePlan>,
    pub employer_change: f64,
    pub region_move: f64,
    pub statuut_change: f64,
    pub arrival_age: Categorical,
    pub arrival_ages: Vec<i32>,
    pub naturalisation_wait: i32,
    pub adult_parents_unknown: f64,
    pub two_foreign_parents: f64,
    pub belgian_at_birth_born_in_belgium: f64,
    pub belgian_born_in_belgium: f64,
    pub belgian_born_abroad: Choice<&'static Country>,
    /// father, mother, both missing.
    pub undetermined_missing: Categorical,
    pub stateless: f64,
    /// Education level by employer group (index: federal, non-federal public, private).
    pub education: [Categorical; 3],
    /// Study field by education band.
    pub study_fields: Vec<(EducationBand, Choice<&'static str>)>,
    /// Expected full-scale employees per year (the solved stock).
    pub employees: Vec<f64>,
    pub entrants: Vec<f64>,
}

/// Exit probability after working a year at age `a`.
fn exit_probability(retirement: &[f64], other: &[f64], level: f64, a: usize) -> f64 {
    let r = retirement[a];
    r + (1.0 - r) * (level * other[a]).min(1.0)
}

/// Expected number still employed in each later year, per person of a cohort with this age mix.
fn survival(ages: &[f64], retirement: &[f64], other: &[f64], level: f64, years: usize) -> Vec<f64> {
    let total: f64 = ages.iter().sum();
    let mut alive: Vec<f64> = ages.iter().map(|w| w / total).collect();
    let mut out = Vec::with_capacity(years);
    for _ in 0..years {
        out.push(alive.iter().sum());
        let mut next = vec![0.0; MAX_AGE + 1];
        for a in MIN_AGE..MAX_AGE {
            next[a + 1] = alive[a] * (1.0 - exit_probability(retirement, other, level, a));
        }
        alive = next;
    }
    out
}

fn group_index(group: EmployerGroup) -> usize {
    match group {
        EmployerGroup::Federal => 0,
        EmployerGroup::NonFederalPublic => 1,
        _ => 2,
    }
}

impl Plan {
    /// Solves the plan for `persons` distinct persons; the employer pool is drawn with `rng`.
    pub fn new(c: &Calibration, persons: u64, rng: &mut impl rand::Rng) -> Result<Plan, String> {
        let years = (c.last_year - c.first_year + 1) as usize;
        let stock: Vec<f64> = {
            let points = year_points(c.target_values("employees"));
            c.years().map(|y| interpolate(&points, y)).collect()
        };
        let first_ages = age_weights(&c.ages.first_year);
        let entry_ages = age_weights(&c.ages.entry);
        let mut retirement = age_values(&c.ages.retirement, 0.0);
        retirement[MAX_AGE] = 1.0;
        let other = age_values(&c.ages.other_exit, 1.0);
        let target = c.distinct_persons();

        // Cohort sizes for an exit level; None when some year would need negative entrants.
        let cohorts = |level: f64| -> Option<(Vec<f64>, Vec<Vec<f64>>)> {
            let first = survival(&first_ages, &retirement, &other, level, years);
            let entry = survival(&entry_ages, &retirement, &other, level, years);
            let mut sizes = vec![stock[0]];
            let mut surv = vec![first];
            for y in 1..years {
                let survivors: f64 = (0..y).map(|k| sizes[k] * surv[k][y - k]).sum();
                let entrants = stock[y] - survivors;
                if entrants < 0.0 {
                    return None;
                }
                sizes.push(entrants);
                surv.push(entry.clone());
            }
            Some((sizes, surv))
        };
        let distinct = |level: f64| cohorts(level).map(|(s, _)| s.iter().sum::<f64>());
        let (mut lo, mut hi) = (0.0f64, 0.5f64);
        match (distinct(lo), distinct(hi)) {
            (Some(low), _) if low > target => {
                return Err(format!(
                    "distinct_persons {target} is too low: with these employee counts and retirement alone the population already has {low:.0} persons"
                ));
            }
            (_, Some(high)) if high < target => {
                return Err(format!(
                    "distinct_persons {target} is too high: even a 50% yearly exit rate gives {high:.0} persons"
                ));
            }
            (None, _) => {
                return Err("the employee counts fall faster than retirement allows".into());
            }
            _ => {}
        }
        for _ in 0..60 {
            let mid = (lo + hi) / 2.0;
            if distinct(mid).is_some_and(|d| d < target) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let level = lo;
        let (sizes, surv) = cohorts(level).expect("feasible level");

        // Origin mix per cohort: each entry cohort brings what the survivors lack.
        let share = |g: OriginGroup, y: i32| {
            interpolate(
                &year_points(c.target_values(&format!("origin_share:{}", g.code()))),
                y,
            )
        };
        let groups = OriginGroup::ALL;
        let mut mixes: Vec<Vec<f64>> =
            vec![groups.iter().map(|g| share(*g, c.first_year)).collect()];
        for y in 1..years {
            let year = c.first_year + y as i32;
            let mix: Vec<f64> = groups
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let survivors: f64 = (0..y)
                        .map(|k| sizes[k] * surv[k][y - k] * mixes[k][i])
                        .sum();
                    (share(*g, year) * stock[y] - survivors).max(0.0)
                })
                .collect();
            let total: f64 = mix.iter().sum();
            if total <= 0.0 {
                return Err(format!(
                    "no origin mix of the {year} entrants reaches the origin shares"
                ));
            }
            mixes.push(mix.iter().map(|m| m / total).collect());
        }

        // Employer types: the federal share split by Belgian origin, then by sex.
        let belgian_ref = share(OriginGroup::Be, c.federal.reference_year);
        let beta = c.federal.belgian_origin_share;
        let federal_total: f64 = c
            .employer_types
            .iter()
            .filter(|t| {
                codelists::employer_type(t.code).expect("checked").group == EmployerGroup::Federal
            })
            .map(|t| t.share)
            .sum();
        let mut types = Vec::new();
        for t in &c.employer_types {
            let known = codelists::employer_type(t.code).expect("checked");
            let (codes, weights): (Vec<i32>, Vec<f64>) = t
                .statuut
                .iter()
                .map(|(s, w)| (s.parse::<i32>().expect("checked"), *w))
                .unzip();
            let (employers, employer_weights) = employer_pool(
                t,
                persons as f64 / target,
                rng,
                types.iter().map(|t: &TypePlan| t.employers.len()).sum(),
            )?;
            types.push(TypePlan {
                code: t.code,
                group: known.group,
                women: t.women,
                statuut: Choice::new(codes, &weights)?,
                employer_dist: Categorical::new(&employer_weights)?,
                employers,
            });
        }
        let type_weights = |g: OriginGroup| -> Vec<f64> {
            let factor = if g == OriginGroup::Be {
                beta / belgian_ref
            } else {
                (1.0 - beta) / (1.0 - belgian_ref)
            };
            let federal = federal_total * factor;
            c.employer_types
                .iter()
                .zip(&types)
                .map(|(spec, plan)| {
                    if plan.group == EmployerGroup::Federal {
                        spec.share * factor
                    } else {
                        spec.share * (1.0 - federal) / (1.0 - federal_total)
                    }
                })
                .collect()
        };
        let mut origins = Vec::new();
        for &g in groups {
            let weights = type_weights(g);
            let by_sex = |women: bool| -> Result<Categorical, String> {
                let w: Vec<f64> = weights
                    .iter()
                    .zip(&types)
                    .map(|(w, t)| w * if women { t.women } else { 1.0 - t.women })
                    .collect();
                Categorical::new(&w)
            };
            let plan = match g {
                OriginGroup::Be | OriginGroup::BeUndetermined => OriginPlan {
                    group: g,
                    countries: None,
                    belgian_at_birth: 1.0,
                    born_in_belgium: c.belgian.born_in_belgium,
                    naturalisation: 0.0,
                    recent_arrival: 0.0,
                    abroad: c.belgian.abroad,
                    regions: regions(&c.belgian.regions),
                    type_by_sex: [by_sex(false)?, by_sex(true)?],
                    types: Categorical::new(&weights)?,
                },
                OriginGroup::Unknown => OriginPlan {
                    group: g,
                    countries: None,
                    belgian_at_birth: 0.0,
                    born_in_belgium: 0.0,
                    naturalisation: 0.0,
                    recent_arrival: 0.0,
                    abroad: 0.0,
                    regions: regions(&c.unknown.regions),
                    type_by_sex: [by_sex(false)?, by_sex(true)?],
                    types: Categorical::new(&weights)?,
                },
                _ => {
                    let o = &c.origins[g.code()];
                    OriginPlan {
                        group: g,
                        countries: Some(countries(&o.countries)),
                        belgian_at_birth: o.belgian_at_birth,
                        born_in_belgium: o.born_in_belgium,
                        naturalisation: o.naturalisation,
                        recent_arrival: o.recent_arrival,
                        abroad: o.abroad,
                        regions: regions(&o.regions),
                        type_by_sex: [by_sex(false)?, by_sex(true)?],
                        types: Categorical::new(&weights)?,
                    }
                }
            };
            origins.push(plan);
        }

        let level_dist = |group: EmployerGroup| -> Result<Categorical, String> {
            let levels = &c.education[group.code()].levels;
            let w: Vec<f64> = (0..=9)
                .map(|l| levels.get(&l.to_string()).copied().unwrap_or(0.0))
                .collect();
            Categorical::new(&w)
        };
        let study_fields = EducationBand::ALL
            .iter()
            .map(|band| {
                let map = &c.study_fields[band.code()];
                let list = codelists::get("iscedf_fields").expect("embedded");
                let (items, weights): (Vec<&'static str>, Vec<f64>) = list
                    .codes()
                    .filter_map(|f| map.get(f).map(|w| (f, *w)))
                    .unzip();
                Ok((*band, Choice::new(items, &weights)?))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let (arrival_ages, arrival_weights): (Vec<i32>, Vec<f64>) = c
            .migration
            .arrival_age
            .iter()
            .flat_map(|(k, w)| {
                let (lo, hi) = age_range(k).expect("checked");
                (lo..=hi).map(move |a| (a, w / f64::from(hi - lo + 1)))
            })
            .unzip();
        let missing = &c.belgian.undetermined_missing;
        let survivors = |y: usize| -> f64 { (0..=y).map(|k| sizes[k] * surv[k][y - k]).sum() };
        Ok(Plan {
            first_year: c.first_year,
            last_year: c.last_year,
            scale: persons as f64 / target,
            persons,
            cohort: Categorical::new(&sizes)?,
            cohort_age: (0..years)
                .map(|k| Categorical::new(if k == 0 { &first_ages } else { &entry_ages }))
                .collect::<Result<_, _>>()?,
            cohort_origin: mixes
                .iter()
                .map(|m| Categorical::new(m))
                .collect::<Result<_, _>>()?,
            retirement,
            other_exit: other.iter().map(|m| (m * level).min(1.0)).collect(),
            other_exit_level: level,
            emigration_share: c.ages.emigration_share,
            origins,
            types,
            employer_change: c.mobility.employer_change,
            region_move: c.mobility.region_move,
            statuut_change: c.mobility.statuut_change,
            arrival_age: Categorical::new(&arrival_weights)?,
            arrival_ages,
            naturalisation_wait: c.migration.naturalisation_wait,
            adult_parents_unknown: c.migration.adult_parents_unknown,
            two_foreign_parents: c.migration.two_foreign_parents,
            belgian_at_birth_born_in_belgium: c.migration.belgian_at_birth_born_in_belgium,
            belgian_born_in_belgium: c.belgian.born_in_belgium,
            belgian_born_abroad: countries(&c.belgian.born_abroad_countries),
            undetermined_missing: Categorical::new(&[
                missing.get("father").copied().unwrap_or(0.0),
                missing.get("mother").copied().unwrap_or(0.0),
                missing.get("both").copied().unwrap_or(0.0),
            ])?,
            stateless: c.unknown.stateless,
            education: [
                level_dist(EmployerGroup::Federal)?,
                level_dist(EmployerGroup::NonFederalPublic)?,
                level_dist(EmployerGroup::Private)?,
            ],
            study_fields,
            employees: (0..years).map(survivors).collect(),
            entrants: sizes[1..].to_vec(),
        })
    }

    pub fn education_for(&self, group: EmployerGroup) -> &Categorical {
        &self.education[group_index(group)]
    }

    pub fn years(&self) -> usize {
        (self.last_year - self.first_year + 1) as usize
    }
}

/// A Belgian enterprise number (KBO/BCE): 10 digits, a leading 0, the last two a mod-97 check.
/// Distinct for distinct `n` below 8 million: `n` is spread over the number space by a bijection.
pub fn enterprise_number(n: usize) -> i64 {
    const SPACE: i64 = 8_000_000;
    let base = 2_000_000 + ((n as i64) * 48_271 + 12_345).rem_euclid(SPACE);
    base * 100 + (97 - base % 97)
}

/// The employers of one type: the named ones, then the generated ones (their number scaled with
/// the population, their sizes log-normal, each with an activity drawn from the NACE mix).
fn employer_pool(
    t: &crate::config::EmployerTypeSpec,
    scale: f64,
    rng: &mut impl rand::Rng,
    first_index: usize,
) -> Result<(Vec<Employer>, Vec<f64>), String> {
    let mut employers = Vec::new();
    let mut weights = Vec::new();
    let nace = |code: &str| -> [u8; 5] { code.as_bytes().try_into().expect("checked 5 digits") };
    for named in &t.employers {
        employers.push(Employer {
            id: enterprise_number(first_index + employers.len()),
            nace: nace(&named.nace),
        });
        weights.push(named.weight);
    }
    if let Some(g) = &t.generated {
        let count = ((g.count as f64 * scale).round() as usize).max(1);
        let (codes, code_weights): (Vec<&String>, Vec<f64>) =
            g.nace.iter().map(|(k, w)| (k, *w)).unzip();
        let activity = Categorical::new(&code_weights)?;
        // Each activity gets employers in proportion to its weight, so small activities exist
        // even in a small population; sizes vary log-normally within an activity.
        let mut sizes = Vec::with_capacity(count);
        let mut activities = Vec::with_capacity(count);
        for i in 0..count {
            let a = if count >= codes.len() && i < codes.len() {
                i
            } else {
                activity.sample(rng)
            };
            let normal: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
            sizes.push((1.2 * normal).exp());
            activities.push(a);
        }
        let mut per_activity = vec![0.0; codes.len()];
        for (s, a) in sizes.iter().zip(&activities) {
            per_activity[*a] += s;
        }
        let activity_total: f64 = code_weights.iter().sum();
        for (s, a) in sizes.iter().zip(&activities) {
            employers.push(Employer {
                id: enterprise_number(first_index + employers.len()),
                nace: nace(codes[*a]),
            });
            weights.push(g.weight * code_weights[*a] / activity_total * s / per_activity[*a]);
        }
    }
    Ok((employers, weights))
}
