//! Ingest: every kind of bad row is reported with the right message and without the INSZ; a
//! refused load changes nothing; the accepted forms are normalised; Parquet works like CSV.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Date32Type, Field, Int64Type, Schema};
use kluis_model::insz::BisSex;
use kluis_model::{Insz, InszKind, PartialDate, Sex};
use kluis_warehouse::ingest::{IngestError, IngestOptions, Rejection, ingest};
use kluis_warehouse::{Source, Warehouse};

const PERSONS_HEADER: &str = "insz,sex,birth_date,country_of_birth,first_nationality,father_first_nationality,mother_first_nationality,registration_date,naturalisation_date,education_level,study_field";
const YEARS_HEADER: &str =
    "insz,year,region,current_nationality,employer_id,employer_type,statuut,nace";

fn insz(year: i32, month: u8, day: u8, sex: Sex, n: u16) -> String {
    Insz::generate(
        PartialDate { year, month, day },
        Insz::serial_for(sex, n),
        InszKind::Rr,
        BisSex::Known,
    )
    .to_string()
}

/// A person born on the given date, with a dotted INSZ the way people write them.
fn dotted(number: &str) -> String {
    format!(
        "{}.{}.{}-{}.{}",
        &number[0..2],
        &number[2..4],
        &number[4..6],
        &number[6..9],
        &number[9..]
    )
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, header: &str, rows: &[String]) -> PathBuf {
        let path = self.dir.path().join(name);
        let mut text = format!("{header}\n");
        for r in rows {
            text += r;
            text += "\n";
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("wh")
    }
}

fn run(
    persons: &Path,
    years: &Path,
    warehouse: &Path,
    load_good_rows: bool,
) -> (
    Result<kluis_warehouse::ingest::IngestSummary, IngestError>,
    Vec<Rejection>,
) {
    let mut rejections = Vec::new();
    let options = IngestOptions {
        persons: persons.to_owned(),
        person_years: years.to_owned(),
        warehouse: warehouse.to_owned(),
        load_good_rows,
        check_threads: 2,
        writer_threads: 2,
    };
    let result = ingest(&options, &mut |r| rejections.push(r.clone()));
    (result, rejections)
}

/// Every file under `dir` with its bytes.
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

fn good_persons() -> (Vec<String>, Vec<String>) {
    let a = insz(1980, 3, 14, Sex::M, 0);
    let b = insz(1975, 11, 2, Sex::F, 3);
    let c = insz(2001, 6, 30, Sex::F, 1);
    let persons = vec![
        format!("{a},M,1980-03-14,BE,BE,BE,BE,1980-03-14,,6,04"),
        // Alpha-3 and GEOBEL forms, a naturalised person born abroad.
        format!(
            "{},F,1975-11-02,MAR,354,MA,,1999-09-01,2008-05-20,3,07",
            dotted(&b)
        ),
        format!("{c},F,2001-06-30,150,BEL,IT,BE,2001-06-30,,9,"),
    ];
    let years = vec![
        format!("{a},2015,02000,BE,0203456785,13,3,84110"),
        format!("{a},2016,02000,BEL,0203456785,13,3,84110"),
        format!("{},2015,04000,BE,0403456780,30,2,62010", dotted(&b)),
        format!("{c},2020,03000,BE,0403456780,30,1,62010"),
    ];
    (persons, years)
}

#[test]
fn good_files_load_with_codes_normalised() {
    let f = Files::new();
    let (persons, years) = good_persons();
    let p = f.write("persons.csv", PERSONS_HEADER, &persons);
    let y = f.write("person_years.csv", YEARS_HEADER, &years);
    let (result, rejections) = run(&p, &y, &f.warehouse(), false);
    assert!(rejections.is_empty(), "{rejections:?}");
    let summary = result.unwrap();
    assert_eq!(summary.manifest.persons, 3);
    assert_eq!(
        summary.manifest.person_years,
        BTreeMap::from([(2015, 2), (2016, 1), (2020, 1)])
    );
    assert!(matches!(
        summary.manifest.source,
        Source::Ingested {
            rejected_rows: 0,
            ..
        }
    ));

    let wh = Warehouse::open(f.warehouse()).unwrap();
    let batches: Vec<RecordBatch> = wh.persons_batches().unwrap().map(Result::unwrap).collect();
    let batch =
        arrow::compute::concat_batches(&kluis_model::schema::persons_schema(), &batches).unwrap();
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .clone()
    };
    assert_eq!(
        col("country_of_birth").iter().collect::<Vec<_>>(),
        [Some("BE"), Some("MA"), Some("BE")]
    );
    assert_eq!(
        col("first_nationality").iter().collect::<Vec<_>>(),
        [Some("BE"), Some("MA"), Some("BE")]
    );
    assert_eq!(
        col("study_field").iter().collect::<Vec<_>>(),
        [Some("04"), Some("07"), None]
    );
    let insz_col = batch.column(0).as_primitive::<Int64Type>();
    assert_eq!(
        insz_col.value(1).to_string(),
        good_persons().0[1][..15].replace(['.', '-'], "")
    );
    let nat = batch
        .column_by_name("naturalisation_date")
        .unwrap()
        .as_primitive::<Date32Type>();
    assert_eq!(
        kluis_warehouse::dates::format_date(nat.value(1)),
        "2008-05-20"
    );
    assert!(nat.is_null(0));

    let years: Vec<RecordBatch> = wh
        .person_years_batches(2016)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        years[0]
            .column_by_name("current_nationality")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "BE"
    );
    assert_eq!(
        years[0]
            .column_by_name("employer_id")
            .unwrap()
            .as_primitive::<Int64Type>()
            .value(0),
        203456785
    );
    let info = wh.info().unwrap();
    assert_eq!(info.person_years[&2015].rows, 2);
}

/// One bad value per row; the expected (field, reason fragment) of each.
#[test]
fn every_kind_of_bad_row_is_reported_without_the_insz() {
    let f = Files::new();
    let ok = insz(1980, 3, 14, Sex::M, 0);
    let p = |n: u16| insz(1985, 1, 10, Sex::M, n);
    let women = |n: u16| insz(1985, 1, 10, Sex::F, n);
    let mut bad_checksum = p(20);
    bad_checksum.replace_range(
        10..11,
        if bad_checksum.ends_with('0') {
            "1"
        } else {
            "0"
        },
    );
    let persons = vec![
        format!("{ok},M,1980-03-14,BE,BE,BE,BE,1980-03-14,,6,04"), // line 2 good
        format!("{bad_checksum},M,1985-01-10,BE,BE,BE,BE,1985-01-10,,6,04"), // 3
        format!("{ok},M,1980-03-14,BE,BE,BE,BE,1980-03-14,,6,04"), // 4 duplicate
        format!("{},X,1985-01-10,BE,BE,BE,BE,1985-01-10,,6,04", p(1)), // 5
        format!("{},F,1985-01-10,BE,BE,BE,BE,1985-01-10,,6,04", p(2)), // 6
        format!("{},M,1985-02-30,BE,BE,BE,BE,,,6,04", p(3)),       // 7
        format!("{},M,1985-01-11,BE,BE,BE,BE,1985-01-11,,6,04", p(4)), // 8
        format!("{},M,1985-01-10,ZZ,BE,BE,BE,1985-01-10,,6,04", p(5)), // 9
        format!("{},M,1985-01-10,BE,QQQ,BE,BE,1985-01-10,,6,04", p(6)), // 10
        format!("{},M,1985-01-10,MA,MA,MA,MA,1984-12-31,,6,04", p(7)), // 11
        format!("{},M,1985-01-10,BE,BE,BE,BE,1987-03-01,,6,04", p(8)), // 12
        format!(
            "{},M,1985-01-10,MA,MA,MA,MA,2000-01-01,1999-01-01,6,04",
            p(9)
        ), // 13
        format!(
            "{},M,1985-01-10,BE,BE,BE,BE,1985-01-10,2005-01-01,6,04",
            p(10)
        ), // 14
        format!("{},M,1985-01-10,BE,BE,BE,BE,1985-01-10,,12,04", p(11)), // 15
        format!("{},M,1985-01-10,BE,BE,BE,BE,1985-01-10,,6,11", p(12)), // 16
        format!("{},M,1985-01-10", p(13)),                         // 17
        format!("{},F,1985-01-10,BE,BE,BE,BE,1985-01-10,,6,04", women(0)), // 18 good
    ];
    let expected_persons: &[(u64, &str, &str)] = &[
        (3, "insz", "check digits match neither century"),
        (4, "insz", "duplicate person: line 2 has the same INSZ"),
        (5, "sex", "not a sex; expected M or F"),
        (6, "sex", "disagrees with the INSZ"),
        (7, "birth_date", "not a date; expected YYYY-MM-DD"),
        (
            8,
            "birth_date",
            "disagrees with the birth date the INSZ encodes",
        ),
        (
            9,
            "country_of_birth",
            "not a known country; expected an ISO 3166-1",
        ),
        (10, "first_nationality", "not a known country"),
        (11, "registration_date", "is before the birth date"),
        (12, "registration_date", "registered in their birth year"),
        (13, "naturalisation_date", "before the registration date"),
        (
            14,
            "naturalisation_date",
            "needs a foreign first nationality",
        ),
        (15, "education_level", "not an ISCED 2011 level"),
        (16, "study_field", "not an ISCED-F 2013 broad field"),
        (17, "row", "has 3 fields, the header has 11"),
    ];
    let w = women(0);
    let years = vec![
        format!("{ok},2015,02000,BE,203456785,13,3,84110"), // 2 good
        format!("{},2015,02000,BE,203456785,13,3,84110", p(40)), // 3 unknown person
        format!("{},2015,02000,BE,203456785,13,3,84110", p(1)), // 4 rejected person
        format!("{ok},1900,02000,BE,203456785,13,3,84110"), // 5
        format!("{w},1995,02000,BE,203456785,13,3,84110"),  // 6 age 10
        format!("{ok},2015,02000,BE,203456785,13,3,84110"), // 7 duplicate of 2
        format!("{ok},2016,05000,BE,203456785,13,3,84110"), // 8
        format!("{ok},2017,02000,XY,203456785,13,3,84110"), // 9
        format!("{ok},2018,02000,BE,-5,13,3,84110"),        // 10
        format!("{ok},2019,02000,BE,12ab,13,3,84110"),      // 11
        format!("{ok},2020,02000,BE,203456785,19,3,84110"), // 12
        format!("{ok},2021,02000,BE,203456785,13,7,84110"), // 13
        format!("{w},2015,02000,BE,203456785,30,3,62010"),  // 14
        format!("{w},2016,02000,BE,203456785,30,2,04100"),  // 15
        format!("{w},2017,02000,BE,203456785,30,2,8411"),   // 16
        format!("{w},2018,02000,BE,203456785,30,2,62010"),  // 17 good
    ];
    let expected_years: &[(u64, &str, &str)] = &[
        (3, "insz", "no person in persons.csv has this INSZ"),
        (4, "insz", "its person (persons.csv line 5) was rejected"),
        (5, "year", "outside the years accepted, 1950-2099"),
        (6, "year", "the person is 10 in this year"),
        (7, "year", "duplicate person-year"),
        (
            8,
            "region",
            "not a region code; expected one of 02000, 03000, 04000, ABROAD, UNKNOWN",
        ),
        (9, "current_nationality", "not a known country"),
        (10, "employer_id", "not positive"),
        (11, "employer_id", "not a whole number"),
        (
            12,
            "employer_type",
            "not an employer type; expected one of 11, 12",
        ),
        (13, "statuut", "not a statuut; expected one of 1, 2, 3, 4"),
        (
            14,
            "statuut",
            "exists only at public employers; employer type 30 (Private employers) is not public",
        ),
        (15, "nace", "04 is not a NACE-BEL 2008 division"),
        (16, "nace", "expected 5 digits"),
    ];
    let pf = f.write("persons.csv", PERSONS_HEADER, &persons);
    let yf = f.write("person_years.csv", YEARS_HEADER, &years);
    let (result, rejections) = run(&pf, &yf, &f.warehouse(), false);
    assert!(
        matches!(result, Err(IngestError::Rejected { rows: 29, .. })),
        "{result:?}"
    );
    assert!(!f.warehouse().exists(), "a refused load creates nothing");

    let all_insz: Vec<String> = persons
        .iter()
        .chain(&years)
        .map(|r| r[..11].to_owned())
        .collect();
    for r in &rejections {
        let text = r.to_string();
        for number in &all_insz {
            assert!(!text.contains(number.as_str()), "an INSZ in: {text}");
        }
        if r.field == "insz" {
            assert_eq!(r.value, None);
        }
    }
    let check = |file: &str, expected: &[(u64, &str, &str)]| {
        for (line, field, reason) in expected {
            let found = rejections.iter().find(|r| {
                r.file == file
                    && r.location == kluis_warehouse::ingest::Location::Line(*line)
                    && r.field == *field
            });
            let found = found.unwrap_or_else(|| {
                panic!("{file} line {line}: no rejection of {field}; got {rejections:#?}")
            });
            assert!(found.reason.contains(reason), "{file} line {line}: {found}");
        }
        let lines: std::collections::BTreeSet<_> = rejections
            .iter()
            .filter(|r| r.file == file)
            .map(|r| r.location)
            .collect();
        assert_eq!(
            lines.len(),
            expected.len(),
            "{file}: exactly the bad lines are reported: {lines:?}"
        );
    };
    check("persons.csv", expected_persons);
    check("person_years.csv", expected_years);
    // The value is shown (and trimmed) for fields other than the INSZ.
    let sex = rejections
        .iter()
        .find(|r| r.field == "sex" && r.reason.contains("M or F"))
        .unwrap();
    assert_eq!(
        sex.to_string(),
        "persons.csv line 5, field sex, value 'X': not a sex; expected M or F"
    );

    // With permission to leave bad rows out, the good ones load.
    let (result, again) = run(&pf, &yf, &f.warehouse(), true);
    assert_eq!(again, rejections);
    let summary = result.unwrap();
    assert_eq!(summary.manifest.persons, 2);
    assert_eq!(summary.manifest.person_year_rows(), 2);
    assert_eq!(summary.rejected_rows, 29);
}

#[test]
fn a_refused_load_leaves_the_old_warehouse_byte_identical() {
    let f = Files::new();
    let (persons, mut years) = good_persons();
    let p = f.write("persons.csv", PERSONS_HEADER, &persons);
    let y = f.write("person_years.csv", YEARS_HEADER, &years);
    run(&p, &y, &f.warehouse(), false).0.unwrap();
    let before = snapshot(&f.warehouse());
    // The last row is bad: everything before it was already being written.
    years.push(format!(
        "{},2017,02000,BE,0203456785,30,3,84110",
        &years[0][..11]
    ));
    let y = f.write("person_years.csv", YEARS_HEADER, &years);
    let (result, rejections) = run(&p, &y, &f.warehouse(), false);
    assert!(matches!(
        result,
        Err(IngestError::Rejected {
            rows: 1,
            problems: 1
        })
    ));
    assert_eq!(rejections.len(), 1);
    assert_eq!(snapshot(&f.warehouse()), before);
    // Nothing left beside it either but the (empty) writers' lock, which stays by design.
    let mut entries: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [".wh.kluis-lock", "person_years.csv", "persons.csv", "wh"]
    );
    assert_eq!(
        std::fs::metadata(f.dir.path().join(".wh.kluis-lock"))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn a_directory_that_is_not_a_warehouse_is_never_replaced() {
    let f = Files::new();
    let (persons, years) = good_persons();
    let p = f.write("persons.csv", PERSONS_HEADER, &persons);
    let y = f.write("person_years.csv", YEARS_HEADER, &years);
    std::fs::create_dir(f.warehouse()).unwrap();
    std::fs::write(f.warehouse().join("thesis.tex"), "precious").unwrap();
    let (result, _) = run(&p, &y, &f.warehouse(), false);
    let e = result.unwrap_err();
    assert!(
        e.is_bad_input()
            && e.to_string()
                .contains("neither empty nor a kluis warehouse"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(f.warehouse().join("thesis.tex")).unwrap(),
        "precious"
    );
}

#[test]
fn wrong_columns_refuse_the_file() {
    let f = Files::new();
    let (persons, years) = good_persons();
    let p = f.write(
        "persons.csv",
        &PERSONS_HEADER.replace(",study_field", ",field_of_study"),
        &persons,
    );
    let y = f.write("person_years.csv", YEARS_HEADER, &years);
    let e = run(&p, &y, &f.warehouse(), false)
        .0
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing column(s) study_field")
            && e.contains("unknown column(s) field_of_study"),
        "{e}"
    );
}

#[test]
fn a_file_without_its_header_does_not_show_the_insz_of_its_first_row() {
    let f = Files::new();
    let (persons, years) = good_persons();
    // The header line left out: the first person's row is taken for the column names.
    let p = f.write("persons.csv", &persons[0], &persons[1..]);
    let y = f.write("person_years.csv", YEARS_HEADER, &years);
    let e = run(&p, &y, &f.warehouse(), false)
        .0
        .unwrap_err()
        .to_string();
    let own = &persons[0][..11];
    assert!(e.contains("missing column(s) insz"), "{e}");
    assert!(e.contains("<a valid INSZ number, not shown>"), "{e}");
    assert!(!e.contains(own), "{e}");
}

#[test]
fn parquet_input_is_checked_like_csv() {
    let f = Files::new();
    let (persons, years) = good_persons();
    let p = f.write("persons.csv", PERSONS_HEADER, &persons);
    // Person-years as Parquet with loose types: INSZ as Int64, employer type as text, alpha-3.
    let numbers: Vec<i64> = years
        .iter()
        .map(|r| {
            r[..r.find(',').unwrap()]
                .replace(['.', '-'], "")
                .parse()
                .unwrap()
        })
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("insz", DataType::Int64, false),
        Field::new("year", DataType::Int32, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("current_nationality", DataType::Utf8, false),
        Field::new("employer_id", DataType::Int64, false),
        Field::new("employer_type", DataType::Utf8, false),
        Field::new("statuut", DataType::Int32, false),
        Field::new("nace", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(numbers)),
            Arc::new(Int32Array::from(vec![2015, 2016, 2015, 2020])),
            Arc::new(StringArray::from(vec!["02000", "02000", "04000", "03000"])),
            Arc::new(StringArray::from(vec!["BEL", "BE", "150", "BE"])),
            Arc::new(Int64Array::from(vec![
                203456785, 203456785, 403456780, 403456780,
            ])),
            Arc::new(StringArray::from(vec!["13", "13", "30", "30"])),
            Arc::new(Int32Array::from(vec![3, 3, 3, 1])),
            Arc::new(StringArray::from(vec!["84110", "84110", "62010", "62010"])),
        ],
    )
    .unwrap();
    let y = f.dir.path().join("person_years.parquet");
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&y).unwrap(), schema, None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let (result, rejections) = run(&p, &y, &f.warehouse(), false);
    assert!(result.is_err());
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert_eq!(
        rejections[0].location,
        kluis_warehouse::ingest::Location::Row(3)
    );
    assert_eq!(rejections[0].field, "statuut");
    assert!(!years.is_empty());
}

#[test]
fn one_writer_at_a_time_and_the_next_removes_what_a_killed_one_left() {
    use kluis_warehouse::{Error, WarehouseWriter};
    let f = Files::new();
    // What a killed writer leaves: its staging directory, with person data in it.
    let left = f.dir.path().join(".wh.kluis-tmp-Ab12Cd");
    std::fs::create_dir(&left).unwrap();
    std::fs::write(left.join("persons.parquet"), b"half a file").unwrap();
    // Another target's staging, and a file that only looks alike, are not this writer's.
    let other = f.dir.path().join(".wh2.kluis-tmp-Ab12Cd");
    std::fs::create_dir(&other).unwrap();
    let lookalike = f.dir.path().join(".wh.kluis-tmp-notes.txt");
    std::fs::write(&lookalike, b"mine").unwrap();

    let writer = WarehouseWriter::create(&f.warehouse()).unwrap();
    assert!(!left.exists(), "the killed writer's staging is removed");
    assert!(other.exists() && lookalike.exists());
    // While it writes, a second writer of the same target is refused and removes nothing.
    match WarehouseWriter::create(&f.warehouse()) {
        Err(Error::Busy(target)) => assert_eq!(target, f.warehouse()),
        Err(e) => panic!("expected Busy, got {e}"),
        Ok(_) => panic!("expected Busy, got a second writer"),
    }
    let staging: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".wh.kluis-tmp-") && n != ".wh.kluis-tmp-notes.txt")
        .collect();
    assert_eq!(staging.len(), 1, "the first writer's staging is intact");
    drop(writer);
    WarehouseWriter::create(&f.warehouse()).unwrap();
}
