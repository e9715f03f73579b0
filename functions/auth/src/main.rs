//! The `auth` Lambda function: see `lectern::api::auth`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lectern::lambda::serve(lectern::api::auth::router).await
}
