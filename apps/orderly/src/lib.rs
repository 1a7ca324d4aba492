//! # orderly (the binary's library half)
//!
//! Wires adapters to the use cases and runs them: [`start`] opens the embedded store in a
//! data directory (or, built with the `aws` feature and given [`Backend::Aws`], connects
//! to DynamoDB, SQS, EventBridge and SNS; see `aws`), builds the HTTP router and serves it
//! until asked to stop, then drains in-flight requests and commits what the store holds. `main.rs` only parses the command
//! line and calls into here, so integration tests start the very same server in-process.
//!
//! It may depend on every Orderly crate, tokio, clap and tracing.

pub mod alarms;
#[cfg(feature = "aws")]
pub mod aws;
pub mod bench;
pub mod ops;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use orderly_auth::Role;
use orderly_auth::jwt::{JwtConfig, JwtVerifier};
use orderly_auth::keys::KeyService;
use orderly_auth::limit::RateLimitConfig;
use orderly_core::egress::{EgressMode, EgressPolicy};
use orderly_core::payment::{PaymentSimulator, SimulatorConfig};
use orderly_core::ports::{Clock, EventBus, Notifier, SeedMode, SeedOutcome, SystemClock};
use orderly_core::saga::{SagaDef, SagaSettings};
use orderly_core::{Orderly, Ports, SagaPorts, Settings};
use orderly_http::{AppState, Authenticator, HttpConfig};
use orderly_sqlite::{Durability, SqliteOptions, SqliteStore};
use orderly_worker::bus::QueueBus;
use orderly_worker::notify::{LogNotifier, SmtpNotifier};
use orderly_worker::{Worker, WorkerConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How orders are processed.
#[derive(Debug, Clone)]
pub struct ProcessingConfig {
    pub payment: SimulatorConfig,
    pub saga: SagaSettings,
    /// Concurrent saga consumers.
    pub consumers: usize,
    pub visibility: Duration,
    pub redelivery_base: Duration,
    /// `None`: notifications are recorded and logged only.
    pub smtp_url: Option<String>,
    pub smtp_from: String,
    /// Where outbound requests may go: webhook deliveries always; in loopback mode also
    /// the configured endpoints (mail server, alarm webhook, JWKS), checked at start.
    pub egress: EgressPolicy,
    /// Webhook delivery: attempts, backoff, timeout (embedded backend only). Its `egress`
    /// is replaced by the one above.
    pub webhooks: orderly_worker::webhooks::WebhookConfig,
}

impl Default for ProcessingConfig {
    fn default() -> ProcessingConfig {
        ProcessingConfig {
            payment: SimulatorConfig::default(),
            saga: SagaSettings::default(),
            consumers: 16,
            visibility: Duration::from_secs(30),
            redelivery_base: Duration::from_secs(1),
            smtp_url: None,
            smtp_from: "Orderly <orderly@localhost>".into(),
            egress: EgressPolicy::default(),
            webhooks: orderly_worker::webhooks::WebhookConfig::default(),
        }
    }
}

/// Who may call the API and how often.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Bearer JWTs (Cognito RS256, or HS256 for development); `None`: API keys only.
    pub jwt: Option<JwtConfig>,
    pub rate_limit: RateLimitConfig,
    /// Failed authentications per client address (`per_credential_rps`, `burst`); over it,
    /// 429 before anything is verified.
    pub failed_auth_limit: RateLimitConfig,
    /// When the store holds no API key at all, create an admin key (acting as user
    /// `admin`), print it once and save it to `<data-dir>/admin.key` (mode 0600).
    pub bootstrap_admin_key: bool,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            jwt: None,
            rate_limit: RateLimitConfig::default(),
            failed_auth_limit: orderly_http::auth::failed_auth_limit(
                orderly_http::auth::FAILED_AUTH_RPS,
                orderly_http::auth::FAILED_AUTH_BURST,
            ),
            bootstrap_admin_key: true,
        }
    }
}

/// The file the first admin key is saved to, in the data directory.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// Where orders are stored and processed.
#[derive(Debug, Clone, Default)]
pub enum Backend {
    /// The embedded SQLite store in the data directory (the default).
    #[default]
    Sqlite,
    /// DynamoDB, SQS, EventBridge and SNS.
    #[cfg(feature = "aws")]
    Aws(aws::AwsOptions),
}

/// Everything `orderly serve` (and `orderly worker`) can be told.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub backend: Backend,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub settings: Settings,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    /// Metrics sampling and alarms.
    pub ops: ops::OpsConfig,
    /// Load the seed catalogue when the store has no products at all.
    pub seed_if_empty: bool,
    pub processing: ProcessingConfig,
    /// Serve the HTTP API.
    pub serve_api: bool,
    /// Run the worker (saga engine, relay, subscribers).
    pub run_worker: bool,
}

impl ServeConfig {
    /// Defaults for a data directory (port 8080 on loopback).
    pub fn new(data_dir: PathBuf) -> ServeConfig {
        ServeConfig {
            backend: Backend::Sqlite,
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir,
            durability: Durability::Full,
            settings: Settings::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            ops: ops::OpsConfig::default(),
            seed_if_empty: true,
            processing: ProcessingConfig::default(),
            serve_api: true,
            run_worker: true,
        }
    }
}

/// Builds the worker for an application. Events go to `bus`; customer mail goes by SMTP
/// when configured, else through `notifier` (SNS on AWS), else to the log.
pub fn build_worker(
    app: &Orderly,
    p: &ProcessingConfig,
    outbox: Arc<dyn orderly_core::ports::EventOutbox>,
    bus: Arc<dyn EventBus>,
    notifier: Option<Arc<dyn Notifier>>,
) -> anyhow::Result<Worker> {
    let notifier: Arc<dyn Notifier> = match (&p.smtp_url, notifier) {
        (Some(url), _) => {
            Arc::new(SmtpNotifier::new(url, &p.smtp_from).map_err(anyhow::Error::msg)?)
        }
        (None, Some(n)) => n,
        (None, None) => Arc::new(LogNotifier),
    };
    let mut cfg = WorkerConfig::new(SagaDef::orders(p.saga));
    cfg.consumers = p.consumers;
    cfg.visibility = p.visibility;
    cfg.redelivery_base = p.redelivery_base;
    let worker = Worker::new(app.clone(), outbox, bus, notifier, cfg);
    // Webhooks run where the backend stores them (the embedded one); its bus feeds the
    // `webhooks` subscription (`local_routes`).
    if app.webhooks().is_some() {
        let webhooks = orderly_worker::webhooks::WebhookConfig {
            egress: p.egress.clone(),
            ..p.webhooks.clone()
        };
        return worker.with_webhooks(webhooks).map_err(anyhow::Error::msg);
    }
    Ok(worker)
}

/// Opens the embedded store and builds the application on it.
pub fn open_app(
    data_dir: &std::path::Path,
    durability: Durability,
    settings: Settings,
    payment: SimulatorConfig,
) -> anyhow::Result<(Orderly, SqliteStore)> {
    let store = SqliteStore::open(
        data_dir,
        SqliteOptions {
            durability,
            ..SqliteOptions::default()
        },
    )
    .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let gateway = Arc::new(PaymentSimulator::new(payment));
    let shared = Arc::new(store.clone());
    let ports = Ports::from_store(shared.clone(), clock);
    let app = Orderly::new(ports, settings)
        .with_saga(SagaPorts::from_store(shared, gateway))
        .with_webhooks(Arc::new(store.clone()));
    Ok((app, store))
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// The bound address; `None` when only the worker runs.
    addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// The address actually bound (useful with port 0).
    ///
    /// # Panics
    /// If the API is not served (`serve_api` false).
    #[allow(clippy::expect_used)]
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("the API is not served")
    }

    /// Stops accepting, lets in-flight requests finish, closes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("server task failed")?
    }

    /// Runs until `signal` resolves, then shuts down gracefully.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        signal.await;
        tracing::info!("shutting down: draining in-flight requests and messages");
        self.shutdown().await
    }
}

/// The application on its backend, with what the worker needs besides.
pub struct Opened {
    pub app: Orderly,
    /// The API keys of this backend.
    pub keys: KeyService,
    bus: Arc<dyn EventBus>,
    notifier: Option<Arc<dyn Notifier>>,
    /// Where the worker's relay reads recorded events from.
    outbox: Arc<dyn orderly_core::ports::EventOutbox>,
    /// The embedded store, closed (its writer flushed) on shutdown.
    sqlite: Option<SqliteStore>,
    /// The orders table's stream, relayed to the orders queue while the worker runs.
    #[cfg(feature = "aws")]
    orders_stream: Option<orderly_aws::streams::StreamReader>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl Opened {
    /// Flushes and closes what needs closing (the embedded store's writer).
    pub async fn close(self) -> anyhow::Result<()> {
        if let Some(store) = self.sqlite {
            tokio::task::spawn_blocking(move || store.close())
                .await
                .context("closing the store")?;
        }
        Ok(())
    }
}

/// Opens the configured backend (for `serve` and `worker`, and for the admin commands).
pub async fn open_backend(cfg: &ServeConfig) -> anyhow::Result<Opened> {
    match &cfg.backend {
        Backend::Sqlite => {
            let (app, store) = open_app(
                &cfg.data_dir,
                cfg.durability,
                cfg.settings.clone(),
                cfg.processing.payment.clone(),
            )?;
            let bus = Arc::new(QueueBus::new(
                app.queue().clone(),
                orderly_core::events::local_routes(),
            ));
            let keys = KeyService::new(Arc::new(store.clone()), Arc::new(SystemClock));
            Ok(Opened {
                app,
                keys,
                bus,
                notifier: None,
                outbox: Arc::new(store.clone()),
                sqlite: Some(store),
                #[cfg(feature = "aws")]
                orders_stream: None,
            })
        }
        #[cfg(feature = "aws")]
        Backend::Aws(opts) => {
            let rt = aws::open(
                opts,
                cfg.settings.clone(),
                cfg.processing.payment.clone(),
                cfg.processing.visibility,
            )
            .await?;
            Ok(Opened {
                keys: KeyService::new(rt.keys, Arc::new(SystemClock)),
                app: rt.app,
                bus: rt.bus,
                notifier: rt.notifier,
                outbox: rt.outbox,
                sqlite: None,
                orders_stream: Some(rt.orders_stream),
            })
        }
    }
}

/// Under [`EgressMode::Loopback`], every endpoint the configuration names (mail server,
/// alarm webhook, JWKS URL) must be on loopback: a test or development server sends
/// nothing off the machine. Under [`EgressMode::Public`] they are the operator's choice.
pub fn check_configured_egress(cfg: &ServeConfig) -> anyhow::Result<()> {
    let policy = &cfg.processing.egress;
    if policy.mode != EgressMode::Loopback {
        return Ok(());
    }
    let mut endpoints: Vec<(&str, &str)> = Vec::new();
    if let Some(u) = &cfg.processing.smtp_url {
        endpoints.push(("--smtp-url", u));
    }
    if let Some(u) = &cfg.ops.alarm_webhook {
        endpoints.push(("--alarm-webhook-url", u));
    }
    if let Some(orderly_auth::jwt::JwtConfig {
        jwks: Some(orderly_auth::jwt::JwksSource::Url(u)),
        ..
    }) = &cfg.auth.jwt
    {
        endpoints.push(("--jwt-jwks-url", u));
    }
    for (flag, url) in endpoints {
        let host =
            url_host(url).with_context(|| format!("{flag}: cannot read the host of {url:?}"))?;
        policy
            .check_host(&host)
            .map_err(|e| anyhow::anyhow!("{flag}: {e} (--egress loopback)"))?;
    }
    Ok(())
}

/// The host of `scheme://[user@]host[:port]/...`, bracketed IPv6 literals unwrapped.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// Binds, opens the store and starts serving (and processing) in the background.
pub async fn start(cfg: ServeConfig) -> anyhow::Result<Running> {
    check_configured_egress(&cfg)?;
    if cfg.serve_api {
        match orderly_http::server::raise_fd_limit() {
            Some(l) => tracing::info!(
                soft_before = l.soft_before,
                soft = l.soft,
                hard = l.hard,
                "open-file limit (soft raised to hard)"
            ),
            None => tracing::info!("open-file limit: none on this platform"),
        }
    }
    #[cfg_attr(not(feature = "aws"), allow(unused_mut))]
    let mut opened = open_backend(&cfg).await?;
    let app = opened.app.clone();
    if cfg.seed_if_empty && app.products().await?.is_empty() {
        let created = app
            .seed(SeedMode::KeepExisting)
            .await?
            .iter()
            .filter(|(_, o)| *o == SeedOutcome::Created)
            .count();
        tracing::info!(
            products = created,
            "empty catalogue: loaded the seed inventory"
        );
    }
    let (stop, stopped) = watch::channel(false);
    cfg.ops
        .alarms
        .validate()
        .map_err(|e| anyhow::anyhow!("alarms: {e}"))?;
    let process_ops = ops::ProcessOps::new(&cfg.ops, &app);
    let channels = ops::AlarmChannels {
        webhook: cfg.ops.alarm_webhook.clone(),
        mail: match (&cfg.ops.alarm_email, &cfg.processing.smtp_url) {
            (Some(to), Some(url)) => Some((
                to.clone(),
                SmtpNotifier::new(url, &cfg.processing.smtp_from).map_err(anyhow::Error::msg)?,
            )),
            (Some(_), None) => anyhow::bail!("--alarm-email needs --smtp-url (the mail server)"),
            (None, _) => None,
        },
    };
    let ops_task = tokio::spawn(ops::run(
        process_ops.clone(),
        app.clone(),
        cfg.ops.clone(),
        cfg.processing.egress.clone(),
        channels,
        stop.subscribe(),
    ));
    let metrics_task = match cfg.ops.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the metrics address {addr}"))?;
            tracing::info!(addr = %listener.local_addr()?, "serving /metrics without credentials");
            Some(tokio::spawn(ops::serve_metrics(
                process_ops.clone(),
                listener,
                stop.subscribe(),
            )))
        }
        None => None,
    };
    let worker = if cfg.run_worker {
        let worker = build_worker(
            &app,
            &cfg.processing,
            opened.outbox.clone(),
            opened.bus.clone(),
            opened.notifier.clone(),
        )?
        .with_drain_timeout(cfg.http.drain_timeout);
        // The embedded queue wakes receivers when a message arrives, so a short wait costs
        // nothing and keeps shutdown quick (it lets a receive in progress finish).
        let worker = if opened.sqlite.is_some() {
            worker.with_poll_wait(Duration::from_secs(1))
        } else {
            worker
        };
        let signal = stop.subscribe();
        #[cfg(feature = "aws")]
        let relay = opened.orders_stream.take().map(|reader| {
            tokio::spawn(orderly_aws::streams::run_orders_relay(
                reader,
                app.queue().clone(),
                orderly_core::ports::ORDERS_QUEUE,
                stop.subscribe(),
            ))
        });
        Some(tokio::spawn(async move {
            worker.run(signal).await;
            #[cfg(feature = "aws")]
            if let Some(r) = relay {
                let _ = r.await;
            }
        }))
    } else {
        None
    };
    let store = opened.sqlite;
    let (addr, http) = if cfg.serve_api {
        let listener = tokio::net::TcpListener::bind(cfg.addr)
            .await
            .with_context(|| format!("binding {}", cfg.addr))?;
        let addr = listener.local_addr()?;
        if cfg.auth.bootstrap_admin_key {
            bootstrap_admin_key(&opened.keys, &cfg.data_dir).await?;
        }
        let jwt = match &cfg.auth.jwt {
            Some(j) => Some(JwtVerifier::new(j.clone()).context("JWT configuration")?),
            None => None,
        };
        orderly_http::parse_cors_origins(&cfg.http.cors_origins).map_err(anyhow::Error::msg)?;
        cfg.auth
            .rate_limit
            .validate()
            .map_err(|e| anyhow::anyhow!("rate limit: {e}"))?;
        cfg.auth
            .failed_auth_limit
            .validate()
            .map_err(|e| anyhow::anyhow!("failed-authentication limit: {e}"))?;
        let auth = Authenticator::local(opened.keys.clone(), jwt, cfg.auth.rate_limit)
            .with_failed_auth_limit(cfg.auth.failed_auth_limit);
        let router = orderly_http::router(AppState {
            app: app.clone(),
            config: cfg.http.clone(),
            auth: Arc::new(auth),
            ops: Some(process_ops.clone()),
        });
        let mut stopped = stopped.clone();
        let http_cfg = cfg.http.clone();
        let http = tokio::spawn(async move {
            orderly_http::server::serve(listener, router, &http_cfg, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
        });
        (Some(addr), Some(http))
    } else {
        (None, None)
    };
    let mut purge_stop = stopped;
    let purge_app = app.clone();
    let purge = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = tick.tick() => match purge_app.purge_idempotency().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "expired idempotency keys removed"),
                    Err(e) => tracing::warn!(error = %e, "idempotency purge failed"),
                },
                _ = purge_stop.changed() => break,
            }
        }
    });
    let task = tokio::spawn(async move {
        // HTTP first: no new orders; then the worker finishes the messages in hand.
        let served = match http {
            Some(h) => h.await.context("HTTP task")?.context("serving HTTP"),
            None => Ok(()),
        };
        if let Some(w) = worker {
            w.await.context("worker task")?;
        }
        let _ = purge.await;
        let _ = ops_task.await;
        if let Some(m) = metrics_task {
            let _ = m.await;
        }
        // Commit what the writer holds and stop it before reporting done.
        if let Some(store) = store {
            tokio::task::spawn_blocking(move || store.close())
                .await
                .context("closing the store")?;
        }
        served
    });
    match addr {
        Some(addr) => {
            tracing::info!(%addr, data_dir = %cfg.data_dir.display(), worker = cfg.run_worker, "orderly is serving")
        }
        None => tracing::info!(data_dir = %cfg.data_dir.display(), "orderly worker is running"),
    }
    Ok(Running { addr, stop, task })
}

/// On a store without any API key: creates an admin key, saves it to
/// `<data_dir>/admin.key` readable by the owner only, and prints it once.
pub async fn bootstrap_admin_key(
    keys: &KeyService,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    if keys.any().await.map_err(anyhow::Error::msg)? {
        return Ok(());
    }
    let user: orderly_core::UserId = "admin"
        .parse()
        .map_err(|e: orderly_core::types::InvalidValue| anyhow::anyhow!(e.0))?;
    let created = keys
        .create(
            Role::Admin,
            Some(user),
            Some("created on first start".into()),
        )
        .await
        .map_err(anyhow::Error::msg)?;
    let path = data_dir.join(ADMIN_KEY_FILE);
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    write_secret_file(&path, &format!("{}\n", created.key))
        .with_context(|| format!("saving the admin key to {}", path.display()))?;
    println!(
        "Created the first admin API key (shown once; also saved to {}):\n  {}\n\
         Send it as `x-api-key`. More keys: `orderly keys create --role customer --user <id>`.",
        path.display(),
        created.key
    );
    tracing::info!(key_id = %created.record.id, file = %path.display(), "created the first admin API key");
    Ok(())
}

/// Writes a file only its owner may read (0600 on Unix), replacing any old one.
fn write_secret_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, with the request span's fields (route, order id).
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Installs the global tracing subscriber.
pub fn init_logging(format: LogFormat, filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("smtp://127.0.0.1:2525").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            url_host("smtps://u:p@mail.example.com").as_deref(),
            Some("mail.example.com")
        );
        assert_eq!(url_host("http://[::1]:9/x?y").as_deref(), Some("::1"));
        assert_eq!(
            url_host("http://localhost/jwks.json").as_deref(),
            Some("localhost")
        );
        assert_eq!(url_host("nonsense"), None);
        assert_eq!(url_host("http:///x"), None);
    }

    #[test]
    fn loopback_egress_refuses_configured_endpoints_off_the_machine() {
        let mut cfg = ServeConfig::new(PathBuf::from("/nonexistent"));
        cfg.processing.egress = EgressPolicy::loopback();
        cfg.processing.smtp_url = Some("smtp://127.0.0.1:2525".into());
        cfg.ops.alarm_webhook = Some("http://localhost:9/alarms".into());
        assert!(check_configured_egress(&cfg).is_ok());
        cfg.ops.alarm_webhook = Some("https://alerts.example.com/x".into());
        let e = check_configured_egress(&cfg).unwrap_err().to_string();
        assert!(e.contains("--alarm-webhook-url"), "{e}");
        cfg.ops.alarm_webhook = None;
        cfg.processing.smtp_url = Some("smtp://10.0.0.5:25".into());
        assert!(check_configured_egress(&cfg).is_err());
        // Public mode leaves configured endpoints to the operator.
        cfg.processing.egress = EgressPolicy::default();
        assert!(check_configured_egress(&cfg).is_ok());
    }
}
