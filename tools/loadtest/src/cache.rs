//! The server cache's counters over the measured window: `GET
//! /v1/admin/cache/stats` (admin only) read when the window begins and when
//! the run ends, and their difference per namespace kind. Reading them never
//! stops a run: a failure becomes a warning and the report has no cache section.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde::Deserialize;

use crate::client::{Conn, Failure, Target};
use crate::report::CacheDelta;
use crate::student::problem_summary;

/// The stats route.
pub(crate) const STATS_PATH: &str = "/v1/admin/cache/stats";

/// One namespace kind's cumulative counters (the fields the window needs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct Counters {
    pub lookups: u64,
    pub hits: u64,
    pub misses: u64,
}

/// What the window needs of `GET /v1/admin/cache/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Snapshot {
    pub enabled: bool,
    pub namespaces: BTreeMap<String, Counters>,
}

/// Per kind with lookups between `start` and `end`, the counters' growth and
/// the hit ratio over it. A counter that shrank (it expired, or was reset)
/// counts as not having grown.
pub(crate) fn window(
    start: &BTreeMap<String, Counters>,
    end: &BTreeMap<String, Counters>,
) -> BTreeMap<String, CacheDelta> {
    end.iter()
        .filter_map(|(kind, end)| {
            let start = start.get(kind).copied().unwrap_or_default();
            let lookups = end.lookups.saturating_sub(start.lookups);
            if lookups == 0 {
                return None;
            }
            let hits = end.hits.saturating_sub(start.hits).min(lookups);
            let misses = end.misses.saturating_sub(start.misses).min(lookups);
            let delta = CacheDelta {
                lookups,
                hits,
                misses,
                hit_ratio: hits as f64 / lookups as f64,
            };
            Some((kind.clone(), delta))
        })
        .collect()
}

/// A connection that reads the stats as the admin. The token is only ever
/// put in a sensitive header, never in a message.
pub(crate) fn admin_conn(target: &Arc<Target>, token: &str) -> Result<Conn, String> {
    let mut conn = Conn::new(target.clone());
    conn.authorize(token)
        .map_err(|_| "the admin token is not a valid header value".to_string())?;
    Ok(conn)
}

/// Reads the stats once; why not, in one line.
pub(crate) async fn snapshot(conn: &mut Conn, timeout: Duration) -> Result<Snapshot, String> {
    let reply = conn
        .send(Method::GET, STATS_PATH, None, timeout)
        .await
        .map_err(|failure| match failure {
            Failure::Transport(message) => message,
            Failure::Timeout => format!("no response within {} ms", timeout.as_millis()),
        })?;
    if reply.status != StatusCode::OK {
        return Err(format!(
            "status {}: {}",
            reply.status,
            problem_summary(&reply.body)
        ));
    }
    let snapshot: Snapshot =
        serde_json::from_slice(&reply.body).map_err(|e| format!("unexpected body: {e}"))?;
    if !snapshot.enabled {
        return Err("the server's cache is disabled (CACHE_ENABLED=false)".to_string());
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(lookups: u64, hits: u64, misses: u64) -> Counters {
        Counters {
            lookups,
            hits,
            misses,
        }
    }

    #[test]
    fn deltas_over_the_window() {
        let start = BTreeMap::from([
            ("user".to_string(), counters(100, 40, 60)),
            ("pool".to_string(), counters(7, 7, 0)),
            ("pools".to_string(), counters(10, 9, 1)),
        ]);
        let end = BTreeMap::from([
            ("user".to_string(), counters(250, 100, 150)),
            // No lookups in the window: left out.
            ("pool".to_string(), counters(7, 7, 0)),
            ("pools".to_string(), counters(60, 58, 2)),
            // First counted in the window.
            ("ai".to_string(), counters(4, 1, 3)),
        ]);
        let d = window(&start, &end);
        assert_eq!(
            d.keys().map(String::as_str).collect::<Vec<_>>(),
            ["ai", "pools", "user"]
        );
        assert_eq!(
            d["user"],
            CacheDelta {
                lookups: 150,
                hits: 60,
                misses: 90,
                hit_ratio: 0.4
            }
        );
        assert_eq!(
            d["pools"],
            CacheDelta {
                lookups: 50,
                hits: 49,
                misses: 1,
                hit_ratio: 0.98
            }
        );
        assert_eq!(d["ai"].hit_ratio, 0.25);

        // Counters that went back (expired, reset) do not underflow.
        let shrunk = BTreeMap::from([("user".to_string(), counters(5, 1, 4))]);
        assert!(window(&start, &shrunk).is_empty());
        assert!(window(&start, &start).is_empty());
    }

    #[test]
    fn parses_the_stats_body() {
        let body = r#"{"enabled":true,"namespaces":{
            "user":{"lookups":10,"hits":4,"misses":6,"hit_ratio":0.4,"keys":3,"bytes_estimate":900},
            "pool":{"lookups":0,"hits":0,"misses":0,"hit_ratio":null,"keys":0,"bytes_estimate":0}},
            "ai":{"calls":0},"scanned":3,"complete":true}"#;
        let s: Snapshot = serde_json::from_str(body).unwrap();
        assert!(s.enabled);
        assert_eq!(s.namespaces["user"], counters(10, 4, 6));
        assert_eq!(s.namespaces["pool"], Counters::default());
    }
}
