//! The `intake` function: see [`orderly_lambda::intake`].

// The handler futures nest deeply (SDK calls inside the runtime's service stack).
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    orderly_lambda::bootstrap(
        |l, sdk| l.with_saga_starter(sdk).with_saga(),
        |l| async move {
            let l = &l;
            orderly_lambda::serve_json(|event| orderly_lambda::intake::handle(l, event)).await
        },
    )
    .await
}
