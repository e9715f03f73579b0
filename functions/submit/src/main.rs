//! The `submit` Lambda function: see `lectern::api::submit`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lectern::lambda::serve(lectern::api::submit::router).await
}
