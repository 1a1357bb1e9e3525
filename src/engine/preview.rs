//! The reconcile's decision explained instead of carried out: `plan` asks, for one resource,
//! what the reconcile would do now. The answer comes from the reconcile's own steps
//! (dereference, observe, [`decide`](super::decide::decide)), stopped before any write: the
//! only identity-API calls are reads (and logins), and nothing is written to the cluster.

use kube::Resource;
use serde::Serialize;
use serde_json::Value;

use super::cleanup::{deletion_facts, find_unlinked};
use super::conditions::{ConditionType, Reason};
use super::decide::{self, Blocked, Deletion, OrphanBecause, Step, Write};
use super::diff::snake_case;
use super::finalizer::is_paused;
use super::key::kind_of;
use super::reconcile::{Found, blocked_message, gather};
use super::secrets;
use super::spec::{HasConditions, ManagedStatus, SecretKeyRef};
use super::{Adapter, Context, Error, Managed, ObjectKey};

/// What the operator would do with one resource.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Create the remote object.
    Create,
    /// Link an existing remote object (found by id or name), writing what differs.
    Adopt,
    /// Write what differs on the linked remote object.
    Update,
    /// The resource is being deleted: its deletion policy's effect.
    Delete,
    /// Nothing to write.
    Noop,
    /// `Observe`: the drift it reports; never a write.
    Observe,
    /// Nothing can be done until something changes (the reason says what).
    Blocked,
}

/// One field that would change, by its path in the CRD (`spec.definedSettings.port`).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Change {
    pub path: String,
    pub before: Value,
    pub after: Value,
    /// A write-only value (password, shared secret): never shown; `before` and `after` are
    /// `"(sensitive)"` and `state` says what is known of it.
    pub sensitive: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// A write-only field of a resource: where the spec sets it, the Secret key it comes from,
/// and, when the identity API returns the value, whether the remote one differs (compared,
/// never shown).
#[derive(Clone, Debug, PartialEq)]
pub struct WriteOnly {
    pub path: String,
    pub secret: SecretKeyRef,
    pub differs: Option<bool>,
}

/// What the reconcile would do with one resource, and why.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    pub changes: Vec<Change>,
    /// The condition reason of a blocked resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub message: String,
    /// Whether carrying it out writes to the identity API.
    #[serde(skip)]
    pub writes: bool,
}

impl Preview {
    fn new(action: Action, message: impl Into<String>) -> Self {
        Self {
            action,
            remote_id: None,
            changes: Vec::new(),
            reason: None,
            message: message.into(),
            writes: false,
        }
    }

    pub fn blocked(reason: &str, message: impl Into<String>) -> Self {
        Self {
            reason: Some(reason.to_owned()),
            ..Self::new(Action::Blocked, message)
        }
    }
}

/// What the reconcile would do with `res` now.
pub async fn preview<A: Adapter>(res: &A::Resource, ctx: &Context) -> Preview {
    let kind = kind_of::<A::Resource>();
    let key = ObjectKey::of(kind, res);
    if res.meta().deletion_timestamp.is_some() {
        return deletion::<A>(res, ctx, &key).await;
    }
    if is_paused(res) {
        let msg = "paused: the identity.operator.dev/paused annotation stops all writes";
        return Preview::new(Action::Noop, msg);
    }
    let mut status = res.managed_status().cloned().unwrap_or_default();
    match gather::<A>(res, ctx, &key, &mut status).await {
        Err(err) => Preview::blocked(err.reason().as_str(), err.to_string()),
        // A failure recorded for exactly this spec, these Secrets (and remote state) holds.
        Ok(None) => match status.condition(ConditionType::Synced) {
            Some(c) => Preview::blocked(&c.reason, c.message.clone()),
            None => Preview::blocked(Reason::Rejected.as_str(), "a recorded failure holds"),
        },
        Ok(Some(found)) => {
            let step = decide::decide(&found.facts(ctx, &key, &status));
            let fields = match write_only_of::<A>(res, ctx, &found).await {
                Ok(fields) => fields,
                // A key not filled in yet (`export`'s stubs) blocks a write, as in the
                // reconcile, and nothing else: its remote value is then unknown.
                Err(Error::SecretKeyEmpty { .. }) if !writes(&step) => {
                    write_only_fields(res, found.input.refs.clone())
                }
                Err(err) => return Preview::blocked(err.reason().as_str(), err.to_string()),
            };
            describe::<A>(kind, res, &found, &status, fields, step)
        }
    }
}

/// Whether carrying out `step` writes (and so reads the Secrets' values).
fn writes(step: &Step) -> bool {
    match step {
        Step::Create { .. } => true,
        Step::Sync { write, .. } => !write.is_nothing(),
        Step::Observe { .. } | Step::Blocked(_) => false,
    }
}

/// The write-only fields of `res`, compared with the remote ones where the API returns them.
/// The Secret values are read for that and dropped at once, as a write does.
async fn write_only_of<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    found: &Found<'_, A>,
) -> Result<Vec<WriteOnly>, Error> {
    let refs = &found.input.refs;
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let ns = res.meta().namespace.clone().unwrap_or_default();
    let values = secrets::read(&*ctx.reader, &ns, refs).await?;
    A::write_only(&found.client, res, found.observed.as_ref(), &values).await
}

/// One [`WriteOnly`] per Secret key in `refs`, at its path in the spec of `res`, with the
/// remote value unknown.
pub fn write_only_fields<R: Serialize>(res: &R, refs: Vec<SecretKeyRef>) -> Vec<WriteOnly> {
    let spec = serde_json::to_value(res).unwrap_or_default()["spec"].take();
    refs.into_iter()
        .map(|secret| {
            let wanted = serde_json::to_value(&secret).unwrap_or_default();
            let path = path_of(&spec, &wanted)
                .map(|p| format!("spec{p}"))
                .unwrap_or_else(|| format!("Secret {secret}"));
            WriteOnly {
                path,
                secret,
                differs: None,
            }
        })
        .collect()
}

/// The dotted path of the first value in `json` equal to `wanted`.
fn path_of(json: &Value, wanted: &Value) -> Option<String> {
    if json == wanted {
        return Some(String::new());
    }
    match json {
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| path_of(v, wanted).map(|p| format!(".{k}{p}"))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| path_of(v, wanted).map(|p| format!("[{i}]{p}"))),
        _ => None,
    }
}

async fn deletion<A: Adapter>(res: &A::Resource, ctx: &Context, key: &ObjectKey) -> Preview {
    let kind = kind_of::<A::Resource>();
    let (message, writes, id) = match decide::decide_deletion(&deletion_facts::<A>(res)) {
        Deletion::Release => ("nothing remote is linked".to_owned(), false, None),
        Deletion::Delete { id } => (format!("deletes the remote {kind} {id}"), true, Some(id)),
        // The create's answer was lost: the remote object is looked up by its natural key.
        Deletion::DeleteUnlinked => match find_unlinked::<A>(res, ctx, key).await {
            Ok(Some(id)) => (
                format!("deletes the remote {kind} {id} it created (its id was never recorded)"),
                true,
                Some(id),
            ),
            Ok(None) => (
                format!("no remote {kind} it may have created exists"),
                false,
                None,
            ),
            Err(err) => return Preview::blocked(err.reason().as_str(), err.to_string()),
        },
        Deletion::Orphan { id, why } => {
            let why = match why {
                OrphanBecause::Policy => "deletionPolicy Orphan",
                OrphanBecause::Paused => "the resource is paused",
            };
            (
                format!("leaves the remote {kind} {id} in place ({why})"),
                false,
                Some(id),
            )
        }
    };
    Preview {
        remote_id: id,
        writes,
        ..Preview::new(Action::Delete, message)
    }
}

/// The preview of `step`, with the changes it makes (or the drift it reports) field by field.
fn describe<A: Adapter>(
    kind: &str,
    res: &A::Resource,
    found: &Found<'_, A>,
    status: &ManagedStatus,
    fields: Vec<WriteOnly>,
    step: Step,
) -> Preview {
    let compared = Compared::of(res, found);
    let write_only = |sending| write_only(fields, found, status, sending);
    match step {
        Step::Create { again } => creation(kind, again, &compared, write_only(true)),
        Step::Sync { adopt, write } => {
            let write_only = write_only(!write.is_nothing());
            sync(adopt, &write, compared, write_only)
        }
        Step::Observe { drift } => observation(&drift, compared),
        Step::Blocked(blocked) => blocked_by(kind, &blocked, compared),
    }
}

/// A resource and its remote object as JSON, for showing the fields that differ: the spec, the
/// remote object it wants and the one observed (both as the vendor names their fields).
struct Compared {
    spec: Value,
    view: Value,
    remote: Value,
    remote_id: Option<String>,
}

impl Compared {
    fn of<A: Adapter>(res: &A::Resource, found: &Found<'_, A>) -> Self {
        let observed = found.observed.as_ref();
        Self {
            spec: serde_json::to_value(res).unwrap_or_default()["spec"].take(),
            view: serde_json::to_value(&found.input.view).unwrap_or_default(),
            remote: observed
                .map(|o| serde_json::to_value(&o.remote).unwrap_or_default())
                .unwrap_or_default(),
            remote_id: observed.map(|o| o.id.clone()),
        }
    }

    fn changes(&self, drift: &[String]) -> Vec<Change> {
        drift_changes(drift, &self.view, &self.remote, &self.spec)
    }
}

fn creation(kind: &str, again: bool, compared: &Compared, write_only: Vec<Change>) -> Preview {
    let mut changes = spec_fields(&compared.spec);
    changes.extend(write_only);
    let again = if again {
        " again: the one it was linked to is gone"
    } else {
        ""
    };
    Preview {
        changes,
        writes: true,
        ..Preview::new(Action::Create, format!("creates a remote {kind}{again}"))
    }
}

fn sync(adopt: bool, write: &Write, compared: Compared, write_only: Vec<Change>) -> Preview {
    let mut changes = match write {
        Write::Fields { drift, .. } => compared.changes(drift),
        Write::Nothing => Vec::new(),
    };
    changes.extend(write_only);
    let (action, message) = match (adopt, write) {
        (true, Write::Nothing) => (Action::Adopt, "links the existing remote object"),
        (true, _) => (Action::Adopt, "links the existing remote object and writes"),
        (false, Write::Nothing) => (Action::Noop, "the remote object matches"),
        (false, _) => (Action::Update, "writes what differs"),
    };
    let message = match write {
        Write::Nothing => message.to_owned(),
        fields => format!("{message}: {}", fields.describe()),
    };
    Preview {
        remote_id: compared.remote_id,
        changes,
        writes: !write.is_nothing(),
        ..Preview::new(action, message)
    }
}

fn observation(drift: &[String], compared: Compared) -> Preview {
    let message = if drift.is_empty() {
        "Observe: the remote object matches".to_owned()
    } else {
        format!(
            "Observe: drift reported, nothing written: {}",
            drift.join(", ")
        )
    };
    Preview {
        changes: compared.changes(drift),
        remote_id: compared.remote_id,
        ..Preview::new(Action::Observe, message)
    }
}

fn blocked_by(kind: &str, blocked: &Blocked, compared: Compared) -> Preview {
    let drift = match blocked {
        Blocked::WriteNotConverging { drift } => drift.as_slice(),
        _ => &[],
    };
    let (reason, message) = blocked_message(kind, blocked);
    Preview {
        changes: compared.changes(drift),
        remote_id: compared.remote_id,
        ..Preview::blocked(reason.as_str(), message)
    }
}

/// The write-only fields of `res` with what is known of them; those sent (`sending`, and
/// their Secret changed since last sent, or never sent) or known to differ.
fn write_only<A: Adapter>(
    fields: Vec<WriteOnly>,
    found: &Found<'_, A>,
    status: &ManagedStatus,
    sending: bool,
) -> Vec<Change> {
    fields
        .into_iter()
        .filter_map(|w| {
            let key = format!("{}/{}", w.secret.name, w.secret.key);
            let changed_secret =
                found.input.versions.get(&key) != status.applied_secret_versions.get(&key);
            let sent = sending && (changed_secret || found.observed.is_none());
            if !sent && w.differs != Some(true) {
                return None;
            }
            let known = match w.differs {
                Some(true) => "changed",
                Some(false) => "unchanged",
                None => "unknown",
            };
            let send = if sent { "will be sent" } else { "not sent" };
            Some(Change {
                path: w.path,
                before: "(sensitive)".into(),
                after: "(sensitive)".into(),
                sensitive: true,
                state: Some(format!("{known}; {send}")),
            })
        })
        .collect()
}

/// The spec's own fields (not `apiRef` or the policies) as additions, by path.
fn spec_fields(spec: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    if let Value::Object(map) = spec {
        for (k, v) in map {
            if matches!(k.as_str(), "apiRef" | "managementPolicy" | "deletionPolicy") {
                continue;
            }
            if k.ends_with("SecretRef") || v.is_null() {
                continue;
            }
            out.push(Change {
                path: format!("spec.{k}"),
                before: Value::Null,
                after: v.clone(),
                sensitive: false,
                state: None,
            });
        }
    }
    out
}

/// The drift paths with their values: `before` from the remote object, `after` from the
/// desired one (both as the vendor names them), else from the spec.
fn drift_changes(drift: &[String], view: &Value, remote: &Value, spec: &Value) -> Vec<Change> {
    drift
        .iter()
        .map(|path| {
            let field = path.strip_prefix("spec.").unwrap_or(path);
            let after = lookup(view, field)
                .or_else(|| lookup(spec, field))
                .cloned()
                .unwrap_or_default();
            let before = lookup(remote, field).cloned().unwrap_or_default();
            Change {
                path: path.clone(),
                before,
                after,
                sensitive: false,
                state: None,
            }
        })
        .collect()
}

/// The value at a dotted CRD path in a vendor's JSON, which names fields either as the CRD
/// does (camelCase) or in snake_case.
fn lookup<'v>(json: &'v Value, path: &str) -> Option<&'v Value> {
    fn walk(json: &Value, mut names: impl Iterator<Item = String>) -> Option<&Value> {
        names.try_fold(json, |v, name| v.get(name.as_str()))
    }
    walk(json, path.split('.').map(str::to_owned))
        .or_else(|| walk(json, path.split('.').map(snake_case)))
        .filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drift_values_come_from_either_naming() {
        let view = json!({"ldap_host": "b", "definedSettings": {"port": 636}});
        let remote = json!({"ldap_host": "a", "definedSettings": {"port": 389}});
        let spec = json!({"ldapHost": "b", "name": "n"});
        let paths = [
            "spec.ldapHost".to_owned(),
            "spec.definedSettings.port".to_owned(),
        ];
        let changes = drift_changes(&paths, &view, &remote, &spec);
        let pairs: Vec<_> = changes.iter().map(|c| (&c.before, &c.after)).collect();
        assert_eq!(
            pairs,
            vec![(&json!("a"), &json!("b")), (&json!(389), &json!(636))]
        );
    }

    #[test]
    fn a_field_cleared_in_the_spec_shows_as_removed() {
        let remote = json!({"organization_connection_name": "old"});
        let paths = ["spec.organizationConnectionName".to_owned()];
        let changes = drift_changes(&paths, &json!({}), &remote, &json!({}));
        assert_eq!(changes[0].before, json!("old"));
        assert_eq!(changes[0].after, Value::Null);
    }

    #[test]
    fn a_write_only_field_is_named_by_its_path_in_the_spec() {
        let spec = json!({"definedSettings": {"port": 636,
            "passwordSecretRef": {"name": "bind", "key": "password"}}});
        let wanted = json!({"name": "bind", "key": "password"});
        assert_eq!(
            path_of(&spec, &wanted).as_deref(),
            Some(".definedSettings.passwordSecretRef")
        );
        assert_eq!(path_of(&spec, &json!({"name": "other"})), None);
    }

    #[test]
    fn creation_lists_the_spec_without_references_and_policies() {
        let spec = json!({"apiRef": {"name": "a"}, "managementPolicy": "Apply", "name": "n",
            "smtpPasswordSecretRef": {"name": "s", "key": "k"}, "roles": [{"id": "r"}]});
        let paths: Vec<_> = spec_fields(&spec).into_iter().map(|c| c.path).collect();
        assert_eq!(paths, vec!["spec.name", "spec.roles"]);
    }
}
