//! # orderly-lambda
//!
//! The Lambda functions of serverless Orderly. Each binary in `src/bin` is a small
//! bootstrap that reads its configuration from the environment ([`Lambda::from_env`]) and
//! hands each invocation to one handler here; the handlers only translate the AWS event
//! shapes and call the use cases of `orderly-core` on the AWS adapters of `orderly-aws`,
//! so they are tested in-process against the emulator (`tests/it/handlers.rs`).
//!
//! | function | trigger | handler |
//! |---|---|---|
//! | `api` | API Gateway (REST proxy) | the axum router of `orderly-http` through `lambda_http` |
//! | `relay` | DynamoDB streams of the orders and events tables | [`relay::handle`] |
//! | `intake` | SQS orders queue (partial batch responses) | [`intake::handle`] |
//! | `saga-step` | Step Functions Task states | [`saga_step::handle`] |
//! | `events` | EventBridge rules (audit, fulfilment, notifications) | [`events::handle`] |
//! | `dlq-replay` | on demand | [`dlq_replay::handle`] |
//!
//! It may depend on every library crate of the workspace except the SQLite adapters and
//! the local worker, and on the Lambda runtime crates.

pub mod dlq_replay;
pub mod emf;
pub mod events;
pub mod intake;
pub mod manifest;
pub mod relay;
pub mod saga_step;

use std::collections::HashMap;
use std::sync::Arc;

use orderly_auth::{Principal, Role};
use orderly_aws::deployment::{Deployment, settings_from_vars};
use orderly_aws::dynamo::DynamoStore;
use orderly_aws::eventbridge::EventBridgeBus;
use orderly_aws::sfn::SagaStarter;
use orderly_aws::sns::SnsNotifier;
use orderly_aws::sqs::SqsQueue;
use orderly_core::payment::{PaymentSimulator, SimulatorConfig};
use orderly_core::ports::{EventBus, Notifier};
use orderly_core::saga::{SagaDef, SagaSettings};
use orderly_core::{Money, Orderly, Settings};
use serde_json::Value;

/// Everything a function needs, built once per cold start.
#[derive(Clone)]
pub struct Lambda {
    pub app: Orderly,
    pub deployment: Deployment,
    pub saga: SagaDef,
    pub http: orderly_http::HttpConfig,
    /// The EventBridge bus: wired by the `relay` function only ([`Lambda::with_event_bus`]).
    pub bus: Option<Arc<dyn EventBus>>,
    /// SNS when the deployment has a topic and the function wired it
    /// ([`Lambda::with_sns`], the `events` function); the log otherwise.
    pub notifier: Arc<dyn Notifier>,
    /// Present when the function wired it ([`Lambda::with_saga_starter`], the `intake`
    /// function) and `ORDERLY_STATE_MACHINE_ARN` is set.
    pub starter: Option<SagaStarter>,
    /// The tables, for the saga's ports a function adds ([`Lambda::with_saga`]).
    store: Arc<DynamoStore>,
    /// The payment simulator's settings, likewise.
    payment: SimulatorConfig,
}

impl std::fmt::Debug for Lambda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lambda")
            .field("deployment", &self.deployment)
            .finish_non_exhaustive()
    }
}

/// The tunables a function reads besides the deployment's names.
#[derive(Debug, Clone, Default)]
pub struct Tunables {
    pub settings: Settings,
    pub http: orderly_http::HttpConfig,
    pub saga: SagaSettings,
    pub payment: SimulatorConfig,
}

fn parse_var<T: std::str::FromStr>(
    vars: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, String>
where
    T::Err: std::fmt::Display,
{
    match vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|e| format!("{name}: {v:?} is not valid: {e}")),
    }
}

impl Tunables {
    /// Reads the same variables as `orderly serve`: `ORDERLY_IDEMPOTENCY_TTL_SECS`,
    /// `ORDERLY_MAX_BODY_BYTES`, and `ORDERLY_IDEMPOTENCY_LOCK_SECS` (the API function's
    /// timeout and a margin, set by the stack),
    /// `ORDERLY_PAYMENT_ATTEMPTS`, `ORDERLY_PAYMENT_RETRY_BASE_MS`,
    /// `ORDERLY_PAYMENT_DECLINE_OVER`, `ORDERLY_PAYMENT_DECLINE_PERCENT`,
    /// `ORDERLY_PAYMENT_TRANSIENT_FAILURES`.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Tunables, String> {
        use orderly_config as config;
        let mut t = Tunables::default();
        if let Some(v) = config::IDEMPOTENCY_TTL_SECS.read(vars)? {
            t.settings.idempotency_ttl_secs = v;
        }
        // A claim in flight lasts no longer than the function that made it can live (its
        // timeout), so a retry after a killed invocation goes ahead once that has passed.
        if let Some(v) = config::IDEMPOTENCY_LOCK_SECS.read(vars)? {
            t.settings.idempotency_lock_secs = v;
        }
        let int = |v: i64, t: &config::Tunable| format!("{}: {v} does not fit", t.env);
        if let Some(v) = config::MAX_BODY_BYTES.read(vars)? {
            t.http.max_body_bytes =
                usize::try_from(v).map_err(|_| int(v, &config::MAX_BODY_BYTES))?;
        }
        if let Some(v) = config::PAYMENT_ATTEMPTS.read(vars)? {
            t.saga.payment_attempts =
                u32::try_from(v).map_err(|_| int(v, &config::PAYMENT_ATTEMPTS))?;
        }
        if let Some(v) = config::PAYMENT_RETRY_BASE_MS.read(vars)? {
            t.saga.payment_base_delay_ms =
                u64::try_from(v).map_err(|_| int(v, &config::PAYMENT_RETRY_BASE_MS))?;
        }
        if let Some(v) = parse_var::<String>(vars, config::env::PAYMENT_DECLINE_OVER)? {
            t.payment.decline_over = Money::parse_decimal(&v).map_err(|e| {
                format!(
                    "{}: {v:?} is not an amount: {e}",
                    config::env::PAYMENT_DECLINE_OVER
                )
            })?;
        }
        if let Some(v) = config::PAYMENT_DECLINE_PERCENT.read(vars)? {
            t.payment.decline_percent =
                u8::try_from(v).map_err(|_| int(v, &config::PAYMENT_DECLINE_PERCENT))?;
        }
        if let Some(v) = config::PAYMENT_TRANSIENT_FAILURES.read(vars)? {
            t.payment.transient_failures =
                u32::try_from(v).map_err(|_| int(v, &config::PAYMENT_TRANSIENT_FAILURES))?;
        }
        Ok(t)
    }
}

impl Lambda {
    /// Wires the adapters every function uses (DynamoDB, SQS) for a deployment. The
    /// clients only some functions call are added by those functions' bootstraps
    /// ([`Lambda::with_event_bus`], [`Lambda::with_sns`], [`Lambda::with_saga_starter`]), so
    /// the other binaries do not link them, and so are the saga's ports
    /// ([`Lambda::with_saga`]).
    pub fn new(sdk: &orderly_aws::SdkConfig, deployment: Deployment, mut t: Tunables) -> Lambda {
        t.settings = orderly_aws::deployment::settings(t.settings);
        let store = Arc::new(DynamoStore::new(
            orderly_aws::aws_sdk_dynamodb::Client::new(sdk),
            deployment.tables(),
        ));
        let queue = Arc::new(SqsQueue::new(
            orderly_aws::aws_sdk_sqs::Client::new(sdk),
            deployment.prefix.clone(),
            &[orderly_core::ports::ORDERS_QUEUE],
        ));
        let ports = orderly_aws::deployment::ports(store.clone(), queue);
        Lambda {
            app: Orderly::new(ports, t.settings),
            store,
            payment: t.payment,
            bus: None,
            saga: SagaDef::orders(t.saga),
            http: t.http,
            deployment,
            notifier: Arc::new(orderly_core::ports::LogNotifier),
            starter: None,
        }
    }

    /// Adds what running saga steps and compensations takes: the saga's ports on
    /// DynamoDB and the payment gateway (the `saga-step` and `intake` functions; the
    /// others never run a step).
    pub fn with_saga(mut self) -> Lambda {
        let gateway = Arc::new(PaymentSimulator::new(self.payment.clone()));
        let saga = orderly_core::SagaPorts::from_store(self.store.clone(), gateway);
        self.app = self.app.with_saga(saga);
        self
    }

    /// Adds the EventBridge bus (the `relay` function publishes to it).
    pub fn with_event_bus(mut self, sdk: &orderly_aws::SdkConfig) -> Lambda {
        self.bus = Some(Arc::new(EventBridgeBus::new(
            orderly_aws::aws_sdk_eventbridge::Client::new(sdk),
            self.deployment.event_bus.clone(),
        )));
        self
    }

    /// Adds SNS as the notifier when the deployment names a topic (the `events` function
    /// mails customers through it).
    pub fn with_sns(mut self, sdk: &orderly_aws::SdkConfig) -> Lambda {
        if let Some(arn) = &self.deployment.notify_topic_arn {
            self.notifier = Arc::new(SnsNotifier::new(
                orderly_aws::aws_sdk_sns::Client::new(sdk),
                arn.clone(),
            ));
        }
        self
    }

    /// Adds the Step Functions client when the deployment names the state machine (the
    /// `intake` function starts executions).
    pub fn with_saga_starter(mut self, sdk: &orderly_aws::SdkConfig) -> Lambda {
        self.starter =
            self.deployment.state_machine_arn.as_ref().map(|arn| {
                SagaStarter::new(orderly_aws::aws_sdk_sfn::Client::new(sdk), arn.clone())
            });
        self
    }

    /// Reads the environment, loads the SDK configuration and wires the adapters every
    /// function uses, then the function's own (`extra`).
    pub async fn from_env(
        extra: impl FnOnce(Lambda, &orderly_aws::SdkConfig) -> Lambda,
    ) -> anyhow::Result<Lambda> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        let deployment = Deployment::from_vars(&vars).map_err(anyhow::Error::msg)?;
        let tunables = Tunables::from_vars(&vars).map_err(anyhow::Error::msg)?;
        let sdk = orderly_aws::sdk_config(&settings_from_vars(&vars)).await;
        Ok(extra(Lambda::new(&sdk, deployment, tunables), &sdk))
    }
}

/// JSON logs to stdout (CloudWatch Logs reads them), level from `ORDERLY_LOG` (default
/// `info`).
pub fn init_logging() {
    let filter = std::env::var(orderly_config::env::LOG).unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(true)
        .flatten_event(true)
        .without_time()
        .try_init();
}

/// Runs a JSON-in, JSON-out handler as a Lambda function.
pub async fn serve_json<F, Fut, E>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(serde_json::Value) -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value, E>>,
    E: Into<lambda_runtime::Diagnostic> + std::fmt::Debug,
{
    let handler = &handler;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |ev: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let out = handler(ev.payload).await;
            emf::flush();
            out
        },
    ))
    .await
}

/// Starts a function: logging, wiring (the common adapters, then `extra`'s), then `run`
/// with the wiring.
pub async fn bootstrap<W, F, Fut>(extra: W, run: F) -> Result<(), lambda_runtime::Error>
where
    W: FnOnce(Lambda, &orderly_aws::SdkConfig) -> Lambda,
    F: FnOnce(Lambda) -> Fut,
    Fut: std::future::Future<Output = Result<(), lambda_runtime::Error>>,
{
    init_logging();
    emf::install();
    let lambda = match Lambda::from_env(extra).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return Err(e.into());
        }
    };
    run(lambda).await
}

/// How the `api` function learns who is calling: API Gateway's authorizer has already
/// checked the credential (a Cognito user pool token, or an API key of a usage plan), so
/// the function trusts the identity in the request context and verifies nothing again.
/// It refuses to start unless `ORDERLY_AUTH_MODE=gateway` says the API in front of it
/// really does authorize every request.
#[derive(Debug, Clone)]
pub struct GatewayAuth {
    /// The claim listing a Cognito user's groups (`ORDERLY_JWT_ROLES_CLAIM`).
    pub roles_claim: String,
    /// The group that makes a user an admin (`ORDERLY_JWT_ADMIN_GROUP`).
    pub admin_group: String,
}

/// Must be `gateway` for the `api` function to start.
pub const ENV_AUTH_MODE: &str = orderly_config::env::AUTH_MODE;

impl GatewayAuth {
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<GatewayAuth, String> {
        match vars.get(ENV_AUTH_MODE).map(String::as_str) {
            Some("gateway") => {}
            Some(other) => {
                return Err(format!(
                    "{ENV_AUTH_MODE}={other:?} is not supported by the api function; it must \
                     be \"gateway\" (API Gateway authorizes every request)"
                ));
            }
            None => {
                return Err(format!(
                    "{ENV_AUTH_MODE} is not set: the api function trusts API Gateway's \
                     authorizer and starts only when {ENV_AUTH_MODE}=gateway confirms there is one"
                ));
            }
        }
        let get = |k: &str, d: &str| {
            vars.get(k)
                .filter(|v| !v.is_empty())
                .cloned()
                .unwrap_or_else(|| d.to_owned())
        };
        Ok(GatewayAuth {
            roles_claim: get(orderly_config::env::JWT_ROLES_CLAIM, "cognito:groups"),
            admin_group: get(orderly_config::env::JWT_ADMIN_GROUP, "admin"),
        })
    }

    fn groups(value: &Value) -> Vec<String> {
        match value {
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            // REST API authorizers flatten claims to strings: "admin,ops" or "[admin ops]".
            Value::String(s) => s
                .trim_matches(|c| c == '[' || c == ']')
                .split([',', ' '])
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn principal_of(&self, claims: &serde_json::Map<String, Value>) -> Option<Principal> {
        let sub = claims.get("sub")?.as_str()?;
        let user: orderly_core::UserId = sub.parse().ok()?;
        let admin = claims
            .get(&self.roles_claim)
            .map(Self::groups)
            .unwrap_or_default()
            .iter()
            .any(|g| g == &self.admin_group);
        Some(Principal {
            role: if admin { Role::Admin } else { Role::Customer },
            user_id: Some(user),
            credential: format!("gateway:user:{sub}"),
        })
    }

    /// The caller API Gateway authorized: Cognito claims first, else the API key (a
    /// service credential, admin with no user of its own). `None`: nothing authorized.
    pub fn identity(&self, ctx: &lambda_http::request::RequestContext) -> Option<Principal> {
        use lambda_http::request::RequestContext;
        match ctx {
            RequestContext::ApiGatewayV1(c) => {
                if let Some(Value::Object(claims)) = c.authorizer.fields.get("claims") {
                    return self.principal_of(claims);
                }
                let key_id = c.identity.api_key_id.as_deref().filter(|k| !k.is_empty())?;
                Some(Principal {
                    role: Role::Admin,
                    user_id: None,
                    credential: format!("gateway:apikey:{key_id}"),
                })
            }
            RequestContext::ApiGatewayV2(c) => {
                let jwt = c.authorizer.as_ref()?.jwt.as_ref()?;
                let claims: serde_json::Map<String, Value> = jwt
                    .claims
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                self.principal_of(&claims)
            }
            _ => None,
        }
    }
}

/// The HTTP API of the `api` function: the router `orderly serve` serves, routed on the
/// path without the API Gateway stage (see `without_stage`), with the caller taken from
/// the authorizer's context ([`GatewayAuth`]). Per-container rate limits would mean
/// nothing with many containers: the usage plan's throttling applies instead.
pub fn api_router(l: &Lambda, auth: &GatewayAuth) -> axum::Router {
    let api = orderly_http::router(orderly_http::AppState {
        app: l.app.clone(),
        config: l.http.clone(),
        auth: Arc::new(orderly_http::Authenticator::gateway(
            orderly_auth::limit::RateLimitConfig::disabled(),
        )),
        ops: None,
    });
    let auth = auth.clone();
    // A layer on the fallback runs before the inner router routes, so it can rewrite the
    // path it routes on (a layer on the routes themselves would run after routing).
    axum::Router::new()
        .fallback_service(api)
        .layer(axum::middleware::map_request(without_stage))
        .layer(axum::middleware::map_response(
            |resp: axum::response::Response| async move {
                emf::flush();
                resp
            },
        ))
        .layer(axum::middleware::map_request(
            move |mut req: axum::extract::Request| {
                let auth = auth.clone();
                async move {
                    use lambda_http::RequestExt;
                    let who = req.request_context_ref().and_then(|c| auth.identity(c));
                    if let Some(p) = who {
                        req.extensions_mut()
                            .insert(orderly_http::GatewayIdentity(p));
                    }
                    req
                }
            },
        ))
}

/// The request with the stage taken off the front of its path. `lambda_http` puts the
/// stage of an API Gateway event in front of the path (`/prod/orders` for the REST API
/// stage `prod`; HTTP API events with a named stage carry it in `rawPath` already) unless
/// `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` is set, and the routes are the stage-less paths:
/// without this every request of a deployed REST API answered 404.
async fn without_stage(mut req: axum::extract::Request) -> axum::extract::Request {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;

    let stage = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(c)) => c.stage.clone(),
        Some(RequestContext::ApiGatewayV2(c)) => c.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| !s.is_empty() && s != "$default") else {
        return req;
    };
    let uri = req.uri();
    let Some(rest) = uri.path().strip_prefix(&format!("/{stage}")) else {
        return req;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return req; // `/production/...` under the stage `prod`: not the stage.
    }
    let path = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    if let Ok(stripped) = axum::http::Uri::from_parts(parts) {
        *req.uri_mut() = stripped;
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shared_tunable_accepts_exactly_what_the_shared_rule_accepts() {
        for t in orderly_config::SHARED {
            for probe in orderly_config::probes(t) {
                let vars: HashMap<String, String> = [(t.env.to_owned(), probe.clone())].into();
                assert_eq!(
                    Tunables::from_vars(&vars).is_ok(),
                    t.parse(&probe).is_ok(),
                    "{}={probe}",
                    t.env
                );
            }
        }
    }

    /// The stack's variables that feed a shared tunable are validated to its range.
    #[test]
    fn the_stack_validates_shared_tunables_to_the_same_range() {
        let lambda = include_str!("../../../deploy/terraform/lambda.tf");
        let variables = include_str!("../../../deploy/terraform/variables.tf");
        let mut checked = 0;
        for t in orderly_config::SHARED {
            let Some(line) = lambda
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{} ", t.env)))
            else {
                continue;
            };
            let Some(var) = line
                .split("var.")
                .nth(1)
                .map(|r| r.trim_end_matches(')').trim())
            else {
                continue; // set from a local, not a variable
            };
            let start = variables
                .find(&format!("variable \"{var}\""))
                .unwrap_or_else(|| panic!("no variable {var}"));
            let block = &variables[start..];
            let block = &block[..block.find("\n}\n").unwrap_or(block.len())];
            for bound in [
                format!("var.{var} >= {}", t.min),
                format!("var.{var} <= {}", t.max),
            ] {
                assert!(
                    block.contains(&bound),
                    "{var} ({}): no `{bound}` in\n{block}",
                    t.env
                );
            }
            checked += 1;
        }
        assert!(
            checked >= 3,
            "only {checked} shared tunables are set from variables"
        );
    }

    #[test]
    fn tunables_are_read_and_checked() {
        let vars = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let t = Tunables::from_vars(&vars(&[
            (orderly_config::env::PAYMENT_ATTEMPTS, "5"),
            (orderly_config::env::PAYMENT_DECLINE_OVER, "50.00"),
            (orderly_config::env::IDEMPOTENCY_TTL_SECS, "60"),
            (orderly_config::env::IDEMPOTENCY_LOCK_SECS, "30"),
        ]))
        .unwrap();
        assert_eq!(t.settings.idempotency_lock_secs, 30);
        assert_eq!(t.saga.payment_attempts, 5);
        assert_eq!(t.payment.decline_over, Money::from_minor(5000).unwrap());
        assert_eq!(t.settings.idempotency_ttl_secs, 60);
        for (k, v) in [
            (orderly_config::env::PAYMENT_ATTEMPTS, "0"),
            (orderly_config::env::IDEMPOTENCY_LOCK_SECS, "0"),
            (orderly_config::env::IDEMPOTENCY_LOCK_SECS, "901"),
            (orderly_config::env::PAYMENT_DECLINE_PERCENT, "101"),
            (orderly_config::env::PAYMENT_DECLINE_OVER, "1.234"),
            (orderly_config::env::IDEMPOTENCY_TTL_SECS, "soon"),
        ] {
            let err = Tunables::from_vars(&vars(&[(k, v)])).unwrap_err();
            assert!(err.contains(k), "{err}");
        }
    }
}
