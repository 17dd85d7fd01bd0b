use super::*;

const DEMO: &str = include_str!("../../../../examples/demo-authorisation.toml");
const A23_224: &str = include_str!("../../../../authorisations/23-224.toml");

/// The demo with `from` replaced by `to` (which must occur once).
fn edited(from: &str, to: &str) -> String {
    assert_eq!(
        DEMO.matches(from).count(),
        1,
        "`{from}` must occur once in the demo"
    );
    DEMO.replacen(from, to, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text[..text.find(needle).expect("needle")]
        .matches('\n')
        .count()
        + 1
}

fn problems(text: &str) -> Vec<Problem> {
    Authorisation::parse(text, "test.toml")
        .expect_err("must be refused")
        .problems
}

/// The single problem of `text`; asserts its line (that of `at`) and that its message says all
/// of `says`.
fn the_problem(text: &str, at: &str, says: &[&str]) -> Problem {
    let all = problems(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    let problem = all.into_iter().next().unwrap();
    assert_eq!(problem.line, line_of(text, at), "{problem:?}");
    for fragment in says {
        assert!(
            problem.message.contains(fragment),
            "`{fragment}` not in {problem:?}"
        );
    }
    problem
}

#[test]
fn the_demo_authorisation_parses() {
    let a = Authorisation::parse(DEMO, "demo").unwrap();
    assert_eq!(a.project_id(), "99-001");
    assert_eq!(
        a.retention.effective(),
        NaiveDate::from_ymd_opt(2031, 12, 31).unwrap()
    );
    assert_eq!(a.roles.of("vera"), vec![Role::Reviewer]);
    assert_eq!(a.roles.of("sam"), vec![Role::Steward]);
    assert!(a.roles.of("mallory").is_empty());
}

#[test]
fn authorisation_23_224_encodes_the_deliberation() {
    let a = Authorisation::parse(A23_224, "23-224.toml").unwrap();
    assert_eq!(a.id, "23/224");
    assert_eq!(a.project_id(), "23-224");
    assert_eq!(a.date, NaiveDate::from_ymd_opt(2023, 11, 7).unwrap());
    assert_eq!(
        a.retention.effective(),
        NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()
    );
    assert_eq!(a.recipient.name, "Vrije Universiteit Brussel");
    assert_eq!(a.recipient.partners.len(), 2);
    assert_eq!(
        (a.population.first_year, a.population.last_year),
        (2010, 2021)
    );
    assert_eq!((a.population.min_age, a.population.max_age), (18, 64));
    assert_eq!(a.strata.len(), 2);
    assert_eq!(a.strata[0].employer_groups, vec![EmployerGroup::Federal]);
    assert_eq!(
        a.strata[1].employer_groups,
        vec![EmployerGroup::NonFederalPublic, EmployerGroup::Private]
    );
    assert!(a.strata.iter().all(|s| s.sample_size == 10_000));
    // §4: every characteristic the deliberation lists (origin and migration background derived).
    assert_eq!(a.variables.len(), 17);
    assert_eq!(a.variable("registration_date").unwrap().coding, "year");
    assert_eq!(
        a.variable("current_nationality").unwrap().coding,
        "nationality_class_30"
    );
    assert!(a.variable("statbel_origin").is_none());
    // Variables come out in catalogue order whatever the file order.
    assert_eq!(a.variables[0].name, "sex");
    assert_eq!(a.variables.last().unwrap().name, "employer_type");
}

#[test]
fn invalid_toml_is_reported_with_its_line() {
    let text = edited(
        "sample_size = 2000\n\n[variables]",
        "sample_size = = 2000\n\n[variables]",
    );
    the_problem(&text, "sample_size = =", &["not valid TOML"]);
}

#[test]
fn an_unknown_top_level_field_names_the_allowed_fields() {
    let text = edited("[roles]", "[risks]\nk = 5\n\n[roles]");
    let p = the_problem(
        &text,
        "[risks]",
        &["unknown field", "population", "disclosure", "roles"],
    );
    assert_eq!(p.field, "risks");
}

#[test]
fn an_unknown_field_inside_a_section_names_the_allowed_fields() {
    let text = edited("max_age = 64", "max_ages = 64");
    the_problem(
        &text,
        "max_ages",
        &["unknown field `max_ages`", "`max_age`", "`statuut`"],
    );
}

#[test]
fn a_missing_section_is_reported() {
    let text = edited("[disclosure]\nrules = \"default\"\n", "");
    let p = the_problem(&text, "# A FICTIONAL", &["missing", "rule set"]);
    assert_eq!(p.field, "disclosure");
}

#[test]
fn a_value_of_the_wrong_type_is_reported() {
    let text = edited(
        "name = \"federal\"\nemployer_groups = [\"FEDERAL\"]\nsample_size = 2000",
        "name = \"federal\"\nemployer_groups = [\"FEDERAL\"]\nsample_size = \"many\"",
    );
    the_problem(
        &text,
        "\"many\"",
        &["invalid type: string \"many\", expected a whole number"],
    );
}

#[test]
fn an_unknown_variable_names_the_variables() {
    let text = edited("sex = \"code\"", "sex = \"code\"\nincome = \"decile\"");
    let p = the_problem(
        &text,
        "income",
        &["unknown variable", "sex", "migration_background"],
    );
    assert_eq!(p.field, "variables.income");
}

#[test]
fn a_coding_that_does_not_exist_for_the_variable_names_its_codings() {
    let text = edited("nace = \"section\"", "nace = \"year\"");
    the_problem(
        &text,
        "nace = \"year\"",
        &["`year` is not a coding of nace", "section", "division"],
    );
}

#[test]
fn overlapping_strata_are_refused() {
    let text = edited(
        "employer_groups = [\"NON_FEDERAL_PUBLIC\", \"PRIVATE\"]",
        "employer_groups = [\"NON_FEDERAL_PUBLIC\", \"FEDERAL\"]",
    );
    the_problem(
        &text,
        "employer_groups = [\"NON_FEDERAL_PUBLIC\", \"FEDERAL\"]",
        &[
            "FEDERAL is already in stratum `federal`",
            "must not overlap",
        ],
    );
}

#[test]
fn an_unknown_employer_group_names_the_groups() {
    let text = edited(
        "[\"NON_FEDERAL_PUBLIC\", \"PRIVATE\"]",
        "[\"NON_FEDERAL_PUBLIC\", \"CHARITY\"]",
    );
    the_problem(
        &text,
        "\"CHARITY\"",
        &["`CHARITY` is not an employer group", "FEDERAL", "PRIVATE"],
    );
}

#[test]
fn a_retention_date_before_the_authorisation_date_is_refused() {
    let text = edited("until = 2031-12-31", "until = 2025-12-31");
    the_problem(
        &text,
        "until = 2025",
        &["2025-12-31 is before the authorisation's date 2026-01-15"],
    );
}

#[test]
fn extensions_must_move_the_date_later_and_follow_the_authorisation() {
    let text = edited(
        "reference = \"Demo deliberation 99/001, §9\"",
        "reference = \"Demo deliberation 99/001, §9\"\n\n[[retention.extensions]]\nuntil = 2030-06-30\ndate = 2025-01-01\nreference = \"Demo decision 31/007\"",
    );
    let all = problems(&text);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(
        all.iter().any(|p| p.line == line_of(&text, "until = 2030")
            && p.message.contains("later than 2031-12-31"))
    );
    assert!(all.iter().any(|p| p.line == line_of(&text, "date = 2025")
        && p.message.contains("predates the authorisation")));
}

#[test]
fn an_extension_counts_towards_the_retention_date() {
    let text = edited(
        "reference = \"Demo deliberation 99/001, §9\"",
        "reference = \"Demo deliberation 99/001, §9\"\n\n[[retention.extensions]]\nuntil = 2033-06-30\ndate = 2031-11-01\nreference = \"Demo decision 31/007\"",
    );
    let a = Authorisation::parse(&text, "demo").unwrap();
    assert_eq!(
        a.retention.effective(),
        NaiveDate::from_ymd_opt(2033, 6, 30).unwrap()
    );
    assert_eq!(a.retention.extensions[0].reference, "Demo decision 31/007");
}

#[test]
fn a_period_that_ends_before_it_starts_is_refused() {
    let text = edited("last_year = 2021", "last_year = 2009");
    the_problem(
        &text,
        "last_year = 2009",
        &["ends (2009) before it starts (2010)"],
    );
}

#[test]
fn an_implausible_year_is_refused() {
    let text = edited("first_year = 2010", "first_year = 210");
    the_problem(
        &text,
        "first_year = 210",
        &["210 is not a plausible year", "1900 to 2100"],
    );
}

#[test]
fn a_bad_age_range_is_refused() {
    let text = edited("min_age = 18\nmax_age = 64", "min_age = 65\nmax_age = 64");
    the_problem(&text, "max_age = 64", &["max_age must be at least min_age"]);
    let text = edited("max_age = 64", "max_age = 300");
    the_problem(&text, "max_age = 300", &["out of range", "0 to 120"]);
}

#[test]
fn an_unknown_employment_status_names_the_statuses() {
    let text = edited("statuut = [1, 2, 3, 4]", "statuut = [1, 2, 7]");
    the_problem(
        &text,
        "statuut = [1, 2, 7]",
        &["7 is not an employment status", "1 (Worker"],
    );
}

#[test]
fn a_stratum_of_zero_persons_is_refused() {
    let text = edited(
        "[\"FEDERAL\"]\nsample_size = 2000",
        "[\"FEDERAL\"]\nsample_size = 0",
    );
    the_problem(&text, "sample_size = 0", &["at least 1 person"]);
}

#[test]
fn strata_need_distinct_names() {
    let text = edited(
        "name = \"non_federal_public_and_private\"",
        "name = \"federal\"",
    );
    let all = problems(&text);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(
        all[0]
            .message
            .contains("already the name of the stratum on line")
    );
}

#[test]
fn roles_must_name_someone_and_nobody_twice() {
    let text = edited("reviewer = [\"vera\", \"victor\"]", "reviewer = []");
    the_problem(
        &text,
        "reviewer = []",
        &["is empty; name at least one reviewer"],
    );
    let text = edited(
        "researcher = [\"rita\"]",
        "researcher = [\"rita\", \"rita\"]",
    );
    the_problem(&text, "researcher = [", &["`rita` is listed twice"]);
    let text = edited("[roles]", "[roles]\nauditor = [\"olga\"]");
    the_problem(&text, "auditor", &["unknown field `auditor`", "`steward`"]);
}

#[test]
fn an_id_that_cannot_name_a_project_is_refused() {
    let text = edited("id = \"99/001\"", "id = \"../etc\"");
    the_problem(&text, "id =", &["cannot name a project"]);
}

#[test]
fn a_date_with_a_time_is_refused() {
    let text = edited("date = 2026-01-15", "date = 2026-01-15T10:00:00Z");
    the_problem(&text, "date = 2026", &["not a date"]);
}

#[test]
fn a_bad_rule_set_name_is_refused() {
    let text = edited("rules = \"default\"", "rules = \"\"");
    the_problem(&text, "[disclosure]", &["cannot name a rule set"]);
}

#[test]
fn every_mistake_is_reported_at_once_in_line_order() {
    let text = edited("nace = \"section\"", "nace = \"year\"")
        .replacen("until = 2031-12-31", "until = 2020-01-01", 1)
        .replacen("[\"NON_FEDERAL_PUBLIC\", \"PRIVATE\"]", "[\"FEDERAL\"]", 1)
        .replacen("sex = \"code\"", "gender = \"code\"", 1)
        .replacen("[roles]", "[roles]\nauditor = [\"olga\"]", 1)
        .replacen("title =", "titel = \"x\"\ntitle =", 1);
    let all = problems(&text);
    assert_eq!(all.len(), 6, "{all:#?}");
    let lines: Vec<usize> = all.iter().map(|p| p.line).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    let rendered = CheckError {
        file: "test.toml".into(),
        problems: all,
    }
    .to_string();
    assert!(rendered.starts_with("test.toml: 6 problems"), "{rendered}");
    assert!(rendered.contains(&format!(
        "test.toml:{}: variables.nace: ",
        line_of(&text, "nace =")
    )));
}
