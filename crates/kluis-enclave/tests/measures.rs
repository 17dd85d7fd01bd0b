//! Every published number is judged by the persons it depends on: the shapes of measure kluis
//! accepts, the ones it refuses, the declared statistic checked against the plan, and each
//! aggregate's own contributors, against a person-by-person count.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use kluis_enclave::{
    Enclave, EnclaveError, Level, Limits, Output, OutputTable, PersonYearsSource, Scaling,
    Statistic, Violation, contributors, to_sdc_table,
};

/// 60 persons over three years; persons 0..4 are "rare" (naturalised) and all live in BRU.
struct Person {
    id: i64,
    region: &'static str,
    sex: &'static str,
    rare: bool,
    years: i32,
}

fn persons() -> Vec<Person> {
    (0..60)
        .map(|p| Person {
            id: 1000 + p * 7,
            region: if p < 4 || p % 3 == 0 {
                "BRU"
            } else if p % 3 == 1 {
                "VLG"
            } else {
                "WAL"
            },
            sex: if p % 2 == 0 { "F" } else { "M" },
            rare: p < 4,
            years: 1 + (p % 3) as i32,
        })
        .collect()
}

fn enclave() -> Enclave {
    let schema = Arc::new(Schema::new(vec![
        Field::new("pseudonym", DataType::Int64, false),
        Field::new("year", DataType::Int32, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("sex", DataType::Utf8, true),
        Field::new("naturalised", DataType::Int32, true),
        Field::new("income", DataType::Int64, true),
    ]));
    let (mut id, mut year, mut region, mut sex, mut nat, mut income) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for p in persons() {
        for y in 0..p.years {
            id.push(p.id);
            year.push(2019 + y);
            region.push(p.region);
            sex.push(p.sex);
            nat.push(p.rare.then_some(2000 + p.id as i32 % 20));
            income.push(Some(100 + p.id * 3 + y as i64));
        }
    }
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(id)),
            Arc::new(Int32Array::from(year)),
            Arc::new(StringArray::from(region)),
            Arc::new(StringArray::from(sex)),
            Arc::new(Int32Array::from(nat)),
            Arc::new(Int64Array::from(income)),
        ],
    )
    .unwrap();
    Enclave::open(
        PersonYearsSource::Batches {
            schema,
            batches: vec![batch],
        },
        Limits::default(),
    )
    .unwrap()
}

fn output(statistic: Statistic, sql: &str) -> Output {
    Output {
        name: "q".into(),
        sql_file: "q.sql".into(),
        sql: sql.into(),
        unit: "pseudonym".into(),
        statistic,
        measure: None,
        dimensions: None,
    }
}

fn refusal(statistic: Statistic, sql: &str) -> Violation {
    match enclave().check(&output(statistic, sql)) {
        Err(EnclaveError::Refused { violation, .. }) => violation,
        other => panic!("expected a refusal of {sql}, got {other:?}"),
    }
}

#[test]
fn measures_whose_persons_cannot_be_counted_are_refused_with_the_accepted_shapes() {
    let q = |m: &str| format!("SELECT region, {m} AS n FROM person_years GROUP BY region");
    for (statistic, measure) in [
        // The cell minus the rare persons: one number that is a difference of two groups.
        (
            Statistic::Count,
            "count(*) - count(CASE WHEN naturalised IS NOT NULL THEN 1 END)",
        ),
        // A count in name, one person's value in fact.
        (
            Statistic::Count,
            "count(*) * 0 + sum(CASE WHEN naturalised IS NOT NULL THEN naturalised ELSE 0 END)",
        ),
        (Statistic::Sum, "sum(income) + sum(income)"),
        (Statistic::Sum, "sum(DISTINCT income)"),
        (Statistic::Count, "count(DISTINCT region)"),
        (Statistic::Mean, "avg(DISTINCT income)"),
        (Statistic::Sum, "coalesce(sum(income), 0)"),
        (Statistic::Count, "count(*) * count(*)"),
        (Statistic::Share, "avg(income) / count(*)"),
        (Statistic::Share, "max(income) / count(*)"),
        (Statistic::Share, "count(*) / count(*) / count(*)"),
        (Statistic::Sum, "sum(income) - 1"),
        (Statistic::Sum, "-sum(income)"),
    ] {
        let v = refusal(statistic, &q(measure));
        assert!(
            matches!(v, Violation::UnsupportedMeasure { .. }),
            "{measure}: refused for the wrong reason: {v}"
        );
        let text = v.to_string();
        assert!(
            text.contains("accepted: count(*)") && text.contains("a ratio a / b"),
            "{text}"
        );
    }
}

#[test]
fn the_declared_statistic_is_checked_against_the_plan() {
    let q = |m: &str| format!("SELECT region, {m} AS n FROM person_years GROUP BY region");
    for (statistic, measure) in [
        (Statistic::Count, "sum(income)"),
        (Statistic::Count, "100 * count(*)"),
        (Statistic::Count, "count(*) / count(*)"),
        (Statistic::Count, "avg(income)"),
        (Statistic::Sum, "count(*)"),
        (Statistic::Mean, "count(*)"),
        (Statistic::Share, "sum(income)"),
        (Statistic::Min, "max(income)"),
    ] {
        let v = refusal(statistic, &q(measure));
        assert!(
            matches!(v, Violation::StatisticMismatch { .. }),
            "{measure} as {statistic}: refused for the wrong reason: {v}"
        );
        assert!(v.to_string().contains("is declared statistic"), "{v}");
    }
    // What fits passes.
    let e = enclave();
    for (statistic, measure) in [
        (Statistic::Count, "count(*)"),
        (Statistic::Count, "CAST(count(income) AS DOUBLE)"),
        (Statistic::Count, "count(DISTINCT pseudonym)"),
        (Statistic::Count, "count(*) FILTER (WHERE sex = 'F')"),
        (
            Statistic::Sum,
            "sum(CASE WHEN sex = 'F' THEN income ELSE 0 END)",
        ),
        (Statistic::Mean, "avg(income)"),
        (Statistic::Mean, "sum(income) / count(income)"),
        (
            Statistic::Share,
            "avg(CASE WHEN sex = 'F' THEN 1.0 ELSE 0.0 END)",
        ),
        (
            Statistic::Share,
            "100.0 * count(CASE WHEN sex = 'F' THEN 1 END) / count(*)",
        ),
        (
            Statistic::Share,
            "1.0 / count(*) * count(CASE WHEN sex = 'F' THEN 1 END)",
        ),
        (Statistic::Min, "min(income)"),
    ] {
        let sql = q(measure);
        let checked = e.check(&output(statistic, &sql));
        assert!(checked.is_ok(), "{sql}: {checked:?}");
        e.run_output(&output(statistic, &sql))
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }
}

fn region_cell<'a>(t: &'a OutputTable, region: &str) -> &'a kluis_enclave::Cell {
    t.cells
        .iter()
        .find(|c| c.key == [Level::Value(region.into())])
        .unwrap()
}

/// The persons of a region for whom `pick` holds.
fn people(region: &str, pick: impl Fn(&Person) -> bool) -> BTreeSet<u32> {
    persons()
        .into_iter()
        .filter(|p| p.region == region && pick(&p))
        .map(|p| p.id as u32)
        .collect()
}

#[test]
fn each_count_is_judged_by_the_persons_it_counts() {
    let e = enclave();
    let rare_in_bru = people("BRU", |p| p.rare);
    assert_eq!(rare_in_bru.len(), 4);
    // Four ways of counting the naturalised, each judged by those four persons, not by the
    // whole region.
    for measure in [
        "count(CASE WHEN naturalised IS NOT NULL THEN 1 END)",
        "count(naturalised)",
        "count(*) FILTER (WHERE naturalised IS NOT NULL)",
        "sum(CASE WHEN naturalised IS NOT NULL THEN 1 ELSE 0 END)",
        "count(DISTINCT pseudonym) FILTER (WHERE naturalised IS NOT NULL)",
    ] {
        let statistic = if measure.starts_with("sum") {
            Statistic::Sum
        } else {
            Statistic::Count
        };
        let sql = format!("SELECT region, {measure} AS n FROM person_years GROUP BY region");
        let t = e.run_output(&output(statistic, &sql)).unwrap();
        let bru = region_cell(&t, "BRU");
        assert_eq!(
            bru.units.iter().collect::<BTreeSet<u32>>(),
            rare_in_bru,
            "{measure}"
        );
        assert_eq!(contributors(bru, statistic), 4, "{measure}");
        let sdc = to_sdc_table(&t, &Scaling::Uniform(1.0));
        let i = t.cells.iter().position(|c| std::ptr::eq(c, bru)).unwrap();
        assert_eq!(sdc.cells[i].nonnull_units, 4, "{measure}");
        if statistic == Statistic::Count {
            assert_eq!(sdc.cells[i].units, 4, "{measure}");
        }
        // A region without naturalised persons has nobody behind its number.
        assert_eq!(
            contributors(region_cell(&t, "WAL"), statistic),
            0,
            "{measure}"
        );
    }
    // The complement written as a sum: judged by the persons it counts, so that it differs
    // from the region's cell by exactly the rare persons.
    let t = e
        .run_output(&output(
            Statistic::Sum,
            "SELECT region, sum(CASE WHEN naturalised IS NOT NULL THEN 0 ELSE 1 END) AS n FROM person_years GROUP BY region",
        ))
        .unwrap();
    assert_eq!(
        region_cell(&t, "BRU")
            .units
            .iter()
            .collect::<BTreeSet<u32>>(),
        people("BRU", |p| !p.rare)
    );
}

#[test]
fn a_share_is_judged_by_its_numerator_and_its_complement() {
    let e = enclave();
    let everyone = people("BRU", |_| true).len() as u64;
    let rare = 4;
    for (statistic, measure) in [
        (
            Statistic::Share,
            "avg(CASE WHEN naturalised IS NOT NULL THEN 1.0 ELSE 0.0 END)",
        ),
        (
            Statistic::Share,
            "1.0 / count(*) * count(CASE WHEN naturalised IS NOT NULL THEN 1 END)",
        ),
        // The complement share: its numerator is everyone but the rare persons.
        (
            Statistic::Share,
            "avg(CASE WHEN naturalised IS NOT NULL THEN 0.0 ELSE 1.0 END)",
        ),
    ] {
        let sql = format!("SELECT region, {measure} AS s FROM person_years GROUP BY region");
        let t = e.run_output(&output(statistic, &sql)).unwrap();
        let bru = region_cell(&t, "BRU");
        let d = bru.denominator.as_ref().expect("a share has a denominator");
        assert_eq!(d.units.len(), everyone, "{measure}");
        assert_eq!(contributors(bru, statistic), rare, "{measure}");
    }
    // A mean is judged by the persons with a non-zero value and by its count.
    let t = e
        .run_output(&output(
            Statistic::Mean,
            "SELECT region, avg(CASE WHEN naturalised IS NOT NULL THEN income ELSE 0 END) AS m FROM person_years GROUP BY region",
        ))
        .unwrap();
    assert_eq!(contributors(region_cell(&t, "BRU"), Statistic::Mean), rare);
    let values: BTreeMap<_, _> = t.cells.iter().map(|c| (c.key.clone(), c.value)).collect();
    assert!(values[&vec![Level::Total]].is_some());
}

#[test]
fn a_job_cannot_choose_its_privacy_unit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("q.sql"),
        "SELECT count(*) AS n FROM person_years",
    )
    .unwrap();
    for unit in ["year", "region", "income"] {
        std::fs::write(
            dir.path().join("job.toml"),
            format!(
                "name = \"j\"\nproject = \"P\"\n[[output]]\nname = \"a\"\nsql = \"q.sql\"\nstatistic = \"count\"\nunit = \"{unit}\"\n"
            ),
        )
        .unwrap();
        let e = kluis_enclave::Job::load(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`output[0].unit`") && e.contains("cannot choose another"),
            "{e}"
        );
    }
}

#[test]
fn a_sum_cannot_weigh_a_group_into_everyones_contribution() {
    let q = |m: &str| format!("SELECT region, {m} AS n FROM person_years GROUP BY region");
    for (statistic, measure) in [
        // Everyone contributes 1, the rare persons a thousandth more: the fraction is their count.
        (
            Statistic::Sum,
            "sum(CASE WHEN naturalised IS NOT NULL THEN 1.001 ELSE 1 END)",
        ),
        (
            Statistic::Mean,
            "avg(CASE WHEN naturalised IS NOT NULL THEN 2 ELSE 1 END)",
        ),
        (
            Statistic::Sum,
            "sum(income + CASE WHEN naturalised IS NOT NULL THEN 0.001 ELSE 0 END)",
        ),
        (Statistic::Sum, "sum(1 + 0.001 * coalesce(naturalised, 0))"),
        (
            Statistic::Sum,
            "sum(1 + 0.001 * CAST(naturalised IS NOT NULL AS INT))",
        ),
        (
            Statistic::Max,
            "max(CASE WHEN naturalised IS NOT NULL THEN income ELSE 1 END)",
        ),
    ] {
        let v = refusal(statistic, &q(measure));
        assert!(
            matches!(v, Violation::UnsupportedMeasure { .. }),
            "{measure}: refused for the wrong reason: {v}"
        );
    }
    // One valued branch picks the rows; arithmetic of columns is a measure.
    let e = enclave();
    for (statistic, measure) in [
        (
            Statistic::Sum,
            "sum(CASE WHEN naturalised IS NOT NULL THEN income ELSE 0 END)",
        ),
        (Statistic::Sum, "sum(CASE WHEN sex = 'F' THEN income END)"),
        (Statistic::Mean, "avg(year - naturalised)"),
        (Statistic::Mean, "avg(CAST(income AS DOUBLE) / 1000)"),
    ] {
        let sql = q(measure);
        assert!(e.check(&output(statistic, &sql)).is_ok(), "{sql}");
    }
}

#[test]
fn a_function_cannot_spell_a_group_as_a_number_inside_a_sum() {
    let q = |m: &str| format!("SELECT region, {m} AS n FROM person_years GROUP BY region");
    for (statistic, measure) in [
        (
            Statistic::Sum,
            "sum(1 + 0.001 * length(concat(CAST(naturalised AS VARCHAR), '')))",
        ),
        (
            Statistic::Mean,
            "avg(1 + length(concat(CAST(naturalised AS VARCHAR), '')))",
        ),
        (
            Statistic::Max,
            "max(CAST(left(concat(CAST(naturalised AS VARCHAR), '1900'), 4) AS INT))",
        ),
        (
            Statistic::Sum,
            "sum(1 + strpos(concat('/', sex, '/', CAST(naturalised AS VARCHAR)), '/F/2'))",
        ),
    ] {
        let v = refusal(statistic, &q(measure));
        assert!(
            matches!(v, Violation::UnsupportedMeasure { .. }),
            "{measure}: refused for the wrong reason: {v}"
        );
    }
}

#[test]
fn a_weight_defined_in_a_subquery_is_judged_as_if_written_in_the_sum() {
    for (statistic, sql) in [
        (
            Statistic::Sum,
            "SELECT region, sum(w) AS n FROM (SELECT region, CASE WHEN naturalised IS NOT NULL THEN 1.001 ELSE 1 END AS w FROM person_years) t GROUP BY region",
        ),
        (
            Statistic::Sum,
            "SELECT region, sum(1 + w) AS n FROM (SELECT region, CASE WHEN naturalised IS NOT NULL THEN 0.001 END AS w FROM person_years) t GROUP BY region",
        ),
        (
            Statistic::Mean,
            "WITH v AS (SELECT region, length(concat(CAST(naturalised AS VARCHAR), '')) AS w FROM person_years) SELECT region, avg(w) AS m FROM v GROUP BY region",
        ),
        (
            Statistic::Mean,
            "SELECT region, avg(w) AS m FROM (SELECT pseudonym, region, sum(CASE WHEN naturalised IS NOT NULL THEN 2 ELSE 1 END) AS w FROM person_years GROUP BY pseudonym, region) t GROUP BY region",
        ),
    ] {
        let v = refusal(statistic, sql);
        assert!(
            matches!(v, Violation::UnsupportedMeasure { .. }),
            "{sql}: refused for the wrong reason: {v}"
        );
    }
    // A filtering CASE in a subquery, a per-person count or total, arithmetic of columns.
    let e = enclave();
    for (statistic, sql) in [
        (
            Statistic::Sum,
            "SELECT region, sum(w) AS n FROM (SELECT region, CASE WHEN sex = 'F' THEN income ELSE 0 END AS w FROM person_years) t GROUP BY region",
        ),
        (
            Statistic::Mean,
            "SELECT region, avg(n) AS m FROM (SELECT pseudonym, region, count(*) AS n FROM person_years GROUP BY pseudonym, region) t GROUP BY region",
        ),
        (
            Statistic::Mean,
            "SELECT region, avg(total) AS m FROM (SELECT pseudonym, region, sum(income) AS total FROM person_years GROUP BY pseudonym, region) t GROUP BY region",
        ),
        (
            Statistic::Mean,
            "WITH v AS (SELECT region, year - naturalised AS w FROM person_years) SELECT region, avg(w) AS m FROM v GROUP BY region",
        ),
    ] {
        assert!(e.check(&output(statistic, sql)).is_ok(), "{sql}");
    }
}
