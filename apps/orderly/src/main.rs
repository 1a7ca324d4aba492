//! The `orderly` command line: parses arguments and environment, then hands over to the
//! library half of this crate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use orderly::{LogFormat, ProcessingConfig, ServeConfig};
use orderly_config::{self as config, env};
use orderly_core::Settings;

/// jemalloc, whose background thread returns freed memory to the system within seconds;
/// glibc's allocator keeps a peak's worth (a burst of 2,000 connections left the process at
/// its peak size).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
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
        env = env::LOG_FORMAT,
        value_enum,
        default_value = "json",
        global = true
    )]
    log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax, e.g. `info` or `orderly=debug,info`).
    #[arg(long, env = env::LOG, default_value = "info", global = true)]
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
        env = env::BACKEND,
        value_enum,
        default_value = "sqlite",
        global = true
    )]
    backend: BackendKind,
    /// AWS backend: prefix of the table and queue names (`<prefix>-orders`, ...).
    #[arg(
        long,
        env = env::AWS_PREFIX,
        default_value = "orderly",
        global = true
    )]
    aws_prefix: String,
    /// AWS backend: region (default: the SDK's chain, e.g. AWS_REGION).
    #[arg(long, env = env::AWS_REGION, global = true)]
    aws_region: Option<String>,
    /// AWS backend: endpoint override for an emulator, e.g. `http://127.0.0.1:5000`.
    #[arg(long, env = env::AWS_ENDPOINT_URL, global = true)]
    aws_endpoint_url: Option<String>,
    /// AWS backend: the EventBridge bus (default: the prefix).
    #[arg(long, env = env::EVENT_BUS, global = true)]
    event_bus: Option<String>,
    /// AWS backend: SNS topic for customer notifications (default: none, or the one
    /// --create-resources creates).
    #[arg(long, env = env::NOTIFY_TOPIC_ARN, global = true)]
    notify_topic_arn: Option<String>,
    /// AWS backend: create missing tables, queues, bus, rules and topic on start.
    #[arg(long, env = env::CREATE_RESOURCES, default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          global = true)]
    create_resources: bool,
    /// Directory holding the embedded database (created if missing).
    #[arg(
        long,
        env = env::DATA_DIR,
        default_value = "./data",
        global = true
    )]
    data_dir: PathBuf,
    /// Commit durability: `full` survives power loss, `normal` survives process crashes.
    #[arg(
        long,
        env = env::DURABILITY,
        default_value = "full",
        global = true
    )]
    durability: Durability,
}

#[derive(Debug, Args)]
struct Processing {
    /// Concurrent saga consumers.
    #[arg(long, env = env::WORKERS, default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    workers: u64,
    /// Seconds a received message stays hidden (renewed while it is processed).
    #[arg(long, env = env::VISIBILITY_TIMEOUT_SECS, default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=43_200))]
    visibility_timeout_secs: u64,
    /// First redelivery delay of a failed message, in ms (doubles per attempt, jittered).
    #[arg(long, env = env::REDELIVERY_BASE_MS, default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    redelivery_base_ms: u64,
    /// Payment attempts in all (transient failures are retried).
    #[arg(long, env = env::PAYMENT_ATTEMPTS, default_value_t = config::PAYMENT_ATTEMPTS.default,
          value_parser = |s: &str| config::PAYMENT_ATTEMPTS.parse(s))]
    payment_attempts: i64,
    /// First payment retry delay in ms (doubles per retry, full jitter).
    #[arg(long, env = env::PAYMENT_RETRY_BASE_MS,
          default_value_t = config::PAYMENT_RETRY_BASE_MS.default,
          value_parser = |s: &str| config::PAYMENT_RETRY_BASE_MS.parse(s))]
    payment_retry_base_ms: i64,
    /// The payment simulator declines orders whose total exceeds this amount.
    #[arg(long, env = env::PAYMENT_DECLINE_OVER, default_value = "10000.00",
          value_parser = parse_money)]
    payment_decline_over: orderly_core::Money,
    /// The payment simulator declines this share of orders (0-100), chosen by order id.
    #[arg(long, env = env::PAYMENT_DECLINE_PERCENT,
          default_value_t = config::PAYMENT_DECLINE_PERCENT.default,
          value_parser = |s: &str| config::PAYMENT_DECLINE_PERCENT.parse(s))]
    payment_decline_percent: i64,
    /// The payment simulator fails the first N attempts of every order transiently (tests).
    #[arg(long, env = env::PAYMENT_TRANSIENT_FAILURES,
          default_value_t = config::PAYMENT_TRANSIENT_FAILURES.default,
          value_parser = |s: &str| config::PAYMENT_TRANSIENT_FAILURES.parse(s))]
    payment_transient_failures: i64,
    /// SMTP server for customer mail, e.g. `smtp://127.0.0.1:2525` or
    /// `smtps://user:pass@mail.example.com`. Unset: notifications are recorded and logged.
    #[arg(long, env = env::SMTP_URL)]
    smtp_url: Option<String>,
    /// Sender of customer mail.
    #[arg(
        long,
        env = env::SMTP_FROM,
        default_value = "Orderly <orderly@localhost>"
    )]
    smtp_from: String,
    /// Webhook delivery attempts in all; the last failed one dead-letters the delivery.
    #[arg(long, env = env::WEBHOOK_ATTEMPTS, default_value_t = 6,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    webhook_attempts: u32,
    /// Delay before the second webhook attempt in ms (doubles per attempt up to an hour,
    /// with jitter).
    #[arg(long, env = env::WEBHOOK_RETRY_BASE_MS, default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    webhook_retry_base_ms: u64,
    /// Longest one webhook attempt may take, in ms.
    #[arg(long, env = env::WEBHOOK_TIMEOUT_MS, default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(100..=60_000))]
    webhook_timeout_ms: u64,
    /// Where the server's outbound requests may go. `public`: webhooks reach public
    /// addresses only (checked on the resolved address when delivering), except the hosts of
    /// --egress-allow-hosts. `loopback`: webhooks, the alarm webhook, the mail server and
    /// the JWKS must all be on loopback, and no name but `localhost` is looked up (tests,
    /// development).
    #[arg(long, env = env::EGRESS, default_value = "public",
          value_parser = clap::value_parser!(orderly_core::egress::EgressMode))]
    egress: orderly_core::egress::EgressMode,
    /// Hosts (names or IP addresses, comma-separated) webhooks may reach whatever their
    /// address, e.g. an internal receiver on a private network (with --egress public).
    #[arg(long, env = env::EGRESS_ALLOW_HOSTS, value_delimiter = ',')]
    egress_allow_hosts: Vec<String>,
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

fn parse_email(s: &str) -> Result<orderly_core::Email, String> {
    s.parse::<orderly_core::Email>().map_err(|e| e.0)
}

fn parse_money(s: &str) -> Result<orderly_core::Money, String> {
    orderly_core::Money::parse_decimal(s).map_err(|e| format!("{s:?} {e}"))
}

impl Processing {
    fn config(self) -> anyhow::Result<ProcessingConfig> {
        Ok(ProcessingConfig {
            payment: SimulatorConfig {
                decline_over: self.payment_decline_over,
                decline_percent: u8::try_from(self.payment_decline_percent)?,
                transient_failures: u32::try_from(self.payment_transient_failures)?,
            },
            saga: SagaSettings {
                payment_attempts: u32::try_from(self.payment_attempts)?,
                payment_base_delay_ms: u64::try_from(self.payment_retry_base_ms)?,
            },
            consumers: usize::try_from(self.workers)?,
            visibility: Duration::from_secs(self.visibility_timeout_secs),
            redelivery_base: Duration::from_millis(self.redelivery_base_ms),
            smtp_url: self.smtp_url,
            smtp_from: self.smtp_from,
            egress: orderly_core::egress::EgressPolicy::new(self.egress, &self.egress_allow_hosts)
                .map_err(|e| anyhow::anyhow!("--egress-allow-hosts: {e}"))?,
            webhooks: orderly_worker::webhooks::WebhookConfig {
                attempts: self.webhook_attempts,
                retry_base: Duration::from_millis(self.webhook_retry_base_ms),
                timeout: Duration::from_millis(self.webhook_timeout_ms),
                ..orderly_worker::webhooks::WebhookConfig::default()
            },
        })
    }
}

/// Authentication, rate limits and HTTP hardening of `serve`.
#[derive(Debug, Args)]
struct Security {
    /// Requests per second each credential may sustain.
    #[arg(long, env = env::RATE_LIMIT_RPS, default_value_t = 100.0)]
    rate_limit_rps: f64,
    /// Requests a credential may send at once above its sustained rate.
    #[arg(long, env = env::RATE_LIMIT_BURST, default_value_t = 200)]
    rate_limit_burst: u32,
    /// Requests per second over all credentials together.
    #[arg(
        long,
        env = env::GLOBAL_RATE_LIMIT_RPS,
        default_value_t = 10_000.0
    )]
    global_rate_limit_rps: f64,
    /// Burst over all credentials together.
    #[arg(
        long,
        env = env::GLOBAL_RATE_LIMIT_BURST,
        default_value_t = 20_000
    )]
    global_rate_limit_burst: u32,
    /// Failed authentications per second one client address may sustain; past the burst
    /// and this rate, its requests are answered 429 before anything is verified.
    #[arg(long, env = env::FAILED_AUTH_RPS, default_value_t = orderly_http::auth::FAILED_AUTH_RPS)]
    failed_auth_rps: f64,
    /// Failed authentications one client address may make at once.
    #[arg(long, env = env::FAILED_AUTH_BURST, default_value_t = orderly_http::auth::FAILED_AUTH_BURST)]
    failed_auth_burst: u32,
    /// Seconds a request may run before it is answered 503.
    #[arg(long, env = env::REQUEST_TIMEOUT_SECS, default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    request_timeout_secs: u64,
    /// Requests handled at once; more are answered 503 at once.
    #[arg(long, env = env::MAX_CONCURRENT_REQUESTS, default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_concurrent_requests: u64,
    /// Requests one credential may have in flight at once (its bodies being read
    /// included); more are answered 429 at once.
    #[arg(long, env = env::MAX_CONCURRENT_PER_CREDENTIAL, default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_concurrent_per_credential: u64,
    /// Milliseconds a request body may take to arrive in full (408 after).
    #[arg(long, env = env::BODY_READ_TIMEOUT_MS, default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    body_read_timeout_ms: u64,
    /// Milliseconds a connection may take to send a request's headers, from its first byte
    /// (or from opening); the connection is closed after.
    #[arg(long, env = env::HEADER_READ_TIMEOUT_MS, default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    header_read_timeout_ms: u64,
    /// Milliseconds a connection may stay idle between requests before it is closed.
    #[arg(long, env = env::KEEP_ALIVE_TIMEOUT_MS, default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    keep_alive_timeout_ms: u64,
    /// Open connections at most; lowered at start to leave an eighth of the open-file
    /// limit free. At the cap a new connection replaces the longest-idle one.
    #[arg(long, env = env::MAX_CONNECTIONS, default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Milliseconds shutdown waits for requests already read to be answered and for the
    /// worker to finish or hand back its messages.
    #[arg(long, env = env::DRAIN_TIMEOUT_MS, default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    drain_timeout_ms: u64,
    /// Browser origins allowed by CORS (repeat, or comma-separate in the variable); none:
    /// CORS off.
    #[arg(
        long = "cors-origin",
        env = env::CORS_ORIGINS,
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    /// On a store without API keys, create an admin key, print it once and save it to
    /// <data-dir>/admin.key (mode 0600).
    #[arg(long, env = env::BOOTSTRAP_ADMIN_KEY, default_value_t = true,
          action = clap::ArgAction::Set)]
    bootstrap_admin_key: bool,
    /// Bearer JWTs: the expected issuer (Cognito: https://cognito-idp.<region>.amazonaws.com/<pool-id>).
    #[arg(long, env = env::JWT_ISSUER)]
    jwt_issuer: Option<String>,
    /// Bearer JWTs: the expected audience (`aud` of ID tokens, `client_id` of access tokens).
    #[arg(long, env = env::JWT_AUDIENCE)]
    jwt_audience: Option<String>,
    /// Bearer JWTs: the required `token_use` (access or id); unset: either.
    #[arg(long, env = env::JWT_TOKEN_USE)]
    jwt_token_use: Option<String>,
    /// Bearer JWTs: URL of the JWKS (Cognito: <issuer>/.well-known/jwks.json).
    #[arg(long, env = env::JWT_JWKS_URL, conflicts_with = "jwt_jwks_file")]
    jwt_jwks_url: Option<String>,
    /// Bearer JWTs: a JWKS file instead of a URL.
    #[arg(long, env = env::JWT_JWKS_FILE)]
    jwt_jwks_file: Option<PathBuf>,
    /// Bearer JWTs: fetch the JWKS again once the loaded one is this many seconds old, so a
    /// withdrawn key stops working (the cached keys stay in use while the fetch fails).
    #[arg(long, env = env::JWT_JWKS_MAX_AGE_SECS, default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    jwt_jwks_max_age_secs: u64,
    /// Development only: accept HS256 tokens signed with the secret in this file.
    #[arg(long, env = env::JWT_HS256_SECRET_FILE)]
    jwt_hs256_secret_file: Option<PathBuf>,
    /// Bearer JWTs: the claim listing the caller's groups.
    #[arg(
        long,
        env = env::JWT_ROLES_CLAIM,
        default_value = "cognito:groups"
    )]
    jwt_roles_claim: String,
    /// Bearer JWTs: the group that makes a caller an admin (others are customers).
    #[arg(long, env = env::JWT_ADMIN_GROUP, default_value = "admin")]
    jwt_admin_group: String,
}

impl Security {
    fn apply(self, http: &mut HttpConfig, auth: &mut orderly::AuthConfig) -> anyhow::Result<()> {
        use orderly_auth::jwt::{JwksSource, JwtConfig};
        http.request_timeout = Duration::from_secs(self.request_timeout_secs);
        http.max_concurrent_requests = usize::try_from(self.max_concurrent_requests)?;
        http.max_concurrent_per_credential = usize::try_from(self.max_concurrent_per_credential)?;
        http.body_read_timeout = Duration::from_millis(self.body_read_timeout_ms);
        http.header_read_timeout = Duration::from_millis(self.header_read_timeout_ms);
        http.keep_alive_timeout = Duration::from_millis(self.keep_alive_timeout_ms);
        http.max_connections = usize::try_from(self.max_connections)?;
        http.drain_timeout = Duration::from_millis(self.drain_timeout_ms);
        http.cors_origins = self
            .cors_origins
            .into_iter()
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        auth.rate_limit = orderly_auth::limit::RateLimitConfig {
            per_credential_rps: self.rate_limit_rps,
            burst: self.rate_limit_burst,
            global_rps: self.global_rate_limit_rps,
            global_burst: self.global_rate_limit_burst,
        };
        auth.failed_auth_limit =
            orderly_http::auth::failed_auth_limit(self.failed_auth_rps, self.failed_auth_burst);
        auth.bootstrap_admin_key = self.bootstrap_admin_key;
        let jwks = match (self.jwt_jwks_url, self.jwt_jwks_file) {
            (Some(u), _) => Some(JwksSource::Url(u)),
            (None, Some(f)) => Some(JwksSource::File(f)),
            (None, None) => None,
        };
        let hs256_secret = match &self.jwt_hs256_secret_file {
            Some(path) => {
                let text = std::fs::read(path)
                    .with_context(|| format!("reading the HS256 secret from {}", path.display()))?;
                Some(text.trim_ascii().to_vec())
            }
            None => None,
        };
        if jwks.is_some() || hs256_secret.is_some() {
            auth.jwt = Some(JwtConfig {
                issuer: self.jwt_issuer,
                audience: self.jwt_audience,
                token_use: self.jwt_token_use,
                jwks,
                hs256_secret,
                roles_claim: self.jwt_roles_claim,
                admin_group: self.jwt_admin_group,
                jwks_max_age: Duration::from_secs(self.jwt_jwks_max_age_secs),
                ..JwtConfig::default()
            });
        } else if self.jwt_issuer.is_some() || self.jwt_audience.is_some() {
            anyhow::bail!(
                "JWT issuer/audience given but no keys: set --jwt-jwks-url, --jwt-jwks-file \
                 or --jwt-hs256-secret-file"
            );
        }
        Ok(())
    }
}

/// In-process alarms (`GET /admin/alarms`).
#[derive(Debug, Args)]
struct Alarming {
    /// Dead letters above this raise the `dlq_depth` alarm.
    #[arg(long, env = env::ALARM_DLQ_DEPTH, default_value_t = 10.0)]
    alarm_dlq_depth: f64,
    /// Share of finished sagas that failed, over the window, above which
    /// `saga_failure_rate` fires (0..1).
    #[arg(long, env = env::ALARM_SAGA_FAILURE_RATE, default_value_t = 0.30)]
    alarm_saga_failure_rate: f64,
    /// Share of 5xx responses over the window above which `http_5xx_rate` fires (0..1).
    #[arg(long, env = env::ALARM_5XX_RATE, default_value_t = 0.05)]
    alarm_5xx_rate: f64,
    /// The rate alarms' window, in seconds.
    #[arg(long, env = env::ALARM_WINDOW_SECS, default_value_t = 300)]
    alarm_window_secs: i64,
    /// How often alarms are evaluated, in seconds.
    #[arg(long, env = env::ALARM_INTERVAL_SECS, default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    alarm_interval_secs: u64,
    /// POST every alarm state change here as JSON.
    #[arg(long, env = env::ALARM_WEBHOOK_URL)]
    alarm_webhook_url: Option<String>,
    /// Mail every alarm state change to this address (needs --smtp-url).
    #[arg(long, env = env::ALARM_EMAIL, value_parser = parse_email)]
    alarm_email: Option<orderly_core::Email>,
    /// Also serve this process's metrics, without credentials, at http://ADDR/metrics
    /// (for a scraper on a private network; a `worker` has no other way to show them).
    #[arg(long, env = env::METRICS_ADDR)]
    metrics_addr: Option<SocketAddr>,
}

impl Alarming {
    fn config(self) -> orderly::ops::OpsConfig {
        orderly::ops::OpsConfig {
            alarms: orderly::alarms::AlarmConfig {
                dlq_depth: self.alarm_dlq_depth,
                saga_failure_rate: self.alarm_saga_failure_rate,
                http_5xx_rate: self.alarm_5xx_rate,
                window_secs: self.alarm_window_secs,
                ..orderly::alarms::AlarmConfig::default()
            },
            interval: Duration::from_secs(self.alarm_interval_secs),
            alarm_webhook: self.alarm_webhook_url,
            metrics_addr: self.metrics_addr,
            alarm_email: self.alarm_email,
        }
    }
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create an API key and print it (the only time it is shown).
    Create {
        /// admin (everything) or customer (their own orders).
        #[arg(long)]
        role: orderly_auth::Role,
        /// The user id the key acts as (required for customer keys).
        #[arg(long)]
        user: Option<String>,
        /// A note to recognise the key by in `keys list`.
        #[arg(long)]
        label: Option<String>,
    },
    /// List keys (ids, roles, users, when created and revoked; never the secrets).
    List,
    /// Revoke a key by its id (the 12 hex characters after `oly_`).
    Revoke { id: String },
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
        #[arg(long, env = env::ADDR, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        #[command(flatten)]
        store: Store,
        /// How long a completed Idempotency-Key is remembered, in seconds.
        #[arg(long, env = env::IDEMPOTENCY_TTL_SECS,
              default_value_t = config::IDEMPOTENCY_TTL_SECS.default,
              value_parser = |s: &str| config::IDEMPOTENCY_TTL_SECS.parse(s))]
        idempotency_ttl_secs: i64,
        /// How long an Idempotency-Key claim in flight stands, in seconds, when its process
        /// cannot be checked (a claim of a process that died is void at once).
        #[arg(long, env = env::IDEMPOTENCY_LOCK_SECS,
              default_value_t = config::IDEMPOTENCY_LOCK_SECS.default,
              value_parser = |s: &str| config::IDEMPOTENCY_LOCK_SECS.parse(s))]
        idempotency_lock_secs: i64,
        /// Largest accepted request body, in bytes.
        #[arg(long, env = env::MAX_BODY_BYTES, default_value_t = config::MAX_BODY_BYTES.default,
              value_parser = |s: &str| config::MAX_BODY_BYTES.parse(s))]
        max_body_bytes: i64,
        /// Load the seed catalogue on start when the store has no products.
        #[arg(long, env = env::SEED_IF_EMPTY, default_value_t = true,
              action = clap::ArgAction::Set)]
        seed_if_empty: bool,
        /// Also process orders in this process. `false`: the API only, with one or more
        /// `orderly worker` processes on the same data directory doing the processing.
        #[arg(long, env = env::RUN_WORKER, default_value_t = true,
              action = clap::ArgAction::Set)]
        run_worker: bool,
        #[command(flatten)]
        processing: Processing,
        #[command(flatten)]
        security: Box<Security>,
        #[command(flatten)]
        alarming: Box<Alarming>,
    },
    /// Run only the worker (saga engine, event relay, subscribers) against a data dir that
    /// an `orderly serve` may share.
    Worker {
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        processing: Processing,
        #[command(flatten)]
        alarming: Box<Alarming>,
    },
    /// Create, list and revoke API keys.
    Keys {
        #[command(flatten)]
        store: Store,
        #[command(subcommand)]
        command: KeysCommand,
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
    /// Load-test a running server: place orders, wait until they are all terminal, check
    /// that none is lost and stock is conserved, and report throughput and latency.
    Bench(Box<orderly::bench::BenchArgs>),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    orderly::init_logging(cli.log_format, &cli.log);
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "the allocator keeps freed memory (no background thread)");
    }
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
        Command::Bench(args) => orderly::bench::main(*args).await,
        Command::Asl => {
            let saga = orderly_core::saga::SagaDef::orders(SagaSettings::default());
            print!("{}", orderly_aws::asl::definition_text(&saga));
            Ok(())
        }
        Command::Serve {
            addr,
            store,
            idempotency_ttl_secs,
            idempotency_lock_secs,
            max_body_bytes,
            seed_if_empty,
            run_worker,
            processing,
            security,
            alarming,
        } => {
            let mut cfg = ServeConfig {
                backend: store.backend()?,
                addr,
                data_dir: store.data_dir,
                durability: store.durability,
                settings: Settings {
                    idempotency_ttl_secs,
                    idempotency_lock_secs,
                    ..Settings::default()
                },
                http: HttpConfig {
                    max_body_bytes: usize::try_from(max_body_bytes)?,
                    ..HttpConfig::default()
                },
                auth: orderly::AuthConfig::default(),
                ops: alarming.config(),
                seed_if_empty,
                processing: processing.config()?,
                serve_api: true,
                run_worker,
            };
            security.apply(&mut cfg.http, &mut cfg.auth)?;
            let running = orderly::start(cfg).await?;
            running.run_until(orderly::shutdown_signal()).await
        }
        Command::Keys { store, command } => {
            let opened = orderly::open_backend(&store.admin_config()?).await?;
            let keys = &opened.keys;
            match command {
                KeysCommand::Create { role, user, label } => {
                    let user = match user {
                        Some(u) => Some(
                            u.parse::<orderly_core::UserId>()
                                .map_err(|e| anyhow::anyhow!("--user: {}", e.0))?,
                        ),
                        None => None,
                    };
                    let created = keys
                        .create(role, user, label)
                        .await
                        .map_err(anyhow::Error::msg)?;
                    eprintln!(
                        "Created {} key {}. It is shown only now; store it safely:",
                        created.record.role, created.record.id
                    );
                    println!("{}", created.key);
                }
                KeysCommand::List => {
                    let items = keys.list().await.map_err(anyhow::Error::msg)?;
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({ "items": items }))?
                    );
                }
                KeysCommand::Revoke { id } => {
                    if !keys.revoke(&id).await.map_err(anyhow::Error::msg)? {
                        opened.close().await?;
                        anyhow::bail!("there is no API key with id {id:?}");
                    }
                    println!("revoked {id}");
                }
            }
            opened.close().await
        }
        Command::Worker {
            store,
            processing,
            alarming,
        } => {
            let mut cfg = store.admin_config()?;
            cfg.processing = processing.config()?;
            cfg.ops = alarming.config();
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::Parser;

    /// `orderly serve` accepts exactly what the shared rule of each tunable accepts (the
    /// Lambda functions have the same test), so neither runtime takes a value the other
    /// refuses.
    #[test]
    fn every_shared_tunable_accepts_exactly_what_the_shared_rule_accepts() {
        for t in orderly_config::SHARED {
            for probe in orderly_config::probes(t) {
                let flag = format!("--{}={probe}", t.flag);
                let parsed = Cli::try_parse_from(["orderly", "serve", &flag]);
                assert_eq!(
                    parsed.is_ok(),
                    t.parse(&probe).is_ok(),
                    "{flag}: {:?}",
                    parsed.err().map(|e| e.to_string())
                );
            }
        }
    }
}
