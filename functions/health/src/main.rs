//! The `health` Lambda function: see `lectern::api::health`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lectern::lambda::serve(lectern::api::health::router).await
}
