//! Authentication, rate limiting and authorization at the edge of the API.
//!
//! [`authenticate`] runs before every protected route: it finds the caller's credential
//! (`x-api-key`, `Authorization: Bearer <jwt>`, or, inside the API Lambda, the identity API
//! Gateway's authorizer already checked), takes one token from the caller's rate-limit
//! bucket and stores the [`Principal`] in the request for the [`Caller`] and [`Admin`]
//! extractors. Nothing a handler does happens for a request refused here.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orderly_auth::jwt::{JwtError, JwtVerifier};
use orderly_auth::keys::{KeyError, KeyService};
use orderly_auth::limit::{LimitScope, RateLimitConfig, RateLimiter};
use orderly_auth::{Principal, Role};

use crate::{ApiError, AppState};

/// The header that carries an API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// An identity established before the request reached the router (API Gateway's
/// authorizer, in the API Lambda). Only honoured when the authenticator trusts the
/// gateway.
#[derive(Debug, Clone)]
pub struct GatewayIdentity(pub Principal);

/// How callers prove who they are.
pub struct Authenticator {
    keys: Option<KeyService>,
    jwt: Option<JwtVerifier>,
    trust_gateway: bool,
    limiter: RateLimiter,
    /// Failed authentications per client address ([`FAILED_AUTH_BURST`] at once, then
    /// [`FAILED_AUTH_RPS`] a second); an address over it gets 429 before anything is
    /// verified.
    failures: RateLimiter,
}

/// Failed authentications one client address may make at once, by default.
pub const FAILED_AUTH_BURST: u32 = 100;
/// Failed authentications per second one client address may make, sustained, by default.
pub const FAILED_AUTH_RPS: f64 = 10.0;

/// The limit of failed authentications per client address: `rps` sustained, `burst` at
/// once.
pub fn failed_auth_limit(rps: f64, burst: u32) -> RateLimitConfig {
    RateLimitConfig {
        per_credential_rps: rps,
        burst,
        global_rps: f64::INFINITY,
        global_burst: u32::MAX,
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("api_keys", &self.keys.is_some())
            .field("jwt", &self.jwt.is_some())
            .field("trust_gateway", &self.trust_gateway)
            .field("rate_limit", &self.limiter.config())
            .finish()
    }
}

impl Authenticator {
    /// API keys from `keys`, and bearer JWTs when `jwt` is given.
    pub fn local(keys: KeyService, jwt: Option<JwtVerifier>, limits: RateLimitConfig) -> Self {
        Authenticator {
            keys: Some(keys),
            jwt,
            trust_gateway: false,
            limiter: RateLimiter::new(limits),
            failures: RateLimiter::new(failed_auth_limit(FAILED_AUTH_RPS, FAILED_AUTH_BURST)),
        }
    }

    /// Behind API Gateway: the identity its authorizer established (a [`GatewayIdentity`]
    /// extension the Lambda adapter adds) is trusted as is; nothing is re-verified.
    pub fn gateway(limits: RateLimitConfig) -> Self {
        Authenticator {
            keys: None,
            jwt: None,
            trust_gateway: true,
            limiter: RateLimiter::new(limits),
            failures: RateLimiter::new(failed_auth_limit(FAILED_AUTH_RPS, FAILED_AUTH_BURST)),
        }
    }

    /// With this limit of failed authentications per client address instead of the
    /// default (see [`failed_auth_limit`]).
    pub fn with_failed_auth_limit(mut self, limit: RateLimitConfig) -> Self {
        self.failures = RateLimiter::new(limit);
        self
    }

    fn challenge(&self) -> &'static str {
        if self.jwt.is_some() {
            r#"ApiKey realm="orderly", Bearer realm="orderly""#
        } else {
            r#"ApiKey realm="orderly""#
        }
    }

    fn unauthorized(&self, message: &str) -> ApiError {
        ApiError::Unauthorized {
            message: message.to_owned(),
            challenge: self.challenge(),
        }
    }

    async fn verify_key(&self, v: &axum::http::HeaderValue) -> Result<Principal, ApiError> {
        let keys = self
            .keys
            .as_ref()
            .ok_or_else(|| self.unauthorized("API keys are not accepted here"))?;
        let text = v
            .to_str()
            .map_err(|_| self.unauthorized("the API key is malformed"))?;
        match keys.verify(text).await {
            Ok(p) => Ok(p),
            Err(KeyError::Store(cause)) => Err(ApiError::Unavailable { message: cause }),
            Err(e) => {
                tracing::info!(reason = %e, "API key refused");
                Err(self.unauthorized("the API key is not valid"))
            }
        }
    }

    async fn verify_bearer(&self, v: &axum::http::HeaderValue) -> Result<Principal, ApiError> {
        let text = v.to_str().unwrap_or("");
        let token = match text.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(self.unauthorized("the Authorization header must be `Bearer <token>`"));
            }
        };
        let jwt = self
            .jwt
            .as_ref()
            .ok_or_else(|| self.unauthorized("bearer tokens are not enabled on this server"))?;
        match jwt.verify(token).await {
            Ok(p) => Ok(p),
            Err(JwtError::Unavailable(cause)) => Err(ApiError::Unavailable { message: cause }),
            Err(JwtError::Invalid(reason)) | Err(JwtError::Config(reason)) => {
                tracing::info!(%reason, "bearer token refused");
                Err(self.unauthorized(&format!("the bearer token is not valid: {reason}")))
            }
        }
    }

    /// Who the request is from.
    pub async fn identify(
        &self,
        headers: &HeaderMap,
        gateway: Option<&GatewayIdentity>,
    ) -> Result<Principal, ApiError> {
        if self.trust_gateway {
            return gateway
                .map(|g| g.0.clone())
                .ok_or_else(|| self.unauthorized("API Gateway passed no authorized identity"));
        }
        // Every credential a request carries is checked: an invalid one is a 401 whatever
        // else comes with it, and two valid ones must name the same caller.
        let key = match headers.get(API_KEY_HEADER) {
            Some(v) => Some(self.verify_key(v).await?),
            None => None,
        };
        let bearer = match headers.get(axum::http::header::AUTHORIZATION) {
            Some(v) => Some(self.verify_bearer(v).await?),
            None => None,
        };
        match (key, bearer) {
            (Some(k), Some(b)) if k.role == b.role && k.user_id == b.user_id => return Ok(k),
            (Some(_), Some(_)) => {
                return Err(self.unauthorized(
                    "the API key and the bearer token name different callers: send one",
                ));
            }
            (Some(p), None) | (None, Some(p)) => return Ok(p),
            (None, None) => {}
        }
        Err(self.unauthorized(
            "credentials are required: send an API key in x-api-key or a bearer token",
        ))
    }
}

/// The middleware on every protected route: authenticate, then rate-limit.
pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let auth = &state.auth;
    let gateway = req.extensions().get::<GatewayIdentity>().cloned();
    // A refusal here answers before the body is read: the connection then closes, and says
    // so, so a client does not send its next request down it.
    let has_body = crate::hardening::carries_body(req.headers());
    let early = |e: ApiError| -> Response {
        let mut resp = e.into_response();
        if has_body {
            resp.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        resp
    };
    // The client's address, when the server knows it (not behind API Gateway).
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| format!("addr:{}", c.0.ip()));
    let too_many = |limited: orderly_auth::limit::Limited| ApiError::TooManyRequests {
        message: "too many failed authentications from this address".into(),
        retry_after_secs: limited.retry_after.as_secs_f64().ceil().max(1.0) as u64,
    };
    if let Some(c) = &client
        && let Err(limited) = auth.failures.peek(c, Instant::now())
    {
        return Ok(early(too_many(limited)));
    }
    let principal = match auth.identify(req.headers(), gateway.as_ref()).await {
        Ok(p) => p,
        Err(e @ ApiError::Unauthorized { .. }) => {
            if let Some(c) = &client
                && let Err(limited) = auth.failures.check(c, Instant::now())
            {
                return Ok(early(too_many(limited)));
            }
            return Ok(early(e));
        }
        Err(e) => return Ok(early(e)),
    };
    if let Err(limited) = auth.limiter.check(&principal.credential, Instant::now()) {
        let message = match limited.scope {
            LimitScope::Credential => "this credential sent too many requests",
            LimitScope::Global => "the server is at its request rate limit",
        };
        return Ok(early(ApiError::TooManyRequests {
            message: message.to_owned(),
            retry_after_secs: limited.retry_after.as_secs_f64().ceil().max(1.0) as u64,
        }));
    }
    // One credential cannot hold every place: its requests in flight, bodies being read
    // included, are bounded.
    let gate = req
        .extensions()
        .get::<Arc<crate::hardening::Gate>>()
        .cloned();
    let _slot = match &gate {
        Some(g) => match g.enter(&principal.credential) {
            Ok(slot) => Some(slot),
            Err(e) => return Ok(early(e)),
        },
        None => None,
    };
    tracing::Span::current().record("credential", principal.credential.as_str());
    req.extensions_mut().insert(Arc::new(principal));
    match gate {
        // The body first, within its timeout; only then a place in the in-flight cap.
        Some(g) if has_body => match g.read_body(req).await {
            Ok(req) => Ok(g.run(req, next).await),
            Err(e) => Ok(early(e)),
        },
        _ => Ok(next.run(req).await),
    }
}

/// The authenticated caller (any role).
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, ApiError> {
        parts
            .extensions
            .get::<Arc<Principal>>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::Internal {
                cause: "a protected handler ran without the authentication layer".into(),
            })
    }
}

/// An authenticated admin; anyone else gets 403.
#[derive(Debug, Clone)]
pub struct Admin(pub Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Admin, ApiError> {
        let Caller(p) = Caller::from_request_parts(parts, state).await?;
        if p.role == Role::Admin {
            Ok(Admin(p))
        } else {
            Err(ApiError::Forbidden {
                message: "this needs the admin role".into(),
            })
        }
    }
}
