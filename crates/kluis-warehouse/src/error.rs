use std::path::PathBuf;

/// What can go wrong reading or writing a warehouse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("{context}: {source}")]
    Arrow {
        context: String,
        source: arrow::error::ArrowError,
    },
    #[error("{} is not a kluis warehouse: it has no warehouse.json", .0.display())]
    NotAWarehouse(PathBuf),
    #[error(
        "refusing to replace {}: it is neither empty nor a kluis warehouse (no warehouse.json)",
        .0.display()
    )]
    NotReplaceable(PathBuf),
    #[error("{}: bad warehouse.json: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },
    #[error("{}: columns {found} do not match the {table} schema ({expected})", path.display())]
    Schema {
        path: PathBuf,
        table: &'static str,
        found: String,
        expected: String,
    },
    #[error("the warehouse has no person-years for year {0}")]
    NoSuchYear(i32),
    #[error(
        "another kluis is writing {} right now; wait for it to finish",
        .0.display()
    )]
    Busy(PathBuf),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    pub(crate) fn parquet(
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(parquet::errors::ParquetError) -> Error {
        let path = path.into();
        move |source| Error::Parquet { path, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
