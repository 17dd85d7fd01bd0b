//! What the project and trust commands share: the global `--home` and `--as` options, the day
//! retention is judged on, and turning library errors into exit statuses.

use std::path::PathBuf;

use chrono::NaiveDate;
use kluis_project::{State, StateError};

use crate::exit::bad_input;

/// Options every subcommand accepts (clap `global`), passed to the commands that need them.
#[derive(clap::Args, Debug, Clone)]
pub struct Globals {
    /// The state directory [default: $XDG_DATA_HOME/kluis, else ~/.local/share/kluis].
    #[arg(long, global = true, env = "KLUIS_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Who is acting; the project's authorisation decides what they may do.
    #[arg(long = "as", global = true, env = "KLUIS_ACTOR", value_name = "NAME")]
    pub actor: Option<String>,
}

impl Globals {
    pub fn home(&self) -> anyhow::Result<PathBuf> {
        match &self.home {
            Some(home) => Ok(home.clone()),
            None => kluis_project::default_home().ok_or_else(|| {
                bad_input("no state directory: pass --home DIR or set KLUIS_HOME (neither XDG_DATA_HOME nor HOME is set)")
            }),
        }
    }

    /// The acting person; state-changing commands need one.
    pub fn actor(&self) -> anyhow::Result<&str> {
        match self.actor.as_deref().map(str::trim) {
            Some(actor) if !actor.is_empty() => Ok(actor),
            _ => Err(bad_input(
                "this command changes state, so say who is acting: --as NAME or KLUIS_ACTOR=NAME",
            )),
        }
    }

    pub fn open(&self) -> anyhow::Result<State> {
        State::open(&self.home()?).map_err(state_error)
    }
}

/// The day retention dates are judged on: today, or a later day given as `KLUIS_TODAY`
/// (YYYY-MM-DD) to rehearse what enforcement will do then. An earlier day is refused: turning the
/// clock back would reopen an expired project. A later one can only refuse more: destruction is
/// judged on the system clock (`kluis_project::real_today`), so a rehearsal destroys nothing.
pub fn today() -> anyhow::Result<NaiveDate> {
    let real = kluis_project::real_today();
    match std::env::var("KLUIS_TODAY") {
        Ok(text) if !text.is_empty() => {
            let day: NaiveDate = text.parse().map_err(|_| {
                bad_input(format!(
                    "KLUIS_TODAY={text:?} is not a date; write it as YYYY-MM-DD"
                ))
            })?;
            if day < real {
                return Err(bad_input(format!(
                    "KLUIS_TODAY={day} is in the past; it may only rehearse a later day, never reopen an expired project"
                )));
            }
            Ok(day)
        }
        _ => Ok(real),
    }
}

/// A library error for `anyhow`, as bad input (exit 2) when the user can fix it.
pub fn state_error(error: StateError) -> anyhow::Error {
    if error.is_user_error() {
        bad_input(error.to_string())
    } else {
        anyhow::Error::new(error)
    }
}
