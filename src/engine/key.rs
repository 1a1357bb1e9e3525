//! The key of a resource in the engine's maps (backoffs, dependents, write streaks) and logs.

use std::sync::Arc;

use kube::{Resource, ResourceExt};

/// One resource of one kind, by namespace and name. The names are shared by its clones: the
/// usage and dependents indexes keep a key in two maps each.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: &'static str,
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ObjectKey {
    pub fn new(kind: &'static str, namespace: impl AsRef<str>, name: impl AsRef<str>) -> Self {
        Self {
            kind,
            namespace: namespace.as_ref().into(),
            name: name.as_ref().into(),
        }
    }

    /// The key of `obj`, whose kind is `kind`.
    pub fn of<K: Resource>(kind: &'static str, obj: &K) -> Self {
        Self::new(kind, obj.namespace().unwrap_or_default(), obj.name_any())
    }

    /// `namespace/name`, as the metrics label it.
    pub fn object(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The kind name of `K` as a static string (the derived CRD types return a borrowed one).
pub fn kind_of<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()) {
        std::borrow::Cow::Borrowed(k) => k,
        // Never for derived types; a leak of one short string per kind otherwise.
        std::borrow::Cow::Owned(k) => Box::leak(k.into_boxed_str()),
    }
}
