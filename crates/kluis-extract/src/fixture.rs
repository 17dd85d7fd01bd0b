//! A small seeded warehouse for tests (feature `test-support`): persons of every age around the
//! authorised range, every employer type including unknown, every statuut, a few countries with
//! missing facts, so each population rule and coding has something to bite on.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
};
use kluis_model::schema::{person_years_schema, persons_schema};
use kluis_warehouse::dates::days_from_civil;
use kluis_warehouse::{Manifest, Source, WarehouseWriter};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

const COUNTRIES: [&str; 10] = ["BE", "BE", "BE", "BE", "MA", "TR", "FR", "NL", "PL", "XU"];
const NACE: [&str; 6] = ["84110", "85201", "47110", "62010", "01110", "86101"];
const REGIONS: [&str; 4] = ["02000", "03000", "04000", "ABROAD"];
const EMPLOYER_TYPES: [i32; 7] = [11, 13, 16, 22, 24, 30, 99];

/// Writes a warehouse of `persons` persons with person-years `first_year..=last_year` at `dir`.
pub fn write_warehouse(
    dir: &Path,
    persons: usize,
    first_year: i32,
    last_year: i32,
    seed: u64,
) -> kluis_warehouse::Result<Manifest> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut insz: Vec<i64> = Vec::with_capacity(persons);
    let mut seen = std::collections::HashSet::new();
    while insz.len() < persons {
        let n = rng.random_range(10_000_000_000i64..99_999_999_999);
        if seen.insert(n) {
            insz.push(n);
        }
    }
    let pick = |rng: &mut ChaCha8Rng, list: &[&'static str]| list[rng.random_range(0..list.len())];
    let mut p_insz = Int64Builder::new();
    let mut sex = StringBuilder::new();
    let mut birth = Date32Builder::new();
    let mut cob = StringBuilder::new();
    let mut nat = [
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    ];
    let mut registration = Date32Builder::new();
    let mut naturalisation = Date32Builder::new();
    let mut education = Int32Builder::new();
    let mut study = StringBuilder::new();
    let mut current = Vec::new();
    for &n in &insz {
        p_insz.append_value(n);
        sex.append_value(if rng.random_bool(0.5) { "M" } else { "F" });
        let year = rng.random_range(1940..2005);
        birth.append_value(days_from_civil(
            year,
            rng.random_range(1..=12),
            rng.random_range(1..=28),
        ));
        let born = pick(&mut rng, &COUNTRIES);
        cob.append_value(born);
        let first = pick(&mut rng, &COUNTRIES);
        for (i, b) in nat.iter_mut().enumerate() {
            if rng.random_bool(0.1) {
                b.append_null();
            } else if i == 0 {
                b.append_value(first);
            } else {
                b.append_value(pick(&mut rng, &COUNTRIES));
            }
        }
        registration.append_option(
            (born != "BE").then(|| days_from_civil(rng.random_range(1970..2021), 3, 1)),
        );
        let naturalised = first != "BE" && rng.random_bool(0.4);
        naturalisation.append_option(
            naturalised.then(|| days_from_civil(rng.random_range(1990..2021), 6, 1)),
        );
        current.push(if naturalised { "BE" } else { first });
        education.append_option(rng.random_bool(0.9).then(|| rng.random_range(0..=9)));
        study.append_option(
            rng.random_bool(0.8)
                .then(|| ["00", "02", "04", "07", "10", "99"][rng.random_range(0..6)]),
        );
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(p_insz.finish()),
        Arc::new(sex.finish()),
        Arc::new(birth.finish()),
        Arc::new(cob.finish()),
        Arc::new(nat[0].finish()),
        Arc::new(nat[1].finish()),
        Arc::new(nat[2].finish()),
        Arc::new(registration.finish()),
        Arc::new(naturalisation.finish()),
        Arc::new(education.finish()),
        Arc::new(study.finish()),
    ];
    let mut writer = WarehouseWriter::create(dir)?;
    writer.write_persons(&RecordBatch::try_new(persons_schema(), columns).expect("schema"))?;
    // Each person keeps an employer for a few years, so strata mix over a career.
    let mut employer: Vec<i32> = (0..persons)
        .map(|_| EMPLOYER_TYPES[rng.random_range(0..EMPLOYER_TYPES.len())])
        .collect();
    for year in first_year..=last_year {
        let mut b_insz = Int64Builder::new();
        let mut b_year = Int32Builder::new();
        let mut region = StringBuilder::new();
        let mut nationality = StringBuilder::new();
        let mut employer_id = Int64Builder::new();
        let mut employer_type = Int32Builder::new();
        let mut statuut = Int32Builder::new();
        let mut nace = StringBuilder::new();
        for (i, &n) in insz.iter().enumerate() {
            if !rng.random_bool(0.75) {
                continue;
            }
            if rng.random_bool(0.15) {
                employer[i] = EMPLOYER_TYPES[rng.random_range(0..EMPLOYER_TYPES.len())];
            }
            b_insz.append_value(n);
            b_year.append_value(year);
            region.append_value(pick(&mut rng, &REGIONS));
            nationality.append_value(current[i]);
            employer_id.append_value(rng.random_range(1..500));
            employer_type.append_value(employer[i]);
            statuut.append_value(rng.random_range(1..=4));
            nace.append_value(pick(&mut rng, &NACE));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(b_insz.finish()),
            Arc::new(b_year.finish()),
            Arc::new(region.finish()),
            Arc::new(nationality.finish()),
            Arc::new(employer_id.finish()),
            Arc::new(employer_type.finish()),
            Arc::new(statuut.finish()),
            Arc::new(nace.finish()),
        ];
        writer.write_person_years(
            year,
            &RecordBatch::try_new(person_years_schema(), columns).expect("schema"),
        )?;
    }
    writer.commit(Source::Generated {
        seed,
        persons_requested: persons as u64,
        calibration: "kluis-extract test fixture".to_owned(),
        calibration_sha256: String::new(),
    })
}
