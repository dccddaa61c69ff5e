//! The verbs, independent of HTTP: get, list, create, update, patch (merge, strategic, JSON,
//! apply) and delete, each one atomic read-modify-write in the store. The HTTP layer, the
//! garbage collector and in-process callers all go through here, so every write gets the same
//! metadata rules, admission (CRD schemas and CEL, pod and namespace defaults) and no-op detection.

use std::sync::Arc;

use serde_json::{Value, json};

use super::apply::{self, Manager};
use super::error::ApiError;
use super::patch::{self, ListKeys};
use super::resources::ResourceInfo;
use super::{State, admission, convert, meta};
use crate::store::Write;
use crate::store::selector::{FieldSelector, LabelSelector};

/// How unknown fields in a write are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and warn (the apiserver's default).
    #[default]
    Warn,
    /// Refuse the write.
    Strict,
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    /// Field manager (`fieldManager`, or the client's program name).
    pub manager: String,
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// Server-side apply `force`.
    pub force: bool,
}

/// A PATCH body's type (its Content-Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/json-patch+json`.
    Json,
    /// `application/apply-patch+yaml`.
    Apply,
}

/// Delete options (`DeleteOptions` body or query).
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// `Background` (default), `Foreground` or `Orphan`.
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// Warnings for the `Warning` response header.
pub type Warnings = Vec<String>;

fn not_found(info: &ResourceInfo, name: &str) -> ApiError {
    ApiError::not_found(info.qualified_resource(), name)
}

/// One object, in the request's version.
///
/// # Errors
/// `404` when it does not exist.
pub fn get(state: &State, info: &ResourceInfo, ns: &str, name: &str) -> Result<Value, ApiError> {
    let obj = state
        .store
        .get(&info.storage, ns, name)
        .ok_or_else(|| not_found(info, name))?;
    Ok(convert::from_storage(info, &obj))
}

/// A list request's filters and paging.
#[derive(Debug, Clone, Default)]
pub struct ListOpts {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0 = all).
    pub limit: usize,
    /// `continue` token: the namespace/name to continue after.
    pub continue_after: Option<(String, String)>,
}

/// A `...List` of the matching objects.
pub fn list(state: &State, info: &ResourceInfo, ns: Option<&str>, opts: &ListOpts) -> Value {
    let (objects, rv) = state.store.list(&info.storage, ns);
    let mut items = Vec::new();
    let mut next = None;
    for obj in objects {
        let v = convert::from_storage(info, &obj);
        let key = (
            meta::meta_str(&v, "namespace")
                .unwrap_or_default()
                .to_string(),
            meta::meta_str(&v, "name").unwrap_or_default().to_string(),
        );
        if opts
            .continue_after
            .as_ref()
            .is_some_and(|after| &key <= after)
        {
            continue;
        }
        if !opts.labels.matches(&v) || !opts.fields.matches(&v) {
            continue;
        }
        if opts.limit > 0 && items.len() == opts.limit {
            next = Some(key);
            break;
        }
        items.push(v);
    }
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some((ns, name)) = next {
        use base64::Engine;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{ns}/{name}"));
        metadata["continue"] = json!(token);
    }
    json!({
        "apiVersion": info.api_version(),
        "kind": format!("{}List", info.kind),
        "metadata": metadata,
        "items": items,
    })
}

/// Decodes a `continue` token.
///
/// # Errors
/// `400` for a token this twin did not issue.
pub fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    use base64::Engine;
    let bad = || ApiError::BadRequest(format!("invalid continue token {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    let (ns, name) = s.split_once('/').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}

/// What a write does to the object it finds (in the request's version).
type Build<'a> = Box<dyn FnOnce(Option<&Value>) -> Result<Value, ApiError> + 'a>;

/// The shared write path. `sub` is `""`, `status` or `scale`; `apply` marks server-side apply
/// (which records ownership itself).
#[allow(clippy::too_many_arguments)]
fn commit(
    state: &State,
    info: &Arc<ResourceInfo>,
    ns: &str,
    name: &str,
    sub: &str,
    opts: &WriteOpts,
    create_ok: bool,
    apply_op: bool,
    build: Build<'_>,
) -> Result<(Value, Warnings), ApiError> {
    let mut warnings = Warnings::new();
    let mut created = false;
    let result = state.store.write(&info.storage, ns, name, |current, _rv| {
        let old = current.map(|c| convert::from_storage(info, c));
        if old.is_none() && !create_ok {
            return Err(not_found(info, name));
        }
        let mut new = build(old.as_ref())?;
        normalize(info, ns, name, &mut new)?;
        match &old {
            Some(old) => {
                if let Some(want) = meta::meta_str(&new, "resourceVersion")
                    && Some(want) != meta::meta_str(old, "resourceVersion")
                {
                    return Err(ApiError::Conflict(format!(
                        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                        info.qualified_resource()
                    )));
                }
                // Status separation first: a status write that also sent spec must not count
                // as a spec change.
                if info.status {
                    meta::separate_status(old, &mut new, sub == "status");
                }
                meta::prepare_update(old, &mut new);
            }
            None => {
                created = true;
                meta::prepare_create(&mut new);
            }
        }
        admission::admit(state, info, old.as_ref(), &mut new, opts, &mut warnings)?;
        if !apply_op {
            let who = Manager {
                name: &opts.manager,
                subresource: sub,
            };
            apply::record_update(old.as_ref(), &mut new, who, ListKeys::new(info.schema.as_ref()));
        }
        if let Some(old) = &old
            && meta::comparable(old) == meta::comparable(&new)
        {
            return Ok(Write::Keep);
        }
        if opts.dry_run {
            return Ok(Write::Keep);
        }
        if meta::meta_str(&new, "deletionTimestamp").is_some() && meta::finalizers(&new).is_empty() {
            return Ok(Write::Delete);
        }
        meta::meta_mut(&mut new).remove("resourceVersion");
        Ok(Write::Put(convert::to_storage(info, &new)))
    })?;
    let obj = result.ok_or_else(|| not_found(info, name))?;
    let out = convert::from_storage(info, &obj);
    admission::after_write(state, info, &out, created);
    Ok((out, warnings))
}

/// Checks and fills `apiVersion`, `kind`, name and namespace against the URL.
fn normalize(info: &ResourceInfo, ns: &str, name: &str, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::BadRequest("the body is not a JSON object".into()));
    }
    let api_version = info.api_version();
    for (field, want) in [
        ("apiVersion", api_version.as_str()),
        ("kind", info.kind.as_str()),
    ] {
        match obj.get(field).and_then(Value::as_str) {
            None | Some("") => obj[field] = json!(want),
            Some(got) if got == want => {}
            Some(got) => {
                return Err(ApiError::BadRequest(format!(
                    "the API version in the data ({got}) does not match the expected API version ({api_version}) or kind ({})",
                    info.kind
                )));
            }
        }
    }
    let meta = meta::meta_mut(obj);
    match meta.get("name").and_then(Value::as_str) {
        Some(n) if n != name => {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        _ => {
            meta.insert("name".into(), json!(name));
        }
    }
    if info.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    Ok(())
}

/// Creates an object (`generateName` honoured).
///
/// # Errors
/// `409 AlreadyExists`, `404` for a missing namespace, `422` from admission.
pub fn create(
    state: &State,
    info: &Arc<ResourceInfo>,
    ns: &str,
    mut body: Value,
    opts: &WriteOpts,
) -> Result<(Value, Warnings), ApiError> {
    let name = match meta::meta_str(&body, "name").filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => match meta::meta_str(&body, "generateName").filter(|n| !n.is_empty()) {
            Some(prefix) => format!("{prefix}{}", meta::name_suffix()),
            None => {
                return Err(ApiError::invalid_field(
                    &info.qualified_kind(),
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required".into(),
                ));
            }
        },
    };
    meta::meta_mut(&mut body).insert("name".into(), json!(name));
    if info.namespaced {
        admission::require_namespace(state, ns)?;
    }
    let resource = info.qualified_resource();
    commit(
        state,
        info,
        ns,
        &name.clone(),
        "",
        opts,
        true,
        false,
        Box::new(move |old| {
            if old.is_some() {
                return Err(ApiError::AlreadyExists { resource, name });
            }
            meta::meta_mut(&mut body).remove("resourceVersion");
            Ok(body)
        }),
    )
}

/// Replaces an object (`PUT`), or its status.
///
/// # Errors
/// `404`, `409 Conflict` on a stale resourceVersion, `422` from admission.
pub fn update(
    state: &State,
    info: &Arc<ResourceInfo>,
    ns: &str,
    name: &str,
    sub: &str,
    body: Value,
    opts: &WriteOpts,
) -> Result<(Value, Warnings), ApiError> {
    commit(
        state,
        info,
        ns,
        name,
        sub,
        opts,
        false,
        false,
        Box::new(|_| Ok(body)),
    )
}

/// Patches an object or its status; an apply patch creates a missing object.
///
/// # Errors
/// `404`, `409` (apply conflicts, stale resourceVersion), `422`.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    state: &State,
    info: &Arc<ResourceInfo>,
    ns: &str,
    name: &str,
    sub: &str,
    kind: PatchType,
    body: Value,
    opts: &WriteOpts,
) -> Result<(Value, Warnings), ApiError> {
    let keys = ListKeys::new(info.schema.as_ref());
    let apply_op = kind == PatchType::Apply;
    if apply_op && info.namespaced {
        admission::require_namespace(state, ns)?;
    }
    let who = Manager {
        name: &opts.manager,
        subresource: sub,
    };
    let force = opts.force;
    commit(
        state,
        info,
        ns,
        name,
        sub,
        opts,
        apply_op,
        apply_op,
        Box::new(move |old| {
            let mut target = old.cloned().unwrap_or_else(|| json!({}));
            match kind {
                PatchType::Merge => patch::merge(&mut target, &body),
                PatchType::Strategic => patch::strategic(&mut target, &body, keys),
                PatchType::Json => patch::json_patch(&mut target, &body)?,
                PatchType::Apply => {
                    let mut applied = body;
                    if !applied.is_object() {
                        return Err(ApiError::BadRequest(
                            "the apply patch is not an object".into(),
                        ));
                    }
                    let m = meta::meta_mut(&mut applied);
                    m.remove("resourceVersion");
                    m.remove("managedFields");
                    target = apply::apply(old, &applied, who, force, keys)?;
                }
            }
            Ok(target)
        }),
    )
}

/// Deletes an object: at once, or by marking it (`deletionTimestamp`) while finalizers remain or
/// a scheduled pod's kubelet has yet to stop it within its grace period.
///
/// # Errors
/// `404`, `409` on failed preconditions.
pub fn delete(
    state: &State,
    info: &Arc<ResourceInfo>,
    ns: &str,
    name: &str,
    opts: &DeleteOpts,
) -> Result<Value, ApiError> {
    let result = state.store.write(&info.storage, ns, name, |current, _| {
        let Some(cur) = current else {
            return Err(not_found(info, name));
        };
        if let Some(uid) = &opts.uid
            && meta::uid_of(cur) != Some(uid.as_str())
        {
            return Err(ApiError::Conflict(format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta::uid_of(cur).unwrap_or_default()
            )));
        }
        if let Some(rv) = &opts.resource_version
            && meta::meta_str(cur, "resourceVersion") != Some(rv.as_str())
        {
            return Err(ApiError::Conflict(format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta::meta_str(cur, "resourceVersion").unwrap_or_default()
            )));
        }
        let mut obj = cur.clone();
        let mut finalizers = meta::finalizers(&obj);
        match opts.propagation.as_deref() {
            Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                finalizers.push("foregroundDeletion".into());
            }
            // The collector strips the dependents' references, then removes the finalizer.
            Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => {
                finalizers.push("orphan".into());
            }
            _ => {}
        }
        let terminating = meta::meta_str(cur, "deletionTimestamp").is_some();
        let grace = admission::grace_period(info, cur, opts.grace_period);
        // Namespaces are emptied by the garbage collector before they go (their `kubernetes`
        // finalizer in a real cluster).
        let namespace = info.group.is_empty() && info.resource == "namespaces";
        if opts.dry_run {
            return Ok(Write::Keep);
        }
        if !finalizers.is_empty() || grace > 0 || namespace {
            if terminating && grace == 0 && finalizers.is_empty() && !namespace {
                return Ok(Write::Delete);
            }
            if terminating && finalizers == meta::finalizers(cur) {
                return Ok(Write::Keep);
            }
            let m = meta::meta_mut(&mut obj);
            if !terminating {
                let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
                m.insert(
                    "deletionTimestamp".into(),
                    json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                );
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            m.insert("finalizers".into(), json!(finalizers));
            if finalizers.is_empty() {
                m.remove("finalizers");
            }
            if info.resource == "namespaces" {
                obj["status"]["phase"] = json!("Terminating");
            }
            return Ok(Write::Put(obj));
        }
        Ok(Write::Delete)
    })?;
    let obj = result.ok_or_else(|| not_found(info, name))?;
    let out = convert::from_storage(info, &obj);
    admission::after_delete(state, info, &out);
    Ok(out)
}

/// Changes an object in place under the store's lock (scale writes, controllers).
///
/// # Errors
/// `404`, or what `change` or admission refuse.
pub fn modify(
    state: &State,
    info: &Arc<ResourceInfo>,
    ns: &str,
    name: &str,
    sub: &str,
    opts: &WriteOpts,
    change: impl FnOnce(&mut Value) -> Result<(), ApiError>,
) -> Result<(Value, Warnings), ApiError> {
    commit(
        state,
        info,
        ns,
        name,
        sub,
        opts,
        false,
        false,
        Box::new(move |old| {
            let mut obj = old.cloned().unwrap_or_else(|| json!({}));
            change(&mut obj)?;
            Ok(obj)
        }),
    )
}
