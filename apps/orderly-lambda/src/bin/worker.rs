//! The `worker` function: see [`orderly_lambda::worker`].

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    orderly_lambda::bootstrap(|l| async move {
        let l = &l;
        orderly_lambda::serve_json(|event| orderly_lambda::worker::handle(l, event)).await
    })
    .await
}
