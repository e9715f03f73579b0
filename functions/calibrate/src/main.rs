//! The `calibrate` Lambda function: see `lectern::api::calibrate`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lectern::lambda::serve_events(lectern::App::from_env, lectern::api::calibrate::on_event).await
}
