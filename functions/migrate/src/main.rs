//! The `migrate` Lambda function: see `lectern::services::migrate`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lectern::services::migrate::serve().await
}
