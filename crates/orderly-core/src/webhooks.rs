//! Webhooks: admins register URLs for event types; every matching domain event is POSTed
//! to each of them, signed, retried with backoff and dead-lettered when the retries run
//! out. Every attempt is recorded in a delivery log.
//!
//! This module owns what does not depend on HTTP or a runtime:
//! - the endpoint and delivery-log types, and the parsing and validation of what admins
//!   send (URL: `http`/`https` only, no credentials in it; event types: `["*"]` or known
//!   names);
//! - the [`Webhooks`] port its adapters implement (in-memory, SQLite);
//! - the use cases: [`WebhookAdmin`] (register, list, read, disable, delete, delivery log)
//!   and [`Orderly::fan_out_webhook`] (one delivery per matching endpoint and event);
//! - the body of a delivery message ([`DeliveryMessage`]) on [`DELIVERY_QUEUE`].
//!
//! The worker (`orderly-worker`, module `webhooks`) makes the HTTP calls, signs them and
//! applies the retry policy.
//!
//! **Secrets.** Each endpoint gets a secret generated here (32 random bytes, base64url,
//! prefixed `whsec_`) that is shown once, when the endpoint is created. Unlike API keys it
//! must be stored as it is, since every delivery is signed with it; stores keep it next to
//! the endpoint and never answer it again through the API.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::{Error, StoreError};
use crate::events::EventType;
use crate::model::Timestamp;
use crate::ports::Clock;
use crate::shape::{Cx, Note, NumberTexts, Shape, Wire};

/// The queue each delivery attempt's message waits on (separate from the `webhooks`
/// event subscription that fans events out into it).
pub const DELIVERY_QUEUE: &str = "webhook-deliveries";

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// Longest description accepted.
pub const MAX_DESCRIPTION_LEN: usize = 256;
/// Most endpoints one store keeps (each event is checked against all of them).
pub const MAX_ENDPOINTS: usize = 100;

/// Which events an endpoint wants: all of them (`["*"]`) or the listed types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    All,
    /// Never empty, no type twice, in the order given.
    Only(Vec<EventType>),
}

impl EventFilter {
    pub fn matches(&self, t: EventType) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Only(types) => types.contains(&t),
        }
    }

    /// As the API shows it: `["*"]` or the type names.
    pub fn to_strings(&self) -> Vec<String> {
        match self {
            EventFilter::All => vec!["*".to_owned()],
            EventFilter::Only(types) => types.iter().map(|t| t.as_str().to_owned()).collect(),
        }
    }

    /// Parses the API's (and the stores') list form; `field` names it in errors.
    pub fn parse(values: &[String], field: &str) -> Result<EventFilter, crate::FieldError> {
        let bad = |f: String, reason: String| crate::FieldError::new(f, reason);
        if values.is_empty() {
            return Err(bad(
                field.to_owned(),
                "must list at least one event type, or \"*\" for all".into(),
            ));
        }
        if values.iter().any(|v| v == "*") {
            return if values.len() == 1 {
                Ok(EventFilter::All)
            } else {
                Err(bad(
                    field.to_owned(),
                    "\"*\" already means every event type and must be given alone".into(),
                ))
            };
        }
        let mut types = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            let t: EventType = v.parse().map_err(|_| {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                bad(
                    format!("{field}[{i}]"),
                    format!(
                        "is not an event type (expected \"*\" or one of {})",
                        known.join(", ")
                    ),
                )
            })?;
            if types.contains(&t) {
                return Err(bad(format!("{field}[{i}]"), format!("repeats {t}")));
            }
            types.push(t);
        }
        Ok(EventFilter::Only(types))
    }
}

impl Serialize for EventFilter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_strings().serialize(s)
    }
}

/// A registered webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookEndpoint {
    pub id: Uuid,
    /// Where events are POSTed (`http` or `https`).
    #[cfg_attr(
        feature = "openapi",
        schema(example = "https://hooks.example.com/orderly")
    )]
    pub url: String,
    /// `["*"]` for every event type, or the `detailType`s wanted.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, example = json!(["OrderPlaced", "FulfillmentCompleted"])))]
    pub events: EventFilter,
    /// The signing secret: stored, but never serialized (shown once, at creation).
    #[serde(skip)]
    pub secret: String,
    /// `false` once disabled: no new deliveries are made to it.
    pub active: bool,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub description: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An endpoint just created, with its secret (the only time the secret is shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    /// Signs every delivery (`orderly-webhook-signature`); shown only in this answer.
    #[cfg_attr(
        feature = "openapi",
        schema(example = "whsec_3q2-7wQx0Yb5lJ8o1mKc9nVt4hRz6aUe2sPd0fGiLkM")
    )]
    pub secret: String,
}

/// What happened to one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeliveryOutcome {
    /// The endpoint answered 2xx.
    Delivered,
    /// It did not; another attempt is scheduled.
    Failed,
    /// It did not, and this was the last attempt: the message went to the dead-letter
    /// queue.
    Dead,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Failed => "failed",
            DeliveryOutcome::Dead => "dead",
        }
    }
}

impl std::str::FromStr for DeliveryOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<DeliveryOutcome, String> {
        match s {
            "delivered" => Ok(DeliveryOutcome::Delivered),
            "failed" => Ok(DeliveryOutcome::Failed),
            "dead" => Ok(DeliveryOutcome::Dead),
            other => Err(format!("unknown delivery outcome {other:?}")),
        }
    }
}

/// One attempt to deliver one event to one endpoint (an entry of the delivery log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryAttempt {
    /// The same for every attempt at one event and endpoint (`orderly-webhook-id`).
    pub delivery_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: EventType,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When the attempt started.
    pub at: Timestamp,
    pub outcome: DeliveryOutcome,
    /// The endpoint's HTTP status, when it answered.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub status_code: Option<u16>,
    /// Why the attempt failed (a non-2xx status, a timeout, a connection error).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub error: Option<String>,
    /// How long the attempt took, in milliseconds.
    pub duration_ms: u64,
}

/// A delivery the fan-out creates: recorded once per (endpoint, event), with its first
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledDelivery {
    pub delivery_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub at: Timestamp,
}

/// Webhook endpoints and their delivery log.
#[async_trait]
pub trait Webhooks: Send + Sync {
    /// Stores a new endpoint. An id that already exists is a `Backend` error.
    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError>;

    async fn endpoint(&self, id: Uuid) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// Every endpoint, secrets included, oldest first.
    async fn list_endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError>;

    /// Enables or disables an endpoint; answers it as it is now (`None`: no such endpoint).
    /// Setting the state it already has changes nothing (not even `updated_at`).
    async fn set_endpoint_active(
        &self,
        id: Uuid,
        active: bool,
        at: Timestamp,
    ) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// Deletes an endpoint with its deliveries and their log; `false` if there was none.
    async fn delete_endpoint(&self, id: Uuid) -> Result<bool, StoreError>;

    /// Records a delivery and enqueues `body` on `queue` in one write, unless a delivery
    /// with this id exists (then nothing is written). Answers whether it was new.
    async fn schedule_delivery(
        &self,
        delivery: &ScheduledDelivery,
        queue: &str,
        body: &str,
    ) -> Result<bool, StoreError>;

    /// Appends an attempt to the log; `false` (nothing written) if this delivery's attempt
    /// with this number is already there.
    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<bool, StoreError>;

    /// One delivery's attempts, oldest first.
    async fn delivery_attempts(
        &self,
        delivery_id: Uuid,
    ) -> Result<Vec<DeliveryAttempt>, StoreError>;

    /// An endpoint's attempts over all deliveries, newest first (most recently recorded
    /// first), at most `limit`.
    async fn endpoint_attempts(
        &self,
        endpoint_id: Uuid,
        limit: u32,
    ) -> Result<Vec<DeliveryAttempt>, StoreError>;
}

/// The id every attempt at delivering `event_id` to `endpoint_id` shares (and so the same
/// on every copy of a duplicated event).
pub fn delivery_id(endpoint_id: Uuid, event_id: Uuid) -> Uuid {
    Uuid::new_v5(&endpoint_id, event_id.as_bytes())
}

/// A new signing secret: `whsec_` and 32 random bytes, base64url without padding.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The shape of a webhook URL, as a regular expression without look-around (the same
/// text is the pattern of `url` in the OpenAPI document, and a test keeps them equal):
/// `http(s)://host[:port][/path][?query]`, the host a DNS name whose last label starts with
/// a letter (never read as an IPv4 address) or a dotted IPv4 address, the path and query
/// made of URL characters only.
pub const URL_PATTERN: &str = "^[Hh][Tt][Tt][Pp][Ss]?://(([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)*[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?|((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]))(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/[A-Za-z0-9._~!$&'()*+,;=:@%-]*)*(\\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$";

fn url_shape() -> &'static regex::Regex {
    static SHAPE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    SHAPE.get_or_init(|| {
        #[allow(clippy::expect_used)]
        regex::Regex::new(URL_PATTERN).expect("URL_PATTERN is a valid regular expression")
    })
}

/// Checks a webhook URL: absolute `http` or `https`, with a host, without user name or
/// password, without a fragment, at most [`MAX_URL_LEN`] characters, of the shape
/// [`URL_PATTERN`] describes. Answers it normalized.
pub fn validate_url(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("must not be empty".into());
    }
    if raw.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    if !url_shape().is_match(raw) {
        return Err(
            "must look like http(s)://host[:port][/path][?query] (a DNS name or an IPv4 \
             address; no credentials or fragment)"
                .into(),
        );
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain white space or control characters".into());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("is not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must be an http or https URL, not {}:",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials (user:password@)".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment (#...)".into());
    }
    Ok(url.to_string())
}

/// A parsed `POST /admin/webhooks` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    pub url: String,
    pub events: EventFilter,
    pub description: Option<String>,
}

/// A webhook endpoint's URL, as [`validate_url`] accepts and normalizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(pub String);

impl Wire for WebhookUrl {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        let raw = String::read(v, cx)?;
        match validate_url(&raw) {
            Ok(url) => Some(WebhookUrl(url)),
            Err(reason) => {
                cx.fail(reason);
                None
            }
        }
    }
    fn schema() -> Value {
        json!({"type": "string", "maxLength": MAX_URL_LEN, "pattern": URL_PATTERN})
    }
}

impl Wire for EventFilter {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        let names = Vec::<String>::read(v, cx)?;
        match EventFilter::parse(&names, &cx.path()) {
            Ok(filter) => Some(filter),
            Err(e) => {
                cx.push(e);
                None
            }
        }
    }
    fn absent() -> Result<Self, &'static str> {
        Err("is required: [\"*\"] or a list of event types")
    }
    fn schema() -> Value {
        let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        json!({
            "description": "`[\"*\"]` for every event type, or the `detailType`s wanted (each at \
                most once).",
            "oneOf": [
                {"type": "array", "items": {"type": "string", "enum": ["*"]},
                 "minItems": 1, "maxItems": 1},
                {"type": "array", "items": {"type": "string", "enum": names},
                 "minItems": 1, "uniqueItems": true},
            ],
        })
    }
}

crate::shape! {
    /// `POST /admin/webhooks`: an endpoint to register.
    pub struct NewWebhookBody as "WebhookRequest" {
        /// An absolute `http` or `https` URL without credentials or fragment, at most 2048
        /// characters.
        "url" => url: WebhookUrl { example: Some(json!("https://hooks.example.com/orderly")) },
        /// `["*"]` for every event type, or the `detailType`s wanted (each at most once).
        "events" => events: EventFilter {
            example: Some(json!(["OrderPlaced", "FulfillmentCompleted"]))
        },
        /// A note for people, at most 256 characters.
        "description" => description: Option<Note<MAX_DESCRIPTION_LEN>>,
    }
}

crate::shape! {
    /// `PATCH /admin/webhooks/{webhookId}`: enable or disable an endpoint.
    pub struct WebhookPatchBody as "WebhookPatch" {
        /// `false` stops new deliveries (queued ones are dropped); `true` resumes them.
        "active" => active: bool,
    }
}

/// Parses `{"url": "...", "events": ["*"] | ["OrderPlaced", ...], "description"?: "..."}`.
pub fn parse_new_webhook(body: &Value) -> Result<NewWebhook, Error> {
    let parsed = NewWebhookBody::parse(body, &NumberTexts::default(), Vec::new())?;
    Ok(NewWebhook {
        url: parsed.url.0,
        events: parsed.events,
        description: parsed.description.map(|d| d.0),
    })
}

/// Parses a `PATCH /admin/webhooks/{id}` body: `{"active": true | false}`.
pub fn parse_webhook_patch(body: &Value) -> Result<bool, Error> {
    Ok(WebhookPatchBody::parse(body, &NumberTexts::default(), Vec::new())?.active)
}

/// Parses an endpoint id from a path.
pub fn parse_webhook_id(raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw).map_err(|_| Error::invalid_field("webhookId", "must be a UUID"))
}

fn not_found(id: Uuid) -> Error {
    Error::NotFound {
        what: "webhook",
        id: id.to_string(),
    }
}

/// The admin use cases of webhooks, over the [`Webhooks`] port.
#[derive(Clone)]
pub struct WebhookAdmin {
    store: Arc<dyn Webhooks>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for WebhookAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookAdmin").finish_non_exhaustive()
    }
}

impl WebhookAdmin {
    pub fn new(store: Arc<dyn Webhooks>, clock: Arc<dyn Clock>) -> WebhookAdmin {
        WebhookAdmin { store, clock }
    }

    /// Registers an endpoint with a fresh secret; the answer is the only place the secret
    /// is shown.
    pub async fn create(&self, new: NewWebhook) -> Result<CreatedWebhook, Error> {
        if self.store.list_endpoints().await?.len() >= MAX_ENDPOINTS {
            return Err(Error::Conflict {
                code: "too_many_webhooks",
                message: format!(
                    "at most {MAX_ENDPOINTS} webhook endpoints may be registered; delete one first"
                ),
            });
        }
        let now = self.clock.now();
        let endpoint = WebhookEndpoint {
            id: Uuid::new_v4(),
            url: new.url,
            events: new.events,
            secret: generate_secret(),
            active: true,
            description: new.description,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_endpoint(&endpoint).await?;
        Ok(CreatedWebhook {
            secret: endpoint.secret.clone(),
            endpoint,
        })
    }

    /// Every endpoint, oldest first.
    pub async fn list(&self) -> Result<Vec<WebhookEndpoint>, Error> {
        Ok(self.store.list_endpoints().await?)
    }

    pub async fn get(&self, id: Uuid) -> Result<WebhookEndpoint, Error> {
        self.store.endpoint(id).await?.ok_or_else(|| not_found(id))
    }

    /// Enables or disables an endpoint.
    pub async fn set_active(&self, id: Uuid, active: bool) -> Result<WebhookEndpoint, Error> {
        self.store
            .set_endpoint_active(id, active, self.clock.now())
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// Deletes an endpoint and its delivery log; deliveries still queued are dropped.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        if self.store.delete_endpoint(id).await? {
            Ok(())
        } else {
            Err(not_found(id))
        }
    }

    /// The endpoint's delivery attempts, newest first.
    pub async fn deliveries(&self, id: Uuid, limit: u32) -> Result<Vec<DeliveryAttempt>, Error> {
        self.get(id).await?;
        Ok(self.store.endpoint_attempts(id, limit).await?)
    }
}

/// The body of a message on [`DELIVERY_QUEUE`]: one attempt at delivering one event to one
/// endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryMessage {
    pub delivery_id: Uuid,
    pub endpoint_id: Uuid,
    /// The attempt this message makes (1 for the first).
    pub attempt: u32,
    /// The event as `GET /orders/{id}/events` shows it; POSTed as it is.
    pub event: Value,
}

impl DeliveryMessage {
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "deliveryId": self.delivery_id,
            "endpointId": self.endpoint_id,
            "attempt": self.attempt,
            "event": self.event,
        })
        .to_string()
    }

    pub fn parse(text: &str) -> Result<DeliveryMessage, String> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| format!("malformed webhook delivery message: {e}"))?;
        let uuid = |name: &str| -> Result<Uuid, String> {
            v.get(name)
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| format!("malformed webhook delivery message: no {name}"))
        };
        let attempt = v
            .get("attempt")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .ok_or("malformed webhook delivery message: no attempt")?;
        let event = v
            .get("event")
            .filter(|e| e.is_object())
            .cloned()
            .ok_or("malformed webhook delivery message: no event")?;
        Ok(DeliveryMessage {
            delivery_id: uuid("deliveryId")?,
            endpoint_id: uuid("endpointId")?,
            attempt,
            event,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn filters_match_all_or_the_listed_types() {
        let all = EventFilter::parse(&names(&["*"]), "events").unwrap();
        assert_eq!(all, EventFilter::All);
        assert!(EventType::ALL.iter().all(|t| all.matches(*t)));
        let some =
            EventFilter::parse(&names(&["OrderPlaced", "FulfillmentCompleted"]), "events").unwrap();
        assert!(some.matches(EventType::OrderPlaced));
        assert!(some.matches(EventType::FulfillmentCompleted));
        assert!(!some.matches(EventType::OrderCreated));
        assert!(!some.matches(EventType::OrderFailed));
        assert_eq!(
            some.to_strings(),
            names(&["OrderPlaced", "FulfillmentCompleted"])
        );
        assert_eq!(all.to_strings(), names(&["*"]));
        assert_eq!(
            serde_json::to_value(&some).unwrap(),
            serde_json::json!(["OrderPlaced", "FulfillmentCompleted"])
        );
    }

    #[test]
    fn filters_refuse_unknown_repeated_empty_and_mixed_patterns() {
        let err = |v: &[&str]| EventFilter::parse(&names(v), "events").unwrap_err();
        assert_eq!(err(&[]).field, "events");
        let unknown = err(&["OrderPlaced", "OrderShipped"]);
        assert_eq!(unknown.field, "events[1]");
        assert!(
            unknown.reason.contains("FulfillmentCompleted"),
            "{unknown:?}"
        );
        assert_eq!(
            err(&["orderplaced"]).field,
            "events[0]",
            "names are case-sensitive"
        );
        assert_eq!(err(&["OrderPlaced", "OrderPlaced"]).field, "events[1]");
        assert_eq!(err(&["*", "OrderPlaced"]).field, "events");
        assert_eq!(err(&["OrderPlaced*"]).field, "events[0]");
    }

    #[test]
    fn urls_must_be_http_or_https_without_credentials() {
        assert_eq!(
            validate_url("https://hooks.example.com/orderly?x=1").unwrap(),
            "https://hooks.example.com/orderly?x=1"
        );
        assert_eq!(
            validate_url("http://127.0.0.1:9000").unwrap(),
            "http://127.0.0.1:9000/"
        );
        for bad in [
            "",
            "hooks.example.com/x",
            "/relative",
            "ftp://example.com/x",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://user:pass@example.com/",
            "https://token@example.com/",
            "https://example.com/a b",
            "https://example.com/#frag",
            "http://",
            "https://example.com:99999/",
        ] {
            assert!(validate_url(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(validate_url(&format!("https://e.com/{}", "a".repeat(MAX_URL_LEN))).is_err());
    }

    #[test]
    fn create_bodies_name_every_bad_field() {
        let ok = parse_new_webhook(&serde_json::json!({
            "url": "https://h.example.com/in", "events": ["OrderPlaced"], "description": "shop"
        }))
        .unwrap();
        assert_eq!(ok.events, EventFilter::Only(vec![EventType::OrderPlaced]));
        assert_eq!(ok.description.as_deref(), Some("shop"));
        let fields = |v: Value| -> Vec<String> {
            match parse_new_webhook(&v).unwrap_err() {
                Error::Invalid { details, .. } => details.into_iter().map(|d| d.field).collect(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(fields(serde_json::json!({})), ["url", "events"]);
        assert_eq!(
            fields(serde_json::json!({"url": "ftp://x", "events": "OrderPlaced"})),
            ["url", "events"]
        );
        assert_eq!(
            fields(serde_json::json!({"url": "https://x.example", "events": [1]})),
            ["events[0]"]
        );
        assert_eq!(
            fields(serde_json::json!({"url": "https://x.example", "events": ["*"], "secret": "s"})),
            ["secret"]
        );
        assert_eq!(fields(serde_json::json!([1])), ["body"]);
        assert_eq!(
            fields(
                serde_json::json!({"url": "https://x.example", "events": ["*"], "description": 5})
            ),
            ["description"]
        );
    }

    #[test]
    fn patches_take_only_active() {
        assert!(!parse_webhook_patch(&serde_json::json!({"active": false})).unwrap());
        assert!(parse_webhook_patch(&serde_json::json!({"active": true})).unwrap());
        assert!(parse_webhook_patch(&serde_json::json!({"active": "no"})).is_err());
        assert!(parse_webhook_patch(&serde_json::json!({})).is_err());
        assert!(parse_webhook_patch(&serde_json::json!({"url": "https://x"})).is_err());
    }

    #[test]
    fn secrets_are_32_random_bytes_and_delivery_ids_are_stable() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(a.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(raw.len(), 32);
        let (ep, ev) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(delivery_id(ep, ev), delivery_id(ep, ev));
        assert_ne!(delivery_id(ep, ev), delivery_id(ev, ep));
        assert_ne!(delivery_id(ep, ev), delivery_id(ep, Uuid::new_v4()));
    }

    #[test]
    fn delivery_messages_round_trip() {
        let m = DeliveryMessage {
            delivery_id: Uuid::new_v4(),
            endpoint_id: Uuid::new_v4(),
            attempt: 3,
            event: serde_json::json!({"id": "x", "detailType": "OrderPlaced"}),
        };
        assert_eq!(DeliveryMessage::parse(&m.to_json()).unwrap(), m);
        assert!(DeliveryMessage::parse("{}").is_err());
        assert!(DeliveryMessage::parse("nope").is_err());
        let zero = m.to_json().replace("\"attempt\":3", "\"attempt\":0");
        assert!(DeliveryMessage::parse(&zero).is_err());
    }
}
