//! Re-identification risk of an extract against its population, checked by brute force on a
//! small generated warehouse.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};
use arrow::util::display::array_value_to_string;
use kluis_extract::{
    CodedPopulation, Error, ExtractOptions, RISK_JSON, RiskReport, assess, coded_population,
    suppress, write_extract,
};
use kluis_project::{Authorisation, RiskLimits};
use kluis_pseudo::ProjectKey;
use kluis_warehouse::Warehouse;

fn warehouse() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        kluis_extract::fixture::write_warehouse(&dir.path().join("wh"), 3000, 2010, 2021, 23)
            .unwrap();
        dir
    })
    .path()
    .join("wh")
    .leak()
}

/// The demo authorisation with small strata and limits that some records break.
fn authorisation() -> Authorisation {
    let mut a = Authorisation::load(Path::new("../../examples/demo-authorisation.toml")).unwrap();
    a.strata[0].sample_size = 80;
    a.strata[1].sample_size = 120;
    a.risk = RiskLimits {
        quasi_identifiers: ["sex", "age", "region", "employer_type"]
            .map(String::from)
            .to_vec(),
        trajectory_quasi_identifiers: vec!["employer_type".into()],
        k: 5,
        max_trajectory_risk: 0.9,
    };
    a
}

fn population(a: &Authorisation) -> CodedPopulation {
    let w = Warehouse::open(warehouse()).unwrap();
    coded_population(&w, a, &ProjectKey::from_bytes([5; 32])).unwrap()
}

fn rows(p: &CodedPopulation, sample: Option<&kluis_extract::Sample>) -> RecordBatch {
    let batches: Vec<RecordBatch> = p
        .years()
        .map(|y| p.year_batch(y, sample).unwrap())
        .collect();
    arrow::compute::concat_batches(&p.schema(), &batches).unwrap()
}

fn year(b: &RecordBatch, r: usize) -> i32 {
    b.column_by_name("year")
        .unwrap()
        .as_primitive::<Int32Type>()
        .value(r)
}

fn pseudonym(b: &RecordBatch, r: usize) -> i64 {
    b.column_by_name("pseudonym")
        .unwrap()
        .as_primitive::<Int64Type>()
        .value(r)
}

/// A row's values in `columns`, None for null.
fn values(b: &RecordBatch, r: usize, columns: &[String]) -> Vec<Option<String>> {
    columns
        .iter()
        .map(|c| {
            let a = b.column_by_name(c).unwrap();
            a.is_valid(r).then(|| array_value_to_string(a, r).unwrap())
        })
        .collect()
}

/// Population rows of `year` agreeing with `known` (None = matches anything).
fn frequency(
    population: &RecordBatch,
    year_: i32,
    columns: &[String],
    known: &[Option<Option<String>>],
) -> u32 {
    (0..population.num_rows())
        .filter(|&r| year(population, r) == year_)
        .filter(|&r| {
            values(population, r, columns)
                .iter()
                .zip(known)
                .all(|(v, k)| k.as_ref().is_none_or(|k| k == v))
        })
        .count() as u32
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * a.abs().max(1.0)
}

#[test]
fn person_year_and_trajectory_risk_equal_a_brute_force_count() {
    let a = authorisation();
    let p = population(&a);
    let sample = p.sample(3);
    let delivered = rows(&p, Some(&sample));
    let all = rows(&p, None);
    let report = assess(&p, &delivered, &a.risk).unwrap();

    let qi = &a.risk.quasi_identifiers;
    let mut classes: HashMap<(i32, Vec<Option<String>>), u32> = HashMap::new();
    for r in 0..all.num_rows() {
        *classes
            .entry((year(&all, r), values(&all, r, qi)))
            .or_default() += 1;
    }
    let f: Vec<u32> = (0..delivered.num_rows())
        .map(|r| classes[&(year(&delivered, r), values(&delivered, r, qi))])
        .collect();
    let py = &report.person_years;
    assert_eq!(py.records, delivered.num_rows() as u64);
    assert_eq!(py.population_records, all.num_rows() as u64);
    assert_eq!(py.below_k, f.iter().filter(|&&f| f < 5).count() as u64);
    assert_eq!(
        py.population_uniques,
        f.iter().filter(|&&f| f == 1).count() as u64
    );
    assert_eq!(py.min_frequency, *f.iter().min().unwrap() as u64);
    let sum: f64 = f.iter().map(|&f| 1.0 / f as f64).sum();
    assert!(close(py.expected_reidentifications, sum), "{py:?} vs {sum}");
    assert!(
        py.below_k > 0 && py.below_k < py.records,
        "the fixture must have both kinds: {py:?}"
    );

    // Trajectories: each person's (year, values) sequence over the whole population.
    let tq = &a.risk.trajectory_quasi_identifiers;
    type Trajectory = Vec<(i32, Vec<Option<String>>)>;
    let mut trajectory: HashMap<i64, Trajectory> = HashMap::new();
    for r in 0..all.num_rows() {
        trajectory
            .entry(pseudonym(&all, r))
            .or_default()
            .push((year(&all, r), values(&all, r, tq)));
    }
    let mut counts: HashMap<&Trajectory, u32> = HashMap::new();
    for t in trajectory.values() {
        *counts.entry(t).or_default() += 1;
    }
    let mut sampled: Vec<i64> = (0..delivered.num_rows())
        .map(|r| pseudonym(&delivered, r))
        .collect();
    sampled.sort_unstable();
    sampled.dedup();
    let risks: Vec<f64> = sampled
        .iter()
        .map(|p| 1.0 / counts[&trajectory[p]] as f64)
        .collect();
    let tr = &report.trajectories;
    assert_eq!(tr.records, sampled.len() as u64);
    assert_eq!(tr.population_records, trajectory.len() as u64);
    assert!(close(
        tr.journalist_risk_mean,
        risks.iter().sum::<f64>() / risks.len() as f64
    ));
    assert!(close(
        tr.journalist_risk_max,
        risks.iter().cloned().fold(0.0, f64::max)
    ));
    assert_eq!(
        tr.population_uniques,
        risks.iter().filter(|&&r| r == 1.0).count() as u64
    );
    assert!(!report.within_limits());
    assert!(
        report.exceeded[0].contains("fewer than k = 5"),
        "{:?}",
        report.exceeded
    );
}

#[test]
fn local_suppression_reaches_k_and_changes_nothing_else() {
    let a = authorisation();
    let p = population(&a);
    let delivered = rows(&p, Some(&p.sample(3)));
    let all = rows(&p, None);
    let qi = &a.risk.quasi_identifiers;
    let (suppressed, report) = suppress(&p, &delivered, &a.risk).unwrap();
    assert_eq!(suppressed.schema(), delivered.schema());
    assert_eq!(suppressed.num_rows(), delivered.num_rows());
    for field in delivered.schema().fields() {
        if !qi.contains(field.name()) {
            assert_eq!(
                suppressed.column_by_name(field.name()).unwrap().as_ref(),
                delivered.column_by_name(field.name()).unwrap().as_ref(),
                "{} changed",
                field.name()
            );
        }
    }
    let mut blanked = 0u64;
    for r in 0..delivered.num_rows() {
        let before = values(&delivered, r, qi);
        let after = values(&suppressed, r, qi);
        let known: Vec<Option<Option<String>>> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| {
                assert!(a == b || a.is_none(), "a value was changed, not blanked");
                (a == b).then(|| b.clone())
            })
            .collect();
        blanked += known.iter().filter(|k| k.is_none()).count() as u64;
        let exact = frequency(
            &all,
            year(&delivered, r),
            qi,
            &before.iter().cloned().map(Some).collect::<Vec<_>>(),
        );
        if exact >= 5 {
            assert_eq!(before, after, "row {r} met k and was touched");
        } else {
            assert!(
                frequency(&all, year(&delivered, r), qi, &known) >= 5,
                "row {r} still below k"
            );
        }
    }
    let s = report.suppression.as_ref().unwrap();
    assert!(blanked > 0);
    assert_eq!(s.cells.values().sum::<u64>(), blanked);
    assert_eq!(report.person_years.below_k, 0);
    for (column, cells) in &s.cells {
        let (before, after) = (s.entropy_before[column], s.entropy_after[column]);
        assert!(
            after <= before && (after < before) == (*cells > 0),
            "{column}: {before} -> {after}"
        );
    }
    // Judging the suppressed extract afresh gives the same figures.
    assert_eq!(
        assess(&p, &suppressed, &a.risk).unwrap().person_years,
        report.person_years
    );
}

fn options(out: &Path, accept_risk: Option<&str>) -> ExtractOptions {
    ExtractOptions {
        out: out.to_owned(),
        seed: 3,
        recipient: None,
        kluis_version: "kluis test".into(),
        created_at: "2026-11-25T00:00:00Z".into(),
        suppress: false,
        recode: false,
        accept_risk: accept_risk.map(String::from),
    }
}

#[test]
fn an_extract_over_the_limits_is_refused_and_nothing_is_left_behind() {
    let a = authorisation();
    let p = population(&a);
    let sample = p.sample(3);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    let error = write_extract(&a, &p, &sample, &options(&out, None)).unwrap_err();
    assert!(matches!(error, Error::RiskExceeded { .. }), "{error}");
    assert!(error.to_string().contains("--accept-risk"), "{error}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing left behind"
    );

    // Suppression brings person-years under k; the loose trajectory limit (0.9) holds.
    let mut suppressing = options(&out, None);
    suppressing.suppress = true;
    let delivered = write_extract(&a, &p, &sample, &suppressing).unwrap();
    assert!(
        delivered.risk.within_limits(),
        "{:?}",
        delivered.risk.exceeded
    );
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(RISK_JSON)).unwrap()).unwrap();
    let reread: RiskReport = serde_json::from_value(written.clone()).unwrap();
    assert_eq!(reread.person_years.below_k, 0);
    let expected = serde_json::to_value(&delivered.risk).unwrap();
    assert_eq!(
        written["suppression"]["cells"],
        expected["suppression"]["cells"]
    );
    assert_eq!(written["exceeded"], expected["exceeded"]);
    assert!(delivered.manifest.files.iter().any(|f| f.name == RISK_JSON));

    // Accepting records the reason.
    let out = dir.path().join("y");
    let reason = "reviewed with the DPO: classes are checked again before publication";
    let delivered = write_extract(&a, &p, &sample, &options(&out, Some(reason))).unwrap();
    assert_eq!(delivered.risk.accepted_with_reason.as_deref(), Some(reason));
    assert!(!delivered.risk.exceeded.is_empty());
}

/// The demo authorisation with `changes` (variable, coding) applied.
fn coded_as(a: &Authorisation, changes: &[(&str, &str)]) -> Authorisation {
    let mut a = a.clone();
    for (name, coding) in changes {
        a.variables
            .iter_mut()
            .find(|v| v.name == *name)
            .unwrap()
            .coding = coding.to_string();
    }
    a
}

/// Shannon entropy (bits) of a text column.
fn entropy(b: &RecordBatch, name: &str) -> f64 {
    let mut counts: HashMap<Option<String>, f64> = HashMap::new();
    for r in 0..b.num_rows() {
        *counts
            .entry(values(b, r, &[name.to_owned()]).remove(0))
            .or_default() += 1.0;
    }
    let n = b.num_rows() as f64;
    counts.values().map(|c| -(c / n) * (c / n).log2()).sum()
}

#[test]
fn recoding_meets_the_limits_losing_the_least_information() {
    let mut a = authorisation();
    a.risk.quasi_identifiers = ["sex", "age", "current_nationality"]
        .map(String::from)
        .to_vec();
    a.risk.max_trajectory_risk = 1.0;
    let key = ProjectKey::from_bytes([5; 32]);
    let w = Warehouse::open(warehouse()).unwrap();
    // Every combination of coarser codings, judged by brute force through the public API.
    let combinations = [
        vec![],
        vec![("age", "age_class_10")],
        vec![("current_nationality", "statbel_group")],
        vec![
            ("age", "age_class_10"),
            ("current_nationality", "statbel_group"),
        ],
    ];
    let judged: Vec<(u64, f64)> = combinations
        .iter()
        .map(|changes| {
            let variant = coded_as(&a, changes);
            let p = coded_population(&w, &variant, &key).unwrap();
            let delivered = rows(&p, Some(&p.sample(3)));
            let report = assess(&p, &delivered, &variant.risk).unwrap();
            let fine = rows(&population(&a), Some(&population(&a).sample(3)));
            let loss = changes
                .iter()
                .map(|(name, _)| entropy(&fine, name) - entropy(&delivered, name))
                .sum();
            (report.person_years.min_frequency, loss)
        })
        .collect();
    // k that the coarsest combination meets and the finest does not.
    let k = judged[3].0 as u32;
    assert!(k >= 2 && judged[0].0 < k as u64, "{judged:?}");
    a.risk.k = k;

    let p = population(&a);
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(&dir.path().join("x"), None);
    options.recode = true;
    let delivered = write_extract(&a, &p, &p.sample(3), &options).unwrap();
    let risk = &delivered.risk;
    assert!(risk.within_limits(), "{:?}", risk.exceeded);
    let recoding = risk.recoding.as_ref().unwrap();
    let chosen: Vec<(&str, &str)> = recoding
        .variables
        .iter()
        .map(|(name, r)| (name.as_str(), r.to.as_str()))
        .collect();
    let index = combinations
        .iter()
        .position(|c| {
            let mut c = c.clone();
            c.sort();
            c == chosen
        })
        .unwrap();
    // The chosen combination meets k; every cheaper one does not.
    assert!(judged[index].0 >= k as u64);
    for (j, (min_frequency, loss)) in judged.iter().enumerate() {
        if *loss < judged[index].1 - 1e-12 {
            assert!(
                *min_frequency < k as u64,
                "combination {j} was cheaper and met k"
            );
        }
    }
    assert!((recoding.information_lost - judged[index].1).abs() < 1e-9);
    // The files say so: coarse codes in the data, the coarse coding in the codebook.
    let codebook: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("x").join(kluis_extract::CODEBOOK_JSON)).unwrap(),
    )
    .unwrap();
    let text = codebook.to_string();
    for (name, coding) in &chosen {
        assert!(text.contains(coding), "{name} {coding} not in the codebook");
    }

    // Nothing meets a k no combination reaches: refused, nothing written.
    a.risk.k = judged[3].0 as u32 + 1;
    let out = dir.path().join("y");
    let error = write_extract(&a, &p, &p.sample(3), &options_with_recode(&out)).unwrap_err();
    assert!(matches!(error, Error::NoRecoding { .. }), "{error}");
    assert!(!out.exists());
}

fn options_with_recode(out: &Path) -> ExtractOptions {
    let mut o = options(out, None);
    o.recode = true;
    o
}
