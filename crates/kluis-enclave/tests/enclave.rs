//! Jobs run through the enclave on synthetic person-years: results, policy, unit statistics,
//! margins and limits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use kluis_enclave::{
    Cell, Enclave, EnclaveError, Job, Level, Limits, Output, OutputTable, PersonYearsSource,
    RiskOptions, Scaling, Statistic, Violation, write_results,
};

#[derive(Clone, Debug)]
struct Row {
    pseudonym: i64,
    year: i32,
    sex: &'static str,
    region: &'static str,
    income: Option<i64>,
}

const REGIONS: [&str; 3] = ["BRU", "VLG", "WAL"];

/// Persons observed in one to three years; some move region, some lack an income.
fn sample_rows(persons: i64) -> Vec<Row> {
    let mut rows = Vec::new();
    for p in 0..persons {
        let years = 1 + (p % 3) as i32;
        for y in 0..years {
            let region = REGIONS[((p + if p % 5 == 0 { y as i64 } else { 0 }) % 3) as usize];
            rows.push(Row {
                pseudonym: 1_000_003 * (p + 1) % 9_999_991,
                year: 2019 + y,
                sex: if p % 2 == 0 { "F" } else { "M" },
                region,
                income: if p % 7 == 0 {
                    None
                } else {
                    Some((p * 37 + y as i64 * 11) % 1000)
                },
            });
        }
    }
    rows
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pseudonym", DataType::Int64, false),
        Field::new("year", DataType::Int32, false),
        Field::new("sex", DataType::Utf8, true),
        Field::new("region", DataType::Utf8, true),
        Field::new("income", DataType::Int64, true),
    ]))
}

fn batch(rows: &[Row]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.pseudonym),
            )),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.year))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.sex))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.region))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.income))),
        ],
    )
    .unwrap()
}

fn write_parquet(dir: &Path, rows: &[Row]) -> PathBuf {
    let path = dir.join("person_years.parquet");
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema(), None).unwrap();
    writer.write(&batch(rows)).unwrap();
    writer.close().unwrap();
    path
}

fn output(name: &str, statistic: Statistic, sql: &str) -> Output {
    Output {
        name: name.into(),
        sql_file: format!("{name}.sql").into(),
        sql: sql.into(),
        unit: "pseudonym".into(),
        statistic,
        measure: None,
        dimensions: None,
    }
}

fn memory_enclave(rows: &[Row]) -> Enclave {
    Enclave::open(
        PersonYearsSource::Batches {
            schema: schema(),
            batches: vec![batch(rows)],
        },
        Limits::default(),
    )
    .unwrap()
}

/// The finest cells of a table: key -> (value, units, rows).
fn finest(table: &OutputTable) -> BTreeMap<Vec<String>, (Option<f64>, u64, u64)> {
    table
        .cells
        .iter()
        .filter(|c| !c.key.contains(&Level::Total))
        .map(|c| {
            let key = c.key.iter().map(|l| match l {
                Level::Value(v) => v.clone(),
                other => panic!("unexpected level {other:?}"),
            });
            (key.collect(), (c.value, c.stats.units, c.stats.rows))
        })
        .collect()
}

fn cell<'a>(table: &'a OutputTable, key: &[Level]) -> &'a Cell {
    table
        .cells
        .iter()
        .find(|c| c.key == key)
        .unwrap_or_else(|| panic!("no cell {key:?} in {}", table.name))
}

fn v(s: &str) -> Level {
    Level::Value(s.into())
}

/// The result table as rows of strings.
fn result_rows(table: &OutputTable) -> BTreeMap<Vec<String>, f64> {
    let mut out = BTreeMap::new();
    for b in &table.result {
        let measure = cast(b.column(b.num_columns() - 1), &DataType::Float64).unwrap();
        let measure = measure.as_primitive::<Float64Type>();
        for row in 0..b.num_rows() {
            let key = (0..b.num_columns() - 1)
                .map(|c| arrow::util::display::array_value_to_string(b.column(c), row).unwrap())
                .collect();
            out.insert(key, measure.value(row));
        }
    }
    out
}

#[test]
fn job_on_a_sample_matches_a_direct_computation() {
    let rows = sample_rows(300);
    let dir = tempfile::tempdir().unwrap();
    let path = write_parquet(dir.path(), &rows);
    let enclave = Enclave::open(PersonYearsSource::Parquet(path), Limits::default()).unwrap();

    let counts = enclave
        .run_output(&output(
            "counts",
            Statistic::Count,
            "SELECT region, sex, count(DISTINCT pseudonym) AS persons FROM person_years \
             WHERE year >= 2019 GROUP BY region, sex ORDER BY region, sex",
        ))
        .unwrap();
    let mut persons: BTreeMap<Vec<String>, BTreeSet<i64>> = BTreeMap::new();
    for r in &rows {
        persons
            .entry(vec![r.region.into(), r.sex.into()])
            .or_default()
            .insert(r.pseudonym);
    }
    let expected: BTreeMap<Vec<String>, f64> = persons
        .iter()
        .map(|(k, s)| (k.clone(), s.len() as f64))
        .collect();
    assert_eq!(result_rows(&counts), expected);
    assert_eq!(counts.dimensions, ["region", "sex"]);
    assert_eq!(counts.measure, "persons");
    for (key, (value, units, _)) in finest(&counts) {
        assert_eq!(value, Some(expected[&key]), "cell {key:?}");
        assert_eq!(units as f64, expected[&key], "units of {key:?}");
    }
    // Margins count each person once, although movers have rows in several regions.
    let all: BTreeSet<i64> = rows.iter().map(|r| r.pseudonym).collect();
    let total = cell(&counts, &[Level::Total, Level::Total]);
    assert_eq!(total.value, Some(all.len() as f64));
    assert_eq!(total.stats.units, all.len() as u64);
    assert_eq!(total.stats.rows, rows.len() as u64);
    let women: BTreeSet<i64> = rows
        .iter()
        .filter(|r| r.sex == "F")
        .map(|r| r.pseudonym)
        .collect();
    assert_eq!(
        cell(&counts, &[Level::Total, v("F")]).stats.units,
        women.len() as u64
    );
    assert_eq!(counts.cells.len(), 3 * 2 + 3 + 2 + 1);

    let means = enclave
        .run_output(&output(
            "means",
            Statistic::Mean,
            "SELECT region AS r, avg(income) AS mean_income FROM person_years GROUP BY region",
        ))
        .unwrap();
    let mut sums: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in &rows {
        if let Some(i) = r.income {
            let e = sums.entry(r.region.into()).or_default();
            e.0 += i;
            e.1 += 1;
        }
    }
    let got = result_rows(&means);
    for (region, (s, n)) in &sums {
        let want = *s as f64 / *n as f64;
        assert!(
            (got[&vec![region.clone()]] - want).abs() < 1e-9,
            "{region}: {} vs {want}",
            got[&vec![region.clone()]]
        );
    }
    let (s, n) = sums.values().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let overall = cell(&means, &[Level::Total]).value.unwrap();
    assert!((overall - s as f64 / n as f64).abs() < 1e-9);
    // Units without any income count as units but not as non-null units.
    let no_income: BTreeSet<i64> = rows
        .iter()
        .filter(|r| r.income.is_none())
        .map(|r| r.pseudonym)
        .collect();
    let total = cell(&means, &[Level::Total]);
    assert_eq!(total.stats.units, all.len() as u64);
    assert_eq!(
        total.stats.nonnull_units,
        (all.len() - no_income.len()) as u64
    );
}

#[test]
fn unit_statistics_count_persons_not_rows() {
    // Person 1 has 20 rows in one cell; persons 2 and 3 one row each; person 4 moves.
    let mut rows = Vec::new();
    for i in 0..20 {
        rows.push(Row {
            pseudonym: 1,
            year: 2000 + i,
            sex: "F",
            region: "BRU",
            income: Some(100),
        });
    }
    rows.push(Row {
        pseudonym: 2,
        year: 2019,
        sex: "M",
        region: "BRU",
        income: Some(50),
    });
    rows.push(Row {
        pseudonym: 3,
        year: 2019,
        sex: "M",
        region: "BRU",
        income: Some(0),
    });
    rows.push(Row {
        pseudonym: 4,
        year: 2019,
        sex: "F",
        region: "BRU",
        income: Some(-30),
    });
    rows.push(Row {
        pseudonym: 4,
        year: 2020,
        sex: "F",
        region: "WAL",
        income: Some(70),
    });
    rows.push(Row {
        pseudonym: 5,
        year: 2020,
        sex: "M",
        region: "WAL",
        income: None,
    });
    let enclave = memory_enclave(&rows);

    let t = enclave
        .run_output(&output(
            "income",
            Statistic::Sum,
            "SELECT region, sum(income) AS total FROM person_years GROUP BY region",
        ))
        .unwrap();
    let bru = cell(&t, &[v("BRU")]);
    assert_eq!(bru.value, Some((20 * 100 + 50 - 30) as f64));
    assert_eq!(bru.stats.rows, 23);
    assert_eq!(bru.stats.units, 4);
    assert_eq!(bru.stats.nonnull_units, 4);
    assert_eq!(bru.stats.nonzero_units, 3);
    assert_eq!(
        bru.stats.top1,
        Some(2000.0),
        "person 1's 20 rows are one contribution"
    );
    assert_eq!(bru.stats.top2, Some(50.0));
    assert!(bru.stats.any_negative);
    let wal = cell(&t, &[v("WAL")]);
    assert_eq!(
        (wal.stats.units, wal.stats.nonnull_units, wal.stats.rows),
        (2, 1, 2)
    );
    assert_eq!((wal.stats.top1, wal.stats.top2), (Some(70.0), None));
    assert!(!wal.stats.any_negative);
    // In the margin person 4's two rows add up to one contribution of 40.
    let total = cell(&t, &[Level::Total]);
    assert_eq!(
        (
            total.stats.units,
            total.stats.rows,
            total.stats.nonzero_units
        ),
        (5, 25, 3)
    );
    assert_eq!(
        (total.stats.top1, total.stats.top2),
        (Some(2000.0), Some(50.0))
    );
    assert!(
        !total.stats.any_negative,
        "person 4 contributes 40 in total"
    );

    // A count of rows: person 1 contributes 20.
    let c = enclave
        .run_output(&output(
            "rows",
            Statistic::Count,
            "SELECT sex, count(*) AS n FROM person_years GROUP BY sex",
        ))
        .unwrap();
    let f = cell(&c, &[v("F")]);
    assert_eq!(
        (f.value, f.stats.units, f.stats.top1, f.stats.top2),
        (Some(22.0), 2, Some(20.0), Some(2.0))
    );

    // A per-person pre-aggregation: units are still persons.
    let pre = enclave
        .run_output(&output(
            "pre",
            Statistic::Mean,
            "SELECT region, avg(total) AS mean_total FROM \
             (SELECT pseudonym, region, sum(income) AS total FROM person_years GROUP BY pseudonym, region) t \
             GROUP BY region",
        ))
        .unwrap();
    let bru = cell(&pre, &[v("BRU")]);
    assert_eq!(bru.value, Some((2000.0 + 50.0 + 0.0 - 30.0) / 4.0));
    assert_eq!(
        (bru.stats.units, bru.stats.rows, bru.stats.top1),
        (4, 4, Some(2000.0))
    );
}

/// Every cell's statistics and unit set, computed person by person over the rows.
fn brute_force(
    rows: &[Row],
    cell: &[Level],
) -> (u64, u64, u64, Option<f64>, Option<f64>, Vec<u32>) {
    let matches = |r: &Row| {
        let values = [r.year.to_string(), r.sex.to_string()];
        cell.iter().zip(&values).all(|(level, value)| match level {
            Level::Total => true,
            Level::Value(v) => v == value,
            Level::Missing => false,
        })
    };
    let mut per_unit: BTreeMap<i64, (u64, Option<f64>)> = BTreeMap::new();
    for r in rows.iter().filter(|r| matches(r)) {
        let entry = per_unit.entry(r.pseudonym).or_default();
        entry.0 += 1;
        if let Some(income) = r.income {
            entry.1 = Some(entry.1.unwrap_or(0.0) + income as f64);
        }
    }
    let rows_in = per_unit.values().map(|(n, _)| n).sum();
    let mut tops: Vec<f64> = per_unit
        .values()
        .filter_map(|(_, c)| c.map(f64::abs))
        .collect();
    tops.sort_by(|a, b| b.total_cmp(a));
    // The persons the sum depends on: a non-zero contribution.
    let set = per_unit
        .iter()
        .filter(|(_, (_, c))| c.is_some_and(|c| c != 0.0))
        .map(|(&u, _)| u as u32)
        .collect();
    (
        per_unit.len() as u64,
        rows_in,
        per_unit.values().filter(|(_, c)| c.is_some()).count() as u64,
        tops.first().copied(),
        tops.get(1).copied(),
        set,
    )
}

#[test]
fn unit_statistics_and_sets_equal_a_person_by_person_count() {
    // Units spread thinly over many roaring containers, and 70,000 units numbered 1.. as
    // pseudonyms are (two containers): both go over both roll-up threads, the first through the
    // sort for sparse units, the second through the one for dense units.
    let sparse = sample_rows(3000);
    let mut dense = sample_rows(70_000);
    let numbers: BTreeMap<i64, i64> = dense
        .iter()
        .map(|r| r.pseudonym)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .zip(1..)
        .collect();
    for r in &mut dense {
        r.pseudonym = numbers[&r.pseudonym];
    }
    assert!(*numbers.values().max().unwrap() > 65_536);
    check_unit_statistics(&sparse);
    check_unit_statistics(&dense);
}

fn check_unit_statistics(rows: &[Row]) {
    // One batch per year, so a person's rows are in both partitions of the table.
    let years: BTreeSet<i32> = rows.iter().map(|r| r.year).collect();
    let batches = years
        .iter()
        .map(|&y| {
            let of_year: Vec<Row> = rows.iter().filter(|r| r.year == y).cloned().collect();
            batch(&of_year)
        })
        .collect();
    let enclave = Enclave::open(
        PersonYearsSource::Batches {
            schema: schema(),
            batches,
        },
        Limits::default(),
    )
    .unwrap();
    let t = enclave
        .run_output(&output(
            "income",
            Statistic::Sum,
            "SELECT year, sex, sum(income) AS total FROM person_years GROUP BY year, sex",
        ))
        .unwrap();
    assert_eq!(
        t.cells.len(),
        4 * 3,
        "3 years x 2 sexes, their margins and the total"
    );
    for c in &t.cells {
        let (units, rows_in, nonnull, top1, top2, set) = brute_force(rows, &c.key);
        assert_eq!(
            (c.stats.units, c.stats.rows, c.stats.nonnull_units),
            (units, rows_in, nonnull),
            "cell {:?}",
            c.key
        );
        assert_eq!(
            (c.stats.top1, c.stats.top2),
            (top1, top2),
            "cell {:?}",
            c.key
        );
        assert_eq!(
            c.units.iter().collect::<Vec<u32>>(),
            set,
            "cell {:?}",
            c.key
        );
    }
}

#[test]
fn a_dimension_value_spelled_like_a_margin_is_refused() {
    // A finest cell keyed `Total` would be taken for the margin by disclosure control.
    let enclave = memory_enclave(&sample_rows(50));
    for fake in ["Total", "(missing)"] {
        let sql = format!(
            "SELECT CASE WHEN region = 'BRU' THEN '{fake}' ELSE region END AS r, count(*) AS n \
             FROM person_years GROUP BY 1"
        );
        let error = enclave
            .run_output(&output("fake", Statistic::Count, &sql))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!("has the value `{fake}`")),
            "{error}"
        );
    }
}

#[test]
fn transitions_join_on_the_unit_and_keep_persons_as_units() {
    let rows = vec![
        Row {
            pseudonym: 1,
            year: 2019,
            sex: "F",
            region: "BRU",
            income: None,
        },
        Row {
            pseudonym: 1,
            year: 2020,
            sex: "F",
            region: "WAL",
            income: None,
        },
        Row {
            pseudonym: 2,
            year: 2019,
            sex: "M",
            region: "BRU",
            income: None,
        },
        Row {
            pseudonym: 2,
            year: 2020,
            sex: "M",
            region: "WAL",
            income: None,
        },
        Row {
            pseudonym: 3,
            year: 2019,
            sex: "M",
            region: "BRU",
            income: None,
        },
        Row {
            pseudonym: 3,
            year: 2020,
            sex: "M",
            region: "BRU",
            income: None,
        },
    ];
    let enclave = memory_enclave(&rows);
    let t = enclave
        .run_output(&output(
            "moves",
            Statistic::Count,
            "SELECT a.region AS from_region, b.region AS to_region, count(*) AS n \
             FROM person_years a JOIN person_years b ON a.pseudonym = b.pseudonym AND b.year = a.year + 1 \
             GROUP BY a.region, b.region",
        ))
        .unwrap();
    assert_eq!(t.dimensions, ["from_region", "to_region"]);
    let moved = cell(&t, &[v("BRU"), v("WAL")]);
    assert_eq!((moved.value, moved.stats.units), (Some(2.0), 2));
    assert_eq!(cell(&t, &[v("BRU"), Level::Total]).stats.units, 3);
}

fn refusal(enclave: &Enclave, sql: &str) -> Violation {
    refusal_of(enclave, output("q", Statistic::Count, sql))
}

fn refusal_of(enclave: &Enclave, out: Output) -> Violation {
    match enclave.check(&out) {
        Err(EnclaveError::Refused { violation, .. }) => violation,
        other => panic!("expected a refusal for {:?}, got {other:?}", out.sql),
    }
}

#[test]
fn each_refused_query_shape_is_refused_with_its_reason() {
    let enclave = memory_enclave(&sample_rows(30));
    use Violation as V;
    type Case = (&'static str, fn(&Violation) -> bool);
    let cases: Vec<Case> = vec![
        ("SELECT region, sex FROM person_years", |v| {
            matches!(v, V::NotAnAggregation { .. })
        }),
        ("SELECT DISTINCT region FROM person_years", |v| {
            matches!(v, V::NotAnAggregation { .. })
        }),
        (
            "SELECT pseudonym, count(*) AS n FROM person_years GROUP BY pseudonym",
            |v| matches!(v, V::UnitAsDimension { .. }),
        ),
        (
            "SELECT pseudonym + 0 AS p, count(*) AS n FROM person_years GROUP BY pseudonym + 0",
            |v| matches!(v, V::UnitInExpression { .. }),
        ),
        (
            "SELECT CAST(pseudonym AS VARCHAR) AS p, count(*) AS n FROM person_years GROUP BY 1",
            |v| matches!(v, V::UnitInExpression { .. }),
        ),
        (
            "SELECT CASE WHEN pseudonym > 5 THEN 'a' ELSE 'b' END AS g, count(*) AS n FROM person_years GROUP BY 1",
            |v| matches!(v, V::UnitInExpression { .. }),
        ),
        (
            "SELECT region, min(pseudonym) AS m FROM person_years GROUP BY region",
            |v| matches!(v, V::UnitInOutput { .. }),
        ),
        (
            "SELECT region, count(*) AS n FROM person_years WHERE pseudonym = 1000003 GROUP BY region",
            |v| matches!(v, V::UnitInExpression { .. }),
        ),
        (
            "SELECT n_years, count(*) AS persons FROM \
             (SELECT pseudonym, count(*) AS n_years FROM person_years GROUP BY pseudonym) t GROUP BY n_years",
            |v| matches!(v, V::PerUnitDimension { .. }),
        ),
        (
            "SELECT region, count(*) AS n FROM person_years GROUP BY region ORDER BY n DESC LIMIT 1",
            |v| matches!(v, V::Limit),
        ),
        (
            "SELECT region, count(*) AS n FROM (SELECT * FROM person_years ORDER BY income DESC LIMIT 5) t GROUP BY region",
            |v| matches!(v, V::Limit),
        ),
        (
            "SELECT region, sum(count(*)) OVER () AS n FROM person_years GROUP BY region",
            |v| matches!(v, V::Window { .. }),
        ),
        (
            "SELECT region, count(*) AS n FROM \
             (SELECT region, row_number() OVER (PARTITION BY region ORDER BY income) AS rn FROM person_years) t \
             WHERE rn = 1 GROUP BY region",
            |v| matches!(v, V::Window { .. }),
        ),
        (
            "SELECT table_name, count(*) AS n FROM information_schema.tables GROUP BY table_name",
            |v| matches!(v, V::ForeignTable { .. }),
        ),
        ("SELECT count(*) AS n FROM other_table", |v| {
            matches!(v, V::ForeignTable { .. })
        }),
        ("SELECT count(*) AS n FROM '/etc/passwd'", |v| {
            matches!(v, V::ForeignTable { .. })
        }),
        ("SELECT count(*) AS n FROM generate_series(1, 10)", |v| {
            matches!(v, V::ForeignTable { .. })
        }),
        ("SELECT count(*) AS n FROM (VALUES (1), (2)) AS t(x)", |v| {
            matches!(v, V::ConstantRows { .. })
        }),
        ("SELECT count(*) AS n", |v| {
            matches!(v, V::ConstantRows { .. })
        }),
        (
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/tmp/x.parquet'",
            |v| matches!(v, V::NotAQuery { .. }),
        ),
        (
            "CREATE TABLE t AS SELECT region, count(*) AS n FROM person_years GROUP BY region",
            |v| matches!(v, V::NotAQuery { .. }),
        ),
        ("INSERT INTO person_years SELECT * FROM person_years", |v| {
            matches!(v, V::NotAQuery { .. })
        }),
        (
            "COPY (SELECT region, count(*) AS n FROM person_years GROUP BY region) TO '/tmp/out.csv'",
            |v| matches!(v, V::NotAQuery { .. }),
        ),
        ("SET datafusion.execution.batch_size = 1", |v| {
            matches!(v, V::NotAQuery { .. })
        }),
        (
            "SELECT region, count(*) AS n FROM person_years WHERE to_hex(income) = 'ff' GROUP BY region",
            |v| matches!(v, V::FunctionNotAllowed { name, .. } if name == "to_hex"),
        ),
        // Functions that would fail only on the rows that reach them.
        (
            "SELECT region, count(*) AS n FROM person_years WHERE make_date(year, 13, 1) IS NULL GROUP BY region",
            |v| matches!(v, V::FunctionNotAllowed { name, .. } if name == "make_date"),
        ),
        (
            "SELECT region, count(*) AS n FROM person_years WHERE CASE WHEN income > 9000 THEN substr(region, 1, -1) END = '' GROUP BY region",
            |v| matches!(v, V::FunctionArguments { .. }),
        ),
        (
            "SELECT region, count(*) AS n FROM person_years WHERE substr(region, 1, CASE WHEN income > 9000 THEN -1 ELSE 1 END) = 'B' GROUP BY region",
            |v| matches!(v, V::FunctionArguments { .. }),
        ),
        (
            "SELECT region, count(*) AS n FROM person_years WHERE date_part(region, DATE '2020-01-01') = 1 GROUP BY region",
            |v| matches!(v, V::FunctionArguments { .. }),
        ),
        (
            "SELECT region, array_agg(income) AS a FROM person_years GROUP BY region",
            |v| matches!(v, V::FunctionNotAllowed { name, .. } if name == "array_agg"),
        ),
        (
            "SELECT region, count(*) AS n FROM person_years GROUP BY region HAVING count(*) > 3",
            |v| matches!(v, V::Having { .. }),
        ),
        (
            "SELECT region, sex, count(*) AS n FROM person_years GROUP BY CUBE(region, sex)",
            |v| matches!(v, V::GroupingSets),
        ),
        (
            "SELECT region, count(*) AS n FROM person_years \
             WHERE pseudonym IN (SELECT pseudonym FROM person_years WHERE year = 2020) GROUP BY region",
            |v| matches!(v, V::SubqueryExpression { .. }),
        ),
        (
            "SELECT a.region, count(*) AS n FROM person_years a JOIN person_years b ON a.year = b.year GROUP BY a.region",
            |v| matches!(v, V::JoinNotOnUnit { .. }),
        ),
        (
            "SELECT sex, count(*) AS n FROM (SELECT sex, region, count(*) AS c FROM person_years GROUP BY sex, region) t GROUP BY sex",
            |v| matches!(v, V::UnitLost { .. }),
        ),
        (
            "SELECT count(*) AS n FROM person_years GROUP BY region",
            |v| matches!(v, V::HiddenGroupKey { .. }),
        ),
        (
            "SELECT region, count(*) AS n, avg(income) AS m FROM person_years GROUP BY region",
            |v| matches!(v, V::SeveralMeasures { .. }),
        ),
        (
            "SELECT region, sum(income) AS s FROM person_years GROUP BY region",
            |v| matches!(v, V::StatisticMismatch { .. }),
        ),
        (
            "SELECT region, max(sex) AS s FROM person_years GROUP BY region",
            |v| matches!(v, V::StatisticMismatch { .. } | V::MeasureNotNumeric { .. }),
        ),
    ];
    for (sql, expected) in cases {
        let violation = refusal(&enclave, sql);
        assert!(
            expected(&violation),
            "{sql}\n  refused for the wrong reason: {violation}"
        );
        assert!(!violation.to_string().is_empty());
    }

    // A declared measure with a second aggregate column: the extra column is named.
    let mut out = output(
        "two",
        Statistic::Count,
        "SELECT region, count(*) AS n, avg(income) AS m FROM person_years GROUP BY region",
    );
    out.measure = Some("n".into());
    assert!(matches!(refusal_of(&enclave, out), V::ExtraColumn { column, .. } if column == "m"));
    // Declared dimensions must be the GROUP BY keys.
    let mut out = output(
        "dims",
        Statistic::Count,
        "SELECT region, count(*) AS n FROM person_years GROUP BY region",
    );
    out.dimensions = Some(vec!["sex".into()]);
    assert!(matches!(
        refusal_of(&enclave, out),
        V::DimensionsMismatch { .. }
    ));
}

#[test]
fn allowed_shapes_pass_the_check() {
    let enclave = memory_enclave(&sample_rows(30));
    for sql in [
        "SELECT region, count(*) AS n FROM person_years GROUP BY region ORDER BY n DESC",
        "SELECT upper(region) AS r, count(DISTINCT pseudonym) AS n FROM person_years WHERE year BETWEEN 2019 AND 2020 GROUP BY upper(region)",
        "WITH recent AS (SELECT * FROM person_years WHERE year >= 2020) SELECT sex, count(*) AS n FROM recent GROUP BY sex",
        "SELECT CASE WHEN income < 500 THEN 'low' ELSE 'high' END AS band, count(*) AS n FROM person_years GROUP BY 1",
        "SELECT count(*) AS n FROM person_years",
        // DataFusion drops an ORDER BY without LIMIT in a derived table: the plan has no sort.
        "SELECT region, count(*) AS n FROM (SELECT * FROM person_years ORDER BY income) t GROUP BY region",
        "SELECT region, n FROM (SELECT region, count(*) AS n FROM person_years GROUP BY region) t ORDER BY region",
    ] {
        let checked = enclave.check(&output("ok", Statistic::Count, sql));
        assert!(checked.is_ok(), "{sql}: {checked:?}");
        let table = enclave
            .run_output(&output("ok", Statistic::Count, sql))
            .unwrap();
        let total = table.cells.last().unwrap();
        assert!(
            total.key.iter().all(|l| *l == Level::Total),
            "{sql}: the last cell is the grand total"
        );
        assert!(
            total.stats.units > 0 && total.value.is_some(),
            "{sql}: {total:?}"
        );
    }
}

fn bigger_rows() -> Vec<Row> {
    sample_rows(60_000)
}

#[test]
fn going_over_the_memory_limit_is_a_clear_error() {
    let rows = bigger_rows();
    let limits = Limits {
        memory_bytes: 64 << 10,
        ..Limits::default()
    };
    let enclave = Enclave::open(
        PersonYearsSource::Batches {
            schema: schema(),
            batches: vec![batch(&rows)],
        },
        limits,
    )
    .unwrap();
    let err = enclave
        .run_output(&output(
            "big",
            Statistic::Count,
            "SELECT year, region, count(DISTINCT pseudonym) AS n FROM person_years GROUP BY year, region",
        ))
        .unwrap_err();
    assert!(matches!(err, EnclaveError::MemoryLimit { .. }), "{err}");
    assert!(err.to_string().contains("memory limit"), "{err}");
}

#[test]
fn going_over_the_time_limit_is_a_clear_error() {
    let rows = bigger_rows();
    let limits = Limits {
        time: Duration::from_millis(1),
        ..Limits::default()
    };
    let enclave = Enclave::open(
        PersonYearsSource::Batches {
            schema: schema(),
            batches: vec![batch(&rows)],
        },
        limits,
    )
    .unwrap();
    let err = enclave
        .run_output(&output(
            "slow",
            Statistic::Count,
            "SELECT year, region, count(DISTINCT pseudonym) AS n FROM person_years GROUP BY year, region",
        ))
        .unwrap_err();
    assert!(matches!(err, EnclaveError::TimeLimit { .. }), "{err}");
    assert!(err.to_string().contains("time limit"), "{err}");
}

#[test]
fn results_are_written_with_cells_and_a_risk_report() {
    let rows = sample_rows(12);
    let dir = tempfile::tempdir().unwrap();
    let job_dir = dir.path().join("job");
    std::fs::create_dir(&job_dir).unwrap();
    std::fs::write(
        job_dir.join("job.toml"),
        "name = \"t\"\nproject = \"P1\"\n[[output]]\nname = \"by_region\"\nsql = \"q.sql\"\nstatistic = \"count\"\n",
    )
    .unwrap();
    std::fs::write(
        job_dir.join("q.sql"),
        "SELECT region, count(*) AS n FROM person_years GROUP BY region",
    )
    .unwrap();
    let job = Job::load(&job_dir).unwrap();
    let enclave = memory_enclave(&rows);
    let tables = enclave.run_job(&job).unwrap();
    let out = job_dir.join("results").join("sample");
    write_results(
        &out,
        &job,
        &tables,
        &RiskOptions {
            scaling: Scaling::Uniform(1.5),
            rules: kluis_sdc::RuleSet::default_set(),
        },
    )
    .unwrap();
    let cells = std::fs::read_to_string(out.join("by_region.cells.csv")).unwrap();
    assert!(
        cells.starts_with("region,total_over,n,units,rows,"),
        "{cells}"
    );
    assert!(
        cells.lines().any(|l| l.starts_with("Total,region,")),
        "{cells}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    // 12 persons, 5 per region: scaled by 1.5 every region stays under 10, the total does not.
    let at_risk = report["outputs"][0]["at_risk"].as_array().unwrap();
    assert_eq!(at_risk.len(), 3, "{report}");
    // A second run replaces the results as a whole.
    write_results(
        &out,
        &job,
        &tables,
        &RiskOptions {
            scaling: Scaling::Uniform(4.0),
            rules: kluis_sdc::RuleSet::default_set(),
        },
    )
    .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["outputs"][0]["at_risk"].as_array().unwrap().len(), 0);
    let leftovers: Vec<_> = std::fs::read_dir(job_dir.join("results"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "sample")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(out.join("by_region.csv").exists());
}

#[test]
fn a_job_that_checks_runs_on_a_view_of_the_columns_it_uses() {
    // The full run builds its view with only the columns an output uses; one that reads a
    // column only in a subquery's ORDER BY (which the optimizer drops) must still plan there.
    let rows = sample_rows(40);
    let full = memory_enclave(&rows);
    for sql in [
        "SELECT region, count(*) AS n FROM (SELECT * FROM person_years ORDER BY income) t GROUP BY region",
        "SELECT region, count(*) AS n FROM (SELECT region, pseudonym, income FROM person_years ORDER BY income, year) t GROUP BY region",
        "SELECT region, count(*) AS n FROM person_years WHERE income IS NULL OR income >= 0 GROUP BY region ORDER BY region",
    ] {
        let out = output("q", Statistic::Count, sql);
        full.check(&out).unwrap();
        let columns = full.columns_used(&out).unwrap();
        let narrowed = kluis_enclave::compact(&batch(&rows), Some(&columns)).unwrap();
        let view = Enclave::open(
            PersonYearsSource::Batches {
                schema: narrowed.schema(),
                batches: vec![narrowed],
            },
            Limits::default(),
        )
        .unwrap();
        let t = view
            .run_output(&out)
            .unwrap_or_else(|e| panic!("{sql} on columns {columns:?}: {e}"));
        assert_eq!(
            result_rows(&t),
            result_rows(&full.run_output(&out).unwrap()),
            "{sql}"
        );
    }
}
