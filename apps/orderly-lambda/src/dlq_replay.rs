//! `dlq-replay`: moves dead letters back to their queues, on demand. Input `{}` replays
//! all; `{"ids": ["..."]}` replays those. A replayed message of an order that is already
//! terminal is skipped by the `intake` function (it starts nothing and changes nothing).

use serde_json::{Value, json};

use crate::Lambda;

pub async fn handle(l: &Lambda, input: Value) -> Result<Value, String> {
    let ids = match input.get("ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("ids: {v} is not a string"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(other) => return Err(format!("ids: expected an array of strings, got {other}")),
    };
    let moved = l
        .app
        .replay_dead_letters(ids)
        .await
        .map_err(|e| e.to_string())?;
    Ok(json!({ "replayed": moved }))
}
