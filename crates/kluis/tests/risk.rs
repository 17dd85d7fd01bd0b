//! End-to-end tests of `kluis risk`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use assert_cmd::Command;
use parquet::arrow::ArrowWriter;
use serde_json::Value;

/// Seven person-years of five persons; QIs sex and age, sensitive disease.
/// Classes: (M,30)×3 [p1,p2,p3], (F,30)×2 [p4 twice], (F,40)×1 [p5], (,40)×1 [p6, age known,
/// sex missing].
const ROWS: [[&str; 4]; 7] = [
    ["p1", "M", "30", "flu"],
    ["p2", "M", "30", "cold"],
    ["p3", "M", "30", "flu"],
    ["p4", "F", "30", "flu"],
    ["p4", "F", "30", "flu"],
    ["p5", "F", "40", "cancer"],
    ["p6", "", "40", "flu"],
];
const HEADER: [&str; 4] = ["person", "sex", "age", "disease"];

fn write_csv(dir: &Path) -> PathBuf {
    let path = dir.join("people.csv");
    let mut text = HEADER.join(",") + "\n";
    for row in ROWS {
        text += &(row.join(",") + "\n");
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn write_parquet(dir: &Path) -> PathBuf {
    let path = dir.join("people.parquet");
    let schema = Arc::new(Schema::new(
        HEADER
            .iter()
            .map(|h| Field::new(*h, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..HEADER.len())
        .map(|j| {
            let values: StringArray = ROWS
                .iter()
                .map(|r| if r[j].is_empty() { None } else { Some(r[j]) })
                .collect();
            Arc::new(values) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut writer = ArrowWriter::try_new(File::create(&path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    path
}

fn risk_json(args: &[&str]) -> Value {
    let output = Command::cargo_bin("kluis")
        .unwrap()
        .arg("risk")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn json_report_has_the_documented_keys_and_known_figures() {
    let dir = tempfile::tempdir().unwrap();
    for data in [write_csv(dir.path()), write_parquet(dir.path())] {
        let data = data.to_str().unwrap();
        let r = risk_json(&[
            "--data",
            data,
            "--quasi-identifiers",
            "sex,age",
            "--sensitive",
            "disease",
            "--k",
            "3",
        ]);
        assert_eq!(r["records"], 7);
        assert_eq!(r["units"], 7, "without --unit every record is a unit");
        assert_eq!(r["classes"], 4);
        assert_eq!(r["k_min"], 1);
        assert_eq!(r["records_below_k"], 4);
        assert_eq!(r["sample_uniques"], 2);
        assert_eq!(r["l_diversity"]["disease"]["distinct"], 1);
        assert_eq!(r["l_diversity"]["disease"]["entropy"], 1.0);
        // Σ 1/f = 3·1/3 + 2·1/2 + 1 + 1 = 4 over 7 records.
        let mean = r["prosecutor_risk"]["mean"].as_f64().unwrap();
        assert!((mean - 4.0 / 7.0).abs() < 1e-12);
        assert_eq!(r["prosecutor_risk"]["max"], 1.0);
        for key in ["units_k_min", "units_below_k", "unit_uniques"] {
            assert!(r.get(key).is_none(), "{key} appears without --unit");
        }

        let r = risk_json(&[
            "--data",
            data,
            "--quasi-identifiers",
            "sex,age",
            "--unit",
            "person",
            "--k",
            "3",
        ]);
        assert_eq!(r["units"], 6);
        assert_eq!(r["units_k_min"], 1);
        // p4 (alone in (F,30)), p5 and p6.
        assert_eq!(r["units_below_k"], 3);
        assert_eq!(r["unit_uniques"], 3);
        assert_eq!(
            r["sample_uniques"], 2,
            "(F,30) has two records, of one person"
        );
    }
}

#[test]
fn missing_matches_any_counts_compatible_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_csv(dir.path());
    let data = data.to_str().unwrap();
    let r = risk_json(&[
        "--data",
        data,
        "--quasi-identifiers",
        "sex,age",
        "--k",
        "2",
        "--missing-matches-any",
    ]);
    // (∗,40) matches (F,40) and itself: neither is unique any more.
    assert_eq!(r["missing_matches_any"], true);
    assert_eq!(r["classes"], 4);
    assert_eq!(r["sample_uniques"], 0);
    assert_eq!(r["k_min"], 2);
    assert_eq!(r["records_below_k"], 0);
}

#[test]
fn text_report_states_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_csv(dir.path());
    let output = Command::cargo_bin("kluis")
        .unwrap()
        .args([
            "risk",
            "--data",
            data.to_str().unwrap(),
            "--quasi-identifiers",
            "sex,age",
            "--k",
            "3",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("classes: 4, smallest class k_min = 1"),
        "{text}"
    );
    assert!(text.contains("records in classes below k = 3: 4"), "{text}");
    assert!(text.contains("sample uniques: 2"), "{text}");
}

#[test]
fn bad_input_names_the_file_and_column_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_csv(dir.path());
    let data = data.to_str().unwrap();
    let missing_column = Command::cargo_bin("kluis")
        .unwrap()
        .args([
            "risk",
            "--data",
            data,
            "--quasi-identifiers",
            "sex,nationality",
        ])
        .output()
        .unwrap();
    assert_eq!(missing_column.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing_column.stderr);
    assert!(
        stderr.contains("people.csv") && stderr.contains("'nationality'"),
        "{stderr}"
    );

    let garbage = dir.path().join("broken.parquet");
    std::fs::write(&garbage, b"this is not parquet").unwrap();
    let unreadable = Command::cargo_bin("kluis")
        .unwrap()
        .args([
            "risk",
            "--data",
            garbage.to_str().unwrap(),
            "--quasi-identifiers",
            "sex",
        ])
        .output()
        .unwrap();
    assert_eq!(unreadable.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unreadable.stderr);
    assert!(stderr.contains("broken.parquet"), "{stderr}");

    let absent = Command::cargo_bin("kluis")
        .unwrap()
        .args([
            "risk",
            "--data",
            "/nonexistent/x.csv",
            "--quasi-identifiers",
            "sex",
        ])
        .output()
        .unwrap();
    assert_eq!(absent.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&absent.stderr).contains("/nonexistent/x.csv"));

    let missing_unit = {
        let path = dir.path().join("units.csv");
        std::fs::write(&path, "person,sex\np1,M\n,F\n").unwrap();
        Command::cargo_bin("kluis")
            .unwrap()
            .args([
                "risk",
                "--data",
                path.to_str().unwrap(),
                "--quasi-identifiers",
                "sex",
                "--unit",
                "person",
            ])
            .output()
            .unwrap()
    };
    assert_eq!(missing_unit.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing_unit.stderr);
    assert!(
        stderr.contains("units.csv") && stderr.contains("'person' is empty at row 2"),
        "{stderr}"
    );
}
