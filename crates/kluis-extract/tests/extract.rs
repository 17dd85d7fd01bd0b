//! The population, sampling, pseudonyms, files and verification on a small generated warehouse.
//! Expected values are recomputed here from the raw warehouse, independently of the crate.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Int32Type, Int64Type};
use kluis_extract::{
    CodedPopulation, Error, ExtractOptions, coded_population, verify, write_extract,
};
use kluis_model::codelists;
use kluis_project::Authorisation;
use kluis_pseudo::ProjectKey;
use kluis_warehouse::Warehouse;

const PERSONS: usize = 4000;

fn warehouse() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        kluis_extract::fixture::write_warehouse(&dir.path().join("wh"), PERSONS, 2008, 2022, 11)
            .unwrap();
        dir
    })
    .path()
    .join("wh")
    .leak()
}

fn demo(federal: u32, other: u32) -> Authorisation {
    let mut a = Authorisation::load(Path::new("../../examples/demo-authorisation.toml")).unwrap();
    a.strata[0].sample_size = federal;
    a.strata[1].sample_size = other;
    // Statuut 4 left out, so the rule has rows to exclude.
    a.population.statuut = vec![1, 2, 3];
    a
}

fn key(byte: u8) -> ProjectKey {
    ProjectKey::from_bytes([byte; 32])
}

fn population(a: &Authorisation, k: u8) -> CodedPopulation {
    coded_population(&Warehouse::open(warehouse()).unwrap(), a, &key(k)).unwrap()
}

/// Raw warehouse, read independently: INSZ → (birth year); person-years as
/// (insz, year, statuut, employer_type).
struct Raw {
    birth_year: HashMap<i64, i32>,
    person_years: Vec<(i64, i32, i32, i32)>,
}

fn raw() -> &'static Raw {
    static RAW: OnceLock<Raw> = OnceLock::new();
    RAW.get_or_init(|| {
        let w = Warehouse::open(warehouse()).unwrap();
        let mut birth_year = HashMap::new();
        for b in w.persons_batches().unwrap() {
            let b = b.unwrap();
            let insz = b.column(0).as_primitive::<Int64Type>();
            let birth = b.column(2).as_primitive::<Date32Type>();
            for r in 0..b.num_rows() {
                let date = arrow::temporal_conversions::date32_to_datetime(birth.value(r)).unwrap();
                birth_year.insert(insz.value(r), chrono::Datelike::year(&date));
            }
        }
        let mut person_years = Vec::new();
        for &year in w.years() {
            for b in w.person_years_batches(year).unwrap() {
                let b = b.unwrap();
                let col = |n: &str| b.column_by_name(n).unwrap().clone();
                let insz = col("insz");
                let (t, s) = (col("employer_type"), col("statuut"));
                for r in 0..b.num_rows() {
                    person_years.push((
                        insz.as_primitive::<Int64Type>().value(r),
                        year,
                        s.as_primitive::<Int32Type>().value(r),
                        t.as_primitive::<Int32Type>().value(r),
                    ));
                }
            }
        }
        Raw {
            birth_year,
            person_years,
        }
    })
}

/// The demo rules, written out: 2010-2021, age (year - birth year) 18-64, statuut 1-3;
/// federal if any qualifying federal year, else other if any qualifying non-federal public or
/// private year. INSZ → (stratum, qualifying years).
fn expected_strata() -> HashMap<i64, (&'static str, Vec<i32>)> {
    let raw = raw();
    let mut out: HashMap<i64, (&'static str, Vec<i32>)> = HashMap::new();
    for &(insz, year, statuut, employer_type) in &raw.person_years {
        let age = year - raw.birth_year[&insz];
        let group = codelists::employer_type(employer_type as u8)
            .unwrap()
            .group
            .code();
        if !(2010..=2021).contains(&year)
            || !(18..=64).contains(&age)
            || !(1..=3).contains(&statuut)
            || group == "UNKNOWN"
        {
            continue;
        }
        let entry = out
            .entry(insz)
            .or_insert(("non_federal_public_and_private", vec![]));
        if group == "FEDERAL" {
            entry.0 = "federal";
        }
        entry.1.push(year);
    }
    out
}

fn all_rows(p: &CodedPopulation, sample: Option<&kluis_extract::Sample>) -> RecordBatch {
    let batches: Vec<RecordBatch> = p
        .years()
        .map(|y| p.year_batch(y, sample).unwrap())
        .collect();
    arrow::compute::concat_batches(&p.schema(), &batches).unwrap()
}

fn pseudonyms(b: &RecordBatch) -> Vec<u32> {
    let c = b
        .column_by_name("pseudonym")
        .unwrap()
        .as_primitive::<Int64Type>();
    (0..b.num_rows()).map(|r| c.value(r) as u32).collect()
}

fn strings(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let c = b.column_by_name(name).unwrap().as_string::<i32>();
    (0..b.num_rows())
        .map(|r| c.is_valid(r).then(|| c.value(r).to_owned()))
        .collect()
}

#[test]
fn population_strata_and_person_years_follow_the_authorisation() {
    let a = demo(100, 100);
    let p = population(&a, 1);
    let expected = expected_strata();
    assert_eq!(p.persons(), expected.len());
    let map = p.pseudonym_map();
    // Every qualifying person-year is in the full view, in the right stratum, and no other.
    let rows = all_rows(&p, None);
    let mut got: HashMap<u32, (String, Vec<i32>)> = HashMap::new();
    let years = rows
        .column_by_name("year")
        .unwrap()
        .as_primitive::<Int32Type>();
    for (r, (n, s)) in pseudonyms(&rows)
        .into_iter()
        .zip(strings(&rows, "stratum"))
        .enumerate()
    {
        let e = got.entry(n).or_insert((s.clone().unwrap(), vec![]));
        assert_eq!(
            Some(&e.0),
            s.as_ref(),
            "a person's stratum is the same every year"
        );
        e.1.push(years.value(r));
    }
    assert_eq!(got.len(), expected.len());
    for (insz, (stratum, years)) in &expected {
        let n = map.number(*insz as u64).unwrap();
        let (s, y) = &got[&n];
        assert_eq!(s, stratum);
        let mut y = y.clone();
        y.sort();
        assert_eq!(&y, years);
    }
    let counts: Vec<u64> = p.strata().iter().map(|s| s.persons).collect();
    assert!(
        counts.iter().all(|&c| c > 100),
        "both strata populated: {counts:?}"
    );
    assert_eq!(counts.iter().sum::<u64>(), expected.len() as u64);
}

#[test]
fn only_authorised_columns_in_authorised_codings() {
    let a = demo(100, 100);
    let p = population(&a, 1);
    let rows = all_rows(&p, None);
    let schema = rows.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut want = vec!["pseudonym", "year", "stratum"];
    want.extend(a.variables.iter().map(|v| v.name.as_str()));
    assert_eq!(names, want);
    let codes = |list: &str| -> HashSet<String> {
        codelists::get(list)
            .unwrap()
            .codes()
            .map(str::to_owned)
            .collect()
    };
    for v in &a.variables {
        let field = rows.schema().field_with_name(&v.name).unwrap().clone();
        let entry = kluis_project::variables::coding(&v.name, &v.coding).unwrap();
        match &entry.codelist {
            Some(list) => {
                let allowed = codes(list);
                for value in strings(&rows, &v.name).into_iter().flatten() {
                    assert!(
                        allowed.contains(&value),
                        "{} = {value:?} not in {list}",
                        v.name
                    );
                }
            }
            None => {
                assert_eq!(field.data_type(), &arrow::datatypes::DataType::Int32);
                let c = rows
                    .column_by_name(&v.name)
                    .unwrap()
                    .as_primitive::<Int32Type>();
                for r in 0..rows.num_rows() {
                    if c.is_valid(r) {
                        assert!((1900..=2021).contains(&c.value(r)), "{} is a year", v.name);
                    }
                }
            }
        }
    }
    // Demo codings: NACE as a section letter, education as a band, employer as a group.
    assert!(
        strings(&rows, "nace")
            .iter()
            .flatten()
            .all(|s| s.len() == 1)
    );
    let groups: HashSet<String> = strings(&rows, "employer_type")
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(
        groups,
        ["FEDERAL", "NON_FEDERAL_PUBLIC", "PRIVATE"]
            .map(String::from)
            .into()
    );
    let ages: HashSet<String> = strings(&rows, "age").into_iter().flatten().collect();
    assert!(ages.iter().all(|a| codes("age_classes_5").contains(a)) && ages.len() > 5);
    assert_eq!(
        strings(&rows, "age").iter().filter(|a| a.is_none()).count(),
        0
    );
    let migration: HashSet<String> = strings(&rows, "migration_background")
        .into_iter()
        .flatten()
        .collect();
    assert!(
        migration.len() > 3,
        "derived per person-year: {migration:?}"
    );
}

#[test]
fn pseudonyms_are_a_keyed_permutation_stable_across_runs_and_unrelated_across_projects() {
    let a = demo(100, 100);
    let p1 = population(&a, 1);
    let again = population(&a, 1);
    let other = population(&a, 2);
    let n = p1.persons();
    let m1: Vec<(u64, u32)> = p1.pseudonym_map().iter().collect();
    let numbers: HashSet<u32> = m1.iter().map(|x| x.1).collect();
    assert_eq!(numbers, (1..=n as u32).collect(), "a permutation of 1..N");
    assert_eq!(m1, again.pseudonym_map().iter().collect::<Vec<_>>());
    let m2: Vec<(u64, u32)> = other.pseudonym_map().iter().collect();
    let same = m1.iter().zip(&m2).filter(|(a, b)| a.1 == b.1).count();
    assert!(
        same < n / 100 + 3,
        "another key numbers differently ({same} of {n} equal)"
    );
    // Spearman rank correlation between INSZ order (the map iterates in INSZ order) and number.
    let mean = (n as f64 + 1.0) / 2.0;
    let (mut cov, mut var) = (0.0, 0.0);
    for (rank, (_, number)) in m1.iter().enumerate() {
        let (x, y) = (rank as f64 + 1.0 - mean, *number as f64 - mean);
        cov += x * y;
        var += x * x;
    }
    let rho = cov / var;
    assert!(n > 2000 && rho.abs() < 0.1, "rho = {rho} over {n} persons");
    // Whole view identical across runs; the same person keeps one number in every year.
    assert_eq!(all_rows(&p1, None), all_rows(&again, None));
}

#[test]
fn the_sample_is_seeded_stratified_and_delivers_every_qualifying_year() {
    let a = demo(150, 250);
    let p = population(&a, 1);
    let s = p.sample(42);
    assert_eq!(s.strata[0].len(), 150);
    assert_eq!(s.strata[1].len(), 250);
    assert_eq!(s, p.sample(42));
    assert_ne!(s.strata, p.sample(43).strata);
    for (i, picked) in s.strata.iter().enumerate() {
        let all: HashSet<u32> = p.stratum_pseudonyms(i).into_iter().collect();
        assert!(
            picked.iter().all(|n| all.contains(n)),
            "sampled from its own stratum"
        );
        assert_eq!(
            picked.iter().collect::<HashSet<_>>().len(),
            picked.len(),
            "no repeats"
        );
    }
    let rows = all_rows(&p, Some(&s));
    let full = all_rows(&p, None);
    let sampled: HashSet<u32> = s.strata.iter().flatten().copied().collect();
    let count = |b: &RecordBatch| {
        let mut m = BTreeMap::new();
        for n in pseudonyms(b) {
            *m.entry(n).or_insert(0) += 1;
        }
        m
    };
    let want: BTreeMap<u32, i32> = count(&full)
        .into_iter()
        .filter(|(n, _)| sampled.contains(n))
        .collect();
    assert_eq!(count(&rows), want);
    // A stratum smaller than its sample size is taken whole.
    let big = demo(1_000_000, 10);
    let pb = population(&big, 1);
    assert_eq!(pb.sample(1).strata[0].len() as u64, pb.strata()[0].persons);
}

fn options(out: &Path, recipient: Option<String>) -> ExtractOptions {
    ExtractOptions {
        out: out.to_owned(),
        seed: 7,
        recipient,
        kluis_version: "kluis test".into(),
        created_at: "2026-03-01T00:00:00Z".into(),
        suppress: false,
        recode: false,
        // This test is about the files; tests/risk.rs judges the risk of this small population.
        accept_risk: Some("a test population of 4000 persons".into()),
    }
}

fn assert_no_insz(dir: &Path) {
    let insz: Vec<i64> = raw().birth_year.keys().copied().collect();
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let digits: HashSet<&str> = text
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| s.len() >= 10)
            .collect();
        let windows: HashSet<[u8; 8]> = bytes.windows(8).map(|w| w.try_into().unwrap()).collect();
        for n in &insz {
            assert!(!digits.contains(format!("{n:011}").as_str()));
            assert!(!digits.contains(n.to_string().as_str()));
            assert!(!windows.contains(&n.to_le_bytes()) && !windows.contains(&n.to_be_bytes()));
        }
    }
}

#[test]
fn extract_files_manifest_verify_and_no_insz() {
    let a = demo(120, 130);
    let p = population(&a, 1);
    let s = p.sample(7);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let d = write_extract(&a, &p, &s, &options(&out, None)).unwrap();
    let names: HashSet<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let want: HashSet<String> = [
        "person_years.parquet",
        "person_years.csv",
        "codebook.md",
        "codebook.json",
        "risk.json",
        "manifest.json",
    ]
    .map(String::from)
    .into();
    assert_eq!(names, want, "only the extract, no temporary left over");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    let m = &d.manifest;
    assert_eq!(m.strata[0].sampled_persons, 120);
    assert_eq!(m.strata[1].sampled_persons, 130);
    assert_eq!(
        m.strata[0].sampling_fraction,
        120.0 / p.strata()[0].persons as f64
    );
    assert_eq!(m.rows, m.strata.iter().map(|s| s.rows).sum::<u64>());
    // The Parquet file holds what the sample gives, sorted by pseudonym and year.
    let file = std::fs::File::open(out.join("person_years.parquet")).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1 << 20).unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let data = arrow::compute::concat_batches(&p.schema(), &batches).unwrap();
    assert_eq!(data.num_rows() as u64, m.rows);
    let ps = pseudonyms(&data);
    assert!(ps.windows(2).all(|w| w[0] <= w[1]));
    let csv = std::fs::read_to_string(out.join("person_years.csv")).unwrap();
    assert_eq!(csv.lines().count() as u64, m.rows + 1);
    assert!(csv.starts_with("pseudonym,year,stratum,sex,age,"));
    let codebook: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("codebook.json")).unwrap()).unwrap();
    let nace = codebook["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "nace")
        .unwrap();
    assert_eq!(nace["coding"], "section");
    assert_eq!(nace["codes"].as_array().unwrap().len(), 21);
    assert!(
        std::fs::read_to_string(out.join("codebook.md"))
            .unwrap()
            .contains("| O | Public administration")
    );

    let v = verify(&out).unwrap();
    assert_eq!(v.manifest, d.manifest);
    assert!(v.unlisted.is_empty());
    assert_no_insz(&out);

    // Tampering is caught, naming the file.
    let mut bytes = std::fs::read(out.join("person_years.csv")).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(out.join("person_years.csv"), bytes).unwrap();
    match verify(&out) {
        Err(Error::HashMismatch { file, .. }) => assert_eq!(file, "person_years.csv"),
        other => panic!("expected a mismatch, got {other:?}"),
    }
    // An existing directory is refused.
    assert!(matches!(
        write_extract(&a, &p, &s, &options(&out, None)),
        Err(Error::OutExists(_))
    ));
}

#[test]
fn an_encrypted_extract_opens_only_with_its_identity() {
    let a = demo(50, 50);
    let p = population(&a, 1);
    let s = p.sample(7);
    let identity = age::x25519::Identity::generate();
    let stranger = age::x25519::Identity::generate();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let d = write_extract(
        &a,
        &p,
        &s,
        &options(&out, Some(identity.to_public().to_string())),
    )
    .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "codebook.json",
            "codebook.md",
            "manifest.json",
            "person_years.csv.age",
            "person_years.parquet.age",
            "risk.json"
        ]
    );
    verify(&out).unwrap();
    assert_no_insz(&out);
    let decrypt = |id: &age::x25519::Identity| -> Result<Vec<u8>, age::DecryptError> {
        let file = std::fs::File::open(out.join("person_years.csv.age")).unwrap();
        let decryptor = age::Decryptor::new(file)?;
        let mut reader = decryptor.decrypt(std::iter::once(id as &dyn age::Identity))?;
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut plain).unwrap();
        Ok(plain)
    };
    let plain = decrypt(&identity).unwrap();
    assert!(plain.starts_with(b"pseudonym,year,stratum,"));
    use sha2::Digest;
    let entry = d
        .manifest
        .files
        .iter()
        .find(|f| f.name == "person_years.csv.age")
        .unwrap();
    assert_eq!(
        entry.plaintext_sha256.as_deref(),
        Some(hex::encode(sha2::Sha256::digest(&plain)).as_str())
    );
    assert!(decrypt(&stranger).is_err());
    assert!(matches!(
        write_extract(
            &a,
            &p,
            &s,
            &options(&tmp.path().join("y"), Some("age1nonsense".into()))
        ),
        Err(Error::BadRecipient(..))
    ));
    assert!(!tmp.path().join("y").exists());
}

#[test]
fn a_warehouse_without_an_authorised_year_is_refused() {
    let mut a = demo(10, 10);
    a.population.first_year = 2006;
    let w = Warehouse::open(warehouse()).unwrap();
    match coded_population(&w, &a, &key(1)) {
        Err(Error::MissingYears { missing, .. }) => assert_eq!(missing, vec![2006, 2007]),
        other => panic!("expected missing years, got {other:?}"),
    }
}

/// A copy of the test warehouse with one of its Parquet files rewritten by `change`.
fn changed_warehouse(
    file: &str,
    change: impl FnOnce(RecordBatch) -> RecordBatch,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("wh");
    let mut stack = vec![(warehouse().to_path_buf(), copy.clone())];
    while let Some((from, to)) = stack.pop() {
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                stack.push((entry.path(), target));
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let path = copy.join(file);
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&path).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let schema = arrow::array::RecordBatchReader::schema(&reader);
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let changed = change(arrow::compute::concat_batches(&schema, &batches).unwrap());
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None)
            .unwrap();
    writer.write(&changed).unwrap();
    writer.close().unwrap();
    dir
}

#[test]
fn person_years_in_any_order_give_the_same_population() {
    // The first pass looks persons up in the persons' order first; a year listed backwards must
    // go through the index and give the same numbers, strata and rows.
    let a = demo(50, 50);
    let reversed = changed_warehouse("person_years/year=2015/part-00000.parquet", |batch| {
        let rows = batch.num_rows() as u32;
        let backwards = arrow::array::UInt32Array::from_iter_values((0..rows).rev());
        arrow::compute::take_record_batch(&batch, &backwards).unwrap()
    });
    let original = population(&a, 1);
    let shuffled = coded_population(
        &Warehouse::open(reversed.path().join("wh")).unwrap(),
        &a,
        &key(1),
    )
    .unwrap();
    assert_eq!(shuffled.strata(), original.strata());
    assert_eq!(
        shuffled.year_batch(2015, None).unwrap(),
        original.year_batch(2015, None).unwrap()
    );
}

/// The test warehouse with the INSZ of `persons` row `row` (0-based) replaced by `insz` of the
/// first row's.
fn with_insz(row: usize, insz: impl FnOnce(i64) -> i64) -> tempfile::TempDir {
    changed_warehouse("persons.parquet", |batch| {
        let mut values: Vec<i64> = batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        values[row] = insz(values[0]);
        let mut columns = batch.columns().to_vec();
        columns[0] = std::sync::Arc::new(arrow::array::Int64Array::from(values));
        RecordBatch::try_new(batch.schema(), columns).unwrap()
    })
}

fn refusal(dir: &tempfile::TempDir) -> String {
    let w = Warehouse::open(dir.path().join("wh")).unwrap();
    match coded_population(&w, &demo(10, 10), &key(1)) {
        Err(e @ Error::BadValue { .. }) => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_person_listed_twice_or_without_a_valid_number_is_refused_with_its_row() {
    let twice = refusal(&with_insz(2, |first| first));
    assert!(twice.contains("row 3"), "{twice}");
    assert!(twice.contains("each person once"), "{twice}");
    let negative = refusal(&with_insz(4, |_| -1));
    assert!(negative.contains("row 5"), "{negative}");
    assert!(negative.contains("at most 11 digits"), "{negative}");
}
