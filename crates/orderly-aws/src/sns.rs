//! Customer notifications through an SNS topic. Each message carries the recipient and
//! the order id as message attributes, so subscriptions can filter on them.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;
use orderly_core::ports::{Notification, Notifier, NotifyError};

/// Publishes notifications to a topic.
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> SnsNotifier {
        SnsNotifier {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

fn attribute(v: &str) -> Result<MessageAttributeValue, NotifyError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| NotifyError {
            transient: false,
            message: e.to_string(),
        })
}

#[async_trait]
impl Notifier for SnsNotifier {
    fn transport(&self) -> &'static str {
        "sns"
    }

    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        // SNS subjects are at most 100 characters.
        let subject: String = n.subject.chars().take(100).collect();
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(&n.body)
            .message_attributes("email", attribute(n.to.as_str())?)
            .message_attributes("orderId", attribute(&n.order_id.to_string())?)
            .send()
            .await
            .map_err(|e| {
                let transient = match &e {
                    SdkError::ServiceError(se) => matches!(
                        se.err().code(),
                        Some(
                            "Throttled" | "ThrottlingException" | "InternalError" | "KMSThrottling"
                        )
                    ),
                    _ => true,
                };
                NotifyError {
                    transient,
                    message: format!("SNS publish failed: {e:?}"),
                }
            })?;
        tracing::info!(order_id = %n.order_id, subject = %n.subject, "notification published");
        Ok(())
    }
}
