//! kluis-enclave: jobs, the SQL policy on DataFusion's logical plan, per-cell privacy statistics
//! with margins, and running jobs within memory and time limits.
//!
//! The same code path serves the sample and the full population: open an [`Enclave`] over a
//! [`PersonYearsSource`] (a Parquet file of an extract, or record batches another producer built),
//! then [`Enclave::run_job`].

mod disclosure;
mod job;
mod limits;
mod linked;
mod measure;
mod policy;
mod span;
mod stats;
mod store;
mod total;
mod units;
mod write;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, RecordBatchReader};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, SchemaRef, UInt64Type};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use roaring::RoaringBitmap;
use serde::Serialize;

pub use disclosure::{
    AtRisk, MISSING, Scaling, Stratum, at_risk, contributors, level_key, to_sdc_table,
};
pub use job::{DEFAULT_UNIT, Job, JobError, Output};
pub use kluis_sdc::Statistic;
pub use limits::{Limits, parse_duration, parse_memory};
pub use policy::{MAX_DIMENSIONS, Violation};
pub use span::Budget as LinkedBudget;
pub use store::{
    Decision, Differencing, Ledger, LedgerCell, LinkedCheck, OutputRecord, OutputStatus, Store,
    StoreError, StoreHold, StoredOutput,
};
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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Value(String),
    /// The dimension is NULL for these rows.
    Missing,
    /// A margin: the cell totals over this dimension.
    Total,
}

/// Privacy statistics of one cell, over the units (persons) behind it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CellStats {
    /// Rows of `person_years` (or of the aggregated subquery) in the cell.
    pub rows: u64,
    /// Distinct units.
    pub units: u64,
    /// Units with at least one non-null measure value.
    pub nonnull_units: u64,
    /// Units whose contribution to the measure is not zero.
    pub nonzero_units: u64,
    /// Sum of the per-unit contributions (for a mean: the sum behind it).
    pub total: f64,
    /// Sum of the absolute per-unit contributions.
    pub abs_total: f64,
    /// Largest absolute per-unit contribution to the measure.
    pub top1: Option<f64>,
    /// Second largest absolute per-unit contribution.
    pub top2: Option<f64>,
    /// Whether any unit contributes a negative amount.
    pub any_negative: bool,
}

/// One cell of an output table, a finest cell or a margin.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// One level per dimension, in the order of [`OutputTable::dimensions`].
    pub key: Vec<Level>,
    /// The measure as the researcher's SQL computes it for this cell (margins included).
    pub value: Option<f64>,
    /// The statistics of the measure's aggregate (of a ratio's numerator).
    pub stats: CellStats,
    /// The units the number depends on (a counted, non-zero contribution), for the release
    /// ledger. Never written anywhere but the state directory.
    pub units: RoaringBitmap,
    /// A ratio's denominator (a mean's count, a share's base), judged by its own contributors.
    pub denominator: Option<Term>,
}

/// One more aggregate a cell's value is made of, with its own persons.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub stats: CellStats,
    pub units: RoaringBitmap,
}

/// What a job output produced.
#[derive(Debug, Clone)]
pub struct OutputTable {
    pub name: String,
    pub statistic: Statistic,
    pub unit: String,
    pub dimensions: Vec<String>,
    /// What each dimension is (its GROUP BY expression): cells of tables with the same quantity
    /// are the same number only when their dimensions are the same, whatever they are named.
    pub dimension_ids: Vec<String>,
    pub measure: String,
    /// What the measure adds up (the aggregate over its exact rows): linked tables share it.
    pub quantity: String,
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

fn read_parquet(path: &std::path::Path) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    if !path.is_file() {
        return Err("no such file".into());
    }
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| e.to_string())?
        .build()
        .map_err(|e| e.to_string())?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok((schema, batches))
}

/// Keeps only `columns` (all when `None`) of a batch and stores text columns as dictionaries
/// (codes repeat: a code list has few values), so a full-population view fits in memory.
/// Values and column names are unchanged; DataFusion reads both forms alike.
pub fn compact(batch: &RecordBatch, columns: Option<&[String]>) -> Result<RecordBatch, String> {
    let schema = batch.schema();
    let keep: Vec<usize> = match columns {
        None => (0..schema.fields().len()).collect(),
        Some(names) => names
            .iter()
            .map(|n| schema.index_of(n).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?,
    };
    let dictionary =
        |t: &DataType| DataType::Dictionary(Box::new(DataType::Int16), Box::new(t.clone()));
    let mut fields = Vec::with_capacity(keep.len());
    let mut arrays = Vec::with_capacity(keep.len());
    for i in keep {
        let field = schema.field(i);
        let array = batch.column(i);
        if matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            let t = dictionary(&DataType::Utf8);
            arrays.push(cast(array, &t).map_err(|e| e.to_string())?);
            fields.push(field.as_ref().clone().with_data_type(t));
        } else {
            arrays.push(array.clone());
            fields.push(field.as_ref().clone());
        }
    }
    RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), arrays)
        .map_err(|e| e.to_string())
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
        // Both sources become the same in-memory table with text as dictionaries, so a job gives
        // the same columns on a sample and on the full view.
        let register = |schema: SchemaRef, batches: Vec<RecordBatch>| {
            let batches = batches
                .iter()
                .map(|b| compact(b, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?;
            let schema = match batches.first() {
                Some(b) => b.schema(),
                None => compact(&RecordBatch::new_empty(schema), None)
                    .map_err(fail)?
                    .schema(),
            };
            // One partition per thread, so scans run in parallel.
            let partitions: Vec<Vec<RecordBatch>> = (0..threads)
                .map(|p| batches.iter().skip(p).step_by(threads).cloned().collect())
                .collect();
            let table = MemTable::try_new(schema, partitions).map_err(|e| fail(e.to_string()))?;
            ctx.register_table(TABLE, Arc::new(table))
                .map_err(|e| fail(e.to_string()))
                .map(|_| ())
        };
        let person_years = runtime.block_on(async {
            match source {
                PersonYearsSource::Parquet(path) => {
                    let (schema, batches) = read_parquet(&path).map_err(fail)?;
                    register(schema, batches)?;
                }
                PersonYearsSource::Batches { schema, batches } => register(schema, batches)?,
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
        let analyzed = total::total(analyzed).map_err(|e| plan_error(e.find_root().to_string()))?;
        policy::check(analyzed, output, &self.person_years).map_err(refused)
    }

    /// The columns of `person_years` an output reads (for building only those of a view).
    pub fn columns_used(&self, output: &Output) -> Result<Vec<String>, EnclaveError> {
        let accepted = self.runtime.block_on(self.plan(output))?;
        let state = self.ctx.state();
        let optimized = state
            .optimize(&accepted.plan)
            .map_err(|e| EnclaveError::Plan {
                output: output.name.clone(),
                sql_file: output.sql_file.clone(),
                message: e.to_string(),
            })?;
        let mut columns = std::collections::BTreeSet::new();
        let schema = self.schema();
        let _ = optimized.apply_with_subqueries(|node| {
            if let datafusion::logical_expr::LogicalPlan::TableScan(scan) = node {
                match &scan.projection {
                    Some(p) => columns.extend(p.iter().map(|&i| schema.field(i).name().clone())),
                    None => columns.extend(schema.fields().iter().map(|f| f.name().clone())),
                }
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        });
        // Every column the researcher's plan names, too: the optimizer drops a sort in a
        // subquery (and the column only it reads), but the SQL must still plan on the view.
        let _ = accepted.plan.apply_with_subqueries(|node| {
            for e in node.expressions() {
                for c in e.column_refs() {
                    if schema.field_with_name(&c.name).is_ok() {
                        columns.insert(c.name.clone());
                    }
                }
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        });
        // The unit is always read: the statistics need it.
        columns.insert(output.unit.clone());
        Ok(columns.into_iter().collect())
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
        result.map_err(|e| self.execution_error(output, e, context))
    }

    fn execution_error(
        &self,
        output: &Output,
        e: DataFusionError,
        context: &'static str,
    ) -> EnclaveError {
        match e.find_root() {
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
        }
    }

    async fn run_output_async(&self, output: &Output) -> Result<OutputTable, EnclaveError> {
        let accepted = self.plan(output).await?;
        let result = self
            .collect(output, accepted.plan.clone(), "running the query")
            .await?;
        let unit_error = |e| match e {
            units::UnitsError::DataFusion(e) => {
                self.execution_error(output, e, "computing the unit statistics")
            }
            units::UnitsError::Data(message) => EnclaveError::Execution {
                output: output.name.clone(),
                context: "computing the unit statistics",
                message,
            },
        };
        // Each aggregate of the value is checked with its own contributors.
        let mut terms = Vec::new();
        for term in accepted.shape.terms() {
            terms.push(
                units::unit_cells(&self.ctx, &accepted, term, &output.unit)
                    .await
                    .map_err(unit_error)?,
            );
        }
        let denominator = (terms.len() > 1).then(|| terms.remove(1));
        let unit_cells = terms.remove(0);
        let margins = if accepted.measure_bare {
            None
        } else {
            let plan = stats::margins_plan(&accepted).map_err(|e| EnclaveError::Execution {
                output: output.name.clone(),
                context: "building the margins plan",
                message: e.to_string(),
            })?;
            Some(self.collect(output, plan, "computing the margins").await?)
        };
        let cells = assemble_cells(&accepted, margins.as_deref(), unit_cells, denominator)
            .map_err(|message| EnclaveError::Execution {
                output: output.name.clone(),
                context: "assembling the cells",
                message,
            })?;
        let quantity = quantity_of(&accepted);
        let dimension_ids = accepted
            .dims
            .iter()
            .map(|&(_, g)| policy::strip_alias(&accepted.aggregate.group_expr[g]).to_string())
            .collect();
        Ok(OutputTable {
            name: output.name.clone(),
            statistic: output.statistic,
            unit: output.unit.clone(),
            dimensions: accepted.dim_names,
            dimension_ids,
            measure: accepted.measure_name,
            quantity,
            result,
            cells,
        })
    }
}

/// What the measure sums, as linked tables must agree on it: the aggregate (a mean as its sum)
/// over the exact rows it aggregates. Two outputs with the same quantity and the same cell key
/// hold the same number, whatever their other dimensions.
fn quantity_of(acc: &policy::Accepted) -> String {
    use std::hash::{Hash, Hasher};
    let f = acc.shape.terms()[0].clone();
    let aggregate = Expr::AggregateFunction(f).to_string();
    // The rows, as a fingerprint of the input plan: its text can be long and holds the SQL.
    let mut h = std::hash::DefaultHasher::new();
    acc.aggregate
        .input
        .display_indent()
        .to_string()
        .hash(&mut h);
    format!("{aggregate} over rows {:016x}", h.finish())
}

fn mask_of(array: &dyn Array, row: usize) -> Result<u64, String> {
    let as_u64 = cast(&array.slice(row, 1), &DataType::UInt64).map_err(|e| e.to_string())?;
    Ok(as_u64.as_primitive::<UInt64Type>().value(0))
}

fn f64_at(array: &dyn Array, row: usize) -> Result<Option<f64>, String> {
    let v = cast(&array.slice(row, 1), &DataType::Float64).map_err(|e| e.to_string())?;
    let v = v.as_primitive::<Float64Type>();
    Ok((!v.is_null(0)).then(|| v.value(0)))
}

/// Cell keys (GROUP BY order) and measure values of a margins plan's result.
fn margin_values(
    acc: &policy::Accepted,
    margins: &[RecordBatch],
) -> Result<HashMap<Vec<Level>, Option<f64>>, String> {
    let k = acc.aggregate.group_expr.len();
    let mut values = HashMap::new();
    for batch in margins {
        let text: Vec<Option<arrow::array::ArrayRef>> = (0..batch.num_columns())
            .map(|c| {
                acc.dims
                    .iter()
                    .any(|&(col, _)| col == c)
                    .then(|| units::as_text(batch.column(c)))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            let mask = if k == 0 {
                0
            } else {
                mask_of(batch.column(batch.num_columns() - 1), row)?
            };
            let mut key = vec![Level::Total; k];
            for &(col, g) in &acc.dims {
                if (mask >> (k - 1 - g)) & 1 == 0 {
                    let t = text[col].as_ref().expect("dimension columns as text");
                    key[g] = if t.is_null(row) {
                        Level::Missing
                    } else {
                        Level::Value(t.as_string::<i32>().value(row).to_string())
                    };
                }
            }
            values.insert(key, f64_at(batch.column(acc.measure_index), row)?);
        }
    }
    Ok(values)
}

/// The cells of the unit pass, with their values (from the pass, or from the margins plan), in
/// the result's dimension order.
fn assemble_cells(
    acc: &policy::Accepted,
    margins: Option<&[RecordBatch]>,
    unit_cells: units::UnitCells,
    denominator: Option<units::UnitCells>,
) -> Result<Vec<Cell>, String> {
    let values = margins.map(|m| margin_values(acc, m)).transpose()?;
    // Both passes read the same rows with the same keys, so they have the same cells.
    let mut denominators: HashMap<Vec<Level>, (Term, Option<f64>)> = denominator
        .map(|d| {
            d.cells
                .into_iter()
                .map(|c| {
                    let term = Term {
                        stats: c.stats,
                        units: c.units,
                    };
                    (c.key, (term, c.value))
                })
                .collect()
        })
        .unwrap_or_default();
    let ratio = !denominators.is_empty();
    let order: Vec<usize> = acc.dims.iter().map(|&(_, g)| g).collect();
    let mut cells: Vec<Cell> = unit_cells
        .cells
        .into_iter()
        .map(|c| {
            let value = match &values {
                Some(v) => v.get(&c.key).copied().flatten(),
                None => c.value,
            };
            let denominator = denominators.remove(&c.key);
            if ratio && denominator.is_none() {
                return Err(format!("the denominator has no cell {:?}", c.key));
            }
            // A bare `avg`: the sum's pass over the count's.
            let value = match (&values, &denominator) {
                (None, Some((_, count))) => value
                    .zip(count.filter(|n| *n > 0.0))
                    .map(|(sum, n)| sum / n),
                _ => value,
            };
            let denominator = denominator.map(|(term, _)| term);
            Ok(Cell {
                key: order.iter().map(|&g| c.key[g].clone()).collect(),
                value,
                stats: c.stats,
                units: c.units,
                denominator,
            })
        })
        .collect::<Result<_, String>>()?;
    // Finest cells first, then by key: deterministic output.
    cells.sort_by(|a, b| {
        let totals = |c: &Cell| c.key.iter().filter(|l| **l == Level::Total).count();
        totals(a).cmp(&totals(b)).then_with(|| a.key.cmp(&b.key))
    });
    Ok(cells)
}
