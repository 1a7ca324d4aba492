//! The `api` function: the same axum router as `orderly serve`, behind API Gateway.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    orderly_lambda::bootstrap(
        |l| async move { lambda_http::run(orderly_lambda::api_router(&l)).await },
    )
    .await
}
