//! End-to-end tests of the foundation commands: `codelist`, `insz check` and `derive`.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn kluis() -> Command {
    Command::cargo_bin("kluis").unwrap()
}

#[test]
fn help_lists_real_commands_and_version_works() {
    kluis()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("codelist").and(predicate::str::contains("derive")));
    kluis()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("kluis "));
}

#[test]
fn codelist_list_and_show_in_every_format() {
    kluis()
        .args(["codelist", "list"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("countries").and(predicate::str::contains("nace_divisions")),
        );
    let out = kluis()
        .args(["codelist", "show", "countries", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes = doc["codes"].as_array().unwrap();
    assert_eq!(codes.len(), 252);
    let morocco = codes.iter().find(|c| c["alpha2"] == "MA").unwrap();
    assert_eq!(morocco["geobel"], "354");
    assert_eq!(morocco["origin_group"], "MAGHREB");
    kluis()
        .args(["codelist", "show", "employer_types", "--format", "csv"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "code,label,employer_group,public\n11,",
        ));
    kluis()
        .args(["codelist", "show", "statuut"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Civil servant"));
    kluis()
        .args(["codelist", "show", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the lists are: countries"));
}

#[test]
fn insz_check_text_and_exit_status() {
    kluis()
        .args(["insz", "check", "93.05.18-223.61"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "93051822361  valid    rr   1993-05-18  M",
        ));
    kluis()
        .args(["insz", "check", "93051822361", "93051822362"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("checksum matches neither century"));
}

#[test]
fn insz_check_json_has_the_fixed_keys() {
    let out = kluis()
        .args([
            "insz",
            "check",
            "--json",
            "93051822361",
            "123",
            "85470001760",
            "9305X822361",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let all = v.as_array().unwrap();
    assert_eq!(all.len(), 4);
    for o in all {
        let keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 6);
        for k in ["insz", "valid", "kind", "birth_date", "sex", "error"] {
            assert!(keys.contains(&k), "{k} missing");
        }
    }
    assert_eq!(all[0]["valid"], true);
    assert_eq!(all[0]["sex"], "M");
    assert_eq!(all[1]["valid"], false);
    assert!(all[1]["error"].as_str().unwrap().contains("11 digits"));
    assert!(all[1]["kind"].is_null());
    // BIS with month + 40, July 1985, day unknown, serial 017.
    assert_eq!(all[2]["kind"], "bis");
    assert_eq!(all[2]["birth_date"], "1985-07-00");
    assert!(all[3]["error"].as_str().unwrap().contains("digits only"));
}

const HEADER: &str = "id,current_nationality,first_nationality,father_first_nationality,mother_first_nationality,country_of_birth,registration_year,naturalisation_year,reference_year\n";

#[test]
fn derive_csv_appends_the_four_columns() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        format!(
            "{HEADER}a,BE,BE,BE,BE,BE,1980,,2020\nb,BEL,MAR,354,MA,MA,2000,2016,2020\nc,TR,TR,,,262,2018,,2020\nd,,,,,,,,2015\n"
        ),
    )
    .unwrap();
    let output = dir.path().join("out.csv");
    kluis()
        .args(["derive", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .assert()
        .success();
    let text = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with(
        "reference_year,origin_country,origin_group,statbel_origin,migration_background"
    ));
    assert!(
        lines[1].starts_with("a,")
            && lines[1].ends_with(",BE,BE_BELGIAN_BACKGROUND,BE_NO_BACKGROUND")
    );
    assert!(lines[2].ends_with(",MA,MAGHREB,BE_FOREIGN_BACKGROUND,BE_NATURALISED_BORN_ABROAD_LT5"));
    assert!(lines[3].ends_with(",TR,CANDIDATE,NON_BELGIAN,NON_BE_BORN_ABROAD_LT5"));
    assert!(lines[4].ends_with(",,UNKNOWN,UNKNOWN,UNKNOWN"));
}

#[test]
fn derive_bad_cell_names_file_row_column_value_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        format!("{HEADER}a,BE,BE,BE,BE,BE,1980,,2020\nb,BE,QQ,BE,BE,BE,1980,,2020\n"),
    )
    .unwrap();
    let output = dir.path().join("out.csv");
    kluis()
        .args(["derive", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains(
                "in.csv: row 2, column first_nationality: 'QQ' is not accepted",
            )
            .and(predicate::str::contains("ISO 3166-1 alpha-2")),
        );
    assert!(!output.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no partial file left behind"
    );

    // A bad year, and a missing column.
    std::fs::write(&input, format!("{HEADER}a,BE,BE,BE,BE,BE,19x0,,2020\n")).unwrap();
    kluis()
        .args(["derive", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "row 1, column registration_year: '19x0'",
        ));
    std::fs::write(&input, "current_nationality\nBE\n").unwrap();
    kluis()
        .args(["derive", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no column first_nationality"));
    assert!(!output.exists());
}

#[test]
fn derive_never_echoes_an_insz_in_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        format!("{HEADER}a,93051822361,BE,BE,BE,BE,1980,,2020\n"),
    )
    .unwrap();
    kluis()
        .args(["derive", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(dir.path().join("out.csv"))
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("93051822361")
                .not()
                .and(predicate::str::contains("a valid INSZ number, not shown")),
        );
}

#[test]
fn derive_parquet_round_trip() {
    use arrow::array::{Array, Int32Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    let s = |v: Vec<Option<&str>>| Arc::new(StringArray::from(v)) as Arc<dyn Array>;
    let y = |v: Vec<Option<i32>>| Arc::new(Int32Array::from(v)) as Arc<dyn Array>;
    let mut fields: Vec<Field> = [
        "current_nationality",
        "first_nationality",
        "father_first_nationality",
        "mother_first_nationality",
        "country_of_birth",
    ]
    .iter()
    .map(|n| Field::new(*n, DataType::Utf8, true))
    .collect();
    fields.extend(
        ["registration_year", "naturalisation_year", "reference_year"]
            .iter()
            .map(|n| Field::new(*n, DataType::Int32, true)),
    );
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            s(vec![Some("BE"), Some("NL")]),
            s(vec![Some("BE"), Some("NL")]),
            s(vec![Some("IT"), None]),
            s(vec![Some("BE"), None]),
            s(vec![Some("BE"), Some("BE")]),
            y(vec![Some(1980), Some(1990)]),
            y(vec![None, None]),
            y(vec![Some(2020), Some(2020)]),
        ],
    )
    .unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&input).unwrap(), schema, None)
            .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let output = dir.path().join("out.parquet");
    kluis()
        .args(["derive", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .assert()
        .success();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&output).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let out: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    let col = |name: &str| {
        out[0]
            .column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .clone()
    };
    assert_eq!(col("origin_country").value(0), "IT");
    assert_eq!(col("migration_background").value(0), "BE_BIRTH_BORN_BE");
    assert_eq!(col("origin_country").value(1), "NL");
    assert_eq!(col("statbel_origin").value(1), "NON_BELGIAN");
    assert_eq!(col("migration_background").value(1), "NON_BE_BORN_BE");
}
