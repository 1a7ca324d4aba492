//! The HTTP ceiling of this machine: an axum server whose only route, `GET /`, answers
//! `ok`, on the same tokio runtime `orderly serve` uses (`#[tokio::main]`: multi-threaded,
//! one worker per core). BENCHMARKS.md drives it with `orderly bench --raw-get` to compare
//! `POST /orders` against it.
//!
//! ```sh
//! cargo run --release -p orderly --example trivial_http -- 127.0.0.1:8099
//! ```

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".to_owned())
        .parse()
        .context("the argument is the address to listen on, e.g. 127.0.0.1:8099")?;
    let app = Router::new().route("/", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    eprintln!("trivial_http listening on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")
}
