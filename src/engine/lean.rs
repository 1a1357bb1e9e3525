//! What the watch cache keeps of a managed object: its compact JSON, and beside it only the
//! metadata that the cache's keys, the work queue and the trigger filter read without
//! decoding (name, namespace, uid, generation, deletion, the pause annotation). The uid tells
//! kube-runtime's trigger filter a resource deleted and made again under the same name from
//! the old one. Not the resourceVersion: kube-runtime copies it into each cache key, and
//! nothing there reads it.
//!
//! A typed object is about three times the size of its JSON (every `String` and map of its
//! metadata, spec and status is an allocation of its own, and `ObjectMeta` alone is hundreds of
//! bytes of empty fields), and the cache holds every managed object for as long as the
//! operator runs. A reconcile decodes the one object it works on (microseconds), and
//! `check_singleton` the few settings objects of a namespace.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

use super::{Managed, PAUSED_ANNOTATION};

pub struct Lean<K> {
    meta: ObjectMeta,
    json: Box<[u8]>,
    kind: PhantomData<fn() -> K>,
}

impl<K: Managed> Lean<K> {
    pub fn new(obj: &K) -> Self {
        let m = obj.meta();
        let paused = m
            .annotations
            .as_ref()
            .and_then(|a| a.get(PAUSED_ANNOTATION))
            .map(|v| BTreeMap::from([(PAUSED_ANNOTATION.to_owned(), v.clone())]));
        let meta = ObjectMeta {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            uid: m.uid.clone(),
            generation: m.generation,
            deletion_timestamp: m.deletion_timestamp.clone(),
            annotations: paused,
            ..ObjectMeta::default()
        };
        // Serializing a value that was just deserialized cannot fail; an empty body would
        // only make `decode` fail, and that reconcile with it.
        let json = serde_json::to_vec(obj)
            .unwrap_or_default()
            .into_boxed_slice();
        Lean {
            meta,
            json,
            kind: PhantomData,
        }
    }

    /// The whole object, as the watch delivered it (less what `controller::slim` drops).
    pub fn decode(&self) -> Result<K, serde_json::Error> {
        serde_json::from_slice(&self.json)
    }
}

/// The decoded objects of a cache, skipping any that do not decode (none should).
pub fn decoded<K: Managed>(entries: Vec<Arc<Lean<K>>>) -> impl Iterator<Item = K> {
    entries.into_iter().filter_map(|e| e.decode().ok())
}

impl<K> Clone for Lean<K> {
    fn clone(&self) -> Self {
        Lean {
            meta: self.meta.clone(),
            json: self.json.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for Lean<K> {
    /// Never the JSON: it holds the status, and a reconcile's error is logged with its object.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lean")
            .field("namespace", &self.meta.namespace)
            .field("name", &self.meta.name)
            .field("bytes", &self.json.len())
            .finish()
    }
}

impl<K: Managed> Resource for Lean<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::identity_backend::IdentityBackend;
    use serde_json::json;

    fn backend(annotations: serde_json::Value) -> IdentityBackend {
        serde_json::from_value(json!({
            "apiVersion": "identity.operator.dev/v1alpha1",
            "kind": "IdentityBackend",
            "metadata": {
                "name": "b", "namespace": "ns", "uid": "u-1", "resourceVersion": "7",
                "generation": 3, "finalizers": ["f"], "labels": {"team": "a"},
                "annotations": annotations,
            },
            "spec": {"apiRef": {"name": "boruta"}, "name": "B", "type": "Ldap"},
            "status": {"externalId": "x-1"},
        }))
        .expect("a valid IdentityBackend")
    }

    #[test]
    fn keeps_the_object_whole_and_only_the_trigger_metadata_beside_it() {
        let obj = backend(json!({"identity.operator.dev/paused": "true", "other": "x"}));
        let lean = Lean::new(&obj);
        assert_eq!(
            serde_json::to_value(lean.decode().unwrap()).unwrap(),
            serde_json::to_value(&obj).unwrap()
        );
        let m = lean.meta();
        assert_eq!(m.name.as_deref(), Some("b"));
        assert_eq!(m.namespace.as_deref(), Some("ns"));
        assert_eq!(m.uid.as_deref(), Some("u-1"));
        assert!(m.resource_version.is_none());
        assert_eq!(m.generation, Some(3));
        assert_eq!(
            m.annotations,
            Some(BTreeMap::from([(
                PAUSED_ANNOTATION.to_owned(),
                "true".to_owned()
            )]))
        );
        assert!(m.labels.is_none() && m.finalizers.is_none());
    }

    #[test]
    fn debug_never_shows_the_object() {
        let lean = Lean::new(&backend(json!({})));
        let shown = format!("{lean:?}");
        assert!(!shown.contains("x-1") && shown.contains("\"b\""), "{shown}");
        assert_eq!(lean.meta().annotations, None);
    }
}
