//! `events`: the target of the EventBridge rules. Each event is recorded in the audit log
//! (the events table; a no-op when it is already there, as it is for events Orderly wrote
//! itself) and handed to every subscriber whose pattern matches it: fulfilment (assigns
//! a tracking id, `FULFILLED`) and notifications (SNS, once per event). All of it is
//! idempotent, so EventBridge's at-least-once delivery and Lambda's retries of an
//! asynchronous invocation change nothing twice.

use orderly_aws::eventbridge::event_from_target;
use orderly_core::events::{FULFILMENT, NOTIFICATIONS, routes};
use serde_json::{Value, json};

use crate::Lambda;

pub async fn handle(l: &Lambda, event: Value) -> Result<Value, String> {
    let e = event_from_target(&event)?;
    let audited = l
        .app
        .ports()
        .orders
        .append_event(e.clone())
        .await
        .map_err(|x| x.to_string())?;
    let mut delivered = Vec::new();
    for route in routes().into_iter().filter(|r| r.pattern.matches(&e)) {
        match route.target {
            FULFILMENT => l.app.fulfil(e.order_id).await.map_err(|x| x.to_string())?,
            NOTIFICATIONS => l.app.deliver_notification(l.notifier.as_ref(), &e).await?,
            other => return Err(format!("no subscriber for route {other}")),
        }
        delivered.push(route.target);
    }
    Ok(json!({ "eventId": e.id, "audited": audited, "subscribers": delivered }))
}
