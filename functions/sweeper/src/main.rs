//! The `sweeper` Lambda function: see `lectern::services::sweep`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lectern::lambda::serve_sweeper().await
}
