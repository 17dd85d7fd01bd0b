//! Generating one chunk of persons: each person's whole working life in the panel, written as a
//! persons batch and one person-years batch per year, with the statistics the report needs.
//! A chunk draws only from its own random stream, so chunks can be made in any order, on any
//! thread, and give the same rows.

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use rustc_hash::FxHashMap;

use kluis_model::codelists::{self, Country};
use kluis_model::insz::BisSex;
use kluis_model::{Background, EducationBand, Insz, InszKind, OriginGroup, PartialDate, Sex};
use kluis_warehouse::dates::{civil_from_days, days_from_civil};

use crate::plan::{OriginPlan, Plan};
use crate::stats::{ExitReason, Stats};

/// The random stream of the plan (the employer pool): stream 0.
pub fn plan_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// The random stream of chunk `index`.
pub fn chunk_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64 + 1);
    rng
}

/// The rows and statistics of one chunk.
pub struct Chunk {
    pub persons: RecordBatch,
    /// Person-years per year, for the years that have any.
    pub years: Vec<(i32, RecordBatch)>,
    pub stats: Stats,
}

#[derive(Default)]
struct PersonCols {
    insz: Vec<i64>,
    sex: Vec<&'static str>,
    birth_date: Vec<i32>,
    country_of_birth: Vec<&'static str>,
    first: Vec<Option<&'static str>>,
    father: Vec<Option<&'static str>>,
    mother: Vec<Option<&'static str>>,
    registration: Vec<Option<i32>>,
    naturalisation: Vec<Option<i32>>,
    education: Vec<Option<i32>>,
    study_field: Vec<Option<&'static str>>,
}

#[derive(Default)]
struct YearCols {
    insz: Vec<i64>,
    region: Vec<&'static str>,
    nationality: Vec<&'static str>,
    employer_id: Vec<i64>,
    employer_type: Vec<i32>,
    statuut: Vec<i32>,
    nace: Vec<[u8; 5]>,
}

/// Hands out INSZ serial numbers: this chunk owns serials [first, first + count) of every
/// birth date, sex and kind, so chunks never collide. When a day's share is used up, the next
/// day of the same birth year is taken (ages, counted by birth year, do not change).
struct Serials {
    first: u16,
    count: u16,
    used: FxHashMap<(i32, bool, bool), u16>,
}

impl Serials {
    fn take(&mut self, birth: i32, sex: Sex, bis: bool) -> (i32, u16) {
        let (year, _, _) = civil_from_days(birth);
        let year_start = days_from_civil(year, 1, 1);
        let year_days = days_from_civil(year + 1, 1, 1) - year_start;
        let mut day = birth;
        for _ in 0..year_days {
            let used = self.used.entry((day, sex == Sex::F, bis)).or_insert(0);
            if *used < self.count {
                let n = self.first + *used;
                *used += 1;
                return (day, Insz::serial_for(sex, n));
            }
            day = year_start + (day - year_start + 1) % year_days;
        }
        panic!(
            "more than {} persons of one sex and birth year in a chunk",
            self.count as i32 * year_days
        );
    }
}

/// A person's nationality history and registration.
struct Nationality {
    first: Option<&'static Country>,
    father: Option<&'static Country>,
    mother: Option<&'static Country>,
    /// Nationality before any naturalisation (the current one when there is none).
    before: &'static Country,
    naturalisation: Option<i32>,
    country_of_birth: &'static Country,
    registration: Option<i32>,
    /// Not in the National Register: a BIS number.
    bis: bool,
    /// Lives abroad (a frontier worker).
    abroad: bool,
}

fn c(code: &str) -> &'static Country {
    kluis_model::country(code).expect("code-list country")
}

fn random_day(rng: &mut ChaCha8Rng, year: i32) -> i32 {
    let start = days_from_civil(year, 1, 1);
    start + rng.random_range(0..days_from_civil(year + 1, 1, 1) - start)
}

/// The chunk generator for one plan.
pub struct Generator<'p> {
    plan: &'p Plan,
    bands: [EducationBand; 10],
    region_codes: Vec<&'static str>,
}

struct Life {
    start: i32,
    end: i32,
    birth: i32,
    exit: Option<ExitReason>,
}

impl<'p> Generator<'p> {
    pub fn new(plan: &'p Plan) -> Generator<'p> {
        let bands =
            std::array::from_fn(|l| codelists::education_band(l as u8).expect("ISCED levels 0-9"));
        let region_codes = codelists::get("regions")
            .expect("embedded")
            .codes()
            .collect();
        Generator {
            plan,
            bands,
            region_codes,
        }
    }

    fn life(&self, rng: &mut ChaCha8Rng, cohort: usize) -> Life {
        let plan = self.plan;
        let start = plan.first_year + cohort as i32;
        let age = plan.cohort_age[cohort].sample(rng) as i32;
        let birth_year = start - age;
        let mut end = start;
        let mut exit = None;
        while end < plan.last_year {
            let age = (end - birth_year) as usize;
            if rng.random::<f64>() < plan.retirement[age] {
                exit = Some(ExitReason::Retirement);
                break;
            }
            if rng.random::<f64>() < plan.other_exit[age] {
                exit = Some(if rng.random::<f64>() < plan.emigration_share {
                    ExitReason::Emigration
                } else {
                    ExitReason::Inactivity
                });
                break;
            }
            end += 1;
        }
        Life {
            start,
            end,
            birth: random_day(rng, birth_year),
            exit,
        }
    }

    /// Registration of someone born abroad: at an arrival age (before their first year of
    /// employment), or, for some later entrants, shortly before they start working.
    fn arrival(&self, rng: &mut ChaCha8Rng, o: &OriginPlan, life: &Life, entrant: bool) -> i32 {
        let plan = self.plan;
        let birth_year = civil_from_days(life.birth).0;
        let age = life.start - birth_year;
        let year = if entrant && rng.random::<f64>() < o.recent_arrival {
            (life.start - rng.random_range(0..=2)).max(birth_year)
        } else {
            let mut a = age + 1;
            for _ in 0..8 {
                a = plan.arrival_ages[plan.arrival_age.sample(rng)];
                if a <= age {
                    break;
                }
            }
            if a > age {
                a = rng.random_range(0..=age);
            }
            birth_year + a
        };
        random_day(rng, year).max(life.birth)
    }

    fn nationality(
        &self,
        rng: &mut ChaCha8Rng,
        o: &OriginPlan,
        life: &Life,
        entrant: bool,
    ) -> Nationality {
        let plan = self.plan;
        let be = c(codelists::BELGIUM);
        match o.group {
            OriginGroup::Be | OriginGroup::BeUndetermined => {
                let (mut father, mut mother) = (Some(be), Some(be));
                if o.group == OriginGroup::BeUndetermined {
                    match plan.undetermined_missing.sample(rng) {
                        0 => father = None,
                        1 => mother = None,
                        _ => (father, mother) = (None, None),
                    }
                }
                let born_here = rng.random::<f64>() < plan.belgian_born_in_belgium;
                let country_of_birth = if born_here {
                    be
                } else {
                    plan.belgian_born_abroad.sample(rng)
                };
                let registration = if born_here {
                    life.birth
                } else {
                    self.arrival(rng, o, life, false)
                };
                Nationality {
                    first: Some(be),
                    father,
                    mother,
                    before: be,
                    naturalisation: None,
                    country_of_birth,
                    registration: Some(registration),
                    bis: false,
                    abroad: rng.random::<f64>() < o.abroad,
                }
            }
            OriginGroup::Unknown => {
                let unknown = c(codelists::UNKNOWN_COUNTRY);
                if rng.random::<f64>() < plan.stateless {
                    let stateless = c(codelists::STATELESS);
                    Nationality {
                        first: Some(stateless),
                        father: None,
                        mother: None,
                        before: stateless,
                        naturalisation: None,
                        country_of_birth: unknown,
                        registration: Some(self.arrival(rng, o, life, entrant)),
                        bis: false,
                        abroad: false,
                    }
                } else {
                    Nationality {
                        first: None,
                        father: None,
                        mother: None,
                        before: unknown,
                        naturalisation: None,
                        country_of_birth: unknown,
                        registration: None,
                        bis: true,
                        abroad: false,
                    }
                }
            }
            _ => {
                let countries = o.countries.as_ref().expect("foreign groups have countries");
                let origin = countries.sample(rng);
                // Born abroad: mostly in the country of origin.
                let born_abroad = |rng: &mut ChaCha8Rng| {
                    if rng.random::<f64>() < 0.9 {
                        origin
                    } else {
                        countries.sample(rng)
                    }
                };
                if rng.random::<f64>() < o.abroad {
                    return Nationality {
                        first: Some(origin),
                        father: None,
                        mother: None,
                        before: origin,
                        naturalisation: None,
                        country_of_birth: born_abroad(rng),
                        registration: None,
                        bis: true,
                        abroad: true,
                    };
                }
                if rng.random::<f64>() < o.belgian_at_birth {
                    let (father, mother) = if rng.random::<f64>() < plan.two_foreign_parents {
                        (origin, origin)
                    } else if rng.random::<bool>() {
                        (origin, be)
                    } else {
                        (be, origin)
                    };
                    let born_here = rng.random::<f64>() < plan.belgian_at_birth_born_in_belgium;
                    return Nationality {
                        first: Some(be),
                        father: Some(father),
                        mother: Some(mother),
                        before: be,
                        naturalisation: None,
                        country_of_birth: if born_here { be } else { born_abroad(rng) },
                        registration: Some(if born_here {
                            life.birth
                        } else {
                            self.arrival(rng, o, life, false)
                        }),
                        bis: false,
                        abroad: false,
                    };
                }
                let born_here = rng.random::<f64>() < o.born_in_belgium;
                let registration = if born_here {
                    life.birth
                } else {
                    self.arrival(rng, o, life, entrant)
                };
                let registration_year = civil_from_days(registration).0;
                let adult_arrival =
                    !born_here && registration_year - civil_from_days(life.birth).0 >= 18;
                let (father, mother) =
                    if adult_arrival && rng.random::<f64>() < plan.adult_parents_unknown {
                        (None, None)
                    } else {
                        let father = (rng.random::<f64>() < 0.9).then_some(origin);
                        let u: f64 = rng.random();
                        let mother = if u < 0.85 {
                            Some(origin)
                        } else if u < 0.9 {
                            Some(be)
                        } else {
                            None
                        };
                        (father, mother)
                    };
                // Naturalisation: a yearly chance once eligible, at most once, within the panel.
                let naturalisation = (o.naturalisation > 0.0)
                    .then(|| {
                        let u: f64 = rng.random();
                        let wait = ((1.0 - u).ln() / (1.0 - o.naturalisation).ln()).floor();
                        let year =
                            registration_year + plan.naturalisation_wait + wait.min(1000.0) as i32;
                        (year <= plan.last_year).then(|| random_day(rng, year))
                    })
                    .flatten();
                Nationality {
                    first: Some(origin),
                    father,
                    mother,
                    before: origin,
                    naturalisation,
                    country_of_birth: if born_here { be } else { born_abroad(rng) },
                    registration: Some(registration),
                    bis: false,
                    abroad: false,
                }
            }
        }
    }

    /// Generates persons `range` (global person numbers) of chunk `index` of `chunks`.
    pub fn chunk(
        &self,
        seed: u64,
        index: usize,
        chunks: usize,
        range: std::ops::Range<u64>,
    ) -> Chunk {
        let plan = self.plan;
        let mut rng = chunk_rng(seed, index);
        let band = (499 / chunks) as u16;
        let mut serials = Serials {
            first: index as u16 * band,
            count: band,
            used: FxHashMap::default(),
        };
        let years = plan.years();
        let mut persons = PersonCols::default();
        let mut cols: Vec<YearCols> = (0..years).map(|_| YearCols::default()).collect();
        let mut stats = Stats::new(plan.first_year, years);
        let be = c(codelists::BELGIUM);
        let abroad_region = "ABROAD";

        for _ in range {
            let cohort = plan.cohort.sample(&mut rng);
            let life = self.life(&mut rng, cohort);
            let o = &plan.origins[plan.cohort_origin[cohort].sample(&mut rng)];
            let nat = self.nationality(&mut rng, o, &life, cohort > 0);
            let mut ty = o.types.sample(&mut rng);
            let sex = if rng.random::<f64>() < plan.types[ty].women {
                Sex::F
            } else {
                Sex::M
            };
            let level = plan.education_for(plan.types[ty].group).sample(&mut rng);
            let band_of = self.bands[level];
            let field = plan
                .study_fields
                .iter()
                .find(|(b, _)| *b == band_of)
                .map(|(_, choice)| choice.sample(&mut rng))
                .expect("every band has fields");

            let (birth, serial) = serials.take(life.birth, sex, nat.bis);
            let (y, m, d) = civil_from_days(birth);
            let date = PartialDate {
                year: y,
                month: m as u8,
                day: d as u8,
            };
            let (kind, bis_sex) = if nat.bis {
                (InszKind::Bis, BisSex::Known)
            } else {
                (InszKind::Rr, BisSex::Known)
            };
            let insz = Insz::generate(date, serial, kind, bis_sex).value() as i64;
            // Born in Belgium means registered at birth: follow a birth-date shift.
            let registration = nat
                .registration
                .map(|r| if r == life.birth { birth } else { r.max(birth) });

            persons.insz.push(insz);
            persons.sex.push(sex.code());
            persons.birth_date.push(birth);
            persons
                .country_of_birth
                .push(nat.country_of_birth.alpha2.as_str());
            persons.first.push(nat.first.map(|c| c.alpha2.as_str()));
            persons.father.push(nat.father.map(|c| c.alpha2.as_str()));
            persons.mother.push(nat.mother.map(|c| c.alpha2.as_str()));
            persons.registration.push(registration);
            persons.naturalisation.push(nat.naturalisation);
            persons.education.push(Some(level as i32));
            persons.study_field.push(Some(field));
            stats.person(life.exit, nat.naturalisation.map(|d| civil_from_days(d).0));

            let mut region = if nat.abroad {
                abroad_region
            } else {
                o.regions.sample(&mut rng)
            };
            let mut employer =
                plan.types[ty].employers[plan.types[ty].employer_dist.sample(&mut rng)];
            let mut statuut = plan.types[ty].statuut.sample(&mut rng);
            let women = usize::from(sex == Sex::F);
            for year in life.start..=life.end {
                if year > life.start {
                    if rng.random::<f64>() < plan.employer_change {
                        ty = o.type_by_sex[women].sample(&mut rng);
                        let t = &plan.types[ty];
                        employer = t.employers[t.employer_dist.sample(&mut rng)];
                        statuut = t.statuut.sample(&mut rng);
                    } else if rng.random::<f64>() < plan.statuut_change {
                        statuut = plan.types[ty].statuut.sample(&mut rng);
                    }
                    if !nat.abroad && rng.random::<f64>() < plan.region_move {
                        region = o.regions.sample(&mut rng);
                    }
                }
                let naturalised = nat
                    .naturalisation
                    .is_some_and(|n| n < days_from_civil(year, 1, 1));
                let current = if naturalised { be } else { nat.before };
                let background = Background {
                    current_nationality: Some(current),
                    first_nationality: nat.first,
                    father_first_nationality: nat.father,
                    mother_first_nationality: nat.mother,
                    country_of_birth: Some(nat.country_of_birth),
                    registration_year: registration.map(|r| civil_from_days(r).0),
                    naturalisation_year: nat.naturalisation.map(|n| civil_from_days(n).0),
                };
                let t = &plan.types[ty];
                let i = (year - plan.first_year) as usize;
                let row = &mut cols[i];
                row.insz.push(insz);
                row.region.push(region);
                row.nationality.push(current.alpha2.as_str());
                row.employer_id.push(employer.id);
                row.employer_type.push(i32::from(t.code));
                row.statuut.push(statuut);
                row.nace.push(employer.nace);
                let region_index = self
                    .region_codes
                    .iter()
                    .position(|r| *r == region)
                    .expect("code-list region");
                stats.person_year(i, &background, region_index, t, sex, statuut, employer.nace);
            }
        }

        let years = cols
            .into_iter()
            .enumerate()
            .filter(|(_, c)| !c.insz.is_empty())
            .map(|(i, c)| {
                let year = plan.first_year + i as i32;
                (year, year_batch(year, c))
            })
            .collect();
        Chunk {
            persons: person_batch(persons),
            years,
            stats,
        }
    }
}

fn person_batch(p: PersonCols) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(p.insz)),
        Arc::new(StringArray::from(p.sex)),
        Arc::new(Date32Array::from(p.birth_date)),
        Arc::new(StringArray::from(p.country_of_birth)),
        Arc::new(StringArray::from(p.first)),
        Arc::new(StringArray::from(p.father)),
        Arc::new(StringArray::from(p.mother)),
        Arc::new(Date32Array::from(p.registration)),
        Arc::new(Date32Array::from(p.naturalisation)),
        Arc::new(Int32Array::from(p.education)),
        Arc::new(StringArray::from(p.study_field)),
    ];
    RecordBatch::try_new(kluis_model::schema::persons_schema(), columns)
        .expect("persons columns match the schema")
}

fn year_batch(year: i32, c: YearCols) -> RecordBatch {
    let rows = c.insz.len();
    let nace = StringArray::from_iter_values(
        c.nace
            .iter()
            .map(|n| std::str::from_utf8(n).expect("digits")),
    );
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(c.insz)),
        Arc::new(Int32Array::from(vec![year; rows])),
        Arc::new(StringArray::from(c.region)),
        Arc::new(StringArray::from(c.nationality)),
        Arc::new(Int64Array::from(c.employer_id)),
        Arc::new(Int32Array::from(c.employer_type)),
        Arc::new(Int32Array::from(c.statuut)),
        Arc::new(nace),
    ];
    RecordBatch::try_new(kluis_model::schema::person_years_schema(), columns)
        .expect("person_years columns match the schema")
}
