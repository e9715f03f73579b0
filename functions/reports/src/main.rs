//! The `reports` Lambda function: see `lectern::api::reports`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lectern::lambda::serve(lectern::api::reports::router).await
}
