//! Who may call the API: roles and stored API keys. Verifying credentials lives in
//! `orderly-auth`; this module only holds the data the [`crate::ports::ApiKeys`] port keeps.

use serde::Serialize;

use crate::model::Timestamp;
use crate::types::UserId;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: any user's orders, products, `/admin/*`, metrics.
    Admin,
    /// Their own orders only, and reading the catalogue.
    Customer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Customer => "customer",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "customer" => Ok(Role::Customer),
            other => Err(format!(
                "{other:?} is not a role (expected admin or customer)"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored API key. The secret itself is never stored: only its SHA-256 digest (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    /// Public identifier, also the first part of the key (`oly_<id>_<secret>`).
    pub id: String,
    #[serde(skip)]
    pub secret_hash: String,
    pub role: Role,
    /// The user a customer key acts as (admins may have none).
    pub user_id: Option<UserId>,
    pub label: Option<String>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl ApiKeyRecord {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}
