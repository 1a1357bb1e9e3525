//! The in-use finalizer ([`IN_USE_FINALIZER`]): a connection and the Secrets holding its
//! credentials carry it while a resource may still need them to delete something remote (the
//! connection's holders, `usage.rs`), as Kubernetes' PVC protection does for volumes. Deleted
//! while in use, they stay `Terminating` and usable until the last holder is done; nothing else
//! about them changes. The finalizer goes as soon as the last holder is gone, and never before
//! the usage index is complete (after a restart, "no holder" may only mean "not listed yet").

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::{Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::events::EventType;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::IN_USE_FINALIZER;
use super::conditions::{ConditionType, Reason, set_condition};
use super::dependents::{Dependents, Target};
use super::error::Error;
use super::events::{Events, Report};
use super::finalizer::{finalizer_ops, json_patch};
use super::secrets::SecretVersions;
use super::spec::{Condition, find_condition};
use super::usage::Holders;

/// Why each Secret of a namespace must stay: Secret name → what needs it, in words.
pub type Wanted = BTreeMap<String, String>;

/// Adds to `wanted` the Secrets `names` of `connection` (`IdentityApi x`), which `holders`
/// still need.
pub fn want<'a>(
    wanted: &mut Wanted,
    connection: &str,
    holders: &Holders,
    names: impl IntoIterator<Item = &'a String>,
) {
    if holders.is_empty() {
        return;
    }
    let why = format!(
        "{connection} needs it while {} resources may still delete remote objects through it \
         ({})",
        holders.count,
        holders.describe()
    );
    for name in names {
        add(wanted, name.clone(), &why);
    }
}

/// One more reason why Secret `name` must stay.
pub fn add(wanted: &mut Wanted, name: String, why: &str) {
    let all = wanted.entry(name).or_default();
    if !all.is_empty() {
        all.push_str("; ");
    }
    all.push_str(why);
}

/// Sets `Deleting=True, reason=InUse` naming the holders of a connection (`kind`: what it is,
/// in words); returns the message when the condition is new (for its Event).
pub fn report_held(
    conditions: &mut Vec<Condition>,
    generation: Option<i64>,
    kind: &str,
    holders: &Holders,
) -> Option<String> {
    let message = format!(
        "waiting for {} resources that may still delete remote objects through this {kind}: {}",
        holders.count,
        holders.describe()
    );
    let deleting = ConditionType::Deleting;
    let new = find_condition(conditions, deleting).is_none();
    set_condition(
        conditions,
        deleting,
        true,
        Reason::InUse,
        &message,
        generation,
    );
    new.then_some(message)
}

/// Writes the in-use finalizer.
pub struct Protector {
    kube: Client,
    /// The writes are rare (a connection gains its first holder or loses its last); one at a
    /// time, so two connections sharing a Secret never race on its finalizer list.
    writing: tokio::sync::Mutex<()>,
    /// Held Secrets being deleted whose Event was sent: (namespace, name).
    told: Mutex<HashSet<(String, String)>>,
}

/// Where the Secrets of one namespace are known and reported: the Secret cache of the watch
/// that sees them, the index their users are requeued through, and the Events.
pub struct SecretScope<'a> {
    pub namespace: &'a str,
    pub versions: &'a SecretVersions,
    pub dependents: &'a Dependents,
    pub events: &'a Events,
}

impl Protector {
    pub fn new(kube: Client) -> Self {
        Protector {
            kube,
            writing: tokio::sync::Mutex::default(),
            told: Mutex::default(),
        }
    }

    /// Adds (`wanted`) or removes the in-use finalizer of a connection object.
    pub async fn connection<K>(&self, api: &Api<K>, obj: &K, wanted: bool) -> Result<(), Error>
    where
        K: Resource + Clone + DeserializeOwned + Debug,
    {
        let _writing = self.writing.lock().await;
        set(api, &obj.name_any(), wanted).await?;
        Ok(())
    }

    /// Gives the Secrets of `scope` the in-use finalizer exactly when `wanted` names them;
    /// removes it only with `may_release` (the usage index is complete). A wanted Secret being
    /// deleted gets one Event saying what still needs it.
    pub async fn secrets(
        &self,
        scope: &SecretScope<'_>,
        wanted: &Wanted,
        may_release: bool,
    ) -> Result<(), Error> {
        let ns = scope.namespace;
        for (name, why) in wanted {
            // A missing Secret has nothing to protect (its users report SecretNotFound).
            let Some(protection) = scope.versions.protection(ns, name) else {
                continue;
            };
            if !protection.in_use {
                self.secret(scope, name, true).await?;
            }
            if protection.deleting {
                self.tell(scope, name, why);
            }
        }
        if may_release {
            for name in scope.versions.in_use(ns) {
                if !wanted.contains_key(&name) {
                    self.secret(scope, &name, false).await?;
                    let told = (ns.to_owned(), name);
                    self.told.lock().expect("lock").remove(&told);
                }
            }
        }
        Ok(())
    }

    async fn secret(&self, scope: &SecretScope<'_>, name: &str, wanted: bool) -> Result<(), Error> {
        let ns = scope.namespace;
        let _writing = self.writing.lock().await;
        let api: Api<Secret> = Api::namespaced(self.kube.clone(), ns);
        let Some(set) = set(&api, name, wanted).await? else {
            return Ok(());
        };
        scope.versions.wrote(&set.meta);
        if set.written {
            // The watch event of this write changes nothing for the Secret's users.
            let target = Target::Secret {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            };
            let rv = set.meta.resource_version().unwrap_or_default();
            scope.dependents.wrote(target, rv);
        }
        Ok(())
    }

    /// One Event on a held Secret being deleted, naming what needs it.
    fn tell(&self, scope: &SecretScope<'_>, name: &str, why: &str) {
        let key = (scope.namespace.to_owned(), name.to_owned());
        if !self.told.lock().expect("lock").insert(key) {
            return;
        }
        let note = format!(
            "deletion waits: {why}; the Secret goes once no resource needs it to delete its \
             remote objects"
        );
        let report = Report {
            type_: EventType::Normal,
            reason: Reason::InUse.as_str(),
            action: "Protect",
            note: &note,
        };
        let regarding = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Secret".into()),
            namespace: Some(scope.namespace.to_owned()),
            name: Some(name.to_owned()),
            ..Default::default()
        };
        scope.events.send(&report, regarding);
    }
}

/// An object's metadata after [`set`], and whether it was written.
struct Set<K> {
    meta: PartialObjectMeta<K>,
    written: bool,
}

/// Adds (`wanted`) or removes the in-use finalizer of object `name`; `None` when it does not
/// exist. The finalizer list is read first and the patch tested against that read: a watch
/// cache may not have seen the operator's own last write yet, and the patch must neither add
/// the finalizer twice nor drop someone else's.
async fn set<K>(api: &Api<K>, name: &str, wanted: bool) -> Result<Option<Set<K>>, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let Some(meta) = api.get_metadata_opt(name).await? else {
        return Ok(None);
    };
    let mut ops = finalizer_ops(meta.finalizers(), IN_USE_FINALIZER, wanted);
    if ops.is_empty() {
        let written = false;
        return Ok(Some(Set { meta, written }));
    }
    let version = meta.resource_version().unwrap_or_default();
    ops.insert(
        0,
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": version}),
    );
    let patch = Patch::<()>::Json(json_patch(ops));
    let meta = api
        .patch_metadata(name, &PatchParams::default(), &patch)
        .await?;
    let written = true;
    Ok(Some(Set { meta, written }))
}
