//! The caller a request acts as, once its credential has been checked.

use orderly_core::UserId;
pub use orderly_core::access::Role;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// The user the caller is. Always set for customers; optional for admins.
    pub user_id: Option<UserId>,
    /// A stable, non-secret name of the credential (`key:<id>`, `jwt:<sub>`,
    /// `gateway:<id>`): the rate-limit bucket and what logs show.
    pub credential: String,
}

impl Principal {
    /// The scope of this caller's idempotency keys: the user it is (all its credentials
    /// share it), or its credential when it acts as no user. Two callers' equal keys never
    /// meet, so one cannot block or probe another's keys.
    pub fn idempotency_scope(&self) -> String {
        match &self.user_id {
            Some(u) => format!("user:{u}"),
            None => self.credential.clone(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The user a customer is confined to; `None` for admins (who see everyone).
    pub fn confined_to(&self) -> Option<&UserId> {
        match self.role {
            Role::Admin => None,
            Role::Customer => self.user_id.as_ref(),
        }
    }
}
