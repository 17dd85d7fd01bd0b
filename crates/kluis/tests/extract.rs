//! End-to-end: `kluis extract` and `kluis extract verify` on a small seeded warehouse.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use predicates::prelude::*;

mod common;

use common::{Env, REAL_DAY};

/// The demo project (samples of 100 federal and 150 other persons) on a generated warehouse of
/// 3000 persons, 2010-2021.
fn env() -> Env {
    // Trajectories in a population of 3000 are far more unique than in millions.
    Env::with_warehouse(3000, [100, 150], "[risk]\nmax_trajectory_risk = 0.9\n\n")
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

fn persons_insz(warehouse: &Path) -> Vec<i64> {
    let w = kluis_warehouse::Warehouse::open(warehouse).unwrap();
    let mut out = Vec::new();
    for b in w.persons_batches().unwrap() {
        let b = b.unwrap();
        let c = b.column(0).as_primitive::<Int64Type>();
        out.extend((0..b.num_rows()).map(|r| c.value(r)));
    }
    out
}

/// No INSZ of the warehouse, as 11-digit text, as plain decimal, or as an 8-byte integer in
/// either byte order, anywhere in the directory's files.
fn assert_no_insz(dir: &Path, insz: &[i64]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let numbers: HashSet<&str> = text
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| s.len() >= 10)
            .collect();
        let words: HashSet<[u8; 8]> = bytes.windows(8).map(|w| w.try_into().unwrap()).collect();
        for n in insz {
            assert!(!numbers.contains(format!("{n:011}").as_str()));
            assert!(!numbers.contains(n.to_string().as_str()));
            assert!(!words.contains(&n.to_le_bytes()) && !words.contains(&n.to_be_bytes()));
        }
    }
}

#[test]
fn a_steward_extracts_a_reproducible_verified_sample() {
    let env = env();
    let out = env.path("x1");
    env.extract_to("sam", REAL_DAY, &out, &["--suppress"])
        .assert()
        .success()
        .stdout(predicate::str::contains("federal: 100 of"))
        .stdout(predicate::str::contains(
            "non_federal_public_and_private: 150 of",
        ))
        .stderr(predicate::str::contains("the extract is in the clear"));
    let m = manifest(&out);
    assert_eq!(m["authorisation"], "99/001");
    assert_eq!(m["seed"], 9);
    assert_eq!(m["strata"][0]["sampled_persons"], 100);
    assert_eq!(m["strata"][1]["sampled_persons"], 150);
    assert!(m["kluis_version"].as_str().unwrap().starts_with("kluis "));
    assert_eq!(m["files"].as_array().unwrap().len(), 5);

    env.kluis("", REAL_DAY)
        .args(["extract", "verify"])
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("ok: 5 files"));
    assert_no_insz(&out, &persons_insz(&env.warehouse()));
    // The map from INSZ to number stays with the provider, encrypted.
    let map = env.path("state/projects/99-001/pseudonyms.map");
    assert!(std::fs::read(&map).unwrap().starts_with(b"KLUISMAP"));

    // Same seed, same project: the same rows, pseudonyms included.
    let again = env.path("x2");
    env.extract_to("sam", REAL_DAY, &again, &["--suppress"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(out.join("person_years.csv")).unwrap(),
        std::fs::read(again.join("person_years.csv")).unwrap()
    );
    let file = std::fs::File::open(out.join("person_years.parquet")).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1 << 20).unwrap();
    let mut persons = HashSet::new();
    for b in reader {
        let b = b.unwrap();
        let c = b.column(0).as_primitive::<Int64Type>();
        persons.extend((0..b.num_rows()).map(|r| c.value(r)));
    }
    assert_eq!(persons.len(), 250, "every sampled person delivered");

    // The audit log says who, the seed, the rows and the hashes.
    let audit = env
        .kluis("", REAL_DAY)
        .args(["audit", "show"])
        .output()
        .unwrap();
    let audit = String::from_utf8(audit.stdout).unwrap();
    assert!(audit.contains("extract"), "{audit}");
    let hash = m["files"][0]["sha256"].as_str().unwrap();
    let export = env.path("audit.jsonl");
    env.kluis("", REAL_DAY)
        .args(["audit", "export"])
        .arg(&export)
        .assert()
        .success();
    let exported = std::fs::read_to_string(&export).unwrap();
    assert!(exported.contains(hash) && exported.contains("\"seed\":9"));

    // Tampering is named.
    let csv = out.join("person_years.csv");
    let mut bytes = std::fs::read(&csv).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&csv, bytes).unwrap();
    env.kluis("", REAL_DAY)
        .args(["extract", "verify"])
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "person_years.csv does not match the manifest",
        ));

    // The map is destroyed with the project (early here: a steward's decision).
    env.kluis("sam", REAL_DAY)
        .args([
            "project",
            "destroy",
            "99-001",
            "--reason",
            "no longer needed",
        ])
        .assert()
        .success();
    assert!(!map.exists());
}

#[test]
fn an_encrypted_extract_holds_only_age_files_for_data() {
    let env = env();
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let out = env.path("sealed");
    let reason = "test: a population of 3000 persons cannot meet k = 5";
    env.extract_to(
        "sam",
        REAL_DAY,
        &out,
        &["--recipient", &recipient, "--accept-risk", reason],
    )
    .assert()
    .success()
    .stderr(predicate::str::contains("in the clear").not())
    .stderr(predicate::str::contains("delivered above the risk limits"));
    let risk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("risk.json")).unwrap()).unwrap();
    assert_eq!(risk["accepted_with_reason"], reason);
    assert!(risk["person_years"]["below_k"].as_u64().unwrap() > 0);
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
    assert_eq!(manifest(&out)["age_recipient"], recipient.as_str());
    env.kluis("", REAL_DAY)
        .args(["extract", "verify"])
        .arg(&out)
        .assert()
        .success();
    assert_no_insz(&out, &persons_insz(&env.warehouse()));
    let open = |id: &age::x25519::Identity| {
        let file = std::fs::File::open(out.join("person_years.parquet.age")).unwrap();
        let decryptor = age::Decryptor::new(file).unwrap();
        decryptor
            .decrypt(std::iter::once(id as &dyn age::Identity))
            .map(|mut r| {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut r, &mut v).unwrap();
                v
            })
    };
    assert!(open(&identity).unwrap().starts_with(b"PAR1"));
    assert!(open(&age::x25519::Identity::generate()).is_err());

    env.extract_to(
        "sam",
        REAL_DAY,
        &env.path("bad"),
        &["--recipient", "age1oops"],
    )
    .assert()
    .code(2)
    .stderr(predicate::str::contains("not an age X25519 public key"));
    assert!(!env.path("bad").exists());
}

/// The test warehouse without one year, loaded as a provider would: exported to CSV, the year's
/// rows dropped, and ingested.
fn without_year(env: &Env, year: i32) -> PathBuf {
    let csv = env.path("csv");
    env.kluis("", REAL_DAY)
        .args(["warehouse", "export", "--warehouse"])
        .arg(env.warehouse())
        .arg("--out")
        .arg(&csv)
        .assert()
        .success();
    let person_years = csv.join("person_years.csv");
    let text = std::fs::read_to_string(&person_years).unwrap();
    let marker = format!(",{year},");
    let kept: String = text
        .lines()
        .filter(|line| !line.contains(&marker))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&person_years, kept).unwrap();
    let short = env.path("short");
    env.kluis("", REAL_DAY)
        .arg("ingest")
        .arg("--persons")
        .arg(csv.join("persons.csv"))
        .arg("--person-years")
        .arg(&person_years)
        .arg("--warehouse")
        .arg(&short)
        .assert()
        .success();
    short
}

/// Nothing at all is written next to the output when a run is refused.
fn assert_nothing_written(env: &Env, out: &Path) {
    assert!(!out.exists());
    let stray: Vec<String> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".extract"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn refused_runs_write_nothing() {
    let env = env();
    let out = env.path("x");
    // Not the steward.
    env.extract_to("rita", REAL_DAY, &out, &[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("needs the steward role"));
    assert_nothing_written(&env, &out);
    // Above the risk limits, without --suppress or --accept-risk.
    env.extract_to("sam", REAL_DAY, &out, &[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("fewer than k = 5 persons"))
        .stderr(predicate::str::contains("Nothing was written"));
    assert_nothing_written(&env, &out);
    // No coarser coding brings a population of 3000 under k on the default quasi-identifiers.
    env.extract_to("sam", REAL_DAY, &out, &["--recode"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no re-coding meets"));
    assert_nothing_written(&env, &out);
    env.extract_to("sam", REAL_DAY, &out, &["--recode", "--suppress"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
    assert_nothing_written(&env, &out);
    // A reason too short to be one.
    env.extract_to("sam", REAL_DAY, &out, &["--accept-risk", "ok"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("needs a written reason"));
    assert_nothing_written(&env, &out);
    // Expired.
    env.extract_to("sam", "2032-01-01", &out, &[])
        .assert()
        .failure()
        .stderr(predicate::str::contains("2031-12-31"));
    assert_nothing_written(&env, &out);
    // The warehouse lacks a year.
    let short = without_year(&env, 2010);
    env.kluis("sam", REAL_DAY)
        .args(["extract", "--project", "99/001", "--out"])
        .arg(&out)
        .arg("--warehouse")
        .arg(&short)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("lacks year(s) [2010]"));
    assert_nothing_written(&env, &out);
    // An existing directory is not overwritten.
    std::fs::create_dir(&out).unwrap();
    env.extract_to("sam", REAL_DAY, &out, &[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already exists"));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    // The refusals were audited.
    let audit = env
        .kluis("", REAL_DAY)
        .args(["audit", "show"])
        .output()
        .unwrap();
    let audit = String::from_utf8(audit.stdout).unwrap();
    assert!(audit.contains("rita"), "{audit}");
    let export = env.path("audit.jsonl");
    env.kluis("", REAL_DAY)
        .args(["audit", "export"])
        .arg(&export)
        .assert()
        .success();
    let exported = std::fs::read_to_string(&export).unwrap();
    assert!(
        exported.contains("re-identification risk above the authorisation's limits"),
        "{exported}"
    );
}
