//! What a run measured: latency percentiles per endpoint, throughput, tests
//! or tutoring sessions completed, errors and, with an admin token, the server
//! cache's hits and misses; as a table (`Display`) or JSON (`Serialize`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};
use uuid::Uuid;

/// The endpoints a simulated student calls: the steps of a test, then (with
/// [`LoadConfig::with_reads`](crate::LoadConfig::with_reads)) the reads of a
/// dashboard after each ended test, then (with
/// [`LoadConfig::teach`](crate::LoadConfig::teach), instead of tests) the
/// steps of a tutoring session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /v1/tests`.
    Start,
    /// `POST /v1/tests/{id}/responses`.
    Submit,
    /// `GET /v1/tests/{id}/next`.
    Next,
    /// `POST /v1/tests/{id}/end`.
    End,
    /// `GET /v1/students/{id}/tests`: the student's own history (cached).
    History,
    /// `GET /v1/students/{id}/proficiency`: the student's own proficiency (cached).
    Proficiency,
    /// `GET /v1/users/{id}`: the student's own profile (cached).
    Profile,
    /// `GET /v1/pools?limit=20`: the pool list (cached).
    Pools,
    /// `POST /v1/teaching/sessions`: a new tutoring session.
    TeachStart,
    /// `POST /v1/teaching/sessions/{id}/input`: one input of the student's.
    TeachInput,
    /// `POST /v1/teaching/sessions/{id}/end`: the session's end and summary.
    TeachEnd,
}

impl Endpoint {
    /// How many endpoints there are.
    pub const COUNT: usize = 11;

    /// Every endpoint, in the order of a test, then of the dashboard reads,
    /// then of a tutoring session.
    pub const ALL: [Endpoint; Endpoint::COUNT] = [
        Endpoint::Start,
        Endpoint::Submit,
        Endpoint::Next,
        Endpoint::End,
        Endpoint::History,
        Endpoint::Proficiency,
        Endpoint::Profile,
        Endpoint::Pools,
        Endpoint::TeachStart,
        Endpoint::TeachInput,
        Endpoint::TeachEnd,
    ];

    /// The short name: `start`, `submit`, `next`, `end`, `history`,
    /// `proficiency`, `profile`, `pools`, `teach_start`, `teach_input`,
    /// `teach_end`.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Start => "start",
            Endpoint::Submit => "submit",
            Endpoint::Next => "next",
            Endpoint::End => "end",
            Endpoint::History => "history",
            Endpoint::Proficiency => "proficiency",
            Endpoint::Profile => "profile",
            Endpoint::Pools => "pools",
            Endpoint::TeachStart => "teach_start",
            Endpoint::TeachInput => "teach_input",
            Endpoint::TeachEnd => "teach_end",
        }
    }

    /// The route, e.g. `POST /v1/tests/{id}/responses`.
    pub fn route(self) -> &'static str {
        match self {
            Endpoint::Start => "POST /v1/tests",
            Endpoint::Submit => "POST /v1/tests/{id}/responses",
            Endpoint::Next => "GET /v1/tests/{id}/next",
            Endpoint::End => "POST /v1/tests/{id}/end",
            Endpoint::History => "GET /v1/students/{id}/tests",
            Endpoint::Proficiency => "GET /v1/students/{id}/proficiency",
            Endpoint::Profile => "GET /v1/users/{id}",
            Endpoint::Pools => "GET /v1/pools?limit=20",
            Endpoint::TeachStart => "POST /v1/teaching/sessions",
            Endpoint::TeachInput => "POST /v1/teaching/sessions/{id}/input",
            Endpoint::TeachEnd => "POST /v1/teaching/sessions/{id}/end",
        }
    }

    /// Whether this is one of the dashboard reads (not a step of a test).
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Endpoint::History | Endpoint::Proficiency | Endpoint::Profile | Endpoint::Pools
        )
    }

    /// Whether this is a step of a tutoring session.
    pub fn is_teach(self) -> bool {
        matches!(
            self,
            Endpoint::TeachStart | Endpoint::TeachInput | Endpoint::TeachEnd
        )
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong with a request. Serialized as the status code (`"409"`)
/// or the kind's name (`"transport"`, `"timeout"`, `"invalid-response"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// The server answered with a status other than 2xx (409 included).
    Status(u16),
    /// Connecting, writing or reading failed.
    Transport,
    /// No complete response within the request timeout.
    Timeout,
    /// A 2xx response whose body is not what the API promises (unparsable
    /// JSON, a missing question, a test that does not complete within
    /// `max_items` answers, `next` serving another question, a tutoring
    /// session's `seq` not rising by one per input, an end summary that
    /// does not count the inputs sent…).
    InvalidResponse,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Status(code) => write!(f, "{code}"),
            ErrorKind::Transport => f.write_str("transport"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::InvalidResponse => f.write_str("invalid-response"),
        }
    }
}

impl Serialize for ErrorKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Latency of an endpoint's successful requests, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
}

impl Latency {
    /// The statistics of latencies in microseconds, sorted ascending; `None` when empty.
    pub fn from_sorted_micros(sorted: &[u32]) -> Option<Latency> {
        let ms = |p: f64| percentile(sorted, p).map(|us| f64::from(us) / 1000.0);
        let sum: u64 = sorted.iter().map(|&us| u64::from(us)).sum();
        Some(Latency {
            p50_ms: ms(50.0)?,
            p95_ms: ms(95.0)?,
            p99_ms: ms(99.0)?,
            max_ms: ms(100.0)?,
            mean_ms: sum as f64 / sorted.len() as f64 / 1000.0,
        })
    }
}

/// The nearest-rank percentile of values sorted ascending: the smallest value
/// such that at least `p`% of the values are at most it (`p` in [0, 100];
/// 0 gives the minimum, 100 the maximum). `None` for no values.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    // For a whole p, p·n is exact and the division rounds correctly, so an
    // integral rank is never pushed up by rounding.
    let rank = (p.clamp(0.0, 100.0) * n as f64 / 100.0).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// One endpoint's figures over the measured window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointStats {
    /// Successful (2xx) requests.
    pub count: u64,
    /// Failed requests (non-2xx, transport, timeout, invalid response).
    pub errors: u64,
    /// Latency of the successful requests; `None` (JSON `null`) when there were none.
    pub latency: Option<Latency>,
}

/// How many requests failed one way at one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorCount {
    /// Where.
    pub endpoint: Endpoint,
    /// How: the status code or the kind of failure.
    pub kind: ErrorKind,
    /// How many times, in the measured window.
    pub count: u64,
    /// The first one's detail: the problem `type` (or the start of the body),
    /// or the transport error.
    pub example: String,
}

/// One namespace kind's cache counters over the measured window: the
/// difference between `GET /v1/admin/cache/stats` read when the window began
/// and when the run ended. The server's counters are shared by every client
/// of its Redis key prefix, so anything else using the server then counts too.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CacheDelta {
    /// Cache lookups.
    pub lookups: u64,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that loaded from the source.
    pub misses: u64,
    /// `hits / lookups` (a kind is listed only when `lookups` > 0).
    pub hit_ratio: f64,
}

/// An answer the server acknowledged: `POST /v1/tests/{test_id}/responses`
/// with `{question_id, response}` answered 200 with `items_answered`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// The test.
    pub test_id: Uuid,
    /// The question answered.
    pub question_id: String,
    /// The option sent.
    pub response: String,
    /// `items_answered` of the reply: the answer's position in the test.
    pub items_answered: u32,
}

/// The result of a run. Only requests sent after the warm-up count; a
/// request's latency runs from sending it to having read its whole response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The server's base URL.
    pub url: String,
    /// The pool the tests were taken on; `None` (JSON `null`) with `teach`.
    pub pool_id: Option<Uuid>,
    /// With `teach`: the course the sessions were held on (key
    /// [`TEACH_COURSE_KEY`](crate::TEACH_COURSE_KEY), in an organization of
    /// the run's own); `None` (JSON `null`) without.
    pub course_id: Option<Uuid>,
    /// Concurrent simulated students.
    pub students: usize,
    /// Whether students held tutoring sessions instead of taking tests.
    pub teach: bool,
    /// `config.max_items` of each test (unused with `teach`).
    pub max_items: u32,
    /// Segments of the course's sub-topic, so `total_segments` of each
    /// tutoring session (used only with `teach`).
    pub segments: u32,
    /// Mean think time between a student's requests, in milliseconds.
    pub think_ms: f64,
    /// Whether students called `GET next` before each answer.
    pub with_next: bool,
    /// Whether students read their dashboard (history, proficiency, profile,
    /// pool list) after each ended test.
    pub with_reads: bool,
    /// Length of the warm-up, whose requests are not counted, in seconds.
    pub warmup_secs: f64,
    /// Length of the measured window, in seconds (the throughputs' denominator).
    pub wall_secs: f64,
    /// Requests in the measured window, successful or not.
    pub requests: u64,
    /// `requests / wall_secs`.
    pub requests_per_sec: f64,
    /// Tests ended successfully (start, every answer and end all 2xx) whose
    /// `end` was sent in the measured window.
    pub tests_completed: u64,
    /// `tests_completed / wall_secs`.
    pub tests_per_sec: f64,
    /// Tests abandoned in the measured window because one of their requests failed.
    pub tests_failed: u64,
    /// Mean number of answers in the completed tests.
    pub mean_items_per_test: f64,
    /// With `teach`: tutoring sessions ended successfully (start, every input
    /// and end all 2xx and as the API promises) whose `end` was sent in the
    /// measured window.
    pub sessions_completed: u64,
    /// `sessions_completed / wall_secs`.
    pub sessions_per_sec: f64,
    /// Tutoring sessions abandoned in the measured window because one of
    /// their requests failed.
    pub sessions_failed: u64,
    /// Mean number of inputs in the completed sessions.
    pub mean_inputs_per_session: f64,
    /// Failed requests in the measured window (the sum of `errors`' counts).
    pub error_count: u64,
    /// Per endpoint (all eleven: `next` has count 0 unless it was called, the
    /// four reads unless `with_reads`, the three `teach_` ones unless
    /// `teach`, the others with `teach`). The table shows only the endpoints
    /// of the run's kind.
    pub endpoints: BTreeMap<Endpoint, EndpointStats>,
    /// Failed requests by endpoint and kind, most frequent first.
    pub errors: Vec<ErrorCount>,
    /// Requests sent during the warm-up (not in any figure above).
    pub warmup_requests: u64,
    /// Of which failed.
    pub warmup_errors: u64,
    /// TCP connections made beyond the first of each student (the server
    /// closed one, or a request failed or timed out).
    pub reconnects: u64,
    /// With [`LoadConfig::retry`](crate::LoadConfig::retry): tries sent again
    /// after a failed one, warm-up included (each failed try is also an error).
    pub retries: u64,
    /// With retries: requests given up on when their budget ran out.
    pub gave_up: u64,
    /// With [`LoadConfig::keep_answers`](crate::LoadConfig::keep_answers):
    /// every answer acknowledged, warm-up included. Not in the JSON.
    #[serde(skip)]
    pub answers: Vec<Answer>,
    /// With `keep_answers`: every test whose start was acknowledged (201),
    /// warm-up included. Not in the JSON.
    #[serde(skip)]
    pub tests: Vec<Uuid>,
    /// With `keep_answers`: when each failed try was sent, in seconds since
    /// the students started, warm-up included. Not in the JSON.
    #[serde(skip)]
    pub error_times: Vec<f64>,
    /// The students' user ids. Not in the JSON.
    #[serde(skip)]
    pub student_ids: Vec<Uuid>,
    /// With an admin token, the server cache's counters over the measured
    /// window by namespace kind (`user`, `pool`, `pools`, `ai`), only kinds
    /// with lookups in it; `None` (JSON `null`) without a token or when the
    /// stats could not be read (see `cache_warning`).
    pub cache: Option<BTreeMap<String, CacheDelta>>,
    /// Why `cache` is `None` although an admin token was given (the stats
    /// call failed, the cache is disabled…); never holds the token. Not in the JSON.
    #[serde(skip)]
    pub cache_warning: Option<String>,
}

impl Report {
    /// The figures of one endpoint.
    pub fn endpoint(&self, endpoint: Endpoint) -> &EndpointStats {
        &self.endpoints[&endpoint]
    }
}

/// The cache section of the table (after a line of its own).
fn write_cache(f: &mut fmt::Formatter<'_>, cache: &BTreeMap<String, CacheDelta>) -> fmt::Result {
    if cache.is_empty() {
        return write!(f, "\n\ncache       no lookups in the measured window");
    }
    write!(
        f,
        "\n\ncache       over the measured window (GET /v1/admin/cache/stats)\n  {:<9} {:>9} {:>9} {:>9} {:>9}",
        "namespace", "lookups", "hits", "misses", "hit ratio"
    )?;
    for (kind, d) in cache {
        write!(
            f,
            "\n  {:<9} {:>9} {:>9} {:>9} {:>8.1}%",
            kind,
            d.lookups,
            d.hits,
            d.misses,
            100.0 * d.hit_ratio
        )?;
    }
    Ok(())
}

fn cell(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"))
}

impl fmt::Display for Report {
    /// The report as a table, for people.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.teach {
            writeln!(
                f,
                "{} students on {} (course {}), tutoring sessions of {} segments, think {} ms",
                self.students,
                self.url,
                self.course_id
                    .map_or_else(|| "-".to_string(), |c| c.to_string()),
                self.segments,
                self.think_ms
            )?;
        } else {
            writeln!(
                f,
                "{} students on {} (pool {}), max {} items per test, think {} ms{}{}",
                self.students,
                self.url,
                self.pool_id
                    .map_or_else(|| "-".to_string(), |p| p.to_string()),
                self.max_items,
                self.think_ms,
                if self.with_next {
                    ", GET next before each answer"
                } else {
                    ""
                },
                if self.with_reads {
                    ", dashboard reads after each test"
                } else {
                    ""
                }
            )?;
        }
        writeln!(
            f,
            "measured {:.1} s after a {:.1} s warm-up ({} requests, {} errors, not counted)",
            self.wall_secs, self.warmup_secs, self.warmup_requests, self.warmup_errors
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<11} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "endpoint", "count", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms", "mean ms"
        )?;
        let ours = self
            .endpoints
            .iter()
            .filter(|(e, _)| e.is_teach() == self.teach);
        for (endpoint, stats) in ours {
            let l = stats.latency;
            writeln!(
                f,
                "{:<11} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
                endpoint.name(),
                stats.count,
                stats.errors,
                cell(l.map(|l| l.p50_ms)),
                cell(l.map(|l| l.p95_ms)),
                cell(l.map(|l| l.p99_ms)),
                cell(l.map(|l| l.max_ms)),
                cell(l.map(|l| l.mean_ms)),
            )?;
        }
        writeln!(f)?;
        if self.teach {
            writeln!(
                f,
                "throughput  {:.1} requests/s, {:.2} sessions/s",
                self.requests_per_sec, self.sessions_per_sec
            )?;
            writeln!(
                f,
                "sessions    {} completed ({:.1} inputs on average), {} failed",
                self.sessions_completed, self.mean_inputs_per_session, self.sessions_failed
            )?;
        } else {
            writeln!(
                f,
                "throughput  {:.1} requests/s, {:.2} tests/s",
                self.requests_per_sec, self.tests_per_sec
            )?;
            writeln!(
                f,
                "tests       {} completed ({:.1} items on average), {} failed",
                self.tests_completed, self.mean_items_per_test, self.tests_failed
            )?;
        }
        if self.errors.is_empty() {
            write!(f, "errors      none")?;
        } else {
            write!(
                f,
                "errors      {} of {} requests ({:.2}%)",
                self.error_count,
                self.requests,
                100.0 * self.error_count as f64 / self.requests.max(1) as f64
            )?;
            for e in &self.errors {
                write!(
                    f,
                    "\n  {:<11} {:<16} {:>7}  {}",
                    e.endpoint.name(),
                    e.kind.to_string(),
                    e.count,
                    e.example
                )?;
            }
        }
        if self.reconnects > 0 {
            write!(f, "\nreconnects  {}", self.reconnects)?;
        }
        if self.retries > 0 || self.gave_up > 0 {
            write!(
                f,
                "\nretries     {} (gave up on {} requests)",
                self.retries, self.gave_up
            )?;
        }
        if let Some(cache) = &self.cache {
            write_cache(f, cache)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let hundred: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 50.0), Some(50));
        assert_eq!(percentile(&hundred, 95.0), Some(95));
        assert_eq!(percentile(&hundred, 99.0), Some(99));
        assert_eq!(percentile(&hundred, 100.0), Some(100));
        assert_eq!(percentile(&hundred, 0.0), Some(1));

        // Ten values: p95 and p99 are the largest, the median the fifth.
        let ten = [3, 5, 7, 8, 9, 11, 13, 15, 20, 40];
        assert_eq!(percentile(&ten, 50.0), Some(9));
        assert_eq!(percentile(&ten, 90.0), Some(20));
        assert_eq!(percentile(&ten, 95.0), Some(40));
        assert_eq!(percentile(&ten, 99.0), Some(40));

        // 1000 values: exact ranks, not shifted by floating-point rounding.
        let thousand: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&thousand, 95.0), Some(950));
        assert_eq!(percentile(&thousand, 99.0), Some(990));
        assert_eq!(percentile(&thousand, 29.0), Some(290));

        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn latency_in_milliseconds() {
        let micros: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        let l = Latency::from_sorted_micros(&micros).unwrap();
        assert_eq!(
            (l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.mean_ms),
            (50.0, 95.0, 99.0, 100.0, 50.5)
        );
        assert_eq!(Latency::from_sorted_micros(&[]), None);
    }

    fn sample() -> Report {
        let mut endpoints = BTreeMap::new();
        for e in Endpoint::ALL {
            endpoints.insert(
                e,
                EndpointStats {
                    count: 0,
                    errors: 0,
                    latency: None,
                },
            );
        }
        endpoints.insert(
            Endpoint::Submit,
            EndpointStats {
                count: 1000,
                errors: 2,
                latency: Latency::from_sorted_micros(&(1..=1000).collect::<Vec<_>>()),
            },
        );
        Report {
            url: "http://127.0.0.1:3999".into(),
            pool_id: Some(Uuid::nil()),
            course_id: None,
            students: 4,
            teach: false,
            max_items: 20,
            segments: 8,
            think_ms: 0.0,
            with_next: false,
            with_reads: false,
            warmup_secs: 2.0,
            wall_secs: 10.0,
            requests: 1002,
            requests_per_sec: 100.2,
            tests_completed: 50,
            tests_per_sec: 5.0,
            tests_failed: 2,
            mean_items_per_test: 20.0,
            sessions_completed: 0,
            sessions_per_sec: 0.0,
            sessions_failed: 0,
            mean_inputs_per_session: 0.0,
            error_count: 2,
            endpoints,
            errors: vec![ErrorCount {
                endpoint: Endpoint::Submit,
                kind: ErrorKind::Status(409),
                count: 2,
                example: "urn:lectern:problem:already-answered".into(),
            }],
            warmup_requests: 7,
            warmup_errors: 0,
            reconnects: 0,
            retries: 0,
            gave_up: 0,
            answers: Vec::new(),
            tests: Vec::new(),
            student_ids: Vec::new(),
            error_times: Vec::new(),
            cache: None,
            cache_warning: None,
        }
    }

    /// `sample` with dashboard reads and a cache section.
    fn with_reads_and_cache() -> Report {
        let mut report = sample();
        report.with_reads = true;
        report.endpoints.insert(
            Endpoint::Proficiency,
            EndpointStats {
                count: 50,
                errors: 0,
                latency: Latency::from_sorted_micros(&[1500; 50]),
            },
        );
        report.cache = Some(BTreeMap::from([
            (
                "pools".to_string(),
                CacheDelta {
                    lookups: 50,
                    hits: 49,
                    misses: 1,
                    hit_ratio: 0.98,
                },
            ),
            (
                "user".to_string(),
                CacheDelta {
                    lookups: 150,
                    hits: 60,
                    misses: 90,
                    hit_ratio: 0.4,
                },
            ),
        ]));
        report.cache_warning = Some("never shown".into());
        report
    }

    #[test]
    fn table_shows_every_endpoint_and_the_errors() {
        let table = sample().to_string();
        let lines: Vec<&str> = table.lines().collect();
        let row = |name: &str| {
            lines
                .iter()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("no {name} row in\n{table}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            row("submit"),
            [
                "submit", "1000", "2", "0.50", "0.95", "0.99", "1.00", "0.50"
            ]
        );
        assert_eq!(row("next"), ["next", "0", "0", "-", "-", "-", "-", "-"]);
        for read in ["history", "proficiency", "profile", "pools"] {
            assert_eq!(row(read), [read, "0", "0", "-", "-", "-", "-", "-"]);
        }
        assert!(!table.contains("cache"), "{table}");
        assert!(!table.contains("dashboard"), "{table}");
        assert!(!table.contains("teach"), "{table}");
        assert!(!table.contains("session"), "{table}");
        assert!(table.contains("100.2 requests/s, 5.00 tests/s"), "{table}");
        assert!(
            table.contains("errors      2 of 1002 requests (0.20%)"),
            "{table}"
        );
        assert!(
            table.contains(
                "submit      409                    2  urn:lectern:problem:already-answered"
            ),
            "{table}"
        );
    }

    #[test]
    fn json_names() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["endpoints"]["submit"]["latency"]["p99_ms"], 0.99);
        assert_eq!(
            json["endpoints"]["next"]["latency"],
            serde_json::Value::Null
        );
        assert_eq!(json["errors"][0]["kind"], "409");
        assert_eq!(json["errors"][0]["endpoint"], "submit");
        assert_eq!(json["tests_completed"], 50);
        assert_eq!(json["with_reads"], false);
        assert_eq!(json["cache"], serde_json::Value::Null);
        assert!(json.get("cache_warning").is_none());
        let names: Vec<&String> = json["endpoints"].as_object().unwrap().keys().collect();
        assert_eq!(
            names,
            [
                "end",
                "history",
                "next",
                "pools",
                "proficiency",
                "profile",
                "start",
                "submit",
                "teach_end",
                "teach_input",
                "teach_start"
            ]
        );
        assert_eq!(json["teach"], false);
        assert_eq!(json["course_id"], serde_json::Value::Null);
        assert_eq!(json["sessions_completed"], 0);
        assert_eq!(
            json["endpoints"]["teach_input"]["latency"],
            serde_json::Value::Null
        );
    }

    /// `sample` as a run of tutoring sessions.
    fn teaching() -> Report {
        let mut report = sample();
        report.teach = true;
        report.pool_id = None;
        report.course_id = Some(Uuid::from_u128(7));
        report.tests_completed = 0;
        report.tests_per_sec = 0.0;
        report.tests_failed = 0;
        report.mean_items_per_test = 0.0;
        report.sessions_completed = 30;
        report.sessions_per_sec = 3.0;
        report.sessions_failed = 1;
        report.mean_inputs_per_session = 14.5;
        report.endpoints.insert(
            Endpoint::Submit,
            EndpointStats {
                count: 0,
                errors: 0,
                latency: None,
            },
        );
        report.endpoints.insert(
            Endpoint::TeachInput,
            EndpointStats {
                count: 435,
                errors: 1,
                latency: Latency::from_sorted_micros(&[2500; 435]),
            },
        );
        report.errors = vec![ErrorCount {
            endpoint: Endpoint::TeachInput,
            kind: ErrorKind::InvalidResponse,
            count: 1,
            example: "seq 3 after seq 1".into(),
        }];
        report.error_count = 1;
        report
    }

    #[test]
    fn a_teaching_table_shows_the_session_endpoints_only() {
        let table = teaching().to_string();
        assert!(
            table.starts_with(
                "4 students on http://127.0.0.1:3999 (course 00000000-0000-0000-0000-000000000007), tutoring sessions of 8 segments, think 0 ms\n"
            ),
            "{table}"
        );
        let names: Vec<&str> = table
            .lines()
            .skip_while(|l| !l.starts_with("endpoint"))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(
            names,
            ["teach_start", "teach_input", "teach_end"],
            "{table}"
        );
        assert!(
            table.contains(
                "teach_input       435       1      2.50      2.50      2.50      2.50      2.50"
            ),
            "{table}"
        );
        assert!(
            table.contains("100.2 requests/s, 3.00 sessions/s"),
            "{table}"
        );
        assert!(
            table.contains("sessions    30 completed (14.5 inputs on average), 1 failed"),
            "{table}"
        );
        assert!(
            table.contains("  teach_input invalid-response       1  seq 3 after seq 1"),
            "{table}"
        );
        assert!(!table.contains("tests"), "{table}");

        let json = serde_json::to_value(teaching()).unwrap();
        assert_eq!(json["teach"], true);
        assert_eq!(json["pool_id"], serde_json::Value::Null);
        assert_eq!(json["course_id"], "00000000-0000-0000-0000-000000000007");
        assert_eq!(json["segments"], 8);
        assert_eq!(json["sessions_completed"], 30);
        assert_eq!(json["endpoints"]["teach_input"]["latency"]["p99_ms"], 2.5);
        assert_eq!(json["endpoints"]["submit"]["count"], 0);
    }

    #[test]
    fn reads_and_cache_in_the_table() {
        let table = with_reads_and_cache().to_string();
        assert!(
            table
                .lines()
                .next()
                .unwrap()
                .ends_with("think 0 ms, dashboard reads after each test"),
            "{table}"
        );
        assert!(
            table.contains(
                "proficiency        50       0      1.50      1.50      1.50      1.50      1.50"
            ),
            "{table}"
        );
        let tail: Vec<&str> = table.lines().rev().take(4).collect();
        assert_eq!(
            tail,
            [
                "  user            150        60        90     40.0%",
                "  pools            50        49         1     98.0%",
                "  namespace   lookups      hits    misses hit ratio",
                "cache       over the measured window (GET /v1/admin/cache/stats)",
            ],
            "{table}"
        );
        assert!(!table.contains("never shown"), "{table}");

        let mut empty = with_reads_and_cache();
        empty.cache = Some(BTreeMap::new());
        assert!(
            empty
                .to_string()
                .ends_with("\n\ncache       no lookups in the measured window"),
            "{empty}"
        );
    }

    #[test]
    fn cache_json_shape() {
        let json = serde_json::to_value(with_reads_and_cache()).unwrap();
        assert_eq!(json["with_reads"], true);
        assert_eq!(
            json["cache"],
            serde_json::json!({
                "pools": {"lookups": 50, "hits": 49, "misses": 1, "hit_ratio": 0.98},
                "user": {"lookups": 150, "hits": 60, "misses": 90, "hit_ratio": 0.4},
            })
        );
        assert_eq!(json["endpoints"]["proficiency"]["count"], 50);
        assert_eq!(json["endpoints"]["proficiency"]["latency"]["p50_ms"], 1.5);
        assert_eq!(
            json["endpoints"]["history"]["latency"],
            serde_json::Value::Null
        );
        assert!(json.get("cache_warning").is_none(), "{json}");
    }
}
