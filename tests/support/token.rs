//! A Docker registry token server for tests (plain HTTP on 127.0.0.1).
//!
//! `GET /token?service=S&scope=repository:NAME:pull,push` (any number of `scope`
//! parameters), with or without HTTP basic credentials, answers
//! `{"token": JWT, "access_token": JWT, "expires_in": 300}`. The JWT is ES256 over a
//! P-256 key, its header carries the libtrust key ID of that key as `kid`, and the
//! registry trusts it through `auth.token.rootcertbundle` (a self-signed certificate
//! for the same key). Users and anonymous callers get the intersection of what they
//! ask for and what their grants allow; what they may not have is left out of
//! `access` (the registry then answers 401 `insufficient_scope`). A wrong password
//! or an unknown user gets 401.
//!
//! A test can make it misbehave ([`TokenServer::set_fault`]), as a hostile or broken
//! token service would: see [`TokenFault`].
//!
//! The server runs on its own thread and tokio runtime, so it works under any test
//! runtime flavour and outlives none: it stops on drop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Digest;

use super::registry::Kind;

pub const DEFAULT_SERVICE: &str = "imagegate-test-registry";
pub const DEFAULT_ISSUER: &str = "imagegate-test-token-issuer";

/// What a caller may get for the repositories matching `repository`: an exact name,
/// or a pattern where `*` matches any run of characters (`/` included), such as
/// `team/*` or `*`. `actions` are `pull`, `push`, `delete`, or `*` for any.
#[derive(Clone, Debug)]
pub struct Grant {
    pub repository: String,
    pub actions: Vec<String>,
}

impl Grant {
    pub fn new(repository: &str, actions: &[&str]) -> Grant {
        Grant {
            repository: repository.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct TokenUser {
    pub name: String,
    pub password: String,
    pub grants: Vec<Grant>,
}

#[derive(Clone, Debug)]
pub struct TokenServerConfig {
    /// The `service` the registry is configured with (the JWT audience).
    pub service: String,
    /// The `iss` of every token; the registry's `auth.token.issuer`.
    pub issuer: String,
    pub users: Vec<TokenUser>,
    /// What callers without credentials may get.
    pub anonymous: Vec<Grant>,
    /// Token lifetime (`exp - iat`, and `expires_in`).
    pub expires_in: Duration,
}

impl Default for TokenServerConfig {
    fn default() -> Self {
        TokenServerConfig {
            service: DEFAULT_SERVICE.to_string(),
            issuer: DEFAULT_ISSUER.to_string(),
            users: Vec::new(),
            anonymous: Vec::new(),
            expires_in: Duration::from_secs(300),
        }
    }
}

impl TokenServerConfig {
    /// Adds a user with a password and grants.
    pub fn user(mut self, name: &str, password: &str, grants: &[Grant]) -> Self {
        self.users.push(TokenUser {
            name: name.to_string(),
            password: password.to_string(),
            grants: grants.to_vec(),
        });
        self
    }

    /// Sets what anonymous callers may get.
    pub fn anonymous(mut self, grants: &[Grant]) -> Self {
        self.anonymous = grants.to_vec();
        self
    }
}

/// A way for the token server to misbehave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFault {
    /// Issue tokens with a line break in them (the JWT split after its header), which
    /// no HTTP header may carry: oci-client 0.18 panics putting one in a header.
    Newline,
}

/// One entry of a token's `access` claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Access {
    pub fn repository(name: &str, actions: &[&str]) -> Access {
        Access {
            kind: "repository".to_string(),
            name: name.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// One request to `/token`, as the server saw and answered it.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// The basic-auth user name, `None` for anonymous requests.
    pub user: Option<String>,
    pub service: Option<String>,
    pub scopes: Vec<String>,
    /// 200, 400 (wrong service) or 401 (unknown user or wrong password).
    pub status: u16,
    /// The `access` claim of the token issued (empty when none was).
    pub granted: Vec<Access>,
}

/// The signing key and its libtrust key ID.
struct Signer {
    key: EcdsaKeyPair,
    kid: String,
}

impl Signer {
    fn sign(&self, claims: &Value) -> String {
        let header = json!({ "typ": "JWT", "alg": "ES256", "kid": self.kid });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // FIXED signing: r || s, 32 bytes each, as JWS ES256 wants (not DER).
        let signature = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .expect("sign the token");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }
}

struct Shared {
    config: TokenServerConfig,
    signer: Signer,
    requests: Mutex<Vec<TokenRequest>>,
    jti: AtomicU64,
    fault: Mutex<Option<TokenFault>>,
}

/// A running token server; stops on drop.
pub struct TokenServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cert_pem: String,
    offset: Mutex<usize>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    /// Generates a P-256 key and its certificate, and starts serving on a free port.
    pub fn start(config: TokenServerConfig) -> TokenServer {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("generate a P-256 key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("load the P-256 key");
        let rc_key = rcgen::KeyPair::try_from(pkcs8.as_ref()).expect("rcgen key from PKCS#8");
        assert!(
            rc_key.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256),
            "the token key must be P-256"
        );
        let kid = libtrust_key_id(&rcgen::PublicKeyData::subject_public_key_info(&rc_key));
        let cert_pem = signing_certificate(&rc_key, &config.issuer);

        let shared = Arc::new(Shared {
            config,
            signer: Signer { key, kid },
            requests: Mutex::new(Vec::new()),
            jti: AtomicU64::new(0),
            fault: Mutex::new(None),
        });

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .route("/token", axum::routing::get(token))
            .with_state(shared.clone());
        let thread = std::thread::Builder::new()
            .name("token-server".to_string())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("token server runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await
                        .expect("token server");
                });
            })
            .expect("token server thread");

        TokenServer {
            addr,
            shared,
            cert_pem,
            offset: Mutex::new(0),
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/token`, the registry's `auth.token.realm`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn service(&self) -> &str {
        &self.shared.config.service
    }

    pub fn issuer(&self) -> &str {
        &self.shared.config.issuer
    }

    /// The self-signed certificate of the signing key (`auth.token.rootcertbundle`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The libtrust key ID of the signing key (the JWT header's `kid`).
    pub fn key_id(&self) -> &str {
        &self.shared.signer.kid
    }

    /// The registry kind that trusts this server.
    pub fn kind(&self) -> Kind {
        Kind::Token {
            realm: self.realm(),
            service: self.service().to_string(),
            issuer: self.issuer().to_string(),
            root_cert_pem: self.cert_pem.clone(),
        }
    }

    /// Requests to `/token` since the start or the last [`TokenServer::reset_count`],
    /// whatever their answer.
    pub fn count(&self) -> usize {
        self.requests().len()
    }

    pub fn reset_count(&self) {
        *self.offset.lock().unwrap() = self.shared.requests.lock().unwrap().len();
    }

    /// The requests counted by [`TokenServer::count`], oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        let all = self.shared.requests.lock().unwrap();
        let offset = (*self.offset.lock().unwrap()).min(all.len());
        all[offset..].to_vec()
    }

    /// Makes every token issued from now on misbehave this way (`None`: behave).
    pub fn set_fault(&self, fault: Option<TokenFault>) {
        *self.shared.fault.lock().unwrap() = fault;
    }

    /// Mints a token directly (no request, not counted), e.g. to present one for
    /// another repository than the one asked about.
    pub fn sign(&self, subject: &str, access: &[Access]) -> String {
        self.shared
            .signer
            .sign(&self.shared.claims(subject, access))
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn claims(&self, subject: &str, access: &[Access]) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let jti = self.jti.fetch_add(1, Ordering::SeqCst);
        let mut nonce = [0u8; 8];
        aws_lc_rs::rand::fill(&mut nonce).expect("random");
        json!({
            "iss": self.config.issuer,
            "sub": subject,
            "aud": self.config.service,
            "exp": now + self.config.expires_in.as_secs(),
            "nbf": now.saturating_sub(10),
            "iat": now,
            "jti": format!("{jti}-{}", hex::encode(nonce)),
            "access": access,
        })
    }

    fn record(&self, request: TokenRequest) {
        self.requests.lock().unwrap().push(request);
    }
}

async fn token(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = parse_query(query.as_deref().unwrap_or(""));
    let service = params
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone());
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let mut request = TokenRequest {
        user: None,
        service: service.clone(),
        scopes: scopes.clone(),
        status: 200,
        granted: Vec::new(),
    };

    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_basic);
    let grants: &[Grant] = match &credentials {
        None => &shared.config.anonymous,
        Some((name, password)) => {
            request.user = Some(name.clone());
            match shared.config.users.iter().find(|u| &u.name == name) {
                Some(user) if &user.password == password => &user.grants,
                _ => {
                    request.status = 401;
                    shared.record(request);
                    return (
                        StatusCode::UNAUTHORIZED,
                        [(
                            header::WWW_AUTHENTICATE,
                            "Basic realm=\"imagegate-test-token\"",
                        )],
                        axum::Json(json!({"errors": [{
                            "code": "UNAUTHORIZED",
                            "message": "invalid username or password",
                        }]})),
                    )
                        .into_response();
                }
            }
        }
    };

    if let Some(s) = &service
        && s != &shared.config.service
    {
        request.status = 400;
        shared.record(request);
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"errors": [{
                "code": "INVALID_REQUEST",
                "message": format!("unknown service {s:?}"),
            }]})),
        )
            .into_response();
    }

    let access: Vec<Access> = scopes.iter().filter_map(|s| grant(s, grants)).collect();
    let subject = credentials.map(|(name, _)| name).unwrap_or_default();
    let mut jwt = shared.signer.sign(&shared.claims(&subject, &access));
    if *shared.fault.lock().unwrap() == Some(TokenFault::Newline) {
        jwt = jwt.replacen('.', ".\n", 1);
    }
    request.granted = access;
    shared.record(request);
    axum::Json(json!({
        "token": jwt,
        "access_token": jwt,
        "expires_in": shared.config.expires_in.as_secs(),
    }))
    .into_response()
}

/// What `grants` allow of one requested scope `TYPE:NAME:ACTIONS` (`NAME` may
/// contain `:`), or `None` when nothing.
fn grant(scope: &str, grants: &[Grant]) -> Option<Access> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    // `repository(plugin)` is a repository too.
    if kind != "repository" && !kind.starts_with("repository(") {
        return None;
    }
    let allowed: Vec<&Grant> = grants
        .iter()
        .filter(|g| glob_match(&g.repository, name))
        .collect();
    let mut granted: Vec<String> = Vec::new();
    for action in actions.split(',').filter(|a| !a.is_empty()) {
        let ok = allowed
            .iter()
            .any(|g| g.actions.iter().any(|a| a == "*" || a == action));
        if ok && !granted.iter().any(|a| a == action) {
            granted.push(action.to_string());
        }
    }
    if granted.is_empty() {
        return None;
    }
    Some(Access {
        kind: kind.to_string(),
        name: name.to_string(),
        actions: granted,
    })
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libtrust's key ID: SHA-256 of the DER SubjectPublicKeyInfo, first 30 bytes
/// (240 bits), base32 (standard alphabet, no padding: 48 characters), in 12
/// groups of 4 joined by `:`.
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    let hash = sha2::Sha256::digest(spki_der);
    let encoded = data_encoding::BASE32_NOPAD.encode(&hash[..30]);
    encoded
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A self-signed certificate for the signing key. The registry only takes the
/// public key out of it (and indexes it by libtrust key ID).
fn signing_certificate(key: &rcgen::KeyPair, issuer: &str) -> String {
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).expect("certificate params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, issuer);
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(2 * 86_400)).into();
    params
        .self_signed(key)
        .expect("self-sign the token certificate")
        .pem()
}
