//! kluis-enclave: jobs, the SQL policy on DataFusion's logical plan, per-cell privacy statistics
//! with margins, and running jobs within memory and time limits.
//!
//! The same code path serves the sample and the full population: open an [`Enclave`] over a
//! [`PersonYearsSource`] (a Parquet file of an extract, or record batches another producer built),
//! then [`Enclave::run_job`].

mod job;
mod limits;
mod policy;
mod stats;
mod write;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef, UInt64Type};
use arrow::util::display::array_value_to_string;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use serde::Serialize;

pub use job::{DEFAULT_UNIT, Job, JobError, Output, Statistic};
pub use limits::{Limits, parse_duration, parse_memory};
pub use policy::{MAX_DIMENSIONS, Violation};
pub use write::{RiskOptions, write_results};

/// The only table a job may read.
pub const TABLE: &str = "person_years";
const CATALOG: &str = "kluis";
const SCHEMA: &str = "enclave";

/// Where the rows of `person_years` come from.
#[derive(Debug, Clone)]
pub enum PersonYearsSource {
    /// A Parquet file (an extract's `person_years.parquet`).
    Parquet(PathBuf),
    /// Record batches built in memory, e.g. the full-population analysis view.
    Batches {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EnclaveError {
    #[error("cannot open person_years from {source_name}: {message}")]
    Source {
        source_name: String,
        message: String,
    },
    #[error("output `{output}` ({}): the SQL does not plan: {message}", sql_file.display())]
    Plan {
        output: String,
        sql_file: PathBuf,
        message: String,
    },
    #[error("output `{output}` ({}) is refused: {violation}", sql_file.display())]
    Refused {
        output: String,
        sql_file: PathBuf,
        violation: Violation,
    },
    #[error(
        "output `{output}` went over the memory limit of {} MiB ({message}); raise --memory-limit or simplify the query",
        limit_bytes >> 20
    )]
    MemoryLimit {
        output: String,
        limit_bytes: usize,
        message: String,
    },
    #[error(
        "output `{output}` went over the time limit of {seconds:.1} s; raise --time-limit or simplify the query"
    )]
    TimeLimit { output: String, seconds: f64 },
    #[error("output `{output}`: {context}: {message}")]
    Execution {
        output: String,
        context: &'static str,
        message: String,
    },
    #[error("cannot start the query runtime: {0}")]
    Runtime(std::io::Error),
}

impl EnclaveError {
    /// True when the error is caused by the job itself (its SQL or job.toml), not by the run.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            EnclaveError::Plan { .. } | EnclaveError::Refused { .. }
        )
    }
}

/// A value of a dimension in a cell key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Value(String),
    /// The dimension is NULL for these rows.
    Missing,
    /// A margin: the cell totals over this dimension.
    Total,
}

/// Privacy statistics of one cell, over the units (persons) behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellStats {
    /// Rows of `person_years` (or of the aggregated subquery) in the cell.
    pub rows: u64,
    /// Distinct units.
    pub units: u64,
    /// Units with at least one non-null measure value.
    pub nonnull_units: u64,
    /// Units whose contribution to the measure is not zero.
    pub nonzero_units: u64,
    /// Largest absolute per-unit contribution to the measure.
    pub top1: Option<f64>,
    /// Second largest absolute per-unit contribution.
    pub top2: Option<f64>,
    /// Whether any unit contributes a negative amount.
    pub any_negative: bool,
}

/// One cell of an output table, a finest cell or a margin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// One level per dimension, in the order of [`OutputTable::dimensions`].
    pub key: Vec<Level>,
    /// The measure as the researcher's SQL computes it for this cell (margins included).
    pub value: Option<f64>,
    pub stats: CellStats,
}

/// What a job output produced.
#[derive(Debug, Clone)]
pub struct OutputTable {
    pub name: String,
    pub statistic: Statistic,
    pub unit: String,
    pub dimensions: Vec<String>,
    pub measure: String,
    /// The result exactly as the researcher's SQL returns it.
    pub result: Vec<RecordBatch>,
    /// Every cell and every margin with its statistics; finest cells first.
    pub cells: Vec<Cell>,
}

/// What `job check` learns about an accepted output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedOutput {
    pub name: String,
    pub statistic: Statistic,
    pub dimensions: Vec<String>,
    pub measure: String,
}

/// A DataFusion session over `person_years` alone, with its own runtime and limits.
pub struct Enclave {
    runtime: tokio::runtime::Runtime,
    ctx: SessionContext,
    person_years: Arc<dyn TableProvider>,
    limits: Limits,
}

impl Enclave {
    /// Opens a session whose only table is `person_years`.
    pub fn open(source: PersonYearsSource, limits: Limits) -> Result<Enclave, EnclaveError> {
        let threads = limits.threads.max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_time()
            .build()
            .map_err(EnclaveError::Runtime)?;
        let source_name = match &source {
            PersonYearsSource::Parquet(p) => p.display().to_string(),
            PersonYearsSource::Batches { .. } => "record batches".to_string(),
        };
        let fail = |message: String| EnclaveError::Source {
            source_name: source_name.clone(),
            message,
        };
        // Spilling is off: the enclave never writes person data to temporary files, so going
        // over the memory pool is an error rather than a spill.
        let env = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(limits.memory_bytes)))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()
            .map_err(|e| fail(e.to_string()))?;
        let config = SessionConfig::new()
            .with_target_partitions(threads)
            .with_information_schema(false)
            .with_default_catalog_and_schema(CATALOG, SCHEMA);
        let ctx = SessionContext::new_with_config_rt(config, env);
        let person_years = runtime.block_on(async {
            match source {
                PersonYearsSource::Parquet(path) => {
                    if !path.is_file() {
                        return Err(fail("no such file".into()));
                    }
                    let path = path
                        .to_str()
                        .ok_or_else(|| fail("the path is not valid UTF-8".into()))?;
                    ctx.register_parquet(TABLE, path, ParquetReadOptions::default())
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                }
                PersonYearsSource::Batches { schema, batches } => {
                    let table = MemTable::try_new(schema, vec![batches])
                        .map_err(|e| fail(e.to_string()))?;
                    ctx.register_table(TABLE, Arc::new(table))
                        .map_err(|e| fail(e.to_string()))?;
                }
            }
            ctx.table_provider(TABLE)
                .await
                .map_err(|e| fail(e.to_string()))
        })?;
        Ok(Enclave {
            runtime,
            ctx,
            person_years,
            limits,
        })
    }

    /// The schema of `person_years`.
    pub fn schema(&self) -> SchemaRef {
        self.person_years.schema()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    async fn plan(&self, output: &Output) -> Result<policy::Accepted, EnclaveError> {
        let plan_error = |message: String| EnclaveError::Plan {
            output: output.name.clone(),
            sql_file: output.sql_file.clone(),
            message,
        };
        let refused = |violation| EnclaveError::Refused {
            output: output.name.clone(),
            sql_file: output.sql_file.clone(),
            violation,
        };
        let state = self.ctx.state();
        let statement = state
            .sql_to_statement(&output.sql, &state.config().options().sql_parser.dialect)
            .map_err(|e| plan_error(e.find_root().to_string()))?;
        // Only a query: refuse statements before anything is planned.
        let is_query = matches!(&statement, DfStatement::Statement(s) if matches!(**s, SqlStatement::Query(_)));
        if !is_query {
            let text = statement.to_string();
            let what = text
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ");
            return Err(refused(Violation::NotAQuery {
                what: format!("`{what} ...`"),
            }));
        }
        // Refuse other tables by name before planning looks them up.
        for reference in state
            .resolve_table_references(&statement)
            .map_err(|e| plan_error(e.to_string()))?
        {
            let ours = reference.table() == TABLE
                && reference.schema().is_none_or(|s| s == SCHEMA)
                && reference.catalog().is_none_or(|c| c == CATALOG);
            if !ours {
                return Err(refused(Violation::ForeignTable {
                    table: reference.to_string(),
                }));
            }
        }
        let raw = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| plan_error(e.find_root().to_string()))?;
        policy::check_statement(&raw, &self.person_years).map_err(refused)?;
        let analyzed = state
            .analyzer()
            .execute_and_check(raw, state.config_options(), |_, _| {})
            .map_err(|e| plan_error(e.find_root().to_string()))?;
        policy::check(analyzed, output, &self.person_years).map_err(refused)
    }

    /// Plans an output and applies the policy, without running it.
    pub fn check(&self, output: &Output) -> Result<CheckedOutput, EnclaveError> {
        let accepted = self.runtime.block_on(self.plan(output))?;
        Ok(CheckedOutput {
            name: output.name.clone(),
            statistic: output.statistic,
            dimensions: accepted.dim_names,
            measure: accepted.measure_name,
        })
    }

    /// Runs one output: its result, all margins, and per-cell unit statistics.
    pub fn run_output(&self, output: &Output) -> Result<OutputTable, EnclaveError> {
        let limit = self.limits.time;
        self.runtime
            .block_on(async { tokio::time::timeout(limit, self.run_output_async(output)).await })
            .unwrap_or_else(|_| {
                Err(EnclaveError::TimeLimit {
                    output: output.name.clone(),
                    seconds: limit.as_secs_f64(),
                })
            })
    }

    /// Runs every output of a job, in order; stops at the first failure.
    pub fn run_job(&self, job: &Job) -> Result<Vec<OutputTable>, EnclaveError> {
        job.outputs.iter().map(|o| self.run_output(o)).collect()
    }

    async fn collect(
        &self,
        output: &Output,
        plan: datafusion::logical_expr::LogicalPlan,
        context: &'static str,
    ) -> Result<Vec<RecordBatch>, EnclaveError> {
        let result = DataFrame::new(self.ctx.state(), plan).collect().await;
        result.map_err(|e| match e.find_root() {
            DataFusionError::ResourcesExhausted(message) => EnclaveError::MemoryLimit {
                output: output.name.clone(),
                limit_bytes: self.limits.memory_bytes,
                message: message.clone(),
            },
            root => EnclaveError::Execution {
                output: output.name.clone(),
                context,
                message: root.to_string(),
            },
        })
    }

    async fn run_output_async(&self, output: &Output) -> Result<OutputTable, EnclaveError> {
        let accepted = self.plan(output).await?;
        let internal = |e: DataFusionError| EnclaveError::Execution {
            output: output.name.clone(),
            context: "building the statistics plans",
            message: e.to_string(),
        };
        let margins_plan = stats::margins_plan(&accepted).map_err(internal)?;
        let stats_plan = stats::unit_stats_plan(&accepted).map_err(internal)?;
        let result = self
            .collect(output, accepted.plan.clone(), "running the query")
            .await?;
        let margins = self
            .collect(output, margins_plan, "computing the margins")
            .await?;
        let unit_stats = self
            .collect(output, stats_plan, "computing the unit statistics")
            .await?;
        let cells = assemble_cells(&accepted, &margins, &unit_stats).map_err(|message| {
            EnclaveError::Execution {
                output: output.name.clone(),
                context: "assembling the cells",
                message,
            }
        })?;
        Ok(OutputTable {
            name: output.name.clone(),
            statistic: output.statistic,
            unit: output.unit.clone(),
            dimensions: accepted.dim_names,
            measure: accepted.measure_name,
            result,
            cells,
        })
    }
}

fn level(array: &dyn Array, row: usize, total: bool) -> Result<Level, String> {
    if total {
        Ok(Level::Total)
    } else if array.is_null(row) {
        Ok(Level::Missing)
    } else {
        array_value_to_string(array, row)
            .map(Level::Value)
            .map_err(|e| e.to_string())
    }
}

fn mask_of(array: &dyn Array, row: usize) -> Result<u64, String> {
    let as_u64 = cast(&array.slice(row, 1), &DataType::UInt64).map_err(|e| e.to_string())?;
    Ok(as_u64.as_primitive::<UInt64Type>().value(0))
}

fn u64_at(array: &dyn Array, row: usize) -> Result<u64, String> {
    let v = cast(&array.slice(row, 1), &DataType::Int64).map_err(|e| e.to_string())?;
    let v = v.as_primitive::<Int64Type>();
    Ok(if v.is_null(0) {
        0
    } else {
        v.value(0).max(0) as u64
    })
}

fn f64_at(array: &dyn Array, row: usize) -> Result<Option<f64>, String> {
    let v = cast(&array.slice(row, 1), &DataType::Float64).map_err(|e| e.to_string())?;
    let v = v.as_primitive::<Float64Type>();
    Ok((!v.is_null(0)).then(|| v.value(0)))
}

/// Joins the margins (measure values) with the unit statistics, cell by cell.
fn assemble_cells(
    acc: &policy::Accepted,
    margins: &[RecordBatch],
    unit_stats: &[RecordBatch],
) -> Result<Vec<Cell>, String> {
    let k = acc.aggregate.group_expr.len();
    // Cell key in GROUP BY order -> measure value.
    let mut values: HashMap<Vec<Level>, Option<f64>> = HashMap::new();
    for batch in margins {
        for row in 0..batch.num_rows() {
            let mask = if k == 0 {
                0
            } else {
                mask_of(batch.column(batch.num_columns() - 1), row)?
            };
            let mut key = vec![Level::Total; k];
            for &(col, g) in &acc.dims {
                key[g] = level(batch.column(col), row, (mask >> (k - 1 - g)) & 1 == 1)?;
            }
            values.insert(key, f64_at(batch.column(acc.measure_index), row)?);
        }
    }
    let first = if k == 0 { 0 } else { k + 1 };
    let mut cells = Vec::new();
    for batch in unit_stats {
        for row in 0..batch.num_rows() {
            // The unit is the last grouping key of the statistics plan: drop its bit.
            let mask = if k == 0 {
                0
            } else {
                mask_of(batch.column(k), row)? >> 1
            };
            let key: Vec<Level> = (0..k)
                .map(|g| level(batch.column(g), row, (mask >> (k - 1 - g)) & 1 == 1))
                .collect::<Result<_, _>>()?;
            let col = |i: usize| batch.column(first + i).as_ref();
            let stats = CellStats {
                units: u64_at(col(0), row)?,
                rows: u64_at(col(1), row)?,
                nonnull_units: u64_at(col(2), row)?,
                nonzero_units: u64_at(col(3), row)?,
                top1: f64_at(col(4), row)?,
                top2: f64_at(col(5), row)?,
                any_negative: f64_at(col(6), row)?.is_some_and(|m| m < 0.0),
            };
            let value = values.get(&key).copied().flatten();
            cells.push(Cell { key, value, stats });
        }
    }
    // The result order of dimensions, finest cells first, then by key: deterministic output.
    let order: Vec<usize> = acc.dims.iter().map(|&(_, g)| g).collect();
    for cell in &mut cells {
        cell.key = order.iter().map(|&g| cell.key[g].clone()).collect();
    }
    cells.sort_by(|a, b| {
        let totals = |c: &Cell| c.key.iter().filter(|l| **l == Level::Total).count();
        totals(a).cmp(&totals(b)).then_with(|| a.key.cmp(&b.key))
    });
    Ok(cells)
}
