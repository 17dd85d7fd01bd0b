//! Which disclosure rule set a project checks its outputs with. It is decided once, when the
//! steward registers the project: a built-in set the authorisation names, or a file the steward
//! gives explicitly (`--rules FILE`), which is then sealed into the project. Nothing is looked up
//! by name in the working directory, and a later change to the file changes nothing.

use std::path::Path;

use kluis_project::{Authorisation, Project, RulesFile};
use kluis_sdc::RuleSet;

use crate::exit::bad_input;

/// The rule set file to seal into a project registered for `authorisation`: `None` when it names
/// a built-in set, the steward's `file` when it does not. Refused when a non-built-in set comes
/// without a file, when a file comes for a built-in set, or when the file's rule set does not
/// bear the name the authorisation gives.
pub fn for_registration(
    authorisation: &Authorisation,
    file: Option<&Path>,
) -> anyhow::Result<Option<RulesFile>> {
    let name = &authorisation.disclosure.rules;
    let rules = match (RuleSet::builtin(name), file) {
        (Some(_), None) => None,
        (Some(_), Some(file)) => {
            return Err(bad_input(format!(
                "authorisation {} names the built-in rule set `{name}`; --rules {} is only for an authorisation naming a rule set kluis does not have",
                authorisation.id,
                file.display()
            )));
        }
        (None, None) => {
            return Err(bad_input(format!(
                "authorisation {} names the rule set `{name}`, which is not built in (built in: default); the steward gives its file explicitly with --rules FILE, and it is sealed into the project",
                authorisation.id
            )));
        }
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| bad_input(format!("--rules {}: {e}", file.display())))?;
            let rules = RuleSet::from_toml_str(&text)
                .map_err(|e| bad_input(format!("--rules {}: {}", file.display(), e)))?;
            if &rules.name != name {
                return Err(bad_input(format!(
                    "--rules {}: the file's rule set is named `{}`, but authorisation {} names `{name}`",
                    file.display(),
                    rules.name,
                    authorisation.id
                )));
            }
            Some(RulesFile {
                file: file.display().to_string(),
                text,
            })
        }
    };
    with_overrides(authorisation, base(authorisation, rules.as_ref())?)?;
    Ok(rules)
}

/// The named set: the sealed file's, else the built-in one.
fn base(authorisation: &Authorisation, sealed: Option<&RulesFile>) -> anyhow::Result<RuleSet> {
    let name = &authorisation.disclosure.rules;
    match sealed {
        Some(rules) => RuleSet::from_toml_str(&rules.text)
            .map_err(|e| bad_input(format!("rule set `{name}` ({}): {e}", rules.file))),
        None => RuleSet::builtin(name).ok_or_else(|| {
            bad_input(format!(
                "authorisation {} names the rule set `{name}`, which is neither built in (built in: default) nor sealed into the project; a steward registers the project again with --rules FILE",
                authorisation.id
            ))
        }),
    }
}

/// A project's disclosure rules: its named set with the authorisation's overrides.
pub fn of_project(project: &Project<'_>) -> anyhow::Result<RuleSet> {
    let authorisation = project.authorisation();
    let base = base(authorisation, project.record().rules.as_ref())?;
    with_overrides(authorisation, base)
}

fn with_overrides(authorisation: &Authorisation, base: RuleSet) -> anyhow::Result<RuleSet> {
    let d = &authorisation.disclosure;
    if d.overrides.is_empty() {
        return Ok(base);
    }
    let mut custom = d.overrides.clone();
    custom.insert(
        "name".into(),
        toml::Value::String(format!("{}+overrides", base.name)),
    );
    custom.insert(
        "version".into(),
        toml::Value::Integer(i64::from(base.version)),
    );
    RuleSet::from_toml_table(custom).map_err(|e| {
        bad_input(format!(
            "authorisation {}: [disclosure] overrides: {}",
            authorisation.id, e
        ))
    })
}
