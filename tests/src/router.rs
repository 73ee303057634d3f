//! HTTP in, store calls out: request parsing, faults, latency, the request log, and
//! response encoding.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::Value;

use crate::log::RequestRecord;
use crate::object::{self, View};
use crate::route::{self, ResourcePath, Route};
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::Shared;
use crate::status::{self, ApiError};
use crate::store::{DeleteOptions, ListQuery, PatchBody, Propagation, Target, WriteOptions};
use crate::table;
use crate::watch::{self, WatchRequest};
use crate::{discovery, openapi, proxy};

/// Largest request body accepted.
const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Watch timeout when the client sets none (the API server picks 30–60 minutes).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

type Params = HashMap<String, String>;

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let latency = shared.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (parts, body) = request.into_parts();
    let params: Params = Query::try_from_uri(&parts.uri)
        .map(|Query(p)| p)
        .unwrap_or_default();
    let route = Route::parse(parts.uri.path());
    let mut record = record(&parts.method, &parts.uri, &route, &params);
    shared.wait_while_paused(&record).await;
    let response = match shared.take_fault(&record) {
        Some(code) => error_response(&ApiError::from_code(
            code,
            format!("injected fault: {code}"),
        )),
        None => match axum::body::to_bytes(body, BODY_LIMIT).await {
            Ok(body) => match route {
                Route::Resource(path) if is_service_proxy(&path) => {
                    proxy(&shared, &parts, &path, body).await
                }
                route => dispatch(
                    &shared,
                    &parts.method,
                    &parts.headers,
                    route,
                    &params,
                    &body,
                ),
            }
            .unwrap_or_else(|error| error_response(&error)),
            Err(error) => {
                error_response(&ApiError::bad_request(format!("cannot read body: {error}")))
            }
        },
    };
    record.status = response.status().as_u16();
    tracing::debug!(method = %record.method, path = %record.path, status = record.status, "request");
    shared.record(record);
    response
}

fn is_service_proxy(path: &ResourcePath) -> bool {
    path.group.is_empty()
        && path.resource == "services"
        && path.subresource.as_deref() == Some("proxy")
        && path.namespace.is_some()
}

async fn proxy(
    shared: &Shared,
    parts: &http::request::Parts,
    path: &ResourcePath,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let namespace = path.namespace.as_deref().unwrap_or_default();
    let service = proxy::service_name(path.name.as_deref().unwrap_or_default());
    let base = shared.proxy_target(namespace, service).ok_or_else(|| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("no endpoints available for service \"{service}\""),
        )
    })?;
    let (status, content_type, body) = proxy::forward(
        &base,
        parts.method.clone(),
        &parts.headers,
        &path.tail,
        parts.uri.query(),
        body,
    )
    .await?;
    let mut response = (status, body).into_response();
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    Ok(response)
}

fn record(method: &Method, uri: &http::Uri, route: &Route, params: &Params) -> RequestRecord {
    let (verb, group, resource, namespace, name) = match route {
        Route::Resource(path) => (
            route::verb(method, path, is_true(params, "watch")),
            path.group.clone(),
            path.resource_with_subresource(),
            path.namespace.clone(),
            path.name.clone(),
        ),
        _ => ("get", String::new(), String::new(), None, None),
    };
    RequestRecord {
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        verb: verb.to_owned(),
        group,
        resource,
        namespace,
        name,
        status: 0,
    }
}

fn dispatch(
    shared: &Arc<Shared>,
    method: &Method,
    headers: &HeaderMap,
    route: Route,
    params: &Params,
    body: &[u8],
) -> Result<Response, ApiError> {
    let accept = header_str(headers, header::ACCEPT);
    let document = match route {
        Route::Resource(path) => return resource(shared, method, headers, &path, params, body),
        Route::Version => discovery::version(),
        Route::Health => return Ok((StatusCode::OK, "ok").into_response()),
        Route::CoreVersions if discovery::wants_aggregated(accept) => {
            return Ok(aggregated(
                shared.read(|s| discovery::aggregated(&s.registry, true)),
            ));
        }
        Route::Groups if discovery::wants_aggregated(accept) => {
            return Ok(aggregated(
                shared.read(|s| discovery::aggregated(&s.registry, false)),
            ));
        }
        Route::CoreVersions => discovery::core_versions(),
        Route::Groups => shared.read(|s| discovery::groups(&s.registry)),
        Route::CoreResources(version) => shared
            .read(|s| discovery::resources(&s.registry, "", &version))
            .ok_or_else(ApiError::no_such_path)?,
        Route::Group(group) => shared
            .read(|s| discovery::group(&s.registry, &group))
            .ok_or_else(ApiError::no_such_path)?,
        Route::GroupResources(group, version) => shared
            .read(|s| discovery::resources(&s.registry, &group, &version))
            .ok_or_else(ApiError::no_such_path)?,
        Route::OpenApiIndex => {
            shared.read(|s| openapi::index(&s.registry, s.registry.fingerprint()))
        }
        Route::OpenApiGroupVersion(group, version) => shared
            .read(|s| openapi::group_version(&s.registry, &group, &version))
            .ok_or_else(ApiError::no_such_path)?,
        Route::OpenApi | Route::Unknown => return Err(ApiError::no_such_path()),
    };
    if *method != Method::GET {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported here"),
        ));
    }
    Ok(json_response(StatusCode::OK, &document))
}

fn resource(
    shared: &Arc<Shared>,
    method: &Method,
    headers: &HeaderMap,
    path: &ResourcePath,
    params: &Params,
    body: &[u8],
) -> Result<Response, ApiError> {
    let resource = shared
        .read(|s| s.registry.find(&path.group, &path.version, &path.resource))
        .ok_or_else(ApiError::no_such_path)?;
    let verb = route::verb(method, path, is_true(params, "watch"));
    let namespace_fits = match (resource.namespaced, &path.namespace) {
        (false, Some(_)) => false,
        // Namespaced objects are only addressed, created or deleted within a namespace.
        (true, None) => matches!(verb, "list" | "watch"),
        _ => true,
    };
    if !namespace_fits {
        return Err(ApiError::no_such_path());
    }
    let status = match path.subresource.as_deref() {
        None => false,
        Some("status") if resource.status_subresource => true,
        Some(_) => return Err(ApiError::no_such_path()),
    };
    let target = Target {
        resource,
        version: path.version.clone(),
        namespace: path.namespace.clone(),
    };
    let view = View::from_accept(header_str(headers, header::ACCEPT));
    let name = path.name.as_deref();
    let write = WriteOptions {
        manager: field_manager(params, headers),
        dry_run: params.get("dryRun").is_some_and(|v| v == "All"),
        status,
    };

    match (verb, name) {
        ("get", Some(name)) => {
            let object = shared.read(|s| s.get(&target, name))?;
            Ok(render(view, &target, &object, StatusCode::OK))
        }
        ("list", _) => {
            let query = list_query(params)?;
            let page = shared.read(|s| s.list(&target, &query))?;
            let list = object::list(
                view,
                &target.resource,
                &target.version,
                &page.items,
                page.resource_version,
                page.continue_token,
                page.remaining,
            );
            Ok(json_response(StatusCode::OK, &list))
        }
        ("watch", _) => {
            let request = watch_request(target, params, view)?;
            let body = Body::from_stream(watch::stream(shared.clone(), request));
            Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
        }
        ("create", None) => {
            let object = parse_body(headers, body)?;
            let created = shared.write(|s| s.create(&target, object, &write))?;
            Ok(render(view, &target, &created, StatusCode::CREATED))
        }
        ("update", Some(name)) => {
            let object = parse_body(headers, body)?;
            let updated = shared.write(|s| s.replace(&target, name, object, &write))?;
            Ok(render(view, &target, &updated, StatusCode::OK))
        }
        ("patch", Some(name)) => {
            let patch = patch_body(headers, params, body)?;
            if matches!(patch, PatchBody::Apply { .. })
                && params.get("fieldManager").is_none_or(String::is_empty)
            {
                return Err(ApiError::bad_request(
                    "PATCH requests with apply content type require a fieldManager",
                ));
            }
            let patched = shared.write(|s| s.patch(&target, name, patch, &write))?;
            Ok(render(view, &target, &patched, StatusCode::OK))
        }
        ("delete", Some(name)) => {
            let options = delete_options(params, body)?;
            let deleted = shared.write(|s| s.delete(&target, name, &options))?;
            Ok(render(view, &target, &deleted, StatusCode::OK))
        }
        ("deletecollection", None) => {
            let options = delete_options(params, body)?;
            let query = list_query(params)?;
            let deleted = shared.write(|s| s.delete_collection(&target, &query, &options))?;
            if deleted.is_empty() {
                return Ok(json_response(
                    StatusCode::OK,
                    &status::success(serde_json::json!({})),
                ));
            }
            let rv = shared.read(crate::store::Store::resource_version);
            let list = object::list(
                View::Full,
                &target.resource,
                &target.version,
                &deleted,
                rv,
                None,
                None,
            );
            Ok(json_response(StatusCode::OK, &list))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {}", path.resource),
        )),
    }
}

fn render(view: View, target: &Target, object: &Value, code: StatusCode) -> Response {
    let body = match view {
        View::Table => table::table(
            &target.resource,
            &target.version,
            std::slice::from_ref(object),
            Default::default(),
        ),
        _ => view.object(object, &target.resource, &target.version),
    };
    json_response(code, &body)
}

fn list_query(params: &Params) -> Result<ListQuery, ApiError> {
    let limit = match params.get("limit").filter(|l| !l.is_empty()) {
        Some(limit) => Some(
            limit
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {limit:?}")))?,
        ),
        None => None,
    };
    Ok(ListQuery {
        labels: LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))?,
        fields: FieldSelector::parse(params.get("fieldSelector").map_or("", String::as_str))?,
        limit,
        continue_token: params.get("continue").filter(|c| !c.is_empty()).cloned(),
        resource_version: params
            .get("resourceVersion")
            .filter(|v| !v.is_empty())
            .cloned(),
        exact: params
            .get("resourceVersionMatch")
            .is_some_and(|m| m == "Exact"),
    })
}

fn watch_request(target: Target, params: &Params, view: View) -> Result<WatchRequest, ApiError> {
    let query = list_query(params)?;
    let from = match query.resource_version.as_deref() {
        None | Some("0") => None,
        Some(rv) => Some(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
    Ok(WatchRequest {
        target,
        labels: query.labels,
        fields: query.fields,
        from,
        send_initial_events: is_true(params, "sendInitialEvents"),
        bookmarks: is_true(params, "allowWatchBookmarks"),
        timeout,
        view,
    })
}

fn patch_body(headers: &HeaderMap, params: &Params, body: &[u8]) -> Result<PatchBody, ApiError> {
    let content_type = header_str(headers, header::CONTENT_TYPE);
    let media = content_type.split(';').next().unwrap_or("").trim();
    match media {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            Ok(PatchBody::Merge(parse_json(body)?))
        }
        "application/json-patch+json" => serde_json::from_slice(body)
            .map(PatchBody::Json)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}"))),
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchBody::Apply {
            config: parse_yaml_or_json(body)?,
            force: is_true(params, "force"),
        }),
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
            ),
        )),
    }
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let content_type = header_str(headers, header::CONTENT_TYPE);
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        // 415 makes client-go fall back to JSON.
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type:?})"
            ),
        ));
    }
    if content_type.contains("yaml") {
        parse_yaml_or_json(body)
    } else {
        parse_json(body)
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn parse_yaml_or_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .or_else(|_| serde_norway::from_slice(body))
        .map_err(|e| ApiError::bad_request(format!("invalid YAML body: {e}")))
}

fn delete_options(params: &Params, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        parse_json(body)?
    };
    let policy = body["propagationPolicy"]
        .as_str()
        .or(params.get("propagationPolicy").map(String::as_str));
    let propagation = match policy {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown propagationPolicy {other:?}"
            )));
        }
    };
    let orphan = body["orphanDependents"].as_bool() == Some(true);
    let dry_run = body["dryRun"]
        .as_array()
        .is_some_and(|d| d.iter().any(|v| v == "All"))
        || params.get("dryRun").is_some_and(|v| v == "All");
    Ok(DeleteOptions {
        dry_run,
        propagation: if orphan {
            Propagation::Orphan
        } else {
            propagation
        },
        precondition_uid: body["preconditions"]["uid"].as_str().map(str::to_owned),
        precondition_resource_version: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_owned),
    })
}

/// `fieldManager`, else the client name from the User-Agent, as the API server defaults it.
fn field_manager(params: &Params, headers: &HeaderMap) -> String {
    if let Some(manager) = params.get("fieldManager").filter(|m| !m.is_empty()) {
        return manager.clone();
    }
    let agent = header_str(headers, header::USER_AGENT);
    let name = agent.split('/').next().unwrap_or("").trim();
    if name.is_empty() {
        "unknown".to_owned()
    } else {
        name.to_owned()
    }
}

fn is_true(params: &Params, key: &str) -> bool {
    params.get(key).is_some_and(|v| v == "true" || v == "1")
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn aggregated(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, discovery::AGGREGATED_CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn error_response(error: &ApiError) -> Response {
    let code = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &error.to_status())
}
