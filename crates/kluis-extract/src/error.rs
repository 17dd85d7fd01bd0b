//! Errors. None of them carries an INSZ number or key material: a bad warehouse row is named by
//! its year and position.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Warehouse(#[from] kluis_warehouse::Error),
    #[error(
        "the warehouse {dir} lacks year(s) {missing:?} that authorisation {authorisation} needs ({first}-{last}); it has {have:?}"
    )]
    MissingYears {
        dir: PathBuf,
        authorisation: String,
        first: i32,
        last: i32,
        missing: Vec<i32>,
        have: Vec<i32>,
    },
    #[error(
        "the authorisation grants {variable} coded as {coding}, which this kluis cannot produce"
    )]
    UnsupportedCoding { variable: String, coding: String },
    #[error("the authorisation has {0} strata; at most 255 are supported")]
    TooManyStrata(usize),
    #[error("warehouse {table}, {context}: {column} has {value:?}, which is not {expected}")]
    BadValue {
        table: &'static str,
        context: String,
        column: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "warehouse person_years, year {year}, row {row}: the person is not in the persons table"
    )]
    UnknownPerson { year: i32, row: usize },
    #[error(transparent)]
    Pseudo(#[from] kluis_pseudo::PseudoError),
    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("{context}: {source}")]
    Parquet {
        context: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} already exists; an extract goes into a new directory")]
    OutExists(PathBuf),
    #[error("{0:?} is not an age X25519 public key (age1...): {1}")]
    BadRecipient(String, String),
    #[error("encrypting {path}: {reason}")]
    Encrypt { path: PathBuf, reason: String },
    #[error("{path}: not a kluis extract manifest: {reason}")]
    BadManifest { path: PathBuf, reason: String },
    #[error("{dir}: {file} is listed in the manifest but missing")]
    MissingFile { dir: PathBuf, file: String },
    #[error(
        "{dir}: {file} does not match the manifest (SHA-256 {found}, manifest says {expected})"
    )]
    HashMismatch {
        dir: PathBuf,
        file: String,
        found: String,
        expected: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    pub(crate) fn arrow(
        context: impl Into<String>,
    ) -> impl FnOnce(arrow::error::ArrowError) -> Error {
        let context = context.into();
        move |source| Error::Arrow { context, source }
    }

    pub(crate) fn parquet(
        context: impl Into<String>,
    ) -> impl FnOnce(parquet::errors::ParquetError) -> Error {
        let context = context.into();
        move |source| Error::Parquet { context, source }
    }

    /// True when the user can fix it (a bad argument, an existing directory, a warehouse that
    /// does not cover the authorisation); false for runtime failures and damaged files.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::MissingYears { .. }
                | Error::OutExists(_)
                | Error::BadRecipient(..)
                | Error::UnsupportedCoding { .. }
                | Error::TooManyStrata(_)
        )
    }
}
