//! The `cache-admin` Lambda function: see `lectern::api::admin`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lectern::lambda::serve(lectern::api::admin::router).await
}
