//! The `pools` Lambda function: see `lectern::api::pools`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lectern::lambda::serve(lectern::api::pools::router).await
}
