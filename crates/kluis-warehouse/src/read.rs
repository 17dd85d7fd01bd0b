//! Reading a warehouse: the manifest, the tables as streams of Arrow record batches, and a summary.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::error::{Error, Result};
use crate::layout::{MANIFEST, Manifest, PERSON_YEARS, PERSONS, year_dir};

/// Rows per record batch the readers yield.
pub const BATCH_ROWS: usize = 65_536;

/// An open warehouse directory.
#[derive(Debug, Clone)]
pub struct Warehouse {
    dir: PathBuf,
    manifest: Manifest,
}

/// A table's files, row count and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
}

/// What `kluis warehouse info` shows.
#[derive(Debug, Clone)]
pub struct WarehouseInfo {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub persons: TableInfo,
    /// Per year, counted from the Parquet footers (not copied from the manifest).
    pub person_years: BTreeMap<i32, TableInfo>,
    pub persons_schema: SchemaRef,
    pub person_years_schema: SchemaRef,
    /// Everything under the warehouse directory.
    pub total_bytes: u64,
}

impl Warehouse {
    /// Opens `dir` after checking its manifest.
    pub fn open(dir: impl AsRef<Path>) -> Result<Warehouse> {
        let dir = dir.as_ref().to_owned();
        let manifest = Manifest::read(&dir)?;
        Ok(Warehouse { dir, manifest })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The years with person-years, ascending.
    pub fn years(&self) -> &[i32] {
        &self.manifest.years
    }

    /// The persons table's file.
    pub fn persons_file(&self) -> PathBuf {
        self.dir.join(PERSONS)
    }

    /// The directory holding the `year=YYYY` partitions.
    pub fn person_years_dir(&self) -> PathBuf {
        self.dir.join(PERSON_YEARS)
    }

    /// The Parquet files of one year, in order.
    pub fn person_years_files(&self, year: i32) -> Result<Vec<PathBuf>> {
        if !self.manifest.years.contains(&year) {
            return Err(Error::NoSuchYear(year));
        }
        let dir = self.dir.join(year_dir(year));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(Error::io(&dir))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Every person, as record batches of the `persons` schema.
    pub fn persons_batches(&self) -> Result<Batches> {
        Batches::new(
            vec![self.persons_file()],
            kluis_model::schema::persons_schema(),
            "persons",
        )
    }

    /// The person-years of `year`, as record batches of the `person_years` schema.
    pub fn person_years_batches(&self, year: i32) -> Result<Batches> {
        Batches::new(
            self.person_years_files(year)?,
            kluis_model::schema::person_years_schema(),
            "person_years",
        )
    }

    /// Row counts, sizes and schemas.
    pub fn info(&self) -> Result<WarehouseInfo> {
        let persons = table_info(&[self.persons_file()])?;
        let mut person_years = BTreeMap::new();
        for &year in self.years() {
            person_years.insert(year, table_info(&self.person_years_files(year)?)?);
        }
        Ok(WarehouseInfo {
            dir: self.dir.clone(),
            manifest: self.manifest.clone(),
            persons,
            person_years,
            persons_schema: kluis_model::schema::persons_schema(),
            person_years_schema: kluis_model::schema::person_years_schema(),
            total_bytes: dir_size(&self.dir)?,
        })
    }

    /// The manifest file's path.
    pub fn manifest_file(&self) -> PathBuf {
        self.dir.join(MANIFEST)
    }
}

fn table_info(files: &[PathBuf]) -> Result<TableInfo> {
    let mut info = TableInfo {
        files: files.len(),
        rows: 0,
        bytes: 0,
    };
    for path in files {
        let file = File::open(path).map_err(Error::io(path))?;
        info.bytes += file.metadata().map_err(Error::io(path))?.len();
        let reader = SerializedFileReader::new(file).map_err(Error::parquet(path))?;
        info.rows += reader.metadata().file_metadata().num_rows() as u64;
    }
    Ok(info)
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let entry = entry.map_err(Error::io(dir))?;
        let meta = entry.metadata().map_err(Error::io(entry.path()))?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Record batches read from a table's files one after the other.
pub struct Batches {
    files: std::vec::IntoIter<PathBuf>,
    current: Option<(PathBuf, ParquetRecordBatchReader)>,
    /// The table's schema, which every file must have.
    schema: SchemaRef,
    /// The columns read, all when None.
    columns: Option<Vec<String>>,
    table: &'static str,
}

impl Batches {
    fn new(files: Vec<PathBuf>, schema: SchemaRef, table: &'static str) -> Result<Batches> {
        Ok(Batches {
            files: files.into_iter(),
            current: None,
            schema,
            columns: None,
            table,
        })
    }

    /// Reads only the named columns (in the table's order); the files are checked against the
    /// whole schema all the same.
    pub fn only(mut self, columns: &[&str]) -> Batches {
        self.columns = Some(columns.iter().map(|c| c.to_string()).collect());
        self
    }

    /// The schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        match &self.columns {
            None => self.schema.clone(),
            Some(names) => {
                let fields = self
                    .schema
                    .fields()
                    .iter()
                    .filter(|f| names.contains(f.name()))
                    .cloned()
                    .collect::<Vec<_>>();
                std::sync::Arc::new(arrow::datatypes::Schema::new(fields))
            }
        }
    }

    fn open_next(&mut self) -> Result<bool> {
        let Some(path) = self.files.next() else {
            return Ok(false);
        };
        let file = File::open(&path).map_err(Error::io(&path))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(Error::parquet(&path))?;
        if builder.schema().fields() != self.schema.fields() {
            let names = |s: &SchemaRef| {
                s.fields()
                    .iter()
                    .map(|f| format!("{} {}", f.name(), f.data_type()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(Error::Schema {
                path,
                table: self.table,
                found: names(builder.schema()),
                expected: names(&self.schema),
            });
        }
        let mask = match &self.columns {
            None => ProjectionMask::all(),
            Some(names) => {
                ProjectionMask::columns(builder.parquet_schema(), names.iter().map(String::as_str))
            }
        };
        let reader = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(Error::parquet(&path))?;
        self.current = Some((path, reader));
        Ok(true)
    }
}

impl Iterator for Batches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((path, reader)) = &mut self.current {
                match reader.next() {
                    Some(Ok(batch)) => return Some(Ok(batch)),
                    Some(Err(source)) => {
                        return Some(Err(Error::Arrow {
                            context: path.display().to_string(),
                            source,
                        }));
                    }
                    None => self.current = None,
                }
            }
            match self.open_next() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
