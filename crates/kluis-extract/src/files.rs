//! The phase-1 delivery on disk: data files, codebook and manifest, written into a temporary
//! directory beside the target and renamed into place when complete; optionally age-encrypted;
//! and [`verify`], which re-checks the manifest's hashes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::Int32Type;
use kluis_model::codelists;
use kluis_project::Authorisation;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::coding::Columns;
use crate::coding::describe;
use crate::error::{Error, Result};
use crate::population::{AGE_RULE, CodedPopulation, QUALIFYING_RULE, STRATUM_RULE, Sample};
use crate::recode::{Search, least_loss_recoding};
use crate::risk::{self, RiskReport};

/// Re-coding judges each combination it tries against the whole population: at most this many.
const MAX_RECODING_TRIES: usize = 8;
use crate::{PSEUDONYM, STRATUM, YEAR};

pub const DATA_PARQUET: &str = "person_years.parquet";
pub const DATA_CSV: &str = "person_years.csv";
pub const CODEBOOK_MD: &str = "codebook.md";
pub const CODEBOOK_JSON: &str = "codebook.json";
pub const MANIFEST: &str = "manifest.json";
pub const RISK_JSON: &str = "risk.json";
const FORMAT: &str = "kluis-extract";
const FORMAT_VERSION: u32 = 1;

/// How to write an extract.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// The directory to create; it must not exist.
    pub out: PathBuf,
    pub seed: u64,
    /// An age X25519 public key (`age1...`): the data files are encrypted to it.
    pub recipient: Option<String>,
    /// `kluis <version>`, recorded in the manifest.
    pub kluis_version: String,
    /// RFC 3339 creation time, recorded in the manifest.
    pub created_at: String,
    /// Blank the quasi-identifiers that break the authorisation's k (local suppression).
    pub suppress: bool,
    /// Deliver quasi-identifiers in coarser codings, the combination that meets the risk limits
    /// with the least information lost (instead of suppression).
    pub recode: bool,
    /// Deliver even when a risk limit is exceeded, for this written reason.
    pub accept_risk: Option<String>,
}

/// A file of the extract as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    /// SHA-256 of the file as it is in the directory (the `.age` file when encrypted).
    pub sha256: String,
    /// For an encrypted file: SHA-256 of the decrypted contents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext_sha256: Option<String>,
}

/// A stratum as the manifest records it, with what researchers need to weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StratumSummary {
    pub name: String,
    pub employer_groups: Vec<String>,
    pub population_persons: u64,
    pub population_person_years: u64,
    pub sample_size_authorised: u32,
    pub sampled_persons: u64,
    /// sampled_persons / population_persons (each sampled person weighs its inverse).
    pub sampling_fraction: f64,
    pub rows: u64,
    pub rows_by_year: BTreeMap<i32, u64>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub authorisation: String,
    pub title: String,
    /// The receiving institution, from the authorisation.
    pub recipient: String,
    /// The age public key the data files are encrypted to; null when in the clear.
    pub age_recipient: Option<String>,
    pub kluis_version: String,
    pub seed: u64,
    pub created_at: String,
    pub first_year: i32,
    pub last_year: i32,
    pub age_rule: String,
    pub qualifying_rule: String,
    pub stratum_rule: String,
    pub strata: Vec<StratumSummary>,
    pub rows: u64,
    /// Every other file in the directory (not the manifest itself).
    pub files: Vec<FileEntry>,
}

/// What [`write_extract`] delivered.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub risk: RiskReport,
}

/// Checks an age recipient string, so a bad one is refused before any work.
pub fn parse_recipient(text: &str) -> Result<age::x25519::Recipient> {
    text.trim()
        .parse::<age::x25519::Recipient>()
        .map_err(|e| Error::BadRecipient(text.to_owned(), e.to_string()))
}

/// Writes the sampled persons' coded person-years with codebook and manifest into
/// `options.out`, all or nothing.
pub fn write_extract(
    authorisation: &Authorisation,
    population: &CodedPopulation,
    sample: &Sample,
    options: &ExtractOptions,
) -> Result<Delivered> {
    let recipient = options
        .recipient
        .as_deref()
        .map(parse_recipient)
        .transpose()?;
    let out = &options.out;
    if out.symlink_metadata().is_ok() {
        return Err(Error::OutExists(out.clone()));
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let sample_in = |columns: &Columns| -> Result<RecordBatch> {
        let mut batches = Vec::new();
        for year in population.years() {
            let compact = population.year_batch_of(year, Some(sample), columns)?;
            batches.push(columns.decode(&compact)?);
        }
        sorted(columns.schema(), &batches)
    };
    // Judge the risk before anything is written: a refusal leaves nothing behind.
    let limits = &authorisation.risk;
    let recoded;
    let (authorisation, data, mut risk) = if options.recode {
        match least_loss_recoding(population, authorisation, sample_in, MAX_RECODING_TRIES)? {
            Search::Found(recoding) => {
                let recoding = *recoding;
                recoded = recoding.authorisation;
                (&recoded, recoding.data, recoding.risk)
            }
            Search::NoneWithin { tried, candidates } => {
                return Err(Error::NoRecoding { tried, candidates });
            }
        }
    } else {
        let data = sample_in(population.columns())?;
        if options.suppress {
            let (data, report) = risk::suppress(population, &data, limits)?;
            (authorisation, data, report)
        } else {
            let report = risk::assess(population, &data, limits)?;
            (authorisation, data, report)
        }
    };
    if !risk.within_limits() {
        match &options.accept_risk {
            Some(reason) => risk.accepted_with_reason = Some(reason.clone()),
            None => {
                return Err(Error::RiskExceeded {
                    exceeded: risk.exceeded.clone(),
                });
            }
        }
    }

    let mut builder = tempfile::Builder::new();
    // It becomes the extract directory: 0700 (tempfile would make it 0777 less the umask).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let temp = builder
        .prefix(".extract-")
        .tempdir_in(&parent)
        .map_err(Error::io(&parent))?;
    let dir = temp.path();
    write_parquet(&dir.join(DATA_PARQUET), &data)?;
    write_csv(&dir.join(DATA_CSV), &data)?;
    let strata = summarise(population, sample, &data);
    let codebook = codebook_json(authorisation, &strata);
    write_text(
        &dir.join(CODEBOOK_JSON),
        &(serde_json::to_string_pretty(&codebook).expect("json") + "\n"),
    )?;
    write_text(&dir.join(CODEBOOK_MD), &codebook_md(&codebook))?;
    write_text(
        &dir.join(RISK_JSON),
        &(serde_json::to_string_pretty(&risk).expect("json") + "\n"),
    )?;

    let mut files = Vec::new();
    for name in [
        DATA_PARQUET,
        DATA_CSV,
        CODEBOOK_MD,
        CODEBOOK_JSON,
        RISK_JSON,
    ] {
        let path = dir.join(name);
        let plain = sha256_file(&path)?;
        let is_data = name == DATA_PARQUET || name == DATA_CSV;
        match (&recipient, is_data) {
            (Some(recipient), true) => {
                let sealed_name = format!("{name}.age");
                let sealed = dir.join(&sealed_name);
                encrypt(&path, &sealed, recipient)?;
                std::fs::remove_file(&path).map_err(Error::io(&path))?;
                files.push(FileEntry {
                    name: sealed_name,
                    bytes: len(&sealed)?,
                    sha256: sha256_file(&sealed)?,
                    plaintext_sha256: Some(plain),
                });
            }
            _ => files.push(FileEntry {
                name: name.to_owned(),
                bytes: len(&path)?,
                sha256: plain,
                plaintext_sha256: None,
            }),
        }
    }
    let p = &authorisation.population;
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        format_version: FORMAT_VERSION,
        authorisation: authorisation.id.clone(),
        title: authorisation.title.clone(),
        recipient: authorisation.recipient.name.clone(),
        age_recipient: recipient.as_ref().map(|r| r.to_string()),
        kluis_version: options.kluis_version.clone(),
        seed: options.seed,
        created_at: options.created_at.clone(),
        first_year: p.first_year,
        last_year: p.last_year,
        age_rule: AGE_RULE.to_owned(),
        qualifying_rule: QUALIFYING_RULE.to_owned(),
        stratum_rule: STRATUM_RULE.to_owned(),
        rows: data.num_rows() as u64,
        strata,
        files,
    };
    write_text(
        &dir.join(MANIFEST),
        &(serde_json::to_string_pretty(&manifest).expect("json") + "\n"),
    )?;
    let kept = temp.keep();
    if let Err(e) = std::fs::rename(&kept, out) {
        let _ = std::fs::remove_dir_all(&kept);
        return Err(if out.exists() {
            Error::OutExists(out.clone())
        } else {
            Error::io(out)(e)
        });
    }
    Ok(Delivered {
        dir: out.clone(),
        manifest,
        risk,
    })
}

/// All years in one batch, ordered by pseudonym then year.
fn sorted(schema: arrow::datatypes::SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let all = concat_batches(&schema, batches).map_err(Error::arrow("joining the years"))?;
    let keys = [PSEUDONYM, YEAR].map(|name| SortColumn {
        values: all.column_by_name(name).expect("own schema").clone(),
        options: None,
    });
    let order = lexsort_to_indices(&keys, None).map_err(Error::arrow("sorting"))?;
    take_record_batch(&all, &order).map_err(Error::arrow("sorting"))
}

fn summarise(
    population: &CodedPopulation,
    sample: &Sample,
    data: &RecordBatch,
) -> Vec<StratumSummary> {
    let stratum = data
        .column_by_name(STRATUM)
        .expect("own schema")
        .as_string::<i32>();
    let year = data
        .column_by_name(YEAR)
        .expect("own schema")
        .as_primitive::<Int32Type>();
    let mut counts: BTreeMap<&str, BTreeMap<i32, u64>> = BTreeMap::new();
    for row in 0..data.num_rows() {
        *counts
            .entry(stratum.value(row))
            .or_default()
            .entry(year.value(row))
            .or_default() += 1;
    }
    population
        .strata()
        .iter()
        .zip(&sample.strata)
        .map(|(s, picked)| {
            let rows_by_year = counts.get(s.name.as_str()).cloned().unwrap_or_default();
            StratumSummary {
                name: s.name.clone(),
                employer_groups: s
                    .employer_groups
                    .iter()
                    .map(|g| g.code().to_owned())
                    .collect(),
                population_persons: s.persons,
                population_person_years: s.person_years,
                sample_size_authorised: s.sample_size,
                sampled_persons: picked.len() as u64,
                sampling_fraction: if s.persons == 0 {
                    0.0
                } else {
                    picked.len() as f64 / s.persons as f64
                },
                rows: rows_by_year.values().sum(),
                rows_by_year,
            }
        })
        .collect()
}

/// The codebook: every column with its meaning, coding, type and (for codes) every code with
/// its label from the kluis-model code lists.
pub fn codebook_json(
    authorisation: &Authorisation,
    strata: &[StratumSummary],
) -> serde_json::Value {
    let mut variables = vec![
        json!({
            "name": PSEUDONYM, "type": "integer",
            "meaning": "the person's sequence number in this project: 1..N over the project's whole population, in an order that says nothing about the person; the same in every year",
        }),
        json!({ "name": YEAR, "type": "integer", "meaning": "calendar year of the person-year" }),
        json!({
            "name": STRATUM, "type": "string",
            "meaning": format!("sampling stratum of the person; {STRATUM_RULE}. Weight each person by 1 / sampling_fraction"),
            "codes": strata.iter().map(|s| json!({
                "code": s.name,
                "label": format!("employer groups {}", s.employer_groups.join(", ")),
                "population_persons": s.population_persons,
                "sampled_persons": s.sampled_persons,
                "sampling_fraction": s.sampling_fraction,
            })).collect::<Vec<_>>(),
        }),
    ];
    for (name, coding, list, meaning) in describe(authorisation) {
        let meaning = if name == "age" {
            format!("{meaning}; {AGE_RULE}")
        } else {
            meaning
        };
        let mut entry = json!({
            "name": name,
            "type": if list.is_some() { "string" } else { "integer" },
            "coding": coding,
            "meaning": meaning,
        });
        if let Some(list) = list.as_deref().and_then(codelists::get) {
            entry["codelist"] = json!(list.name);
            entry["codes"] = list
                .rows
                .iter()
                .map(|row| json!({ "code": row[0], "label": row[1] }))
                .collect();
        }
        variables.push(entry);
    }
    json!({
        "authorisation": authorisation.id,
        "title": authorisation.title,
        "period": [authorisation.population.first_year, authorisation.population.last_year],
        "population": QUALIFYING_RULE,
        "missing_values": "empty in CSV, null in Parquet: the fact is not recorded",
        "files": {
            DATA_PARQUET: "one row per person and year, ordered by pseudonym and year",
            DATA_CSV: "the same rows as CSV (UTF-8, comma-separated, header row); codes are text, read them as strings (e.g. R colClasses = \"character\", pandas dtype=str) to keep leading zeros",
        },
        "variables": variables,
    })
}

fn codebook_md(codebook: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    let mut md = format!(
        "# Codebook: extract under authorisation {}\n\n{}\n\nPeriod {}-{}. Population: {}.\n\nMissing values: {}.\n\n",
        s(&codebook["authorisation"]),
        s(&codebook["title"]),
        codebook["period"][0],
        codebook["period"][1],
        s(&codebook["population"]),
        s(&codebook["missing_values"]),
    );
    md.push_str("## Files\n\n");
    for (name, what) in codebook["files"].as_object().expect("object") {
        md.push_str(&format!("- `{name}`: {}\n", s(what)));
    }
    md.push_str("\n## Variables\n\n| column | type | coding | meaning |\n|---|---|---|---|\n");
    let variables = codebook["variables"].as_array().expect("array");
    for v in variables {
        md.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            s(&v["name"]),
            s(&v["type"]),
            v["coding"].as_str().unwrap_or(""),
            s(&v["meaning"]).replace('|', "/"),
        ));
    }
    for v in variables {
        let Some(codes) = v["codes"].as_array() else {
            continue;
        };
        md.push_str(&format!(
            "\n### `{}`\n\n| code | label |\n|---|---|\n",
            s(&v["name"])
        ));
        for c in codes {
            md.push_str(&format!(
                "| {} | {} |\n",
                s(&c["code"]),
                s(&c["label"]).replace('|', "/")
            ));
        }
    }
    md
}

/// Creates a file readable by its owner only, whatever the umask: an extract in the clear is
/// person data (the directory it is staged in is 0700 too).
fn private_file(path: &Path) -> Result<File> {
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

fn write_parquet(path: &Path, data: &RecordBatch) -> Result<()> {
    let file = private_file(path)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let context = path.display().to_string();
    let mut writer =
        ArrowWriter::try_new(file, data.schema(), Some(props)).map_err(Error::parquet(&context))?;
    writer.write(data).map_err(Error::parquet(&context))?;
    writer.close().map_err(Error::parquet(&context))?;
    Ok(())
}

fn write_csv(path: &Path, data: &RecordBatch) -> Result<()> {
    let file = private_file(path)?;
    let mut writer = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(BufWriter::new(file));
    writer
        .write(data)
        .map_err(Error::arrow(path.display().to_string()))?;
    let mut inner = writer.into_inner();
    inner.flush().map_err(Error::io(path))?;
    Ok(())
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    private_file(path)?
        .write_all(text.as_bytes())
        .map_err(Error::io(path))
}

fn encrypt(plain: &Path, sealed: &Path, recipient: &age::x25519::Recipient) -> Result<()> {
    let fail = |reason: String| Error::Encrypt {
        path: plain.to_owned(),
        reason,
    };
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
            .map_err(|e| fail(e.to_string()))?;
    let output = BufWriter::new(private_file(sealed)?);
    let mut writer = encryptor.wrap_output(output).map_err(Error::io(sealed))?;
    let mut input = File::open(plain).map_err(Error::io(plain))?;
    std::io::copy(&mut input, &mut writer).map_err(Error::io(sealed))?;
    writer
        .finish()
        .and_then(|mut w| w.flush())
        .map_err(Error::io(sealed))?;
    Ok(())
}

fn len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path).map_err(Error::io(path))?.len())
}

/// SHA-256 of a file, hex.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(Error::io(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer).map_err(Error::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// What [`verify`] found: every listed file matched.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    /// Files in the directory the manifest does not list (e.g. decrypted copies).
    pub unlisted: Vec<String>,
}

/// Re-checks every file the manifest of `dir` lists against its SHA-256.
pub fn verify(dir: &Path) -> Result<Verified> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(Error::io(&path))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| Error::BadManifest {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if manifest.format != FORMAT {
        return Err(Error::BadManifest {
            path,
            reason: format!("format is {:?}, not {FORMAT:?}", manifest.format),
        });
    }
    for entry in &manifest.files {
        let file = dir.join(&entry.name);
        if entry.name.contains('/') || !file.is_file() {
            return Err(Error::MissingFile {
                dir: dir.to_owned(),
                file: entry.name.clone(),
            });
        }
        let found = sha256_file(&file)?;
        if found != entry.sha256 {
            return Err(Error::HashMismatch {
                dir: dir.to_owned(),
                file: entry.name.clone(),
                found,
                expected: entry.sha256.clone(),
            });
        }
    }
    let mut unlisted = Vec::new();
    for item in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let name = item
            .map_err(Error::io(dir))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name != MANIFEST && !manifest.files.iter().any(|f| f.name == name) {
            unlisted.push(name);
        }
    }
    unlisted.sort();
    Ok(Verified { manifest, unlisted })
}
