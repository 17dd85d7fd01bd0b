//! The page itself: every piece of text from the project, the tables or the audit log goes
//! through [`escape`].

use std::fmt::Write;

use crate::chart::{self, ChartData, PALETTE};
use crate::released::{CellStatus, ReleasedTable};
use crate::{AuditSummary, Chain, Report, ReportError, TOTAL};

/// Text made safe for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What a reason means, in words, for someone who reads the table.
fn explain(reason: &str) -> String {
    match reason {
        "threshold" => "too few persons are behind the cell: fewer than the rule set's minimum, so a value could be about an identifiable person".into(),
        "dominance" => "one or two persons contribute most of the cell's total, so the value would tell about them".into(),
        "p_percent" => "the second largest contributor could estimate the largest contribution too closely from the value".into(),
        "class_disclosure" => "everyone or no one in the group has the attribute (a 0% or 100% share), which discloses it for each of them".into(),
        "extreme_value" => "a minimum or maximum is one person's own value".into(),
        "negative_values" => "some contributions are negative, so the concentration rules cannot vouch for the cell".into(),
        "differencing" => "the persons behind the cell differ by only a few from those behind a cell released before (or in another table of the same job): the difference of the two would be about those few".into(),
        "secondary" => "withheld to protect another withheld cell, which could otherwise be worked out from the totals".into(),
        other => format!("reason `{other}` (not known to this version of kluis: see the rule set)"),
    }
}

/// The fragment id of a reason's explanation.
fn reason_anchor(reason: &str) -> String {
    let safe: String = reason
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("why-{safe}")
}

/// A released value for reading: whole numbers as they are, others to a few decimals (the exact
/// released value is in the cell's tooltip).
fn shown(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{value:.0}");
    }
    let text = if value.abs() < 10.0 {
        format!("{value:.4}")
    } else {
        format!("{value:.2}")
    };
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `2026-11-25T11:59:44.123456Z` as `2026-11-25 11:59:44 UTC`.
fn when(time: &str) -> String {
    let Some((date, rest)) = time.split_once('T') else {
        return time.to_string();
    };
    let clock: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ':')
        .collect();
    let zone = if rest.ends_with('Z') || rest.ends_with("+00:00") {
        " UTC"
    } else {
        ""
    };
    format!("{date} {clock}{zone}")
}

const STYLE: &str = r#"
:root { --ink: #1d2430; --muted: #5b6575; --line: #d9dee6; --soft: #f4f6f9; --accent: #2f5d8a;
        --held: #fbe3e1; --held-ink: #8a1c1c; --ok: #1d6b3a; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: #fff; }
header, main, footer, nav { max-width: 72rem; margin: 0 auto; padding: 0 1.25rem; }
header { padding-top: 1.75rem; padding-bottom: .5rem; border-bottom: 3px solid var(--accent); }
.kicker { margin: 0; text-transform: uppercase; letter-spacing: .08em; font-size: .75rem; color: var(--muted); }
h1 { margin: .2rem 0 .3rem; font-size: 1.7rem; }
h2 { margin: 2.2rem 0 .6rem; font-size: 1.3rem; border-bottom: 1px solid var(--line); padding-bottom: .25rem; }
h3 { margin: 1.8rem 0 .2rem; font-size: 1.1rem; }
h3 .id { font-weight: normal; color: var(--muted); font-size: .9rem; margin-left: .5rem; }
.sub, .meta { color: var(--muted); margin: .15rem 0; }
nav { padding-top: .6rem; font-size: .9rem; }
nav a { margin-right: 1rem; }
a { color: var(--accent); }
code { font: .9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--soft); padding: 0 .25em; border-radius: 3px; }
dl.facts { display: grid; grid-template-columns: 11rem 1fr; gap: .35rem 1rem; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.badge { display: inline-block; padding: 0 .5em; border-radius: 1em; font-size: .85em; background: var(--soft); border: 1px solid var(--line); }
.badge.active { color: var(--ok); border-color: #9fd0b0; background: #e8f5ed; }
.badge.expired, .badge.destroyed { color: var(--held-ink); border-color: #e3a9a4; background: var(--held); }
figure { margin: 1rem 0; }
figure svg.chart { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: .9rem; margin-top: .35rem; }
ul.legend { list-style: none; padding: 0; margin: .35rem 0 0; display: flex; flex-wrap: wrap; gap: .3rem 1.2rem; }
ul.legend li { display: flex; align-items: center; gap: .4rem; }
.swatch { display: inline-block; width: 1.4rem; height: .25rem; border-radius: 2px; }
.gapnote { font-weight: 600; color: var(--ink); }
.scroll { max-height: 30rem; overflow: auto; border: 1px solid var(--line); border-radius: 4px; margin-top: .6rem; }
table.released { border-collapse: collapse; width: 100%; font-size: .9rem; }
table.released th, table.released td { padding: .3rem .6rem; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
table.released thead th { position: sticky; top: 0; background: var(--soft); z-index: 1; }
table.released td.num, table.released th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.released tr.margin td { background: #fafbfc; color: #364052; }
table.released td.withheld { background: repeating-linear-gradient(135deg, var(--held) 0 6px, #f7d3cf 6px 12px);
                             color: var(--held-ink); font-style: italic; }
table.released td.status.held { color: var(--held-ink); }
table.released td.status.reviewed { color: var(--accent); }
.held-key { display: inline-block; width: 2.2rem; height: 1rem; vertical-align: middle; border: 1px solid #e3a9a4;
            background: repeating-linear-gradient(135deg, var(--held) 0 6px, #f7d3cf 6px 12px); }
.reasons { font-size: .9rem; margin: .5rem 0 0; }
.empty { padding: 1rem; background: var(--soft); border-radius: 4px; }
dl.why dt { font-weight: 600; margin-top: .5rem; }
dl.why dd { margin: 0 0 0 1.5rem; }
table.counts { border-collapse: collapse; font-size: .9rem; margin-top: .8rem; }
table.counts th, table.counts td { padding: .25rem .8rem; border-bottom: 1px solid var(--line); text-align: left; }
table.counts td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verified { color: var(--ok); font-weight: 600; }
.broken { color: var(--held-ink); font-weight: 600; }
footer { margin-top: 3rem; padding-top: .8rem; padding-bottom: 2rem; border-top: 1px solid var(--line); color: var(--muted); font-size: .85rem; }
@media print { .scroll { max-height: none; overflow: visible; } nav { display: none; } }
"#;

/// Counts the charts the browser laid out with a size, for the page's own check and for tests
/// that open it in a browser: `<body data-rendered-charts="N">`.
const SCRIPT: &str = r#"
(function () {
  var charts = document.querySelectorAll("svg.chart");
  var rendered = 0;
  for (var i = 0; i < charts.length; i++) {
    var box = charts[i].getBoundingClientRect();
    if (box.width > 0 && box.height > 0 && charts[i].querySelector("polyline, circle")) rendered++;
  }
  document.body.dataset.renderedCharts = String(rendered);
})();
"#;

pub(crate) fn page(report: &Report) -> Result<String, ReportError> {
    let p = &report.project;
    let a = &p.authorisation;
    let mut h = String::with_capacity(64 * 1024);
    let e = escape;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>kluis report: {} ({})</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        e(&p.name),
        e(&p.id)
    );
    let _ = write!(
        h,
        "<header>\n<p class=\"kicker\">kluis report · released results</p>\n<h1>{}</h1>\n\
         <p class=\"sub\">Project <strong>{}</strong> under authorisation <strong>{}</strong> · \
         <span class=\"badge {}\">{}</span> · retention until <strong class=\"retention\">{}</strong></p>\n</header>\n",
        e(&p.name),
        e(&p.id),
        e(&a.id),
        e(&p.status),
        e(&p.status),
        e(&p.retention.until)
    );
    h.push_str("<nav><a href=\"#project\">Project</a><a href=\"#tables\">Released tables</a>");
    h.push_str(
        "<a href=\"#reading\">How to read</a><a href=\"#audit\">Audit trail</a></nav>\n<main>\n",
    );

    project_section(&mut h, report);
    tables_section(&mut h, &report.tables)?;
    reading_section(&mut h, &report.tables);
    audit_section(&mut h, &report.audit);

    let _ = write!(
        h,
        "</main>\n<footer>Made by kluis {} on {} for {}. This page holds released material only: \
         tables a reviewer released after disclosure control (no person-level data, no true values \
         of withheld cells) and a summary of the audit log.</footer>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        e(&when(&report.generated_at)),
        e(&report.generated_by)
    );
    Ok(h)
}

fn project_section(h: &mut String, report: &Report) {
    let p = &report.project;
    let a = &p.authorisation;
    let e = escape;
    h.push_str(
        "<section id=\"project\">\n<h2>Project and authorisation</h2>\n<dl class=\"facts\">\n",
    );
    let _ = write!(
        h,
        "<dt>Project</dt><dd><strong>{}</strong>: {}</dd>\n<dt>Purpose</dt><dd>{}</dd>\n",
        e(&p.id),
        e(&p.name),
        e(p.purpose.trim())
    );
    let _ = write!(
        h,
        "<dt>Authorisation</dt><dd><strong>{}</strong> of {}: {}</dd>\n<dt>Provider</dt><dd>{}</dd>\n",
        e(&a.id),
        e(&a.date),
        e(&a.title),
        e(&a.provider)
    );
    let _ = write!(h, "<dt>Recipient</dt><dd>{}", e(&a.recipient));
    if !a.partners.is_empty() {
        let partners: Vec<String> = a.partners.iter().map(|x| e(x)).collect();
        let _ = write!(h, ", with {}", partners.join(", "));
    }
    h.push_str("</dd>\n");
    let r = &p.retention;
    let _ = write!(
        h,
        "<dt>Retention date</dt><dd><strong>{}</strong> (set in {}",
        e(&r.until),
        e(&r.reference)
    );
    for x in &r.extensions {
        let _ = write!(
            h,
            "; extended to {} by {} of {}",
            e(&x.until),
            e(&x.reference),
            e(&x.date)
        );
    }
    h.push_str(
        "). On that date kluis destroys the project's keys and data; released tables are kept.</dd>\n",
    );
    let _ = write!(
        h,
        "<dt>Status</dt><dd><span class=\"badge {}\">{}</span> on {}</dd>\n</dl>\n</section>\n",
        e(&p.status),
        e(&p.status),
        e(report
            .generated_at
            .get(..10)
            .unwrap_or(&report.generated_at))
    );
}

fn tables_section(h: &mut String, tables: &[ReleasedTable]) -> Result<(), ReportError> {
    h.push_str("<section id=\"tables\">\n<h2>Released tables</h2>\n");
    if tables.is_empty() {
        h.push_str(
            "<p class=\"empty\">No table of this project has been released yet. Tables appear here \
             once a reviewer releases a job's outputs (<code>kluis output release</code>).</p>\n</section>\n",
        );
        return Ok(());
    }
    let withheld: usize = tables.iter().map(ReleasedTable::withheld).sum();
    let _ = writeln!(
        h,
        "<p>{} released {}, {} withheld {}. Withheld cells are shaded <span class=\"held-key\"></span>; \
         their reasons are in the status column, in the cell's tooltip and <a href=\"#reading\">explained below</a>. \
         Rows with <code>Total</code> are margins: the sum over that dimension.</p>",
        tables.len(),
        if tables.len() == 1 { "table" } else { "tables" },
        withheld,
        if withheld == 1 { "cell" } else { "cells" },
    );
    for table in tables {
        table_article(h, table)?;
    }
    h.push_str("</section>\n");
    Ok(())
}

fn table_article(h: &mut String, t: &ReleasedTable) -> Result<(), ReportError> {
    let e = escape;
    let dims: Vec<String> = t
        .dimensions
        .iter()
        .map(|d| format!("<code>{}</code>", e(d)))
        .collect();
    let _ = write!(
        h,
        "<article class=\"released\" id=\"t-{}\">\n<h3><code>{}</code><span class=\"id\">{}</span></h3>\n",
        e(&t.output),
        e(&t.name),
        e(&t.output)
    );
    let _ = write!(
        h,
        "<p class=\"meta\">{} of <code>{}</code> by {} · job <code>{}</code> · rule set {} · verdict {} · released by {}</p>\n\
         <p class=\"meta\">Disclosure control: {}</p>\n",
        e(&t.statistic),
        e(&t.measure),
        if dims.is_empty() {
            "nothing (one cell)".to_string()
        } else {
            dims.join(", ")
        },
        e(&t.job),
        e(&t.rules),
        e(&t.verdict),
        e(t.released_by.as_deref().unwrap_or("(not recorded)")),
        e(&t.summary)
    );
    for chart in chart::select(t) {
        chart_figure(h, t, &chart)?;
    }

    h.push_str("<div class=\"scroll\"><table class=\"released\">\n<thead><tr>");
    for d in &t.dimensions {
        let _ = write!(h, "<th>{}</th>", e(d));
    }
    let _ = write!(
        h,
        "<th class=\"num\">{}</th><th>status</th></tr></thead>\n<tbody>\n",
        e(&t.measure)
    );
    for cell in &t.cells {
        let margin = cell.key.iter().any(|k| k == TOTAL);
        h.push_str(if margin {
            "<tr class=\"margin\">"
        } else {
            "<tr>"
        });
        for k in &cell.key {
            let _ = write!(h, "<td>{}</td>", e(k));
        }
        let reasons: Vec<String> = cell
            .reasons
            .iter()
            .map(|r| format!("{r}: {}", explain(r)))
            .collect();
        let links: Vec<String> = cell
            .reasons
            .iter()
            .map(|r| format!("<a href=\"#{}\">{}</a>", reason_anchor(r), e(r)))
            .collect();
        match (cell.status, cell.value) {
            (status, _) if status.is_withheld() => {
                let kind = if status == CellStatus::Primary {
                    "withheld"
                } else {
                    "withheld (secondary)"
                };
                let _ = write!(
                    h,
                    "<td class=\"num withheld\" title=\"{}\">withheld</td><td class=\"status held\">{kind}: {}</td>",
                    e(&format!("withheld: {}", reasons.join("; "))),
                    links.join(", ")
                );
            }
            (status, Some(value)) => {
                let _ = write!(
                    h,
                    "<td class=\"num\" title=\"{}\">{}</td>",
                    e(&cell.text),
                    e(&shown(value))
                );
                if status == CellStatus::Reviewed {
                    let _ = write!(
                        h,
                        "<td class=\"status reviewed\">ok (reviewed{}{})</td>",
                        if links.is_empty() { "" } else { ": " },
                        links.join(", ")
                    );
                } else {
                    h.push_str("<td class=\"status\">ok</td>");
                }
            }
            (_, None) => {
                h.push_str("<td class=\"num\">–</td><td class=\"status\">not published</td>");
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table></div>\n");

    // The reasons met in this table, with counts.
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for r in t
        .cells
        .iter()
        .filter(|c| c.status.is_withheld())
        .flat_map(|c| &c.reasons)
    {
        match counts.iter_mut().find(|(name, _)| *name == r) {
            Some((_, n)) => *n += 1,
            None => counts.push((r, 1)),
        }
    }
    if counts.is_empty() {
        h.push_str("<p class=\"reasons\">No cell of this table is withheld.</p>\n");
    } else {
        let parts: Vec<String> = counts
            .iter()
            .map(|(r, n)| {
                format!(
                    "<a href=\"#{}\">{}</a> ({n} {})",
                    reason_anchor(r),
                    e(r),
                    if *n == 1 { "cell" } else { "cells" }
                )
            })
            .collect();
        let _ = writeln!(
            h,
            "<p class=\"reasons\">{} of {} cells withheld; reasons: {}.</p>",
            t.withheld(),
            t.cells.len(),
            parts.join(", ")
        );
    }
    h.push_str("</article>\n");
    Ok(())
}

fn chart_figure(h: &mut String, t: &ReleasedTable, c: &ChartData) -> Result<(), ReportError> {
    let e = escape;
    let title = match &c.by {
        Some(by) => format!("{} by year and {by}", t.measure),
        None => format!("{} by year", t.measure),
    };
    let svg = chart::svg(c, &t.measure, &title, &t.output)?;
    let _ = write!(h, "<figure>\n{svg}<figcaption>{}", e(&title));
    if !c.at_total.is_empty() {
        let _ = write!(h, "; {} at <code>Total</code>", e(&c.at_total.join(", ")));
    }
    let first = c.years[0];
    let last = c.years[c.years.len() - 1];
    let _ = write!(
        h,
        ", {first}–{last}. <span class=\"gapnote\">Gaps are withheld values</span>, never zeros"
    );
    match c.withheld() {
        0 => h.push_str(" (none in this chart)."),
        1 => h.push_str(" (1 in this chart)."),
        n => {
            let _ = write!(h, " ({n} in this chart).");
        }
    }
    if c.left_out > 0 {
        let _ = write!(
            h,
            " The first {} values of {} are drawn; {} more are in the table below.",
            c.lines.len(),
            e(c.by.as_deref().unwrap_or("")),
            c.left_out
        );
    }
    h.push_str("<ul class=\"legend\">");
    for (i, line) in c.lines.iter().enumerate() {
        let (r, g, b) = PALETTE[i % PALETTE.len()];
        let held = line
            .points
            .iter()
            .filter(|p| **p == chart::Point::Withheld)
            .count();
        let note = match held {
            0 => String::new(),
            n if n == line.points.len() => " <small>(all withheld)</small>".to_string(),
            n => format!(" <small>({n} withheld)</small>"),
        };
        let _ = write!(
            h,
            "<li><span class=\"swatch\" style=\"background:#{r:02X}{g:02X}{b:02X}\"></span>{}{note}</li>",
            e(&line.label)
        );
    }
    h.push_str("</ul></figcaption>\n</figure>\n");
    Ok(())
}

fn reading_section(h: &mut String, tables: &[ReleasedTable]) {
    h.push_str("<section id=\"reading\">\n<h2>How to read the tables</h2>\n");
    h.push_str(
        "<p>Before a table leaves, kluis checks every cell against the project's disclosure rule set. \
         A cell that could reveal something about a person is <strong>withheld</strong> \
         <span class=\"held-key\"></span>: its value is not released, not even as a zero. \
         <em>Withheld</em> cells are disclosive on their own; <em>withheld (secondary)</em> cells \
         protect them, since they could otherwise be worked out from the totals. \
         <em>ok (reviewed)</em> cells were released after a reviewer agreed. \
         In the charts, a withheld value is a gap in its line.</p>\n<dl class=\"why\">\n",
    );
    let mut reasons: Vec<&str> = vec![
        "threshold",
        "dominance",
        "p_percent",
        "class_disclosure",
        "extreme_value",
        "negative_values",
        "differencing",
        "secondary",
    ];
    for r in tables
        .iter()
        .flat_map(|t| &t.cells)
        .flat_map(|c| &c.reasons)
    {
        if !reasons.contains(&r.as_str()) {
            reasons.push(r);
        }
    }
    for r in reasons {
        let _ = writeln!(
            h,
            "<dt id=\"{}\"><code>{}</code></dt><dd>{}</dd>",
            reason_anchor(r),
            escape(r),
            escape(&explain(r))
        );
    }
    h.push_str("</dl>\n</section>\n");
}

fn audit_section(h: &mut String, audit: &AuditSummary) {
    let e = escape;
    h.push_str("<section id=\"audit\">\n<h2>Audit trail</h2>\n<dl class=\"facts\">\n");
    let _ = writeln!(
        h,
        "<dt>Entries</dt><dd>{} about this project</dd>",
        audit.entries
    );
    if let (Some(first), Some(last)) = (&audit.first, &audit.last) {
        let _ = write!(
            h,
            "<dt>First</dt><dd>{}</dd>\n<dt>Last</dt><dd>{}</dd>\n",
            e(&when(first)),
            e(&when(last))
        );
    }
    match &audit.chain {
        Chain::Intact { entries } => {
            let _ = writeln!(
                h,
                "<dt>Chain</dt><dd><span class=\"verified\">verifies</span>: all {entries} entries of the \
                 log (every project) are intact, none altered, inserted, reordered or deleted</dd>"
            );
        }
        Chain::Broken { reason } => {
            let _ = writeln!(
                h,
                "<dt>Chain</dt><dd><span class=\"broken\">does not verify</span>: {}</dd>",
                e(reason)
            );
        }
    }
    h.push_str("</dl>\n");
    if !audit.actions.is_empty() {
        h.push_str(
            "<table class=\"counts\">\n<thead><tr><th>action</th><th>entries</th><th>by</th></tr></thead>\n<tbody>\n",
        );
        for a in &audit.actions {
            let actors: Vec<String> = a.actors.iter().map(|x| e(x)).collect();
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td>{}</td></tr>",
                e(&a.action),
                a.entries,
                actors.join(", ")
            );
        }
        h.push_str("</tbody>\n</table>\n");
    }
    h.push_str(
        "<p class=\"meta\">The entries' details are not shown here; the oversight body reads them \
         with <code>kluis audit export</code>.</p>\n</section>\n",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::released::ReleasedCell;
    use crate::{ActionCount, AuthorisationSummary, Extension, ProjectSummary, RetentionSummary};

    fn report(tables: Vec<ReleasedTable>) -> Report {
        Report {
            project: ProjectSummary {
                id: "99-001".into(),
                name: "Careers & <Origin>".into(),
                purpose: "A \"fictional\" study".into(),
                status: "active".into(),
                authorisation: AuthorisationSummary {
                    id: "99/001".into(),
                    date: "2026-01-15".into(),
                    title: "Demonstration".into(),
                    provider: "Demo Data Provider".into(),
                    recipient: "Demo University".into(),
                    partners: vec!["Demo Institute".into()],
                },
                retention: RetentionSummary {
                    until: "2031-12-31".into(),
                    reference: "§9".into(),
                    extensions: vec![Extension {
                        until: "2032-06-30".into(),
                        date: "2031-01-10".into(),
                        reference: "decision 31/002".into(),
                    }],
                },
            },
            tables,
            audit: AuditSummary {
                entries: 7,
                first: Some("2026-11-25T10:00:00.123456Z".into()),
                last: Some("2026-11-25T10:05:00.000001Z".into()),
                actions: vec![
                    ActionCount {
                        action: "output release".into(),
                        entries: 1,
                        actors: vec!["vera".into()],
                    },
                    ActionCount {
                        action: "project create".into(),
                        entries: 1,
                        actors: vec!["sam".into()],
                    },
                ],
                chain: Chain::Intact { entries: 12 },
            },
            generated_at: "2026-11-25T10:06:00Z".into(),
            generated_by: "rita".into(),
        }
    }

    fn cell(key: &[&str], text: &str, status: CellStatus, reasons: &[&str]) -> ReleasedCell {
        ReleasedCell {
            key: key.iter().map(|k| k.to_string()).collect(),
            value: text.parse().ok(),
            text: text.into(),
            status,
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(escape("Brussels-Capital"), "Brussels-Capital");
    }

    #[test]
    fn text_from_tables_and_the_project_is_escaped() {
        let table = ReleasedTable {
            output: "99-001-0001".into(),
            job: "j<b>".into(),
            name: "by_region".into(),
            statistic: "count".into(),
            measure: "persons".into(),
            dimensions: vec!["region".into()],
            verdict: "pass".into(),
            summary: "pass".into(),
            rules: "default v1".into(),
            released_by: Some("vera".into()),
            cells: vec![
                cell(
                    &["<img src=x onerror=alert(1)>"],
                    "120",
                    CellStatus::Ok,
                    &[],
                ),
                cell(
                    &["\"quoted\""],
                    "",
                    CellStatus::Primary,
                    &["<b>new_rule</b>"],
                ),
            ],
        };
        let html = page(&report(vec![table])).unwrap();
        assert!(!html.contains("<img"), "a code from a table is not markup");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(html.contains("Careers &amp; &lt;Origin&gt;"));
        assert!(html.contains("&lt;b&gt;new_rule&lt;/b&gt;"));
        assert!(!html.contains("<b>new_rule"));
        assert!(html.contains("<code>j&lt;b&gt;</code>"));
        assert!(html.contains("&quot;quoted&quot;"));
    }

    #[test]
    fn a_page_without_released_tables_says_so_and_has_no_chart() {
        let html = page(&report(vec![])).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("No table of this project has been released yet"));
        assert!(!html.contains("<svg"));
        assert!(!html.contains("<table class=\"released\""));
        // The project, its authorisation, retention and audit trail are still there.
        assert!(html.contains("<strong>99/001</strong>"));
        assert!(html.contains("2031-12-31"));
        assert!(html.contains("extended to 2032-06-30 by decision 31/002 of 2031-01-10"));
        assert!(html.contains("7 about this project"));
        assert!(html.contains("2026-11-25 10:00:00 UTC"));
        assert!(html.contains("<span class=\"verified\">verifies</span>: all 12 entries"));
        assert!(
            html.contains("<code>output release</code></td><td class=\"num\">1</td><td>vera</td>")
        );
        // Self-contained: nothing fetched from elsewhere.
        for external in ["<link", "src=\"http", "href=\"http", "@import", "url("] {
            assert!(!html.contains(external), "{external}");
        }
    }

    #[test]
    fn withheld_cells_are_shaded_with_their_reasons_and_charts_have_gaps() {
        let mut cells = Vec::new();
        for (year, text) in [("2010", "0.2"), ("2011", ""), ("2012", "0.25")] {
            let status = if text.is_empty() {
                CellStatus::Secondary
            } else {
                CellStatus::Ok
            };
            let reasons: &[&str] = if text.is_empty() { &["secondary"] } else { &[] };
            cells.push(cell(&[year], text, status, reasons));
        }
        cells.push(cell(&["Total"], "0.22", CellStatus::Ok, &[]));
        let table = ReleasedTable {
            output: "99-001-0003".into(),
            job: "diversity".into(),
            name: "share_by_year".into(),
            statistic: "share".into(),
            measure: "share_foreign".into(),
            dimensions: vec!["year".into()],
            verdict: "pass".into(),
            summary: "pass; secondary: 1 cells".into(),
            rules: "default v1".into(),
            released_by: Some("vera".into()),
            cells,
        };
        let html = page(&report(vec![table])).unwrap();
        assert!(html.contains(
            "<td class=\"num withheld\" title=\"withheld: secondary: withheld to protect another withheld cell"
        ));
        assert!(html.contains(
            "<td class=\"status held\">withheld (secondary): <a href=\"#why-secondary\">secondary</a></td>"
        ));
        assert!(html.contains("<dt id=\"why-secondary\">"));
        assert!(html.contains("1 of 4 cells withheld"));
        assert_eq!(html.matches("<svg class=\"chart\"").count(), 1);
        assert!(html.contains("Gaps are withheld values"));
        assert!(html.contains("(1 in this chart)"));
        assert!(html.contains("</span>share_foreign <small>(1 withheld)</small></li>"));
        assert!(html.contains("<tr class=\"margin\"><td>Total</td>"));
    }

    #[test]
    fn values_are_shown_readably_with_the_exact_one_in_the_tooltip() {
        assert_eq!(shown(120.0), "120");
        assert_eq!(shown(0.123456789), "0.1235");
        assert_eq!(shown(0.5), "0.5");
        assert_eq!(shown(3456.789), "3456.79");
        assert_eq!(
            when("2026-11-25T11:59:44.123456Z"),
            "2026-11-25 11:59:44 UTC"
        );
    }
}
