//! The report's self-contained HTML page.

use std::fmt::Write as _;

use lectern_engine::sim::Bin;

use super::plots::Plot;
use super::{COND_BINS, COND_HI, COND_LO, num, num_places};
use crate::simulate::{Config, Outcome};

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
        (
            "Items by model",
            c.bank_models
                .iter()
                .map(|(m, n)| format!("{m} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
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

/// The page: design, results, the plots inlined with their captions, and links to the files.
pub(super) fn page(outcome: &Outcome, bins: &[Bin], plots: &[Plot]) -> String {
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
         Each examinee's true θ is drawn from N({}, {}²) and every answer, a score, from the item's \
         model at that θ (right or wrong for a dichotomous item, 0 to m for a polytomous one); \
         the test then runs as designed below.</p>",
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
    for plot in plots {
        let _ = writeln!(
            h,
            "<figure id=\"{}\">\n{}\n<figcaption>{} <a href=\"{}\">{}</a></figcaption>\n</figure>",
            escape(plot.file.trim_end_matches(".svg")),
            inline_svg(&plot.svg),
            escape(&plot.caption),
            escape(plot.file),
            escape(plot.file)
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
        "the administered items and scores, and the bank (model, a on the D = 1 metric, ",
        "b or the thresholds b1…bm, c, d); ",
        "<code>lectern-cat estimate --bank bank.csv --responses responses.jsonl</code> re-estimates them</li>\n",
        "</ul>\n</body>\n</html>\n"
    ));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_and_numbers() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(num(f64::NAN), "–");
        assert_eq!(num(0.123456), "0.1235");
        assert_eq!(inline_svg("<?xml version=\"1.0\"?>\n<svg/>"), "<svg/>");
        assert_eq!(inline_svg("<svg/>"), "<svg/>");
    }
}
