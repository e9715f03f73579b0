//! The `sweeper` Lambda function: see `lectern::api::sweeper`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lectern::lambda::serve_events(lectern::App::from_env, lectern::api::sweeper::on_event).await
}
