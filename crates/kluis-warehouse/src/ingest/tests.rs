//! Checking on several threads in blocks gives what one thread reading the file from the top
//! gives: the same rejections, on the same lines, in file order, and the same tables.

use super::*;
use crate::Warehouse;
use kluis_model::insz::BisSex;
use kluis_model::{Insz, InszKind, PartialDate, Sex};

fn insz(n: u16) -> String {
    Insz::generate(
        PartialDate {
            year: 1980,
            month: 1 + (n / 400 % 12) as u8,
            day: 1,
        },
        Insz::serial_for(Sex::M, n % 400),
        InszKind::Rr,
        BisSex::Known,
    )
    .to_string()
}

const PERSONS_HEADER: &str = "insz,sex,birth_date,country_of_birth,first_nationality,father_first_nationality,mother_first_nationality,registration_date,naturalisation_date,education_level,study_field";

/// Persons and person-years with bad rows spread through both files (duplicates far from their
/// first row, rows of the wrong width, a quoted field with a line break), and the lines the
/// rejections must name, in order.
fn files(newline: &str) -> (String, String, Vec<(String, u64, &'static str)>) {
    let mut expected = Vec::new();
    let mut persons = format!("{PERSONS_HEADER}{newline}");
    let mut line = 1;
    for n in 0..300u16 {
        line += 1;
        let birth = format!("1980-{:02}-01", 1 + n / 400 % 12);
        let row = match n {
            17 => {
                expected.push(("persons.csv".into(), line, "sex"));
                format!("{},X,{birth},BE,BE,BE,BE,{birth},,6,04", insz(n))
            }
            150 => {
                expected.push(("persons.csv".into(), line, "insz"));
                format!("{},M,{birth},BE,BE,BE,BE,{birth},,6,04", insz(3))
            }
            151 => {
                expected.push(("persons.csv".into(), line, "row"));
                format!("{},M,{birth}", insz(n))
            }
            _ => format!("{},M,{birth},BE,BE,BE,BE,{birth},,6,04", insz(n)),
        };
        persons += &row;
        persons += newline;
    }
    let mut years = format!(
        "insz,year,region,current_nationality,employer_id,employer_type,statuut,nace{newline}"
    );
    let mut line = 1;
    for year in [2015, 2016, 2017] {
        for n in 0..300u16 {
            // The rejected persons' other years are left out.
            if matches!(n, 150 | 151) || (n == 17 && year != 2015) {
                continue;
            }
            line += 1;
            let row = match (year, n) {
                // Its person was rejected.
                (2015, 17) => {
                    expected.push(("person_years.csv".into(), line, "insz"));
                    format!("{},{year},02000,BE,12345,30,2,62010", insz(n))
                }
                (2016, 40) => {
                    expected.push(("person_years.csv".into(), line, "nace"));
                    format!("{},{year},02000,BE,12345,30,2,04100", insz(n))
                }
                // A duplicate of the row before, and one of a row much earlier.
                (2016, 41) => {
                    expected.push(("person_years.csv".into(), line, "year"));
                    format!("{},2016,02000,BE,12345,30,2,62010", insz(39))
                }
                (2017, 299) => {
                    expected.push(("person_years.csv".into(), line, "year"));
                    format!("{},2015,02000,BE,12345,30,2,62010", insz(5))
                }
                // A quoted value with a line break: a bad region, on the line it starts on.
                (2017, 100) => {
                    expected.push(("person_years.csv".into(), line, "region"));
                    let row = format!("{},{year},\"02{newline}000\",BE,12345,30,2,62010", insz(n));
                    line += 1;
                    row
                }
                _ => format!("{},{year},02000,BE,12345,30,2,62010", insz(n)),
            };
            years += &row;
            years += newline;
        }
    }
    (persons, years, expected)
}

/// The rejections and the loaded tables (as CSV) of one ingest.
fn load(
    persons: &Path,
    years: &Path,
    warehouse: &Path,
    threads: usize,
    block_bytes: usize,
) -> (Vec<Rejection>, Vec<u8>) {
    let options = IngestOptions {
        persons: persons.to_owned(),
        person_years: years.to_owned(),
        warehouse: warehouse.to_owned(),
        load_good_rows: true,
        check_threads: threads,
        writer_threads: 2,
    };
    let mut rejections = Vec::new();
    ingest_in_blocks(&options, block_bytes, &mut |r| rejections.push(r.clone())).unwrap();
    let out = warehouse.with_extension("csv");
    crate::export::export_csv(&Warehouse::open(warehouse).unwrap(), &out).unwrap();
    let mut tables = std::fs::read(out.join("persons.csv")).unwrap();
    tables.extend(std::fs::read(out.join("person_years.csv")).unwrap());
    (rejections, tables)
}

#[test]
fn blocks_and_threads_change_nothing_in_what_is_reported_or_loaded() {
    for newline in ["\n", "\r\n"] {
        let dir = tempfile::tempdir().unwrap();
        let (persons, years, expected) = files(newline);
        let p = dir.path().join("persons.csv");
        let y = dir.path().join("person_years.csv");
        std::fs::write(&p, persons).unwrap();
        std::fs::write(&y, years).unwrap();

        let (reference, tables) = load(&p, &y, &dir.path().join("one"), 1, 1 << 30);
        let found: Vec<(String, u64, &str)> = reference
            .iter()
            .map(|r| {
                let Location::Line(line) = r.location else {
                    panic!("a CSV row has a line")
                };
                (r.file.clone(), line, r.field.as_str())
            })
            .collect();
        assert_eq!(found, expected, "{newline:?}: {reference:#?}");
        for (i, (threads, block_bytes)) in [(2, 64), (3, 1000), (2, 4096), (1, 333)]
            .into_iter()
            .enumerate()
        {
            let (rejections, again) = load(
                &p,
                &y,
                &dir.path().join(format!("wh{i}")),
                threads,
                block_bytes,
            );
            assert_eq!(
                rejections, reference,
                "{newline:?}, {threads} threads, blocks of {block_bytes}"
            );
            assert!(again == tables, "the same tables whatever the blocks");
        }
    }
}
