//! Spec and status pieces shared by every managed kind.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Points at the IdentityApi (in the same namespace) that this resource is reconciled against.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ApiRef {
    /// Name of the IdentityApi in the resource's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key of a Secret in the resource's namespace.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as the resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

impl std::fmt::Display for SecretKeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.name, self.key)
    }
}

/// Whether the operator may write to the identity system.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ManagementPolicy {
    /// Create, update and delete the remote object so that it matches the spec.
    #[default]
    Apply,
    /// Only read the remote object and report differences in `status.drift`; never write.
    Observe,
}

/// What happens to the remote object when this resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the remote object.
    Delete,
    /// Leave the remote object in place.
    Orphan,
}

/// Fields every managed kind has in its spec.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonSpec {
    /// The IdentityApi (connection) this resource is reconciled against. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("apiRef is immutable"))]
    pub api_ref: ApiRef,
    /// `Apply` (default) makes the remote object match the spec; `Observe` only reports drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_policy: Option<ManagementPolicy>,
    /// `Delete` or `Orphan`. When unset: `Delete` for objects the operator created, `Orphan` for
    /// objects it adopted (found by id or by name) — it never destroys what it did not make
    /// unless told to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

impl CommonSpec {
    pub fn management_policy(&self) -> ManagementPolicy {
        self.management_policy.unwrap_or_default()
    }
}

/// A status condition in the usual Kubernetes shape.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready` or `Synced`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable CamelCase reason.
    pub reason: String,
    /// Human-readable explanation (never empty: Kubernetes 1.20's server-side apply turns an
    /// empty string into null).
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The `metadata.generation` this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Status of every managed kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedStatus {
    /// `Ready` (the remote object exists and matches the spec) and `Synced` (the last
    /// reconcile succeeded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The remote object's identity (for example a backend id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// True when the operator created the remote object (then the default deletion policy is
    /// Delete); false when it adopted an existing one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
    /// When the operator last wrote the remote object (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// `resourceVersion` of every referenced Secret at the time its value was last sent,
    /// keyed `secretName/key`. Never secret material.
    // Atomic: Kubernetes 1.20's server-side apply turned a granular map whose last key the
    // operator let go (a Secret reference taken out of the spec) into `null`, which the schema
    // refuses: the status write failed until the reference came back.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-map-type" = "atomic"))]
    pub applied_secret_versions: BTreeMap<String, String>,
    /// Field paths where the remote object differs from the spec (reported under `Observe`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// A short summary of the remote object (for example a connection's name and strategy).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-map-type" = "atomic"))]
    pub remote: BTreeMap<String, String>,
    /// Set while a terminal error (the identity API rejected the spec) holds for this
    /// generation and these Secret versions; the operator does not retry until they change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempt: Option<String>,
    /// Spec fields (paths such as `definedSettings.pageSize`) the remote object was made to
    /// match at the last sync. A field taken out of the spec since is cleared remotely where the
    /// API allows it, and otherwise reported in the `FieldsKept` condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_fields: Vec<String>,
}

impl ManagedStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// Schema for a list of free-form JSON objects passed through to the identity API as they are.
pub fn free_form_object_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    })
}

/// Schema for a free-form JSON object passed through to the identity API as it is.
pub fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

// ---------------------------------------------------------------------------------------------
// Fields removed from a spec
// ---------------------------------------------------------------------------------------------

/// The condition that lists fields taken out of the spec which the identity API cannot clear:
/// they keep their remote value, and the operator says so instead of keeping them silently.
pub const FIELDS_KEPT: &str = "FieldsKept";

/// The paths of `candidates` (dotted, in the spec's names: `definedSettings.pageSize`) that
/// `spec` sets to something other than null.
pub fn stated_fields(spec: &Value, candidates: &[&str]) -> Vec<String> {
    candidates
        .iter()
        .filter(|path| {
            path.split('.')
                .try_fold(spec, |v, key| v.get(key))
                .is_some_and(|v| !v.is_null())
        })
        .map(|path| path.to_string())
        .collect()
}

/// Whether `path` lies below `parent` (`definedSettings.port` below `definedSettings`,
/// `openIdConnections[1001].liveSyncOn` below `openIdConnections[1001]`).
fn below(path: &str, parent: &str) -> bool {
    path.strip_prefix(parent)
        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// The fields applied at the last sync that `stated` (what the spec sets now) lacks, leaving
/// out those below a removed field: clearing the parent clears them.
pub fn removed_fields(status: Option<&ManagedStatus>, stated: &[String]) -> Vec<String> {
    let applied = status.map_or(&[][..], |s| s.applied_fields.as_slice());
    let gone: Vec<&String> = applied.iter().filter(|f| !stated.contains(f)).collect();
    gone.iter()
        .filter(|f| !gone.iter().any(|parent| below(f, parent)))
        .map(|f| f.to_string())
        .collect()
}

/// The empty value a removed field is cleared to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Blank {
    Null,
    Bool(bool),
    Int(i64),
    Str(&'static str),
    List,
    Object,
}

impl Blank {
    pub fn value(self) -> Value {
        match self {
            Blank::Null => Value::Null,
            Blank::Bool(b) => Value::Bool(b),
            Blank::Int(i) => Value::from(i),
            Blank::Str(s) => Value::from(s),
            Blank::List => Value::Array(Vec::new()),
            Blank::Object => Value::Object(serde_json::Map::new()),
        }
    }
}

/// How a field taken out of the spec is cleared remotely (docs/vendor-choices.md, per kind).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clear {
    /// Written as this value; cleared once the remote object holds it, or nothing.
    To(Blank),
    /// Written as this value, which the API never shows (a password): written once.
    Blind(Blank),
    /// Left out of a write that replaces the whole object, which resets it: cleared once the
    /// remote object shows no value (a server default it fills in is written over once).
    Omit,
    /// The API cannot clear it: it keeps its value, and the [`FIELDS_KEPT`] condition says so
    /// while the remote object shows one (always, when the API does not show it).
    Keep { why: &'static str, observable: bool },
}

/// A spec field that may be taken out of the spec: its path in the spec, its dotted path in
/// the vendor's object, and how it is cleared.
#[derive(Debug, PartialEq)]
pub struct Removable {
    pub spec: &'static str,
    pub wire: &'static str,
    pub clear: Clear,
}

impl Removable {
    pub const fn new(spec: &'static str, wire: &'static str, clear: Clear) -> Removable {
        Removable { spec, wire, clear }
    }

    /// A field the spec and the vendor name alike.
    pub const fn same(name: &'static str, clear: Clear) -> Removable {
        Removable::new(name, name, clear)
    }

    /// The remote value, null counting as none.
    fn remote<'v>(&self, observed: &'v Value) -> Option<&'v Value> {
        self.wire
            .split('.')
            .try_fold(observed, |v, key| v.get(key))
            .filter(|v| !v.is_null())
    }

    /// Whether the remote object still holds what removing the field should clear.
    pub fn pending(&self, observed: &Value) -> bool {
        let remote = self.remote(observed);
        match self.clear {
            Clear::To(blank) => remote.is_some_and(|v| *v != blank.value()),
            Clear::Blind(_) => true,
            Clear::Omit => remote.is_some(),
            Clear::Keep { .. } => false,
        }
    }

    /// The report of a field the API cannot clear, while it keeps a value.
    fn kept(&self, observed: &Value) -> Option<Kept> {
        let Clear::Keep { why, observable } = self.clear else {
            return None;
        };
        let set = |v: &Value| !matches!(v, Value::Bool(false)) && v.as_str() != Some("");
        (!observable || self.remote(observed).is_some_and(set)).then(|| Kept {
            path: self.spec.to_owned(),
            why: why.to_owned(),
        })
    }
}

/// The entries of `table` for the `removed` spec paths.
pub fn removals(table: &'static [Removable], removed: &[String]) -> Vec<&'static Removable> {
    table
        .iter()
        .filter(|r| removed.iter().any(|path| path == r.spec))
        .collect()
}

/// The removed fields the remote object still holds and a write will clear, as spec paths.
pub fn removed_drift(removals: &[&Removable], observed: &Value) -> Vec<String> {
    removals
        .iter()
        .filter(|r| r.pending(observed))
        .map(|r| format!("spec.{}", r.spec))
        .collect()
}

/// The removed fields the API keeps, as reports.
pub fn kept_fields(removals: &[&Removable], observed: &Value) -> Vec<Kept> {
    removals.iter().filter_map(|r| r.kept(observed)).collect()
}

/// A removed field the identity API cannot clear, with what the user should know about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    pub path: String,
    pub why: String,
}

/// After a sync: `stated` is what the remote object now matches. Removed fields the API cannot
/// clear stay listed (so they are reported again at the next sync, until the spec states them
/// again or the remote value is gone) and are named in the [`FIELDS_KEPT`] condition.
pub fn record_applied(
    status: &mut ManagedStatus,
    mut stated: Vec<String>,
    kept: &[Kept],
    generation: Option<i64>,
) {
    stated.extend(kept.iter().map(|k| k.path.clone()));
    status.applied_fields = stated;
    if kept.is_empty() {
        status.conditions.retain(|c| c.type_ != FIELDS_KEPT);
        return;
    }
    let list: Vec<String> = kept
        .iter()
        .map(|k| format!("spec.{} ({})", k.path, k.why))
        .collect();
    crate::engine::status::set_condition(
        &mut status.conditions,
        FIELDS_KEPT,
        true,
        "CannotClear",
        format!(
            "removed from the spec but kept by the identity API, which cannot clear them: {}",
            list.join("; ")
        ),
        generation,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stated_fields_are_the_set_candidates() {
        let spec = json!({"enabled": true, "definedSettings": {"port": 636, "ssl": null}});
        assert_eq!(
            stated_fields(
                &spec,
                &[
                    "enabled",
                    "settingsSource",
                    "definedSettings",
                    "definedSettings.port",
                    "definedSettings.ssl"
                ]
            ),
            vec!["enabled", "definedSettings", "definedSettings.port"]
        );
    }

    #[test]
    fn removed_fields_leave_out_children_of_removed_parents() {
        let status = ManagedStatus {
            applied_fields: ["a", "b", "b.x", "c[1]", "c[1].y", "cc"]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        };
        let stated = ["a".to_owned()];
        assert_eq!(
            removed_fields(Some(&status), &stated),
            vec!["b", "c[1]", "cc"]
        );
        assert!(removed_fields(None, &stated).is_empty());
    }

    const TABLE: &[Removable] = &[
        Removable {
            spec: "name",
            wire: "organization_connection_name",
            clear: Clear::To(Blank::Null),
        },
        Removable {
            spec: "button",
            wire: "show_as_button",
            clear: Clear::To(Blank::Bool(true)),
        },
        Removable {
            spec: "passwordRef",
            wire: "defined.password",
            clear: Clear::Blind(Blank::Null),
        },
        Removable {
            spec: "pageSize",
            wire: "defined.pageSize",
            clear: Clear::Omit,
        },
        Removable {
            spec: "isDefault",
            wire: "is_default",
            clear: Clear::Keep {
                why: "one default",
                observable: true,
            },
        },
        Removable {
            spec: "secret",
            wire: "defined.secret",
            clear: Clear::Keep {
                why: "never shown",
                observable: false,
            },
        },
    ];

    #[test]
    fn removed_fields_are_pending_until_the_remote_object_holds_their_blank() {
        let all: Vec<String> = TABLE.iter().map(|r| r.spec.to_owned()).collect();
        let removed = removals(TABLE, &all);
        let set = json!({"organization_connection_name": "x", "show_as_button": false,
            "is_default": true, "defined": {"pageSize": 200}});
        assert_eq!(
            removed_drift(&removed, &set),
            vec![
                "spec.name",
                "spec.button",
                "spec.passwordRef",
                "spec.pageSize"
            ]
        );
        let kept: Vec<String> = kept_fields(&removed, &set)
            .into_iter()
            .map(|k| k.path)
            .collect();
        assert_eq!(kept, vec!["isDefault", "secret"]);
        let cleared =
            json!({"show_as_button": true, "is_default": false, "defined": {"pageSize": null}});
        // A password cannot be read back: it is written once, whatever the answer shows.
        assert_eq!(removed_drift(&removed, &cleared), vec!["spec.passwordRef"]);
        let kept: Vec<String> = kept_fields(&removed, &cleared)
            .into_iter()
            .map(|k| k.path)
            .collect();
        assert_eq!(kept, vec!["secret"]);
    }

    #[test]
    fn kept_fields_stay_applied_and_are_reported_until_none_is_left() {
        let mut status = ManagedStatus::default();
        let kept = [Kept {
            path: "isDefault".into(),
            why: "Boruta keeps one default backend".into(),
        }];
        record_applied(&mut status, vec!["name".into()], &kept, Some(3));
        assert_eq!(status.applied_fields, vec!["name", "isDefault"]);
        let c = status.condition(FIELDS_KEPT).expect("reported");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "CannotClear")
        );
        assert!(
            c.message
                .contains("spec.isDefault (Boruta keeps one default backend)")
        );
        record_applied(&mut status, vec!["name".into()], &[], Some(4));
        assert_eq!(status.applied_fields, vec!["name"]);
        assert!(status.condition(FIELDS_KEPT).is_none());
    }
}
