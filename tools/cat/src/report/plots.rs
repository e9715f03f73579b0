//! The report's SVG plots, each with its caption in the HTML page.

use lectern_engine::sim::{Bin, Simulation};
use lectern_engine::{Item, PolyModel};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{COND_BINS, COND_HI, COND_LO, num, num_places};
use crate::bank::{Bank, MODELS};
use crate::error::Error;
use crate::simulate::Outcome;

/// Plot size in pixels.
const SIZE: (u32, u32) = (760, 460);
/// Scatter plots show at most this many examinees (they are exchangeable draws).
const MAX_POINTS: usize = 5000;
const FONT: &str = "sans-serif";

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn std::error::Error>>;

/// One plot of the report.
pub(super) struct Plot {
    /// File name in the report directory.
    pub(super) file: &'static str,
    /// What the HTML page says under it.
    pub(super) caption: String,
    /// The SVG document.
    pub(super) svg: String,
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

/// A chart with `title`, laid out the same way on every plot.
fn builder<'a, 'b>(root: &'a Area<'b>, title: &str) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, (FONT, 24))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(54);
    builder
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
/// One colour per category (at most ten) or per model.
const PALETTE: [RGBColor; 10] = [
    BLUE_,
    ORANGE,
    GREEN_,
    RED_,
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(60, 60, 60),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The θ grid of the curves over [−4, 4], in steps of 0.05.
fn thetas() -> impl Iterator<Item = f64> {
    (0..=160).map(|j| -4.0 + 0.05 * f64::from(j))
}

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
        let mut chart = builder(root, "Estimated vs true θ")
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
type Series = (String, RGBColor, Vec<(f64, f64)>);

/// (b) Conditional bias, RMSE and mean SE by true θ.
fn conditional(bins: &[Bin]) -> Result<String, Error> {
    let centre = |b: &Bin| (b.lo + b.hi) / 2.0;
    let series: [Series; 3] = [
        (
            "bias".to_owned(),
            RED_,
            bins.iter().map(|b| (centre(b), b.bias)).collect(),
        ),
        (
            "RMSE".to_owned(),
            BLUE_,
            bins.iter().map(|b| (centre(b), b.rmse)).collect(),
        ),
        (
            "mean SE".to_owned(),
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
        let mut chart = builder(root, "Conditional bias, RMSE and SE by true θ")
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
                .label(label.as_str())
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
        let mut chart = builder(root, "Test length distribution").build_cartesian_2d(
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
        let mut chart =
            builder(root, "Item exposure rates (sorted)").build_cartesian_2d(0.0..n, 0.0..top)?;
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
    let info: Vec<(f64, f64)> = thetas()
        .map(|theta| (theta, bank.bank.test_information(&all, theta)))
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
        let mut chart = builder(root, "Bank test information and SE")
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

/// Lines over θ ∈ [−4, 4] from 0 to `y_max`, one per series, with a legend.
fn lines_over_theta(
    file: &str,
    title: &str,
    y_desc: &str,
    y_max: f64,
    series: &[Series],
    legend: SeriesLabelPosition,
) -> Result<String, Error> {
    let places = if y_max < 10.0 { 1 } else { 0 };
    svg(file, |root| {
        let mut chart = builder(root, title).build_cartesian_2d(-4.0..4.0, 0.0..y_max)?;
        chart
            .configure_mesh()
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .x_desc("θ")
            .y_desc(y_desc)
            .x_label_formatter(&one_decimal)
            .y_label_formatter(&|v| decimals(*v, places))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (label, color, points) in series {
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(label.as_str())
                .legend(legend_line(*color));
        }
        draw_legend(&mut chart, legend)
    })
}

/// Why the item of the category response curves was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chosen {
    /// --curves-item.
    Named,
    /// The most exposed polytomous item.
    MostExposedPolytomous,
    /// The most exposed item (the bank has no polytomous item).
    MostExposed,
}

/// The item whose category response curves the report draws: `named`, else
/// the most exposed polytomous item, else the most exposed item (ties go to
/// the first in the bank).
fn curves_item(bank: &Bank, exposure: &[usize], named: Option<usize>) -> (usize, Chosen) {
    let most_exposed = |pick: &dyn Fn(usize) -> bool| {
        (0..bank.bank.len())
            .filter(|&i| pick(i))
            .max_by_key(|&i| (exposure[i], std::cmp::Reverse(i)))
    };
    let polytomous = |i| matches!(bank.bank.item(i), Item::Polytomous(_));
    match named {
        Some(i) => (i, Chosen::Named),
        None => match most_exposed(&polytomous) {
            Some(i) => (i, Chosen::MostExposedPolytomous),
            None => (most_exposed(&|_| true).unwrap_or(0), Chosen::MostExposed),
        },
    }
}

/// (f) Category response curves P(X = k | θ) of item `i`.
fn category_curves(bank: &Bank, i: usize) -> Result<String, Error> {
    let item = bank.bank.item(i);
    let probabilities: Vec<(f64, Vec<f64>)> =
        thetas().map(|t| (t, item.probabilities(t))).collect();
    let series: Vec<Series> = (0..item.categories())
        .map(|k| {
            (
                format!("score {k}"),
                PALETTE[k % PALETTE.len()],
                probabilities.iter().map(|(t, p)| (*t, p[k])).collect(),
            )
        })
        .collect();
    lines_over_theta(
        "curves.svg",
        &format!(
            "Category response curves: item {} ({})",
            bank.ids[i],
            item.model_name()
        ),
        "P(score = k | θ)",
        1.05,
        &series,
        SeriesLabelPosition::UpperMiddle,
    )
}

/// (g) Information of the bank's items of each model.
fn information_by_model(bank: &Bank) -> Result<String, Error> {
    let models = bank.model_counts();
    let grid: Vec<f64> = thetas().collect();
    let mut sums = vec![vec![0.0; grid.len()]; models.len()];
    for i in 0..bank.bank.len() {
        let name = bank.bank.item(i).model_name();
        if let Some(k) = models.iter().position(|m| m.0 == name) {
            for (sum, &t) in sums[k].iter_mut().zip(&grid) {
                *sum += bank.bank.information(i, t);
            }
        }
    }
    let series: Vec<Series> = models
        .iter()
        .zip(sums)
        .map(|(&(name, n), sum)| {
            let colour = MODELS.iter().position(|&m| m == name).unwrap_or(0);
            (
                format!("{name} ({n} item{})", if n == 1 { "" } else { "s" }),
                PALETTE[colour % PALETTE.len()],
                grid.iter().copied().zip(sum).collect(),
            )
        })
        .collect();
    let (_, top) = min_max(series.iter().flat_map(|s| s.2.iter().map(|p| p.1)));
    lines_over_theta(
        "information-by-model.svg",
        "Bank information by model",
        "information Σ Iᵢ(θ)",
        top.max(1e-9) * 1.08,
        &series,
        SeriesLabelPosition::UpperLeft,
    )
}

/// The numbers of a list, rounded to 3 decimals.
fn list(xs: &[f64]) -> String {
    xs.iter()
        .map(|x| decimals(*x, 3))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The caption of the category response curves of item `i`.
fn curves_caption(outcome: &Outcome, i: usize, chosen: Chosen) -> String {
    let bank = &outcome.bank;
    let item = bank.bank.item(i);
    let params = match &item {
        Item::Dichotomous(p) => format!(
            "a = {}, b = {}, c = {}, d = {}",
            decimals(p.a, 3),
            decimals(p.b, 3),
            decimals(p.c, 3),
            decimals(p.d, 3)
        ),
        Item::Polytomous(p) => format!(
            "a = {}, {} {}",
            decimals(p.a(), 3),
            if p.model() == PolyModel::Grm {
                "thresholds"
            } else {
                "steps"
            },
            list(p.thresholds())
        ),
    };
    let why = match chosen {
        Chosen::Named => "chosen with --curves-item",
        Chosen::MostExposedPolytomous => "the most exposed polytomous item",
        Chosen::MostExposed => "the most exposed item; the bank has no polytomous item",
    };
    let rate = 100.0 * outcome.sim.exposure()[i];
    format!(
        "Probability of each score of item {} ({}; {params}) as a function of θ: {why}, seen by {rate:.1} % of the examinees. \
         Each curve is one score; at every θ they sum to 1, and the expected score rises with θ. \
         --curves-item ID draws another item.",
        bank.ids[i],
        item.model_name(),
    )
}

/// Draws every plot of the report, in the order the page shows them.
pub(super) fn render(outcome: &Outcome, bins: &[Bin]) -> Result<Vec<Plot>, Error> {
    let s = &outcome.summary;
    let (curves, chosen) = curves_item(
        &outcome.bank,
        &outcome.sim.exposure_counts(),
        outcome.curves_item,
    );
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
    Ok(vec![
        Plot {
            file: "scatter.svg",
            caption: scatter_caption,
            svg: scatter(&outcome.sim)?,
        },
        Plot {
            file: "conditional.svg",
            caption: format!(
                "Conditional bias, RMSE and mean reported SE in {COND_BINS} bins of true θ over [{COND_LO}, {COND_HI}]. \
                 Bias away from zero at the extremes shows where the bank or the prior pulls estimates inward; \
                 where the mean SE falls below the RMSE the reported SEs are too optimistic. Empty bins are left out."
            ),
            svg: conditional(bins)?,
        },
        Plot {
            file: "lengths.svg",
            caption: format!(
                "Number of items each examinee took (mean {}, range {} to {}). A single bar means a fixed-length test; \
                 with an SE target or a cut score the spread shows how quickly the stop rule fires.",
                num_places(s.mean_length, 2),
                s.min_length,
                s.max_length
            ),
            svg: lengths(&outcome.sim)?,
        },
        Plot {
            file: "exposure.svg",
            caption: format!(
                "Share of examinees who saw each item, most exposed first. The red line is the highest rate ({}), \
                 the grey one the rate if every item were used evenly (mean length / bank size). \
                 {} of {} items were never used.",
                num(s.max_exposure),
                s.never_used,
                outcome.config.bank_items
            ),
            svg: exposure(&outcome.sim, s.mean_length)?,
        },
        Plot {
            file: "information.svg",
            caption: "Test information function of the whole bank, I(θ) = Σ Iᵢ(θ) (left axis), and the standard error \
             it would give, 1/√I(θ) (right axis): an upper bound on the precision of any test drawn from the bank. \
             Where information is low, no selection rule can measure well."
                .to_owned(),
            svg: information(&outcome.bank)?,
        },
        Plot {
            file: "information-by-model.svg",
            caption: format!(
                "Test information of the bank's items of each model, Σ Iᵢ(θ) over the items of that model ({}). \
                 It shows which part of the bank measures where; a polytomous item spreads its information \
                 over the range of its thresholds.",
                outcome
                    .bank
                    .model_counts()
                    .iter()
                    .map(|(m, n)| format!("{n} {m}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            svg: information_by_model(&outcome.bank)?,
        },
        Plot {
            file: "curves.svg",
            caption: curves_caption(outcome, curves, chosen),
            svg: category_curves(&outcome.bank, curves)?,
        },
    ])
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
    fn curves_item_prefers_the_most_exposed_polytomous_item() {
        use lectern_engine::ItemParams;
        let two = Item::from(ItemParams::new(1.0, 0.0, 0.0, 1.0).unwrap());
        let grm = Item::grm(1.0, vec![0.0, 1.0]).unwrap();
        let bank = |items: Vec<Item>| {
            let ids: Vec<String> = (0..items.len()).map(|i| format!("i{i}")).collect();
            Bank {
                bank: lectern_engine::ItemBank::without_concepts(items),
                index: ids.iter().cloned().zip(0..).collect(),
                ids,
                concepts: Vec::new(),
                has_exposure: false,
            }
        };
        let mixed = bank(vec![two.clone(), grm.clone(), grm, two.clone()]);
        assert_eq!(
            curves_item(&mixed, &[9, 2, 2, 0], None),
            (1, Chosen::MostExposedPolytomous)
        );
        assert_eq!(
            curves_item(&mixed, &[9, 2, 3, 0], None),
            (2, Chosen::MostExposedPolytomous)
        );
        assert_eq!(
            curves_item(&mixed, &[9, 2, 3, 0], Some(3)),
            (3, Chosen::Named)
        );
        let dichotomous = bank(vec![two.clone(), two.clone(), two]);
        assert_eq!(
            curves_item(&dichotomous, &[1, 4, 4], None),
            (1, Chosen::MostExposed)
        );
    }

    #[test]
    fn tick_labels_and_ranges() {
        assert_eq!(one_decimal(&-1e-17), "0.0");
        assert_eq!(one_decimal(&-0.04), "0.0");
        assert_eq!(two_decimals(&-0.126), "-0.13");
        assert_eq!(decimals(299.99999, 0), "300");
        assert_eq!(padded(1.0, 1.0), 0.5..1.5);
    }
}
