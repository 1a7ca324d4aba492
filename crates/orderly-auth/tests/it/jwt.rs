//! JWT verification against real RS256/HS256 tokens. The RSA keys are test-only fixtures
//! (see `tests/fixtures/README.md`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use orderly_auth::jwt::{JwksSource, JwtConfig, JwtError, JwtVerifier};
use orderly_auth::{Principal, Role};
use orderly_core::UserId;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ISS: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TestPool";
const CLIENT: &str = "test-app-client";
const SUB: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const KID_A: &str = "test-key-a";
const KID_B: &str = "test-key-b";
const DEV_SECRET: &[u8] = b"development-secret-of-32-bytes!!";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).expect("fixture")
}

/// The private key from a PKCS#1 PEM fixture (`BEGIN RSA PRIVATE KEY`).
fn rsa_key(name: &str) -> EncodingKey {
    let pem = read_fixture(name);
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    EncodingKey::from_rsa_der(&STANDARD.decode(b64).expect("PEM body"))
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    i64::try_from(secs).expect("timestamp")
}

/// The claims of a Cognito access token for `SUB` in `groups`.
fn access_claims(groups: &[&str]) -> Value {
    json!({
        "sub": SUB,
        "cognito:groups": groups,
        "iss": ISS,
        "client_id": CLIENT,
        "origin_jti": "3b1a3c4e-0000-4000-8000-000000000000",
        "event_id": "5d1c0b1a-0000-4000-8000-000000000000",
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin",
        "auth_time": now() - 60,
        "exp": now() + 3600,
        "iat": now() - 60,
        "jti": "a1b2c3d4-0000-4000-8000-000000000000",
        "username": SUB,
    })
}

/// The claims of a Cognito id token for `SUB`.
fn id_claims() -> Value {
    json!({
        "sub": SUB,
        "aud": CLIENT,
        "email_verified": true,
        "iss": ISS,
        "cognito:username": SUB,
        "token_use": "id",
        "auth_time": now() - 60,
        "exp": now() + 3600,
        "iat": now() - 60,
        "email": "ada@example.com",
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    if let Some(map) = claims.as_object_mut() {
        map.remove(key);
    }
    claims
}

fn sign_rs(pem: &str, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &rsa_key(pem)).expect("sign RS256")
}

/// Signed with key A under its kid, as Cognito would.
fn token_a(claims: &Value) -> String {
    sign_rs("rsa_a.pem", KID_A, claims)
}

fn sign_hs(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign HS256")
}

/// A token with an arbitrary header and an empty signature.
fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn cognito_config(jwks: JwksSource) -> JwtConfig {
    JwtConfig {
        issuer: Some(ISS.to_owned()),
        audience: Some(CLIENT.to_owned()),
        token_use: Some("access".to_owned()),
        jwks: Some(jwks),
        ..JwtConfig::default()
    }
}

fn file_verifier() -> JwtVerifier {
    JwtVerifier::new(cognito_config(JwksSource::File(fixture("jwks_a.json")))).expect("config")
}

fn user(id: &str) -> Option<UserId> {
    Some(id.parse().expect("user id"))
}

#[track_caller]
fn assert_invalid(result: Result<Principal, JwtError>, reason: &str) {
    match result {
        Err(JwtError::Invalid(r)) => assert_eq!(r, reason),
        other => panic!("expected Invalid({reason:?}), got {other:?}"),
    }
}

#[track_caller]
fn assert_unavailable(result: Result<Principal, JwtError>) {
    assert!(
        matches!(result, Err(JwtError::Unavailable(_))),
        "expected Unavailable, got {result:?}"
    );
}

/// A JWKS file the test may rewrite.
fn temp_jwks(fixture_name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, read_fixture(fixture_name)).expect("write JWKS");
    (dir, path)
}

// ---- RS256, Cognito style ----------------------------------------------------------------

#[tokio::test]
async fn a_valid_access_token_is_a_customer_with_its_user_id() {
    let p = file_verifier()
        .verify(&token_a(&access_claims(&["customers"])))
        .await
        .expect("valid");
    assert_eq!(
        p,
        Principal {
            role: Role::Customer,
            user_id: user(SUB),
            credential: format!("jwt:{SUB}"),
        }
    );
}

#[tokio::test]
async fn a_token_without_groups_is_a_customer() {
    let claims = without(access_claims(&[]), "cognito:groups");
    let p = file_verifier()
        .verify(&token_a(&claims))
        .await
        .expect("valid");
    assert_eq!(p.role, Role::Customer);
}

#[tokio::test]
async fn the_admin_group_makes_an_admin() {
    let p = file_verifier()
        .verify(&token_a(&access_claims(&["staff", "admin"])))
        .await
        .expect("valid");
    assert_eq!(p.role, Role::Admin);
    assert_eq!(p.user_id, user(SUB));
    assert_eq!(p.credential, format!("jwt:{SUB}"));
}

#[tokio::test]
async fn roles_may_be_a_separated_string_under_another_claim_and_group_name() {
    let cfg = JwtConfig {
        roles_claim: "roles".to_owned(),
        admin_group: "ops".to_owned(),
        ..cognito_config(JwksSource::File(fixture("jwks_a.json")))
    };
    let v = JwtVerifier::new(cfg).expect("config");
    for (roles, role) in [
        ("reader ops", Role::Admin),
        ("reader,ops", Role::Admin),
        ("reader, ops", Role::Admin),
        ("reader operators", Role::Customer),
        ("", Role::Customer),
    ] {
        let claims = with(access_claims(&["admin"]), "roles", json!(roles));
        let p = v.verify(&token_a(&claims)).await.expect("valid");
        assert_eq!(p.role, role, "roles {roles:?}");
    }
    // The default claim no longer counts.
    let p = v.verify(&token_a(&access_claims(&["admin", "ops"]))).await;
    assert_eq!(p.expect("valid").role, Role::Customer);
}

#[tokio::test]
async fn an_expired_token_is_invalid_but_leeway_is_allowed() {
    let v = file_verifier();
    let expired = with(access_claims(&[]), "exp", json!(now() - 3600));
    assert_invalid(v.verify(&token_a(&expired)).await, "expired");
    // 10 s past expiry is within the default 30 s of leeway.
    let skewed = with(access_claims(&[]), "exp", json!(now() - 10));
    v.verify(&token_a(&skewed)).await.expect("within leeway");
}

#[tokio::test]
async fn exp_is_required_and_must_be_a_number() {
    let v = file_verifier();
    let no_exp = without(access_claims(&[]), "exp");
    assert_invalid(v.verify(&token_a(&no_exp)).await, "missing exp");
    let string_exp = with(access_claims(&[]), "exp", json!("never"));
    assert!(matches!(
        v.verify(&token_a(&string_exp)).await,
        Err(JwtError::Invalid(_))
    ));
}

#[tokio::test]
async fn a_token_before_its_nbf_is_invalid() {
    let v = file_verifier();
    let early = with(access_claims(&[]), "nbf", json!(now() + 3600));
    assert_invalid(v.verify(&token_a(&early)).await, "not yet valid");
    // The type-confusion trick (nbf as a string) must not skip the check.
    let sneaky = with(access_claims(&[]), "nbf", json!((now() + 3600).to_string()));
    assert!(matches!(
        v.verify(&token_a(&sneaky)).await,
        Err(JwtError::Invalid(_))
    ));
    let past = with(access_claims(&[]), "nbf", json!(now() - 60));
    v.verify(&token_a(&past)).await.expect("nbf passed");
}

#[tokio::test]
async fn a_token_signed_by_another_key_is_invalid() {
    let v = file_verifier();
    // Key B's signature under key A's kid.
    let forged = sign_rs("rsa_b.pem", KID_A, &access_claims(&["admin"]));
    assert_invalid(v.verify(&forged).await, "bad signature");
}

#[tokio::test]
async fn a_tampered_payload_is_invalid() {
    let v = file_verifier();
    let token = token_a(&access_claims(&[]));
    let mut parts: Vec<&str> = token.split('.').collect();
    let admin = URL_SAFE_NO_PAD.encode(access_claims(&["admin"]).to_string());
    parts[1] = &admin;
    assert_invalid(v.verify(&parts.join(".")).await, "bad signature");
}

#[tokio::test]
async fn a_wrong_or_missing_issuer_is_invalid() {
    let v = file_verifier();
    let other_pool = with(
        access_claims(&[]),
        "iss",
        json!("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"),
    );
    assert_invalid(v.verify(&token_a(&other_pool)).await, "wrong issuer");
    let no_iss = without(access_claims(&[]), "iss");
    assert_invalid(v.verify(&token_a(&no_iss)).await, "wrong issuer");
    let array_iss = with(access_claims(&[]), "iss", json!([ISS]));
    assert_invalid(v.verify(&token_a(&array_iss)).await, "wrong issuer");
}

#[tokio::test]
async fn a_wrong_client_id_or_audience_is_invalid() {
    let v = file_verifier();
    let other_client = with(access_claims(&[]), "client_id", json!("another-client"));
    assert_invalid(v.verify(&token_a(&other_client)).await, "wrong audience");
    let no_client = without(access_claims(&[]), "client_id");
    assert_invalid(v.verify(&token_a(&no_client)).await, "wrong audience");
    // An `aud` that does not name us wins over a matching client_id.
    let other_aud = with(access_claims(&[]), "aud", json!("another-client"));
    assert_invalid(v.verify(&token_a(&other_aud)).await, "wrong audience");
    let listed = with(access_claims(&[]), "aud", json!(["x", CLIENT]));
    v.verify(&token_a(&listed)).await.expect("aud lists us");
}

#[tokio::test]
async fn id_tokens_are_checked_by_aud() {
    let cfg = JwtConfig {
        token_use: Some("id".to_owned()),
        ..cognito_config(JwksSource::File(fixture("jwks_a.json")))
    };
    let v = JwtVerifier::new(cfg).expect("config");
    let p = v
        .verify(&token_a(&id_claims()))
        .await
        .expect("valid id token");
    assert_eq!(p.user_id, user(SUB));
    let other = with(id_claims(), "aud", json!("another-client"));
    assert_invalid(v.verify(&token_a(&other)).await, "wrong audience");
}

#[tokio::test]
async fn a_wrong_token_use_is_invalid() {
    let access_only = file_verifier();
    assert_invalid(
        access_only.verify(&token_a(&id_claims())).await,
        "wrong token use",
    );
    let missing = without(access_claims(&[]), "token_use");
    assert_invalid(
        access_only.verify(&token_a(&missing)).await,
        "wrong token use",
    );

    let either = JwtVerifier::new(JwtConfig {
        token_use: None,
        ..cognito_config(JwksSource::File(fixture("jwks_a.json")))
    })
    .expect("config");
    either.verify(&token_a(&id_claims())).await.expect("id");
    either
        .verify(&token_a(&access_claims(&[])))
        .await
        .expect("access");
    let refresh = with(access_claims(&[]), "token_use", json!("refresh"));
    assert_invalid(either.verify(&token_a(&refresh)).await, "wrong token use");
}

#[tokio::test]
async fn a_missing_or_unusable_sub_is_invalid() {
    let v = file_verifier();
    let no_sub = without(access_claims(&[]), "sub");
    assert_invalid(v.verify(&token_a(&no_sub)).await, "missing sub");
    let bad_sub = with(access_claims(&[]), "sub", json!("has spaces/and slashes"));
    assert_invalid(v.verify(&token_a(&bad_sub)).await, "unusable sub");
    let number_sub = with(access_claims(&[]), "sub", json!(42));
    assert!(matches!(
        v.verify(&token_a(&number_sub)).await,
        Err(JwtError::Invalid(_))
    ));
}

#[tokio::test]
async fn alg_none_and_hs256_are_refused_when_only_rs256_is_configured() {
    let v = file_verifier();
    let claims = access_claims(&["admin"]);
    let none = unsigned(&json!({"alg": "none", "typ": "JWT"}), &claims);
    assert_invalid(v.verify(&none).await, "unsupported algorithm");
    let none_with_kid = unsigned(&json!({"alg": "none", "kid": KID_A}), &claims);
    assert_invalid(v.verify(&none_with_kid).await, "unsupported algorithm");
    // HS256, even keyed with the public JWKS text (the classic algorithm confusion).
    let hs = sign_hs(read_fixture("jwks_a.json").as_bytes(), &claims);
    assert_invalid(v.verify(&hs).await, "unsupported algorithm");
    let rs512 = {
        let mut header = Header::new(Algorithm::RS512);
        header.kid = Some(KID_A.to_owned());
        jsonwebtoken::encode(&header, &claims, &rsa_key("rsa_a.pem")).expect("sign RS512")
    };
    assert_invalid(v.verify(&rs512).await, "unsupported algorithm");
}

#[tokio::test]
async fn malformed_tokens_are_invalid() {
    let v = file_verifier();
    let good = token_a(&access_claims(&[]));
    for bad in [
        String::new(),
        "not a token".to_owned(),
        "a.b".to_owned(),
        format!("{good}.extra"),
        format!("!{good}"),
        "x".repeat(20_000),
    ] {
        assert_invalid(v.verify(&bad).await, "malformed token");
    }
    let crit = unsigned(
        &json!({"alg": "RS256", "kid": KID_A, "crit": ["exp"]}),
        &access_claims(&[]),
    );
    assert_invalid(v.verify(&crit).await, "unsupported header");
    let no_kid = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &access_claims(&[]),
        &rsa_key("rsa_a.pem"),
    )
    .expect("sign");
    assert_invalid(v.verify(&no_kid).await, "missing key id");
}

// ---- JWKS caching and rotation -----------------------------------------------------------

#[tokio::test]
async fn an_unknown_kid_refetches_and_picks_up_a_rotated_jwks() {
    let (_dir, path) = temp_jwks("jwks_a.json");
    let v = JwtVerifier::new(JwtConfig {
        jwks_min_refresh: Duration::ZERO,
        ..cognito_config(JwksSource::File(path.clone()))
    })
    .expect("config");
    let token_b = sign_rs("rsa_b.pem", KID_B, &access_claims(&[]));

    v.verify(&token_a(&access_claims(&[])))
        .await
        .expect("key A");
    assert_invalid(v.verify(&token_b).await, "unknown key id");

    // Cognito rotates: the JWKS now holds only key B.
    std::fs::write(&path, read_fixture("jwks_b.json")).expect("rotate");
    let p = v.verify(&token_b).await.expect("key B after the refetch");
    assert_eq!(p.user_id, user(SUB));
    // Key A was retired with the refetch.
    assert_invalid(
        v.verify(&token_a(&access_claims(&[]))).await,
        "unknown key id",
    );
}

#[tokio::test]
async fn refetching_for_unknown_kids_is_rate_limited() {
    let (_dir, path) = temp_jwks("jwks_a.json");
    let v = JwtVerifier::new(JwtConfig {
        jwks_min_refresh: Duration::from_millis(400),
        ..cognito_config(JwksSource::File(path.clone()))
    })
    .expect("config");
    let token_b = sign_rs("rsa_b.pem", KID_B, &access_claims(&[]));

    v.verify(&token_a(&access_claims(&[])))
        .await
        .expect("first load");
    std::fs::write(&path, read_fixture("jwks_ab.json")).expect("add key B");
    // Loaded a moment ago: no refetch yet, so key B is still unknown.
    assert_invalid(v.verify(&token_b).await, "unknown key id");
    assert_invalid(v.verify(&token_b).await, "unknown key id");

    tokio::time::sleep(Duration::from_millis(450)).await;
    v.verify(&token_b)
        .await
        .expect("refetched after the interval");
    v.verify(&token_a(&access_claims(&[])))
        .await
        .expect("key A still there");
}

#[tokio::test]
async fn a_failed_refetch_keeps_the_cached_keys() {
    let (_dir, path) = temp_jwks("jwks_a.json");
    let v = JwtVerifier::new(JwtConfig {
        jwks_min_refresh: Duration::ZERO,
        ..cognito_config(JwksSource::File(path.clone()))
    })
    .expect("config");
    v.verify(&token_a(&access_claims(&[]))).await.expect("warm");

    std::fs::write(&path, "{ not json").expect("break the JWKS");
    let token_b = sign_rs("rsa_b.pem", KID_B, &access_claims(&[]));
    assert_unavailable(v.verify(&token_b).await);
    v.verify(&token_a(&access_claims(&[])))
        .await
        .expect("key A survives the failed fetch");

    std::fs::remove_file(&path).expect("remove the JWKS");
    assert_unavailable(v.verify(&token_b).await);
    v.verify(&token_a(&access_claims(&["admin"])))
        .await
        .expect("key A survives the missing file");
}

#[tokio::test]
async fn a_key_withdrawn_from_the_jwks_stops_verifying_once_the_cache_is_old() {
    let (_dir, path) = temp_jwks("jwks_ab.json");
    let v = JwtVerifier::new(JwtConfig {
        // No token names an unknown kid here, so only the age can trigger the refresh.
        jwks_min_refresh: Duration::from_secs(3600),
        jwks_max_age: Duration::from_secs(1),
        ..cognito_config(JwksSource::File(path.clone()))
    })
    .expect("config");
    let token_b = sign_rs("rsa_b.pem", KID_B, &access_claims(&[]));
    v.verify(&token_a(&access_claims(&[])))
        .await
        .expect("key A");
    v.verify(&token_b).await.expect("key B");

    // Key A is withdrawn: until the cache is old it still verifies ...
    std::fs::write(&path, read_fixture("jwks_b.json")).expect("withdraw key A");
    v.verify(&token_a(&access_claims(&[])))
        .await
        .expect("key A from the young cache");
    // ... and after that it does not, while key B does.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_invalid(
        v.verify(&token_a(&access_claims(&[]))).await,
        "unknown key id",
    );
    v.verify(&token_b).await.expect("key B after the refresh");
}

#[tokio::test]
async fn an_old_cache_keeps_serving_while_the_jwks_cannot_be_fetched() {
    let (_dir, path) = temp_jwks("jwks_a.json");
    let v = JwtVerifier::new(JwtConfig {
        jwks_min_refresh: Duration::from_secs(1),
        jwks_max_age: Duration::from_millis(100),
        ..cognito_config(JwksSource::File(path.clone()))
    })
    .expect("config");
    v.verify(&token_a(&access_claims(&[]))).await.expect("warm");

    std::fs::remove_file(&path).expect("the JWKS goes away");
    tokio::time::sleep(Duration::from_millis(250)).await;
    // Old, and the refresh fails: key A is still honoured (an outage locks no one out) ...
    v.verify(&token_a(&access_claims(&[])))
        .await
        .expect("key A while the refresh fails");
    // ... also on the next call (an old cache is retried every jwks_max_age at most).
    v.verify(&token_a(&access_claims(&["admin"])))
        .await
        .expect("key A again");
    let token_b = sign_rs("rsa_b.pem", KID_B, &access_claims(&[]));
    assert_invalid(v.verify(&token_b).await, "unknown key id");

    // Once the JWKS is back, the next due refresh picks it up.
    std::fs::write(&path, read_fixture("jwks_b.json")).expect("the JWKS is back, rotated");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    v.verify(&token_b).await.expect("key B after the refresh");
    assert_invalid(
        v.verify(&token_a(&access_claims(&[]))).await,
        "unknown key id",
    );
}

#[tokio::test]
async fn an_unreadable_jwks_with_a_cold_cache_is_unavailable() {
    let v = JwtVerifier::new(cognito_config(JwksSource::File(fixture("no-such.json"))))
        .expect("config");
    let token = token_a(&access_claims(&[]));
    assert_unavailable(v.verify(&token).await);
    // Rate limited, but still unavailable rather than "unknown key id".
    assert_unavailable(v.verify(&token).await);

    // A JWKS without any RS256 signing key is no better.
    let (_dir, path) = temp_jwks("jwks_a.json");
    std::fs::write(
        &path,
        r#"{"keys":[{"kty":"EC","kid":"ec","crv":"P-256","x":"AA","y":"AA"},
                    {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}]}"#,
    )
    .expect("write");
    let v = JwtVerifier::new(cognito_config(JwksSource::File(path))).expect("config");
    assert_unavailable(v.verify(&token).await);
}

#[tokio::test]
async fn odd_entries_in_the_jwks_are_skipped() {
    let (_dir, path) = temp_jwks("jwks_a.json");
    let mut set: Value = serde_json::from_str(&read_fixture("jwks_a.json")).expect("json");
    if let Some(keys) = set["keys"].as_array_mut() {
        keys.insert(0, json!({"kty": "EC", "kid": "ec-key", "crv": "P-256"}));
        keys.insert(0, json!("not even an object"));
    }
    std::fs::write(&path, set.to_string()).expect("write");
    let v = JwtVerifier::new(cognito_config(JwksSource::File(path))).expect("config");
    v.verify(&token_a(&access_claims(&[])))
        .await
        .expect("the RSA key is still found");
}

/// Serves `body` with `status` to every request on 127.0.0.1, counting requests; answers
/// after `delay` so concurrent callers overlap.
async fn serve_jwks(
    status: &'static str,
    body: String,
    delay: Duration,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                tokio::time::sleep(delay).await;
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (
        format!("http://{addr}/eu-west-1_TestPool/.well-known/jwks.json"),
        hits,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_comes_from_a_url_fetched_once_by_concurrent_verifications() {
    let (url, hits) = serve_jwks(
        "200 OK",
        read_fixture("jwks_a.json"),
        Duration::from_millis(200),
    )
    .await;
    let v = Arc::new(JwtVerifier::new(cognito_config(JwksSource::Url(url))).expect("config"));

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let v = Arc::clone(&v);
        let token = token_a(&access_claims(&["admin"]));
        tasks.spawn(async move { v.verify(&token).await });
    }
    while let Some(result) = tasks.join_next().await {
        let p = result.expect("task").expect("valid");
        assert_eq!(p.role, Role::Admin);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "one fetch for all");

    // Cached: no further request, and an unknown kid within the interval fetches nothing.
    v.verify(&token_a(&access_claims(&[])))
        .await
        .expect("cached");
    let token_b = sign_rs("rsa_b.pem", KID_B, &access_claims(&[]));
    assert_invalid(v.verify(&token_b).await, "unknown key id");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_jwks_url_answering_an_error_is_unavailable() {
    let (url, hits) = serve_jwks(
        "500 Internal Server Error",
        "oops".to_owned(),
        Duration::ZERO,
    )
    .await;
    let v = JwtVerifier::new(cognito_config(JwksSource::Url(url))).expect("config");
    assert_unavailable(v.verify(&token_a(&access_claims(&[]))).await);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unreachable_jwks_url_is_unavailable() {
    // Bind then drop, so the port is (almost certainly) closed.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let v = JwtVerifier::new(cognito_config(JwksSource::Url(format!(
        "http://{addr}/jwks.json"
    ))))
    .expect("config");
    assert_unavailable(v.verify(&token_a(&access_claims(&[]))).await);
}

// ---- HS256 development mode --------------------------------------------------------------

fn dev_verifier() -> JwtVerifier {
    JwtVerifier::new(JwtConfig {
        hs256_secret: Some(DEV_SECRET.to_vec()),
        ..JwtConfig::default()
    })
    .expect("config")
}

fn dev_claims(groups: &[&str]) -> Value {
    json!({ "sub": "dev-user-1", "cognito:groups": groups, "exp": now() + 600 })
}

#[tokio::test]
async fn hs256_dev_tokens_with_the_secret_are_valid() {
    let v = dev_verifier();
    let p = v
        .verify(&sign_hs(DEV_SECRET, &dev_claims(&[])))
        .await
        .expect("valid");
    assert_eq!(
        p,
        Principal {
            role: Role::Customer,
            user_id: user("dev-user-1"),
            credential: "jwt:dev-user-1".to_owned(),
        }
    );
    let admin = v
        .verify(&sign_hs(DEV_SECRET, &dev_claims(&["admin"])))
        .await
        .expect("valid");
    assert!(admin.is_admin());
}

#[tokio::test]
async fn hs256_with_a_wrong_secret_or_expired_is_invalid() {
    let v = dev_verifier();
    let wrong = sign_hs(b"another-secret-of-32-bytes-long!", &dev_claims(&["admin"]));
    assert_invalid(v.verify(&wrong).await, "bad signature");
    let expired = with(dev_claims(&[]), "exp", json!(now() - 3600));
    assert_invalid(v.verify(&sign_hs(DEV_SECRET, &expired)).await, "expired");
    // RS256 is not accepted without a JWKS.
    assert_invalid(
        v.verify(&token_a(&access_claims(&[]))).await,
        "unsupported algorithm",
    );
}

#[tokio::test]
async fn rs256_and_hs256_together_are_chosen_by_alg() {
    let v = JwtVerifier::new(JwtConfig {
        hs256_secret: Some(DEV_SECRET.to_vec()),
        ..cognito_config(JwksSource::File(fixture("jwks_a.json")))
    })
    .expect("config");
    v.verify(&token_a(&access_claims(&[])))
        .await
        .expect("RS256");
    // The issuer, audience and token_use apply to HS256 tokens too.
    assert_invalid(
        v.verify(&sign_hs(DEV_SECRET, &dev_claims(&[]))).await,
        "wrong issuer",
    );
    let full = with(access_claims(&[]), "sub", json!("dev-user-1"));
    let p = v.verify(&sign_hs(DEV_SECRET, &full)).await.expect("HS256");
    assert_eq!(p.user_id, user("dev-user-1"));
}

// ---- configuration -----------------------------------------------------------------------

#[track_caller]
fn assert_config_error(cfg: JwtConfig) {
    let result = JwtVerifier::new(cfg);
    assert!(
        matches!(result, Err(JwtError::Config(_))),
        "expected a Config error, got {result:?}"
    );
}

#[test]
fn bad_configurations_are_refused() {
    assert_config_error(JwtConfig::default());
    assert_config_error(JwtConfig {
        jwks: Some(JwksSource::File(fixture("jwks_a.json"))),
        ..JwtConfig::default()
    });
    assert_config_error(JwtConfig {
        hs256_secret: Some(Vec::new()),
        ..JwtConfig::default()
    });
    assert_config_error(cognito_config(JwksSource::Url(
        "http://cognito-idp.eu-west-1.amazonaws.com/pool/.well-known/jwks.json".to_owned(),
    )));
    assert_config_error(cognito_config(JwksSource::Url("not a url".to_owned())));
    assert_config_error(JwtConfig {
        token_use: Some("refresh".to_owned()),
        ..cognito_config(JwksSource::File(fixture("jwks_a.json")))
    });
    assert_config_error(JwtConfig {
        admin_group: String::new(),
        ..cognito_config(JwksSource::File(fixture("jwks_a.json")))
    });
    assert_config_error(JwtConfig {
        leeway_secs: 1_000_000,
        ..cognito_config(JwksSource::File(fixture("jwks_a.json")))
    });
    assert_config_error(JwtConfig {
        jwks_max_age: Duration::ZERO,
        ..cognito_config(JwksSource::File(fixture("jwks_a.json")))
    });
    for ok in [
        "https://cognito-idp.eu-west-1.amazonaws.com/pool/.well-known/jwks.json",
        "http://127.0.0.1:9000/jwks.json",
        "http://localhost/jwks.json",
        "http://[::1]:9000/jwks.json",
    ] {
        JwtVerifier::new(cognito_config(JwksSource::Url(ok.to_owned()))).expect(ok);
    }
}

#[test]
fn defaults_are_cognito_shaped() {
    let d = JwtConfig::default();
    assert_eq!(d.roles_claim, "cognito:groups");
    assert_eq!(d.admin_group, "admin");
    assert_eq!(d.leeway_secs, 30);
    assert_eq!(d.jwks_min_refresh, Duration::from_secs(60));
    assert_eq!(d.jwks_max_age, Duration::from_secs(3600));
}

#[test]
fn debug_output_hides_the_secret() {
    let secret = "super-secret-development-key-0123456789";
    let cfg = JwtConfig {
        hs256_secret: Some(secret.as_bytes().to_vec()),
        ..JwtConfig::default()
    };
    let v = JwtVerifier::new(cfg.clone()).expect("config");
    for shown in [format!("{cfg:?}"), format!("{v:?}")] {
        assert!(!shown.contains(secret), "{shown}");
        assert!(
            !shown.contains(&format!("{:?}", secret.as_bytes())),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}

#[test]
fn the_verifier_can_be_shared_across_tasks() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    fn assert_send<T: Send>(_: &T) {}
    let v = dev_verifier();
    assert_send_sync(&v);
    let fut = v.verify("token");
    assert_send(&fut);
}
