//! The `assessments` Lambda function: see `lectern::api::assessments`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lectern::lambda::serve(lectern::api::assessments::router).await
}
