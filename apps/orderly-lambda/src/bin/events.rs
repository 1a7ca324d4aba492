//! The `events` function: see [`orderly_lambda::events`].

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    orderly_lambda::bootstrap(|l| async move {
        let l = &l;
        orderly_lambda::serve_json(|event| orderly_lambda::events::handle(l, event)).await
    })
    .await
}
