//! The `teach` Lambda function: see `lectern::api::teach`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lectern::lambda::serve(lectern::api::teach::router).await
}
