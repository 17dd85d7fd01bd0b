//! The page `kluis report` writes: one self-contained HTML file (inline CSS and SVG, no external
//! resources) with a project, its authorisation and retention date, every released table with its
//! withheld cells and their reasons, charts of the released series over the years, and a summary
//! of the project's audit trail.
//!
//! It holds released material only: [`read_released`] reads what `kluis output release` wrote
//! into the project's `released/` directory (no true values, unit counts or persons), and the
//! audit summary carries counts and times, never an entry's details.

mod chart;
mod html;
mod released;

pub use html::escape;
pub use released::{CellStatus, ReleasedCell, ReleasedTable, read_released};

/// The margin value of a dimension in released tables (a cell summed over that dimension).
pub const TOTAL: &str = "Total";

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub project: ProjectSummary,
    /// The released tables, in output id order.
    pub tables: Vec<ReleasedTable>,
    pub audit: AuditSummary,
    /// When the page was made (RFC 3339) and by whom.
    pub generated_at: String,
    pub generated_by: String,
}

/// The project and the authorisation it runs under.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectSummary {
    /// `99-001`.
    pub id: String,
    pub name: String,
    pub purpose: String,
    /// `active`, `expired` or `destroyed` on the day the page was made.
    pub status: String,
    pub authorisation: AuthorisationSummary,
    pub retention: RetentionSummary,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthorisationSummary {
    /// `99/001`.
    pub id: String,
    /// The date of the deliberation (YYYY-MM-DD).
    pub date: String,
    pub title: String,
    pub provider: String,
    pub recipient: String,
    pub partners: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetentionSummary {
    /// The retention date in force (YYYY-MM-DD).
    pub until: String,
    /// Where the authorisation sets the original date.
    pub reference: String,
    /// Extension decisions, in order.
    pub extensions: Vec<Extension>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Extension {
    pub until: String,
    pub date: String,
    pub reference: String,
}

/// The project's audit trail in figures.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSummary {
    /// Entries about this project.
    pub entries: u64,
    /// Time of the first and last of them (RFC 3339).
    pub first: Option<String>,
    pub last: Option<String>,
    /// Per action: how many entries and who acted, by action name.
    pub actions: Vec<ActionCount>,
    /// Whether the whole log's chain verifies.
    pub chain: Chain,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActionCount {
    pub action: String,
    pub entries: u64,
    /// The distinct actors, sorted.
    pub actors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Chain {
    /// The whole log (every project) verified with this many entries.
    Intact { entries: u64 },
    /// It does not verify: why, naming the first bad entry.
    Broken { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// A released file that is not what `kluis output release` writes.
    #[error("{path}: {what}")]
    Released { path: String, what: String },
    #[error("the chart of released table {output} could not be drawn: {message}")]
    Chart { output: String, message: String },
}

/// The whole page.
pub fn page(report: &Report) -> Result<String, ReportError> {
    html::page(report)
}
