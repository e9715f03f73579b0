//! The `start` Lambda function: see `lectern::api::start`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lectern::lambda::serve(lectern::api::start::router).await
}
