//! Table definitions, declared once ([`table_specs`]): created on demand for emulators and
//! first runs ([`create_tables`]), and exported into the deployment manifest that the
//! Terraform stack is checked against (Terraform owns the tables in production and must
//! declare the same keys, indexes, streams and TTL).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use orderly_core::StoreError;

use super::{ALL_ORDERS, BY_STATUS, BY_USER, Tables, build_err, sdk_err};

/// A global secondary index (projection: all attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: &'static str,
    pub hash_key: &'static str,
    pub range_key: &'static str,
}

/// One table as the adapters need it. Every key attribute is a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Which table of [`Tables`] (`orders`, `events`, `inventory`, `idempotency`, `saga`).
    pub role: &'static str,
    pub name: String,
    pub hash_key: &'static str,
    pub range_key: Option<&'static str>,
    pub indexes: Vec<IndexSpec>,
    /// The stream view type, when the table has a stream.
    pub stream: Option<StreamViewType>,
    /// The TTL attribute, when expiry is on.
    pub ttl: Option<&'static str>,
}

/// The tables of a deployment.
///
/// - The orders stream shows old and new images: the relay compares `enqueueSeq` in both
///   to see a change that queues the order's processing again.
/// - The events stream shows new images: the outbox publishes each inserted event.
pub fn table_specs(t: &Tables) -> Vec<TableSpec> {
    let by_created = |name, hash_key| IndexSpec {
        name,
        hash_key,
        range_key: "createdKey",
    };
    vec![
        TableSpec {
            role: "orders",
            name: t.orders.clone(),
            hash_key: "orderId",
            range_key: None,
            indexes: vec![
                by_created(BY_USER, "userId"),
                by_created(BY_STATUS, "status"),
                by_created(ALL_ORDERS, "kind"),
            ],
            stream: Some(StreamViewType::NewAndOldImages),
            ttl: None,
        },
        TableSpec {
            role: "events",
            name: t.events.clone(),
            hash_key: "orderId",
            range_key: Some("sk"),
            indexes: vec![],
            stream: Some(StreamViewType::NewImage),
            ttl: None,
        },
        TableSpec {
            role: "inventory",
            name: t.inventory.clone(),
            hash_key: "productId",
            range_key: None,
            indexes: vec![],
            stream: None,
            ttl: None,
        },
        TableSpec {
            role: "idempotency",
            name: t.idempotency.clone(),
            hash_key: "key",
            range_key: None,
            indexes: vec![],
            stream: None,
            ttl: Some("ttl"),
        },
        TableSpec {
            role: "saga",
            name: t.saga.clone(),
            hash_key: "orderId",
            range_key: Some("sk"),
            indexes: vec![],
            stream: None,
            ttl: None,
        },
    ]
}

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

fn gsi(ix: &IndexSpec) -> Result<GlobalSecondaryIndex, StoreError> {
    GlobalSecondaryIndex::builder()
        .index_name(ix.name)
        .key_schema(key(ix.hash_key, KeyType::Hash)?)
        .key_schema(key(ix.range_key, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(build_err)
}

async fn create(client: &Client, spec: &TableSpec) -> Result<(), StoreError> {
    let mut attrs: Vec<&str> = vec![spec.hash_key];
    attrs.extend(spec.range_key);
    for ix in &spec.indexes {
        attrs.push(ix.hash_key);
        attrs.push(ix.range_key);
    }
    attrs.sort_unstable();
    attrs.dedup();
    let mut req = client
        .create_table()
        .table_name(&spec.name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(spec.hash_key, KeyType::Hash)?);
    if let Some(sk) = spec.range_key {
        req = req.key_schema(key(sk, KeyType::Range)?);
    }
    for a in attrs {
        req = req.attribute_definitions(attr(a)?);
    }
    for ix in &spec.indexes {
        req = req.global_secondary_indexes(gsi(ix)?);
    }
    if let Some(view) = &spec.stream {
        req = req.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(view.clone())
                .build()
                .map_err(build_err)?,
        );
    }
    req.send().await.map_err(sdk_err)?;
    if let Some(ttl) = spec.ttl {
        client
            .update_time_to_live()
            .table_name(&spec.name)
            .time_to_live_specification(
                aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(ttl)
                    .build()
                    .map_err(build_err)?,
            )
            .send()
            .await
            .map_err(sdk_err)?;
    }
    Ok(())
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
    let specs = table_specs(t);
    for spec in &specs {
        if !existing.contains(&spec.name) {
            create(client, spec).await?;
        }
    }
    for spec in &specs {
        let name = &spec.name;
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
                let has = out
                    .table()
                    .and_then(|x| x.stream_specification())
                    .filter(|s| s.stream_enabled())
                    .and_then(|s| s.stream_view_type());
                if let Some(want) = &spec.stream
                    && has != Some(want)
                {
                    // Created before the stream was specified this way: the relays need it.
                    tracing::warn!(
                        table = %name,
                        want = want.as_str(),
                        has = has.map(|v| v.as_str()).unwrap_or("none"),
                        "table stream view differs from what the stream relays need"
                    );
                }
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
