//! Events for integrators: the publisher that drains the outbox
//! (`store::outbox`) to the EventBridge bus, at least once, in order per
//! resource; and the nudge writers give it after a write.
//!
//! One drain is a loop of small steps, each one transaction that takes the
//! publisher's advisory lock (so two drainers never publish the same event:
//! the one that cannot take it stops), reads the oldest unpublished events,
//! puts at most one event per resource in one `PutEvents` call of at most 10,
//! and marks published what EventBridge accepted before it commits. A crash
//! anywhere rolls the step back: its events are published again by the next
//! drain, with the same ids. An event EventBridge refuses stays unpublished and
//! its resource is left alone for the rest of the drain, so a later event of
//! the same resource is never published before it.

use std::time::{Duration, Instant};

use serde::Serialize;
use uuid::Uuid;

use crate::app::App;
use crate::aws::eventbridge::{Entry, MAX_ENTRIES, Outcome};
use crate::store::StoreError;
use crate::store::outbox::{self, Pending};

/// How often the `events` function drains on its schedule (template.yaml says the same).
pub const PERIOD: Duration = Duration::from_secs(60);

/// The `source` of every event.
pub const SOURCE: &str = "lectern";

/// Version of the envelope and of every kind's fields (a breaking change makes a new one).
pub const VERSION: u32 = 1;

/// Unpublished events read per step: a step publishes the first event of each
/// resource among them, up to [`MAX_ENTRIES`].
const WINDOW: i64 = 100;

/// Published events are kept this long (for operators), then purged.
const KEEP_PUBLISHED: Duration = Duration::from_secs(7 * 24 * 3600);

/// What one drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DrainReport {
    /// Events accepted by the bus (or logged) and marked published.
    pub published: u64,
    /// Events refused, left for the next drain.
    pub refused: u64,
    /// `PutEvents` calls made.
    pub calls: u64,
    /// Whether another drainer held the lock (this one then stopped).
    pub busy: bool,
    /// Published events older than the retention purged.
    pub purged: u64,
}

/// Why a drain stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// PostgreSQL failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bus could not be reached or refused the call as a whole; nothing
    /// of that call was marked published.
    #[error("publishing failed after {published} events: {error}")]
    Publish {
        /// Events published before.
        published: u64,
        /// What went wrong.
        error: String,
    },
}

/// How long one drain may go on.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Stop starting steps after this long (a Lambda invocation has a timeout).
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            time: Duration::from_secs(45),
        }
    }
}

/// Drains the outbox (see the module's description) within the default limits.
pub async fn drain(app: &App) -> Result<DrainReport, DrainError> {
    drain_within(app, Limits::default()).await
}

/// Drains the outbox within `limits`, then purges old published events.
pub async fn drain_within(app: &App, limits: Limits) -> Result<DrainReport, DrainError> {
    let started = Instant::now();
    let mut report = DrainReport::default();
    let mut skip: Vec<Uuid> = Vec::new();
    let mut client = app.db().get().await.map_err(StoreError::from)?;
    while started.elapsed() < limits.time {
        let tx = client.transaction().await.map_err(StoreError::from)?;
        if !outbox::try_lock(&tx).await? {
            report.busy = true;
            break;
        }
        let window = outbox::unpublished(&tx, &skip, WINDOW).await?;
        let batch = first_per_resource(window);
        if batch.is_empty() {
            break;
        }
        let outcomes = match publish(app, &batch).await {
            Ok(outcomes) => outcomes,
            Err(error) => {
                let failed: Vec<(i64, String)> =
                    batch.iter().map(|e| (e.seq, error.clone())).collect();
                outbox::mark_failed(&tx, &failed).await?;
                tx.commit().await.map_err(StoreError::from)?;
                tracing::warn!(%error, published = report.published, "events not published");
                return Err(DrainError::Publish {
                    published: report.published,
                    error,
                });
            }
        };
        report.calls += 1;
        let mut accepted = Vec::with_capacity(batch.len());
        let mut refused = Vec::new();
        for (event, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Outcome::Accepted(_) => accepted.push(event.seq),
                Outcome::Refused(error) => {
                    tracing::warn!(event_id = %event.event_id, %error, "event refused");
                    skip.push(event.resource_id);
                    refused.push((event.seq, error));
                }
            }
        }
        outbox::mark_published(&tx, &accepted).await?;
        outbox::mark_failed(&tx, &refused).await?;
        tx.commit().await.map_err(StoreError::from)?;
        report.published += accepted.len() as u64;
        report.refused += refused.len() as u64;
    }
    drop(client);
    report.purged = outbox::purge(app.db(), KEEP_PUBLISHED, 1_000).await?;
    tracing::info!(
        published = report.published,
        refused = report.refused,
        calls = report.calls,
        busy = report.busy,
        purged = report.purged,
        "events drained"
    );
    Ok(report)
}

/// The first event of each resource in `window` (read in `seq` order, so each
/// is its resource's oldest unpublished one), up to [`MAX_ENTRIES`]: one call
/// never carries two events of a resource, which could be accepted out of order.
fn first_per_resource(window: Vec<Pending>) -> Vec<Pending> {
    let mut seen = std::collections::HashSet::new();
    window
        .into_iter()
        .filter(|e| seen.insert(e.resource_id))
        .take(MAX_ENTRIES)
        .collect()
}

/// The event as the bus carries it: the envelope (`detail`), its
/// `detail-type`, `source` and time.
pub fn entry(event: &Pending) -> Entry {
    let occurred_at = event
        .created_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let detail = serde_json::json!({
        "event_id": event.event_id,
        "type": event.detail_type,
        "version": VERSION,
        "sequence": event.seq,
        "occurred_at": occurred_at,
        "resource": { "kind": event.resource_kind, "id": event.resource_id },
        "data": event.data,
    });
    Entry {
        source: SOURCE.into(),
        detail_type: event.detail_type.clone(),
        detail: detail.to_string(),
        time: event.created_at.unix_timestamp(),
        event_bus_name: String::new(),
    }
}

/// Puts the batch on the bus, or, with no bus configured, logs each event
/// (local development) and calls them all accepted.
async fn publish(app: &App, batch: &[Pending]) -> Result<Vec<Outcome>, String> {
    let entries: Vec<Entry> = batch.iter().map(entry).collect();
    match &app.config().events.bus {
        Some(bus) => bus.put_events(&entries).await,
        // On Lambda a missing bus is a deployment error, not a reason to drop events.
        None if app.config().events.on_lambda => {
            Err("no event bus is configured (EVENT_BUS_NAME)".into())
        }
        None => Ok(entries
            .into_iter()
            .zip(batch)
            .map(|(entry, event)| {
                tracing::info!(
                    target: "lectern::events",
                    event_id = %event.event_id,
                    detail_type = %entry.detail_type,
                    detail = %entry.detail,
                    "event"
                );
                Outcome::Accepted(event.event_id.to_string())
            })
            .collect()),
    }
}

/// Called by a writer after it committed events: starts a drain now, unless
/// `EVENTS_DRAIN_AFTER_WRITES=false`. With `EVENTS_FUNCTION` (on Lambda) the
/// events function is invoked asynchronously (best effort: the schedule
/// drains anyway), else, off Lambda, a drain runs as a task of this process.
pub async fn after_write(app: &App) {
    let config = &app.config().events;
    if !config.drain_after_writes {
        return;
    }
    match &config.function {
        Some(target) => {
            // A slow Lambda API must not hold the request that wrote.
            let invoked = tokio::time::timeout(
                Duration::from_secs(1),
                target.invoke_async(r#"{"trigger":"after-write"}"#),
            )
            .await;
            match invoked {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "events function not invoked"),
                Err(_) => tracing::warn!("events function not invoked in time"),
            }
        }
        // The schedule drains: a task would freeze with the container.
        None if config.on_lambda => {}
        None => {
            let app = app.clone();
            tokio::spawn(async move {
                // `drain` logs its report; a failure waits for the next drain.
                if let Err(error) = drain(&app).await {
                    tracing::warn!(%error, "drain after a write failed");
                }
            });
        }
    }
}

/// Events not yet published (a gauge for the function's metrics).
pub async fn backlog(app: &App) -> Result<i64, StoreError> {
    let client = app.db().get().await?;
    let row = client
        .query_one(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
            &[],
        )
        .await?;
    Ok(row.get(0))
}
