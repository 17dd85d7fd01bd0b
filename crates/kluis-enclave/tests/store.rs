//! Pending outputs, release and the release ledger: differencing against released cells, and
//! released margins as published cells in linked secondary suppression.

use std::sync::Arc;

use arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use kluis_enclave::{
    Enclave, Job, Limits, Output, OutputRecord, OutputStatus, OutputTable, PersonYearsSource,
    Statistic, Store, StoreError,
};
use kluis_sdc::{CellStatus, Report, RuleSet, TableStatus};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pseudonym", DataType::Int64, false),
        Field::new("year", DataType::Int32, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("sex", DataType::Utf8, true),
        Field::new("age", DataType::Utf8, true),
    ]))
}

/// (region, sex, age, persons): one row per person, in 2020.
fn enclave(groups: &[(&str, &str, &str, usize)]) -> Enclave {
    let (mut p, mut region, mut sex, mut age) = (vec![], vec![], vec![], vec![]);
    let mut next = 1i64;
    for &(r, s, a, n) in groups {
        for _ in 0..n {
            p.push(next * 7);
            next += 1;
            region.push(r);
            sex.push(s);
            age.push(a);
        }
    }
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(p.clone())),
            Arc::new(Int32Array::from(vec![2020; p.len()])),
            Arc::new(StringArray::from(region)),
            Arc::new(StringArray::from(sex)),
            Arc::new(StringArray::from(age)),
        ],
    )
    .unwrap();
    Enclave::open(
        PersonYearsSource::Batches {
            schema: schema(),
            batches: vec![batch],
        },
        Limits::default(),
    )
    .unwrap()
}

fn job(outputs: &[(&str, &str)]) -> Job {
    Job {
        dir: "job".into(),
        name: "test".into(),
        description: String::new(),
        project: "99/001".into(),
        outputs: outputs
            .iter()
            .map(|(name, sql)| Output {
                name: name.to_string(),
                sql_file: format!("{name}.sql").into(),
                sql: sql.to_string(),
                unit: "pseudonym".into(),
                statistic: Statistic::Count,
                measure: None,
                dimensions: None,
            })
            .collect(),
    }
}

fn run(enclave: &Enclave, job: &Job) -> Vec<OutputTable> {
    enclave.run_job(job).unwrap()
}

const NOW: &str = "2026-11-25T10:00:00Z";

/// A project's store in a temporary directory (kept alive by the first value), the releases
/// directory beside it, and the default rules.
fn project() -> (tempfile::TempDir, Store, std::path::PathBuf, RuleSet) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(&dir.path().join("project"), "99-001");
    let released = dir.path().join("released");
    (dir, store, released, RuleSet::default_set())
}

fn release(store: &Store, id: &str, released: &std::path::Path) {
    store
        .release(id, "vera", "fine", NOW, &RuleSet::default_set(), released)
        .unwrap();
}

fn stored_report(store: &Store, id: &str) -> Report {
    store.load(id).unwrap().report
}

fn cell<'a>(report: &'a Report, key: &[(&str, &str)]) -> &'a kluis_sdc::CellReport {
    report
        .cells
        .iter()
        .find(|c| key.iter().all(|(d, v)| c.key[*d] == *v))
        .unwrap()
}

const PERSONS_BY_REGION: &str =
    "SELECT region, count(DISTINCT pseudonym) AS persons FROM person_years GROUP BY region";

/// The cell of a new table (table, key) withheld as differencing, with the exact linked check's
/// count of it.
fn assert_withheld_as_differencing(store: &Store, record: &OutputRecord, key: &[(&str, &str)]) {
    let report = stored_report(store, &record.id);
    let c = cell(&report, key);
    assert_eq!(c.published, None, "{c:?}");
    assert!(
        c.reasons.contains(&kluis_sdc::Reason::Differencing),
        "{c:?}"
    );
    let check = record.linked_check.as_ref().expect("a linked check");
    assert!(check.exact && check.withheld >= 1, "{check:?}");
    assert!(report.audit.passed, "the withheld cell is protected");
}

#[test]
fn a_count_of_117_after_a_released_120_is_withheld_as_differencing() {
    let e = enclave(&[
        ("BRU", "F", "A", 117),
        ("BRU", "F", "B", 3),
        ("VLG", "F", "A", 200),
        ("WAL", "M", "A", 100),
        ("WAL", "M", "B", 50),
    ]);
    let (_dir, store, released, rules) = project();

    let first = job(&[("persons", PERSONS_BY_REGION)]);
    let records = store
        .submit(&first, &run(&e, &first), &rules, "rita", NOW)
        .unwrap();
    assert_eq!(records[0].id, "99-001-0001");
    assert_eq!(records[0].verdict, TableStatus::Pass);
    let bru = cell(&stored_report(&store, "99-001-0001"), &[("region", "BRU")]).clone();
    assert_eq!(bru.value, Some(120.0));
    release(&store, "99-001-0001", &released);
    assert!(released.join("99-001-0001.csv").is_file());

    // The same regions for age group A only: Brussels loses exactly 3 persons, so its 117 is
    // withheld (and the pattern protects it); the rest is released.
    let second = job(&[(
        "persons_a",
        "SELECT region, count(DISTINCT pseudonym) AS persons FROM person_years WHERE age = 'A' GROUP BY region",
    )]);
    let records = store
        .submit(&second, &run(&e, &second), &rules, "rita", NOW)
        .unwrap();
    let r = &records[0];
    assert_eq!(
        cell(&stored_report(&store, &r.id), &[("region", "BRU")]).value,
        Some(117.0)
    );
    assert_withheld_as_differencing(&store, r, &[("region", "BRU")]);
    release(&store, &r.id, &released);
    let csv = std::fs::read_to_string(released.join(format!("{}.csv", r.id))).unwrap();
    assert!(!csv.contains("117"), "{csv}");
}

#[test]
fn a_new_cell_checked_before_a_release_is_checked_again_at_release() {
    let e = enclave(&[
        ("BRU", "F", "A", 117),
        ("BRU", "F", "B", 3),
        ("VLG", "F", "A", 200),
    ]);
    let (_dir, store, released, rules) = project();
    let all = job(&[("persons", PERSONS_BY_REGION)]);
    let a = job(&[(
        "persons_a",
        "SELECT region, count(DISTINCT pseudonym) AS persons FROM person_years WHERE age = 'A' GROUP BY region",
    )]);
    // Both pending before either is released: each passes on its own.
    store
        .submit(&all, &run(&e, &all), &rules, "rita", NOW)
        .unwrap();
    let pending = store.submit(&a, &run(&e, &a), &rules, "rita", NOW).unwrap();
    assert_eq!(pending[0].verdict, TableStatus::Pass);
    release(&store, "99-001-0001", &released);
    let err = store
        .release(&pending[0].id, "vera", "fine", NOW, &rules, &released)
        .unwrap_err();
    assert!(matches!(err, StoreError::Stale { .. }), "{err}");
    assert_eq!(
        store.load(&pending[0].id).unwrap().record.status,
        OutputStatus::Pending
    );
}

const BY_REGION_SEX: &str = "SELECT region, sex, count(DISTINCT pseudonym) AS persons FROM person_years GROUP BY region, sex";

fn linked_data() -> Enclave {
    enclave(&[
        ("BRU", "F", "A", 40),
        ("BRU", "M", "A", 3),
        ("VLG", "F", "A", 60),
        ("VLG", "M", "A", 55),
        ("WAL", "F", "A", 35),
        ("WAL", "M", "A", 30),
    ])
}

fn assert_protected(report: &Report) {
    assert!(report.audit.passed, "{}", report.to_text());
    assert_ne!(report.status, TableStatus::Fail);
    let m = cell(report, &[("region", "BRU"), ("sex", "M")]);
    assert_eq!(m.status, CellStatus::Primary);
    assert_eq!(m.published, None);
    // Brussels' total is known, so its women must be withheld too.
    let f = cell(report, &[("region", "BRU"), ("sex", "F")]);
    assert!(f.status.is_suppressed(), "{}", report.to_text());
}

#[test]
fn a_linked_pair_released_together_is_protected() {
    let e = linked_data();
    let (_dir, store, _, _) = project();
    let both = job(&[
        ("by_region_sex", BY_REGION_SEX),
        ("by_region", PERSONS_BY_REGION),
    ]);
    let records = store
        .submit(&both, &run(&e, &both), &RuleSet::default_set(), "rita", NOW)
        .unwrap();
    let two_d = stored_report(&store, &records[0].id);
    assert_protected(&two_d);
    // The one-dimensional table publishes Brussels' total: the same quantity as the margin.
    let one_d = stored_report(&store, &records[1].id);
    let bru = cell(&one_d, &[("region", "BRU")]);
    assert_eq!(
        bru.value,
        cell(&two_d, &[("region", "BRU"), ("sex", "Total")]).value
    );
}

#[test]
fn a_released_margin_constrains_the_next_pattern() {
    let e = linked_data();
    let (_dir, store, released, _) = project();
    let one = job(&[("by_region", PERSONS_BY_REGION)]);
    store
        .submit(&one, &run(&e, &one), &RuleSet::default_set(), "rita", NOW)
        .unwrap();
    release(&store, "99-001-0001", &released);
    assert_eq!(store.ledger().unwrap().published().len(), 4);

    // Brussels' released total is a published cell: the pattern cannot withhold it as a
    // secondary cell, so it must withhold the women of Brussels instead.
    let two = job(&[("by_region_sex", BY_REGION_SEX)]);
    let records = store
        .submit(&two, &run(&e, &two), &RuleSet::default_set(), "rita", NOW)
        .unwrap();
    assert!(
        records[0].differencing.is_empty(),
        "{:?}",
        records[0].differencing
    );
    assert_protected(&stored_report(&store, &records[0].id));
}

#[test]
fn cells_that_overlap_without_nesting_are_not_differencing() {
    // Brussels women (60) and Brussels age group A (62) share 57 persons, 8 apart, but neither
    // holds the other: 60 and 62 count no group of persons, so the second output passes.
    let e = enclave(&[
        ("BRU", "F", "A", 57),
        ("BRU", "F", "B", 3),
        ("BRU", "M", "A", 5),
        ("BRU", "M", "B", 40),
    ]);
    let (_dir, store, released, rules) = project();
    let by_sex = job(&[(
        "f",
        "SELECT region, count(DISTINCT pseudonym) AS persons FROM person_years WHERE sex = 'F' GROUP BY region",
    )]);
    store
        .submit(&by_sex, &run(&e, &by_sex), &rules, "rita", NOW)
        .unwrap();
    release(&store, "99-001-0001", &released);
    let by_age = job(&[(
        "a",
        "SELECT region, count(DISTINCT pseudonym) AS persons FROM person_years WHERE age = 'A' GROUP BY region",
    )]);
    let records = store
        .submit(&by_age, &run(&e, &by_age), &rules, "rita", NOW)
        .unwrap();
    assert_eq!(
        cell(&stored_report(&store, &records[0].id), &[("region", "BRU")]).value,
        Some(62.0)
    );
    assert!(
        records[0].differencing.is_empty(),
        "{:?}",
        records[0].differencing
    );
    assert_eq!(records[0].verdict, TableStatus::Pass);
}

#[test]
fn a_nested_cell_of_a_table_submitted_with_another_is_withheld_and_both_release() {
    // One job, two tables: persons by region, and persons of age group A by region. Brussels
    // A (117) lies 3 persons inside Brussels (120): the second table withholds it, as
    // `differencing`, protects it, and both tables can then be released in either order.
    let e = enclave(&[
        ("BRU", "F", "A", 117),
        ("BRU", "F", "B", 3),
        ("VLG", "F", "A", 200),
        ("VLG", "F", "B", 40),
        ("WAL", "M", "A", 100),
        ("WAL", "M", "B", 50),
    ]);
    let (_dir, store, released, rules) = project();
    let both = job(&[
        ("persons", PERSONS_BY_REGION),
        (
            "persons_a",
            "SELECT region, count(DISTINCT pseudonym) AS persons FROM person_years WHERE age = 'A' GROUP BY region",
        ),
    ]);
    let records = store
        .submit(&both, &run(&e, &both), &rules, "rita", NOW)
        .unwrap();
    assert!(
        records.iter().all(|r| r.verdict != TableStatus::Fail),
        "{records:?}"
    );
    let second = stored_report(&store, &records[1].id);
    let bru = cell(&second, &[("region", "BRU")]);
    assert!(bru.status.is_suppressed(), "{bru:?}");
    assert!(bru.reasons.contains(&kluis_sdc::Reason::Differencing));
    assert_eq!(bru.published, None);
    assert!(second.audit.passed, "the withheld cell is protected");
    // Released in reverse order, each passes the ledger check against the other.
    release(&store, &records[1].id, &released);
    release(&store, &records[0].id, &released);
    let first = stored_report(&store, &records[0].id);
    assert_eq!(cell(&first, &[("region", "BRU")]).published, Some(120.0));
}

#[test]
fn a_released_margin_keeps_its_units_for_the_differencing_check() {
    // Brussels' margin in a region x sex table is 120 persons; a later count of its age group A
    // leaves out 3 of them. Only the margin's unit set (rebuilt from its finest cells when the
    // output is released) can tell.
    let e = enclave(&[
        ("BRU", "F", "A", 60),
        ("BRU", "M", "A", 57),
        ("BRU", "M", "B", 3),
        ("VLG", "F", "A", 200),
        ("VLG", "M", "A", 180),
    ]);
    let (_dir, store, released, rules) = project();

    let first = job(&[("persons", BY_REGION_SEX)]);
    let records = store
        .submit(&first, &run(&e, &first), &rules, "rita", NOW)
        .unwrap();
    assert_eq!(records[0].verdict, TableStatus::Pass, "{:?}", records[0]);
    let margin = cell(
        &stored_report(&store, "99-001-0001"),
        &[("region", "BRU"), ("sex", "Total")],
    )
    .clone();
    assert_eq!(margin.value, Some(120.0));
    release(&store, "99-001-0001", &released);

    let second = job(&[(
        "persons_a",
        "SELECT region, count(DISTINCT pseudonym) AS persons FROM person_years WHERE age = 'A' GROUP BY region",
    )]);
    let records = store
        .submit(&second, &run(&e, &second), &rules, "rita", NOW)
        .unwrap();
    assert_withheld_as_differencing(&store, &records[0], &[("region", "BRU")]);
}

/// Persons by region and sex, one woman in Wallonia; Antwerp's cells are the smallest others.
const LINKED_POPULATION: &[(&str, &str, &str, usize)] = &[
    ("BRU", "F", "A", 11),
    ("VLG", "F", "A", 13),
    ("WAL", "F", "A", 1),
    ("ANT", "F", "A", 10),
    ("BRU", "M", "A", 60),
    ("VLG", "M", "A", 70),
    ("WAL", "M", "A", 40),
    ("ANT", "M", "A", 12),
];
const BY_SEX_OUTSIDE_ANTWERP: &str = "SELECT sex, count(DISTINCT pseudonym) AS persons FROM person_years WHERE region <> 'ANT' GROUP BY sex";

/// The published cells of a report by key.
fn published(report: &Report) -> std::collections::BTreeMap<Vec<String>, Option<f64>> {
    report
        .cells
        .iter()
        .map(|c| (c.key.values().cloned().collect(), c.published))
        .collect()
}

#[test]
fn a_table_with_another_filter_cannot_give_a_withheld_cell_of_a_linked_table_away() {
    // Table A: persons by region x sex; Wallonia's women (1 person) are withheld, with the
    // cheapest secondary cells around them (Antwerp's, the smallest). Table B: persons by sex
    // outside Antwerp. B's women (25) minus A's published women of Brussels (11) and Flanders
    // (13) would be Wallonia's one woman: B's cell is withheld instead.
    let e = enclave(LINKED_POPULATION);
    let (_dir, store, released, rules) = project();
    let both = job(&[
        ("by_region_sex", BY_REGION_SEX),
        ("by_sex_outside_antwerp", BY_SEX_OUTSIDE_ANTWERP),
    ]);
    let records = store
        .submit(&both, &run(&e, &both), &rules, "rita", NOW)
        .unwrap();
    let a = published(&stored_report(&store, &records[0].id));
    let b = published(&stored_report(&store, &records[1].id));
    let key = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // The pattern that makes the attack: A publishes both other women's cells.
    assert_eq!(a[&key(&["WAL", "F"])], None);
    assert_eq!(a[&key(&["BRU", "F"])], Some(11.0));
    assert_eq!(a[&key(&["VLG", "F"])], Some(13.0));
    let women = stored_report(&store, &records[1].id);
    let women = cell(&women, &[("sex", "F")]);
    assert_eq!(women.published, None, "{women:?}");
    assert!(women.reasons.contains(&kluis_sdc::Reason::Differencing));
    // Whatever is published, B minus A's published cells of the three regions never leaves
    // 1..9 persons.
    for sex in ["F", "M"] {
        if let Some(total) = b[&key(&[sex])] {
            let known: f64 = ["BRU", "VLG", "WAL"]
                .iter()
                .filter_map(|r| a[&key(&[r, sex])])
                .sum();
            let left = total - known;
            assert!(left == 0.0 || left >= 10.0, "{sex}: {left}");
        }
    }
    // And both can be released.
    release(&store, &records[0].id, &released);
    release(&store, &records[1].id, &released);
}

#[test]
fn a_released_table_with_another_filter_is_linked_too() {
    // The same two tables in two jobs: B, submitted after A is released, has its women's cell
    // withheld: with A's released cells it would count Wallonia's one woman.
    let e = enclave(LINKED_POPULATION);
    let (_dir, store, released, rules) = project();
    let a = job(&[("by_region_sex", BY_REGION_SEX)]);
    let first = store.submit(&a, &run(&e, &a), &rules, "rita", NOW).unwrap();
    release(&store, &first[0].id, &released);
    let b = job(&[("by_sex_outside_antwerp", BY_SEX_OUTSIDE_ANTWERP)]);
    let second = store.submit(&b, &run(&e, &b), &rules, "rita", NOW).unwrap();
    assert_withheld_as_differencing(&store, &second[0], &[("sex", "F")]);
    release(&store, &second[0].id, &released);
}

/// Releases that make the exact linked check's system larger than its budget must not switch
/// it off: an output it cannot judge fails, and says why.
#[test]
fn an_output_beyond_the_exact_checks_budget_fails_and_is_not_released() {
    let e = enclave(LINKED_POPULATION);
    let (_dir, store, released, rules) = project();
    let store = store.with_linked_budget(kluis_enclave::LinkedBudget {
        incidences: 100,
        operations: 1_000_000,
    });
    let a = job(&[("by_region_sex", BY_REGION_SEX)]);
    let records = store.submit(&a, &run(&e, &a), &rules, "rita", NOW).unwrap();
    let r = &records[0];
    let check = r.linked_check.as_ref().unwrap();
    assert!(!check.exact, "{check:?}");
    assert_eq!(r.verdict, TableStatus::Fail, "{r:?}");
    let err = store
        .release(&r.id, "vera", "fine", NOW, &rules, &released)
        .unwrap_err();
    assert!(matches!(err, StoreError::Failed { .. }), "{err}");
    assert!(
        err.to_string().contains("beyond the exact check's budget"),
        "{err}"
    );
    assert!(!released.join(format!("{}.csv", r.id)).exists());
}
