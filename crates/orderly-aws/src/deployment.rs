//! One Orderly deployment on AWS: the names of its resources, read from the environment
//! the same way by `orderly serve --backend aws` and by every Lambda function.

use std::collections::HashMap;

use crate::dynamo::Tables;

/// Environment variables (also documented in docs/aws.md).
pub const ENV_PREFIX: &str = orderly_config::env::AWS_PREFIX;
pub const ENV_EVENT_BUS: &str = orderly_config::env::EVENT_BUS;
pub const ENV_NOTIFY_TOPIC_ARN: &str = orderly_config::env::NOTIFY_TOPIC_ARN;
pub const ENV_STATE_MACHINE_ARN: &str = orderly_config::env::STATE_MACHINE_ARN;
pub const ENV_REGION: &str = orderly_config::env::AWS_REGION;
pub const ENV_ENDPOINT_URL: &str = orderly_config::env::AWS_ENDPOINT_URL;

/// The logical queues of a deployment: order processing and one per event subscription
/// (used by the long-running worker; on Lambda, EventBridge invokes the `events`
/// function directly and only the orders queue exists).
pub const QUEUES: [&str; 3] = [
    orderly_core::ports::ORDERS_QUEUE,
    orderly_core::events::FULFILMENT,
    orderly_core::events::NOTIFICATIONS,
];

/// Names of the AWS resources one deployment uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// Prefix of table and queue names: tables `<prefix>-orders`, `-events`,
    /// `-inventory`, `-idempotency`, `-saga`; queues `<prefix>-<queue>` with dead-letter
    /// queues `<prefix>-<queue>-dlq`.
    pub prefix: String,
    /// The EventBridge bus domain events are published to.
    pub event_bus: String,
    /// SNS topic of customer notifications; `None`: notifications are logged only.
    pub notify_topic_arn: Option<String>,
    /// The saga's state machine (needed by the Lambda `worker` only).
    pub state_machine_arn: Option<String>,
}

impl Deployment {
    /// Defaults for a prefix: the bus is named like the prefix.
    pub fn new(prefix: impl Into<String>) -> Deployment {
        let prefix = prefix.into();
        Deployment {
            event_bus: prefix.clone(),
            prefix,
            notify_topic_arn: None,
            state_machine_arn: None,
        }
    }

    pub fn tables(&self) -> Tables {
        Tables::with_prefix(&self.prefix)
    }

    /// Reads a deployment from variables (`ORDERLY_AWS_PREFIX`, default `orderly`;
    /// `ORDERLY_EVENT_BUS`, default the prefix; `ORDERLY_NOTIFY_TOPIC_ARN`;
    /// `ORDERLY_STATE_MACHINE_ARN`).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Deployment, String> {
        let get = |k: &str| vars.get(k).filter(|v| !v.trim().is_empty()).cloned();
        let prefix = get(ENV_PREFIX).unwrap_or_else(|| "orderly".into());
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || prefix.len() > 40
        {
            return Err(format!(
                "{ENV_PREFIX}: {prefix:?} must be 1 to 40 letters, digits, '-' or '_'"
            ));
        }
        let mut d = Deployment::new(prefix);
        if let Some(bus) = get(ENV_EVENT_BUS) {
            d.event_bus = bus;
        }
        d.notify_topic_arn = get(ENV_NOTIFY_TOPIC_ARN);
        d.state_machine_arn = get(ENV_STATE_MACHINE_ARN);
        Ok(d)
    }

    /// [`Deployment::from_vars`] on the process environment.
    pub fn from_env() -> Result<Deployment, String> {
        Deployment::from_vars(&std::env::vars().collect())
    }
}

/// Where to reach AWS, from `ORDERLY_AWS_REGION` and `ORDERLY_AWS_ENDPOINT_URL` (both
/// optional: the SDK's default chain decides the region; the endpoint is for emulators).
pub fn settings_from_vars(vars: &HashMap<String, String>) -> crate::AwsSettings {
    let get = |k: &str| vars.get(k).filter(|v| !v.trim().is_empty()).cloned();
    crate::AwsSettings {
        region: get(ENV_REGION),
        endpoint_url: get(ENV_ENDPOINT_URL),
    }
}

/// The ports of an Orderly on a deployment: DynamoDB for everything stored, with the
/// given queue, and the system clock.
pub fn ports(
    store: std::sync::Arc<crate::dynamo::DynamoStore>,
    queue: std::sync::Arc<dyn orderly_core::ports::Queue>,
) -> orderly_core::Ports {
    orderly_core::Ports {
        orders: store.clone(),
        inventory: store.clone(),
        idempotency: store.clone(),
        readiness: store.clone(),
        notifications: store,
        queue,
        clock: std::sync::Arc::new(orderly_core::ports::SystemClock),
    }
}

/// The use-case settings on DynamoDB: an order may have at most as many lines as one
/// transaction reserves ([`crate::dynamo::MAX_RESERVABLE_LINES`]).
pub fn settings(mut s: orderly_core::Settings) -> orderly_core::Settings {
    s.max_order_lines = s.max_order_lines.min(crate::dynamo::MAX_RESERVABLE_LINES);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_overrides() {
        let d = Deployment::from_vars(&vars(&[])).unwrap();
        assert_eq!(d, Deployment::new("orderly"));
        assert_eq!(d.tables().orders, "orderly-orders");
        let d = Deployment::from_vars(&vars(&[
            (ENV_PREFIX, "shop-prod"),
            (ENV_EVENT_BUS, "bus"),
            (ENV_STATE_MACHINE_ARN, "arn:sm"),
            (ENV_NOTIFY_TOPIC_ARN, " "),
        ]))
        .unwrap();
        assert_eq!(d.event_bus, "bus");
        assert_eq!(d.state_machine_arn.as_deref(), Some("arn:sm"));
        assert_eq!(d.notify_topic_arn, None, "blank means unset");
        let err = Deployment::from_vars(&vars(&[(ENV_PREFIX, "no spaces")])).unwrap_err();
        assert!(err.contains(ENV_PREFIX), "{err}");
    }
}
