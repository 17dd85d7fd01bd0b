//! Charts of released series: for a table with a `year` dimension, its measure over the years,
//! one line per value of another dimension, every further dimension at its total. The first chart
//! is by the dimension with the fewest values; each other dimension with at most [`MAX_LINES`]
//! values gets its own chart too, so a table by year, sex and employer group shows the shares by
//! employer group as well as by sex. A withheld value is a gap in its line (the line is split
//! there), never a zero.

use std::collections::HashMap;

use plotters::prelude::*;

use crate::released::ReleasedTable;
use crate::{ReportError, TOTAL};

/// At most this many lines in one chart (the palette's size); the rest are named in the caption.
pub(crate) const MAX_LINES: usize = 10;

/// Distinct on white and for the common colour-vision deficiencies (Tableau 10).
pub(crate) const PALETTE: [(u8, u8, u8); MAX_LINES] = [
    (0x4E, 0x79, 0xA7),
    (0xF2, 0x8E, 0x2B),
    (0xE1, 0x57, 0x59),
    (0x76, 0xB7, 0xB2),
    (0x59, 0xA1, 0x4F),
    (0xED, 0xC9, 0x48),
    (0xB0, 0x7A, 0xA1),
    (0xFF, 0x9D, 0xA7),
    (0x9C, 0x75, 0x5F),
    (0xBA, 0xB0, 0xAC),
];

const WIDTH: u32 = 760;
const HEIGHT: u32 = 360;

/// One year of a line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Point {
    Value(f64),
    /// Released as withheld.
    Withheld,
    /// No such cell in the table.
    Missing,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub label: String,
    /// One point per year of [`ChartData::years`].
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChartData {
    pub years: Vec<i64>,
    /// The dimension the lines are the values of (none when the table has only `year`).
    pub by: Option<String>,
    /// Dimensions held at their total.
    pub at_total: Vec<String>,
    pub lines: Vec<Line>,
    /// Lines left out beyond [`MAX_LINES`].
    pub left_out: usize,
}

impl ChartData {
    pub fn withheld(&self) -> usize {
        self.lines
            .iter()
            .flat_map(|l| &l.points)
            .filter(|p| **p == Point::Withheld)
            .count()
    }
}

/// The charts of a table: none unless it has a `year` dimension whose values are all years.
pub(crate) fn select(table: &ReleasedTable) -> Vec<ChartData> {
    let Some(year_at) = table.dimensions.iter().position(|d| d == "year") else {
        return Vec::new();
    };
    let mut years = Vec::new();
    for cell in &table.cells {
        let year = &cell.key[year_at];
        if year != TOTAL {
            match year.parse::<i64>() {
                Ok(y) => years.push(y),
                Err(_) => return Vec::new(),
            }
        }
    }
    years.sort_unstable();
    years.dedup();
    if years.is_empty() {
        return Vec::new();
    }

    // Each other dimension's values, in the table's order.
    let values_of = |d: usize| {
        let mut seen: Vec<&str> = Vec::new();
        for cell in &table.cells {
            let v = cell.key[d].as_str();
            if v != TOTAL && !seen.contains(&v) {
                seen.push(v);
            }
        }
        seen
    };
    // Fewest values first (a stable sort keeps the table's order among equals); the first
    // always, the others when their lines fit one chart.
    let mut others: Vec<(usize, Vec<&str>)> = (0..table.dimensions.len())
        .filter(|&d| d != year_at)
        .map(|d| (d, values_of(d)))
        .collect();
    others.sort_by_key(|(_, values)| values.len());
    let chosen: Vec<&(usize, Vec<&str>)> = others
        .iter()
        .enumerate()
        .filter(|(i, (_, values))| *i == 0 || values.len() <= MAX_LINES)
        .map(|(_, other)| other)
        .collect();

    let cells: HashMap<&[String], &crate::ReleasedCell> =
        table.cells.iter().map(|c| (c.key.as_slice(), c)).collect();
    let line = |label: String, fixed: Option<(usize, &str)>| {
        let points = years
            .iter()
            .map(|year| {
                let key: Vec<String> = (0..table.dimensions.len())
                    .map(|d| match fixed {
                        _ if d == year_at => year.to_string(),
                        Some((at, value)) if at == d => value.to_string(),
                        _ => TOTAL.to_string(),
                    })
                    .collect();
                match cells.get(key.as_slice()) {
                    None => Point::Missing,
                    Some(c) if c.status.is_withheld() => Point::Withheld,
                    Some(c) => c.value.map_or(Point::Withheld, Point::Value),
                }
            })
            .collect();
        Line { label, points }
    };
    if chosen.is_empty() {
        let lines = vec![line(table.measure.clone(), None)];
        return vec![ChartData {
            years,
            by: None,
            at_total: Vec::new(),
            lines,
            left_out: 0,
        }];
    }
    chosen
        .into_iter()
        .map(|(d, values)| ChartData {
            years: years.clone(),
            by: Some(table.dimensions[*d].clone()),
            at_total: table
                .dimensions
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != year_at && i != *d)
                .map(|(_, name)| name.clone())
                .collect(),
            lines: values
                .iter()
                .take(MAX_LINES)
                .map(|v| line(v.to_string(), Some((*d, v))))
                .collect(),
            left_out: values.len().saturating_sub(MAX_LINES),
        })
        .collect()
}

/// The runs of consecutive values of a line: a withheld or missing year ends a run.
pub(crate) fn segments(years: &[i64], points: &[Point]) -> Vec<Vec<(i64, f64)>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    for (year, point) in years.iter().zip(points) {
        match point {
            Point::Value(v) => run.push((*year, *v)),
            Point::Withheld | Point::Missing => {
                if !run.is_empty() {
                    runs.push(std::mem::take(&mut run));
                }
            }
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// The chart as an SVG element (no XML prolog), with class `chart` and an accessible name.
pub(crate) fn svg(
    chart: &ChartData,
    measure: &str,
    label: &str,
    output: &str,
) -> Result<String, ReportError> {
    let failed = |e: &dyn std::fmt::Display| ReportError::Chart {
        output: output.to_string(),
        message: e.to_string(),
    };
    let values: Vec<f64> = chart
        .lines
        .iter()
        .flat_map(|l| &l.points)
        .filter_map(|p| match p {
            Point::Value(v) => Some(*v),
            _ => None,
        })
        .collect();
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    // From zero when nothing is negative: counts and shares are read against zero.
    let (low, high) = match (min.is_finite(), max.is_finite()) {
        (true, true) => (min.min(0.0), if max > 0.0 { max * 1.08 } else { 1.0 }),
        _ => (0.0, 1.0),
    };
    let low = if low < 0.0 { low * 1.08 } else { low };
    let first = chart.years[0];
    let last = *chart.years.last().expect("a chart has years");
    let (x0, x1) = if first == last {
        (first - 1, last + 1)
    } else {
        (first, last)
    };

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(&e))?;
        let mut plot = ChartBuilder::on(&root)
            .margin(14)
            .margin_right(30)
            .x_label_area_size(46)
            .y_label_area_size(78)
            .build_cartesian_2d(x0..x1, low..high)
            .map_err(|e| failed(&e))?;
        plot.configure_mesh()
            .x_labels((x1 - x0 + 1) as usize)
            .x_label_formatter(&|y| y.to_string())
            .y_label_formatter(&|v| number(*v))
            .x_desc("year")
            .y_desc(measure)
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(0xE3, 0xE6, 0xEB))
            .axis_style(RGBColor(0x55, 0x55, 0x55))
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 17))
            .draw()
            .map_err(|e| failed(&e))?;
        for (i, line) in chart.lines.iter().enumerate() {
            let (r, g, b) = PALETTE[i % PALETTE.len()];
            let colour = RGBColor(r, g, b);
            for run in segments(&chart.years, &line.points) {
                // A lone value between gaps has no line to draw: its dot shows it.
                if run.len() > 1 {
                    plot.draw_series(LineSeries::new(run.clone(), colour.stroke_width(2)))
                        .map_err(|e| failed(&e))?;
                }
                plot.draw_series(run.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
                    .map_err(|e| failed(&e))?;
            }
        }
        root.present().map_err(|e| failed(&e))?;
    }
    let open = "<svg ";
    let at = out
        .find(open)
        .ok_or_else(|| failed(&"the SVG backend wrote no <svg> element"))?;
    Ok(format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{}\" {}",
        crate::html::escape(label),
        &out[at + open.len()..]
    ))
}

/// A tick label: whole numbers as they are, others with up to 3 decimals.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::released::{CellStatus, ReleasedCell};

    fn cell(key: &[&str], value: Option<f64>) -> ReleasedCell {
        ReleasedCell {
            key: key.iter().map(|k| k.to_string()).collect(),
            value,
            text: value.map(|v| v.to_string()).unwrap_or_default(),
            status: if value.is_some() {
                CellStatus::Ok
            } else {
                CellStatus::Primary
            },
            reasons: if value.is_some() {
                vec![]
            } else {
                vec!["threshold".into()]
            },
        }
    }

    fn table(dimensions: &[&str], cells: Vec<ReleasedCell>) -> ReleasedTable {
        ReleasedTable {
            output: "99-001-0001".into(),
            job: "diversity".into(),
            name: "share_foreign".into(),
            statistic: "share".into(),
            measure: "share_foreign".into(),
            dimensions: dimensions.iter().map(|d| d.to_string()).collect(),
            verdict: "pass".into(),
            summary: "pass".into(),
            rules: "default v1".into(),
            released_by: Some("vera".into()),
            cells,
        }
    }

    /// Polylines drawn in `colour`, each as its list of points.
    fn polylines(svg: &str, colour: (u8, u8, u8)) -> Vec<Vec<(i64, i64)>> {
        let stroke = format!(
            "stroke=\"#{:02X}{:02X}{:02X}\"",
            colour.0, colour.1, colour.2
        );
        svg.lines()
            .filter(|l| l.starts_with("<polyline") && l.contains(&stroke))
            .map(|l| {
                let points = l
                    .split("points=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                points
                    .split_whitespace()
                    .map(|p| {
                        let (x, y) = p.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_withheld_year_splits_the_line_into_two_segments_and_is_no_zero() {
        let t = table(
            &["year", "employer_type"],
            vec![
                cell(&["2010", "FEDERAL"], Some(0.20)),
                cell(&["2011", "FEDERAL"], Some(0.22)),
                cell(&["2012", "FEDERAL"], None),
                cell(&["2013", "FEDERAL"], Some(0.25)),
                cell(&["2014", "FEDERAL"], Some(0.26)),
                cell(&["2010", "PRIVATE"], Some(0.30)),
                cell(&["2011", "PRIVATE"], Some(0.31)),
                cell(&["2012", "PRIVATE"], Some(0.32)),
                cell(&["2013", "PRIVATE"], Some(0.33)),
                cell(&["2014", "PRIVATE"], Some(0.34)),
                cell(&["Total", "FEDERAL"], Some(0.23)),
                cell(&["2010", "Total"], Some(0.28)),
            ],
        );
        let charts = select(&t);
        assert_eq!(charts.len(), 1);
        let chart = &charts[0];
        assert_eq!(chart.years, vec![2010, 2011, 2012, 2013, 2014]);
        assert_eq!(chart.by.as_deref(), Some("employer_type"));
        assert_eq!(chart.withheld(), 1);
        assert_eq!(chart.lines[0].points[2], Point::Withheld);

        let svg = svg(chart, "share_foreign", "chart", "99-001-0001").unwrap();
        let federal = polylines(&svg, PALETTE[0]);
        assert_eq!(federal.len(), 2, "two segments around the gap: {federal:?}");
        assert_eq!(federal[0].len(), 2);
        assert_eq!(federal[1].len(), 2);
        // The gap spans 2012: the first segment ends at 2011, the next starts at 2013, two
        // year-steps further; nothing is drawn at 2012.
        let step = federal[0][1].0 - federal[0][0].0;
        assert!(step > 0);
        assert_eq!(federal[1][0].0 - federal[0][1].0, 2 * step);
        let x_2012 = federal[0][1].0 + step;
        let private = polylines(&svg, PALETTE[1]);
        assert_eq!(private.len(), 1, "an unbroken line is one segment");
        assert_eq!(private[0].len(), 5);
        assert!(
            private[0].iter().any(|p| p.0 == x_2012),
            "2012 is where the other line has a point"
        );
        assert!(
            federal.iter().flatten().all(|p| p.0 != x_2012),
            "no point (zero or other) for the withheld year: {federal:?}"
        );
        // Dots: one per published value, none for the withheld one.
        let federal_dots: Vec<&str> = svg
            .lines()
            .filter(|l| l.starts_with("<circle") && l.contains("fill=\"#4E79A7\""))
            .collect();
        assert_eq!(federal_dots.len(), 4);
        let at_2012 = format!("cx=\"{x_2012}\"");
        assert!(federal_dots.iter().all(|d| !d.contains(&at_2012)));
        assert!(svg.starts_with("<svg class=\"chart\""), "{}", &svg[..80]);
    }

    #[test]
    fn segments_split_at_every_gap_and_keep_lone_values() {
        let years = [2010, 2011, 2012, 2013, 2014, 2015];
        let points = [
            Point::Value(1.0),
            Point::Withheld,
            Point::Value(3.0),
            Point::Missing,
            Point::Value(5.0),
            Point::Value(6.0),
        ];
        assert_eq!(
            segments(&years, &points),
            vec![
                vec![(2010, 1.0)],
                vec![(2012, 3.0)],
                vec![(2014, 5.0), (2015, 6.0)]
            ]
        );
    }

    #[test]
    fn the_first_chart_is_by_the_dimension_with_fewest_values_then_each_that_fits() {
        let mut cells = Vec::new();
        let ages: Vec<String> = (0..12)
            .map(|i| format!("{}-{}", 15 + 5 * i, 19 + 5 * i))
            .collect();
        for year in ["2010", "2011"] {
            for sex in ["M", "F", "Total"] {
                for group in ["FEDERAL", "PRIVATE", "NON_FEDERAL_PUBLIC", "Total"] {
                    for age in ages.iter().map(String::as_str).chain(["Total"]) {
                        cells.push(cell(&[group, year, sex, age], Some(1.0)));
                    }
                }
            }
        }
        let t = table(&["employer_type", "year", "sex", "age"], cells);
        let charts = select(&t);
        let by: Vec<Option<&str>> = charts.iter().map(|c| c.by.as_deref()).collect();
        // Age has more values than a chart has colours: no chart of its own.
        assert_eq!(by, [Some("sex"), Some("employer_type")]);
        assert_eq!(charts[0].at_total, vec!["employer_type", "age"]);
        assert_eq!(charts[1].at_total, vec!["sex", "age"]);
        let labels: Vec<&str> = charts[0].lines.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["M", "F"]);
        assert_eq!(charts[1].lines.len(), 3);

        // When even the fewest values are too many, that one chart has the first MAX_LINES.
        let mut cells = Vec::new();
        for age in ages.iter().map(String::as_str).chain(["Total"]) {
            cells.push(cell(&["2010", age], Some(1.0)));
        }
        let charts = select(&table(&["year", "age"], cells));
        assert_eq!(charts.len(), 1);
        assert_eq!(charts[0].lines.len(), MAX_LINES);
        assert_eq!(charts[0].left_out, 2);

        // Only a year: one line, named after the measure.
        let only = table(
            &["year"],
            vec![cell(&["2010"], Some(1.0)), cell(&["2011"], Some(2.0))],
        );
        let charts = select(&only);
        assert_eq!(charts.len(), 1);
        assert_eq!(charts[0].by, None);
        assert_eq!(charts[0].lines.len(), 1);
        assert_eq!(charts[0].lines[0].label, "share_foreign");

        // No year dimension, or a year that is not one: no chart.
        assert!(select(&table(&["sex"], vec![cell(&["M"], Some(1.0))])).is_empty());
        assert!(select(&table(&["year"], vec![cell(&["recent"], Some(1.0))])).is_empty());
    }
}
