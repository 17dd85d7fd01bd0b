//! `kluis demo [--home DIR] [--persons N]`: every step of kluis, end to end, narrated. Each step
//! is the real command (parsed from the command line it prints and run through the same code as
//! typing it), and after each one the demo reads back what it wrote to say what happened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, anyhow};
use clap::Parser;
use kluis_enclave::{OutputStatus, Store};
use kluis_sdc::TableStatus;

use crate::exit::bad_input;

/// The files the demo works with, embedded so that it runs from any directory.
const DEMO_AUTHORISATION: &str = include_str!("../../../../examples/demo-authorisation.toml");
const REAL_AUTHORISATION: &str = include_str!("../../../../authorisations/23-224.toml");
const DIVERSITY_JOB: [(&str, &str); 4] = [
    (
        "job.toml",
        include_str!("../../../../examples/jobs/diversity/job.toml"),
    ),
    (
        "foreign_origin_share.sql",
        include_str!("../../../../examples/jobs/diversity/foreign_origin_share.sql"),
    ),
    (
        "federal_statuut_by_origin.sql",
        include_str!("../../../../examples/jobs/diversity/federal_statuut_by_origin.sql"),
    ),
    (
        "federal_education_by_origin.sql",
        include_str!("../../../../examples/jobs/diversity/federal_education_by_origin.sql"),
    ),
];

/// The demo project's id and people (from examples/demo-authorisation.toml).
const PROJECT: &str = "99-001";
const STEWARD: &str = "sam";
const RESEARCHER: &str = "rita";
const REVIEWER: &str = "vera";

#[derive(clap::Args)]
pub struct Args {
    /// Where to put everything (state directory, warehouse, extract, job, releases); it must not
    /// exist or be empty [default: a new temporary directory, kept afterwards].
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Persons in the synthetic population (the full Belgian one is about 5 million).
    #[arg(long, default_value_t = 1_000_000)]
    persons: u64,
    /// Seed of the population and of the sample.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.persons < 1_000 {
        return Err(bad_input(
            "--persons must be at least 1000: smaller populations leave the strata empty",
        ));
    }
    let dir = demo_dir(args.home)?;
    let demo = Demo {
        state: dir.join("state"),
        started: Instant::now(),
        dir,
    };
    let started = demo.started;
    println!(
        "kluis demo: every step of kluis, for real, on a synthetic population of {} persons",
        args.persons
    );
    println!("everything goes into {}\n", demo.dir.display());

    demo.warehouse(args.persons, args.seed)?;
    demo.project()?;
    demo.extract(args.persons, args.seed)?;
    let job = demo.job_on_sample()?;
    demo.job_on_full(&job)?;
    let released = demo.review()?;
    demo.report()?;
    demo.audit()?;
    demo.real_authorisation_refused()?;

    println!(
        "\n== Where everything is ({:.0} s in all) ==",
        started.elapsed().as_secs_f64()
    );
    let project_dir = demo.state.join("projects").join(PROJECT);
    for (what, path) in [
        ("state directory (keys, audit log)", demo.state.clone()),
        ("warehouse", demo.dir.join("warehouse")),
        ("phase-1 extract", demo.dir.join("extract")),
        ("research job", job.clone()),
        (
            "its results on the sample",
            job.join("results").join("sample"),
        ),
        ("released tables", project_dir.join("released")),
        (
            "their report (open in a browser)",
            demo.dir.join("report.html"),
        ),
        ("audit log export", demo.dir.join("audit.jsonl")),
    ] {
        println!("  {what:<34} {}", path.display());
    }
    println!(
        "{released} tables released. Try: kluis --home {} output list --as vera",
        demo.state.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The working directory: the one given (new or empty), or a fresh temporary one that is kept.
fn demo_dir(home: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match home {
        Some(dir) => {
            if dir.exists() {
                let mut entries = std::fs::read_dir(&dir)
                    .map_err(|e| bad_input(format!("--home {}: {e}", dir.display())))?;
                if entries.next().is_some() {
                    return Err(bad_input(format!(
                        "--home {} is not empty; give a new or empty directory (the demo creates a state directory, a warehouse and an extract in it)",
                        dir.display()
                    )));
                }
            }
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            Ok(std::fs::canonicalize(&dir)?)
        }
        None => Ok(tempfile::Builder::new()
            .prefix("kluis-demo-")
            .tempdir()?
            .keep()),
    }
}

struct Demo {
    dir: PathBuf,
    state: PathBuf,
    started: Instant,
}

impl Demo {
    /// Prints a command line and runs it as `kluis` would, with `--home` set to the demo's state.
    fn kluis(&self, actor: Option<&str>, args: &[&str]) -> anyhow::Result<()> {
        let mut line = vec!["kluis".to_string()];
        line.extend(args.iter().map(|a| shell_word(a)));
        if let Some(actor) = actor {
            line.push(format!("--as {actor}"));
        }
        println!("$ {}", line.join(" "));
        let state = self.state.display().to_string();
        let mut argv = vec!["kluis", "--home", &state];
        argv.extend(args);
        if let Some(actor) = actor {
            argv.extend(["--as", actor]);
        }
        let crate::Cli { globals, command } = crate::Cli::try_parse_from(&argv)?;
        crate::run(command, &globals).map(|_| ())
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn step(&self, title: &str, what: &str) {
        println!(
            "\n== {title} ({:.0} s) ==\n{what}",
            self.started.elapsed().as_secs_f64()
        );
    }

    fn warehouse(&self, persons: u64, seed: u64) -> anyhow::Result<()> {
        self.step(
            "1. The warehouse",
            "The provider's person-year warehouse. Here: a synthetic population calibrated on published\n\
             Belgian figures (employees, origin, employer groups, regions), checked against each target.",
        );
        let persons = persons.to_string();
        let seed = seed.to_string();
        let warehouse = self.path("warehouse");
        self.kluis(
            None,
            &[
                "generate",
                "--persons",
                &persons,
                "--seed",
                &seed,
                "--warehouse",
                &warehouse,
                "--summary",
            ],
        )
    }

    fn project(&self) -> anyhow::Result<()> {
        self.step(
            "2. The project",
            "The authorisation is code: a fictional one shaped like 23/224 (population, strata,\n\
             variables and their coding, risk limits, rules, roles, retention date). The steward\n\
             registers the project, which creates its pseudonymisation key inside the state directory.",
        );
        let authorisation = self.dir.join("demo-authorisation.toml");
        std::fs::write(&authorisation, DEMO_AUTHORISATION)?;
        self.kluis(Some(STEWARD), &["init"])?;
        self.kluis(
            None,
            &[
                "authorisation",
                "check",
                &authorisation.display().to_string(),
            ],
        )?;
        self.kluis(
            Some(STEWARD),
            &[
                "project",
                "create",
                "--authorisation",
                &authorisation.display().to_string(),
            ],
        )
    }

    fn extract(&self, persons: u64, seed: u64) -> anyhow::Result<()> {
        self.step(
            "3. Phase 1: the pseudonymised sample",
            "2,000 federal and 2,000 other employees, every qualifying year 2010-2021, coded as granted,\n\
             the INSZ replaced by a number. Before anything is written, each person-year and each\n\
             career is judged against the whole population; --suppress blanks the fewest values\n\
             needed for every person-year to be shared by at least k = 5 persons.",
        );
        let warehouse = self.path("warehouse");
        let out = self.path("extract");
        let seed = seed.to_string();
        let mut args = vec![
            "extract",
            "--project",
            PROJECT,
            "--warehouse",
            &warehouse,
            "--out",
            &out,
            "--seed",
            &seed,
            "--suppress",
        ];
        if let Err(refusal) = self.kluis(Some(STEWARD), &args) {
            println!("{refusal:#}");
            let reason = format!(
                "demonstration on a synthetic population of {persons} persons, smaller and so more identifiable than the real one"
            );
            println!(
                "A population this small is more identifiable than the real one. The steward may accept the\n\
                 remaining risk with a written reason, which goes into the audit log and risk.json:"
            );
            args.extend(["--accept-risk", &reason]);
            self.kluis(Some(STEWARD), &args)?;
        }
        let risk: serde_json::Value = read_json(&self.dir.join("extract").join("risk.json"))?;
        let (years, careers) = (&risk["person_years"], &risk["trajectories"]);
        println!(
            "risk.json: {} person-years delivered, each shared by at least {} persons of the population \
             (k = {}); {} had values blanked; careers: mean re-identification risk {:.4} (limit {}), \
             {} unique in the population",
            years["records"],
            years["min_frequency"],
            risk["k"],
            risk["suppression"]["records"],
            careers["journalist_risk_mean"].as_f64().unwrap_or(f64::NAN),
            risk["max_trajectory_risk"],
            careers["population_uniques"],
        );
        self.kluis(None, &["extract", "verify", &out])
    }

    fn job_on_sample(&self) -> anyhow::Result<PathBuf> {
        self.step(
            "4. Phase 2, on the researcher's machine: the job on the sample",
            "The researchers' question, as SQL over `person_years` (examples/jobs/diversity): the share\n\
             of employees of foreign origin by employer group, year, sex and age class, and federal\n\
             employees by origin and statuut, and by origin and education level. Developed on the\n\
             sample, which also forecasts which cells would fail at full scale.",
        );
        let job = self.dir.join("jobs").join("diversity");
        std::fs::create_dir_all(&job)?;
        for (name, text) in DIVERSITY_JOB {
            std::fs::write(job.join(name), text)?;
        }
        let job_arg = job.display().to_string();
        let extract = self.path("extract");
        self.kluis(None, &["job", "check", &job_arg, "--extract", &extract])?;
        self.kluis(
            Some(RESEARCHER),
            &[
                "job",
                "run",
                &job_arg,
                "--on",
                "sample",
                "--extract",
                &extract,
            ],
        )?;
        Ok(job)
    }

    fn job_on_full(&self, job: &Path) -> anyhow::Result<()> {
        self.step(
            "5. Phase 2, inside the provider: the same job on the full population",
            "The provider runs the job unchanged on the whole population, built in memory from the\n\
             warehouse with the same coding and pseudonyms. Every output is checked by the project's\n\
             disclosure rules (at least 10 persons behind a cell, dominance, p%, class disclosure),\n\
             then secondary suppression so that no withheld cell can be recomputed from the margins,\n\
             audited by a linear program, and stored for review.",
        );
        let warehouse = self.path("warehouse");
        self.kluis(
            Some(RESEARCHER),
            &[
                "job",
                "run",
                &job.display().to_string(),
                "--on",
                "full",
                "--project",
                PROJECT,
                "--warehouse",
                &warehouse,
            ],
        )?;
        println!("\nWhy cells are withheld:");
        for record in self.store().list()? {
            let stored = self.store().load(&record.id)?;
            let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
            let mut example: BTreeMap<&str, String> = BTreeMap::new();
            for cell in stored
                .report
                .cells
                .iter()
                .filter(|c| c.status.is_suppressed())
            {
                for reason in &cell.reasons {
                    *by_reason.entry(reason.name()).or_default() += 1;
                    example.entry(reason.name()).or_insert_with(|| {
                        let key: Vec<String> = cell
                            .key
                            .iter()
                            .map(|(dimension, value)| format!("{dimension}={value}"))
                            .collect();
                        key.join(", ")
                    });
                }
            }
            let withheld = stored
                .report
                .cells
                .iter()
                .filter(|c| c.status.is_suppressed())
                .count();
            println!(
                "  {} {}: {} of {} cells withheld; audit {}",
                record.id,
                record.output,
                withheld,
                stored.report.cells.len(),
                if stored.report.audit.passed {
                    "passed: no withheld cell can be recomputed"
                } else {
                    "FAILED"
                }
            );
            for (reason, n) in &by_reason {
                println!(
                    "    {n:>5} {reason:<17} {:<58} e.g. {}",
                    explain(reason),
                    example[reason]
                );
            }
        }
        Ok(())
    }

    fn store(&self) -> Store {
        Store::new(&self.state.join("projects").join(PROJECT), PROJECT)
    }

    /// The reviewer releases what passed and rejects what did not; returns how many were released.
    fn review(&self) -> anyhow::Result<usize> {
        self.step(
            "6. Review and release",
            "A reviewer other than the submitter (four eyes) reads each output and releases it; only\n\
             then does its protected table leave the state directory. Its cells go into the release\n\
             ledger, against which later outputs are checked for differencing.",
        );
        self.kluis(Some(REVIEWER), &["output", "list", "--project", PROJECT])?;
        let mut released = 0;
        for record in self.store().list()? {
            if record.status != OutputStatus::Pending {
                continue;
            }
            if record.verdict == TableStatus::Fail {
                self.kluis(
                    Some(REVIEWER),
                    &[
                        "output",
                        "reject",
                        &record.id,
                        "--reason",
                        "the disclosure check failed",
                    ],
                )?;
            } else {
                self.kluis(
                    Some(REVIEWER),
                    &[
                        "output",
                        "release",
                        &record.id,
                        "--reason",
                        "checked: aggregate table, withheld cells and margins in order",
                    ],
                )?;
                released += 1;
            }
        }
        if released == 0 {
            return Err(anyhow!("no output of the demo job could be released"));
        }
        Ok(released)
    }

    fn report(&self) -> anyhow::Result<()> {
        self.step(
            "7. The released results",
            "One self-contained HTML page: the project, its authorisation and retention date, every\n\
             released table with its withheld cells and why, charts of the series over the years\n\
             (withheld values are gaps, never zeros), and the audit trail summary.",
        );
        self.kluis(
            Some(RESEARCHER),
            &[
                "report",
                "--project",
                PROJECT,
                "--out",
                &self.path("report.html"),
            ],
        )
    }

    fn audit(&self) -> anyhow::Result<()> {
        self.step(
            "8. The audit log",
            "Every step above, allowed or refused, is an entry in a hash-chained log sealed with the\n\
             master key; an edited or removed entry is found.",
        );
        self.kluis(None, &["audit", "verify"])?;
        self.kluis(None, &["audit", "export", &self.path("audit.jsonl")])
    }

    fn real_authorisation_refused(&self) -> anyhow::Result<()> {
        self.step(
            "9. Retention: the real authorisation 23/224",
            "Authorisation 23/224 allowed this study until its retention date. kluis refuses to register\n\
             it now: after that date nothing may be derived from the data, and `kluis retention\n\
             enforce` destroys an expired project's keys and data, keeping only released tables.",
        );
        let authorisation = self.dir.join("23-224.toml");
        std::fs::write(&authorisation, REAL_AUTHORISATION)?;
        match self.kluis(
            Some("ksz-steward"),
            &[
                "project",
                "create",
                "--authorisation",
                &authorisation.display().to_string(),
            ],
        ) {
            Ok(()) => Err(anyhow!(
                "authorisation 23/224 was registered although its retention date has passed"
            )),
            Err(refusal) => {
                println!("{refusal:#}");
                Ok(())
            }
        }
    }
}

/// What a disclosure rule's name means, for the narration.
fn explain(reason: &str) -> &'static str {
    match reason {
        "threshold" => "fewer than 10 persons behind the cell",
        "dominance" => "two persons make up 90% or more of the cell's total",
        "p_percent" => "the others' total is within 10% of the largest contribution",
        "class_disclosure" => "a zero or a 100% share says something about everyone",
        "extreme_value" => "a minimum or maximum is one person's value",
        "negative_values" => "negative contributions need a reviewer",
        "differencing" => "a few persons inside a cell of a table released with it",
        "secondary" => "withheld so that a withheld cell cannot be recomputed",
        _ => "",
    }
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// A word as it would be typed in a shell: quoted when it holds anything but plain characters.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
