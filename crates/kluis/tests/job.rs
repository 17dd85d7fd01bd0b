//! End-to-end: `kluis job check` and `kluis job run` on a synthetic extract (policy, limits,
//! bad input) and on a real one cut from a generated warehouse, then on the full population.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, Int32Array, Int64Array, RecordBatch, StringArray};
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

mod common;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use common::{Env, REAL_DAY};

const BY_REGION: &str =
    "SELECT region, count(DISTINCT pseudonym) AS persons FROM person_years GROUP BY region";
const BY_YEAR_SEX: &str =
    "SELECT year, sex, count(*) AS person_years FROM person_years GROUP BY year, sex";

/// region -> distinct pseudonyms, straight from the extract's Parquet file.
fn direct_persons_by_region(parquet: &Path) -> BTreeMap<String, usize> {
    let file = std::fs::File::open(parquet).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut sets: BTreeMap<String, std::collections::BTreeSet<i64>> = BTreeMap::new();
    for batch in reader {
        let batch = batch.unwrap();
        let p = batch
            .column_by_name("pseudonym")
            .unwrap()
            .as_primitive::<Int64Type>();
        let r = batch.column_by_name("region").unwrap().as_string::<i32>();
        for i in 0..batch.num_rows() {
            let region = if r.is_null(i) { "" } else { r.value(i) };
            sets.entry(region.to_string())
                .or_default()
                .insert(p.value(i));
        }
    }
    sets.into_iter().map(|(k, v)| (k, v.len())).collect()
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().skip(1).map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn a_job_matches_a_direct_computation_on_the_sample_and_runs_unchanged_on_the_full_view() {
    let env = Env::new(3000);
    let job = env.job(
        "careers",
        &[
            ("by_region", "count", BY_REGION),
            ("by_year_sex", "count", BY_YEAR_SEX),
        ],
    );
    env.kluis("", REAL_DAY)
        .args(["job", "check"])
        .arg(&job)
        .arg("--extract")
        .arg(env.extract())
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "ok       by_region: count of `persons` by region",
        ));

    // On the sample: the same numbers as a direct computation.
    env.run_sample(&job)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "would probably fail rule set `default` at full scale",
        ));
    let results = job.join("results").join("sample");
    let csv = std::fs::read_to_string(results.join("by_region.csv")).unwrap();
    assert!(csv.starts_with("region,persons\n"), "{csv}");
    let direct: Vec<String> = direct_persons_by_region(&env.extract().join("person_years.parquet"))
        .into_iter()
        .map(|(region, n)| format!("{region},{n}"))
        .collect();
    assert_eq!(sorted_lines(&csv), direct);
    // The forecast scales by each stratum's sampling fraction.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("report.json")).unwrap())
            .unwrap();
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.extract().join("manifest.json")).unwrap(),
    )
    .unwrap();
    for (s, m) in report["strata"]
        .as_array()
        .unwrap()
        .iter()
        .zip(manifest["strata"].as_array().unwrap())
    {
        assert_eq!(s["name"], m["name"]);
        assert_eq!(s["sampled_units"], m["sampled_persons"]);
        let f = s["factor"].as_f64().unwrap() * m["sampling_fraction"].as_f64().unwrap();
        assert!((f - 1.0).abs() < 1e-9, "{s} {m}");
    }
    for cell in report["outputs"][0]["at_risk"].as_array().unwrap() {
        assert!(cell["scaled_units"].as_f64().unwrap() >= cell["nonnull_units"].as_f64().unwrap());
    }

    // Unchanged on the full view: stored for review, totals of the whole population.
    env.run_full("rita", &job)
        .assert()
        .success()
        .stdout(predicate::str::contains("99-001-0001  by_region"))
        .stdout(predicate::str::contains("99-001-0002  by_year_sex"));
    let outputs = env.outputs();
    assert_eq!(outputs.len(), 2);
    assert_eq!(outputs[0]["status"], "pending");
    assert_eq!(outputs[0]["submitter"], "rita");
    assert_eq!(outputs[0]["dimensions"], serde_json::json!(["region"]));
    assert_eq!(outputs[0]["measure"], "persons");
    let shown = env
        .kluis("vera", REAL_DAY)
        .args(["output", "show", "99-001-0001", "--json"])
        .output()
        .unwrap();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let population: u64 = manifest["strata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["population_persons"].as_u64().unwrap())
        .sum();
    let total = shown["report"]["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"]["region"] == "Total")
        .unwrap();
    assert_eq!(total["value"].as_f64().unwrap() as u64, population);
    assert_eq!(total["units"].as_u64().unwrap(), population);
    let shown = env
        .kluis("vera", REAL_DAY)
        .args(["output", "show", "99-001-0002", "--json"])
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let person_years: u64 = manifest["strata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["population_person_years"].as_u64().unwrap())
        .sum();
    let total = shown["report"]["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"]["year"] == "Total" && c["key"]["sex"] == "Total")
        .unwrap();
    assert_eq!(total["value"].as_f64().unwrap() as u64, person_years);

    // Nothing of the full run was written beside the job.
    let beside: Vec<_> = std::fs::read_dir(job.join("results"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("sample")]);
    // The run is audited, without pseudonyms.
    assert!(env.audit().contains("job run"));
}

#[test]
fn a_full_run_refuses_the_wrong_project_a_bad_column_and_a_non_researcher() {
    let env = Env::new(1500);
    let job = env.job("careers", &[("by_region", "count", BY_REGION)]);
    // Only researchers (or stewards) run jobs.
    env.run_full("vera", &job)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("needs the researcher role"));
    // Writing out the whole population's view is a steward's diagnostic, never a researcher's.
    env.run_full("rita", &job)
        .arg("--export-view")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "job run with view export needs the steward role",
        ));
    assert!(!env.project_dir().join("view").exists());
    // The job names another project.
    let text = std::fs::read_to_string(job.join("job.toml"))
        .unwrap()
        .replace("99/001", "98/001");
    std::fs::write(job.join("job.toml"), text).unwrap();
    env.run_full("rita", &job)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "job.toml: field `project` is \"98/001\"",
        ));
    // A column the view does not have names the SQL file and the column.
    let bad = env.job(
        "bad",
        &[(
            "salary",
            "sum",
            "SELECT region, sum(salary) AS s FROM person_years GROUP BY region",
        )],
    );
    env.run_full("rita", &bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("salary.sql"))
        .stderr(predicate::str::contains("salary"));
    assert!(env.outputs().is_empty(), "nothing stored");
}
