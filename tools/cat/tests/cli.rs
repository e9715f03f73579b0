//! End-to-end tests of the `lectern-cat` binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_lectern-cat");

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("lectern-cat-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes `content` to `name` in the directory and returns its path.
    fn file(&self, name: &str, content: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Runs and expects success; returns stdout.
fn ok(args: &[&str]) -> String {
    let out = run(args, None);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs and expects exit code 1 with nothing on stdout; returns stderr.
fn fails(args: &[&str], stdin: Option<&str>) -> String {
    let out = run(args, stdin);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: stdout {}, stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    err.trim_end().to_owned()
}

fn estimates(bank: &str, estimator: &str) -> Vec<(f64, f64)> {
    let out = ok(&[
        "estimate",
        "--bank",
        bank,
        "--responses",
        &fixture("reference.jsonl"),
        "--estimator",
        estimator,
    ]);
    out.lines()
        .map(|line| {
            assert!(line.starts_with("{\"theta\":"), "{line}");
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v.as_object().unwrap().len(), 2, "{line}");
            (v["theta"].as_f64().unwrap(), v["se"].as_f64().unwrap())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// estimate
// ---------------------------------------------------------------------------

/// Published reference values (logistic metric, N(0, 1) prior for EAP and MAP).
/// The fixture holds three patterns: Rasch [1, 0], 4PL [0, 1, 0], 3PL [1, 0, 1].
#[test]
fn estimate_reproduces_reference_values() {
    let bank = fixture("reference.csv");
    let mle = estimates(&bank, "mle");
    assert_eq!(mle.len(), 3);
    assert!((mle[0].0 - -1.237413).abs() < 1e-4, "{mle:?}");
    assert!((mle[1].0 - -1.793097).abs() < 2e-4, "{mle:?}");
    assert!((mle[2].0 - -1.642307).abs() < 1e-4, "{mle:?}");
    let map = estimates(&bank, "map");
    assert!((map[1].0 - -0.4741753).abs() < 2e-4, "{map:?}");
    let eap = estimates(&bank, "eap");
    assert!((eap[1].0 - -0.4567).abs() < 2e-4, "{eap:?}");
    for e in [&mle, &map, &eap] {
        assert!(e.iter().all(|&(_, se)| se.is_finite() && se > 0.0), "{e:?}");
    }
    // The default estimator is EAP.
    let default = ok(&[
        "estimate",
        "--bank",
        &bank,
        "--responses",
        &fixture("reference.jsonl"),
    ]);
    let eap_out = ok(&[
        "estimate",
        "--bank",
        &bank,
        "--responses",
        &fixture("reference.jsonl"),
        "--estimator",
        "eap",
    ]);
    assert_eq!(default, eap_out);
}

#[test]
fn estimate_wle_is_finite_and_bounded() {
    let wle = estimates(&fixture("reference.csv"), "wle");
    assert_eq!(wle.len(), 3);
    for (theta, se) in wle {
        assert!((-6.0..=6.0).contains(&theta), "{theta}");
        assert!(se.is_finite() && se > 0.0, "{se}");
    }
}

#[test]
fn json_and_csv_banks_give_identical_output() {
    for estimator in ["eap", "map", "mle", "wle"] {
        let args = |bank: String| {
            ok(&[
                "estimate",
                "--bank",
                &bank,
                "--responses",
                &fixture("reference.jsonl"),
                "--estimator",
                estimator,
            ])
        };
        let csv = args(fixture("reference.csv"));
        assert_eq!(csv.lines().count(), 3);
        assert_eq!(csv, args(fixture("reference.json")), "{estimator}");
    }
    // Without a telling extension, the format is sniffed from the content.
    let tmp = TempDir::new("sniff");
    let json = std::fs::read_to_string(fixture("reference.json")).unwrap();
    let csv = std::fs::read_to_string(fixture("reference.csv")).unwrap();
    let from_json = ok(&[
        "estimate",
        "--bank",
        &tmp.file("bank-a.txt", &json),
        "--responses",
        &fixture("reference.jsonl"),
    ]);
    let from_csv = ok(&[
        "estimate",
        "--bank",
        &tmp.file("bank-b", &csv),
        "--responses",
        &fixture("reference.jsonl"),
    ]);
    assert_eq!(from_json, from_csv);
}

#[test]
fn estimate_options_change_the_estimate() {
    let bank = fixture("reference.csv");
    let responses = fixture("reference.jsonl");
    let base = ok(&["estimate", "--bank", &bank, "--responses", &responses]);
    let shifted: Vec<String> = [
        vec!["--prior-mean", "1"],
        vec!["--prior-sd", "0.5"],
        vec!["--grid-points", "21", "--grid-min", "-3", "--grid-max", "3"],
        vec!["--scale", "1.702"],
    ]
    .into_iter()
    .map(|extra| {
        let mut args = vec!["estimate", "--bank", &bank, "--responses", &responses];
        args.extend(extra);
        ok(&args)
    })
    .collect();
    for s in &shifted {
        assert_ne!(s, &base);
    }
    // A higher prior mean pulls every EAP estimate up.
    let parse = |s: &str| -> Vec<f64> {
        s.lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["theta"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    for (up, down) in parse(&shifted[0]).iter().zip(parse(&base)) {
        assert!(*up > down, "{up} vs {down}");
    }
}

#[test]
fn estimate_reads_stdin() {
    let input = std::fs::read_to_string(fixture("reference.jsonl")).unwrap();
    let out = run(
        &[
            "estimate",
            "--bank",
            &fixture("reference.json"),
            "--responses",
            "-",
            "--estimator",
            "mle",
        ],
        Some(&input),
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        ok(&[
            "estimate",
            "--bank",
            &fixture("reference.json"),
            "--responses",
            &fixture("reference.jsonl"),
            "--estimator",
            "mle"
        ])
    );
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

#[test]
fn bad_bank_row_is_named() {
    let tmp = TempDir::new("badbank");
    let bank = tmp.file("bank.csv", "id,a,b,c\nq1,1.2,0,0.1\n\nq2,-1,0.5,0\n");
    let err = fails(
        &[
            "estimate",
            "--bank",
            &bank,
            "--responses",
            &fixture("reference.jsonl"),
        ],
        None,
    );
    assert_eq!(
        err,
        format!("error: {bank}: row 4: a must be finite and > 0 (got -1)")
    );
    let dup = tmp.file("dup.csv", "id,a,b\nq1,1,0\nq2,1,1\nq1,1,2\n");
    let err = fails(
        &[
            "simulate",
            "--bank",
            &dup,
            "--examinees",
            "3",
            "--seed",
            "1",
        ],
        None,
    );
    assert_eq!(
        err,
        format!("error: {dup}: row 4: duplicate item id \"q1\" (first at row 2)")
    );
    let json = tmp.file("bank.json", r#"[{"id": "q1", "a": 1, "b": 0, "c": 1.5}]"#);
    let err = fails(
        &[
            "estimate",
            "--bank",
            &json,
            "--responses",
            &fixture("reference.jsonl"),
        ],
        None,
    );
    assert_eq!(
        err,
        format!("error: {json}: item 1 (\"q1\"): c must be in [0, 1) (got 1.5)")
    );
}

#[test]
fn bad_response_lines_are_named() {
    let tmp = TempDir::new("badresp");
    let bank = fixture("reference.csv");
    let cases = [
        (
            "{\"items\": [\"rasch1\"], \"answers\": [1]}\n\n{\"items\": [\"rasch1\", \"q17\"], \"answers\": [1, 0]}\n",
            "line 3: unknown item \"q17\"",
        ),
        (
            "{\"items\": [\"rasch1\", \"rasch2\"], \"answers\": [1]}\n",
            "line 1: 2 items but 1 answers (they must pair up)",
        ),
        (
            "{\"items\": [\"rasch1\"], \"answers\": [1]}\n{\"items\": [\"rasch1\"], \"answers\": [1}\n",
            "line 2: invalid JSON at column 36: expected `,` or `]`",
        ),
        (
            "{\"items\": [\"rasch1\"], \"answers\": [\"yes\"]}\n",
            "line 1: answers[0] must be 0, 1, true or false for item \"rasch1\" (got \"yes\")",
        ),
    ];
    for (k, (content, message)) in cases.into_iter().enumerate() {
        let file = tmp.file(&format!("answers{k}.jsonl"), content);
        let err = fails(&["estimate", "--bank", &bank, "--responses", &file], None);
        assert_eq!(err, format!("error: {file}: {message}"));
    }
    // From standard input the file is called <stdin>.
    let err = fails(
        &["estimate", "--bank", &bank, "--responses", "-"],
        Some("{\"items\": [\"nope\"], \"answers\": [0]}\n"),
    );
    assert_eq!(err, "error: <stdin>: line 1: unknown item \"nope\"");
}

#[test]
fn missing_files_are_named() {
    let tmp = TempDir::new("missing");
    let gone = tmp.path("gone.jsonl").to_string_lossy().into_owned();
    let err = fails(
        &[
            "estimate",
            "--bank",
            &fixture("reference.csv"),
            "--responses",
            &gone,
        ],
        None,
    );
    assert_eq!(
        err,
        format!("error: {gone}: cannot read: no such file or directory")
    );
    let err = fails(
        &[
            "estimate",
            "--bank",
            &gone,
            "--responses",
            &fixture("reference.jsonl"),
        ],
        None,
    );
    assert_eq!(
        err,
        format!("error: {gone}: cannot read: no such file or directory")
    );
}

#[test]
fn usage_errors_come_from_clap() {
    let out = run(&["estimate", "--bank", "x.csv"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--responses <FILE>"));
    let out = run(
        &[
            "simulate",
            "--generate",
            "10",
            "--examinees",
            "5",
            "--seed",
            "1",
            "--confidence",
            "0.9",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = fails(
        &[
            "simulate",
            "--generate",
            "10",
            "--examinees",
            "5",
            "--seed",
            "1",
            "--min-items",
            "30",
        ],
        None,
    );
    assert_eq!(
        err,
        "error: --min-items (30) must not exceed --max-items (20)"
    );
}

// ---------------------------------------------------------------------------
// simulate
// ---------------------------------------------------------------------------

const SUMMARY_FIELDS: [&str; 12] = [
    "examinees",
    "bias",
    "rmse",
    "mean_se",
    "correlation",
    "mean_length",
    "min_length",
    "max_length",
    "max_exposure",
    "overlap_rate",
    "never_used",
    "wall_seconds",
];

fn simulate(extra: &[&str]) -> Value {
    let mut args = vec![
        "simulate",
        "--generate",
        "300",
        "--examinees",
        "200",
        "--seed",
        "7",
        "--max-items",
        "15",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&args)).unwrap()
}

#[test]
fn simulate_summary_is_complete_and_reproducible() {
    let mut first = simulate(&[]);
    for field in SUMMARY_FIELDS {
        assert!(first.get(field).is_some(), "no {field} in {first}");
    }
    assert_eq!(first["examinees"], 200);
    assert_eq!(first["mean_length"].as_f64(), Some(15.0));
    assert_eq!(first["min_length"], 15);
    assert_eq!(first["max_length"], 15);
    assert!(first["bias"].as_f64().unwrap().abs() < 0.15, "{first}");
    assert!(first["rmse"].as_f64().unwrap() < 0.6, "{first}");
    assert!(first["correlation"].as_f64().unwrap() > 0.85, "{first}");
    assert_eq!(first["stop_reasons"]["max_items"], 200);
    let config = &first["config"];
    assert_eq!(config["bank"], "generated");
    assert_eq!(config["bank_items"], 300);
    assert_eq!(config["seed"], 7);
    assert_eq!(config["estimator"], "eap");
    assert_eq!(config["selector"], "max-info");
    assert_eq!(config["max_items"], 15);

    let mut second = simulate(&["--threads", "1"]);
    let mut third = simulate(&["--threads", "3"]);
    for v in [&mut first, &mut second, &mut third] {
        assert!(v["wall_seconds"].as_f64().unwrap() >= 0.0);
        v.as_object_mut().unwrap().remove("wall_seconds");
        v["config"].as_object_mut().unwrap().remove("threads");
    }
    assert_eq!(first, second);
    assert_eq!(first, third);
    let other: Value = serde_json::from_str(&ok(&[
        "simulate",
        "--generate",
        "300",
        "--examinees",
        "200",
        "--seed",
        "8",
        "--max-items",
        "15",
    ]))
    .unwrap();
    assert_ne!(first["bias"], other["bias"]);
    assert_ne!(first["rmse"], other["rmse"]);
}

#[test]
fn simulate_stop_rules_and_selectors() {
    let v = simulate(&[
        "--se-target",
        "0.45",
        "--min-items",
        "5",
        "--randomesque",
        "3",
    ]);
    assert_eq!(v["config"]["selector"], "randomesque");
    assert_eq!(v["config"]["randomesque_k"], 3);
    assert_eq!(v["config"]["se_target"], 0.45);
    assert!(v["min_length"].as_u64().unwrap() >= 5, "{v}");
    assert!(v["mean_length"].as_f64().unwrap() < 15.0, "{v}");
    assert!(v["stop_reasons"]["se_target"].as_u64().unwrap() > 0, "{v}");
    let classified = simulate(&[
        "--cut-score",
        "0",
        "--confidence",
        "0.9",
        "--estimator",
        "map",
    ]);
    let reasons = classified["stop_reasons"].as_object().unwrap();
    assert!(
        reasons.contains_key("classified_above") && reasons.contains_key("classified_below"),
        "{classified}"
    );
    assert_eq!(classified["config"]["confidence"], 0.9);
    assert_eq!(classified["config"]["estimator"], "map");
    assert!(classified["config"]["eap_grid"].is_null());
}

/// A bank of two concepts where the most informative items are "geometry"
/// items with exposure parameter 0.
fn tagged_bank() -> String {
    let mut csv = String::from("id,a,b,c,d,concepts,exposure\n");
    for i in 0..40 {
        let b = -2.0 + 4.0 * f64::from(i) / 39.0;
        let (concept, a, exposure) = if i % 2 == 0 {
            ("algebra", 1.0, 1.0)
        } else {
            ("geometry", 2.0, if i % 4 == 1 { 0.0 } else { 1.0 })
        };
        csv.push_str(&format!("i{i},{a},{b},0,1,{concept},{exposure}\n"));
    }
    csv
}

fn report_responses(dir: &TempDir) -> Vec<Vec<String>> {
    std::fs::read_to_string(dir.path("report/responses.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn content_balance_and_exposure_control_are_applied() {
    let tmp = TempDir::new("balance");
    let bank = tmp.file("bank.csv", &tagged_bank());
    let report = tmp.path("report").to_string_lossy().into_owned();
    let base = [
        "simulate",
        "--bank",
        &bank,
        "--examinees",
        "30",
        "--seed",
        "3",
        "--max-items",
        "10",
        "--report",
        &report,
    ];
    let concept = |id: &str| id[1..].parse::<u32>().unwrap() % 2;

    // Unbalanced, the more discriminating geometry items dominate.
    ok(&base);
    let plain = report_responses(&tmp);
    let geometry: usize = plain
        .iter()
        .map(|t| t.iter().filter(|i| concept(i) == 1).count())
        .sum();
    assert!(geometry > 200, "{geometry} of 300");
    assert!(
        plain
            .iter()
            .flatten()
            .any(|i| concept(i) == 1 && i[1..].parse::<u32>().unwrap() % 4 == 1),
        "exposure-0 items are used without control"
    );

    // Balanced half and half: every 10-item test has 5 of each.
    let mut args = base.to_vec();
    args.extend([
        "--content-balance",
        "algebra=1, geometry=1",
        "--exposure-control",
    ]);
    let v: Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(v["config"]["content_balance"][0]["concept"], "algebra");
    assert_eq!(v["config"]["content_balance"][1]["proportion"], 0.5);
    assert_eq!(v["config"]["exposure_control"], true);
    for test in report_responses(&tmp) {
        assert_eq!(test.len(), 10);
        assert_eq!(
            test.iter().filter(|i| concept(i) == 1).count(),
            5,
            "{test:?}"
        );
        // Sympson–Hetter never gives an item with k = 0 while others are left.
        assert!(
            test.iter().all(|i| i[1..].parse::<u32>().unwrap() % 4 != 1),
            "{test:?}"
        );
    }

    let err = fails(
        &[
            "simulate",
            "--bank",
            &bank,
            "--examinees",
            "3",
            "--seed",
            "1",
            "--content-balance",
            "algebra=0.5,history=0.5",
        ],
        None,
    );
    assert_eq!(
        err,
        "error: --content-balance: unknown concept \"history\" (the bank's concepts: algebra, geometry)"
    );
}

#[test]
fn report_writes_page_plots_and_raw_results() {
    let tmp = TempDir::new("report");
    let dir = tmp.path("out/report");
    let dir_arg = dir.to_string_lossy().into_owned();
    let printed: Value = serde_json::from_str(&ok(&[
        "simulate",
        "--generate",
        "120",
        "--examinees",
        "60",
        "--seed",
        "11",
        "--max-items",
        "12",
        "--se-target",
        "0.5",
        "--report",
        &dir_arg,
    ]))
    .unwrap();
    let svgs = [
        "scatter.svg",
        "conditional.svg",
        "lengths.svg",
        "exposure.svg",
        "information.svg",
        "information-by-model.svg",
        "curves.svg",
    ];
    for name in svgs {
        let svg = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(svg.len() > 1000, "{name} is nearly empty");
        assert!(svg.contains("<svg"), "{name}");
        assert!(svg.contains("<text"), "{name} has no text");
        assert!(svg.trim_end().ends_with("</svg>"), "{name}");
    }
    let scatter = std::fs::read_to_string(dir.join("scatter.svg")).unwrap();
    assert_eq!(
        scatter.matches("<circle").count(),
        60 + 1,
        "one per examinee + legend"
    );

    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(
        html.matches("<svg").count(),
        svgs.len(),
        "plots are inlined"
    );
    assert_eq!(html.matches("<figcaption>").count(), svgs.len());
    for needle in [
        "RMSE",
        "Bias",
        "SE target",
        "0.5",
        "Conditional statistics",
        "identity line",
    ] {
        assert!(html.contains(needle), "index.html lacks {needle:?}");
    }

    // summary.json = the printed summary plus the conditional statistics.
    let mut saved: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let bins = saved
        .as_object_mut()
        .unwrap()
        .remove("conditional")
        .unwrap();
    assert_eq!(saved, printed);
    let bins = bins.as_array().unwrap();
    assert_eq!(bins.len(), 12);
    let n: u64 = bins.iter().map(|b| b["n"].as_u64().unwrap()).sum();
    assert!(n <= 60 && n > 50, "{n}");
    for b in bins {
        // Empty bins carry nulls, not NaN (which is not JSON).
        assert_eq!(b["n"] == 0, b["bias"].is_null(), "{b}");
    }

    // The raw results re-estimate to the same values.
    let reestimated = ok(&[
        "estimate",
        "--bank",
        &dir.join("bank.csv").to_string_lossy(),
        "--responses",
        &dir.join("responses.jsonl").to_string_lossy(),
    ]);
    let examinees = std::fs::read_to_string(dir.join("examinees.csv")).unwrap();
    let rows: Vec<&str> = examinees.lines().skip(1).collect();
    assert_eq!(rows.len(), 60);
    for (line, row) in reestimated.lines().zip(&rows) {
        let v: Value = serde_json::from_str(line).unwrap();
        let theta: f64 = row.split(',').nth(2).unwrap().parse().unwrap();
        assert_eq!(v["theta"].as_f64().unwrap(), theta);
    }
}

#[test]
fn report_directory_problems_are_one_line() {
    let tmp = TempDir::new("reportdir");
    let blocker = tmp.file("file", "not a directory");
    let target = format!("{blocker}/report");
    let err = fails(
        &[
            "simulate",
            "--generate",
            "10",
            "--examinees",
            "2",
            "--seed",
            "1",
            "--report",
            &target,
        ],
        None,
    );
    assert!(
        err.starts_with(&format!("error: {target}: cannot create directory: ")),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Polytomous and mixed banks
// ---------------------------------------------------------------------------

/// The items of `poly.json` / `poly.csv`, built with the engine.
fn poly_items() -> Vec<lectern_engine::Item> {
    use lectern_engine::Item;
    vec![
        Item::grm(1.4, vec![-1.2, -0.1, 0.9, 2.0]).unwrap(),
        Item::grm(0.9, vec![-0.5, 0.7]).unwrap(),
        Item::gpcm(1.1, vec![0.3, -0.4, 1.2]).unwrap(),
        Item::gpcm(1.7, vec![-1.0, 0.5, 0.2, 1.5]).unwrap(),
        Item::pcm(vec![-0.8, 0.4]).unwrap(),
        Item::pcm(vec![0.0, 1.1, -0.3, 0.9]).unwrap(),
    ]
}

/// The engine's estimates of `patterns` on `items` with `estimator` and the
/// tool's default options (N(0, 1) prior, 61 EAP points on [−6, 6]).
fn engine_estimates(
    items: Vec<lectern_engine::Item>,
    patterns: &[(Vec<usize>, Vec<u8>)],
    estimator: &str,
) -> Vec<(f64, f64)> {
    use lectern_engine::{EstimatorKind, ItemBank, NormalPrior};
    let bank = ItemBank::without_concepts(items);
    let kind = match estimator {
        "eap" => EstimatorKind::Eap,
        "map" => EstimatorKind::Map,
        "mle" => EstimatorKind::Mle,
        _ => EstimatorKind::Wle,
    };
    let estimator = kind.build(NormalPrior::new(0.0, 1.0));
    patterns
        .iter()
        .map(|(items, scores)| {
            let e = estimator.estimate(&bank, items, scores);
            (e.theta, e.se)
        })
        .collect()
}

fn estimates_of(bank: &str, responses: &str, estimator: &str) -> Vec<(f64, f64)> {
    ok(&[
        "estimate",
        "--bank",
        bank,
        "--responses",
        responses,
        "--estimator",
        estimator,
    ])
    .lines()
    .map(|line| {
        let v: Value = serde_json::from_str(line).unwrap();
        (v["theta"].as_f64().unwrap(), v["se"].as_f64().unwrap())
    })
    .collect()
}

#[test]
fn estimate_on_a_grm_bank_is_the_engines_estimate() {
    use lectern_engine::Item;
    let tmp = TempDir::new("grm");
    let items: Vec<Item> = (0..8)
        .map(|i| {
            let loc = -1.5 + 0.4 * f64::from(i);
            Item::grm(0.8 + 0.2 * f64::from(i), vec![loc - 1.0, loc, loc + 1.2]).unwrap()
        })
        .collect();
    let json: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let Item::Polytomous(p) = item else {
                unreachable!()
            };
            format!(
                r#"{{"id": "g{i}", "model": "grm", "a": {}, "b": {:?}}}"#,
                p.a(),
                p.thresholds()
            )
        })
        .collect();
    let bank = tmp.file("grm.json", &format!("[{}]", json.join(",\n")));
    let patterns: Vec<(Vec<usize>, Vec<u8>)> = vec![
        (vec![0, 1, 2], vec![3, 2, 1]),
        (vec![7, 3, 5, 1], vec![0, 0, 1, 0]),
        (vec![4, 6], vec![3, 3]),
        (vec![2], vec![0]),
        (vec![], vec![]),
    ];
    let lines: Vec<String> = patterns
        .iter()
        .map(|(items, scores)| {
            let ids: Vec<String> = items.iter().map(|i| format!("\"g{i}\"")).collect();
            format!(
                r#"{{"items": [{}], "answers": {scores:?}}}"#,
                ids.join(", ")
            )
        })
        .collect();
    let responses = tmp.file("grm.jsonl", &lines.join("\n"));
    for estimator in ["eap", "map", "mle", "wle"] {
        assert_eq!(
            estimates_of(&bank, &responses, estimator),
            engine_estimates(items.clone(), &patterns, estimator),
            "{estimator}"
        );
    }
    // The fixture bank of GRM, GPCM and PCM items too.
    let patterns = [
        (vec![0, 1, 2], vec![3, 1, 2]),
        (vec![3, 4, 5], vec![0, 2, 4]),
        (vec![0, 3], vec![4, 4]),
        (vec![0, 1, 4], vec![0, 0, 0]),
    ];
    for estimator in ["eap", "map", "mle", "wle"] {
        assert_eq!(
            estimates_of(&fixture("poly.json"), &fixture("poly.jsonl"), estimator),
            engine_estimates(poly_items(), &patterns, estimator),
            "{estimator}"
        );
    }
}

#[test]
fn polytomous_and_mixed_banks_read_alike_from_json_and_csv() {
    for (name, lines) in [("poly", 4), ("mixed", 3)] {
        for estimator in ["eap", "map", "mle", "wle"] {
            let responses = fixture(&format!("{name}.jsonl"));
            let from_json = estimates_of(&fixture(&format!("{name}.json")), &responses, estimator);
            let from_csv = estimates_of(&fixture(&format!("{name}.csv")), &responses, estimator);
            assert_eq!(from_json.len(), lines);
            assert_eq!(from_json, from_csv, "{name} {estimator}");
            assert!(
                from_json
                    .iter()
                    .all(|&(t, se)| t.is_finite() && se.is_finite() && se > 0.0),
                "{from_json:?}"
            );
        }
    }
    // --scale multiplies every a (a PCM item becomes a GPCM item with a = D).
    let scaled = ok(&[
        "estimate",
        "--bank",
        &fixture("mixed.csv"),
        "--responses",
        &fixture("mixed.jsonl"),
        "--scale",
        "1.702",
    ]);
    assert_ne!(
        scaled,
        ok(&[
            "estimate",
            "--bank",
            &fixture("mixed.csv"),
            "--responses",
            &fixture("mixed.jsonl"),
        ])
    );
}

#[test]
fn bad_polytomous_input_is_one_line_naming_file_place_and_problem() {
    let tmp = TempDir::new("badpoly");
    let responses = fixture("poly.jsonl");
    let bank_cases = [
        (
            "order.csv",
            "id,model,a,b1,b2,b3\ng1,grm,1,-1,0,1\ng2,grm,1.2,-1,0.5,0.2\n",
            "row 3: graded-response thresholds must be strictly increasing (b3 is not above b2)",
        ),
        (
            "many.json",
            r#"[{"id": "g1", "model": "gpcm", "a": 1, "b": [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]}]"#,
            "item 1 (\"g1\"): a polytomous item has 2 to 10 categories, i.e. 1 to 9 thresholds (got 11 categories)",
        ),
        (
            "one.json",
            r#"[{"id": "g1", "model": "grm", "a": 1, "b": []}]"#,
            "item 1 (\"g1\"): a polytomous item has 2 to 10 categories, i.e. 1 to 9 thresholds (got 1 category)",
        ),
        (
            "many.csv",
            "id,model,a,b1,b2,b3,b4,b5,b6,b7,b8,b9,b10\n",
            "row 1: column \"b10\": an item has at most 9 thresholds, b1…b9 (10 categories)",
        ),
        (
            "model.csv",
            "id,model,a,b,b1,b2\nq1,2pl,1,0,,\nq2,graded,1,,0,1\n",
            "row 3: unknown model \"graded\" (expected one of 1pl, 2pl, 3pl, 4pl, grm, gpcm, pcm)",
        ),
        (
            "nomodel.json",
            r#"[{"id": "g1", "a": 1, "b": [0, 1]}]"#,
            "item 1 (\"g1\"): b is a list: say which polytomous model it is (grm, gpcm or pcm)",
        ),
        (
            "fixed.csv",
            "id,model,a,b,c\nq1,2pl,1,0,0.25\n",
            "row 2: a 2pl item has c = 0 (got 0.25)",
        ),
    ];
    for (file, content, message) in bank_cases {
        let bank = tmp.file(file, content);
        for command in ["estimate", "simulate"] {
            let args: &[&str] = if command == "estimate" {
                &["estimate", "--bank", &bank, "--responses", &responses]
            } else {
                &[
                    "simulate",
                    "--bank",
                    &bank,
                    "--examinees",
                    "2",
                    "--seed",
                    "1",
                ]
            };
            assert_eq!(
                fails(args, None),
                format!("error: {bank}: {message}"),
                "{command} {file}"
            );
        }
    }
    // A score above the item's highest.
    let answers = tmp.file(
        "scores.jsonl",
        "{\"items\": [\"essay1\"], \"answers\": [4]}\n\n{\"items\": [\"essay1\", \"essay2\"], \"answers\": [4, 3]}\n",
    );
    assert_eq!(
        fails(
            &[
                "estimate",
                "--bank",
                &fixture("poly.csv"),
                "--responses",
                &answers
            ],
            None
        ),
        format!(
            "error: {answers}: line 3: answers[1] must be an integer score from 0 to 2 for item \"essay2\" (got 3)"
        )
    );
}

#[test]
fn simulate_option_errors_for_generated_polytomous_banks() {
    let base = [
        "simulate",
        "--generate",
        "20",
        "--examinees",
        "2",
        "--seed",
        "1",
    ];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }
    for bad in ["1", "11", "x"] {
        let out = run(&with(&base, &["--model", "grm", "--categories", bad]), None);
        assert_eq!(out.status.code(), Some(2), "--categories {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with(&format!(
                "error: invalid value '{bad}' for '--categories <K>': a polytomous item has 2 to 10 categories (got \"{bad}\")"
            )),
            "{err}"
        );
    }
    assert_eq!(
        fails(&with(&base, &["--categories", "4"]), None),
        "error: --categories applies to a polytomous --model (grm, gpcm or pcm), not 3pl"
    );
    let out = run(
        &[
            "simulate",
            "--bank",
            "b.csv",
            "--model",
            "grm",
            "--examinees",
            "2",
            "--seed",
            "1",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "--model needs --generate");
    let tmp = TempDir::new("curvesitem");
    let report = tmp.path("r").to_string_lossy().into_owned();
    assert_eq!(
        fails(
            &with(&base, &["--report", &report, "--curves-item", "nope"]),
            None
        ),
        "error: --curves-item: the bank has no item \"nope\""
    );
}

/// The printed summary without what depends on the machine (time, threads).
fn comparable(stdout: &str) -> Value {
    let mut v: Value = serde_json::from_str(stdout).unwrap();
    v.as_object_mut().unwrap().remove("wall_seconds");
    v["config"].as_object_mut().unwrap().remove("threads");
    v
}

/// Checks that `dir`'s bank.csv and responses.jsonl re-estimate (with
/// `estimator`) to the θ of examinees.csv.
fn reestimates_exactly(dir: &Path, estimator: &str) {
    let reestimated = estimates_of(
        &dir.join("bank.csv").to_string_lossy(),
        &dir.join("responses.jsonl").to_string_lossy(),
        estimator,
    );
    let examinees = std::fs::read_to_string(dir.join("examinees.csv")).unwrap();
    let thetas: Vec<f64> = examinees
        .lines()
        .skip(1)
        .map(|row| row.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    assert_eq!(reestimated.iter().map(|e| e.0).collect::<Vec<_>>(), thetas);
}

#[test]
fn simulate_generated_grm_bank_with_report() {
    let tmp = TempDir::new("grmsim");
    let dir = tmp.path("report");
    let args = |threads: &'static str, report: &str| {
        ok(&[
            "simulate",
            "--generate",
            "300",
            "--model",
            "grm",
            "--categories",
            "5",
            "--examinees",
            "200",
            "--seed",
            "7",
            "--max-items",
            "12",
            "--threads",
            threads,
            "--report",
            report,
        ])
    };
    let first = comparable(&args("1", &dir.to_string_lossy()));
    let responses = std::fs::read_to_string(dir.join("responses.jsonl")).unwrap();
    let other = tmp.path("other");
    assert_eq!(first, comparable(&args("3", &other.to_string_lossy())));
    assert_eq!(
        responses,
        std::fs::read_to_string(other.join("responses.jsonl")).unwrap(),
        "the same answers whatever --threads"
    );
    assert_eq!(first["config"]["bank_models"]["grm"], 300);
    assert!(
        first["config"]["generated"]
            .as_str()
            .unwrap()
            .starts_with("GRM, 5 categories: "),
        "{first}"
    );
    assert!(first["correlation"].as_f64().unwrap() > 0.9, "{first}");
    assert!(first["rmse"].as_f64().unwrap() < 0.4, "{first}");

    // Scores 0…4, all of them used.
    let mut seen = [false; 5];
    for line in responses.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        for s in v["answers"].as_array().unwrap() {
            seen[usize::try_from(s.as_u64().unwrap()).unwrap()] = true;
        }
    }
    assert_eq!(seen, [true; 5]);
    let bank_csv = std::fs::read_to_string(dir.join("bank.csv")).unwrap();
    assert!(
        bank_csv.starts_with("id,model,a,b,b1,b2,b3,b4,c,d,concepts,exposure\ng001,grm,"),
        "{}",
        &bank_csv[..200]
    );
    reestimates_exactly(&dir, "eap");

    // The new plots: category response curves (one per score) and information by model.
    let curves = std::fs::read_to_string(dir.join("curves.svg")).unwrap();
    assert!(curves.contains("Category response curves: item g"), "title");
    for k in 0..5 {
        assert!(curves.contains(&format!("score {k}")), "score {k}");
    }
    assert!(!curves.contains("score 5"));
    let by_model = std::fs::read_to_string(dir.join("information-by-model.svg")).unwrap();
    assert!(by_model.contains("grm (300 items)"));
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    for needle in [
        "<figure id=\"curves\">",
        "<figure id=\"information-by-model\">",
        "the most exposed polytomous item",
        "Category response curves",
        "Bank information by model",
        "grm 300",
    ] {
        assert!(html.contains(needle), "index.html lacks {needle:?}");
    }

    // The partial credit models too, with another number of categories.
    for model in ["gpcm", "pcm"] {
        let v = comparable(&ok(&[
            "simulate",
            "--generate",
            "100",
            "--model",
            model,
            "--categories",
            "3",
            "--examinees",
            "40",
            "--seed",
            "2",
        ]));
        assert_eq!(v["config"]["bank_models"][model], 100, "{v}");
        assert!(v["correlation"].as_f64().unwrap() > 0.8, "{v}");
    }
}

/// A mixed bank of two concepts: 3PL, GRM and GPCM items in turn; every
/// fourth item (all "geometry") has exposure parameter 0.
fn mixed_tagged_bank() -> String {
    let mut csv = String::from("id,model,a,b,b1,b2,b3,c,concepts,exposure\n");
    for i in 0..60 {
        let loc = -2.0 + 4.0 * f64::from(i) / 59.0;
        let item = match i % 3 {
            0 => format!("3pl,1.2,{loc},,,,0.15"),
            1 => format!("grm,1.5,,{},{loc},{},", loc - 0.8, loc + 0.8),
            _ => format!("gpcm,1.1,,{},{},,", loc + 0.3, loc - 0.3),
        };
        let concept = if i % 2 == 0 { "algebra" } else { "geometry" };
        let exposure = if i % 4 == 1 { 0 } else { 1 };
        csv.push_str(&format!("i{i},{item},{concept},{exposure}\n"));
    }
    csv
}

#[test]
fn simulate_mixed_bank_with_every_option() {
    let tmp = TempDir::new("mixedsim");
    let bank = tmp.file("mixed.csv", &mixed_tagged_bank());
    let dir = tmp.path("report");
    let report = dir.to_string_lossy().into_owned();
    let run_with = |extra: &[&str]| {
        let mut args = vec![
            "simulate",
            "--bank",
            &bank,
            "--examinees",
            "30",
            "--seed",
            "5",
            "--max-items",
            "10",
            "--report",
            &report,
        ];
        args.extend_from_slice(extra);
        comparable(&ok(&args))
    };
    let number = |id: &str| id[1..].parse::<u32>().unwrap();
    for estimator in ["eap", "map", "mle", "wle"] {
        let v = run_with(&[
            "--estimator",
            estimator,
            "--content-balance",
            "algebra=1,geometry=1",
            "--exposure-control",
            "--randomesque",
            "3",
            "--curves-item",
            "i3",
        ]);
        assert_eq!(v["config"]["estimator"], estimator);
        assert_eq!(v["config"]["bank_models"]["3pl"], 20);
        assert_eq!(v["config"]["bank_models"]["grm"], 20);
        assert_eq!(v["config"]["bank_models"]["gpcm"], 20);
        for test in report_responses(&tmp) {
            assert_eq!(test.len(), 10);
            assert_eq!(
                test.iter().filter(|i| number(i) % 2 == 1).count(),
                5,
                "content balance: {test:?}"
            );
            assert!(
                test.iter().all(|i| number(i) % 4 != 1),
                "Sympson–Hetter: {test:?}"
            );
        }
        reestimates_exactly(&dir, estimator);
        let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
        assert!(html.contains("item i3 (3pl; a = 1.200"), "curves of i3");
        assert!(html.contains("chosen with --curves-item"));
        let by_model = std::fs::read_to_string(dir.join("information-by-model.svg")).unwrap();
        for model in ["3pl (20 items)", "grm (20 items)", "gpcm (20 items)"] {
            assert!(by_model.contains(model), "{model}");
        }
    }
    // Variable length and classification stop rules.
    let v = run_with(&["--se-target", "0.5", "--min-items", "3"]);
    assert!(v["min_length"].as_u64().unwrap() >= 3, "{v}");
    assert!(v["stop_reasons"]["se_target"].as_u64().unwrap() > 0, "{v}");
    let v = run_with(&[
        "--cut-score",
        "0.2",
        "--estimator",
        "map",
        "--start-theta",
        "1",
    ]);
    let reasons = v["stop_reasons"].as_object().unwrap();
    assert!(
        reasons.contains_key("classified_above") && reasons.contains_key("classified_below"),
        "{v}"
    );
    // Scores above 1 are drawn for the polytomous items only.
    for line in std::fs::read_to_string(dir.join("responses.jsonl"))
        .unwrap()
        .lines()
    {
        let v: Value = serde_json::from_str(line).unwrap();
        let items = v["items"].as_array().unwrap();
        for (item, score) in items.iter().zip(v["answers"].as_array().unwrap()) {
            // 3PL, GRM with 3 thresholds, GPCM with 2.
            let max = [1, 3, 2][number(item.as_str().unwrap()) as usize % 3];
            assert!(score.as_u64().unwrap() <= max, "{item} {score}");
        }
    }
}

/// Long-form CSV of 2PL responses: `persons` × 20 items (a = 0.8 + 0.06 k,
/// b = −1.9 + 0.2 k), θ ~ N(0, 1) from a fixed xorshift stream; every third
/// response is left out (not administered). Returns the CSV and the items.
fn two_pl_responses(persons: usize) -> (String, Vec<(f64, f64)>) {
    let items: Vec<(f64, f64)> = (0..20)
        .map(|k| (0.8 + 0.06 * k as f64, -1.9 + 0.2 * k as f64))
        .collect();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut csv = String::from("person,item,score\n");
    for p in 0..persons {
        let theta =
            (-2.0 * (1.0 - uniform()).ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
        for (k, &(a, b)) in items.iter().enumerate() {
            let u = uniform();
            if (p + k) % 3 == 0 {
                continue;
            }
            let right = u < 1.0 / (1.0 + (-a * (theta - b)).exp());
            csv.push_str(&format!("p{p},i{k:02},{}\n", u8::from(right)));
        }
    }
    (csv, items)
}

#[test]
fn calibrate_recovers_items_and_writes_a_bank_that_estimate_reads() {
    let dir = TempDir::new("calibrate");
    let (csv, truth) = two_pl_responses(3000);
    let responses = dir.file("responses.csv", &csv);
    let out1 = dir.path("one.json");
    let out2 = dir.path("two.json");
    let summary: Value = serde_json::from_str(&ok(&[
        "calibrate",
        "--responses",
        &responses,
        "--threads",
        "1",
        "--out",
        out1.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(summary["converged"], true);
    assert_eq!(summary["items"], 20);
    assert_eq!(summary["parameters"], 40);
    assert_eq!(summary["persons"], 3000);
    assert_eq!(summary["responses"], 40000);
    let ll = summary["log_likelihood"].as_f64().unwrap();
    assert_eq!(summary["aic"].as_f64().unwrap(), -2.0 * ll + 80.0);
    ok(&[
        "calibrate",
        "--responses",
        &responses,
        "--threads",
        "2",
        "--out",
        out2.to_str().unwrap(),
    ]);
    let bank = std::fs::read_to_string(&out1).unwrap();
    assert_eq!(
        bank,
        std::fs::read_to_string(&out2).unwrap(),
        "threads changed the output"
    );
    let items: Vec<Value> = serde_json::from_str(&bank).unwrap();
    let mut sq = (0.0, 0.0);
    assert_eq!(items.len(), 20);
    for item in &items {
        let k: usize = item["id"].as_str().unwrap()[1..].parse().unwrap();
        let (a, b) = truth[k];
        assert_eq!(item["model"], "2pl");
        let (ea, eb) = (item["a"].as_f64().unwrap(), item["b"].as_f64().unwrap());
        sq.0 += (ea - a).powi(2);
        sq.1 += (eb - b).powi(2);
        assert!(item["se"]["a"].as_f64().unwrap() > 0.0 && item["se"]["b"].as_f64().unwrap() > 0.0);
        assert_eq!(item["responses"], 2000);
    }
    let (ra, rb) = ((sq.0 / 20.0).sqrt(), (sq.1 / 20.0).sqrt());
    assert!(ra < 0.12 && rb < 0.12, "RMSE a {ra} b {rb}");
    // The written bank is a bank: `estimate` reads it.
    let pattern = dir.file(
        "p.jsonl",
        "{\"items\": [\"i00\", \"i19\"], \"answers\": [1, 0]}\n",
    );
    let est: Value = serde_json::from_str(
        ok(&[
            "estimate",
            "--bank",
            out1.to_str().unwrap(),
            "--responses",
            &pattern,
        ])
        .trim(),
    )
    .unwrap();
    assert!(est["theta"].as_f64().unwrap().is_finite());
}

#[test]
fn calibrate_anchors_new_items_on_fixed_ones() {
    let dir = TempDir::new("calibrate-fixed");
    let (csv, truth) = two_pl_responses(3000);
    let responses = dir.file("responses.csv", &csv);
    let fixed: Vec<Value> = truth[..12]
        .iter()
        .enumerate()
        .map(|(k, (a, b))| serde_json::json!({"id": format!("i{k:02}"), "model": "2pl", "a": a, "b": b}))
        .collect();
    let fixed = dir.file("fixed.json", &Value::from(fixed).to_string());
    let out = dir.path("new.json");
    let summary: Value = serde_json::from_str(&ok(&[
        "calibrate",
        "--responses",
        &responses,
        "--fixed",
        &fixed,
        "--out",
        out.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(summary["fixed"], 12);
    assert_eq!(summary["items"], 8);
    assert_eq!(summary["latent"]["estimated"], true);
    assert!(summary["latent"]["mean"].as_f64().unwrap().abs() < 0.1);
    assert!((summary["latent"]["sd"].as_f64().unwrap() - 1.0).abs() < 0.1);
    let items: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let mut ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (12..20).map(|k| format!("i{k:02}")).collect::<Vec<_>>()
    );
}

#[test]
fn calibrate_refuses_bad_input_in_one_line() {
    let dir = TempDir::new("calibrate-bad");
    let scores = dir.file("r.csv", "person,item,score\np1,q1,1\np2,q1,2\np3,q1,0\n");
    assert_eq!(
        fails(&["calibrate", "--responses", &scores], None),
        format!("error: {scores}: row 3: item \"q1\": score 2 is above its highest score 1")
    );
    let unrelated = dir.file("fixed.json", "[{\"id\": \"zz\", \"a\": 1, \"b\": 0}]");
    assert_eq!(
        fails(
            &[
                "calibrate",
                "--responses",
                &scores,
                "--model",
                "grm",
                "--fixed",
                &unrelated
            ],
            None
        ),
        format!(
            "error: {unrelated}: none of its items is in the responses, so it cannot anchor the scale"
        )
    );
    let twice = dir.file(
        "t.jsonl",
        "{\"person\": 1, \"item\": 2, \"score\": 1}\n{\"person\": 1, \"item\": 2, \"score\": 0}\n",
    );
    assert_eq!(
        fails(&["calibrate", "--responses", &twice], None),
        format!("error: {twice}: line 2: person \"1\" answered item \"2\" twice")
    );
    let out = dir.path("never.json");
    fails(
        &[
            "calibrate",
            "--responses",
            &scores,
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------
// calibrate-exposure
// ---------------------------------------------------------------------------

/// The calibration design: 200 generated 3PL items, 1,000 examinees, 20-item
/// tests, maximum information (the default), target 0.25. The tolerance, 0.04,
/// is above what chance alone adds to the largest of some 60 rates held to
/// 0.25 among 1,000 examinees: 2 to 3 times √(0.25 · 0.75 / 1000) ≈ 0.014.
const CALIBRATION: [&str; 12] = [
    "--generate",
    "200",
    "--examinees",
    "1000",
    "--seed",
    "7",
    "--max-items",
    "20",
    "--target-exposure",
    "0.25",
    "--tolerance",
    "0.04",
];

fn calibrate(out: &str, extra: &[&str]) -> Value {
    let mut args = vec!["calibrate-exposure", "--out", out];
    args.extend_from_slice(&CALIBRATION);
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&args)).unwrap()
}

/// `simulate` of the calibration design on `bank` with exposure control.
fn replay(bank: &str) -> Value {
    serde_json::from_str(&ok(&[
        "simulate",
        "--bank",
        bank,
        "--exposure-control",
        "--examinees",
        "1000",
        "--seed",
        "7",
        "--max-items",
        "20",
    ]))
    .unwrap()
}

#[test]
fn calibrate_exposure_meets_the_target_and_its_bank_replays_it() {
    let tmp = TempDir::new("shcal");
    let out = tmp.path("bank-sh.json").to_string_lossy().into_owned();
    let v = calibrate(&out, &["--threads", "2"]);
    assert_eq!(v["converged"], true, "{v}");
    let max = v["max_exposure"].as_f64().unwrap();
    assert!(max <= 0.25 + 0.04 + 1e-9, "{v}");
    let free = &v["unconstrained"];
    assert!(free["max_exposure"].as_f64().unwrap() > 0.5, "{v}");
    assert!(v["rmse"].as_f64().unwrap() < 0.5, "{v}");
    assert!(free["rmse"].as_f64().unwrap() < v["rmse"].as_f64().unwrap() + 0.1);
    assert!(
        v["overlap_rate"].as_f64().unwrap() < free["overlap_rate"].as_f64().unwrap(),
        "{v}"
    );
    let controlled = v["controlled_items"].as_u64().unwrap();
    assert!(controlled > 10, "{v}");
    assert!(v["min_parameter"].as_f64().unwrap() < 1.0);
    let history = v["history"].as_array().unwrap();
    assert_eq!(history.len() as u64, v["iterations"].as_u64().unwrap());
    assert!(history.len() > 1 && history.len() <= 30);
    assert_eq!(history[0]["max_exposure"], free["max_exposure"]);
    assert_eq!(history[0]["controlled_items"], 0);
    assert_eq!(history.last().unwrap()["max_exposure"], v["max_exposure"]);
    assert!(
        history[..history.len() - 1]
            .iter()
            .all(|h| h["max_exposure"].as_f64().unwrap() > 0.29),
        "stops at the first iteration that meets the target"
    );
    assert_eq!(v["config"]["exposure_control"], true);
    assert_eq!(v["config"]["bank_items"], 200);
    assert_eq!(v["out"], out.as_str());

    // The bank: every item, in order, with its parameter.
    let bank: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let items = bank.as_array().unwrap();
    assert_eq!(items.len(), 200);
    assert_eq!(
        (&items[0]["id"], &items[199]["id"]),
        (&"g001".into(), &"g200".into())
    );
    assert!(items.iter().all(|i| i["model"] == "3pl" && i["d"] == 1.0));
    let k: Vec<f64> = items
        .iter()
        .map(|i| i["exposure"].as_f64().unwrap())
        .collect();
    assert_eq!(k.iter().filter(|&&k| k < 1.0).count() as u64, controlled);
    // simulate replays the last iteration exactly.
    let again = replay(&out);
    for field in ["max_exposure", "rmse", "bias", "overlap_rate", "never_used"] {
        assert_eq!(again[field], v[field], "{field}");
    }
    assert_eq!(again["config"]["bank_items"], 200);

    // The same results and the same bank with one thread.
    let out1 = tmp.path("bank-sh-1.json").to_string_lossy().into_owned();
    let mut one = calibrate(&out1, &["--threads", "1"]);
    let mut two = v.clone();
    for v in [&mut one, &mut two] {
        let o = v.as_object_mut().unwrap();
        assert!(o.remove("wall_seconds").unwrap().as_f64().unwrap() >= 0.0);
        o.remove("out");
        v["config"].as_object_mut().unwrap().remove("threads");
    }
    assert_eq!(one, two);
    assert_eq!(
        std::fs::read_to_string(&out1).unwrap(),
        std::fs::read_to_string(&out).unwrap()
    );
}

#[test]
fn calibrate_exposure_writes_csv_and_resumes() {
    let tmp = TempDir::new("shcsv");
    let out = tmp.path("bank-sh.csv").to_string_lossy().into_owned();
    // Two iterations do not converge: a warning, and the bank is written anyway.
    let args = [
        &["calibrate-exposure", "--out", &out][..],
        &CALIBRATION,
        &["--iterations", "2"],
    ]
    .concat();
    let output = run(&args, None);
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("warning: not converged after 2 iterations (max exposure "),
        "{stderr}"
    );
    let v: Value = serde_json::from_str(std::str::from_utf8(&output.stdout).unwrap()).unwrap();
    assert_eq!(
        (&v["converged"], &v["iterations"]),
        (&false.into(), &2.into())
    );
    let csv = std::fs::read_to_string(&out).unwrap();
    assert!(
        csv.starts_with("id,model,a,b,c,d,concepts,exposure\ng001,3pl,"),
        "{csv}"
    );
    assert_eq!(replay(&out)["max_exposure"], v["max_exposure"]);

    // --resume starts from the bank's parameters: its first iteration is the
    // last one above, and the unconstrained figures come from a run of their own.
    let resumed_out = tmp.path("resumed.json").to_string_lossy().into_owned();
    let resumed: Value = serde_json::from_str(&ok(&[
        "calibrate-exposure",
        "--bank",
        &out,
        "--resume",
        "--out",
        &resumed_out,
        "--examinees",
        "1000",
        "--seed",
        "7",
        "--max-items",
        "20",
        "--target-exposure",
        "0.25",
        "--tolerance",
        "0.04",
        "--iterations",
        "1",
    ]))
    .unwrap();
    assert_eq!(resumed["history"][0]["max_exposure"], v["max_exposure"]);
    assert_eq!(resumed["unconstrained"], v["unconstrained"]);
}

#[test]
fn calibrate_exposure_option_errors_are_one_line() {
    let tmp = TempDir::new("sherr");
    let out = tmp.path("bank.json").to_string_lossy().into_owned();
    fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        const BASE: [&str; 7] = [
            "calibrate-exposure",
            "--generate",
            "50",
            "--examinees",
            "10",
            "--seed",
            "1",
        ];
        [&BASE[..], extra].concat()
    }
    for (target, shown) in [("0", "0"), ("1.5", "1.5"), ("-0.2", "-0.2")] {
        assert_eq!(
            fails(&with(&["--out", &out, "--target-exposure", target]), None),
            format!("error: --target-exposure must be in (0, 1] (got {shown})")
        );
    }
    assert_eq!(
        fails(
            &with(&[
                "--out",
                &out,
                "--target-exposure",
                "0.3",
                "--tolerance",
                "-0.01"
            ]),
            None
        ),
        "error: --tolerance must be >= 0 (got -0.01)"
    );
    assert!(
        !tmp.path("bank.json").exists(),
        "nothing written on a bad option"
    );
    let missing = tmp
        .path("no/such/dir/bank.json")
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        fails(
            &with(&["--out", &missing, "--target-exposure", "0.3"]),
            None
        ),
        format!("error: {missing}: cannot write: no such file or directory")
    );
    let dir = tmp.0.to_string_lossy().into_owned();
    assert_eq!(
        fails(&with(&["--out", &dir, "--target-exposure", "0.3"]), None),
        format!("error: {dir}: cannot write: it is a directory")
    );
    // A bad design is reported before the output file is touched.
    assert_eq!(
        fails(
            &with(&[
                "--out",
                &out,
                "--target-exposure",
                "0.3",
                "--min-items",
                "30"
            ]),
            None
        ),
        "error: --min-items (30) must not exceed --max-items (20)"
    );
    assert!(!tmp.path("bank.json").exists());
    assert_eq!(
        fails(
            &with(&["--out", &out, "--target-exposure", "0.3", "--resume"]),
            None
        ),
        "error: --resume starts from the parameters of a --bank file (a generated bank has none)"
    );
    // --out and --target-exposure are required.
    for args in [with(&["--target-exposure", "0.3"]), with(&["--out", &out])] {
        assert_eq!(run(&args, None).status.code(), Some(2), "{args:?}");
    }
}
