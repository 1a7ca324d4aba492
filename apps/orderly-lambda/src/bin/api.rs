//! The `api` function: the same axum router as `orderly serve`, behind API Gateway, which
//! authorizes every request (`ORDERLY_AUTH_MODE=gateway`).

// The handler futures nest deeply (SDK calls inside the runtime's service stack).
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    orderly_lambda::bootstrap(
        |l, _| l,
        |l| async move {
            let vars = std::env::vars().collect();
            let auth = match orderly_lambda::GatewayAuth::from_vars(&vars) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(error = %e, "refusing to start");
                    return Err(e.into());
                }
            };
            lambda_http::run(orderly_lambda::api_router(&l, &auth)).await
        },
    )
    .await
}
