//! The `teach-ws` Lambda function: see `lectern::teach::ws::gateway`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lectern::lambda::serve_ws().await
}
