//! Writing a warehouse: everything goes into a hidden temporary directory beside the target, which
//! replaces the target in one atomic step on [`WarehouseWriter::commit`]. Until then the previous
//! warehouse (if any) is untouched; dropping the writer, an error or an interruption leaves it so.
//!
//! The warehouse holds INSZ numbers: its directories are 0700 and its files 0600, whatever the
//! umask. One writer at a time holds a lock beside the target, so the staging directories of a
//! killed writer are recognised and removed by the next one.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::error::{Error, Result};
use crate::layout::{
    FORMAT_NAME, FORMAT_VERSION, MANIFEST, Manifest, PERSONS, Source, part_name, year_dir,
};

/// Parquet writer settings of every warehouse file. Fixed, and free of timestamps, so the same
/// rows in the same order always give the same bytes.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        // INSZ values are (nearly) unique: a dictionary would only be built to be thrown away.
        .set_column_dictionary_enabled(ColumnPath::from(kluis_model::schema::persons::INSZ), false)
        .set_max_row_group_row_count(Some(1 << 20))
        // Values go to the encoders 8,192 at a time rather than 1,024: an eighth of the per-batch
        // work (writing is the largest part of an ingest), pages of at most ~28,000 rows instead
        // of ~21,000.
        .set_write_batch_size(8192)
        .build()
}

/// One Parquet file being written.
struct FileWriter {
    path: PathBuf,
    writer: ArrowWriter<File>,
    rows: u64,
}

/// Creates `dir` and its missing parents 0700.
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(Error::io(dir))
}

/// Creates (or truncates) a file readable by its owner only, whatever the umask.
pub(crate) fn private_file(path: &Path) -> Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(Error::io(path))?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(Error::io(path))?;
    Ok(file)
}

impl FileWriter {
    fn create(path: PathBuf, schema: SchemaRef) -> Result<FileWriter> {
        if let Some(dir) = path.parent() {
            private_dir(dir)?;
        }
        let file = private_file(&path)?;
        let writer = ArrowWriter::try_new(file, schema, Some(writer_properties()))
            .map_err(Error::parquet(&path))?;
        Ok(FileWriter {
            path,
            writer,
            rows: 0,
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer
            .write(batch)
            .map_err(Error::parquet(&self.path))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Writes the footer and makes the file durable.
    fn finish(mut self) -> Result<u64> {
        self.writer.finish().map_err(Error::parquet(&self.path))?;
        self.writer.sync().map_err(Error::io(&self.path))?;
        self.writer
            .inner()
            .sync_all()
            .map_err(Error::io(&self.path))?;
        Ok(self.rows)
    }
}

/// The files of a warehouse being written (or of the share of them one thread writes).
#[derive(Default)]
struct Parts {
    dir: PathBuf,
    persons: Option<FileWriter>,
    years: BTreeMap<i32, FileWriter>,
}

fn check_schema(
    path: &Path,
    table: &'static str,
    expected: &SchemaRef,
    batch: &RecordBatch,
) -> Result<()> {
    let found = batch.schema();
    if found.fields() == expected.fields() {
        return Ok(());
    }
    let describe = |s: &SchemaRef| {
        s.fields()
            .iter()
            .map(|f| {
                format!(
                    "{} {}{}",
                    f.name(),
                    f.data_type(),
                    if f.is_nullable() { "" } else { " not null" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(Error::Schema {
        path: path.to_owned(),
        table,
        found: describe(&found),
        expected: describe(expected),
    })
}

impl Parts {
    fn write_persons(&mut self, batch: &RecordBatch) -> Result<()> {
        let schema = kluis_model::schema::persons_schema();
        let path = self.dir.join(PERSONS);
        check_schema(&path, "persons", &schema, batch)?;
        if self.persons.is_none() {
            self.persons = Some(FileWriter::create(path, schema)?);
        }
        self.persons.as_mut().expect("just created").write(batch)
    }

    fn write_person_years(&mut self, year: i32, batch: &RecordBatch) -> Result<()> {
        let schema = kluis_model::schema::person_years_schema();
        let path = self.dir.join(year_dir(year)).join(part_name(0));
        check_schema(&path, "person_years", &schema, batch)?;
        let file = match self.years.entry(year) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(FileWriter::create(path, schema)?)
            }
        };
        file.write(batch)
    }

    fn merge(&mut self, other: Parts) {
        if other.persons.is_some() {
            self.persons = other.persons;
        }
        self.years.extend(other.years);
    }
}

/// Builds a new warehouse beside `target` and swaps it in on [`commit`](Self::commit).
pub struct WarehouseWriter {
    target: PathBuf,
    tmp: tempfile::TempDir,
    parts: Parts,
    /// Held until the writer is done: no other writer builds beside the same target meanwhile.
    _lock: File,
}

/// Takes the lock beside the target (`.NAME.kluis-lock`), then removes the staging directories
/// (`.NAME.kluis-tmp-*`) a killed writer left: with the lock held, none is in use.
fn lock_and_clean(parent: &Path, name: &str) -> Result<File> {
    let path = parent.join(format!(".{name}.kluis-lock"));
    let lock = private_file(&path)?;
    #[cfg(target_os = "linux")]
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| Error::Busy(parent.join(name)))?;
    let prefix = format!(".{name}.kluis-tmp-");
    for entry in std::fs::read_dir(parent).map_err(Error::io(parent))? {
        let entry = entry.map_err(Error::io(parent))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix)
            && entry.file_type().map_err(Error::io(entry.path()))?.is_dir()
        {
            std::fs::remove_dir_all(entry.path()).map_err(Error::io(entry.path()))?;
        }
    }
    Ok(lock)
}

/// Whether `dir` may be replaced: absent, empty, or a kluis warehouse.
fn check_replaceable(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dir)(e)),
        Ok(mut entries) => {
            if entries.next().is_none() || dir.join(MANIFEST).is_file() {
                Ok(())
            } else {
                Err(Error::NotReplaceable(dir.to_owned()))
            }
        }
    }
}

impl WarehouseWriter {
    /// Starts a warehouse that will replace `target` (absent, empty, or a kluis warehouse).
    pub fn create(target: &Path) -> Result<WarehouseWriter> {
        check_replaceable(target)?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "warehouse".into());
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(Error::io(&parent))?;
        let lock = lock_and_clean(&parent, &name)?;
        let mut builder = tempfile::Builder::new();
        // It becomes the warehouse: 0700 (tempfile would make it 0777 less the umask).
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let tmp = builder
            .prefix(&format!(".{name}.kluis-tmp-"))
            .tempdir_in(&parent)
            .map_err(Error::io(&parent))?;
        let parts = Parts {
            dir: tmp.path().to_owned(),
            ..Parts::default()
        };
        Ok(WarehouseWriter {
            target: target.to_owned(),
            tmp,
            parts,
            _lock: lock,
        })
    }

    /// The temporary directory being filled (it disappears on commit or drop).
    pub fn temp_dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Appends rows to `persons`.
    pub fn write_persons(&mut self, batch: &RecordBatch) -> Result<()> {
        self.parts.write_persons(batch)
    }

    /// Appends rows to the person-years of `year` (every row must have that year).
    pub fn write_person_years(&mut self, year: i32, batch: &RecordBatch) -> Result<()> {
        self.parts.write_person_years(year, batch)
    }

    /// Adds a file (a report) to the warehouse directory.
    pub fn add_file(&mut self, name: &str, contents: &[u8]) -> Result<()> {
        let path = self.tmp.path().join(name);
        std::io::Write::write_all(&mut private_file(&path)?, contents).map_err(Error::io(&path))
    }

    /// Moves the writing to `threads` background threads, each owning some of the files: the
    /// caller keeps producing while the Parquet encoding runs beside it.
    pub fn into_background(mut self, threads: usize) -> BackgroundWriter {
        let threads = threads.max(1);
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let mut parts = if i == 0 {
                std::mem::take(&mut self.parts)
            } else {
                Parts::default()
            };
            parts.dir = self.tmp.path().to_owned();
            let (tx, rx) = sync_channel::<Message>(2);
            let handle = std::thread::Builder::new()
                .name(format!("warehouse-writer-{i}"))
                .spawn(move || {
                    for message in rx {
                        match message {
                            Message::Persons(batch) => parts.write_persons(&batch)?,
                            Message::PersonYears(year, batch) => {
                                parts.write_person_years(year, &batch)?
                            }
                        }
                    }
                    Ok(parts)
                })
                .expect("spawn writer thread");
            workers.push(Worker {
                tx: Some(tx),
                handle: Some(handle),
            });
        }
        BackgroundWriter {
            writer: self,
            workers,
        }
    }

    /// Closes every file, writes the manifest and atomically replaces the target directory.
    pub fn commit(self, source: Source) -> Result<Manifest> {
        let WarehouseWriter {
            target,
            tmp,
            parts,
            _lock,
        } = self;
        let persons = match parts.persons {
            Some(file) => file.finish()?,
            None => {
                // An empty population still gets a readable, empty persons table.
                let mut empty = FileWriter::create(
                    tmp.path().join(PERSONS),
                    kluis_model::schema::persons_schema(),
                )?;
                empty.write(&RecordBatch::new_empty(
                    kluis_model::schema::persons_schema(),
                ))?;
                empty.finish()?
            }
        };
        let mut person_years = BTreeMap::new();
        for (year, file) in parts.years {
            person_years.insert(year, file.finish()?);
        }
        let manifest = Manifest {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            years: person_years.keys().copied().collect(),
            persons,
            person_years,
            created_by: concat!("kluis-warehouse ", env!("CARGO_PKG_VERSION")).into(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            source,
        };
        let path = tmp.path().join(MANIFEST);
        let mut json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        json.push(b'\n');
        std::io::Write::write_all(&mut private_file(&path)?, &json).map_err(Error::io(&path))?;
        sync_dir(tmp.path())?;
        check_replaceable(&target)?;
        replace(tmp, &target)?;
        Ok(manifest)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(dir))
}

/// Puts the finished directory `tmp` at `target`. With a previous warehouse there, the two are
/// exchanged in one step (Linux `renameat2(RENAME_EXCHANGE)`) and the old one, now at the
/// temporary path, is deleted with it.
fn replace(tmp: tempfile::TempDir, target: &Path) -> Result<()> {
    if !target.exists() {
        std::fs::rename(tmp.path(), target).map_err(Error::io(target))?;
        // The directory now lives at `target`: nothing to clean up.
        let _ = tmp.keep();
    } else {
        exchange(tmp.path(), target)?;
        // `tmp` now holds the previous warehouse: dropping it deletes it.
        drop(tmp);
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE)
        .map_err(|e| Error::io(b)(std::io::Error::from(e)))
}

/// Without an atomic exchange: move the old one aside, move the new one in, and put the old one
/// back if that fails. The old one is kept until the new one is in place.
#[cfg(not(target_os = "linux"))]
fn exchange(a: &Path, b: &Path) -> Result<()> {
    let aside = a.with_extension("old");
    std::fs::rename(b, &aside).map_err(Error::io(b))?;
    if let Err(e) = std::fs::rename(a, b) {
        let _ = std::fs::rename(&aside, b);
        return Err(Error::io(b)(e));
    }
    std::fs::rename(&aside, a).map_err(Error::io(a))
}

enum Message {
    Persons(RecordBatch),
    PersonYears(i32, RecordBatch),
}

struct Worker {
    tx: Option<SyncSender<Message>>,
    handle: Option<JoinHandle<Result<Parts>>>,
}

impl Worker {
    /// Waits for the thread; its error if it failed.
    fn join(&mut self) -> Result<Option<Parts>> {
        self.tx = None;
        match self.handle.take() {
            Some(handle) => match handle.join() {
                Ok(result) => result.map(Some),
                Err(panic) => std::panic::resume_unwind(panic),
            },
            None => Ok(None),
        }
    }
}

/// A [`WarehouseWriter`] whose files are written by background threads.
pub struct BackgroundWriter {
    writer: WarehouseWriter,
    workers: Vec<Worker>,
}

impl BackgroundWriter {
    fn send(&mut self, index: usize, message: Message) -> Result<()> {
        let worker = &mut self.workers[index];
        let sent = worker
            .tx
            .as_ref()
            .map(|tx| tx.send(message).is_ok())
            .unwrap_or(false);
        if sent {
            return Ok(());
        }
        // The thread stopped: it can only have stopped on an error.
        worker.join()?;
        Err(Error::Io {
            path: self.writer.temp_dir().to_owned(),
            source: std::io::Error::other("warehouse writer thread stopped"),
        })
    }

    /// Appends rows to `persons`.
    pub fn write_persons(&mut self, batch: RecordBatch) -> Result<()> {
        self.send(0, Message::Persons(batch))
    }

    /// Appends rows to the person-years of `year`.
    pub fn write_person_years(&mut self, year: i32, batch: RecordBatch) -> Result<()> {
        let index = year.rem_euclid(self.workers.len() as i32) as usize;
        self.send(index, Message::PersonYears(year, batch))
    }

    /// Waits for every write and gives the writer back, ready to commit.
    pub fn finish(mut self) -> Result<WarehouseWriter> {
        let mut first_error = None;
        for worker in &mut self.workers {
            match worker.join() {
                Ok(Some(parts)) => self.writer.parts.merge(parts),
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(self.writer),
        }
    }
}
