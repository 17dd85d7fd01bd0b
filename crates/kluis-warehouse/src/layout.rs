//! The on-disk layout of a warehouse directory and its manifest, `warehouse.json`.
//!
//! ```text
//! WAREHOUSE/
//!   warehouse.json                               manifest (format version, years, row counts, origin)
//!   persons.parquet                              one row per person
//!   person_years/year=YYYY/part-NNNNN.parquet    one row per person and year, one directory per year
//!   calibration.json                             generated warehouses only: the calibration report
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The manifest's file name.
pub const MANIFEST: &str = "warehouse.json";
/// The persons table's file name.
pub const PERSONS: &str = "persons.parquet";
/// The directory holding the year partitions of the person-years table.
pub const PERSON_YEARS: &str = "person_years";
/// Format written and read by this version.
pub const FORMAT_VERSION: u32 = 1;
/// The `format` field of every manifest.
pub const FORMAT_NAME: &str = "kluis-warehouse";

/// The directory of one year's partition, relative to the warehouse.
pub fn year_dir(year: i32) -> PathBuf {
    Path::new(PERSON_YEARS).join(format!("year={year}"))
}

/// The name of the `n`-th part file of a partition.
pub fn part_name(n: usize) -> String {
    format!("part-{n:05}.parquet")
}

/// Where a warehouse's data came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// Made by the synthetic generator.
    Generated {
        seed: u64,
        /// Distinct persons asked for.
        persons_requested: u64,
        /// Name of the calibration file (`default` for the embedded one).
        calibration: String,
        /// SHA-256 of the calibration file's text.
        calibration_sha256: String,
    },
    /// Loaded by `kluis ingest`.
    Ingested {
        persons_file: String,
        person_years_file: String,
        /// Rows left out because they were bad (only with a reject file).
        rejected_rows: u64,
    },
}

/// The contents of `warehouse.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always `kluis-warehouse`.
    pub format: String,
    pub format_version: u32,
    /// The years that have person-years, ascending.
    pub years: Vec<i32>,
    /// Rows of `persons`.
    pub persons: u64,
    /// Rows of `person_years` per year.
    pub person_years: BTreeMap<i32, u64>,
    /// `kluis-warehouse <version>`.
    pub created_by: String,
    /// UTC creation time, RFC 3339.
    pub created_at: String,
    pub source: Source,
}

impl Manifest {
    /// Reads and checks `DIR/warehouse.json`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotAWarehouse(dir.to_owned()));
            }
            Err(e) => return Err(Error::io(&path)(e)),
        };
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| Error::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if manifest.format != FORMAT_NAME || manifest.format_version != FORMAT_VERSION {
            return Err(Error::Manifest {
                path,
                reason: format!(
                    "format {} version {}; this kluis reads {FORMAT_NAME} version {FORMAT_VERSION}",
                    manifest.format, manifest.format_version
                ),
            });
        }
        Ok(manifest)
    }

    /// Total person-year rows.
    pub fn person_year_rows(&self) -> u64 {
        self.person_years.values().sum()
    }
}
