//! HTTP: authentication, body limits, path parsing (`/api/v1/namespaces/NS/pods/NAME/log`,
//! `/apis/GROUP/VERSION/...`, discovery and OpenAPI paths) and dispatch to the verbs, with
//! content negotiation (JSON, Table, PartialObjectMetadata) and `Warning` headers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::Value;
use tokio::sync::mpsc;

use super::body::{check_content_type, decode, decode_body, parse_body};
use super::error::ApiError;
use super::ops::{self, DeleteOpts, FieldValidation, ListOpts, PatchType, WriteOpts};
use super::resources::ResourceInfo;
use super::watch::{self, WatchParams};
use super::{State, discovery, logs, openapi, scale, table};
use crate::store::selector::{FieldSelector, LabelSelector};

/// Body of every response.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Largest request body (the apiserver's limit is 3 MiB per object).
const MAX_BODY: usize = 3 << 20;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

fn json_response(code: u16, v: &Value, content_type: &str, warnings: &[String]) -> Response<Body> {
    let mut r = Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, content_type);
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "'"));
        r = r.header("Warning", text);
    }
    r.body(full(v.to_string())).expect("valid response")
}

fn ok(v: &Value) -> Response<Body> {
    json_response(200, v, "application/json", &[])
}

fn error(e: &ApiError) -> Response<Body> {
    json_response(e.code(), &e.status(), "application/json", &[])
}

fn streaming(rx: mpsc::Receiver<Bytes>, content_type: &str) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(StreamBody::new(stream.boxed()).boxed_unsync())
        .expect("valid response")
}

/// Serves one request.
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let authorized = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), state.creds.token.as_bytes()));
    if !authorized {
        return Ok(error(&ApiError::Unauthorized));
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(error(&ApiError::TooLarge(MAX_BODY))),
    };
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            q.split('&')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (decode(k), decode(v))
                })
                .collect()
        })
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let r = route(&state, &parts.method, &path, &parts.headers, &query, body).await;
    tracing::debug!(method = %parts.method, path, status = r.as_ref().map(|r| r.status().as_u16()).unwrap_or_else(|e| e.code()), "request");
    Ok(r.unwrap_or_else(|e| error(&e)))
}

/// Compares tokens without leaking the matching prefix length through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn route(
    state: &Arc<State>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let res = &state.resources;
    let not_found = || ApiError::not_found("", "");
    match segs.as_slice() {
        ["version"] => Ok(ok(&discovery::version())),
        ["healthz" | "livez" | "readyz"] => Ok(Response::new(full("ok"))),
        ["api"] if discovery::wants_aggregated(accept) => Ok(json_response(
            200,
            &discovery::aggregated(res, true),
            discovery::AGGREGATED_TYPE,
            &[],
        )),
        ["apis"] if discovery::wants_aggregated(accept) => Ok(json_response(
            200,
            &discovery::aggregated(res, false),
            discovery::AGGREGATED_TYPE,
            &[],
        )),
        ["api"] => Ok(ok(&discovery::core_versions(&state.server))),
        ["apis"] => Ok(ok(&discovery::group_list(res))),
        ["api", v] => discovery::resource_list(res, "", v)
            .map(|v| ok(&v))
            .ok_or_else(not_found),
        ["apis", g] => discovery::group(res, g)
            .map(|v| ok(&v))
            .ok_or_else(not_found),
        ["apis", g, v] => discovery::resource_list(res, g, v)
            .map(|v| ok(&v))
            .ok_or_else(not_found),
        ["openapi", "v3"] => Ok(ok(&openapi::index(res))),
        ["openapi", "v3", rest @ ..] => openapi::group_version(res, &rest.join("/"))
            .map(|v| ok(&v))
            .ok_or_else(not_found),
        ["api", v, rest @ ..] => {
            resource(state, method, "", v, rest, accept, headers, query, body).await
        }
        ["apis", g, v, rest @ ..] => {
            resource(state, method, g, v, rest, accept, headers, query, body).await
        }
        _ => Err(not_found()),
    }
}

/// The parsed target of a resource request.
struct Target {
    info: Arc<ResourceInfo>,
    namespace: Option<String>,
    name: Option<String>,
    sub: String,
}

fn parse_target(
    state: &State,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Target, ApiError> {
    let (namespace, rest) = match rest {
        ["namespaces", ns, resource, tail @ ..]
            if !(tail.is_empty() && matches!(*resource, "status" | "finalize")) =>
        {
            (Some(ns.to_string()), [&[*resource][..], tail].concat())
        }
        other => (None, other.to_vec()),
    };
    let (resource, name, sub) = match rest.as_slice() {
        [r] => (*r, None, ""),
        [r, n] => (*r, Some(n.to_string()), ""),
        [r, n, s] => (*r, Some(n.to_string()), *s),
        _ => return Err(ApiError::not_found("", "")),
    };
    let info = state
        .resources
        .lookup(group, version, resource)
        .ok_or_else(|| ApiError::not_found("", ""))?;
    if (!info.namespaced && namespace.is_some())
        || (info.namespaced && namespace.is_none() && name.is_some())
    {
        return Err(ApiError::not_found("", ""));
    }
    Ok(Target {
        info,
        namespace,
        name,
        sub: sub.to_string(),
    })
}

fn manager(query: &HashMap<String, String>, headers: &HeaderMap) -> String {
    query
        .get("fieldManager")
        .cloned()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            let ua = headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("unknown");
            ua.split('/').next().unwrap_or("unknown").to_string()
        })
}

fn write_opts(query: &HashMap<String, String>, headers: &HeaderMap) -> WriteOpts {
    WriteOpts {
        manager: manager(query, headers),
        dry_run: query.get("dryRun").is_some_and(|d| d == "All"),
        field_validation: match query.get("fieldValidation").map(String::as_str) {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        },
        force: query.get("force").is_some_and(|f| f == "true"),
    }
}

/// How to render objects for this Accept header.
fn renderer(
    info: &Arc<ResourceInfo>,
    accept: &str,
    query: &HashMap<String, String>,
) -> Option<watch::Render> {
    let include = query
        .get("includeObject")
        .cloned()
        .unwrap_or_else(|| "Metadata".into());
    for a in accept.split(',') {
        if a.contains("as=Table") {
            let info = info.clone();
            return Some(Arc::new(move |o: &Value| {
                table::table(&info, std::slice::from_ref(o), None, &include)
            }));
        }
        if a.contains("as=PartialObjectMetadata") {
            return Some(Arc::new(table::partial));
        }
        if a.contains("application/json") || a.contains("*/*") || a.trim().is_empty() {
            break;
        }
    }
    None
}

fn parse_num<T: std::str::FromStr>(
    query: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>, ApiError> {
    query
        .get(key)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| ApiError::BadRequest(format!("invalid {key} {v:?}")))
        })
        .transpose()
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    state: &Arc<State>,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    accept: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    let t = parse_target(state, group, version, rest)?;
    let info = &t.info;
    let ns = t.namespace.clone().unwrap_or_default();
    let render = renderer(info, accept, query);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    check_content_type(content_type, &body)?;
    let selectors = || -> Result<(LabelSelector, FieldSelector), ApiError> {
        let bad = |e: crate::store::selector::SelectorError| ApiError::BadRequest(e.to_string());
        Ok((
            LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))
                .map_err(bad)?,
            FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))
                .map_err(bad)?,
        ))
    };
    let one = |v: &Value, warnings: &[String], code: u16| {
        let out = match &render {
            Some(r) => r(v),
            None => v.clone(),
        };
        json_response(code, &out, "application/json", warnings)
    };
    let opts = write_opts(query, headers);
    let sub = t.sub.as_str();
    match (method.clone(), t.name.as_deref(), sub) {
        (Method::GET, None, _) => {
            let (labels, fields) = selectors()?;
            if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
                let params = WatchParams {
                    resource_version: query.get("resourceVersion").cloned().unwrap_or_default(),
                    namespace: t.namespace.clone(),
                    labels,
                    fields,
                    bookmarks: query
                        .get("allowWatchBookmarks")
                        .is_some_and(|b| b == "true"),
                    send_initial: query.get("sendInitialEvents").is_some_and(|b| b == "true"),
                    timeout: Duration::from_secs(
                        parse_num::<u64>(query, "timeoutSeconds")?
                            .unwrap_or(1800)
                            .min(24 * 3600),
                    ),
                };
                let render = render.unwrap_or_else(|| Arc::new(|v: &Value| v.clone()));
                let rx = watch::start(&state.store, info.clone(), params, render)?;
                return Ok(streaming(rx, "application/json"));
            }
            let continue_after = query
                .get("continue")
                .filter(|c| !c.is_empty())
                .map(|c| ops::decode_continue(c))
                .transpose()?;
            let lo = ListOpts {
                labels,
                fields,
                limit: parse_num(query, "limit")?.unwrap_or(0),
                continue_after,
            };
            let list = ops::list(state, info, t.namespace.as_deref(), &lo);
            if accept.contains("as=Table") {
                let items = list["items"].as_array().cloned().unwrap_or_default();
                let include = query
                    .get("includeObject")
                    .map(String::as_str)
                    .unwrap_or("Metadata");
                let mut tbl = table::table(
                    info,
                    &items,
                    list["metadata"]["resourceVersion"].as_str(),
                    include,
                );
                if let Some(c) = list["metadata"].get("continue") {
                    tbl["metadata"]["continue"] = c.clone();
                }
                return Ok(ok(&tbl));
            }
            if accept.contains("as=PartialObjectMetadataList") {
                let items: Vec<Value> = list["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(table::partial)
                    .collect();
                return Ok(ok(
                    &serde_json::json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": list["metadata"], "items": items}),
                ));
            }
            Ok(ok(&list))
        }
        (Method::GET, Some(name), "" | "status") => {
            Ok(one(&ops::get(state, info, &ns, name)?, &[], 200))
        }
        (Method::GET, Some(name), "scale") => Ok(ok(&scale::scale_of(
            info,
            &ops::get(state, info, &ns, name)?,
        )?)),
        (Method::GET, Some(name), "log") if info.log => {
            let params = logs::LogParams {
                container: query.get("container").cloned().filter(|c| !c.is_empty()),
                follow: query.get("follow").is_some_and(|f| f == "true"),
                previous: query.get("previous").is_some_and(|f| f == "true"),
                tail_lines: parse_num(query, "tailLines")?,
                limit_bytes: parse_num(query, "limitBytes")?,
            };
            let rx =
                logs::stream(state.clone(), info.clone(), ns, name.to_string(), params).await?;
            Ok(streaming(rx, "text/plain"))
        }
        (Method::POST, None, "") => {
            let (v, w) = ops::create(state, info, &ns, decode_body(&body, content_type)?, &opts)?;
            Ok(one(&v, &w, 201))
        }
        (Method::POST, Some(name), "binding") if info.log => {
            let target = parse_body(&body, false)?;
            let node = target["target"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let (v, _) = ops::modify(state, info, &ns, name, "", &opts, move |pod| {
                if pod["spec"]["nodeName"]
                    .as_str()
                    .is_some_and(|n| !n.is_empty())
                {
                    return Err(ApiError::Conflict(format!(
                        "pod {name} is already assigned to node {}",
                        pod["spec"]["nodeName"]
                    )));
                }
                pod["spec"]["nodeName"] = Value::String(node);
                Ok(())
            })?;
            Ok(json_response(
                201,
                &serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}, "code": 201, "details": {"name": v["metadata"]["name"]}}),
                "application/json",
                &[],
            ))
        }
        (Method::POST, Some(name), "eviction") if info.log => {
            ops::delete(state, info, &ns, name, &DeleteOpts::default())?;
            Ok(json_response(
                201,
                &serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}, "code": 201}),
                "application/json",
                &[],
            ))
        }
        (Method::PUT, Some(name), "scale") => Ok(ok(&scale::write(
            state,
            info,
            &ns,
            name,
            parse_body(&body, false)?,
            None,
            &opts,
        )?)),
        (Method::PUT, Some(name), "" | "status") => {
            let (v, w) = ops::update(
                state,
                info,
                &ns,
                name,
                sub,
                decode_body(&body, content_type)?,
                &opts,
            )?;
            Ok(one(&v, &w, 200))
        }
        (Method::PATCH, Some(name), "" | "status" | "scale") => {
            let kind = match content_type.split(';').next().unwrap_or("").trim() {
                "application/merge-patch+json" => PatchType::Merge,
                "application/strategic-merge-patch+json" => PatchType::Strategic,
                "application/json-patch+json" => PatchType::Json,
                "application/apply-patch+yaml" => PatchType::Apply,
                other => {
                    return Err(ApiError::UnsupportedMediaType(format!(
                        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {other})"
                    )));
                }
            };
            if kind == PatchType::Apply && query.get("fieldManager").is_none_or(|m| m.is_empty()) {
                return Err(ApiError::invalid_field(
                    "PatchOptions.meta.k8s.io",
                    "",
                    "fieldManager",
                    "Required value: is required for apply patch".into(),
                ));
            }
            let patch = parse_body(&body, kind == PatchType::Apply)?;
            if sub == "scale" {
                return Ok(ok(&scale::write(
                    state,
                    info,
                    &ns,
                    name,
                    patch,
                    Some(kind),
                    &opts,
                )?));
            }
            let (v, w) = ops::patch(state, info, &ns, name, sub, kind, patch, &opts)?;
            Ok(one(&v, &w, 200))
        }
        (Method::DELETE, name, "") => {
            let mut d = DeleteOpts {
                grace_period: parse_num(query, "gracePeriodSeconds")?,
                propagation: query.get("propagationPolicy").cloned(),
                dry_run: query.get("dryRun").is_some_and(|d| d == "All"),
                ..Default::default()
            };
            if !body.is_empty() {
                let b = decode_body(&body, content_type)?;
                d.grace_period = b["gracePeriodSeconds"].as_i64().or(d.grace_period);
                d.propagation = b["propagationPolicy"]
                    .as_str()
                    .map(String::from)
                    .or(d.propagation);
                d.uid = b["preconditions"]["uid"].as_str().map(String::from);
                d.resource_version = b["preconditions"]["resourceVersion"]
                    .as_str()
                    .map(String::from);
                d.dry_run |= b["dryRun"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "All"));
                if b["orphanDependents"] == Value::Bool(true) {
                    d.propagation = Some("Orphan".into());
                }
            }
            match name {
                Some(name) => Ok(one(&ops::delete(state, info, &ns, name, &d)?, &[], 200)),
                None => {
                    let (labels, fields) = selectors()?;
                    let list = ops::list(
                        state,
                        info,
                        t.namespace.as_deref(),
                        &ListOpts {
                            labels,
                            fields,
                            ..Default::default()
                        },
                    );
                    let mut deleted = Vec::new();
                    for item in list["items"].as_array().into_iter().flatten() {
                        let iname = item["metadata"]["name"].as_str().unwrap_or_default();
                        let ins = item["metadata"]["namespace"].as_str().unwrap_or_default();
                        if let Ok(v) = ops::delete(state, info, ins, iname, &d) {
                            deleted.push(v);
                        }
                    }
                    let mut out = list;
                    out["items"] = Value::Array(deleted);
                    Ok(ok(&out))
                }
            }
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}
