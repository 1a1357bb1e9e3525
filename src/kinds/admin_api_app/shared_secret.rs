//! The shared secret of an AdminApiApp, handed to the user in a Secret the AdminApiApp owns.
//!
//! Entrust generates the secret and returns it only from create and regenerate: a target Secret
//! that is lost (deleted, or never written because the operator stopped in between) can only
//! be replaced with a new secret. The `rotateSharedSecret` token a secret was generated for is
//! kept on the Secret itself, so a rotation happens once per token even if the status is lost.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use reqwest::Method;
use serde_json::Value;
use tracing::info;

use super::{APPLICATIONS, AdminApiApp, AdminApiApplication};
use crate::engine::dependents::Target;
use crate::engine::status::now;
use crate::engine::{Context, Error, MANAGER, Observed};
use crate::identity::{ApiError, IdentityClient, SecretString, path_segment};
use crate::kinds::common::ManagedStatus;

/// Key of the target Secret holding the application id.
pub const APPLICATION_ID_KEY: &str = "applicationId";
/// Key of the target Secret holding the shared secret.
pub const SHARED_SECRET_KEY: &str = "sharedSecret";
/// Annotation of the target Secret: the `rotateSharedSecret` token its secret was made for.
pub const ROTATION_ANNOTATION: &str = "identity.operator.dev/rotate-shared-secret";
/// `status.remote` key showing the last token acted on.
const ROTATION_STATUS: &str = "sharedSecretRotation";

/// What the target Secret holds now.
struct Held {
    exists: bool,
    /// The application whose secret it holds, when it holds one.
    application_id: Option<String>,
    shared_secret: Option<SecretString>,
    rotation: Option<String>,
    owned: bool,
}

/// Makes the target Secret hold the current shared secret of `app`, regenerating it when it is
/// lost or a rotation is asked for.
pub async fn ensure(
    ctx: &Context,
    api: &IdentityClient,
    res: &AdminApiApp,
    app: &Observed<AdminApiApplication>,
    status: &mut ManagedStatus,
) -> Result<(), Error> {
    let ns = res.namespace().unwrap_or_default();
    let target = &res.spec.shared_secret_target.name;
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &ns);
    let held = inspect(secrets.get_opt(target).await?, res, &app.id)?;
    let wanted = res.spec.rotate_shared_secret.clone();
    let current = held.application_id.as_deref() == Some(app.id.as_str());
    let rotate = wanted.is_some() && held.rotation != wanted;

    let (secret, why) = match (&app.remote.shared_secret, &held.shared_secret) {
        // Just created: the one moment Entrust hands the secret out.
        (Some(new), Some(old)) if current && new == old && held.owned && !rotate => {
            remember(status, wanted);
            return Ok(());
        }
        (Some(new), _) => (new.clone(), "new application"),
        (None, Some(_)) if current && held.owned && !rotate => {
            remember(status, wanted);
            return Ok(());
        }
        (None, Some(old)) if current && !rotate => (old.clone(), "Secret taken over"),
        (None, _) => {
            let why = if !held.exists {
                "the Secret was missing"
            } else if !current {
                "the Secret held another application's id"
            } else if held.shared_secret.is_none() {
                "the Secret held no shared secret"
            } else {
                "rotateSharedSecret changed"
            };
            let new = regenerate(api, &app.id).await?;
            status.last_sync_time = Some(now());
            info!(id = %app.id, reason = why, "regenerated the shared secret");
            let note = format!(
                "regenerated the shared secret of application {}: {why}",
                app.id
            );
            ctx.events.emit(
                res,
                EventType::Normal,
                "SharedSecretRegenerated",
                "Regenerate",
                note,
            );
            (new, why)
        }
    };
    let version = write(&secrets, res, &app.id, &secret, wanted.as_deref()).await?;
    // The watch event of this write must not requeue the AdminApiApp that made it.
    if let Some(version) = version {
        ctx.dependents.wrote(
            Target::Secret {
                namespace: ns.clone(),
                name: target.clone(),
            },
            version,
        );
    }
    info!(id = %app.id, secret = %target, reason = why, "wrote the shared secret");
    let note = format!(
        "wrote applicationId and sharedSecret of application {} to Secret {target} ({why})",
        app.id
    );
    ctx.events
        .emit(res, EventType::Normal, "SecretWritten", "WriteSecret", note);
    remember(status, wanted);
    Ok(())
}

fn remember(status: &mut ManagedStatus, token: Option<String>) {
    match token {
        Some(t) => status.remote.insert(ROTATION_STATUS.into(), t),
        None => status.remote.remove(ROTATION_STATUS),
    };
}

/// Reads the target Secret. A Secret controlled by another object, or one the user made for
/// something else, is never overwritten.
fn inspect(secret: Option<Secret>, res: &AdminApiApp, id: &str) -> Result<Held, Error> {
    let Some(secret) = secret else {
        return Ok(Held {
            exists: false,
            application_id: None,
            shared_secret: None,
            rotation: None,
            owned: false,
        });
    };
    let name = secret.name_any();
    let controller = secret
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .cloned();
    let owned = controller
        .as_ref()
        .is_some_and(|o| Some(&o.uid) == res.meta().uid.as_ref());
    let text = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .filter(|s| !s.is_empty())
    };
    let held = Held {
        exists: true,
        application_id: text(APPLICATION_ID_KEY),
        shared_secret: text(SHARED_SECRET_KEY).map(SecretString::new),
        rotation: secret.annotations().get(ROTATION_ANNOTATION).cloned(),
        owned,
    };
    match controller {
        Some(c) if !owned => Err(Error::Conflict(format!(
            "Secret {name:?} (spec.sharedSecretTarget) is controlled by {} {:?}",
            c.kind, c.name
        ))),
        // A Secret the user prepared with this application's id and secret is taken over;
        // anything else is not ours to overwrite. One with the id but no secret is `export`'s
        // stub: regenerating would break whoever uses the current secret.
        None if held.application_id.as_deref() == Some(id) && held.shared_secret.is_none() => {
            Err(Error::Conflict(format!(
                "Secret {name:?} (spec.sharedSecretTarget) holds this application's id but no \
                 sharedSecret: fill in the application's current shared secret (the operator \
                 then takes the Secret over), or delete the Secret to have a new secret generated"
            )))
        }
        None if held.application_id.as_deref() != Some(id) || held.shared_secret.is_none() => {
            Err(Error::Conflict(format!(
                "Secret {name:?} (spec.sharedSecretTarget) exists and was not written for this \
                 AdminApiApp; delete it or name another Secret"
            )))
        }
        _ => Ok(held),
    }
}

/// `PUT …/adminapi/regenerate/{id}`: answers the new secret as a JSON string.
async fn regenerate(api: &IdentityClient, id: &str) -> Result<SecretString, Error> {
    let path = format!("{APPLICATIONS}/regenerate/{}", path_segment(id));
    let resp = api.call(Method::PUT, &path, None).await?;
    match resp.body() {
        Value::String(s) if !s.is_empty() => Ok(SecretString::new(s)),
        // The answer is never quoted: if it held the secret in an unknown shape, it would leak.
        _ => Err(Error::Api(ApiError::Decode {
            path,
            message: "the answer is not the new shared secret as a JSON string".into(),
        })),
    }
}

/// Writes the target Secret with server-side apply, controlled by the AdminApiApp (so the
/// garbage collector deletes it with the resource). Returns the Secret's new resourceVersion.
async fn write(
    secrets: &Api<Secret>,
    res: &AdminApiApp,
    id: &str,
    secret: &SecretString,
    rotation: Option<&str>,
) -> Result<Option<String>, Error> {
    let name = &res.spec.shared_secret_target.name;
    let owner = OwnerReference {
        api_version: AdminApiApp::api_version(&()).into_owned(),
        kind: AdminApiApp::kind(&()).into_owned(),
        name: res.name_any(),
        uid: res.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let doc = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: res.namespace(),
            owner_references: Some(vec![owner]),
            annotations: rotation
                .map(|t| BTreeMap::from([(ROTATION_ANNOTATION.to_owned(), t.to_owned())])),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                MANAGER.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            (APPLICATION_ID_KEY.to_owned(), bytes(id)),
            (SHARED_SECRET_KEY.to_owned(), bytes(secret.expose())),
        ])),
        ..Secret::default()
    };
    let written = secrets
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&doc),
        )
        .await?;
    Ok(written.metadata.resource_version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res() -> AdminApiApp {
        serde_json::from_value(json!({
            "apiVersion": "identity.operator.dev/v1alpha1", "kind": "AdminApiApp",
            "metadata": {"name": "ci", "namespace": "ns", "uid": "uid-ci"},
            "spec": {"apiRef": {"name": "entrust"}, "name": "ci", "roleId": "r",
                     "sharedSecretTarget": {"name": "ci-credentials"}},
        }))
        .unwrap()
    }

    fn secret(owner_uid: Option<&str>, data: Value) -> Secret {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "ci-credentials", "annotations": {ROTATION_ANNOTATION: "t1"}}});
        if let Some(uid) = owner_uid {
            s["metadata"]["ownerReferences"] = json!([{"apiVersion": "identity.operator.dev/v1alpha1",
                "kind": "AdminApiApp", "name": "other", "uid": uid, "controller": true}]);
        }
        let encoded: serde_json::Map<String, Value> = data
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                use base64::Engine as _;
                let b = base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap());
                (k.clone(), Value::String(b))
            })
            .collect();
        s["data"] = Value::Object(encoded);
        serde_json::from_value(s).unwrap()
    }

    #[test]
    fn a_missing_secret_holds_nothing() {
        let held = inspect(None, &res(), "app-1").unwrap();
        assert!(held.application_id.is_none() && held.shared_secret.is_none() && !held.owned);
    }

    #[test]
    fn our_secret_is_read_with_its_rotation_token() {
        let s = secret(
            Some("uid-ci"),
            json!({"applicationId": "app-1", "sharedSecret": "s3"}),
        );
        let held = inspect(Some(s), &res(), "app-1").unwrap();
        assert!(held.owned);
        assert_eq!(held.application_id.as_deref(), Some("app-1"));
        assert_eq!(
            held.shared_secret.as_ref().map(SecretString::expose),
            Some("s3")
        );
        assert_eq!(held.rotation.as_deref(), Some("t1"));
    }

    #[test]
    fn secrets_of_others_are_never_overwritten() {
        let theirs = secret(
            Some("uid-other"),
            json!({"applicationId": "app-1", "sharedSecret": "x"}),
        );
        let err = inspect(Some(theirs), &res(), "app-1")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("controlled by AdminApiApp \"other\""), "{err}");
        let unrelated = secret(None, json!({"password": "hunter2"}));
        let err = inspect(Some(unrelated), &res(), "app-1")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not written for this AdminApiApp"), "{err}");
        assert!(!err.contains("hunter2"));
        // Prepared by the user for this very application: taken over.
        let prepared = secret(
            None,
            json!({"applicationId": "app-1", "sharedSecret": "known"}),
        );
        assert!(!inspect(Some(prepared), &res(), "app-1").unwrap().owned);
    }
}
