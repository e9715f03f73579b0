//! The `orgs` Lambda function: see `lectern::api::orgs`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lectern::lambda::serve(lectern::api::orgs::router).await
}
