//! Every environment variable Orderly reads, named once ([`env`]), and the tunables that
//! more than one runtime reads (`orderly serve` and the Lambda functions), each with its
//! default and range declared once ([`Tunable`], [`SHARED`]). The binary's flags, the Lambda
//! bootstraps and the stack's manifest take them from here, so one runtime cannot accept a
//! value another refuses (each runtime has a test going through every shared tunable).
//!
//! It depends on nothing.

use std::collections::HashMap;

/// The names of the environment variables.
pub mod env {
    /// Address to listen on.
    pub const ADDR: &str = "ORDERLY_ADDR";
    /// Share of 5xx responses over the window above which `http_5xx_rate` fires (0..1).
    pub const ALARM_5XX_RATE: &str = "ORDERLY_ALARM_5XX_RATE";
    /// Dead letters above this raise the `dlq_depth` alarm.
    pub const ALARM_DLQ_DEPTH: &str = "ORDERLY_ALARM_DLQ_DEPTH";
    /// Mail every alarm state change to this address (needs --smtp-url).
    pub const ALARM_EMAIL: &str = "ORDERLY_ALARM_EMAIL";
    /// How often alarms are evaluated, in seconds.
    pub const ALARM_INTERVAL_SECS: &str = "ORDERLY_ALARM_INTERVAL_SECS";
    /// Share of finished sagas that failed, over the window, above which `saga_failure_rate` fires (0..1).
    pub const ALARM_SAGA_FAILURE_RATE: &str = "ORDERLY_ALARM_SAGA_FAILURE_RATE";
    /// POST every alarm state change here as JSON.
    pub const ALARM_WEBHOOK_URL: &str = "ORDERLY_ALARM_WEBHOOK_URL";
    /// The rate alarms' window, in seconds.
    pub const ALARM_WINDOW_SECS: &str = "ORDERLY_ALARM_WINDOW_SECS";
    /// `orderly bench` and the client commands: the API key to send.
    pub const API_KEY: &str = "ORDERLY_API_KEY";
    /// The `api` Lambda: who authenticates callers (`gateway`: API Gateway's authorizer; `local`: the function checks keys itself).
    pub const AUTH_MODE: &str = "ORDERLY_AUTH_MODE";
    /// AWS backend: endpoint override for an emulator, e.g. `http://127.0.0.1:5000`.
    pub const AWS_ENDPOINT_URL: &str = "ORDERLY_AWS_ENDPOINT_URL";
    /// AWS backend: prefix of the table and queue names (`<prefix>-orders`, ...).
    pub const AWS_PREFIX: &str = "ORDERLY_AWS_PREFIX";
    /// AWS backend: region (default: the SDK's chain, e.g. AWS_REGION).
    pub const AWS_REGION: &str = "ORDERLY_AWS_REGION";
    /// Where orders are stored and processed.
    pub const BACKEND: &str = "ORDERLY_BACKEND";
    /// Milliseconds a request body may take to arrive in full (408 after).
    pub const BODY_READ_TIMEOUT_MS: &str = "ORDERLY_BODY_READ_TIMEOUT_MS";
    /// On a store without API keys, create an admin key, print it once and save it to <data-dir>/admin.key (mode 0600).
    pub const BOOTSTRAP_ADMIN_KEY: &str = "ORDERLY_BOOTSTRAP_ADMIN_KEY";
    /// Browser origins allowed by CORS (repeat, or comma-separate in the variable); none: CORS off.
    pub const CORS_ORIGINS: &str = "ORDERLY_CORS_ORIGINS";
    /// AWS backend: create missing tables, queues, bus, rules and topic on start.
    pub const CREATE_RESOURCES: &str = "ORDERLY_CREATE_RESOURCES";
    /// Directory holding the embedded database (created if missing).
    pub const DATA_DIR: &str = "ORDERLY_DATA_DIR";
    /// Milliseconds shutdown waits for requests already read to be answered and for the worker to finish or hand back its messages.
    pub const DRAIN_TIMEOUT_MS: &str = "ORDERLY_DRAIN_TIMEOUT_MS";
    /// Commit durability: `full` survives power loss, `normal` survives process crashes.
    pub const DURABILITY: &str = "ORDERLY_DURABILITY";
    /// Where the server's outbound requests may go. `public`: webhooks reach public addresses only (checked on the resolved address when delivering), except the hosts of --egress-allow-hosts. `loopback`: webhooks, the alarm webhook, the mail server and the JWKS must all be on loopback, and no name but `localhost` is looked up (tests, development).
    pub const EGRESS: &str = "ORDERLY_EGRESS";
    /// Hosts (names or IP addresses, comma-separated) webhooks may reach whatever their address, e.g. an internal receiver on a private network (with --egress public).
    pub const EGRESS_ALLOW_HOSTS: &str = "ORDERLY_EGRESS_ALLOW_HOSTS";
    /// AWS backend: the EventBridge bus (default: the prefix).
    pub const EVENT_BUS: &str = "ORDERLY_EVENT_BUS";
    /// Failed authentications one client address may make at once.
    pub const FAILED_AUTH_BURST: &str = "ORDERLY_FAILED_AUTH_BURST";
    /// Failed authentications per second one client address may sustain; past the burst and this rate, its requests are answered 429 before anything is verified.
    pub const FAILED_AUTH_RPS: &str = "ORDERLY_FAILED_AUTH_RPS";
    /// Burst over all credentials together.
    pub const GLOBAL_RATE_LIMIT_BURST: &str = "ORDERLY_GLOBAL_RATE_LIMIT_BURST";
    /// Requests per second over all credentials together.
    pub const GLOBAL_RATE_LIMIT_RPS: &str = "ORDERLY_GLOBAL_RATE_LIMIT_RPS";
    /// Milliseconds a connection may take to send a request's headers, from its first byte (or from opening); the connection is closed after.
    pub const HEADER_READ_TIMEOUT_MS: &str = "ORDERLY_HEADER_READ_TIMEOUT_MS";
    /// The `api` Lambda: how long an `Idempotency-Key` claim in flight stands (the stack sets the function's timeout + 5 s).
    pub const IDEMPOTENCY_LOCK_SECS: &str = "ORDERLY_IDEMPOTENCY_LOCK_SECS";
    /// How long a completed Idempotency-Key is remembered, in seconds.
    pub const IDEMPOTENCY_TTL_SECS: &str = "ORDERLY_IDEMPOTENCY_TTL_SECS";
    /// Bearer JWTs: the group that makes a caller an admin (others are customers).
    pub const JWT_ADMIN_GROUP: &str = "ORDERLY_JWT_ADMIN_GROUP";
    /// Bearer JWTs: the expected audience (`aud` of ID tokens, `client_id` of access tokens).
    pub const JWT_AUDIENCE: &str = "ORDERLY_JWT_AUDIENCE";
    /// Development only: accept HS256 tokens signed with the secret in this file.
    pub const JWT_HS256_SECRET_FILE: &str = "ORDERLY_JWT_HS256_SECRET_FILE";
    /// Bearer JWTs: the expected issuer (Cognito: https://cognito-idp.<region>.amazonaws.com/<pool-id>).
    pub const JWT_ISSUER: &str = "ORDERLY_JWT_ISSUER";
    /// Bearer JWTs: a JWKS file instead of a URL.
    pub const JWT_JWKS_FILE: &str = "ORDERLY_JWT_JWKS_FILE";
    /// Bearer JWTs: fetch the JWKS again once the loaded one is this many seconds old, so a withdrawn key stops working (the cached keys stay in use while the fetch fails).
    pub const JWT_JWKS_MAX_AGE_SECS: &str = "ORDERLY_JWT_JWKS_MAX_AGE_SECS";
    /// Bearer JWTs: URL of the JWKS (Cognito: <issuer>/.well-known/jwks.json).
    pub const JWT_JWKS_URL: &str = "ORDERLY_JWT_JWKS_URL";
    /// Bearer JWTs: the claim listing the caller's groups.
    pub const JWT_ROLES_CLAIM: &str = "ORDERLY_JWT_ROLES_CLAIM";
    /// Bearer JWTs: the required `token_use` (access or id); unset: either.
    pub const JWT_TOKEN_USE: &str = "ORDERLY_JWT_TOKEN_USE";
    /// Milliseconds a connection may stay idle between requests before it is closed.
    pub const KEEP_ALIVE_TIMEOUT_MS: &str = "ORDERLY_KEEP_ALIVE_TIMEOUT_MS";
    /// Log filter (tracing EnvFilter syntax, e.g. `info` or `orderly=debug,info`).
    pub const LOG: &str = "ORDERLY_LOG";
    /// Log format.
    pub const LOG_FORMAT: &str = "ORDERLY_LOG_FORMAT";
    /// Largest accepted request body, in bytes.
    pub const MAX_BODY_BYTES: &str = "ORDERLY_MAX_BODY_BYTES";
    /// Requests one credential may have in flight at once (its bodies being read included); more are answered 429 at once.
    pub const MAX_CONCURRENT_PER_CREDENTIAL: &str = "ORDERLY_MAX_CONCURRENT_PER_CREDENTIAL";
    /// Requests handled at once; more are answered 503 at once.
    pub const MAX_CONCURRENT_REQUESTS: &str = "ORDERLY_MAX_CONCURRENT_REQUESTS";
    /// Open connections at most; lowered at start to leave an eighth of the open-file limit free. At the cap a new connection replaces the longest-idle one.
    pub const MAX_CONNECTIONS: &str = "ORDERLY_MAX_CONNECTIONS";
    /// Also serve this process's metrics, without credentials, at http://ADDR/metrics (for a scraper on a private network; a `worker` has no other way to show them).
    pub const METRICS_ADDR: &str = "ORDERLY_METRICS_ADDR";
    /// AWS backend: SNS topic for customer notifications (default: none, or the one --create-resources creates).
    pub const NOTIFY_TOPIC_ARN: &str = "ORDERLY_NOTIFY_TOPIC_ARN";
    /// Payment attempts in all (transient failures are retried).
    pub const PAYMENT_ATTEMPTS: &str = "ORDERLY_PAYMENT_ATTEMPTS";
    /// The payment simulator declines orders whose total exceeds this amount.
    pub const PAYMENT_DECLINE_OVER: &str = "ORDERLY_PAYMENT_DECLINE_OVER";
    /// The payment simulator declines this share of orders (0-100), chosen by order id.
    pub const PAYMENT_DECLINE_PERCENT: &str = "ORDERLY_PAYMENT_DECLINE_PERCENT";
    /// First payment retry delay in ms (doubles per retry, full jitter).
    pub const PAYMENT_RETRY_BASE_MS: &str = "ORDERLY_PAYMENT_RETRY_BASE_MS";
    /// The payment simulator fails the first N attempts of every order transiently (tests).
    pub const PAYMENT_TRANSIENT_FAILURES: &str = "ORDERLY_PAYMENT_TRANSIENT_FAILURES";
    /// Requests a credential may send at once above its sustained rate.
    pub const RATE_LIMIT_BURST: &str = "ORDERLY_RATE_LIMIT_BURST";
    /// Requests per second each credential may sustain.
    pub const RATE_LIMIT_RPS: &str = "ORDERLY_RATE_LIMIT_RPS";
    /// First redelivery delay of a failed message, in ms (doubles per attempt, jittered).
    pub const REDELIVERY_BASE_MS: &str = "ORDERLY_REDELIVERY_BASE_MS";
    /// Seconds a request may run before it is answered 503.
    pub const REQUEST_TIMEOUT_SECS: &str = "ORDERLY_REQUEST_TIMEOUT_SECS";
    /// Also process orders in this process. `false`: the API only, with one or more `orderly worker` processes on the same data directory doing the processing.
    pub const RUN_WORKER: &str = "ORDERLY_RUN_WORKER";
    /// Load the seed catalogue on start when the store has no products.
    pub const SEED_IF_EMPTY: &str = "ORDERLY_SEED_IF_EMPTY";
    /// Sender of customer mail.
    pub const SMTP_FROM: &str = "ORDERLY_SMTP_FROM";
    /// SMTP server for customer mail, e.g. `smtp://127.0.0.1:2525` or `smtps://user:pass@mail.example.com`. Unset: notifications are recorded and logged.
    pub const SMTP_URL: &str = "ORDERLY_SMTP_URL";
    /// The `intake` Lambda: the saga state machine to start.
    pub const STATE_MACHINE_ARN: &str = "ORDERLY_STATE_MACHINE_ARN";
    /// `orderly bench` and the client commands: the server to talk to.
    pub const URL: &str = "ORDERLY_URL";
    /// Seconds a received message stays hidden (renewed while it is processed).
    pub const VISIBILITY_TIMEOUT_SECS: &str = "ORDERLY_VISIBILITY_TIMEOUT_SECS";
    /// Webhook delivery attempts in all; the last failed one dead-letters the delivery.
    pub const WEBHOOK_ATTEMPTS: &str = "ORDERLY_WEBHOOK_ATTEMPTS";
    /// Delay before the second webhook attempt in ms (doubles per attempt up to an hour, with jitter).
    pub const WEBHOOK_RETRY_BASE_MS: &str = "ORDERLY_WEBHOOK_RETRY_BASE_MS";
    /// Longest one webhook attempt may take, in ms.
    pub const WEBHOOK_TIMEOUT_MS: &str = "ORDERLY_WEBHOOK_TIMEOUT_MS";
    /// Concurrent saga consumers.
    pub const WORKERS: &str = "ORDERLY_WORKERS";

    /// Variables only the tests and scripts read.
    pub mod harness {
        /// Tests: where the AWS cost test writes the requests one order made.
        pub const COST_OUT: &str = "ORDERLY_COST_OUT";
        /// Tests: the `orderly` binary built without features (to check what it refuses).
        pub const DEFAULT_BIN: &str = "ORDERLY_DEFAULT_BIN";
        /// Tests: the AWS emulator the ignored (emulator) tests talk to.
        pub const TEST_AWS_ENDPOINT: &str = "ORDERLY_TEST_AWS_ENDPOINT";
        /// Tests: log filter for the in-process servers of the AWS tests.
        pub const TEST_LOG: &str = "ORDERLY_TEST_LOG";
        /// Tests: set when a test runs in a process of its own (process-wide metrics).
        pub const TEST_OWN_PROCESS: &str = "ORDERLY_TEST_OWN_PROCESS";
        /// Tests: rewrite the generated files (openapi.json, the state machine, the manifest) instead of comparing.
        pub const UPDATE_GENERATED: &str = "ORDERLY_UPDATE_GENERATED";
    }
}

/// A whole-number tunable: its variable, its flag on `orderly serve`, its default and the
/// range every runtime accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunable {
    pub env: &'static str,
    /// The `orderly serve` flag, without the dashes.
    pub flag: &'static str,
    pub default: i64,
    pub min: i64,
    pub max: i64,
}

impl Tunable {
    /// The value if it is in range, else the reason, naming the variable.
    pub fn check(&self, value: i64) -> Result<i64, String> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(format!(
                "{} must be {} to {} (got {value})",
                self.env, self.min, self.max
            ))
        }
    }

    /// Parses and checks a value given as text.
    pub fn parse(&self, text: &str) -> Result<i64, String> {
        let v = text
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{}: {text:?} is not a whole number", self.env))?;
        self.check(v)
    }

    /// The value of this tunable in `vars`, if set (blank counts as unset).
    pub fn read(&self, vars: &HashMap<String, String>) -> Result<Option<i64>, String> {
        match vars
            .get(self.env)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            None => Ok(None),
            Some(v) => self.parse(v).map(Some),
        }
    }
}

/// How long a completed `Idempotency-Key` is remembered, in seconds (at most a year).
pub const IDEMPOTENCY_TTL_SECS: Tunable = Tunable {
    env: env::IDEMPOTENCY_TTL_SECS,
    flag: "idempotency-ttl-secs",
    default: 86_400,
    min: 1,
    max: 31_536_000,
};

/// How long an `Idempotency-Key` claim in flight stands, in seconds.
pub const IDEMPOTENCY_LOCK_SECS: Tunable = Tunable {
    env: env::IDEMPOTENCY_LOCK_SECS,
    flag: "idempotency-lock-secs",
    default: 60,
    min: 1,
    max: 900,
};

/// Largest accepted request body, in bytes: at most 6 MiB, the most a synchronous Lambda
/// invocation carries, so both runtimes accept the same bodies.
pub const MAX_BODY_BYTES: Tunable = Tunable {
    env: env::MAX_BODY_BYTES,
    flag: "max-body-bytes",
    default: 65_536,
    min: 256,
    max: 6_291_456,
};

/// Payment attempts in all (transient failures are retried).
pub const PAYMENT_ATTEMPTS: Tunable = Tunable {
    env: env::PAYMENT_ATTEMPTS,
    flag: "payment-attempts",
    default: 3,
    min: 1,
    max: 10,
};

/// First payment retry delay in ms (doubles per retry, full jitter).
pub const PAYMENT_RETRY_BASE_MS: Tunable = Tunable {
    env: env::PAYMENT_RETRY_BASE_MS,
    flag: "payment-retry-base-ms",
    default: 2_000,
    min: 1,
    max: 60_000,
};

/// The payment simulator declines this share of orders (0-100), chosen by order id.
pub const PAYMENT_DECLINE_PERCENT: Tunable = Tunable {
    env: env::PAYMENT_DECLINE_PERCENT,
    flag: "payment-decline-percent",
    default: 0,
    min: 0,
    max: 100,
};

/// The payment simulator fails the first N attempts of every order transiently (tests).
pub const PAYMENT_TRANSIENT_FAILURES: Tunable = Tunable {
    env: env::PAYMENT_TRANSIENT_FAILURES,
    flag: "payment-transient-failures",
    default: 0,
    min: 0,
    max: 1_000,
};

/// The tunables both `orderly serve` and the Lambda functions read.
pub const SHARED: &[Tunable] = &[
    IDEMPOTENCY_TTL_SECS,
    IDEMPOTENCY_LOCK_SECS,
    MAX_BODY_BYTES,
    PAYMENT_ATTEMPTS,
    PAYMENT_RETRY_BASE_MS,
    PAYMENT_DECLINE_PERCENT,
    PAYMENT_TRANSIENT_FAILURES,
];

/// Values at and just past each end of a tunable's range, and some that are no number:
/// what the runtimes' tests feed every shared tunable, expecting [`Tunable::parse`]'s answer.
pub fn probes(t: &Tunable) -> Vec<String> {
    let mut v: Vec<String> = [t.min - 1, t.min, t.default, t.max, t.max.saturating_add(1)]
        .iter()
        .map(i64::to_string)
        .collect();
    v.extend(["x".to_owned(), "1.5".to_owned(), "-".to_owned()]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shared_tunable_has_its_default_in_range_and_names_a_variable() {
        for t in SHARED {
            assert_eq!(t.check(t.default), Ok(t.default), "{}", t.env);
            assert!(t.env.starts_with("ORDERLY_"));
            assert!(t.check(t.min - 1).is_err() && t.check(t.max + 1).is_err());
            assert!(t.parse("x").unwrap_err().contains(t.env));
        }
        let vars: HashMap<String, String> =
            [(MAX_BODY_BYTES.env.to_owned(), " ".to_owned())].into();
        assert_eq!(MAX_BODY_BYTES.read(&vars), Ok(None));
    }
}
