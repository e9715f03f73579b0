//! The `end` Lambda function: see `lectern::api::end`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lectern::lambda::serve(lectern::api::end::router).await
}
