//! End-to-end tests of `generate`, `ingest` and `warehouse info/export`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

fn kluis() -> Command {
    Command::cargo_bin("kluis").unwrap()
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_owned(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// Generates a small warehouse and exports it to CSV; returns (warehouse, csv dir).
fn generated(dir: &Path, persons: u32) -> (PathBuf, PathBuf) {
    let wh = dir.join("wh");
    kluis()
        .args([
            "generate",
            "--persons",
            &persons.to_string(),
            "--seed",
            "4",
            "--warehouse",
        ])
        .arg(&wh)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("salaried employees on 31 December")
                .and(predicate::str::contains("checks pass")),
        );
    let csv = dir.join("csv");
    kluis()
        .args(["warehouse", "export", "--warehouse"])
        .arg(&wh)
        .arg("--out")
        .arg(&csv)
        .assert()
        .success();
    (wh, csv)
}

#[test]
fn generate_info_export_and_ingest_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (wh, csv) = generated(dir.path(), 3000);
    assert!(wh.join("calibration.json").is_file());
    kluis()
        .args(["warehouse", "info", "--warehouse"])
        .arg(&wh)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("persons: 3000 rows")
                .and(predicate::str::contains("2010"))
                .and(predicate::str::contains("2021"))
                .and(predicate::str::contains("schema person_years:"))
                .and(predicate::str::contains("naturalisation_date"))
                .and(predicate::str::contains("size on disk:"))
                .and(predicate::str::contains("source: generated, seed 4")),
        );
    let again = dir.path().join("wh2");
    kluis()
        .args(["ingest", "--persons"])
        .arg(csv.join("persons.csv"))
        .arg("--person-years")
        .arg(csv.join("person_years.csv"))
        .arg("--warehouse")
        .arg(&again)
        .assert()
        .success()
        .stdout(predicate::str::contains("loaded 3000 persons"));
    // Exporting the reloaded warehouse gives the very same CSV files.
    let csv2 = dir.path().join("csv2");
    kluis()
        .args(["warehouse", "export", "--warehouse"])
        .arg(&again)
        .arg("--out")
        .arg(&csv2)
        .assert()
        .success();
    for name in ["persons.csv", "person_years.csv"] {
        assert_eq!(
            std::fs::read(csv.join(name)).unwrap(),
            std::fs::read(csv2.join(name)).unwrap(),
            "{name}"
        );
    }
    // The Parquet files are the same bytes too except for row-group boundaries, so compare
    // through the CSV above; and info shows where it came from.
    kluis()
        .args(["warehouse", "info", "--warehouse"])
        .arg(&again)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "source: ingested from persons.csv and person_years.csv, 0 bad row(s)",
        ));
}

#[test]
fn a_bad_row_refuses_the_load_and_a_reject_file_sets_it_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (wh, csv) = generated(dir.path(), 1500);
    let before = snapshot(&wh);
    // Break one row of each file: an unknown region and a sex that contradicts the INSZ.
    let years = std::fs::read_to_string(csv.join("person_years.csv")).unwrap();
    let mut lines: Vec<String> = years.lines().map(str::to_owned).collect();
    lines[5] = lines[5]
        .replacen(",02000,", ",09000,", 1)
        .replacen(",03000,", ",09000,", 1)
        .replacen(",04000,", ",09000,", 1);
    std::fs::write(csv.join("person_years.csv"), lines.join("\n") + "\n").unwrap();
    let persons = std::fs::read_to_string(csv.join("persons.csv")).unwrap();
    let mut plines: Vec<String> = persons.lines().map(str::to_owned).collect();
    let flipped = if plines[3].contains(",M,") {
        plines[3].replacen(",M,", ",F,", 1)
    } else {
        plines[3].replacen(",F,", ",M,", 1)
    };
    plines[3] = flipped;
    std::fs::write(csv.join("persons.csv"), plines.join("\n") + "\n").unwrap();
    let numbers: Vec<String> = plines[1..].iter().map(|l| l[..11].to_owned()).collect();

    let out = kluis()
        .args(["ingest", "--persons"])
        .arg(csv.join("persons.csv"))
        .arg("--person-years")
        .arg(csv.join("person_years.csv"))
        .arg("--warehouse")
        .arg(&wh)
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("persons.csv line 4, field sex"), "{stderr}");
    assert!(stderr.contains("disagrees with the INSZ"), "{stderr}");
    assert!(
        stderr.contains("person_years.csv line 6, field region, value '09000': not a region code"),
        "{stderr}"
    );
    assert!(
        stderr.contains("nothing was loaded and the warehouse is unchanged"),
        "{stderr}"
    );
    for n in &numbers {
        assert!(!stderr.contains(n.as_str()), "an INSZ in the errors");
    }
    assert_eq!(
        snapshot(&wh),
        before,
        "the refused load left the warehouse as it was"
    );

    let rejects = dir.path().join("rejects.csv");
    kluis()
        .args(["ingest", "--persons"])
        .arg(csv.join("persons.csv"))
        .arg("--person-years")
        .arg(csv.join("person_years.csv"))
        .arg("--warehouse")
        .arg(&wh)
        .arg("--reject-file")
        .arg(&rejects)
        .assert()
        .success()
        .stderr(predicate::str::contains("bad row(s) left out"));
    let text = std::fs::read_to_string(&rejects).unwrap();
    assert!(text.starts_with("file,location,field,value,reason\n"));
    assert!(text.contains("persons.csv,line 4,sex,"), "{text}");
    assert!(
        text.contains("person_years.csv,line 6,region,09000,"),
        "{text}"
    );
    for n in &numbers {
        assert!(!text.contains(n.as_str()), "an INSZ in the reject file");
    }
    assert_ne!(snapshot(&wh), before, "the good rows were loaded");
}

/// An ingest killed while it writes leaves the old warehouse byte-identical: the person-years
/// come through a pipe, so the process is surely mid-load when it is killed.
#[test]
fn an_interrupted_ingest_keeps_the_old_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    let (wh, csv) = generated(dir.path(), 1500);
    let before = snapshot(&wh);
    let fifo = dir.path().join("person_years.csv");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kluis"))
        .args(["ingest", "--persons"])
        .arg(csv.join("persons.csv"))
        .arg("--person-years")
        .arg(&fifo)
        .arg("--warehouse")
        .arg(&wh)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut pipe = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let years = std::fs::read_to_string(csv.join("person_years.csv")).unwrap();
    let half: String = years
        .lines()
        .take(years.lines().count() / 2)
        .map(|l| format!("{l}\n"))
        .collect();
    pipe.write_all(half.as_bytes()).unwrap();
    pipe.flush().unwrap();
    // Wait until the new warehouse is being built beside the old one.
    let started = Instant::now();
    let building = || {
        std::fs::read_dir(dir.path()).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".wh.kluis-tmp-")
        })
    };
    while !building() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the ingest never started writing"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(pipe);
    assert_eq!(snapshot(&wh), before, "the old warehouse is untouched");
    kluis()
        .args(["warehouse", "info", "--warehouse"])
        .arg(&wh)
        .assert()
        .success();
    assert!(building(), "the killed ingest left its staging directory");

    // The next ingest removes it; its persons come through a pipe with no file name to go by.
    kluis()
        .args(["ingest", "--persons", "/dev/stdin", "--person-years"])
        .arg(csv.join("person_years.csv"))
        .arg("--warehouse")
        .arg(&wh)
        .write_stdin(std::fs::read(csv.join("persons.csv")).unwrap())
        .assert()
        .success()
        .stdout(predicate::str::contains("loaded 1500 persons"));
    assert!(!building(), "the staging directory was cleaned");
}

#[test]
fn an_overlong_line_is_refused_without_reading_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let (_wh, csv) = generated(dir.path(), 200);
    // 64 MiB of one line after the header: refused after reading a few MiB of it.
    let header = std::fs::read_to_string(csv.join("persons.csv"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let mut input = format!("{header}\n").into_bytes();
    input.resize(input.len() + (64 << 20), b'7');
    let long = dir.path().join("long.csv");
    std::fs::write(&long, input).unwrap();
    kluis()
        .args(["ingest", "--persons"])
        .arg(&long)
        .arg("--person-years")
        .arg(csv.join("person_years.csv"))
        .arg("--warehouse")
        .arg(dir.path().join("new"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the record starting on line 2 has not ended after",
        ));
    assert!(!dir.path().join("new").exists());
}

#[test]
fn bad_arguments_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("home");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("notes.txt"), "keep me").unwrap();
    kluis()
        .args(["generate", "--persons", "100", "--warehouse"])
        .arg(&precious)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "neither empty nor a kluis warehouse",
        ));
    assert_eq!(
        std::fs::read_to_string(precious.join("notes.txt")).unwrap(),
        "keep me"
    );
    let calibration = dir.path().join("c.toml");
    std::fs::write(&calibration, "first_year = 2010\n").unwrap();
    kluis()
        .args(["generate", "--persons", "100", "--warehouse"])
        .arg(dir.path().join("wh"))
        .arg("--calibration")
        .arg(&calibration)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a valid calibration file"));
    kluis()
        .args(["generate", "--warehouse"])
        .arg(dir.path().join("wh"))
        .assert()
        .code(2);
    kluis()
        .args(["warehouse", "info", "--warehouse"])
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not a kluis warehouse"));
}
