//! What `export` asks of a kind: every remote object its identity API holds, each drafted as
//! the spec that manages it as it is, and checked by the kind's own comparison before it is
//! offered. The command (`crate::export`) names, writes and prints the manifests.

use serde_json::Value;

use super::adapter::{Adapter, Observed};

/// A remote object as `export` found it: its id, and the spec that manages it, or why none
/// can.
pub struct Listed<R> {
    pub observed: Observed<R>,
    pub draft: Result<Draft, String>,
}

/// A remote object as `export` offers it, whatever its kind: its id and its checked draft.
pub struct Exported {
    pub id: String,
    pub draft: Result<Draft, String>,
}

/// The spec drafted from a remote object.
#[derive(Clone, Debug)]
pub struct Draft {
    /// The remote object's own name (or what stands for it): the resource's name comes from it.
    pub name: String,
    /// The remote object in a few words, for the comment above its manifest.
    pub label: String,
    /// The kind's own spec fields (the common ones are the command's), each only where the
    /// remote value differs from what leaving the field out gives.
    pub spec: Value,
    /// Where the spec names a key of the Secret `export` makes for the resource.
    pub secret_refs: Vec<SecretSlot>,
    /// What that Secret holds as emitted: write-only values stay empty, to be filled in.
    pub stub: Vec<StubKey>,
}

/// A place in the spec (a JSON pointer) where a reference to the resource's Secret goes:
/// `{name, key}`, or `{name}` alone when `key` is `None` (a Secret the operator writes).
#[derive(Clone, Debug)]
pub struct SecretSlot {
    pub pointer: String,
    pub key: Option<String>,
}

/// A key of the emitted Secret: its value (empty for a write-only value, which is never
/// copied) and what to fill in.
#[derive(Clone, Debug)]
pub struct StubKey {
    pub key: String,
    pub value: String,
    pub what: String,
}

impl Draft {
    pub fn new(name: impl Into<String>, label: impl Into<String>, spec: Value) -> Self {
        Draft {
            name: name.into(),
            label: label.into(),
            spec,
            secret_refs: Vec::new(),
            stub: Vec::new(),
        }
    }

    /// A write-only value: the spec refers to `key` of the resource's Secret at `pointer`, and
    /// the Secret is emitted with the key empty.
    pub fn write_only(mut self, pointer: impl Into<String>, key: &str, what: &str) -> Self {
        self.secret_refs.push(SecretSlot {
            pointer: pointer.into(),
            key: Some(key.to_owned()),
        });
        self.stub.push(StubKey {
            key: key.to_owned(),
            value: String::new(),
            what: what.to_owned(),
        });
        self
    }

    /// Points the references at Secret `name`.
    pub fn refer_to(&mut self, name: &str) {
        for slot in &self.secret_refs {
            let reference = match &slot.key {
                Some(key) => serde_json::json!({"name": name, "key": key}),
                None => serde_json::json!({"name": name}),
            };
            let (parent, field) = slot.pointer.rsplit_once('/').unwrap_or(("", &slot.pointer));
            if let Some(Value::Object(parent)) = self.spec.pointer_mut(parent) {
                parent.insert(field.to_owned(), reference);
            }
        }
    }
}

/// The manifest `draft` stands for, with placeholder names: what the round-trip check reads.
fn manifest<A: Adapter>(draft: &Draft) -> Value {
    use kube::Resource;
    let mut draft = draft.clone();
    draft.refer_to("export-check");
    let mut spec = draft.spec;
    spec["apiRef"] = serde_json::json!({"name": "export-check"});
    spec["managementPolicy"] = "Observe".into();
    serde_json::json!({
        "apiVersion": A::Resource::api_version(&()),
        "kind": A::Resource::kind(&()),
        "metadata": {"name": "export-check", "namespace": "export-check"},
        "spec": spec,
    })
}

/// Whether the resource `draft` stands for, once applied, finds its remote object as it is:
/// it reads as a valid resource, and the kind's own comparison sees no difference. A draft that
/// fails is offered as skipped, with the reason.
pub fn check<A: Adapter>(listed: Listed<A::Remote>) -> Listed<A::Remote> {
    let Listed { observed, draft } = listed;
    let draft = draft.and_then(|draft| {
        let res: A::Resource = serde_json::from_value(manifest::<A>(&draft))
            .map_err(|e| format!("the CRD cannot express it: {e}"))?;
        let desired =
            A::desired(&res, None).map_err(|e| format!("the CRD cannot express it: {e}"))?;
        let drift = A::diff(&desired, &observed.remote);
        if !drift.is_empty() {
            return Err(format!(
                "the CRD cannot express it: {} would differ",
                drift.join(", ")
            ));
        }
        Ok(draft)
    });
    Listed { observed, draft }
}

/// camelCase keys of a JSON object whose keys are snake_case (the vendor's names): the spec's.
pub fn camel_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (super::diff::camel_case(&k), v))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::removal::{Blank, Clear, Removable, leave_out_defaults};

    #[test]
    fn references_go_where_the_kind_says_and_the_stub_keeps_them_empty() {
        let mut draft = Draft::new("x", "x", json!({"servers": [{"name": "g"}]}))
            .write_only("/passwordRef", "password", "the password")
            .write_only("/servers/0/secretRef", "g-secret", "g's secret");
        draft.refer_to("x-credentials");
        assert_eq!(
            draft.spec,
            json!({"passwordRef": {"name": "x-credentials", "key": "password"},
                   "servers": [{"name": "g", "secretRef": {"name": "x-credentials", "key": "g-secret"}}]})
        );
        assert!(draft.stub.iter().all(|k| k.value.is_empty()));
    }

    #[test]
    fn a_spec_states_only_what_differs_from_leaving_it_out() {
        const TABLE: &[Removable] = &[
            Removable::new("poolSize", "pool_size", Clear::To(Blank::Int(5))),
            Removable::new("host", "host", Clear::To(Blank::Null)),
            Removable::new(
                "isDefault",
                "is_default",
                Clear::Keep {
                    why: "",
                    observable: true,
                },
            ),
            Removable::new("reset", "reset", Clear::Omit),
        ];
        let observed = json!({"pool_size": 5, "host": "h", "is_default": false, "reset": 1});
        let mut spec = json!({"poolSize": 5, "host": "h", "isDefault": false, "reset": 1});
        leave_out_defaults(&mut spec, TABLE, &observed);
        assert_eq!(spec, json!({"host": "h", "reset": 1}));
        let observed = json!({"pool_size": 7, "is_default": true});
        let mut spec = json!({"poolSize": 7, "isDefault": true});
        leave_out_defaults(&mut spec, TABLE, &observed);
        assert_eq!(spec, json!({"poolSize": 7, "isDefault": true}));
    }
}
