//! The `ApiKeys` port on DynamoDB: one item per key in the saga table, all in the
//! partition `~apikeys` (few keys, read by id; listing is one query).

use async_trait::async_trait;
use orderly_core::StoreError;
use orderly_core::access::ApiKeyRecord;
use orderly_core::model::Timestamp;
use orderly_core::ports::ApiKeys;

use super::{
    DynamoStore, Item, corrupt, get_n, get_s, is_condition_failure, n, opt_s, s, sdk_err, ts,
};

/// The saga table's partition that holds the API keys.
pub const KEYS_PARTITION: &str = "~apikeys";

fn sort_key(id: &str) -> String {
    format!("key#{id}")
}

fn key_from_item(item: &Item) -> Result<ApiKeyRecord, StoreError> {
    let role = get_s(item, "role")?;
    Ok(ApiKeyRecord {
        id: get_s(item, "keyId")?.to_owned(),
        secret_hash: get_s(item, "secretHash")?.to_owned(),
        role: role.parse().map_err(|_| corrupt("key role", role))?,
        user_id: match opt_s(item, "userId") {
            None => None,
            Some(u) => Some(u.parse().map_err(|_| corrupt("key user", &u))?),
        },
        label: opt_s(item, "label"),
        created_at: ts(get_n(item, "createdAt")?)?,
        revoked_at: match item.contains_key("revokedAt") {
            true => Some(ts(get_n(item, "revokedAt")?)?),
            false => None,
        },
    })
}

#[async_trait]
impl ApiKeys for DynamoStore {
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.tables.saga)
            .item("orderId", s(KEYS_PARTITION))
            .item("sk", s(sort_key(&key.id)))
            .item("keyId", s(&key.id))
            .item("secretHash", s(&key.secret_hash))
            .item("role", s(key.role.as_str()))
            .item("createdAt", n(key.created_at.millis()))
            .condition_expression("attribute_not_exists(sk)");
        if let Some(u) = &key.user_id {
            put = put.item("userId", s(u.as_str()));
        }
        if let Some(l) = &key.label {
            put = put.item("label", s(l));
        }
        if let Some(r) = key.revoked_at {
            put = put.item("revokedAt", n(r.millis()));
        }
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => {
                Err(StoreError::Backend(format!("API key id {} exists", key.id)))
            }
            Err(e) => Err(sdk_err(e)),
        }
    }

    async fn key_by_id(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.saga)
            .key("orderId", s(KEYS_PARTITION))
            .key("sk", s(sort_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err)?;
        out.item().map(key_from_item).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.tables.saga)
                .key_condition_expression("orderId = :p")
                .expression_attribute_values(":p", s(KEYS_PARTITION))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_err)?;
            for item in page.items() {
                out.push(key_from_item(item)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.tables.saga)
            .key("orderId", s(KEYS_PARTITION))
            .key("sk", s(sort_key(id)))
            .update_expression("SET revokedAt = if_not_exists(revokedAt, :at)")
            .condition_expression("attribute_exists(sk)")
            .expression_attribute_values(":at", n(at.millis()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(sdk_err(e)),
        }
    }
}
