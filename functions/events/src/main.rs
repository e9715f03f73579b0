//! The `events` Lambda function: see `lectern::api::events`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lectern::lambda::serve_events(lectern::App::from_env, lectern::api::events::on_event).await
}
