//! `sweeper`: the events of its EventBridge schedule (see `services::sweep`).

use lambda_runtime::LambdaEvent;
use tracing::Instrument;

use crate::app::App;
use crate::services::sweep::{self, SweepReport};
use crate::store::StoreError;
use crate::telemetry::{self, Emf, Unit};

/// One scheduled event in its invocation span. A failed sweep fails the
/// invocation, so it shows in the function's error metrics.
pub async fn on_event(
    app: &App,
    event: LambdaEvent<serde_json::Value>,
) -> Result<SweepReport, lambda_runtime::Error> {
    let span = telemetry::invocation(Some(&event.context), "schedule");
    Ok(on_schedule(app, event.payload).instrument(span).await?)
}

/// A sweep, then an EMF record of it with `ActiveTests` (tests still active
/// afterwards). The event's content does not matter (any JSON is accepted), so
/// a manual `aws lambda invoke` with `{}` sweeps too.
pub async fn on_schedule(app: &App, _event: serde_json::Value) -> Result<SweepReport, StoreError> {
    let report = sweep::sweep(app).await?;
    let active = sweep::active_tests(app).await?;
    Emf::new(&app.config().metrics_namespace)
        .dimension("Function", telemetry::function_name())
        .metric("ActiveTests", Unit::Count, active as f64)
        .metric("TestsAbandoned", Unit::Count, report.abandoned as f64)
        .emit();
    Ok(report)
}
