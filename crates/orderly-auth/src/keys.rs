//! API keys: `oly_<id>_<secret>`. The id (12 hex characters) is public and finds the
//! stored record; the secret (32 random bytes, base64url) is shown once at creation and
//! stored only as its SHA-256 digest, compared in constant time.

use std::sync::Arc;

use base64::Engine;
use orderly_core::UserId;
use orderly_core::access::{ApiKeyRecord, Role};
use orderly_core::ports::{ApiKeys, Clock};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Principal;

const PREFIX: &str = "oly_";
const ID_HEX: usize = 12;

/// Why a presented key was refused. The HTTP layer answers 401 to all of them alike.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the API key is malformed")]
    Malformed,
    #[error("the API key is unknown")]
    Unknown,
    #[error("the API key has been revoked")]
    Revoked,
    #[error("the key store failed: {0}")]
    Store(String),
}

/// A key just created: the full secret (shown once) and what was stored.
#[derive(Clone)]
pub struct NewKey {
    pub key: String,
    pub record: ApiKeyRecord,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("key", &"<redacted>")
            .field("record", &self.record)
            .finish()
    }
}

fn digest(secret: &str) -> String {
    let d = Sha256::digest(secret.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits `oly_<id>_<secret>`, checking only the shape.
fn split(key: &str) -> Result<(&str, &str), KeyError> {
    let rest = key.strip_prefix(PREFIX).ok_or(KeyError::Malformed)?;
    let (id, secret) = rest.split_once('_').ok_or(KeyError::Malformed)?;
    let id_ok = id.len() == ID_HEX && id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = (40..=64).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if id_ok && secret_ok {
        Ok((id, secret))
    } else {
        Err(KeyError::Malformed)
    }
}

/// Creates, lists, revokes and verifies API keys on a key store.
#[derive(Clone)]
pub struct KeyService {
    store: Arc<dyn ApiKeys>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyService").finish_non_exhaustive()
    }
}

impl KeyService {
    pub fn new(store: Arc<dyn ApiKeys>, clock: Arc<dyn Clock>) -> KeyService {
        KeyService { store, clock }
    }

    /// Creates a key. A customer key needs the user it acts as.
    pub async fn create(
        &self,
        role: Role,
        user_id: Option<UserId>,
        label: Option<String>,
    ) -> Result<NewKey, String> {
        if role == Role::Customer && user_id.is_none() {
            return Err("a customer key needs --user (the user id it acts as)".into());
        }
        let mut rng = rand::rng();
        let mut id_bytes = [0u8; ID_HEX / 2];
        rng.fill_bytes(&mut id_bytes);
        let id: String = id_bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut secret_bytes = [0u8; 32];
        rng.fill_bytes(&mut secret_bytes);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
        let record = ApiKeyRecord {
            id: id.clone(),
            secret_hash: digest(&secret),
            role,
            user_id,
            label,
            created_at: self.clock.now(),
            revoked_at: None,
        };
        self.store
            .insert_key(&record)
            .await
            .map_err(|e| format!("storing the key failed: {e}"))?;
        Ok(NewKey {
            key: format!("{PREFIX}{id}_{secret}"),
            record,
        })
    }

    pub async fn list(&self) -> Result<Vec<ApiKeyRecord>, String> {
        self.store.list_keys().await.map_err(|e| e.to_string())
    }

    /// `Ok(false)` when there is no such key.
    pub async fn revoke(&self, id: &str) -> Result<bool, String> {
        self.store
            .revoke_key(id, self.clock.now())
            .await
            .map_err(|e| e.to_string())
    }

    /// Whether any key exists (revoked ones count: a store whose keys were all revoked
    /// was configured on purpose and gets no new admin key).
    pub async fn any(&self) -> Result<bool, String> {
        Ok(!self.list().await?.is_empty())
    }

    /// Checks a presented key and says who it acts as.
    pub async fn verify(&self, presented: &str) -> Result<Principal, KeyError> {
        let (id, secret) = split(presented.trim())?;
        let record = self
            .store
            .key_by_id(id)
            .await
            .map_err(|e| KeyError::Store(e.to_string()))?;
        // Hash even for an unknown id, so timing says nothing about which ids exist.
        let presented_hash = digest(secret);
        let Some(record) = record else {
            return Err(KeyError::Unknown);
        };
        let equal: bool = presented_hash
            .as_bytes()
            .ct_eq(record.secret_hash.as_bytes())
            .into();
        if !equal {
            return Err(KeyError::Unknown);
        }
        if !record.is_active() {
            return Err(KeyError::Revoked);
        }
        Ok(Principal {
            role: record.role,
            user_id: record.user_id,
            credential: format!("key:{}", record.id),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use orderly_core::ports::SystemClock;
    use orderly_testkit::memory::MemoryStore;

    fn service() -> KeyService {
        KeyService::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock))
    }

    #[tokio::test]
    async fn created_keys_verify_and_only_their_hash_is_stored() {
        let s = service();
        let k = s
            .create(Role::Customer, Some("u-1".parse().unwrap()), None)
            .await
            .unwrap();
        assert!(k.key.starts_with("oly_"));
        let listed = s.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        let secret = &k.key[PREFIX.len() + ID_HEX + 1..];
        assert!(!listed[0].secret_hash.contains(secret));
        assert_eq!(listed[0].secret_hash, digest(secret));
        let p = s.verify(&k.key).await.unwrap();
        assert_eq!(p.role, Role::Customer);
        assert_eq!(p.user_id.unwrap().as_str(), "u-1");
        assert_eq!(p.credential, format!("key:{}", k.record.id));
        assert!(!format!("{k:?}").contains(secret), "Debug hides the secret");
    }

    #[tokio::test]
    async fn wrong_secret_unknown_id_malformed_and_revoked_are_refused() {
        let s = service();
        let k = s.create(Role::Admin, None, None).await.unwrap();
        let mut tampered = k.key.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(s.verify(&tampered).await.unwrap_err(), KeyError::Unknown);
        let other_id = format!("oly_000000000000_{}", &k.key[PREFIX.len() + ID_HEX + 1..]);
        assert_eq!(s.verify(&other_id).await.unwrap_err(), KeyError::Unknown);
        for bad in ["", "oly_", "Bearer x", "oly_zz_abc", &k.key[..20]] {
            assert_eq!(
                s.verify(bad).await.unwrap_err(),
                KeyError::Malformed,
                "{bad}"
            );
        }
        assert!(s.revoke(&k.record.id).await.unwrap());
        assert_eq!(s.verify(&k.key).await.unwrap_err(), KeyError::Revoked);
        assert!(!s.revoke("000000000000").await.unwrap());
    }

    #[tokio::test]
    async fn customer_keys_need_a_user() {
        let s = service();
        assert!(s.create(Role::Customer, None, None).await.is_err());
        assert!(!s.any().await.unwrap());
    }
}
