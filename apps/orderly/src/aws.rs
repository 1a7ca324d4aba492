//! `--backend aws`: the same API and worker on the AWS adapters (DynamoDB, SQS,
//! EventBridge, SNS). The processing message of an order follows its DynamoDB write
//! through the orders table's stream (read here by a relay loop), and domain events leave
//! through the events table's stream to EventBridge, whose rules deliver them to the
//! subscriber queues this process consumes: the shape of the Lambda deployment, with the
//! local saga engine in place of Step Functions.
//!
//! `--create-resources` creates what is missing (tables, queues with their dead-letter
//! queues, the bus and its rules, the notification topic): for emulators and first runs;
//! in production Terraform owns them.

use std::sync::Arc;

use anyhow::Context;
use orderly_aws::AwsSettings;
use orderly_aws::deployment::{Deployment, QUEUES};
use orderly_aws::dynamo::{DynamoStore, create_tables};
use orderly_aws::eventbridge::{EventBridgeBus, ensure_bus, route};
use orderly_aws::sns::SnsNotifier;
use orderly_aws::sqs::{SqsQueue, create_queues};
use orderly_aws::streams::{StreamOutbox, StreamReader};
use orderly_core::events::routes;
use orderly_core::payment::{PaymentSimulator, SimulatorConfig};
use orderly_core::ports::{EventBus, Notifier};
use orderly_core::{Orderly, Settings};

/// How to reach the deployment.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    pub settings: AwsSettings,
    pub deployment: Deployment,
    /// Create missing tables, queues, bus, rules and topic on start.
    pub create_resources: bool,
}

impl AwsOptions {
    pub fn new(deployment: Deployment) -> AwsOptions {
        AwsOptions {
            settings: AwsSettings::default(),
            deployment,
            create_resources: false,
        }
    }
}

/// The application on AWS adapters, and what the worker needs besides.
pub struct AwsRuntime {
    pub app: Orderly,
    pub bus: Arc<dyn EventBus>,
    /// SNS when a topic is configured (or created).
    pub notifier: Option<Arc<dyn Notifier>>,
    /// The events table's stream, which the worker's relay publishes from.
    pub outbox: Arc<dyn orderly_core::ports::EventOutbox>,
    /// The orders table's stream, for the relay loop that queues each order's processing
    /// ([`orderly_aws::streams::run_orders_relay`]).
    pub orders_stream: StreamReader,
    /// API keys, in the saga table.
    pub keys: Arc<dyn orderly_core::ports::ApiKeys>,
}

impl std::fmt::Debug for AwsRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsRuntime").finish_non_exhaustive()
    }
}

/// Creates whatever of the deployment is missing; answers the notification topic's ARN.
async fn create_resources(
    sdk: &orderly_aws::SdkConfig,
    d: &Deployment,
    visibility: std::time::Duration,
) -> anyhow::Result<String> {
    let ddb = orderly_aws::aws_sdk_dynamodb::Client::new(sdk);
    create_tables(&ddb, &d.tables())
        .await
        .context("creating the DynamoDB tables")?;
    let sqs = orderly_aws::aws_sdk_sqs::Client::new(sdk);
    create_queues(&sqs, &d.prefix, &QUEUES, visibility)
        .await
        .context("creating the SQS queues")?;
    let queues = SqsQueue::new(sqs, d.prefix.clone(), &QUEUES);
    let eb = orderly_aws::aws_sdk_eventbridge::Client::new(sdk);
    ensure_bus(&eb, &d.event_bus)
        .await
        .context("creating the EventBridge bus")?;
    for r in routes() {
        let arn = queues
            .queue_arn(r.target)
            .await
            .with_context(|| format!("finding the {} queue", r.target))?;
        route(
            &eb,
            &d.event_bus,
            &format!("{}-{}", d.prefix, r.target),
            &r.pattern,
            &arn,
        )
        .await
        .with_context(|| format!("routing events to the {} queue", r.target))?;
    }
    let topic = match &d.notify_topic_arn {
        Some(arn) => arn.clone(),
        None => orderly_aws::aws_sdk_sns::Client::new(sdk)
            .create_topic()
            .name(format!("{}-customer-notifications", d.prefix))
            .send()
            .await
            .context("creating the notification topic")?
            .topic_arn()
            .map(str::to_owned)
            .context("SNS answered no topic ARN")?,
    };
    Ok(topic)
}

/// Connects to the deployment (creating it first if asked) and wires the application.
pub async fn open(
    opts: &AwsOptions,
    settings: Settings,
    payment: SimulatorConfig,
    visibility: std::time::Duration,
) -> anyhow::Result<AwsRuntime> {
    let settings = orderly_aws::deployment::settings(settings);
    let sdk = orderly_aws::sdk_config(&opts.settings).await;
    let mut d = opts.deployment.clone();
    if opts.create_resources {
        let topic = create_resources(&sdk, &d, visibility).await?;
        d.notify_topic_arn = Some(topic);
    }
    let ddb = orderly_aws::aws_sdk_dynamodb::Client::new(&sdk);
    let streams = orderly_aws::aws_sdk_dynamodbstreams::Client::new(&sdk);
    let tables = d.tables();
    let store = Arc::new(DynamoStore::new(ddb.clone(), tables.clone()));
    let queue = Arc::new(SqsQueue::new(
        orderly_aws::aws_sdk_sqs::Client::new(&sdk),
        d.prefix.clone(),
        &QUEUES,
    ));
    let events_stream = StreamReader::new(
        ddb.clone(),
        streams.clone(),
        tables.events.clone(),
        tables.saga.clone(),
    );
    let orders_stream = StreamReader::new(ddb, streams, tables.orders.clone(), tables.saga);
    let keys: Arc<dyn orderly_core::ports::ApiKeys> = store.clone();
    let saga = orderly_core::SagaPorts::from_store(
        store.clone(),
        Arc::new(PaymentSimulator::new(payment)),
    );
    let ports = orderly_aws::deployment::ports(store, queue);
    let notifier = d.notify_topic_arn.as_ref().map(|arn| {
        Arc::new(SnsNotifier::new(
            orderly_aws::aws_sdk_sns::Client::new(&sdk),
            arn.clone(),
        )) as Arc<dyn Notifier>
    });
    Ok(AwsRuntime {
        app: Orderly::new(ports, settings).with_saga(saga),
        bus: Arc::new(EventBridgeBus::new(
            orderly_aws::aws_sdk_eventbridge::Client::new(&sdk),
            d.event_bus.clone(),
        )),
        notifier,
        outbox: Arc::new(StreamOutbox::new(events_stream)),
        orders_stream,
        keys,
    })
}
