//! The `next` Lambda function: see `lectern::api::next`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lectern::lambda::serve(lectern::api::next::router).await
}
