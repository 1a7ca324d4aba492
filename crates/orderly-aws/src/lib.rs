//! # orderly-aws
//!
//! The serverless adapters of the Orderly ports, on the AWS SDK for Rust. Each AWS service
//! sits behind its own cargo feature so that builds compile only the SDK crates they use
//! (the local binary compiles none by default):
//!
//! - `dynamodb`: orders (with user, status and all-orders indexes for newest-first
//!   listing), the audit log of events, the inventory, idempotency keys and the saga's
//!   state ([`dynamo`]);
//! - `eventbridge`: the event bus (`eventbridge`);
//! - `sns`: customer notifications (`sns`);
//! - `sqs`: the queue port with dead-letter queues (`sqs`);
//! - `streams`: reading DynamoDB streams from a long-running process (`streams`);
//! - `sfn`: starting saga executions (`sfn`).
//!
//! Without any feature it still offers what needs no SDK: the Step Functions definition
//! generated from the saga ([`asl`]).
//!
//! Every adapter passes the same contract suites (`orderly-testkit`) as the SQLite and
//! in-memory adapters, run here against the moto emulator on loopback.
//!
//! It may depend on `orderly-core`, the AWS SDK and tokio; never on HTTP or SQLite.

pub mod asl;
#[cfg(feature = "dynamodb")]
pub mod deployment;
#[cfg(feature = "dynamodb")]
pub mod dynamo;
#[cfg(feature = "eventbridge")]
pub mod eventbridge;
pub mod iam;
#[cfg(feature = "sfn")]
pub mod sfn;
#[cfg(feature = "sns")]
pub mod sns;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "streams")]
pub mod streams;

// The SDK crates, re-exported so that crates wiring these adapters (the Lambda
// bootstraps, the binary) name the very same client types without depending on them.
#[cfg(feature = "sdk")]
pub use aws_config::SdkConfig;
#[cfg(feature = "dynamodb")]
pub use aws_sdk_dynamodb;
#[cfg(feature = "streams")]
pub use aws_sdk_dynamodbstreams;
#[cfg(feature = "eventbridge")]
pub use aws_sdk_eventbridge;
#[cfg(feature = "sfn")]
pub use aws_sdk_sfn;
#[cfg(feature = "sns")]
pub use aws_sdk_sns;
#[cfg(feature = "sqs")]
pub use aws_sdk_sqs;

/// Where and how to reach AWS.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// Region, e.g. `eu-west-1`; the SDK's default chain decides when `None`.
    pub region: Option<String>,
    /// Endpoint override for emulators such as moto (`http://127.0.0.1:5000`).
    pub endpoint_url: Option<String>,
}

/// Loads the SDK configuration (credentials and region from the default chain, unless an
/// emulator endpoint is set, in which case static test credentials are used when none are
/// configured).
#[cfg(feature = "sdk")]
pub async fn sdk_config(s: &AwsSettings) -> aws_config::SdkConfig {
    use std::time::Duration;

    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .operation_timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build(),
    );
    if let Some(r) = &s.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    if let Some(url) = &s.endpoint_url {
        loader = loader.endpoint_url(url.clone());
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                "emulator",
                "emulator",
                None,
                None,
                "orderly-emulator",
            ));
        }
        if s.region.is_none() {
            loader = loader.region(aws_config::Region::new("us-east-1"));
        }
    }
    loader.load().await
}
