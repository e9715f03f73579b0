//! The simulation report: SVG plots, a self-contained HTML page, and the raw results.

use std::fmt::Write as _;
use std::path::Path;

use lectern_engine::sim::{Bin, Simulation};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Serialize;

use crate::bank::Bank;
use crate::error::Error;
use crate::simulate::{Config, Outcome, Output};

/// Plot size in pixels.
const SIZE: (u32, u32) = (760, 460);
/// Scatter plots show at most this many examinees (they are exchangeable draws).
const MAX_POINTS: usize = 5000;
/// Conditional statistics: this many equal bins of true θ over [`COND_LO`], [`COND_HI`].
const COND_BINS: usize = 12;
const COND_LO: f64 = -3.0;
const COND_HI: f64 = 3.0;
const FONT: &str = "sans-serif";

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn std::error::Error>>;

/// Creates the report directory.
pub fn prepare(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(dir.display().to_string(), "create directory", e))
}

fn write_file(dir: &Path, name: &str, content: &[u8]) -> Result<(), Error> {
    let path = dir.join(name);
    std::fs::write(&path, content).map_err(|e| Error::io(path.display().to_string(), "write", e))
}

/// Renders one SVG with `draw`.
fn svg(name: &str, draw: impl FnOnce(&Area<'_>) -> Drawn) -> Result<String, Error> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        let result = root
            .fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into));
        result.map_err(|e| Error::Options(format!("{name}: cannot draw the plot: {e}")))?;
    }
    Ok(buf)
}

/// `lo..hi` widened by 5 % on each side (and made non-empty).
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    if !(lo.is_finite() && hi.is_finite()) {
        return 0.0..1.0;
    }
    if hi - lo < 1e-9 {
        return (lo - 0.5)..(hi + 0.5);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad)..(hi + pad)
}

fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

/// Tick label with one decimal (never "-0.0").
fn one_decimal(v: &f64) -> String {
    decimals(*v, 1)
}

/// Tick label with two decimals (never "-0.00").
fn two_decimals(v: &f64) -> String {
    decimals(*v, 2)
}

/// `v` with `places` decimals; values that round to zero print without a sign.
fn decimals(v: f64, places: i32) -> String {
    let scale = 10f64.powi(places);
    // Adding 0.0 turns −0.0 into +0.0.
    let rounded = (v * scale).round() / scale + 0.0;
    format!("{rounded:.*}", places as usize)
}

/// Splits points into runs of finite y, so that lines break at gaps.
fn runs(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for &p in points {
        if p.1.is_finite() {
            current.push(p);
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn legend_line(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
}

/// Draws the legend of `chart` at `position`, the same way on every plot.
fn draw_legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    position: SeriesLabelPosition,
) -> Drawn {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .label_font((FONT, 15))
        .draw()?;
    Ok(())
}

const BLUE_: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(230, 120, 20);
const GREEN_: RGBColor = RGBColor(44, 160, 44);
const RED_: RGBColor = RGBColor(214, 39, 40);
const GREY: RGBColor = RGBColor(120, 120, 120);

/// (a) Estimated against true θ, with the identity line.
fn scatter(sim: &Simulation) -> Result<String, Error> {
    let points: Vec<(f64, f64)> = sim
        .examinees
        .iter()
        .take(MAX_POINTS)
        .map(|e| (e.true_theta, e.estimate.theta))
        .collect();
    let (lo, hi) = min_max(points.iter().flat_map(|&(x, y)| [x, y]));
    let range = padded(lo, hi);
    svg("scatter.svg", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Estimated vs true θ", (FONT, 24))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(54)
            .build_cartesian_2d(range.clone(), range.clone())?;
        chart
            .configure_mesh()
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .x_desc("true θ")
            .y_desc("estimated θ̂")
            .x_label_formatter(&one_decimal)
            .y_label_formatter(&one_decimal)
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 2, BLUE_.mix(0.35).filled())),
            )?
            .label("examinee")
            .legend(|(x, y)| Circle::new((x + 10, y), 3, BLUE_.filled()));
        chart
            .draw_series(DashedLineSeries::new(
                [(range.start, range.start), (range.end, range.end)],
                6,
                4,
                BLACK.stroke_width(1),
            ))?
            .label("identity (θ̂ = θ)")
            .legend(legend_line(BLACK));
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

/// A named, coloured line of (x, y) points.
type Series = (&'static str, RGBColor, Vec<(f64, f64)>);

/// (b) Conditional bias, RMSE and mean SE by true θ.
fn conditional(bins: &[Bin]) -> Result<String, Error> {
    let centre = |b: &Bin| (b.lo + b.hi) / 2.0;
    let series: [Series; 3] = [
        (
            "bias",
            RED_,
            bins.iter().map(|b| (centre(b), b.bias)).collect(),
        ),
        (
            "RMSE",
            BLUE_,
            bins.iter().map(|b| (centre(b), b.rmse)).collect(),
        ),
        (
            "mean SE",
            GREEN_,
            bins.iter().map(|b| (centre(b), b.mean_se)).collect(),
        ),
    ];
    let (lo, hi) = min_max(
        series
            .iter()
            .flat_map(|s| s.2.iter().map(|p| p.1))
            .chain([0.0]),
    );
    let y = padded(lo, hi);
    let x = COND_LO..COND_HI;
    svg("conditional.svg", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Conditional bias, RMSE and SE by true θ", (FONT, 24))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(54)
            .build_cartesian_2d(x.clone(), y)?;
        chart
            .configure_mesh()
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .x_desc("true θ (bin centre)")
            .y_desc("bias, RMSE, SE (θ units)")
            .x_label_formatter(&one_decimal)
            .y_label_formatter(&two_decimals)
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        chart.draw_series(LineSeries::new([(x.start, 0.0), (x.end, 0.0)], GREY))?;
        for (label, color, points) in &series {
            for run in runs(points) {
                chart.draw_series(LineSeries::new(run, color.stroke_width(2)))?;
            }
            let color = *color;
            chart
                .draw_series(
                    points
                        .iter()
                        .filter(|p| p.1.is_finite())
                        .map(|&p| Circle::new(p, 3, color.filled())),
                )?
                .label(*label)
                .legend(legend_line(color));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperMiddle)
    })
}

/// (c) Distribution of test lengths.
fn lengths(sim: &Simulation) -> Result<String, Error> {
    let lengths: Vec<u32> = sim
        .examinees
        .iter()
        .map(|e| u32::try_from(e.items.len()).unwrap_or(u32::MAX))
        .collect();
    let lo = lengths.iter().copied().min().unwrap_or(0);
    let hi = lengths.iter().copied().max().unwrap_or(0);
    let mut counts = std::collections::HashMap::new();
    for &l in &lengths {
        *counts.entry(l).or_insert(0u32) += 1;
    }
    let top = counts.values().copied().max().unwrap_or(1);
    svg("lengths.svg", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Test length distribution", (FONT, 24))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(54)
            .build_cartesian_2d(
                (lo.saturating_sub(1)..hi + 1).into_segmented(),
                0u32..top + top / 10 + 1,
            )?;
        chart
            .configure_mesh()
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .disable_x_mesh()
            .x_desc("test length (items)")
            .y_desc("examinees")
            .light_line_style(WHITE.mix(0.0))
            .x_label_formatter(&|v| match v {
                SegmentValue::Exact(v) | SegmentValue::CenterOf(v) => v.to_string(),
                SegmentValue::Last => String::new(),
            })
            .draw()?;
        chart.draw_series(
            Histogram::vertical(&chart)
                .style(BLUE_.mix(0.75).filled())
                .margin(2)
                .data(lengths.iter().map(|&l| (l, 1u32))),
        )?;
        Ok(())
    })
}

/// (d) Item exposure rates, sorted, with the maximum and the even-use rate.
fn exposure(sim: &Simulation, mean_length: f64) -> Result<String, Error> {
    let mut rates = sim.exposure();
    rates.sort_by(|a, b| b.total_cmp(a));
    let n = rates.len().max(1) as f64;
    let max = rates.first().copied().unwrap_or(0.0);
    let even = if mean_length.is_finite() {
        mean_length / n
    } else {
        0.0
    };
    let top = (max.max(even) * 1.15).clamp(0.05, 1.05);
    svg("exposure.svg", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Item exposure rates (sorted)", (FONT, 24))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(54)
            .build_cartesian_2d(0.0..n, 0.0..top)?;
        chart
            .configure_mesh()
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .disable_x_mesh()
            .x_desc("item rank (most exposed first)")
            .y_desc("exposure rate")
            .x_label_formatter(&|v| decimals(*v, 0))
            .y_label_formatter(&two_decimals)
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        if rates.len() <= 1000 {
            chart.draw_series(rates.iter().enumerate().map(|(i, &r)| {
                let x = i as f64;
                Rectangle::new([(x + 0.1, 0.0), (x + 0.9, r)], BLUE_.mix(0.75).filled())
            }))?;
        } else {
            chart.draw_series(LineSeries::new(
                rates.iter().enumerate().map(|(i, &r)| (i as f64 + 0.5, r)),
                BLUE_.stroke_width(2),
            ))?;
        }
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, max), (n, max)],
                6,
                4,
                RED_.stroke_width(2),
            ))?
            .label(format!("max exposure = {max:.3}"))
            .legend(legend_line(RED_));
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, even), (n, even)],
                6,
                4,
                GREY.stroke_width(2),
            ))?
            .label(format!("even use = mean length / items = {even:.3}"))
            .legend(legend_line(GREY));
        draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)
    })
}

/// (e) Test information of the whole bank, and the SE it gives.
fn information(bank: &Bank) -> Result<String, Error> {
    let all: Vec<usize> = (0..bank.bank.len()).collect();
    let info: Vec<(f64, f64)> = (0..=160)
        .map(|j| {
            let theta = -4.0 + 0.05 * f64::from(j);
            (theta, bank.bank.test_information(&all, theta))
        })
        .collect();
    let se: Vec<(f64, f64)> = info
        .iter()
        .map(|&(t, i)| {
            (
                t,
                if i > 0.0 {
                    1.0 / i.sqrt()
                } else {
                    f64::INFINITY
                },
            )
        })
        .collect();
    let (_, top_info) = min_max(info.iter().map(|p| p.1));
    let info_places = if top_info < 10.0 { 1 } else { 0 };
    let (low_se, high_se) = min_max(se.iter().map(|p| p.1));
    // Keep the SE axis readable where the bank has next to no information.
    let se_cap = if high_se.is_finite() {
        high_se.min((4.0 * low_se).max(1.0))
    } else {
        (4.0 * low_se).max(1.0)
    };
    let se_shown: Vec<(f64, f64)> = se
        .iter()
        .map(|&(t, s)| (t, if s <= se_cap { s } else { f64::NAN }))
        .collect();
    svg("information.svg", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Bank test information and SE", (FONT, 24))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(54)
            .right_y_label_area_size(54)
            .build_cartesian_2d(-4.0..4.0, 0.0..(top_info.max(1e-9) * 1.08))?
            .set_secondary_coord(-4.0..4.0, 0.0..se_cap * 1.08);
        chart
            .configure_mesh()
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .x_desc("θ")
            .y_desc("information I(θ)")
            .x_label_formatter(&one_decimal)
            .y_label_formatter(&|v| decimals(*v, info_places))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        chart
            .configure_secondary_axes()
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .y_label_formatter(&two_decimals)
            .y_desc("SE = 1/√I(θ)")
            .draw()?;
        chart
            .draw_series(LineSeries::new(info.iter().copied(), BLUE_.stroke_width(2)))?
            .label("information (left axis)")
            .legend(legend_line(BLUE_));
        let mut labelled = false;
        for run in runs(&se_shown) {
            let drawn = chart.draw_secondary_series(DashedLineSeries::new(
                run,
                6,
                4,
                ORANGE.stroke_width(2),
            ))?;
            if !labelled {
                drawn.label("SE (right axis)").legend(legend_line(ORANGE));
                labelled = true;
            }
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

// ---------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
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

/// `x` with 4 decimals, or a dash when it is undefined (NaN).
fn num(x: f64) -> String {
    num_places(x, 4)
}

fn num_places(x: f64, places: usize) -> String {
    if x.is_finite() {
        format!("{x:.places$}")
    } else {
        "–".to_owned()
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), |x| x.to_string())
}

/// The design as (label, value) rows.
fn config_rows(c: &Config) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        (
            "Item bank",
            match &c.generated {
                Some(recipe) => format!("generated from the seed: {recipe}"),
                None => c.bank.clone(),
            },
        ),
        ("Items in the bank", c.bank_items.to_string()),
    ];
    if c.generated.is_none() {
        rows.push(("Scaling constant D applied to a", c.scale.to_string()));
    }
    rows.extend([
        ("Examinees", c.examinees.to_string()),
        ("Seed", c.seed.to_string()),
        (
            "True θ distribution",
            format!("N({}, {}²)", c.theta_mean, c.theta_sd),
        ),
        ("Estimator", c.estimator.to_uppercase()),
    ]);
    if let (Some(m), Some(s)) = (c.prior_mean, c.prior_sd) {
        rows.push(("Prior", format!("N({m}, {s}²)")));
    }
    if let Some(g) = &c.eap_grid {
        rows.push((
            "EAP quadrature",
            format!("{} points on [{}, {}]", g.points, g.min, g.max),
        ));
    }
    rows.push((
        "Item selection",
        match c.randomesque_k {
            Some(k) => format!("randomesque, among the {k} most informative items"),
            None => "maximum Fisher information".to_owned(),
        },
    ));
    if let Some(targets) = &c.content_balance {
        let list: Vec<String> = targets
            .iter()
            .map(|t| format!("{} {:.1} %", t.concept, 100.0 * t.proportion))
            .collect();
        rows.push(("Content balancing", list.join(", ")));
    }
    rows.extend([
        (
            "Exposure control",
            if c.exposure_control {
                "Sympson–Hetter (bank exposure parameters)".to_owned()
            } else {
                "none".to_owned()
            },
        ),
        (
            "Test length",
            if c.min_items == 0 {
                format!("at most {} items", c.max_items)
            } else {
                format!("{} to {} items", c.min_items, c.max_items)
            },
        ),
        ("SE target", opt(c.se_target)),
    ]);
    if let Some(cut) = c.cut_score {
        rows.push((
            "Classification",
            format!(
                "cut score θ = {cut}, {} % confidence",
                100.0 * c.confidence.unwrap_or(0.95)
            ),
        ));
    }
    rows.push((
        "Start θ",
        c.start_theta.map_or_else(
            || "the estimator's (prior mean, or 0)".to_owned(),
            |t| t.to_string(),
        ),
    ));
    rows
}

fn table(html: &mut String, head: &[&str], rows: &[Vec<String>]) {
    html.push_str("<table>\n<tr>");
    for h in head {
        let _ = write!(html, "<th>{}</th>", escape(h));
    }
    html.push_str("</tr>\n");
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            let _ = write!(html, "<td>{}</td>", escape(cell));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
}

/// Strips an XML prolog, so that an SVG document can be inlined in HTML.
fn inline_svg(svg: &str) -> &str {
    match (svg.starts_with("<?xml"), svg.find("?>")) {
        (true, Some(end)) => svg[end + 2..].trim_start(),
        _ => svg,
    }
}

fn html(outcome: &Outcome, bins: &[Bin], plots: &[(&str, &str, String)]) -> String {
    let s = &outcome.summary;
    let c = &outcome.config;
    let mut h = String::new();
    h.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<title>lectern-cat simulation report</title>\n<style>\n",
        "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}\n",
        "table{border-collapse:collapse;margin:0.5rem 0 1.5rem}\n",
        "th,td{border:1px solid #ccc;padding:0.25rem 0.6rem;text-align:left;vertical-align:top}\n",
        "td.n{text-align:right;font-variant-numeric:tabular-nums}\n",
        "th{background:#f3f3f3}\nfigure{margin:1.5rem 0}\nfigure svg{max-width:100%;height:auto}\n",
        "figcaption{font-size:0.92rem;color:#444;max-width:48rem}\n",
        "</style>\n</head>\n<body>\n<h1>Adaptive test simulation</h1>\n"
    ));
    let _ = writeln!(
        h,
        "<p>{} simulated examinees on a bank of {} items, produced by lectern-cat {}. \
         Each examinee's true θ is drawn from N({}, {}²) and every answer from the item's \
         response function at that θ; the test then runs as designed below.</p>",
        s.examinees,
        c.bank_items,
        env!("CARGO_PKG_VERSION"),
        c.theta_mean,
        c.theta_sd
    );
    h.push_str("<h2>Design</h2>\n");
    let rows: Vec<Vec<String>> = config_rows(c)
        .into_iter()
        .map(|(k, v)| vec![k.to_owned(), v])
        .collect();
    table(&mut h, &["setting", "value"], &rows);

    h.push_str("<h2>Results</h2>\n");
    let summary_rows = [
        ("Bias", num(s.bias), "mean of θ̂ − θ"),
        (
            "RMSE",
            num(s.rmse),
            "root mean squared error √mean((θ̂ − θ)²)",
        ),
        (
            "Mean SE",
            num(s.mean_se),
            "mean reported standard error; close to the RMSE when the SEs are honest",
        ),
        (
            "Correlation",
            num(s.correlation),
            "Pearson correlation of θ̂ with θ",
        ),
        (
            "Mean test length",
            num_places(s.mean_length, 2),
            "items per examinee",
        ),
        (
            "Shortest / longest test",
            format!("{} / {}", s.min_length, s.max_length),
            "items",
        ),
        (
            "Maximum exposure rate",
            num(s.max_exposure),
            "share of examinees who saw the most used item",
        ),
        (
            "Test overlap rate",
            num(s.overlap_rate),
            "mean share of items two examinees have in common",
        ),
        (
            "Items never used",
            s.never_used.to_string(),
            "of the bank's items",
        ),
        (
            "Wall time",
            format!("{:.3} s", s.wall_seconds),
            "simulation only",
        ),
    ];
    h.push_str("<table>\n<tr><th>statistic</th><th>value</th><th>meaning</th></tr>\n");
    for (k, v, m) in summary_rows {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            escape(k),
            escape(&v),
            escape(m)
        );
    }
    h.push_str("</table>\n<h3>Why tests stopped</h3>\n");
    let rows: Vec<Vec<String>> = outcome
        .stop_reasons
        .iter()
        .map(|(k, v)| vec![k.replace('_', " "), v.to_string()])
        .collect();
    table(&mut h, &["reason", "examinees"], &rows);

    h.push_str("<h2>Plots</h2>\n");
    for (file, caption, svg) in plots {
        let _ = writeln!(
            h,
            "<figure id=\"{}\">\n{}\n<figcaption>{} <a href=\"{}\">{}</a></figcaption>\n</figure>",
            escape(file.trim_end_matches(".svg")),
            inline_svg(svg),
            escape(caption),
            escape(file),
            escape(file)
        );
    }

    let _ = writeln!(
        h,
        "<h3>Conditional statistics</h3>\n<p>Examinees grouped by true θ in {COND_BINS} equal bins \
         over [{COND_LO}, {COND_HI}] (those outside are left out).</p>"
    );
    let rows: Vec<Vec<String>> = bins
        .iter()
        .map(|b| {
            vec![
                format!("[{:.1}, {:.1})", b.lo, b.hi),
                b.n.to_string(),
                num(b.bias),
                num(b.rmse),
                num(b.mean_se),
                num_places(b.mean_length, 1),
            ]
        })
        .collect();
    table(
        &mut h,
        &[
            "true θ",
            "examinees",
            "bias",
            "RMSE",
            "mean SE",
            "mean length",
        ],
        &rows,
    );
    h.push_str(concat!(
        "<h2>Files</h2>\n<ul>\n",
        "<li><a href=\"summary.json\">summary.json</a>: the summary, stop reasons, design and conditional statistics</li>\n",
        "<li><a href=\"examinees.csv\">examinees.csv</a>: each examinee's true θ, estimate, SE, test length and stop reason</li>\n",
        "<li><a href=\"responses.jsonl\">responses.jsonl</a> and <a href=\"bank.csv\">bank.csv</a>: ",
        "the administered items and answers, and the bank (a on the D = 1 metric); ",
        "<code>lectern-cat estimate --bank bank.csv --responses responses.jsonl</code> re-estimates them</li>\n",
        "</ul>\n</body>\n</html>\n"
    ));
    h
}

// ---------------------------------------------------------------------------
// Raw results
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct SummaryFile<'a> {
    #[serde(flatten)]
    output: Output<'a>,
    conditional: &'a [Bin],
}

fn csv_bytes(
    name: &str,
    fill: impl FnOnce(&mut csv::Writer<Vec<u8>>) -> csv::Result<()>,
) -> Result<Vec<u8>, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    fill(&mut w).map_err(|e| Error::Options(format!("{name}: {e}")))?;
    w.into_inner()
        .map_err(|e| Error::Options(format!("{name}: {e}")))
}

fn examinees_csv(sim: &Simulation) -> Result<Vec<u8>, Error> {
    csv_bytes("examinees.csv", |w| {
        w.write_record(["examinee", "true_theta", "theta", "se", "length", "stop"])?;
        for (k, e) in sim.examinees.iter().enumerate() {
            w.write_record([
                (k + 1).to_string(),
                e.true_theta.to_string(),
                e.estimate.theta.to_string(),
                e.estimate.se.to_string(),
                e.items.len().to_string(),
                e.stop.name().to_owned(),
            ])?;
        }
        Ok(())
    })
}

fn bank_csv(bank: &Bank) -> Result<Vec<u8>, Error> {
    csv_bytes("bank.csv", |w| {
        w.write_record(["id", "a", "b", "c", "d", "concepts", "exposure"])?;
        for (i, id) in bank.ids.iter().enumerate() {
            let p = bank.bank.params(i);
            let concepts: Vec<&str> = bank
                .bank
                .concepts(i)
                .iter()
                .map(|&c| bank.concepts[usize::from(c)].as_str())
                .collect();
            w.write_record([
                id.clone(),
                p.a.to_string(),
                p.b.to_string(),
                p.c.to_string(),
                p.d.to_string(),
                concepts.join(";"),
                bank.bank.exposure(i).to_string(),
            ])?;
        }
        Ok(())
    })
}

fn responses_jsonl(sim: &Simulation, bank: &Bank) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        items: Vec<&'a str>,
        answers: Vec<u8>,
    }
    let mut out = String::new();
    for e in &sim.examinees {
        let line = Line {
            items: e.items.iter().map(|&i| bank.ids[i].as_str()).collect(),
            answers: e.answers.iter().map(|&u| u8::from(u)).collect(),
        };
        out.push_str(&serde_json::to_string(&line).expect("ids and answers serialize"));
        out.push('\n');
    }
    out
}

/// Writes the report into `dir` (which [`prepare`] created).
pub fn write(dir: &Path, outcome: &Outcome) -> Result<(), Error> {
    let bins = outcome.sim.conditional(COND_LO, COND_HI, COND_BINS);
    let s = &outcome.summary;
    let shown = outcome.sim.examinees.len().min(MAX_POINTS);
    let scatter_caption = if shown < outcome.sim.examinees.len() {
        format!(
            "Estimated against true ability for the first {shown} of {} examinees, with the identity line. \
             Points should hug the line; shrinkage toward the prior mean (a slope below 1) is expected for EAP and MAP.",
            outcome.sim.examinees.len()
        )
    } else {
        "Estimated against true ability for each examinee, with the identity line. \
         Points should hug the line; shrinkage toward the prior mean (a slope below 1) is expected for EAP and MAP."
            .to_owned()
    };
    let plots: Vec<(&str, String, String)> = vec![
        ("scatter.svg", scatter_caption, scatter(&outcome.sim)?),
        (
            "conditional.svg",
            format!(
                "Conditional bias, RMSE and mean reported SE in {COND_BINS} bins of true θ over [{COND_LO}, {COND_HI}]. \
                 Bias away from zero at the extremes shows where the bank or the prior pulls estimates inward; \
                 where the mean SE falls below the RMSE the reported SEs are too optimistic. Empty bins are left out."
            ),
            conditional(&bins)?,
        ),
        (
            "lengths.svg",
            format!(
                "Number of items each examinee took (mean {}, range {} to {}). A single bar means a fixed-length test; \
                 with an SE target or a cut score the spread shows how quickly the stop rule fires.",
                num_places(s.mean_length, 2),
                s.min_length,
                s.max_length
            ),
            lengths(&outcome.sim)?,
        ),
        (
            "exposure.svg",
            format!(
                "Share of examinees who saw each item, most exposed first. The red line is the highest rate ({}), \
                 the grey one the rate if every item were used evenly (mean length / bank size). \
                 {} of {} items were never used.",
                num(s.max_exposure),
                s.never_used,
                outcome.config.bank_items
            ),
            exposure(&outcome.sim, s.mean_length)?,
        ),
        (
            "information.svg",
            "Test information function of the whole bank, I(θ) = Σ Iᵢ(θ) (left axis), and the standard error \
             it would give, 1/√I(θ) (right axis): an upper bound on the precision of any test drawn from the bank. \
             Where information is low, no selection rule can measure well."
                .to_owned(),
            information(&outcome.bank)?,
        ),
    ];
    for (file, _, content) in &plots {
        write_file(dir, file, content.as_bytes())?;
    }
    let refs: Vec<(&str, &str, String)> = plots
        .iter()
        .map(|(f, c, s)| (*f, c.as_str(), s.clone()))
        .collect();
    write_file(dir, "index.html", html(outcome, &bins, &refs).as_bytes())?;
    let summary = SummaryFile {
        output: outcome.output(),
        conditional: &bins,
    };
    let json = serde_json::to_string_pretty(&summary).expect("the summary serializes");
    write_file(dir, "summary.json", format!("{json}\n").as_bytes())?;
    write_file(dir, "examinees.csv", &examinees_csv(&outcome.sim)?)?;
    write_file(
        dir,
        "responses.jsonl",
        responses_jsonl(&outcome.sim, &outcome.bank).as_bytes(),
    )?;
    write_file(dir, "bank.csv", &bank_csv(&outcome.bank)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_break_at_gaps() {
        let pts = [
            (0.0, 1.0),
            (1.0, f64::NAN),
            (2.0, 2.0),
            (3.0, 3.0),
            (4.0, f64::NAN),
        ];
        assert_eq!(
            runs(&pts),
            vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]
        );
        assert!(runs(&[(0.0, f64::NAN)]).is_empty());
    }

    #[test]
    fn escape_and_numbers() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(num(f64::NAN), "–");
        assert_eq!(num(0.123456), "0.1235");
        assert_eq!(one_decimal(&-1e-17), "0.0");
        assert_eq!(one_decimal(&-0.04), "0.0");
        assert_eq!(two_decimals(&-0.126), "-0.13");
        assert_eq!(decimals(299.99999, 0), "300");
        assert_eq!(padded(1.0, 1.0), 0.5..1.5);
        assert_eq!(inline_svg("<?xml version=\"1.0\"?>\n<svg/>"), "<svg/>");
        assert_eq!(inline_svg("<svg/>"), "<svg/>");
    }
}
