//! The `migrate` Lambda function: see `lectern::migrate`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lectern::migrate::serve().await
}
