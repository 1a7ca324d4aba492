//! Table definitions, created on demand for emulators and first runs (Terraform owns
//! them in production and must declare the same keys and indexes).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use orderly_core::StoreError;

use super::{ALL_ORDERS, BY_STATUS, BY_USER, Tables, build_err, sdk_err};

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(build_err)
}

fn attr(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_err)
}

fn gsi(name: &str, pk: &str) -> Result<GlobalSecondaryIndex, StoreError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash)?)
        .key_schema(key("createdKey", KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(build_err)
}

/// Creates the tables that do not exist yet and waits until they are active.
pub async fn create_tables(client: &Client, t: &Tables) -> Result<(), StoreError> {
    let existing = client
        .list_tables()
        .send()
        .await
        .map_err(sdk_err)?
        .table_names()
        .to_vec();
    let missing = |name: &str| !existing.iter().any(|e| e == name);
    if missing(&t.orders) {
        client
            .create_table()
            .table_name(&t.orders)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("orderId", KeyType::Hash)?)
            .attribute_definitions(attr("orderId")?)
            .attribute_definitions(attr("userId")?)
            .attribute_definitions(attr("status")?)
            .attribute_definitions(attr("kind")?)
            .attribute_definitions(attr("createdKey")?)
            .global_secondary_indexes(gsi(BY_USER, "userId")?)
            .global_secondary_indexes(gsi(BY_STATUS, "status")?)
            .global_secondary_indexes(gsi(ALL_ORDERS, "kind")?)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()
                    .map_err(build_err)?,
            )
            .send()
            .await
            .map_err(sdk_err)?;
    }
    for (name, pk, sk) in [
        (&t.events, "orderId", Some("sk")),
        (&t.inventory, "productId", None),
        (&t.idempotency, "key", None),
        (&t.saga, "orderId", Some("sk")),
    ] {
        if !missing(name) {
            continue;
        }
        let mut req = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(pk, KeyType::Hash)?)
            .attribute_definitions(attr(pk)?);
        if let Some(sk) = sk {
            req = req
                .key_schema(key(sk, KeyType::Range)?)
                .attribute_definitions(attr(sk)?);
        }
        req.send().await.map_err(sdk_err)?;
    }
    if missing(&t.idempotency) {
        client
            .update_time_to_live()
            .table_name(&t.idempotency)
            .time_to_live_specification(
                aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build()
                    .map_err(build_err)?,
            )
            .send()
            .await
            .map_err(sdk_err)?;
    }
    for name in [&t.orders, &t.events, &t.inventory, &t.idempotency, &t.saga] {
        for attempt in 0..100 {
            let out = client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(sdk_err)?;
            if out.table().and_then(|x| x.table_status())
                == Some(&aws_sdk_dynamodb::types::TableStatus::Active)
            {
                break;
            }
            if attempt == 99 {
                return Err(StoreError::Unavailable(format!(
                    "table {name} never became active"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
