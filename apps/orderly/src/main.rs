//! The `orderly` command line: parses arguments and environment, then hands over to the
//! library half of this crate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use orderly::{LogFormat, ProcessingConfig, ServeConfig};
use orderly_core::Settings;
use orderly_core::payment::SimulatorConfig;
use orderly_core::ports::SeedMode;
use orderly_core::saga::SagaSettings;
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

/// Which backend, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendKind {
    /// The embedded SQLite store in --data-dir.
    Sqlite,
    /// DynamoDB, SQS, EventBridge and SNS (a binary built with `--features aws`).
    Aws,
}

#[derive(Debug, Args)]
struct Store {
    /// Where orders are stored and processed.
    #[arg(
        long,
        env = "ORDERLY_BACKEND",
        value_enum,
        default_value = "sqlite",
        global = true
    )]
    backend: BackendKind,
    /// AWS backend: prefix of the table and queue names (`<prefix>-orders`, ...).
    #[arg(
        long,
        env = "ORDERLY_AWS_PREFIX",
        default_value = "orderly",
        global = true
    )]
    aws_prefix: String,
    /// AWS backend: region (default: the SDK's chain, e.g. AWS_REGION).
    #[arg(long, env = "ORDERLY_AWS_REGION", global = true)]
    aws_region: Option<String>,
    /// AWS backend: endpoint override for an emulator, e.g. `http://127.0.0.1:5000`.
    #[arg(long, env = "ORDERLY_AWS_ENDPOINT_URL", global = true)]
    aws_endpoint_url: Option<String>,
    /// AWS backend: the EventBridge bus (default: the prefix).
    #[arg(long, env = "ORDERLY_EVENT_BUS", global = true)]
    event_bus: Option<String>,
    /// AWS backend: SNS topic for customer notifications (default: none, or the one
    /// --create-resources creates).
    #[arg(long, env = "ORDERLY_NOTIFY_TOPIC_ARN", global = true)]
    notify_topic_arn: Option<String>,
    /// AWS backend: create missing tables, queues, bus, rules and topic on start.
    #[arg(long, env = "ORDERLY_CREATE_RESOURCES", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          global = true)]
    create_resources: bool,
    /// Directory holding the embedded database (created if missing).
    #[arg(
        long,
        env = "ORDERLY_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    data_dir: PathBuf,
    /// Commit durability: `full` survives power loss, `normal` survives process crashes.
    #[arg(
        long,
        env = "ORDERLY_DURABILITY",
        default_value = "full",
        global = true
    )]
    durability: Durability,
}

#[derive(Debug, Args)]
struct Processing {
    /// Concurrent saga consumers.
    #[arg(long, env = "ORDERLY_WORKERS", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    workers: u64,
    /// Seconds a received message stays hidden (renewed while it is processed).
    #[arg(long, env = "ORDERLY_VISIBILITY_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=43_200))]
    visibility_timeout_secs: u64,
    /// First redelivery delay of a failed message, in ms (doubles per attempt, jittered).
    #[arg(long, env = "ORDERLY_REDELIVERY_BASE_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    redelivery_base_ms: u64,
    /// Payment attempts in all (transient failures are retried).
    #[arg(long, env = "ORDERLY_PAYMENT_ATTEMPTS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=10))]
    payment_attempts: u32,
    /// First payment retry delay in ms (doubles per retry, full jitter).
    #[arg(long, env = "ORDERLY_PAYMENT_RETRY_BASE_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    payment_retry_base_ms: u64,
    /// The payment simulator declines orders whose total exceeds this amount.
    #[arg(long, env = "ORDERLY_PAYMENT_DECLINE_OVER", default_value = "10000.00",
          value_parser = parse_money)]
    payment_decline_over: orderly_core::Money,
    /// The payment simulator declines this share of orders (0-100), chosen by order id.
    #[arg(long, env = "ORDERLY_PAYMENT_DECLINE_PERCENT", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    payment_decline_percent: u8,
    /// The payment simulator fails the first N attempts of every order transiently (tests).
    #[arg(long, env = "ORDERLY_PAYMENT_TRANSIENT_FAILURES", default_value_t = 0)]
    payment_transient_failures: u32,
    /// SMTP server for customer mail, e.g. `smtp://127.0.0.1:2525` or
    /// `smtps://user:pass@mail.example.com`. Unset: notifications are recorded and logged.
    #[arg(long, env = "ORDERLY_SMTP_URL")]
    smtp_url: Option<String>,
    /// Sender of customer mail.
    #[arg(
        long,
        env = "ORDERLY_SMTP_FROM",
        default_value = "Orderly <orderly@localhost>"
    )]
    smtp_from: String,
}

impl Store {
    fn backend(&self) -> anyhow::Result<orderly::Backend> {
        match self.backend {
            BackendKind::Sqlite => Ok(orderly::Backend::Sqlite),
            #[cfg(feature = "aws")]
            BackendKind::Aws => {
                use orderly_aws::deployment::{
                    Deployment, ENV_EVENT_BUS, ENV_NOTIFY_TOPIC_ARN, ENV_PREFIX,
                };
                let mut vars = std::collections::HashMap::new();
                vars.insert(ENV_PREFIX.to_owned(), self.aws_prefix.clone());
                if let Some(b) = &self.event_bus {
                    vars.insert(ENV_EVENT_BUS.to_owned(), b.clone());
                }
                if let Some(t) = &self.notify_topic_arn {
                    vars.insert(ENV_NOTIFY_TOPIC_ARN.to_owned(), t.clone());
                }
                let deployment = Deployment::from_vars(&vars).map_err(anyhow::Error::msg)?;
                let mut opts = orderly::aws::AwsOptions::new(deployment);
                opts.settings.region = self.aws_region.clone();
                opts.settings.endpoint_url = self.aws_endpoint_url.clone();
                opts.create_resources = self.create_resources;
                Ok(orderly::Backend::Aws(opts))
            }
            #[cfg(not(feature = "aws"))]
            BackendKind::Aws => anyhow::bail!(
                "this orderly was built without AWS support: rebuild it with \
                 `cargo build --release -p orderly --features aws`"
            ),
        }
    }

    /// A configuration for the admin commands (no API, no worker).
    fn admin_config(&self) -> anyhow::Result<ServeConfig> {
        let mut cfg = ServeConfig::new(self.data_dir.clone());
        cfg.backend = self.backend()?;
        cfg.durability = self.durability;
        Ok(cfg)
    }
}

fn parse_money(s: &str) -> Result<orderly_core::Money, String> {
    orderly_core::Money::parse_decimal(s).map_err(|e| format!("{s:?} {e}"))
}

impl Processing {
    fn config(self) -> anyhow::Result<ProcessingConfig> {
        Ok(ProcessingConfig {
            payment: SimulatorConfig {
                decline_over: self.payment_decline_over,
                decline_percent: self.payment_decline_percent,
                transient_failures: self.payment_transient_failures,
            },
            saga: SagaSettings {
                payment_attempts: self.payment_attempts,
                payment_base_delay_ms: self.payment_retry_base_ms,
            },
            consumers: usize::try_from(self.workers)?,
            visibility: Duration::from_secs(self.visibility_timeout_secs),
            redelivery_base: Duration::from_millis(self.redelivery_base_ms),
            smtp_url: self.smtp_url,
            smtp_from: self.smtp_from,
        })
    }
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List dead-lettered messages with their last error.
    List {
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Move dead letters back to their queues (all, or those named with --id).
    Replay {
        /// A dead-letter id (repeatable); none means all.
        #[arg(long = "id")]
        ids: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and process orders (on the embedded store unless --backend aws).
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
        #[command(flatten)]
        processing: Processing,
    },
    /// Run only the worker (saga engine, event relay, subscribers) against a data dir that
    /// an `orderly serve` may share.
    Worker {
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        processing: Processing,
    },
    /// Inspect and replay dead-lettered messages.
    Dlq {
        #[command(flatten)]
        store: Store,
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Print the Step Functions definition (Amazon States Language) of the saga, generated
    /// from the same definition the local engine runs (`deploy/terraform/saga.asl.json`).
    Asl,
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
        Command::Asl => {
            let saga = orderly_core::saga::SagaDef::orders(SagaSettings::default());
            print!("{}", orderly_aws::asl::definition_text(&saga));
            Ok(())
        }
        Command::Serve {
            addr,
            store,
            idempotency_ttl_secs,
            max_body_bytes,
            seed_if_empty,
            processing,
        } => {
            let cfg = ServeConfig {
                backend: store.backend()?,
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
                processing: processing.config()?,
                serve_api: true,
                run_worker: true,
            };
            let running = orderly::start(cfg).await?;
            running.run_until(orderly::shutdown_signal()).await
        }
        Command::Worker { store, processing } => {
            let mut cfg = store.admin_config()?;
            cfg.processing = processing.config()?;
            cfg.serve_api = false;
            cfg.seed_if_empty = false;
            let running = orderly::start(cfg).await?;
            running.run_until(orderly::shutdown_signal()).await
        }
        Command::Dlq { store, command } => {
            let opened = orderly::open_backend(&store.admin_config()?).await?;
            let app = &opened.app;
            match command {
                DlqCommand::List { limit } => {
                    let items = app.dead_letters(limit).await?;
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({ "items": items }))?
                    );
                }
                DlqCommand::Replay { ids } => {
                    let ids = if ids.is_empty() { None } else { Some(ids) };
                    let moved = app.replay_dead_letters(ids).await?;
                    println!("{}", serde_json::json!({ "replayed": moved }));
                }
            }
            opened.close().await
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
            let opened = orderly::open_backend(&store.admin_config()?).await?;
            let report = opened.app.seed(mode).await?;
            for (id, outcome) in &report {
                println!("{id}\t{outcome:?}");
            }
            opened.close().await
        }
    }
}
