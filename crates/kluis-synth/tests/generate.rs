//! The generator: invariants on every row, calibration within tolerance, determinism, and the
//! round trip through CSV export and ingest.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Int32Type, Int64Type};
use kluis_model::codelists;
use kluis_model::{Insz, Sex};
use kluis_synth::{Calibration, GenerateOptions, generate};
use kluis_warehouse::dates::{civil_from_days, days_from_civil};
use kluis_warehouse::ingest::{IngestOptions, ingest};
use kluis_warehouse::{Warehouse, export::export_csv};

fn options(persons: u64, seed: u64, threads: usize) -> GenerateOptions {
    GenerateOptions {
        persons,
        seed,
        calibration: Calibration::default_calibration(),
        threads,
    }
}

fn make(dir: &Path, persons: u64, seed: u64, threads: usize) -> kluis_synth::Generated {
    generate(dir, &options(persons, seed, threads), &|_, _| {}).expect("generate")
}

fn concat(
    batches: impl Iterator<Item = kluis_warehouse::Result<RecordBatch>>,
    schema: arrow::datatypes::SchemaRef,
) -> RecordBatch {
    let batches: Vec<RecordBatch> = batches.map(Result::unwrap).collect();
    arrow::compute::concat_batches(&schema, &batches).unwrap()
}

struct Person {
    sex: Sex,
    birth: i32,
    country_of_birth: String,
    first: Option<String>,
    registration: Option<i32>,
    naturalisation: Option<i32>,
}

fn text(batch: &RecordBatch, name: &str, row: usize) -> Option<String> {
    let col = batch.column_by_name(name).unwrap().as_string::<i32>();
    (!col.is_null(row)).then(|| col.value(row).to_owned())
}

fn date(batch: &RecordBatch, name: &str, row: usize) -> Option<i32> {
    let col = batch
        .column_by_name(name)
        .unwrap()
        .as_primitive::<Date32Type>();
    (!col.is_null(row)).then(|| col.value(row))
}

#[test]
fn every_row_keeps_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let wh_dir = dir.path().join("wh");
    let generated = make(&wh_dir, 20_000, 11, 2);
    let wh = Warehouse::open(&wh_dir).unwrap();
    assert_eq!(wh.years(), (2010..=2021).collect::<Vec<_>>());
    assert_eq!(generated.manifest.persons, 20_000);

    let persons = concat(
        wh.persons_batches().unwrap(),
        kluis_model::schema::persons_schema(),
    );
    let mut people: HashMap<i64, Person> = HashMap::new();
    for row in 0..persons.num_rows() {
        let insz = persons.column(0).as_primitive::<Int64Type>().value(row);
        let info = Insz::from_u64(insz as u64).expect("every INSZ is valid");
        let sex = Sex::from_code(&text(&persons, "sex", row).unwrap()).unwrap();
        let birth = date(&persons, "birth_date", row).unwrap();
        let (y, m, d) = civil_from_days(birth);
        assert_eq!(info.sex, Some(sex), "the INSZ encodes the sex");
        assert_eq!(
            (
                info.birth_date.year,
                u32::from(info.birth_date.month),
                u32::from(info.birth_date.day)
            ),
            (y, m, d)
        );
        let p = Person {
            sex,
            birth,
            country_of_birth: text(&persons, "country_of_birth", row).unwrap(),
            first: text(&persons, "first_nationality", row),
            registration: date(&persons, "registration_date", row),
            naturalisation: date(&persons, "naturalisation_date", row),
        };
        for field in [
            "country_of_birth",
            "first_nationality",
            "father_first_nationality",
            "mother_first_nationality",
        ] {
            if let Some(c) = text(&persons, field, row) {
                assert_eq!(
                    codelists::country(&c).map(|c| c.alpha2.as_str()),
                    Some(c.as_str()),
                    "{field} {c}"
                );
            }
        }
        // Nationality history and registration.
        if let Some(n) = p.naturalisation {
            let first = p
                .first
                .as_deref()
                .expect("a naturalised person has a first nationality");
            assert_ne!(first, "BE", "naturalised persons were foreign first");
            let r = p.registration.expect("naturalised persons are registered");
            assert!(r < n, "registration before naturalisation");
            assert!(civil_from_days(n).0 <= 2021);
        }
        if let Some(r) = p.registration {
            assert!(r >= birth);
            if p.country_of_birth == "BE" {
                assert_eq!(r, birth, "born in Belgium: registered at birth");
            }
        }
        let level = persons
            .column_by_name("education_level")
            .unwrap()
            .as_primitive::<Int32Type>()
            .value(row);
        assert!((0..=9).contains(&level));
        assert!(codelists::is_study_field(
            &text(&persons, "study_field", row).unwrap()
        ));
        assert!(people.insert(insz, p).is_none(), "one row per person");
    }

    let mut years_of: HashMap<i64, Vec<i32>> = HashMap::new();
    let mut current_of: HashMap<i64, Vec<(i32, String)>> = HashMap::new();
    let mut employers: HashMap<i64, (i32, String)> = HashMap::new();
    let federal_divisions: HashSet<&str> =
        ["84", "85", "49", "52", "53", "61", "71", "72", "91", "92"].into();
    let mut rows = 0;
    for &year in wh.years() {
        let batch = concat(
            wh.person_years_batches(year).unwrap(),
            kluis_model::schema::person_years_schema(),
        );
        rows += batch.num_rows();
        for row in 0..batch.num_rows() {
            let insz = batch.column(0).as_primitive::<Int64Type>().value(row);
            assert_eq!(batch.column(1).as_primitive::<Int32Type>().value(row), year);
            let p = people.get(&insz).expect("each person-year's person exists");
            let age = year - civil_from_days(p.birth).0;
            assert!((18..=64).contains(&age), "working ages only: {age}");
            let region = text(&batch, "region", row).unwrap();
            assert!(codelists::is_region(&region));
            let current = text(&batch, "current_nationality", row).unwrap();
            let employer_type = batch
                .column_by_name("employer_type")
                .unwrap()
                .as_primitive::<Int32Type>()
                .value(row);
            let statuut = batch
                .column_by_name("statuut")
                .unwrap()
                .as_primitive::<Int32Type>()
                .value(row);
            let nace = text(&batch, "nace", row).unwrap();
            let employer_id = batch
                .column_by_name("employer_id")
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(row);
            let t = codelists::employer_type(employer_type as u8)
                .expect("employer type in the code list");
            let s = codelists::statuut(statuut as u8).expect("statuut in the code list");
            assert!(
                !s.public_only || t.public,
                "civil servants only at public employers"
            );
            codelists::nace_division(&nace).expect("valid NACE");
            if t.group == kluis_model::EmployerGroup::Federal {
                assert!(
                    federal_divisions.contains(&nace[..2]),
                    "federal employer in NACE {nace}"
                );
            }
            // An employer keeps its type and activity.
            let known = employers
                .entry(employer_id)
                .or_insert((employer_type, nace.clone()));
            assert_eq!(*known, (employer_type, nace));
            years_of.entry(insz).or_default().push(year);
            current_of.entry(insz).or_default().push((year, current));
        }
    }
    assert_eq!(rows as u64, generated.manifest.person_year_rows());
    assert_eq!(
        years_of.len(),
        people.len(),
        "every person works at least one year"
    );
    for (insz, years) in &years_of {
        // One spell, one row per year: the age goes up by one each year.
        assert!(
            years.windows(2).all(|w| w[1] == w[0] + 1),
            "contiguous years"
        );
        let p = &people[insz];
        let mut switches = 0;
        let history = &current_of[insz];
        for (i, (year, current)) in history.iter().enumerate() {
            let naturalised = p
                .naturalisation
                .is_some_and(|n| n < days_from_civil(*year, 1, 1));
            let expected = if naturalised {
                "BE"
            } else {
                p.first.as_deref().unwrap_or("XU")
            };
            assert_eq!(current, expected, "current nationality on 1 January {year}");
            if i > 0 && history[i - 1].1 != *current {
                switches += 1;
            }
        }
        assert!(switches <= 1, "nationality switches at most once");
    }
    // Both sexes, both kinds of numbers, every region and employer group occur.
    assert!(people.values().any(|p| p.sex == Sex::F) && people.values().any(|p| p.sex == Sex::M));
    assert!(people.values().any(|p| p.naturalisation.is_some()));
}

#[test]
fn a_medium_population_meets_its_calibration() {
    // 200,000 persons: the report's tolerances plus three standard errors of sampling noise.
    let dir = tempfile::tempdir().unwrap();
    let generated = make(&dir.path().join("wh"), 200_000, 5, 2);
    let report = &generated.report;
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.pass)
        .map(|c| {
            format!(
                "{} {:?}: target {:?}/{:?}, achieved {}",
                c.measure, c.year, c.target, c.range, c.achieved
            )
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(report.checks.len() > 250);
    // The report is in the warehouse, and its counts are the warehouse's.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("wh/calibration.json")).unwrap())
            .unwrap();
    assert_eq!(json["failed"], 0);
    assert_eq!(
        json["person_years"].as_u64(),
        Some(generated.manifest.person_year_rows())
    );
    let employees_2010 = report
        .checks
        .iter()
        .find(|c| c.measure == "employees" && c.year == Some(2010))
        .unwrap();
    assert_eq!(
        employees_2010.achieved as u64,
        generated.manifest.person_years[&2010]
    );
    assert!((employees_2010.target.unwrap() - 3_722_319.0 * 200_000.0 / 5_000_000.0).abs() < 1e-6);
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "parquet") {
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn the_same_seed_gives_the_same_bytes_whatever_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    make(&dir.path().join("a"), 25_000, 42, 2);
    make(&dir.path().join("b"), 25_000, 42, 1);
    make(&dir.path().join("c"), 25_000, 43, 2);
    let (a, b, c) = (
        files(&dir.path().join("a")),
        files(&dir.path().join("b")),
        files(&dir.path().join("c")),
    );
    assert_eq!(a.len(), 13);
    assert!(a == b, "same seed, same bytes");
    assert_ne!(
        a["persons.parquet"], c["persons.parquet"],
        "another seed, another population"
    );
    let report = |d: &str| std::fs::read(dir.path().join(d).join("calibration.json")).unwrap();
    assert_eq!(report("a"), report("b"));
}

#[test]
fn export_and_ingest_give_identical_tables() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("wh");
    make(&original, 15_000, 8, 2);
    let csv = dir.path().join("csv");
    let wh = Warehouse::open(&original).unwrap();
    let summary = export_csv(&wh, &csv).unwrap();
    let reloaded = dir.path().join("wh2");
    let options = IngestOptions {
        persons: summary.persons_file.clone(),
        person_years: summary.person_years_file.clone(),
        warehouse: reloaded.clone(),
        load_good_rows: false,
        writer_threads: 2,
    };
    let mut problems = Vec::new();
    ingest(&options, &mut |r| problems.push(r.to_string())).unwrap();
    assert!(
        problems.is_empty(),
        "generated data passes every ingest check: {problems:?}"
    );
    let again = Warehouse::open(&reloaded).unwrap();
    assert_eq!(again.years(), wh.years());
    let persons = |w: &Warehouse| {
        concat(
            w.persons_batches().unwrap(),
            kluis_model::schema::persons_schema(),
        )
    };
    assert_eq!(persons(&again), persons(&wh));
    for &year in wh.years() {
        let rows = |w: &Warehouse| {
            concat(
                w.person_years_batches(year).unwrap(),
                kluis_model::schema::person_years_schema(),
            )
        };
        assert_eq!(rows(&again), rows(&wh), "person-years of {year}");
    }
}

#[test]
fn an_impossible_calibration_is_refused() {
    let text = kluis_synth::config::DEFAULT.replace("value = 5000000", "value = 3000000");
    let calibration = Calibration::parse("low.toml", &text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = GenerateOptions {
        persons: 1000,
        seed: 1,
        calibration,
        threads: 1,
    };
    let e = generate(&dir.path().join("wh"), &options, &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("distinct_persons 3000000 is too low"), "{e}");
    assert!(!dir.path().join("wh").exists());
}
