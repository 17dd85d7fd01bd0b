//! What the calibration report measures, counted while the rows are generated: per year, the
//! employees by derived origin, Statbel origin, region, employer type, sex, statuut and NACE.

use rustc_hash::FxHashMap;

use kluis_model::{Background, EmployerGroup, OriginGroup, Sex, StatbelOrigin};

use crate::plan::TypePlan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    Retirement,
    Emigration,
    Inactivity,
}

/// Counts of one year's employees.
#[derive(Debug, Clone)]
pub struct YearStats {
    pub employees: u64,
    pub origin: [u64; 13],
    pub statbel: [u64; 4],
    /// By region, in code-list order.
    pub region: [u64; 5],
    /// Statbel foreign background or non-Belgian, by region.
    pub region_foreign: [u64; 5],
    pub employer_type: [u64; 100],
    pub employer_type_women: [u64; 100],
    pub employer_type_civil_servants: [u64; 100],
    pub federal: u64,
    pub federal_belgian_origin: u64,
    pub employer_group: [u64; 4],
    pub nace: FxHashMap<[u8; 5], u64>,
}

impl Default for YearStats {
    fn default() -> YearStats {
        YearStats {
            employees: 0,
            origin: [0; 13],
            statbel: [0; 4],
            region: [0; 5],
            region_foreign: [0; 5],
            employer_type: [0; 100],
            employer_type_women: [0; 100],
            employer_type_civil_servants: [0; 100],
            federal: 0,
            federal_belgian_origin: 0,
            employer_group: [0; 4],
            nace: FxHashMap::default(),
        }
    }
}

/// Counts of a whole population (or of a chunk of it).
#[derive(Debug, Clone)]
pub struct Stats {
    pub first_year: i32,
    pub years: Vec<YearStats>,
    pub persons: u64,
    pub exits: [u64; 3],
    /// Naturalisations per panel year (index as `years`).
    pub naturalisations: Vec<u64>,
}

fn index_of<T: PartialEq>(all: &[T], value: &T) -> usize {
    all.iter()
        .position(|v| v == value)
        .expect("value of a closed set")
}

impl Stats {
    pub fn new(first_year: i32, years: usize) -> Stats {
        Stats {
            first_year,
            years: vec![YearStats::default(); years],
            persons: 0,
            exits: [0; 3],
            naturalisations: vec![0; years],
        }
    }

    pub fn person(&mut self, exit: Option<ExitReason>, naturalisation_year: Option<i32>) {
        self.persons += 1;
        if let Some(reason) = exit {
            self.exits[reason as usize] += 1;
        }
        if let Some(y) = naturalisation_year {
            let i = y - self.first_year;
            if i >= 0 && (i as usize) < self.naturalisations.len() {
                self.naturalisations[i as usize] += 1;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn person_year(
        &mut self,
        year_index: usize,
        background: &Background,
        region: usize,
        employer_type: &TypePlan,
        sex: Sex,
        statuut: i32,
        nace: [u8; 5],
    ) {
        let y = &mut self.years[year_index];
        y.employees += 1;
        let origin = background.origin().group;
        y.origin[index_of(OriginGroup::ALL, &origin)] += 1;
        let statbel = background.statbel_origin();
        y.statbel[index_of(StatbelOrigin::ALL, &statbel)] += 1;
        y.region[region] += 1;
        if matches!(
            statbel,
            StatbelOrigin::NonBelgian | StatbelOrigin::BeForeignBackground
        ) {
            y.region_foreign[region] += 1;
        }
        let t = usize::from(employer_type.code);
        y.employer_type[t] += 1;
        if sex == Sex::F {
            y.employer_type_women[t] += 1;
        }
        if statuut == 3 {
            y.employer_type_civil_servants[t] += 1;
        }
        y.employer_group[index_of(EmployerGroup::ALL, &employer_type.group)] += 1;
        if employer_type.group == EmployerGroup::Federal {
            y.federal += 1;
            if origin == OriginGroup::Be {
                y.federal_belgian_origin += 1;
            }
        }
        *y.nace.entry(nace).or_insert(0) += 1;
    }

    pub fn merge(&mut self, other: Stats) {
        self.persons += other.persons;
        for (a, b) in self.exits.iter_mut().zip(other.exits) {
            *a += b;
        }
        for (a, b) in self.naturalisations.iter_mut().zip(other.naturalisations) {
            *a += b;
        }
        for (a, b) in self.years.iter_mut().zip(other.years) {
            a.employees += b.employees;
            let add = |x: &mut [u64], y: &[u64]| x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
            add(&mut a.origin, &b.origin);
            add(&mut a.statbel, &b.statbel);
            add(&mut a.region, &b.region);
            add(&mut a.region_foreign, &b.region_foreign);
            add(&mut a.employer_type, &b.employer_type);
            add(&mut a.employer_type_women, &b.employer_type_women);
            add(
                &mut a.employer_type_civil_servants,
                &b.employer_type_civil_servants,
            );
            add(&mut a.employer_group, &b.employer_group);
            a.federal += b.federal;
            a.federal_belgian_origin += b.federal_belgian_origin;
            for (code, n) in b.nace {
                *a.nace.entry(code).or_insert(0) += n;
            }
        }
    }

    /// The counts of `year`, if it is in the panel.
    pub fn year(&self, year: i32) -> Option<&YearStats> {
        usize::try_from(year - self.first_year)
            .ok()
            .and_then(|i| self.years.get(i))
    }
}
