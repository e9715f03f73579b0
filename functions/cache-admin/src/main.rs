//! The `cache-admin` Lambda function: see `lectern::api::cache_admin`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lectern::lambda::serve(lectern::api::cache_admin::router).await
}
