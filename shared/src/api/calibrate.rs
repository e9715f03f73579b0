//! `calibrate`: runs one calibration, named by the event that
//! `POST /v1/pools/{id}/calibrations` queued asynchronously (see
//! `services::calibrations`).

use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use tracing::Instrument;
use uuid::Uuid;

use crate::app::App;
use crate::services::calibrations::{self, RunReport};
use crate::telemetry;

/// The event: `{"calibration_id": "<uuid>"}`.
#[derive(Debug, Deserialize)]
pub struct CalibrateEvent {
    /// The run to do.
    pub calibration_id: Uuid,
}

/// One event in its invocation span. A run that fails on its data is
/// recorded as failed and the invocation succeeds; only a store outage
/// fails it (Lambda then retries, and the claim keeps the run single).
pub async fn on_event(
    app: &App,
    event: LambdaEvent<CalibrateEvent>,
) -> Result<RunReport, lambda_runtime::Error> {
    let span = telemetry::invocation(Some(&event.context), "calibrate");
    let id = event.payload.calibration_id;
    Ok(calibrations::run(app, id).instrument(span).await?)
}
