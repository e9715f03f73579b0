//! The `session` Lambda function: see `lectern::api::session`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lectern::lambda::serve(lectern::api::session::router).await
}
