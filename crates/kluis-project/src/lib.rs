//! kluis-project: authorisations as code, the state directory, projects, actors and roles, and
//! retention. Later crates open the state with [`State::open`], look up a project with
//! [`State::project`], and act only through a [`Grant`] that [`Project::authorise`] gives after
//! checking the retention date and the actor's role.

pub mod authorisation;
pub mod variables;

pub use authorisation::{Authorisation, CheckError, Problem, Role};
