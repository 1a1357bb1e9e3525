//! Secrets: watched as metadata only, and of each only its resourceVersion is kept (never
//! data, so memory does not grow with Secret payloads). Values are read with a GET only when
//! they are about to be sent.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;

use super::error::Error;
use super::reader::Reader;
use super::spec::SecretKeyRef;
use crate::identity::SecretString;

/// namespace → name → resourceVersion.
type Versions = HashMap<Box<str>, HashMap<Box<str>, Box<str>>>;

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
    let rv = secret.resource_version().unwrap_or_default();
    map.entry(ns.into())
        .or_default()
        .insert(secret.name_any().into(), rv.into());
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
        state.current.get(ns)?.get(name).map(|rv| rv.to_string())
    }
}

/// `name/key` → value of the Secrets a resource references.
#[derive(Default)]
pub struct SecretValues(HashMap<SecretKeyRef, SecretString>);

impl SecretValues {
    pub fn get(&self, r: &SecretKeyRef) -> Option<&SecretString> {
        self.0.get(r)
    }
    pub fn insert(&mut self, r: SecretKeyRef, v: SecretString) {
        self.0.insert(r, v);
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
        values.insert(r.clone(), SecretString::new(text));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
