//! Step Functions: starting the order saga as an execution named by the order id.
//!
//! The state machine is a Standard workflow: Standard executions are unique by name for
//! 90 days, so a processing message delivered twice (or a replayed dead letter) cannot
//! start the saga of one order twice. `ExecutionAlreadyExists` therefore means "already
//! started" and is a success here.

use aws_sdk_sfn::Client;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use orderly_core::{OrderId, StoreError};

/// What starting an order's saga did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SagaStart {
    /// A new execution, with its ARN.
    Started(String),
    /// An execution with this order's name exists already (running or finished).
    AlreadyStarted,
}

/// Starts saga executions of one state machine.
#[derive(Debug, Clone)]
pub struct SagaStarter {
    client: Client,
    state_machine_arn: String,
}

impl SagaStarter {
    pub fn new(client: Client, state_machine_arn: impl Into<String>) -> SagaStarter {
        SagaStarter {
            client,
            state_machine_arn: state_machine_arn.into(),
        }
    }

    pub fn state_machine_arn(&self) -> &str {
        &self.state_machine_arn
    }

    /// Starts the saga of `order_id` (execution name = the order id, input
    /// `{"orderId": ...}`), once.
    pub async fn start(&self, order_id: OrderId) -> Result<SagaStart, StoreError> {
        let input = serde_json::json!({ "orderId": order_id }).to_string();
        match self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(order_id.to_string())
            .input(input)
            .send()
            .await
        {
            Ok(out) => Ok(SagaStart::Started(out.execution_arn().to_owned())),
            Err(SdkError::ServiceError(se))
                if se.err().code() == Some("ExecutionAlreadyExists") =>
            {
                Ok(SagaStart::AlreadyStarted)
            }
            Err(e) => Err(sdk_err(e)),
        }
    }
}

fn sdk_err<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> StoreError {
    match &e {
        SdkError::ServiceError(se)
            if !matches!(
                se.err().code(),
                Some("ThrottlingException" | "ServiceUnavailable" | "InternalServerError")
            ) =>
        {
            StoreError::Backend(format!(
                "{}: {}",
                se.err().code().unwrap_or("Unknown"),
                se.err().message().unwrap_or("")
            ))
        }
        _ => StoreError::Unavailable(format!("Step Functions call failed: {e:?}")),
    }
}
