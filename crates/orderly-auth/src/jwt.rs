//! JWT bearer tokens: RS256 as AWS Cognito issues them (keys from the user pool's JWKS,
//! cached by `kid`), and HS256 with a shared secret for development.
//!
//! A token is accepted when its signature checks out with a key of the algorithm its header
//! names (RS256 only with JWKS keys, HS256 only with the configured secret; `none` and every
//! other algorithm are refused), it has not expired (`exp` is required, `leeway_secs` of clock
//! skew allowed), its `nbf` (if any) has passed, and its `iss`, audience and `token_use`
//! match the configuration. The audience is the app client id: id tokens carry it in `aud`,
//! Cognito access tokens in `client_id` (they have no `aud`); a token that has an `aud` must
//! list the configured audience there.
//!
//! The JWKS is loaded on the first RS256 token and again whenever a token names a `kid` the
//! cache does not know (Cognito rotating its keys), but at most once per
//! `jwks_min_refresh`: tokens with made-up key ids cannot make Orderly hammer the JWKS
//! endpoint. Concurrent verifications wait for one fetch instead of starting their own. A
//! fetch that fails leaves the cached keys in place.
//!
//! Keys are also fetched again once the loaded JWKS is older than `jwks_max_age` (default
//! one hour), so a key withdrawn from the JWKS stops verifying tokens within that time even
//! when no token names a new `kid`. Until such a refresh succeeds the cached keys stay in use
//! (a JWKS endpoint outage does not lock every user out), retried at most once per
//! `jwks_min_refresh` (or per `jwks_max_age`, if that is shorter).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use orderly_core::UserId;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};

use crate::{Principal, Role};

/// Longer bearer tokens are refused before any parsing (Cognito's are 1-2 KiB).
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// A JWKS document larger than this is refused (Cognito's is about 1 KiB).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The whole JWKS download, connect to last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// While no JWKS has ever been loaded, a failed fetch is retried after at most this long
/// (rather than the full `jwks_min_refresh`), so a blip at start-up heals quickly.
const COLD_RETRY: Duration = Duration::from_secs(5);
/// The largest accepted `leeway_secs`.
const MAX_LEEWAY_SECS: u64 = 600;

/// Where the RS256 verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// An `https://` URL, such as Cognito's
    /// `https://cognito-idp.<region>.amazonaws.com/<poolId>/.well-known/jwks.json`.
    /// Plain `http://` is accepted only for loopback hosts (tests, local stand-ins).
    Url(String),
    /// A JWKS JSON file, re-read when a token names an unknown `kid`.
    File(PathBuf),
}

/// How tokens are checked. `Debug` never shows the HS256 secret.
#[derive(Clone)]
pub struct JwtConfig {
    /// The expected `iss` (Cognito: `https://cognito-idp.<region>.amazonaws.com/<poolId>`).
    /// Required when `jwks` is set.
    pub issuer: Option<String>,
    /// The app client id, checked against `aud` (id tokens) or `client_id` (Cognito access
    /// tokens). `None` skips the check.
    pub audience: Option<String>,
    /// `"access"` or `"id"`: the `token_use` claim must equal it. `None` accepts either
    /// (and tokens without the claim, such as HS256 development tokens).
    pub token_use: Option<String>,
    /// Where the RS256 keys come from; `None` refuses RS256 tokens.
    pub jwks: Option<JwksSource>,
    /// Development: HS256 with this shared secret; `None` refuses HS256 tokens.
    pub hs256_secret: Option<Vec<u8>>,
    /// The claim holding the caller's groups: an array of strings, or one string separated
    /// by spaces or commas. Default `cognito:groups`.
    pub roles_claim: String,
    /// A token whose groups contain this is [`Role::Admin`], any other [`Role::Customer`].
    /// Default `admin`.
    pub admin_group: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (at most 600). Default 30.
    pub leeway_secs: u64,
    /// An unknown `kid` refetches the JWKS at most this often. Default 60 s.
    pub jwks_min_refresh: Duration,
    /// A loaded JWKS is fetched again once it is this old (more than zero). Default 1 h.
    pub jwks_max_age: Duration,
}

impl Default for JwtConfig {
    fn default() -> JwtConfig {
        JwtConfig {
            issuer: None,
            audience: None,
            token_use: None,
            jwks: None,
            hs256_secret: None,
            roles_claim: "cognito:groups".to_owned(),
            admin_group: "admin".to_owned(),
            leeway_secs: 30,
            jwks_min_refresh: Duration::from_secs(60),
            jwks_max_age: Duration::from_secs(3600),
        }
    }
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("token_use", &self.token_use)
            .field("jwks", &self.jwks)
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("roles_claim", &self.roles_claim)
            .field("admin_group", &self.admin_group)
            .field("leeway_secs", &self.leeway_secs)
            .field("jwks_min_refresh", &self.jwks_min_refresh)
            .field("jwks_max_age", &self.jwks_max_age)
            .finish()
    }
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// The token is not acceptable (401). The reason is short and safe to show the client
    /// (`expired`, `bad signature`, `unknown key id`, `wrong issuer`, ...); it never
    /// contains the token.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The signing keys could not be fetched or read (503). Details are logged.
    #[error("signing keys unavailable: {0}")]
    Unavailable(String),
    /// The configuration is unusable (found by [`JwtVerifier::new`]).
    #[error("JWT configuration: {0}")]
    Config(String),
}

fn invalid(reason: impl Into<String>) -> JwtError {
    JwtError::Invalid(reason.into())
}

fn config(msg: impl Into<String>) -> JwtError {
    JwtError::Config(msg.into())
}

/// Checks bearer tokens and turns them into [`Principal`]s. Cheap to share behind an `Arc`.
pub struct JwtVerifier {
    issuer: Option<String>,
    audience: Option<String>,
    token_use: Option<String>,
    roles_claim: String,
    admin_group: String,
    rs256: Option<Rs256>,
    hs256: Option<Hs256>,
}

struct Rs256 {
    jwks: Jwks,
    validation: Validation,
}

struct Hs256 {
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("token_use", &self.token_use)
            .field("roles_claim", &self.roles_claim)
            .field("admin_group", &self.admin_group)
            .field("jwks", &self.rs256.as_ref().map(|r| &r.jwks.source))
            .field("hs256_secret", &self.hs256.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl JwtVerifier {
    /// Checks the configuration; no I/O (the JWKS is loaded by the first RS256 token).
    pub fn new(cfg: JwtConfig) -> Result<JwtVerifier, JwtError> {
        if cfg.jwks.is_none() && cfg.hs256_secret.is_none() {
            return Err(config("set jwks (RS256) or hs256_secret (HS256)"));
        }
        if cfg.jwks.is_some() && cfg.issuer.is_none() {
            return Err(config("jwks needs issuer (the user pool's iss)"));
        }
        for (name, value) in [
            ("issuer", &cfg.issuer),
            ("audience", &cfg.audience),
            ("token_use", &cfg.token_use),
        ] {
            if value.as_deref().is_some_and(str::is_empty) {
                return Err(config(format!("{name} must not be empty")));
            }
        }
        if let Some(tu) = cfg.token_use.as_deref()
            && tu != "access"
            && tu != "id"
        {
            return Err(config(format!(
                "token_use must be \"access\" or \"id\", not {tu:?}"
            )));
        }
        if cfg.roles_claim.is_empty() {
            return Err(config("roles_claim must not be empty"));
        }
        if cfg.admin_group.is_empty() {
            return Err(config("admin_group must not be empty"));
        }
        if cfg.jwks_max_age.is_zero() {
            return Err(config("jwks_max_age must be more than zero"));
        }
        if cfg.leeway_secs > MAX_LEEWAY_SECS {
            return Err(config(format!(
                "leeway_secs must be at most {MAX_LEEWAY_SECS}"
            )));
        }

        let hs256 = match cfg.hs256_secret {
            None => None,
            Some(secret) if secret.is_empty() => {
                return Err(config("hs256_secret must not be empty"));
            }
            Some(secret) => {
                if secret.len() < 32 {
                    tracing::warn!(
                        "the HS256 secret is shorter than 32 bytes; use it for development only"
                    );
                }
                Some(Hs256 {
                    key: DecodingKey::from_secret(&secret),
                    validation: validation(Algorithm::HS256, cfg.leeway_secs),
                })
            }
        };
        let rs256 = match cfg.jwks {
            None => None,
            Some(source) => Some(Rs256 {
                jwks: Jwks::new(source, cfg.jwks_min_refresh, cfg.jwks_max_age)?,
                validation: validation(Algorithm::RS256, cfg.leeway_secs),
            }),
        };
        if rs256.is_some() && cfg.audience.is_none() {
            tracing::warn!("JWT audience not configured: tokens of any app client are accepted");
        }

        Ok(JwtVerifier {
            issuer: cfg.issuer,
            audience: cfg.audience,
            token_use: cfg.token_use,
            roles_claim: cfg.roles_claim,
            admin_group: cfg.admin_group,
            rs256,
            hs256,
        })
    }

    /// Checks a bearer token (without the `Bearer ` prefix) and returns who it speaks for.
    pub async fn verify(&self, token: &str) -> Result<Principal, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid("malformed token"));
        }
        let header = parse_header(token)?;
        let claims = match (header.alg.as_str(), &self.rs256, &self.hs256) {
            ("RS256", Some(rs), _) => {
                let kid = header
                    .kid
                    .as_deref()
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| invalid("missing key id"))?;
                let key = rs.jwks.key(kid).await?;
                decode(token, &key, &rs.validation)?
            }
            ("HS256", _, Some(hs)) => decode(token, &hs.key, &hs.validation)?,
            _ => return Err(invalid("unsupported algorithm")),
        };
        self.principal(&claims)
    }

    /// The checks jsonwebtoken does not make, on a token whose signature, `exp` and `nbf`
    /// have been checked.
    fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, JwtError> {
        if let Some(want) = &self.issuer
            && claims.get("iss").and_then(Value::as_str) != Some(want.as_str())
        {
            return Err(invalid("wrong issuer"));
        }

        if let Some(want) = &self.audience {
            let ok = match claims.get("aud") {
                Some(Value::String(aud)) => aud == want,
                Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(want)),
                Some(_) => false,
                None => claims.get("client_id").and_then(Value::as_str) == Some(want.as_str()),
            };
            if !ok {
                return Err(invalid("wrong audience"));
            }
        }

        let token_use_ok = match (&self.token_use, claims.get("token_use")) {
            (Some(want), Some(Value::String(got))) => got == want,
            (Some(_), _) => false,
            (None, None) => true,
            (None, Some(Value::String(got))) => got == "access" || got == "id",
            (None, Some(_)) => false,
        };
        if !token_use_ok {
            return Err(invalid("wrong token use"));
        }

        let Some(sub) = claims.get("sub").and_then(Value::as_str) else {
            return Err(invalid("missing sub"));
        };
        let user_id = sub.parse::<UserId>().map_err(|_| invalid("unusable sub"))?;

        let role = if has_group(claims.get(&self.roles_claim), &self.admin_group) {
            Role::Admin
        } else {
            Role::Customer
        };

        Ok(Principal {
            role,
            user_id: Some(user_id),
            credential: format!("jwt:{sub}"),
        })
    }
}

/// Whether a roles claim (array of strings, or a space/comma separated string) holds `group`.
fn has_group(claim: Option<&Value>, group: &str) -> bool {
    match claim {
        Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(group)),
        Some(Value::String(s)) => s
            .split(|c: char| c == ',' || c.is_whitespace())
            .any(|g| g == group),
        _ => false,
    }
}

/// The header fields this module acts on.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    /// Critical extensions (RFC 7515 §4.1.11): none is understood, so any is refused.
    crit: Option<Value>,
}

fn parse_header(token: &str) -> Result<RawHeader, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("malformed token"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| invalid("malformed token"))?;
    let header: RawHeader =
        serde_json::from_slice(&bytes).map_err(|_| invalid("malformed token"))?;
    if header.crit.is_some() {
        return Err(invalid("unsupported header"));
    }
    Ok(header)
}

fn validation(alg: Algorithm, leeway_secs: u64) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = leeway_secs;
    v.validate_exp = true;
    v.validate_nbf = true;
    // Checked in `principal`: Cognito access tokens carry `client_id`, not `aud`.
    v.validate_aud = false;
    v.set_required_spec_claims(&["exp"]);
    v
}

/// Signature, `exp` and `nbf`; the claims as JSON.
fn decode(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<Map<String, Value>, JwtError> {
    match jsonwebtoken::decode::<Map<String, Value>>(token, key, validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(invalid(match e.kind() {
            ErrorKind::ExpiredSignature => "expired".to_owned(),
            ErrorKind::ImmatureSignature => "not yet valid".to_owned(),
            ErrorKind::InvalidSignature
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => "bad signature".to_owned(),
            ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                "unsupported algorithm".to_owned()
            }
            ErrorKind::MissingRequiredClaim(claim) => format!("missing {claim}"),
            ErrorKind::InvalidClaimFormat(claim) => format!("malformed {claim}"),
            ErrorKind::InvalidIssuer => "wrong issuer".to_owned(),
            ErrorKind::InvalidAudience => "wrong audience".to_owned(),
            _ => "malformed token".to_owned(),
        })),
    }
}

/// The RS256 keys by `kid`, and how to fetch them again.
struct Jwks {
    source: JwksSource,
    http: Option<reqwest::Client>,
    min_refresh: Duration,
    max_age: Duration,
    keys: RwLock<KeySet>,
    /// Held for the whole of a fetch, so concurrent misses wait for one fetch.
    fetch: Mutex<FetchState>,
}

/// The keys of the last JWKS loaded, and when it was loaded.
#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<DecodingKey>>,
    loaded_at: Option<Instant>,
}

impl KeySet {
    /// The key named `kid` while the set is younger than `max_age`.
    fn fresh(&self, kid: &str, max_age: Duration) -> Option<Arc<DecodingKey>> {
        let young = self.loaded_at.is_some_and(|t| t.elapsed() < max_age);
        self.by_kid.get(kid).filter(|_| young).map(Arc::clone)
    }
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    /// Why the last fetch failed, if it did.
    last_error: Option<String>,
}

impl Jwks {
    fn new(source: JwksSource, min_refresh: Duration, max_age: Duration) -> Result<Jwks, JwtError> {
        let http = match &source {
            JwksSource::File(_) => None,
            JwksSource::Url(url) => {
                check_url(url)?;
                let client = reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    .connect_timeout(FETCH_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("orderly-auth/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| config(format!("cannot build the JWKS HTTP client: {e}")))?;
                Some(client)
            }
        };
        Ok(Jwks {
            source,
            http,
            min_refresh,
            max_age,
            keys: RwLock::new(KeySet::default()),
            fetch: Mutex::new(FetchState::default()),
        })
    }

    /// The key named `kid`, refetching the JWKS if it is unknown or too old and a fetch is
    /// due. A key of a JWKS that is too old is still returned while no fetch succeeds.
    async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, JwtError> {
        if let Some(key) = self.keys.read().await.fresh(kid, self.max_age) {
            return Ok(key);
        }

        let mut state = self.fetch.lock().await;
        // Another verification may have fetched while this one waited for the lock.
        let (stale, warm) = {
            let keys = self.keys.read().await;
            if let Some(key) = keys.fresh(kid, self.max_age) {
                return Ok(key);
            }
            // Warm: a JWKS has been loaded at least once.
            (
                keys.by_kid.get(kid).map(Arc::clone),
                keys.loaded_at.is_some(),
            )
        };
        let interval = if !warm {
            self.min_refresh.min(COLD_RETRY)
        } else if stale.is_some() {
            // Known but too old: due now, unless a refresh failed less than this ago.
            self.min_refresh.min(self.max_age)
        } else {
            self.min_refresh
        };
        if state.last_attempt.is_none_or(|t| t.elapsed() >= interval) {
            state.last_attempt = Some(Instant::now());
            match self.load().await {
                Ok(keys) => {
                    tracing::info!(keys = keys.len(), "JWKS loaded");
                    state.last_error = None;
                    let found = keys.get(kid).map(Arc::clone);
                    *self.keys.write().await = KeySet {
                        by_kid: keys,
                        loaded_at: Some(Instant::now()),
                    };
                    if let Some(key) = found {
                        return Ok(key);
                    }
                }
                Err(reason) => {
                    // A warm cache keeps its keys; this kid may be a new one we could not get.
                    state.last_error = Some(reason.clone());
                    if let Some(key) = stale {
                        tracing::warn!(%reason, "the JWKS could not be refreshed; using the cached keys");
                        return Ok(key);
                    }
                    return Err(JwtError::Unavailable(reason));
                }
            }
        } else if let Some(key) = stale {
            // Too old, but the last refresh failed a moment ago: keep serving.
            return Ok(key);
        } else if !warm {
            let reason = state
                .last_error
                .clone()
                .unwrap_or_else(|| "JWKS not loaded".to_owned());
            return Err(JwtError::Unavailable(reason));
        }
        Err(invalid("unknown key id"))
    }

    /// Reads and parses the JWKS. The error is short and client-safe; details are logged.
    async fn load(&self) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
        let body = match &self.source {
            JwksSource::File(path) => tokio::fs::read(path).await.map_err(|e| {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the JWKS file");
                "cannot read the JWKS file".to_owned()
            })?,
            JwksSource::Url(url) => self.download(url).await?,
        };
        let keys = parse_jwks(&body)?;
        if keys.is_empty() {
            tracing::warn!(source = ?self.source, "the JWKS has no usable RS256 key");
            return Err("the JWKS has no usable RS256 key".to_owned());
        }
        Ok(keys)
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, String> {
        let failed = |e: reqwest::Error| {
            tracing::warn!(url, error = %e.without_url(), "JWKS request failed");
            "JWKS request failed".to_owned()
        };
        let Some(client) = &self.http else {
            return Err("JWKS request failed".to_owned());
        };
        let mut resp = client.get(url).send().await.map_err(failed)?;
        let status = resp.status();
        if !status.is_success() {
            tracing::warn!(url, %status, "JWKS request answered an error");
            return Err(format!("JWKS request answered HTTP {}", status.as_u16()));
        }
        let too_large = || {
            tracing::warn!(url, "JWKS response larger than {MAX_JWKS_BYTES} bytes");
            "JWKS response too large".to_owned()
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// `https://`, or `http://` to a loopback host: a JWKS over plain HTTP from elsewhere could
/// be swapped for an attacker's keys.
fn check_url(url: &str) -> Result<(), JwtError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| config(format!("bad JWKS URL: {e}")))?;
    let loopback = parsed.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(config(
            "the JWKS URL must be https:// (http:// only to localhost)",
        )),
    }
}

/// One entry of a JWKS; entries that are not RS256 signing keys are skipped.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
    #[derive(Deserialize)]
    struct RawJwkSet {
        keys: Vec<Value>,
    }
    let set: RawJwkSet = serde_json::from_slice(body).map_err(|e| {
        tracing::warn!(error = %e, "the JWKS is not a JSON key set");
        "the JWKS is not a JSON key set".to_owned()
    })?;
    let mut keys = HashMap::new();
    for entry in set.keys {
        let Ok(jwk) = serde_json::from_value::<RawJwk>(entry) else {
            continue;
        };
        let usable = jwk.kty == "RSA"
            && jwk.alg.as_deref().is_none_or(|a| a == "RS256")
            && jwk.use_.as_deref().is_none_or(|u| u == "sig");
        let (Some(kid), Some(n), Some(e)) = (jwk.kid, jwk.n, jwk.e) else {
            continue;
        };
        if !usable || kid.is_empty() {
            continue;
        }
        match DecodingKey::from_rsa_components(&n, &e) {
            Ok(key) => {
                keys.insert(kid, Arc::new(key));
            }
            Err(err) => tracing::warn!(kid, error = %err, "skipping a malformed JWKS key"),
        }
    }
    Ok(keys)
}
