//! kluis-synth: a synthetic, calibrated Belgian employee population written as a kluis
//! warehouse, and the calibration report that compares it with its targets.
//!
//! The population is drawn in chunks of persons, each from its own seeded random stream, on
//! worker threads; a writer puts the chunks in order, so the files depend only on the seed, the
//! calibration and the number of persons — not on the threads. Memory holds a few chunks at a
//! time, never the whole population.

pub mod chunk;
pub mod config;
pub mod plan;
pub mod report;
pub mod stats;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;

use kluis_warehouse::{Manifest, Source, WarehouseWriter};

pub use config::{Calibration, ConfigError};
pub use report::Report;

use chunk::{Chunk, Generator, plan_rng};
use plan::Plan;
use stats::Stats;

/// The name of the calibration report in the warehouse directory.
pub const REPORT_FILE: &str = "calibration.json";

/// At most this many chunks: each owns 499/chunks INSZ serials per birth date and sex.
const MAX_CHUNKS: u64 = 48;
/// At least this many persons per chunk (below that, fewer chunks).
const MIN_CHUNK: u64 = 10_000;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Distinct persons.
    pub persons: u64,
    pub seed: u64,
    pub calibration: Calibration,
    /// Threads drawing persons (the writer has its own).
    pub threads: usize,
}

/// What was generated.
#[derive(Debug, Clone)]
pub struct Generated {
    pub manifest: Manifest,
    pub report: Report,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("the calibration cannot be met: {0}")]
    Calibration(String),
    #[error(transparent)]
    Warehouse(#[from] kluis_warehouse::Error),
}

/// How the persons are split into chunks: (number of chunks, persons per chunk).
pub fn chunking(persons: u64) -> (u64, u64) {
    let chunks = persons.div_ceil(MIN_CHUNK).clamp(1, MAX_CHUNKS);
    (chunks, persons.div_ceil(chunks).max(1))
}

/// Generates a population into a new warehouse at `warehouse` (replacing the one there).
/// `progress` is told the persons done and the total as chunks are written.
pub fn generate(
    warehouse: &Path,
    options: &GenerateOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Generated, GenerateError> {
    let calibration = &options.calibration;
    let plan = Plan::new(calibration, options.persons, &mut plan_rng(options.seed))
        .map_err(GenerateError::Calibration)?;
    let generator = Generator::new(&plan);
    let (chunks, size) = chunking(options.persons);
    let workers = options.threads.max(1);
    let mut sink = WarehouseWriter::create(warehouse)?.into_background(2);
    let mut stats = Stats::new(plan.first_year, plan.years());

    let next = AtomicUsize::new(0);
    // A worker holds a permit while it makes a chunk; permits come back as chunks are written,
    // which bounds how far the workers run ahead of the writer.
    let (permit_tx, permit_rx) = sync_channel::<()>(workers + 2);
    for _ in 0..workers + 2 {
        permit_tx.send(()).expect("room for every permit");
    }
    let permits = Mutex::new(permit_rx);
    std::thread::scope(|scope| -> Result<(), GenerateError> {
        // Owned here, so an early return closes it and wakes workers waiting for a permit.
        let permit_tx = permit_tx;
        let (done_tx, done_rx) = sync_channel::<(usize, Chunk)>(workers);
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let (next, permits, generator) = (&next, &permits, &generator);
            let seed = options.seed;
            let total = options.persons;
            scope.spawn(move || {
                loop {
                    if permits.lock().expect("permit lock").recv().is_err() {
                        return;
                    }
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index as u64 >= chunks {
                        return;
                    }
                    let start = index as u64 * size;
                    let range = start..(start + size).min(total);
                    let chunk = generator.chunk(seed, index, chunks as usize, range);
                    if done_tx.send((index, chunk)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut pending = BTreeMap::new();
        let mut written = 0usize;
        let mut persons_done = 0u64;
        for (index, chunk) in done_rx {
            pending.insert(index, chunk);
            while let Some(chunk) = pending.remove(&written) {
                persons_done += chunk.stats.persons;
                sink.write_persons(chunk.persons)?;
                for (year, batch) in chunk.years {
                    sink.write_person_years(year, batch)?;
                }
                stats.merge(chunk.stats);
                written += 1;
                progress(persons_done, options.persons);
                // The workers may all have finished: a permit nobody takes is fine.
                let _ = permit_tx.try_send(());
            }
        }
        Ok(())
    })?;

    let report = Report::new(calibration, &plan, &stats, options.seed);
    let mut writer = sink.finish()?;
    let mut json = serde_json::to_vec_pretty(&report).expect("report serialises");
    json.push(b'\n');
    writer.add_file(REPORT_FILE, &json)?;
    let manifest = writer.commit(Source::Generated {
        seed: options.seed,
        persons_requested: options.persons,
        calibration: calibration.name.clone(),
        calibration_sha256: calibration.sha256.clone(),
    })?;
    Ok(Generated { manifest, report })
}
