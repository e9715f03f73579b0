//! The `teach-ws` Lambda function: see `lectern::api::ws::gateway`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lectern::lambda::serve_ws().await
}
