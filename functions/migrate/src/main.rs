//! The `migrate` Lambda function: see `lectern::api::migrate`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lectern::lambda::serve_events(
        lectern::api::migrate::from_env,
        lectern::api::migrate::on_event,
    )
    .await
}
