//! Secrets: watched as metadata only, and of each only its resourceVersion (and whether it
//! carries the in-use finalizer) is kept, never data, so memory does not grow with Secret
//! payloads. Values are read with a GET only when they are about to be sent; a Secret being
//! deleted that the in-use finalizer holds reads as any other.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;

use super::IN_USE_FINALIZER;
use super::error::Error;
use super::reader::Reader;
use super::spec::SecretKeyRef;
use crate::identity::SecretString;

/// namespace → name → what is kept of the Secret.
type Versions = HashMap<Box<str>, HashMap<Box<str>, Kept>>;

/// What is kept of one Secret: its resourceVersion, and whether it carries the in-use finalizer
/// and is being deleted (what the connections' protection acts on).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Kept {
    resource_version: Box<str>,
    in_use: bool,
    deleting: bool,
}

/// The in-use finalizer on a Secret, and whether it is being deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Protection {
    pub in_use: bool,
    pub deleting: bool,
}

/// The resourceVersion of every Secret in the operator's scope: all a reconcile needs to know
/// of a Secret before it sends its value (whether it exists, whether it changed). A map of its
/// own rather than kube's reflector store of whole metadata objects: 10,000 unrelated Secrets
/// cost about 1 MB here instead of about 6.
pub struct SecretVersions {
    state: RwLock<State>,
    ready: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    current: Versions,
    /// Filled during a (re-)list; replaces `current` when the list is complete.
    listing: Option<Versions>,
}

fn insert(map: &mut Versions, secret: &PartialObjectMeta<Secret>) {
    let ns = secret.namespace().unwrap_or_default();
    let kept = Kept {
        resource_version: secret.resource_version().unwrap_or_default().into(),
        in_use: secret.finalizers().iter().any(|f| f == IN_USE_FINALIZER),
        deleting: secret.metadata.deletion_timestamp.is_some(),
    };
    map.entry(ns.into())
        .or_default()
        .insert(secret.name_any().into(), kept);
}

impl Default for SecretVersions {
    fn default() -> Self {
        Self {
            state: RwLock::default(),
            ready: tokio::sync::watch::channel(false).0,
        }
    }
}

impl SecretVersions {
    /// Applies one event of the Secret watch.
    pub fn apply(&self, event: &watcher::Event<PartialObjectMeta<Secret>>) {
        let mut state = self.state.write().expect("lock");
        match event {
            watcher::Event::Init => state.listing = Some(Versions::new()),
            watcher::Event::InitApply(secret) => {
                insert(state.listing.get_or_insert_default(), secret);
            }
            watcher::Event::InitDone => {
                state.current = state.listing.take().unwrap_or_default();
                self.ready.send_replace(true);
            }
            watcher::Event::Apply(secret) => insert(&mut state.current, secret),
            watcher::Event::Delete(secret) => {
                let ns = secret.namespace().unwrap_or_default();
                if let Some(names) = state.current.get_mut(ns.as_str()) {
                    names.remove(secret.name_any().as_str());
                }
            }
        }
    }

    /// Resolves once the first list is complete.
    pub async fn wait_until_ready(&self) {
        let _ = self.ready.subscribe().wait_for(|ready| *ready).await;
    }

    /// The Secret's resourceVersion; `None` when it does not exist.
    pub fn version(&self, ns: &str, name: &str) -> Option<String> {
        let state = self.state.read().expect("lock");
        let kept = state.current.get(ns)?.get(name)?;
        Some(kept.resource_version.to_string())
    }

    /// The Secret's in-use finalizer and deletion; `None` when it does not exist.
    pub fn protection(&self, ns: &str, name: &str) -> Option<Protection> {
        let state = self.state.read().expect("lock");
        let kept = state.current.get(ns)?.get(name)?;
        Some(Protection {
            in_use: kept.in_use,
            deleting: kept.deleting,
        })
    }

    /// The Secrets of `ns` that carry the in-use finalizer.
    pub fn in_use(&self, ns: &str) -> Vec<String> {
        let state = self.state.read().expect("lock");
        let names = state.current.get(ns).into_iter().flatten();
        names
            .filter(|(_, kept)| kept.in_use)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// Records a Secret as the operator's own write returned it, before its watch event.
    pub fn wrote(&self, secret: &PartialObjectMeta<Secret>) {
        insert(&mut self.state.write().expect("lock").current, secret);
    }
}

/// `name/key` → value of the Secrets a resource references.
#[derive(Default)]
pub struct SecretValues(HashMap<SecretKeyRef, SecretString>);

impl SecretValues {
    pub fn get(&self, r: &SecretKeyRef) -> Option<&SecretString> {
        self.0.get(r)
    }
    /// The value of `r`, which the resource references: an error when its key was not read.
    pub fn require(&self, r: &SecretKeyRef) -> Result<SecretString, Error> {
        self.get(r)
            .cloned()
            .ok_or_else(|| Error::SecretKeyNotFound {
                name: r.name.clone(),
                key: r.key.clone(),
            })
    }
    pub fn insert(&mut self, r: SecretKeyRef, v: SecretString) {
        self.0.insert(r, v);
    }

    /// A digest of the values of `refs`, to tell in memory whether they changed. Never stored
    /// anywhere else, logged or shown.
    pub fn digest(&self, refs: &[SecretKeyRef]) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        for r in refs {
            std::hash::Hash::hash(&self.get(r).map(SecretString::expose), &mut hasher);
        }
        std::hash::Hasher::finish(&hasher)
    }
}

/// The current resourceVersion of each referenced Secret, keyed `name/key`, from the metadata
/// cache. A Secret that does not exist is an error.
pub fn versions(
    secrets: &SecretVersions,
    ns: &str,
    refs: &[SecretKeyRef],
) -> Result<BTreeMap<String, String>, Error> {
    refs.iter()
        .map(|r| {
            let rv = secrets
                .version(ns, &r.name)
                .ok_or_else(|| Error::SecretNotFound(r.name.clone()))?;
            Ok((format!("{}/{}", r.name, r.key), rv))
        })
        .collect()
}

/// Reads the values of the referenced Secret keys.
pub async fn read(
    reader: &dyn Reader,
    ns: &str,
    refs: &[SecretKeyRef],
) -> Result<SecretValues, Error> {
    let mut values = SecretValues::default();
    let mut cache: HashMap<&str, Secret> = HashMap::new();
    for r in refs {
        if !cache.contains_key(r.name.as_str()) {
            let secret = reader
                .secret(ns, &r.name)
                .await?
                .ok_or_else(|| Error::SecretNotFound(r.name.clone()))?;
            cache.insert(&r.name, secret);
        }
        let secret = &cache[r.name.as_str()];
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(&r.key))
                    .map(|s| s.clone().into_bytes())
            })
            .ok_or_else(|| Error::SecretKeyNotFound {
                name: r.name.clone(),
                key: r.key.clone(),
            })?;
        let text = String::from_utf8(bytes).map_err(|_| Error::SecretNotText {
            name: r.name.clone(),
            key: r.key.clone(),
        })?;
        // A trailing newline is almost always an artefact of `echo > file`, never part of a
        // password or token.
        let text = text.strip_suffix('\n').map(str::to_owned).unwrap_or(text);
        // An empty value is a key not filled in yet (`export`'s stubs), never a password to set.
        if text.is_empty() {
            return Err(Error::SecretKeyEmpty {
                name: r.name.clone(),
                key: r.key.clone(),
            });
        }
        values.insert(r.clone(), SecretString::new(text));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One Secret `s` with `data`.
    struct OneSecret(Secret);

    impl Reader for OneSecret {
        fn secret<'a>(
            &'a self,
            _namespace: &'a str,
            _name: &'a str,
        ) -> futures::future::BoxFuture<'a, Result<Option<Secret>, Error>> {
            let secret = self.0.clone();
            Box::pin(async move { Ok(Some(secret)) })
        }

        fn config_map<'a>(
            &'a self,
            _namespace: &'a str,
            _name: &'a str,
        ) -> futures::future::BoxFuture<
            'a,
            Result<Option<k8s_openapi::api::core::v1::ConfigMap>, Error>,
        > {
            Box::pin(async { Ok(None) })
        }
    }

    #[tokio::test]
    async fn an_empty_value_is_never_read_as_a_password() {
        let data = [
            (
                "filled".to_owned(),
                k8s_openapi::ByteString(b"pw\n".to_vec()),
            ),
            ("empty".to_owned(), k8s_openapi::ByteString(b"\n".to_vec())),
        ];
        let secret = Secret {
            data: Some(data.into()),
            ..Secret::default()
        };
        let reader = OneSecret(secret);
        let key = |k: &str| SecretKeyRef {
            name: "s".into(),
            key: k.into(),
        };
        let values = read(&reader, "ns", &[key("filled")]).await.expect("read");
        assert_eq!(values.get(&key("filled")).map(|v| v.expose()), Some("pw"));
        let Err(err) = read(&reader, "ns", &[key("filled"), key("empty")]).await else {
            panic!("an empty value is read");
        };
        assert!(matches!(err, Error::SecretKeyEmpty { .. }), "{err}");
        assert_eq!(err.reason().as_str(), "SecretKeyNotFound");
    }

    fn secret(ns: &str, name: &str, rv: &str) -> PartialObjectMeta<Secret> {
        let mut s = PartialObjectMeta::<Secret>::default();
        s.metadata.namespace = Some(ns.into());
        s.metadata.name = Some(name.into());
        s.metadata.resource_version = Some(rv.into());
        s
    }

    #[tokio::test]
    async fn versions_follow_the_watch_and_a_relist_replaces_them() {
        let v = SecretVersions::default();
        v.apply(&watcher::Event::Init);
        v.apply(&watcher::Event::InitApply(secret("a", "one", "1")));
        v.apply(&watcher::Event::InitApply(secret("a", "two", "2")));
        assert_eq!(
            v.version("a", "one"),
            None,
            "not before the list is complete"
        );
        v.apply(&watcher::Event::InitDone);
        v.wait_until_ready().await;
        assert_eq!(v.version("a", "one").as_deref(), Some("1"));
        v.apply(&watcher::Event::Apply(secret("a", "one", "5")));
        v.apply(&watcher::Event::Delete(secret("a", "two", "6")));
        assert_eq!(v.version("a", "one").as_deref(), Some("5"));
        assert_eq!(v.version("a", "two"), None);
        assert_eq!(v.version("b", "one"), None);
        // A re-list: the old versions serve until it is complete, then only what it found.
        v.apply(&watcher::Event::Init);
        v.apply(&watcher::Event::InitApply(secret("b", "three", "7")));
        assert_eq!(v.version("a", "one").as_deref(), Some("5"));
        v.apply(&watcher::Event::InitDone);
        assert_eq!(v.version("a", "one"), None);
        assert_eq!(v.version("b", "three").as_deref(), Some("7"));
    }

    #[test]
    fn the_in_use_finalizer_and_deletion_are_kept() {
        let v = SecretVersions::default();
        let mut held = secret("a", "held", "3");
        held.metadata.finalizers = Some(vec!["other".into(), IN_USE_FINALIZER.into()]);
        v.apply(&watcher::Event::Apply(held.clone()));
        v.apply(&watcher::Event::Apply(secret("a", "free", "4")));
        assert_eq!(v.in_use("a"), vec!["held".to_owned()]);
        assert_eq!(v.protection("a", "free"), Some(Protection::default()));
        held.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        held.metadata.resource_version = Some("5".into());
        v.wrote(&held);
        assert_eq!(
            v.protection("a", "held"),
            Some(Protection {
                in_use: true,
                deleting: true
            })
        );
        assert_eq!(v.version("a", "held").as_deref(), Some("5"));
        assert_eq!(v.protection("a", "absent"), None);
    }
}
