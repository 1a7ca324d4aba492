//! The `saga-step` function: see [`orderly_lambda::saga_step`].

// The handler futures nest deeply (SDK calls inside the runtime's service stack).
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    orderly_lambda::bootstrap(
        |l, _| l.with_saga(),
        |l| async move {
            let l = &l;
            orderly_lambda::serve_json(|input| orderly_lambda::saga_step::handle(l, input)).await
        },
    )
    .await
}
