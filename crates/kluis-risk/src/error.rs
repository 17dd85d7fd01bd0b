//! Typed errors of the crate. Every message names the file, column, row or value at fault.

use std::path::PathBuf;

/// What can go wrong while reading, coding or analysing microdata.
#[derive(Debug, thiserror::Error)]
pub enum RiskError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: unsupported file type (expected a .csv or .parquet file)")]
    UnsupportedFile { path: PathBuf },
    #[error("{path}: no column named '{column}' (columns present: {available})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        available: String,
    },
    #[error("column '{column}' has type {data_type}, which cannot be used as a category")]
    UnsupportedType { column: String, data_type: String },
    #[error("no column named '{column}' in the table (columns present: {available})")]
    UnknownColumn { column: String, available: String },
    #[error("column '{column}' is empty at row {row}; {what} may not be missing")]
    MissingValue {
        column: String,
        row: usize,
        what: &'static str,
    },
    #[error("columns have different lengths: '{column}' has {got} rows, expected {expected}")]
    LengthMismatch {
        column: String,
        got: usize,
        expected: usize,
    },
    #[error(
        "unit at row {row} has two rows for year {year}; a trajectory needs one row per unit and year"
    )]
    DuplicateUnitYear { row: usize, year: u32 },
    #[error("year column '{column}' has value '{value}' at row {row}; expected a whole number")]
    BadYear {
        column: String,
        row: usize,
        value: String,
    },
    #[error("hierarchy for '{column}': {message}")]
    Hierarchy { column: String, message: String },
    #[error("invalid option: {0}")]
    Option(String),
}

pub type Result<T, E = RiskError> = std::result::Result<T, E>;
