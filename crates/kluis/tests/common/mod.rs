//! A state directory with the demo project, a generated warehouse and a phase-1 extract, shared
//! by the extract, job, output and report tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub const DEMO: &str = "../../examples/demo-authorisation.toml";

/// Run on the real day: KLUIS_TODAY may only rehearse a later one.
pub const REAL_DAY: &str = "";

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    /// State with project 99-001 (samples of 300 federal and 400 other persons), a warehouse of
    /// `persons` persons (2010-2021), and the project's extract (seed 9) in `extract/`.
    pub fn new(persons: u32) -> Env {
        let env = Env::with_warehouse(persons, [300, 400], "");
        env.extract_to("sam", REAL_DAY, &env.extract(), &[])
            // The jobs need the sample's values as they are; a test population of a few
            // thousand is far above the risk limits a real population meets.
            .args([
                "--accept-risk",
                "test population far smaller than a real one",
            ])
            .assert()
            .success();
        env
    }

    /// State with project 99-001 of the demo authorisation, its two strata sampled at
    /// `samples` persons and `risk` (a `[risk]` table, or nothing) added, and a generated
    /// warehouse of `persons` persons (seed 5, 2010-2021).
    pub fn with_warehouse(persons: u32, samples: [u32; 2], risk: &str) -> Env {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        env.kluis("sam", REAL_DAY).arg("init").assert().success();
        let [federal, other] = samples;
        let text = std::fs::read_to_string(DEMO)
            .unwrap()
            .replacen("sample_size = 2000", &format!("sample_size = {federal}"), 1)
            .replacen("sample_size = 2000", &format!("sample_size = {other}"), 1)
            .replacen("[roles]", &format!("{risk}[roles]"), 1);
        let authorisation = env.path("demo.toml");
        std::fs::write(&authorisation, text).unwrap();
        env.kluis("sam", REAL_DAY)
            .args(["project", "create", "--authorisation"])
            .arg(&authorisation)
            .assert()
            .success();
        env.kluis("", REAL_DAY)
            .args([
                "generate",
                "--persons",
                &persons.to_string(),
                "--seed",
                "5",
                "--warehouse",
            ])
            .arg(env.warehouse())
            .assert()
            .success();
        env
    }

    /// `kluis extract` of project 99-001 (seed 9) into `out`, with `extra` arguments.
    pub fn extract_to(&self, actor: &str, today: &str, out: &Path, extra: &[&str]) -> Command {
        let mut cmd = self.kluis(actor, today);
        cmd.args(["extract", "--project", "99-001", "--seed", "9", "--out"])
            .arg(out)
            .arg("--warehouse")
            .arg(self.warehouse())
            .args(extra);
        cmd
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn warehouse(&self) -> PathBuf {
        self.path("warehouse")
    }

    pub fn extract(&self) -> PathBuf {
        self.path("extract")
    }

    pub fn project_dir(&self) -> PathBuf {
        self.path("state").join("projects").join("99-001")
    }

    pub fn kluis(&self, actor: &str, today: &str) -> Command {
        let mut cmd = Command::cargo_bin("kluis").unwrap();
        cmd.env_remove("KLUIS_ACTOR")
            .env_remove("KLUIS_WAREHOUSE")
            .env_remove("KLUIS_TODAY")
            .env("KLUIS_HOME", self.path("state"));
        if !today.is_empty() {
            cmd.env("KLUIS_TODAY", today);
        }
        if !actor.is_empty() {
            cmd.env("KLUIS_ACTOR", actor);
        }
        cmd
    }

    /// A job directory `name` for project 99/001 with outputs (name, statistic, SQL).
    pub fn job(&self, name: &str, outputs: &[(&str, &str, &str)]) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut toml = format!("name = \"{name}\"\ndescription = \"test\"\nproject = \"99/001\"\n");
        for (output, statistic, sql) in outputs {
            toml.push_str(&format!(
                "\n[[output]]\nname = \"{output}\"\nsql = \"{output}.sql\"\nstatistic = \"{statistic}\"\n"
            ));
            std::fs::write(dir.join(format!("{output}.sql")), sql).unwrap();
        }
        std::fs::write(dir.join("job.toml"), toml).unwrap();
        dir
    }

    pub fn run_full(&self, actor: &str, job: &Path) -> Command {
        let mut cmd = self.kluis(actor, REAL_DAY);
        cmd.args(["job", "run"])
            .arg(job)
            .args(["--on", "full", "--project", "99-001", "--warehouse"])
            .arg(self.warehouse());
        cmd
    }

    pub fn run_sample(&self, job: &Path) -> Command {
        let mut cmd = self.kluis("", REAL_DAY);
        cmd.args(["job", "run"])
            .arg(job)
            .args(["--on", "sample", "--extract"])
            .arg(self.extract());
        cmd
    }

    /// `kluis output list --json` as records (a reviewer's view).
    pub fn outputs(&self) -> Vec<serde_json::Value> {
        let out = self
            .kluis("vera", REAL_DAY)
            .args(["output", "list", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    }

    pub fn audit(&self) -> String {
        let out = self
            .kluis("", REAL_DAY)
            .args(["audit", "show"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }
}
