//! `events`: drains the outbox to the EventBridge bus (see
//! `services::events`), on its schedule and when a writer invokes it.

use lambda_runtime::LambdaEvent;
use tracing::Instrument;

use crate::app::App;
use crate::services::events::{self, DrainError, DrainReport};
use crate::telemetry::{self, Emf, Unit};

/// One event in its invocation span. Its content does not matter (the
/// schedule's, a writer's `{"trigger":"after-write"}`, or `{}` by hand). A
/// drain that could not publish fails the invocation, so it shows in the
/// function's error metrics (the events wait in the outbox meanwhile).
pub async fn on_event(
    app: &App,
    event: LambdaEvent<serde_json::Value>,
) -> Result<DrainReport, lambda_runtime::Error> {
    let span = telemetry::invocation(Some(&event.context), "drain");
    Ok(on_trigger(app).instrument(span).await?)
}

/// A drain, then an EMF record of it with `EventsPublished`, `EventsRefused`
/// and `EventsBacklog` (events still unpublished afterwards).
pub async fn on_trigger(app: &App) -> Result<DrainReport, DrainError> {
    let drained = events::drain(app).await;
    let backlog = events::backlog(app).await?;
    let (published, refused) = match &drained {
        Ok(r) => (r.published, r.refused),
        Err(DrainError::Publish { published, .. }) => (*published, 0),
        Err(DrainError::Store(_)) => (0, 0),
    };
    Emf::new(&app.config().metrics_namespace)
        .dimension("Function", telemetry::function_name())
        .metric("EventsPublished", Unit::Count, published as f64)
        .metric("EventsRefused", Unit::Count, refused as f64)
        .metric("EventsBacklog", Unit::Count, backlog as f64)
        .emit();
    drained
}
