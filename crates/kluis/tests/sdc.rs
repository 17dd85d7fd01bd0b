//! End-to-end tests of `kluis sdc table` and `kluis sdc protect`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use assert_cmd::Command;
use serde_json::Value;

fn kluis() -> Command {
    Command::cargo_bin("kluis").unwrap()
}

fn json_of(output: &[u8]) -> Value {
    serde_json::from_slice(output)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(output)))
}

fn stdout_of(cmd: &mut Command) -> Vec<u8> {
    cmd.assert().success().get_output().stdout.clone()
}

fn find<'a>(report: &'a Value, key: &[(&str, &str)]) -> &'a Value {
    report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| key.iter().all(|(d, v)| c["key"][*d] == *v))
        .unwrap_or_else(|| panic!("no cell {key:?}"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// 15 rows from 3 persons in F; 40 rows from 40 persons in M; with a region and an income.
fn write_microdata(dir: &Path) -> PathBuf {
    let mut csv = String::from("person,sex,region,income\n");
    for r in 0..15 {
        csv.push_str(&format!("p{},F,north,{}\n", r % 3, 100 + r));
    }
    for r in 0..40 {
        csv.push_str(&format!(
            "q{r},M,{},{}\n",
            if r % 2 == 0 { "north" } else { "south" },
            200 + r
        ));
    }
    write(dir, "people.csv", &csv)
}

#[test]
fn table_counts_persons_not_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_microdata(dir.path());
    let report = json_of(&stdout_of(
        kluis()
            .args(["sdc", "table", "--data"])
            .arg(&data)
            .args(["--unit", "person", "--by", "sex", "--count", "--json"]),
    ));
    let f = find(&report, &[("sex", "F")]);
    assert_eq!(
        (f["rows"].as_u64(), f["units"].as_u64()),
        (Some(15), Some(3))
    );
    assert_eq!(f["status"], "primary");
    assert!(
        f["reasons"]
            .as_array()
            .unwrap()
            .contains(&Value::from("threshold"))
    );
    assert!(f["published"].is_null());
    // Margins are true totals; with F suppressed, M or Total must go too, or Total − M reveals F.
    let total = find(&report, &[("sex", "Total")]);
    assert_eq!(total["value"], 55.0);
    let m = find(&report, &[("sex", "M")]);
    assert!(m["published"].is_null() || total["published"].is_null());
    assert_eq!(report["audit"]["passed"], true);
}

#[test]
fn table_with_a_mean_reports_every_margin() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_microdata(dir.path());
    let report = json_of(&stdout_of(
        kluis().args(["sdc", "table", "--data"]).arg(&data).args([
            "--unit",
            "person",
            "--by",
            "sex,region",
            "--mean",
            "income",
            "--json",
            "--threads",
            "2",
        ]),
    ));
    // (F, M, Total) × (north, south, Total).
    assert_eq!(report["cells"].as_array().unwrap().len(), 9);
    let mn = find(&report, &[("sex", "M"), ("region", "north")]);
    assert_eq!(mn["units"], 20);
    let expected = (0..40)
        .filter(|r| r % 2 == 0)
        .map(|r| 200.0 + r as f64)
        .sum::<f64>()
        / 20.0;
    assert!((mn["value"].as_f64().unwrap() - expected).abs() < 1e-9);
    assert_eq!(report["rules"]["name"], "default");
    assert_eq!(report["acro"]["type"], "table");
}

#[test]
fn table_reads_parquet() {
    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("person", DataType::Utf8, false),
        Field::new("sex", DataType::Utf8, true),
        Field::new("income", DataType::Float64, true),
    ]));
    let persons: Vec<String> = (0..30).map(|i| format!("p{}", i % 12)).collect();
    let sexes: Vec<&str> = (0..30)
        .map(|i| if i % 12 < 6 { "F" } else { "M" })
        .collect();
    let incomes: Vec<Option<f64>> = (0..30)
        .map(|i| if i == 0 { None } else { Some(i as f64) })
        .collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(persons)),
            Arc::new(StringArray::from(sexes)),
            Arc::new(Float64Array::from(incomes)),
        ],
    )
    .unwrap();
    let path = dir.path().join("p.parquet");
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let report = json_of(&stdout_of(
        kluis().args(["sdc", "table", "--data"]).arg(&path).args([
            "--unit", "person", "--by", "sex", "--sum", "income", "--json",
        ]),
    ));
    let total = find(&report, &[("sex", "Total")]);
    assert_eq!(
        (total["rows"].as_u64(), total["units"].as_u64()),
        (Some(30), Some(12))
    );
    assert_eq!(total["value"], (1..30).sum::<i32>() as f64);
    // One of p0's rows has a null income; p0 still has a measure, so all 12 persons count.
    assert_eq!(total["nonnull_units"], 12);
}

const TABLE_2X2: &str = "row,col,count\na,x,3\na,y,20\na,Total,23\nb,x,25\nb,y,40\nb,Total,65\nTotal,x,28\nTotal,y,60\nTotal,Total,88\n";

#[test]
fn protect_adds_secondary_cells_and_prints_a_readable_report() {
    let dir = tempfile::tempdir().unwrap();
    let table = write(dir.path(), "t.csv", TABLE_2X2);
    let rules = write(
        dir.path(),
        "r.toml",
        "name = \"no-class\"\nversion = 3\n[class_disclosure]\nzeros = false\nfull_share = false\n",
    );
    let report = json_of(&stdout_of(
        kluis()
            .args(["sdc", "protect", "--table"])
            .arg(&table)
            .arg("--rules")
            .arg(&rules)
            .arg("--json"),
    ));
    assert_eq!(report["status"], "pass");
    assert_eq!(report["rules"]["version"], 3);
    for (r, c) in [("a", "y"), ("b", "x"), ("b", "y")] {
        let cell = find(&report, &[("row", r), ("col", c)]);
        assert_eq!(cell["status"], "secondary");
        assert_eq!(cell["reasons"], serde_json::json!(["secondary"]));
    }
    assert_eq!(
        find(&report, &[("row", "Total"), ("col", "Total")])["published"],
        88.0
    );

    let text = String::from_utf8(stdout_of(
        kluis()
            .args(["sdc", "protect", "--table"])
            .arg(&table)
            .arg("--rules")
            .arg(&rules),
    ))
    .unwrap();
    assert!(text.contains("status: PASS"), "{text}");
    let header = text.lines().find(|l| l.starts_with("row")).unwrap();
    assert!(
        header.contains("published") && header.contains("reasons"),
        "{text}"
    );
    let ax = text
        .lines()
        .find(|l| l.split_whitespace().take(2).eq(["a", "x"]))
        .unwrap();
    assert!(ax.contains("primary") && ax.contains("threshold"), "{text}");
}

#[test]
fn protect_uses_hierarchies_and_rounding() {
    let dir = tempfile::tempdir().unwrap();
    let table = write(
        dir.path(),
        "h.csv",
        "region,count\nA,14\nA1,14\nB,90\nB1,40\nB2,50\nTotal,104\n",
    );
    let hierarchy = write(
        dir.path(),
        "regions.csv",
        "code,parent\nA,Total\nA1,A\nB,Total\nB1,B\nB2,B\n",
    );
    let report = json_of(&stdout_of(
        kluis()
            .args(["sdc", "protect", "--table"])
            .arg(&table)
            .arg("--hierarchy")
            .arg(format!("region={}", hierarchy.display()))
            .args(["--rounding", "base:10", "--json"]),
    ));
    // A1 is A's only category: holding all of A is no share of anything, so it passes.
    let a1 = find(&report, &[("region", "A1")]);
    assert_eq!(a1["status"], "ok");
    assert_eq!(a1["published"], 10.0);
    assert_eq!(a1["value"], 14.0);
    assert_eq!(report["rounding"], "base:10");
    assert_eq!(find(&report, &[("region", "B1")])["published"], 40.0);
}

#[test]
fn protect_rejects_bad_input_with_exit_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.csv",
        "row,col,count\na,x,3\na,Total,three\n",
    );
    kluis()
        .args(["sdc", "protect", "--table"])
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "line 3, column `count`: `three` is not a number",
        ));
    let table = write(dir.path(), "t.csv", TABLE_2X2);
    kluis()
        .args(["sdc", "protect", "--rounding", "round5", "--table"])
        .arg(&table)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("accepted: none, base:N"));
    let inconsistent = write(
        dir.path(),
        "i.csv",
        &TABLE_2X2.replace("a,Total,23", "a,Total,24"),
    );
    kluis()
        .args(["sdc", "protect", "--table"])
        .arg(&inconsistent)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("sum to 23"));
}

#[test]
fn table_names_a_missing_column() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_microdata(dir.path());
    kluis()
        .args(["sdc", "table", "--data"])
        .arg(&data)
        .args(["--unit", "pseudonym", "--by", "sex", "--count"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "no column `pseudonym`; columns: person, sex, region, income",
        ));
}
