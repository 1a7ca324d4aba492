//! The `relay` function: see [`orderly_lambda::relay`].

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    orderly_lambda::bootstrap(|l| async move {
        let l = &l;
        orderly_lambda::serve_json(|event| orderly_lambda::relay::handle(l, event)).await
    })
    .await
}
