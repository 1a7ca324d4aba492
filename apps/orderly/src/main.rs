//! The `orderly` command line: parses arguments and environment, then hands over to the
//! library half of this crate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use orderly::{LogFormat, ServeConfig};
use orderly_core::Settings;
use orderly_core::ports::SeedMode;
use orderly_http::HttpConfig;
use orderly_sqlite::Durability;

#[derive(Debug, Parser)]
#[command(name = "orderly", version, about = "Event-driven order processing")]
struct Cli {
    /// Log format.
    #[arg(
        long,
        env = "ORDERLY_LOG_FORMAT",
        value_enum,
        default_value = "json",
        global = true
    )]
    log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax, e.g. `info` or `orderly=debug,info`).
    #[arg(long, env = "ORDERLY_LOG", default_value = "info", global = true)]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Store {
    /// Directory holding the embedded database (created if missing).
    #[arg(long, env = "ORDERLY_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Commit durability: `full` survives power loss, `normal` survives process crashes.
    #[arg(long, env = "ORDERLY_DURABILITY", default_value = "full")]
    durability: Durability,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API on the embedded store.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "ORDERLY_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        #[command(flatten)]
        store: Store,
        /// How long a completed Idempotency-Key is remembered, in seconds.
        #[arg(long, env = "ORDERLY_IDEMPOTENCY_TTL_SECS", default_value_t = 86_400,
              value_parser = clap::value_parser!(i64).range(1..=31_536_000))]
        idempotency_ttl_secs: i64,
        /// Largest accepted request body, in bytes.
        #[arg(long, env = "ORDERLY_MAX_BODY_BYTES", default_value_t = 65_536,
              value_parser = clap::value_parser!(u64).range(256..=16_777_216))]
        max_body_bytes: u64,
        /// Load the seed catalogue on start when the store has no products.
        #[arg(long, env = "ORDERLY_SEED_IF_EMPTY", default_value_t = true,
              action = clap::ArgAction::Set)]
        seed_if_empty: bool,
    },
    /// Load the seed catalogue (10 products). Existing products are left alone unless
    /// --add-stock or --reset says otherwise.
    Seed {
        #[command(flatten)]
        store: Store,
        /// Add the seed stock to products that already exist.
        #[arg(long, conflicts_with = "reset")]
        add_stock: bool,
        /// Overwrite existing seed products with the seed values.
        #[arg(long)]
        reset: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    orderly::init_logging(cli.log_format, &cli.log);
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "orderly failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            addr,
            store,
            idempotency_ttl_secs,
            max_body_bytes,
            seed_if_empty,
        } => {
            let cfg = ServeConfig {
                addr,
                data_dir: store.data_dir,
                durability: store.durability,
                settings: Settings {
                    idempotency_ttl_secs,
                    ..Settings::default()
                },
                http: HttpConfig {
                    max_body_bytes: usize::try_from(max_body_bytes)?,
                },
                seed_if_empty,
            };
            let running = orderly::start(cfg).await?;
            running.run_until(orderly::shutdown_signal()).await
        }
        Command::Seed {
            store,
            add_stock,
            reset,
        } => {
            let mode = match (add_stock, reset) {
                (true, _) => SeedMode::AddStock,
                (_, true) => SeedMode::Reset,
                _ => SeedMode::KeepExisting,
            };
            let (app, db) =
                orderly::open_app(&store.data_dir, store.durability, Settings::default())?;
            let report = app.seed(mode).await?;
            for (id, outcome) in &report {
                println!("{id}\t{outcome:?}");
            }
            tokio::task::spawn_blocking(move || db.close()).await?;
            Ok(())
        }
    }
}
