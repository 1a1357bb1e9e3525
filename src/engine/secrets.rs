//! Secrets: watched as metadata only (name and resourceVersion; never data, annotations or
//! managed fields, so memory does not grow with Secret payloads). Values are read with a GET
//! only when they are about to be sent.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};

use super::error::Error;
use crate::identity::SecretString;
use crate::kinds::common::SecretKeyRef;

pub type SecretMetaStore = Store<PartialObjectMeta<Secret>>;

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
    store: &SecretMetaStore,
    ns: &str,
    refs: &[SecretKeyRef],
) -> Result<BTreeMap<String, String>, Error> {
    refs.iter()
        .map(|r| {
            let meta = store
                .get(&ObjectRef::new(&r.name).within(ns))
                .ok_or_else(|| Error::SecretNotFound(r.name.clone()))?;
            let rv = meta.metadata.resource_version.clone().unwrap_or_default();
            Ok((format!("{}/{}", r.name, r.key), rv))
        })
        .collect()
}

/// Reads the values of the referenced Secret keys.
pub async fn read(client: &Client, ns: &str, refs: &[SecretKeyRef]) -> Result<SecretValues, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut values = SecretValues::default();
    let mut cache: HashMap<&str, Secret> = HashMap::new();
    for r in refs {
        if !cache.contains_key(r.name.as_str()) {
            let secret = api
                .get_opt(&r.name)
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
