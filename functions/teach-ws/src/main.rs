//! The `teach-ws` Lambda function: see `lectern::api::teach_ws::gateway`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    use lectern::api::teach_ws::gateway;
    lectern::lambda::serve_events(gateway::from_env, gateway::on_event).await
}
