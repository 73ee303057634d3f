//! The services proxy (`/api/v1/namespaces/<ns>/services/[http:]<name>[:<port>]/proxy/<path>`),
//! forwarding to whatever URL a test registered for the Service, the way the API server
//! forwards to a Service's endpoints. `kubeseal`-style clients reach controllers this way.

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::status::ApiError;

/// The Service name in a proxy path segment: `http:name:port`, `name:port` or `name`.
pub(crate) fn service_name(segment: &str) -> &str {
    let mut parts = segment.split(':');
    let first = parts.next().unwrap_or(segment);
    match (first, parts.next()) {
        ("http" | "https", Some(name)) => name,
        _ => first,
    }
}

/// A proxied response: status, content type, body.
pub(crate) type Proxied = (StatusCode, Option<header::HeaderValue>, Bytes);

/// Forwards one request to `base` (`http://127.0.0.1:8080`) + `/tail?query`.
pub(crate) async fn forward(
    base: &str,
    method: Method,
    headers: &HeaderMap,
    tail: &str,
    query: Option<&str>,
    body: Bytes,
) -> Result<Proxied, ApiError> {
    let unavailable = |what: String| ApiError::new(503, "ServiceUnavailable", what);
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    let uri: Uri = format!("{}/{tail}{query}", base.trim_end_matches('/'))
        .parse()
        .map_err(|e| unavailable(format!("invalid proxy target {base:?}: {e}")))?;
    let authority = uri
        .authority()
        .ok_or_else(|| unavailable(format!("proxy target {base:?} has no host")))?
        .clone();
    let stream = tokio::net::TcpStream::connect(authority.as_str())
        .await
        .map_err(|e| unavailable(format!("error trying to reach service: {e}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unavailable(format!("error trying to reach service: {e}")))?;
    tokio::spawn(connection);

    let mut request = http::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map_or("/", |pq| pq.as_str()))
        .header(header::HOST, authority.as_str());
    for name in [header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value);
        }
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| ApiError::bad_request(format!("cannot proxy request: {e}")))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unavailable(format!("error trying to reach service: {e}")))?;
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| unavailable(format!("error reading from service: {e}")))?
        .to_bytes();
    Ok((status, content_type, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_in_proxy_paths() {
        assert_eq!(
            service_name("http:sealed-secrets-controller:http"),
            "sealed-secrets-controller"
        );
        assert_eq!(
            service_name("sealed-secrets-controller:8080"),
            "sealed-secrets-controller"
        );
        assert_eq!(
            service_name("sealed-secrets-controller"),
            "sealed-secrets-controller"
        );
    }
}
