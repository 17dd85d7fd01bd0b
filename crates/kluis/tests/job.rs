//! End-to-end: `kluis job check` and `kluis job run --on sample` on a synthetic extract.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use assert_cmd::Command;
use predicates::prelude::*;

/// An extract with `persons` persons over 1 to 3 years; returns person counts per region.
fn write_extract(dir: &Path, persons: i64) -> BTreeMap<String, usize> {
    let regions = ["BRU", "VLG", "WAL"];
    let (mut pseudonym, mut year, mut region, mut sex) = (vec![], vec![], vec![], vec![]);
    let mut per_region: BTreeMap<String, std::collections::BTreeSet<i64>> = BTreeMap::new();
    for p in 0..persons {
        for y in 0..=(p % 3) {
            let r = regions[(p % 3) as usize];
            pseudonym.push(7_919 * (p + 1));
            year.push(2019 + y as i32);
            region.push(r);
            sex.push(if p % 2 == 0 { "F" } else { "M" });
            per_region.entry(r.to_string()).or_default().insert(p);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("pseudonym", DataType::Int64, false),
        Field::new("year", DataType::Int32, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("sex", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(pseudonym)),
            Arc::new(Int32Array::from(year)),
            Arc::new(StringArray::from(region)),
            Arc::new(StringArray::from(sex)),
        ],
    )
    .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let file = std::fs::File::create(dir.join("person_years.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    per_region.into_iter().map(|(k, v)| (k, v.len())).collect()
}

fn write_job(dir: &Path, outputs: &[(&str, &str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut toml = String::from("name = \"test job\"\ndescription = \"e2e\"\nproject = \"P-1\"\n");
    for (name, statistic, sql) in outputs {
        toml.push_str(&format!(
            "\n[[output]]\nname = \"{name}\"\nsql = \"{name}.sql\"\nstatistic = \"{statistic}\"\n"
        ));
        std::fs::write(dir.join(format!("{name}.sql")), sql).unwrap();
    }
    std::fs::write(dir.join("job.toml"), toml).unwrap();
}

fn kluis() -> Command {
    Command::cargo_bin("kluis").unwrap()
}

const PERSONS: &str = "SELECT region, count(DISTINCT pseudonym) AS persons FROM person_years GROUP BY region ORDER BY region";

#[test]
fn check_accepts_a_valid_job_and_names_dimensions_and_measure() {
    let tmp = tempfile::tempdir().unwrap();
    write_extract(&tmp.path().join("extract"), 30);
    write_job(&tmp.path().join("job"), &[("persons", "count", PERSONS)]);
    kluis()
        .args(["job", "check"])
        .arg(tmp.path().join("job"))
        .arg("--extract")
        .arg(tmp.path().join("extract"))
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "ok       persons: count of `persons` by region",
        ));
}

#[test]
fn check_refuses_a_limit_query_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    write_extract(&tmp.path().join("extract"), 30);
    write_job(
        &tmp.path().join("job"),
        &[
            ("persons", "count", PERSONS),
            (
                "top",
                "count",
                "SELECT region, count(*) AS n FROM person_years GROUP BY region ORDER BY n LIMIT 1",
            ),
        ],
    );
    kluis()
        .args(["job", "check"])
        .arg(tmp.path().join("job"))
        .arg("--extract")
        .arg(tmp.path().join("extract"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("1 of 2 outputs refused"))
        .stderr(predicate::str::contains(
            "output `top` (top.sql) is refused: LIMIT is not allowed",
        ));
}

#[test]
fn check_names_file_field_and_allowed_values_of_a_bad_job_toml() {
    let tmp = tempfile::tempdir().unwrap();
    write_job(&tmp.path().join("job"), &[("persons", "median", PERSONS)]);
    kluis()
        .args(["job", "check"])
        .arg(tmp.path().join("job"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("job.toml: field `output[0].statistic` is \"median\"; allowed: count, sum, mean, min, max, share"));
}

#[test]
fn run_on_a_sample_writes_tables_cells_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let extract = tmp.path().join("extract");
    let per_region = write_extract(&extract, 30);
    std::fs::write(
        extract.join("manifest.json"),
        r#"{"sampling_fraction": 0.25}"#,
    )
    .unwrap();
    let job = tmp.path().join("job");
    write_job(&job, &[("persons", "count", PERSONS)]);
    kluis()
        .args(["job", "run"])
        .arg(&job)
        .args(["--on", "sample", "--extract"])
        .arg(&extract)
        .assert()
        .success()
        .stdout(predicate::str::contains("persons: 4 cells with margins"));
    let out = job.join("results").join("sample");
    let result = std::fs::read_to_string(out.join("persons.csv")).unwrap();
    let mut expected = String::from("region,persons\n");
    for (region, n) in &per_region {
        expected.push_str(&format!("{region},{n}\n"));
    }
    assert_eq!(result, expected);
    let cells = std::fs::read_to_string(out.join("persons.cells.csv")).unwrap();
    assert!(cells.contains("\nTotal,region,30,30,"), "{cells}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["scale_factor"], 4.0);
    assert_eq!(report["project"], "P-1");
    // 10 persons per region, times 4, is above 10: nothing at risk.
    assert_eq!(report["outputs"][0]["at_risk"].as_array().unwrap().len(), 0);
}

#[test]
fn run_reports_memory_and_time_limits_as_runtime_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let extract = tmp.path().join("extract");
    write_extract(&extract, 60_000);
    let job = tmp.path().join("job");
    write_job(
        &job,
        &[(
            "big",
            "count",
            "SELECT year, region, count(DISTINCT pseudonym) AS n FROM person_years GROUP BY year, region",
        )],
    );
    kluis()
        .args(["job", "run"])
        .arg(&job)
        .args(["--on", "sample", "--memory-limit", "64K", "--extract"])
        .arg(&extract)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("went over the memory limit"));
    kluis()
        .args(["job", "run"])
        .arg(&job)
        .args(["--on", "sample", "--time-limit", "1ms", "--extract"])
        .arg(&extract)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("went over the time limit"));
    assert!(
        !job.join("results").join("sample").exists(),
        "a failed run leaves no results"
    );
}
