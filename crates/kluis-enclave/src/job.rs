//! Jobs: a directory with `job.toml` and the SQL files it names.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use kluis_sdc::Statistic;
use serde::Deserialize;

/// One output of a job: a `SELECT` over `person_years` producing one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub name: String,
    /// Path of the SQL file, as given in `job.toml` (relative to the job directory).
    pub sql_file: PathBuf,
    /// The SQL text.
    pub sql: String,
    /// Column of `person_years` that identifies the privacy unit: always [`DEFAULT_UNIT`], the
    /// authorisation's unit (persons, by their pseudonym). A job cannot choose another.
    pub unit: String,
    /// What kind of statistic the measure is (count, sum, mean, min, max, share); the
    /// disclosure rules depend on it.
    pub statistic: Statistic,
    /// Result column holding the measure; `None`: the one result column that is not a dimension.
    pub measure: Option<String>,
    /// Result columns that are the dimensions; `None`: the GROUP BY keys.
    pub dimensions: Option<Vec<String>>,
}

/// A validated job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub dir: PathBuf,
    pub name: String,
    pub description: String,
    pub project: String,
    pub outputs: Vec<Output>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: field `{field}` {problem}", path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: String,
    #[serde(default)]
    description: String,
    project: String,
    #[serde(default, rename = "output")]
    outputs: Vec<RawOutput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    name: String,
    sql: PathBuf,
    statistic: String,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    measure: Option<String>,
    #[serde(default)]
    dimensions: Option<Vec<String>>,
}

/// Default privacy unit column.
pub const DEFAULT_UNIT: &str = "pseudonym";

fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

impl Job {
    /// Reads and validates `DIR/job.toml` and the SQL files it names.
    pub fn load(dir: &Path) -> Result<Job, JobError> {
        let path = dir.join("job.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| JobError::Read {
            path: path.clone(),
            source,
        })?;
        let raw: RawJob = toml::from_str(&text).map_err(|e| JobError::Syntax {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let invalid = |field: String, problem: String| JobError::Invalid {
            path: path.clone(),
            field,
            problem,
        };

        if raw.name.trim().is_empty() {
            return Err(invalid(
                "name".into(),
                "is empty; give the job a name".into(),
            ));
        }
        if raw.project.trim().is_empty() {
            return Err(invalid(
                "project".into(),
                "is empty; give the project ID of the authorisation".into(),
            ));
        }
        if raw.outputs.is_empty() {
            return Err(invalid(
                "output".into(),
                "is missing: add at least one [[output]] table with name, sql and statistic".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut outputs = Vec::with_capacity(raw.outputs.len());
        for (i, o) in raw.outputs.into_iter().enumerate() {
            let at = |f: &str| format!("output[{i}].{f}");
            if !is_plain_name(&o.name) {
                return Err(invalid(
                    at("name"),
                    format!(
                        "is {:?}; use 1 to 64 lowercase letters, digits, '_' or '-' (it names the result files)",
                        o.name
                    ),
                ));
            }
            if !seen.insert(o.name.clone()) {
                return Err(invalid(
                    at("name"),
                    format!("is {:?}, which an earlier output already uses", o.name),
                ));
            }
            let statistic = Statistic::parse(&o.statistic).ok_or_else(|| {
                invalid(
                    at("statistic"),
                    format!("is {:?}; allowed: {}", o.statistic, Statistic::ALLOWED),
                )
            })?;
            let inside = o
                .sql
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
            if !inside || o.sql.as_os_str().is_empty() {
                return Err(invalid(
                    at("sql"),
                    format!(
                        "is {:?}; name a file inside the job directory (no '..', not absolute)",
                        o.sql
                    ),
                ));
            }
            let sql_path = dir.join(&o.sql);
            let sql = std::fs::read_to_string(&sql_path).map_err(|source| JobError::Read {
                path: sql_path.clone(),
                source,
            })?;
            if sql.trim().is_empty() {
                return Err(JobError::Invalid {
                    path: sql_path,
                    field: "(SQL)".into(),
                    problem: "is empty; write one SELECT over person_years".into(),
                });
            }
            // The privacy unit belongs to the authorisation: every number is protected counting
            // persons. A job that names another unit (`year`, a column it made up) would have
            // its rows counted as "persons" and could publish per-person values.
            if let Some(unit) = o.unit.as_deref().filter(|u| *u != DEFAULT_UNIT) {
                return Err(invalid(
                    at("unit"),
                    format!(
                        "is {unit:?}; the privacy unit is the authorisation's, persons by their `{DEFAULT_UNIT}`, and a job cannot choose another (leave `unit` out)"
                    ),
                ));
            }
            let unit = DEFAULT_UNIT.to_string();
            if let Some(dims) = &o.dimensions {
                let mut d = BTreeSet::new();
                for name in dims {
                    if !d.insert(name) {
                        return Err(invalid(at("dimensions"), format!("lists {name:?} twice")));
                    }
                }
                if o.measure.as_ref().is_some_and(|m| d.contains(m)) {
                    return Err(invalid(
                        at("measure"),
                        format!(
                            "is {:?}, which is also listed as a dimension",
                            o.measure.as_deref().unwrap_or("")
                        ),
                    ));
                }
            }
            outputs.push(Output {
                name: o.name,
                sql_file: o.sql,
                sql,
                unit,
                statistic,
                measure: o.measure,
                dimensions: o.dimensions,
            });
        }
        Ok(Job {
            dir: dir.to_path_buf(),
            name: raw.name,
            description: raw.description,
            project: raw.project,
            outputs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_dir(toml: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("job.toml"), toml).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    const SQL: (&str, &str) = (
        "q.sql",
        "SELECT region, count(*) AS n FROM person_years GROUP BY region",
    );

    fn error(toml: &str) -> String {
        let dir = job_dir(toml, &[SQL]);
        Job::load(dir.path()).unwrap_err().to_string()
    }

    #[test]
    fn a_valid_job_loads_with_defaults() {
        let dir = job_dir(
            "name = \"j\"\nproject = \"P\"\n[[output]]\nname = \"by_region\"\nsql = \"q.sql\"\nstatistic = \"count\"\n",
            &[SQL],
        );
        let job = Job::load(dir.path()).unwrap();
        assert_eq!(job.outputs.len(), 1);
        let o = &job.outputs[0];
        assert_eq!(
            (o.unit.as_str(), o.statistic, o.measure.as_deref()),
            ("pseudonym", Statistic::Count, None)
        );
        assert_eq!(o.sql, SQL.1);
    }

    #[test]
    fn bad_fields_are_named_with_what_is_allowed() {
        let head = "name = \"j\"\nproject = \"P\"\n[[output]]\n";
        let e = error(&format!(
            "{head}name = \"a\"\nsql = \"q.sql\"\nstatistic = \"median\"\n"
        ));
        assert!(
            e.contains(
                "job.toml: field `output[0].statistic` is \"median\"; allowed: count, sum, mean"
            ),
            "{e}"
        );
        let e = error(&format!(
            "{head}name = \"A b\"\nsql = \"q.sql\"\nstatistic = \"count\"\n"
        ));
        assert!(e.contains("`output[0].name` is \"A b\""), "{e}");
        let e = error(&format!(
            "{head}name = \"a\"\nsql = \"../q.sql\"\nstatistic = \"count\"\n"
        ));
        assert!(
            e.contains("`output[0].sql`") && e.contains("inside the job directory"),
            "{e}"
        );
        let e = error(&format!(
            "{head}name = \"a\"\nsql = \"missing.sql\"\nstatistic = \"count\"\n"
        ));
        assert!(e.contains("missing.sql"), "{e}");
        let e = error(&format!(
            "{head}name = \"a\"\nsql = \"q.sql\"\nstatistic = \"count\"\nmeasur = \"n\"\n"
        ));
        assert!(e.contains("job.toml") && e.contains("measur"), "{e}");
        let e = error("name = \"j\"\nproject = \"P\"\n");
        assert!(e.contains("`output` is missing"), "{e}");
        let twice = format!("{head}name = \"a\"\nsql = \"q.sql\"\nstatistic = \"count\"\n");
        let e = error(&format!(
            "{twice}[[output]]\nname = \"a\"\nsql = \"q.sql\"\nstatistic = \"sum\"\n"
        ));
        assert!(
            e.contains("`output[1].name`") && e.contains("already uses"),
            "{e}"
        );
    }
}
