//! A thin server in front of the real registry that answers the OCI referrers API
//! (`GET /v2/<name>/referrers/<digest>`), which docker-registry 2.8 lacks, and
//! proxies every other request to the registry unchanged. The referrers it lists
//! are the manifests with a `subject` that the test pushed and registered with
//! [`ReferrersProxy::add`]: no registry computes that list for us here. It counts
//! the referrers requests it answered, and can page its answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

#[derive(Default)]
struct Inner {
    /// (repository, subject digest) -> referrer descriptors.
    referrers: Mutex<HashMap<(String, String), Vec<Value>>>,
    answered: AtomicUsize,
    /// Requests whose path ends with this are answered only after the delay (a
    /// slow registry).
    delay: Mutex<Option<(String, std::time::Duration)>>,
    /// Referrers per page, when the answer is paged (`?page=N`, a `Link` header
    /// to the next page).
    per_page: Mutex<Option<usize>>,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    inner: Arc<Inner>,
}

pub struct ReferrersProxy {
    pub addr: std::net::SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl ReferrersProxy {
    /// Starts the proxy in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> ReferrersProxy {
        let inner = Arc::new(Inner::default());
        let state = ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            inner: inner.clone(),
        };
        let app = axum::Router::new().fallback(handle).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ReferrersProxy { addr, inner, task }
    }

    /// `127.0.0.1:port`, the host images are referenced by.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Lists a referrer manifest (`descriptor`: mediaType, digest, size,
    /// artifactType) of `subject` in `repository`.
    pub fn add(&self, repository: &str, subject: &str, descriptor: Value) {
        self.inner
            .referrers
            .lock()
            .unwrap()
            .entry((repository.to_string(), subject.to_string()))
            .or_default()
            .push(descriptor);
    }

    /// Delays the requests whose path ends with `suffix`.
    pub fn delay(&self, suffix: &str, by: std::time::Duration) {
        *self.inner.delay.lock().unwrap() = Some((suffix.to_string(), by));
    }

    /// Pages the referrers answers, `per_page` referrers a page.
    pub fn paginate(&self, per_page: usize) {
        *self.inner.per_page.lock().unwrap() = Some(per_page.max(1));
    }

    /// How many referrers requests it answered.
    pub fn answered(&self) -> usize {
        self.inner.answered.load(Ordering::SeqCst)
    }
}

impl Drop for ReferrersProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(state): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let delay = state.inner.delay.lock().unwrap().clone();
    if let Some((suffix, by)) = delay
        && path.ends_with(&suffix)
    {
        tokio::time::sleep(by).await;
    }
    if method == Method::GET
        && let Some(rest) = path.strip_prefix("/v2/")
        && let Some((repository, digest)) = rest.rsplit_once("/referrers/")
    {
        state.inner.answered.fetch_add(1, Ordering::SeqCst);
        let manifests = state
            .inner
            .referrers
            .lock()
            .unwrap()
            .get(&(repository.to_string(), digest.to_string()))
            .cloned()
            .unwrap_or_default();
        let per_page = *state.inner.per_page.lock().unwrap();
        let (manifests, next) = match per_page {
            None => (manifests, None),
            Some(n) => {
                let page: usize = uri
                    .query()
                    .and_then(|q| q.strip_prefix("page="))
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(1);
                let start = page
                    .saturating_sub(1)
                    .saturating_mul(n)
                    .min(manifests.len());
                let end = start.saturating_add(n).min(manifests.len());
                let next = (end < manifests.len())
                    .then(|| format!("<{path}?page={}>; rel=\"next\"", page + 1));
                (manifests[start..end].to_vec(), next)
            }
        };
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
        let mut response = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/vnd.oci.image.index.v1+json");
        if let Some(next) = next {
            response = response.header("link", next);
        }
        return response.body(Body::from(index.to_string())).unwrap();
    }
    let target = format!(
        "{}{}",
        state.upstream,
        uri.path_and_query().map_or(path, |p| p.as_str())
    );
    let mut request = state.http.request(method, &target).body(body.to_vec());
    for (name, value) in &headers {
        if name != "host" {
            request = request.header(name, value);
        }
    }
    let upstream = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(e.to_string()))
                .unwrap();
        }
    };
    let mut response = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        if name != "transfer-encoding" && name != "connection" {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    let bytes = upstream.bytes().await.unwrap_or_default();
    response.body(Body::from(bytes)).unwrap()
}
