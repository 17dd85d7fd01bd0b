//! kluis-project: authorisations as code, the state directory, projects, actors and roles, and
//! retention. Later crates open the state with [`State::open`], look up a project with
//! [`State::project`], and act only through a [`Grant`] that [`Project::authorise`] gives after
//! checking the retention date and the actor's role (refusals are audited).

pub mod authorisation;
mod evidence;
mod project;
mod retention;
mod state;
pub mod variables;

use chrono::NaiveDate;

pub use authorisation::{Authorisation, CheckError, Problem, RiskLimits, Role};
pub use evidence::{PROVIDER_FILES, VOUCHED_FILES};
pub use project::{Grant, Project, Usage};
pub use retention::{Destruction, Enforcement, LeftForSteward, real_today};
pub use state::{ProjectRecord, RulesFile, SYSTEM_ROLE, State, Status, default_home};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "no kluis state directory at {home}: run `kluis init` there first, or point --home / KLUIS_HOME at an existing one"
    )]
    NotInitialised { home: String },
    #[error(
        "{home} is already a kluis state directory; kluis init never overwrites a master key (that would lose every project key)"
    )]
    AlreadyInitialised { home: String },
    #[error(
        "the master key file {path} is readable by others (mode {mode:o}); make it private with `chmod 600 {path}`"
    )]
    MasterKeyExposed { path: String, mode: u32 },
    #[error("the master key file {path} is not 32 bytes: it is damaged or not a kluis master key")]
    MasterKeyCorrupt { path: String },
    #[error("no project {id}; the projects are: {}", if known.is_empty() { "none yet (kluis project create)".to_owned() } else { known.join(", ") })]
    UnknownProject { id: String, known: Vec<String> },
    #[error("project {id} is already registered and active; `kluis project show {id}` shows it")]
    ProjectExists { id: String },
    #[error("refused: {actor} may not {action} in project {project}: {reason}")]
    Refused {
        actor: String,
        action: String,
        project: String,
        reason: String,
    },
    #[error(
        "refused: the retention date of project {project}, {until}, has passed; nothing may be extracted, run or released under it any more (only an extension decision added to the authorisation can change that)"
    )]
    Expired { project: String, until: NaiveDate },
    #[error(
        "refused: project {project} was destroyed on {on} because its retention date, {until}, had passed"
    )]
    Destroyed {
        project: String,
        until: NaiveDate,
        on: NaiveDate,
    },
    #[error(
        "project {project} has no key in the key store (it was destroyed, or the database was edited)"
    )]
    KeyMissing { project: String },
    #[error("the state database is inconsistent: {0}")]
    Corrupt(String),
    /// The state was changed outside kluis: every command it concerns stops.
    #[error("tampering detected: {what}")]
    Tampered { what: String },
    #[error(transparent)]
    Authorisation(#[from] CheckError),
    #[error(transparent)]
    Audit(#[from] kluis_audit::AuditError),
    #[error(transparent)]
    Pseudo(#[from] kluis_pseudo::PseudoError),
    #[error("state database: {0}")]
    Sql(rusqlite::Error),
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
}

impl StateError {
    /// Whether the user can fix this by changing what they asked (exit status 2), rather than
    /// something failing underneath (exit status 1).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            StateError::NotInitialised { .. }
                | StateError::AlreadyInitialised { .. }
                | StateError::MasterKeyExposed { .. }
                | StateError::UnknownProject { .. }
                | StateError::ProjectExists { .. }
                | StateError::Refused { .. }
                | StateError::Expired { .. }
                | StateError::Destroyed { .. }
                | StateError::Authorisation(_)
        )
    }
}

// By hand rather than `#[from]`: the message already includes the cause, and anyhow's `{:#}`
// would print a `source` a second time.
impl From<rusqlite::Error> for StateError {
    fn from(error: rusqlite::Error) -> Self {
        StateError::Sql(error)
    }
}
