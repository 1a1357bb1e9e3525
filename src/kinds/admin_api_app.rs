//! AdminApiApp: an Entrust IDaaS administration API application
//! (`/api/web/v1/applications/adminapi`).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonSpec, ManagedStatus};

/// An Entrust IDaaS administration API application; its server-generated shared secret is
/// written to the Secret named by sharedSecretTarget. Fields left unset are left as they are in
/// Entrust.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "identity.operator.dev",
    version = "v1alpha1",
    kind = "AdminApiApp",
    namespaced,
    status = "ManagedStatus",
    shortname = "adminapp",
    category = "identity",
    doc = "An Entrust IDaaS administration API application, reconciled against the Entrust administration API.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"External-ID","type":"string","jsonPath":".status.externalId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("has(self.roleId) != has(self.spRoleId)").message("set exactly one of roleId and spRoleId"))]
#[x_kube(validation = Rule::new("!has(oldSelf.applicationId) || (has(self.applicationId) && self.applicationId == oldSelf.applicationId)").message("applicationId is immutable"))]
#[x_kube(validation = Rule::new("!has(oldSelf.applicationTemplateId) || (has(self.applicationTemplateId) && self.applicationTemplateId == oldSelf.applicationTemplateId)").message("applicationTemplateId is immutable: Entrust cannot move an application to another template"))]
#[x_kube(validation = Rule::new("!(has(self.logo) && has(self.logoFrom))").message("set at most one of logo and logoFrom"))]
#[serde(rename_all = "camelCase")]
pub struct AdminApiAppSpec {
    #[serde(flatten)]
    pub common: CommonSpec,
    /// Id of an existing application to adopt. When unset the operator looks for an
    /// application with the same name and creates one if there is none. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub application_id: Option<String>,
    /// Application name (also the key used to find an existing application).
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Allow tokens that do not expire quickly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_long_lived_token: Option<bool>,
    /// Template of the application; only used when creating it (Entrust cannot change it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_template_id: Option<String>,
    /// IP list restricting where the application may authenticate from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_list_id: Option<String>,
    /// Logo, base64-encoded (as the document says; checked at admission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "byte"))]
    pub logo: Option<String>,
    /// Logo taken from a ConfigMap key: raw image bytes under binaryData, or base64 text under
    /// data. Read at every reconcile; a change is picked up at the next drift check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_from: Option<ConfigMapKeyRef>,
    /// Site (administrator) role of the application. Set exactly one of roleId and spRoleId:
    /// the other is unset in Entrust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub role_id: Option<String>,
    /// Service-provider role of the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub sp_role_id: Option<String>,
    /// Secret (owned by this resource) that receives the keys `applicationId` and
    /// `sharedSecret`. Re-created with a regenerated shared secret if it is deleted.
    pub shared_secret_target: SharedSecretTarget,
    /// Change this value to any new token (a date, a counter) to regenerate the shared secret
    /// once and update the target Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub rotate_shared_secret: Option<String>,
}

impl crate::engine::ManagedSpec for AdminApiAppSpec {
    fn common(&self) -> &CommonSpec {
        &self.common
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ConfigMapKeyRef {
    /// ConfigMap name in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the ConfigMap's data or binaryData.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SharedSecretTarget {
    /// Name of the Secret to write, in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

// ---------------------------------------------------------------------------------------------
// Entrust IDaaS administration API wire format and adapter
// ---------------------------------------------------------------------------------------------

mod shared_secret;

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use kube::ResourceExt;
use reqwest::Method;
use serde_json::Value;

use super::collection::Collection;
use super::common::{
    Blank, Clear, Removable, SecretKeyRef, kept_fields, record_applied, removals, removed_fields,
    stated_fields,
};
use crate::engine::export::{Draft, Listed, SecretSlot, StubKey};
use crate::engine::secrets::SecretValues;
use crate::engine::{Adapter, Context, Error, Observed};
use crate::identity::{ApiError, IdentityClient, SecretString, path_segment};
use crate::kinds::identity_api::Provider;

pub use shared_secret::{APPLICATION_ID_KEY, ROTATION_ANNOTATION, SHARED_SECRET_KEY};

const APPLICATIONS: &str = "api/web/v1/applications/adminapi";

/// An admin API application as Entrust names it (AdminApiApplication: the answer of GET,
/// create and update).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdminApiApplication {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_long_lived_token: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_template_id: Option<String>,
    /// The template's name; read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_list_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_role_id: Option<String>,
    /// Read-only; changes whenever the application logs in, so never compared nor shown.
    #[serde(default, skip_serializing)]
    pub last_authn_date: Option<String>,
    /// Generated by Entrust and returned by create (and regenerate) only: handed to the user in
    /// the target Secret, never compared, shown or kept.
    #[serde(default, skip_serializing)]
    pub shared_secret: Option<SecretString>,
}

/// AdminApiApplicationParms: the body of create (POST) and update (PUT).
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdminApiApplicationParms {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_long_lived_token: Option<bool>,
    /// Create only: Entrust cannot move an application to another template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_template_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_list_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo: Option<String>,
    /// `""` removes the site role (documented).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    /// `""` removes the service-provider role (documented).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sp_role_id: Option<String>,
}

/// Fields compared with the remote application (where the spec sets them).
const COMPARED: &[&str] = &[
    "name",
    "description",
    "allowLongLivedToken",
    "ipListId",
    "logo",
    "roleId",
    "spRoleId",
];

/// What taking a field out of the spec does to the application (docs/vendor-choices.md). The
/// document gives an empty value only for the roles ("Pass an empty string value to unset");
/// an empty description and a false flag are values like any other, but an IP list or a logo
/// has no documented empty value.
const REMOVABLE: &[Removable] = &[
    Removable::same("description", Clear::To(Blank::Str(""))),
    Removable::same("allowLongLivedToken", Clear::To(Blank::Bool(false))),
    Removable::same(
        "ipListId",
        Clear::Keep {
            why: "Entrust documents no way to unset an application's IP list",
            observable: true,
        },
    ),
    Removable::same(
        "logo",
        Clear::Keep {
            why: "Entrust documents no way to remove an application's logo",
            observable: true,
        },
    ),
];

impl AdminApiAppSpec {
    fn to_application(&self) -> AdminApiApplication {
        // One role: the role the spec does not name is unset with "", as documented for both.
        let unset_unless = |other: &Option<String>| other.as_ref().map(|_| String::new());
        AdminApiApplication {
            name: Some(self.name.clone()),
            description: self.description.clone(),
            allow_long_lived_token: self.allow_long_lived_token,
            application_template_id: self.application_template_id.clone(),
            ip_list_id: self.ip_list_id.clone(),
            logo: self.logo.clone(),
            role_id: self
                .role_id
                .clone()
                .or_else(|| unset_unless(&self.sp_role_id)),
            sp_role_id: self
                .sp_role_id
                .clone()
                .or_else(|| unset_unless(&self.role_id)),
            ..AdminApiApplication::default()
        }
    }

    /// The removable fields this spec sets (a logo from a ConfigMap counts once resolved).
    fn stated(&self) -> Vec<String> {
        let spec = serde_json::to_value(self).expect("serializable");
        let paths: Vec<&str> = REMOVABLE.iter().map(|r| r.spec).collect();
        stated_fields(&spec, &paths)
    }
}

fn removed(res: &AdminApiApp) -> Vec<&'static Removable> {
    let stated = res.spec.stated();
    removals(REMOVABLE, &removed_fields(res.status.as_ref(), &stated))
}

/// `desired` with the blank of every removed field Entrust can clear, which makes it compared
/// and sent like any stated value.
fn with_blanks(
    desired: AdminApiApplication,
    removed: &[&Removable],
) -> Result<AdminApiApplication, Error> {
    let mut value = serde_json::to_value(&desired).expect("serializable");
    for r in removed {
        if let Clear::To(blank) = r.clear {
            value[r.wire] = blank.value();
        }
    }
    serde_json::from_value(value).map_err(|e| Error::InvalidSpec(e.to_string()))
}

impl AdminApiApplication {
    /// The body of a create (with the template) or an update (without it). A create needs no
    /// role unset.
    fn parms(&self, create: bool) -> AdminApiApplicationParms {
        let set = |v: &Option<String>| v.clone().filter(|s| !(create && s.is_empty()));
        AdminApiApplicationParms {
            name: self.name.clone().unwrap_or_default(),
            allow_long_lived_token: self.allow_long_lived_token,
            application_template_id: if create {
                self.application_template_id.clone()
            } else {
                None
            },
            description: self.description.clone(),
            ip_list_id: self.ip_list_id.clone(),
            logo: self.logo.clone(),
            role_id: set(&self.role_id),
            sp_role_id: set(&self.sp_role_id),
        }
    }
}

/// Compared fields of `desired` that `observed` does not match, as spec paths. An empty string
/// and an absent value are the same (`spRoleId: ""` is how Entrust removes the role).
pub fn differences(desired: &AdminApiApplication, observed: &AdminApiApplication) -> Vec<String> {
    let normal = |v: Option<&Value>| match v {
        None | Some(Value::Null) => Value::String(String::new()),
        Some(v) => v.clone(),
    };
    let d = serde_json::to_value(desired).expect("serializable");
    let o = serde_json::to_value(observed).expect("serializable");
    COMPARED
        .iter()
        .filter(|f| d.get(**f).is_some_and(|v| !v.is_null()))
        .filter(|f| normal(d.get(**f)) != normal(o.get(**f)))
        .map(|f| format!("spec.{f}"))
        .collect()
}

/// For `export`: the spec that manages `app` as it is. Its shared secret goes to a Secret
/// emitted with the application's id and an empty `sharedSecret`, to be filled in with the
/// secret in use: Entrust never returns it, and generating a new one would lock out whoever
/// uses the current one.
fn draft(app: &Observed<AdminApiApplication>) -> Result<Draft, String> {
    let remote = serde_json::to_value(&app.remote).expect("serializable");
    let mut spec = serde_json::Map::new();
    for field in COMPARED.iter().chain(&["applicationTemplateId"]) {
        match remote.get(*field) {
            None | Some(Value::Null) => {}
            // An unset role reads as "" (the documented way to unset one).
            Some(Value::String(s)) if s.is_empty() && matches!(*field, "roleId" | "spRoleId") => {}
            Some(value) => {
                spec.insert((*field).to_owned(), value.clone());
            }
        }
    }
    let mut spec = Value::Object(spec);
    crate::engine::removal::leave_out_defaults(&mut spec, REMOVABLE, &remote);
    spec["applicationId"] = app.id.clone().into();
    let name = app.remote.name.clone().unwrap_or_default();
    let label = format!("Entrust admin API application {name:?} (id {})", app.id);
    let mut draft = Draft::new(name, label, spec);
    draft.secret_refs.push(SecretSlot {
        pointer: "/sharedSecretTarget".into(),
        key: None,
    });
    draft.stub = vec![
        StubKey {
            key: APPLICATION_ID_KEY.into(),
            value: app.id.clone(),
            what: "the application's id (filled in)".into(),
        },
        StubKey {
            key: SHARED_SECRET_KEY.into(),
            value: String::new(),
            what: "the application's current shared secret, which Entrust never returns; \
                   while it is empty the operator never generates a new one"
                .into(),
        },
    ];
    Ok(draft)
}

/// Reconciles AdminApiApps against the Entrust administration API.
pub struct Entrust;

fn observed(app: AdminApiApplication, path: &str) -> Result<Observed<AdminApiApplication>, Error> {
    let id = app.id.clone().ok_or_else(|| {
        Error::Api(ApiError::Decode {
            path: path.to_owned(),
            message: "application without id".into(),
        })
    })?;
    Ok(Observed { id, remote: app })
}

/// Every application. The list never carries shared secrets; one that did would not be kept.
async fn list_apps(
    api: &IdentityClient,
) -> Result<crate::identity::lists::Items<AdminApiApplication>, ApiError> {
    api.get_decoded(APPLICATIONS).await
}

impl crate::identity::lists::Item for AdminApiApplication {
    const FORGET: &'static [&'static str] = &["sharedSecret"];

    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    fn key(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// The admin API applications of an Entrust tenant.
/// The application `id`, read alone; `None` when there is none.
async fn read_app(
    api: &IdentityClient,
    id: &str,
) -> Result<Option<Observed<AdminApiApplication>>, Error> {
    let path = format!("{APPLICATIONS}/{}", path_segment(id));
    match api.call(Method::GET, &path, None).await {
        Ok(resp) => observed(resp.decode(&path)?, &path).map(Some),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn applications(api: &IdentityClient) -> Collection<'_, AdminApiApplication> {
    Collection::new(
        api,
        APPLICATIONS,
        "Entrust admin API applications",
        "applicationId",
    )
}

/// Overlays an application the operator just wrote on the shared list snapshot (without its
/// shared secret).
fn remember(api: &IdentityClient, written: &Observed<AdminApiApplication>) {
    let mut app = written.remote.clone();
    app.shared_secret = None;
    applications(api).remember(&written.id, app);
}

/// The logo named by `spec.logoFrom`: binaryData is encoded, data is taken as base64 text
/// (line breaks of wrapped base64 removed).
async fn logo_from(
    ctx: &Context,
    res: &AdminApiApp,
    from: &ConfigMapKeyRef,
) -> Result<String, Error> {
    let cm = ctx
        .reader
        .config_map(&res.namespace().unwrap_or_default(), &from.name)
        .await?
        .ok_or_else(|| Error::ConfigMapNotFound(from.name.clone()))?;
    if let Some(bytes) = cm.binary_data.as_ref().and_then(|d| d.get(&from.key)) {
        return Ok(base64::engine::general_purpose::STANDARD.encode(&bytes.0));
    }
    cm.data
        .as_ref()
        .and_then(|d| d.get(&from.key))
        .map(|text| text.split_ascii_whitespace().collect())
        .ok_or_else(|| Error::ConfigMapKeyNotFound {
            name: from.name.clone(),
            key: from.key.clone(),
        })
}

impl Adapter for Entrust {
    type Resource = AdminApiApp;
    type Remote = AdminApiApplication;
    const PROVIDER: Provider = Provider::Entrust;
    const CREATES: bool = true;

    fn secret_refs(_res: &AdminApiApp) -> Vec<SecretKeyRef> {
        Vec::new()
    }

    fn spec_id(res: &AdminApiApp) -> Option<String> {
        res.spec.application_id.clone()
    }

    async fn resolve<'a>(
        ctx: &'a Context,
        res: &'a AdminApiApp,
    ) -> Result<Cow<'a, AdminApiApp>, Error> {
        let Some(from) = &res.spec.logo_from else {
            return Ok(Cow::Borrowed(res));
        };
        let mut resolved = res.clone();
        resolved.spec.logo = Some(logo_from(ctx, res, from).await?);
        Ok(Cow::Owned(resolved))
    }

    fn desired(
        res: &AdminApiApp,
        _secrets: Option<&SecretValues>,
    ) -> Result<AdminApiApplication, Error> {
        with_blanks(res.spec.to_application(), &removed(res))
    }

    fn diff(desired: &AdminApiApplication, observed: &AdminApiApplication) -> Vec<String> {
        differences(desired, observed)
    }

    async fn find(
        api: &IdentityClient,
        res: &AdminApiApp,
        id: Option<&str>,
    ) -> Result<Option<Observed<AdminApiApplication>>, Error> {
        let applications = applications(api);
        if let Some(id) = id {
            // A lone change reads its one application; lookups that come together share a list.
            if let Some(_alone) = applications.alone() {
                return read_app(api, id).await;
            }
            let listed = applications.listed(|| list_apps(api)).await?;
            return match listed.get(id) {
                Some(found) => observed(found, APPLICATIONS).map(Some),
                // Created after the snapshot by someone else, or gone: ask for it directly.
                None => read_app(api, id).await,
            };
        }
        let listed = applications.listed(|| list_apps(api)).await?;
        // No id yet: find the application by name, so a crash between create and the status
        // write never creates a second one.
        let named = applications.only_named(&listed, &res.spec.name)?;
        named.map(|one| observed(one, APPLICATIONS)).transpose()
    }

    async fn export(api: &IdentityClient) -> Result<Vec<Listed<AdminApiApplication>>, Error> {
        let apps = list_apps(api).await?.to_vec();
        apps.into_iter()
            .map(|app| {
                let app = observed(app, APPLICATIONS)?;
                Ok(Listed {
                    draft: draft(&app),
                    observed: app,
                })
            })
            .collect()
    }

    async fn create(
        api: &IdentityClient,
        _res: &AdminApiApp,
        desired: &AdminApiApplication,
    ) -> Result<Observed<AdminApiApplication>, Error> {
        let body = serde_json::to_value(desired.parms(true)).expect("serializable");
        let resp = match api.call(Method::POST, APPLICATIONS, Some(&body)).await {
            // ALREADY_EXISTS: application names are unique.
            Err(e) if e.status() == Some(409) => {
                return Err(Error::AlreadyExists(format!(
                    "Entrust already has an admin API application named {:?}",
                    desired.name.as_deref().unwrap_or_default()
                )));
            }
            other => other?,
        };
        let created = observed(resp.decode(APPLICATIONS)?, APPLICATIONS)?;
        remember(api, &created);
        Ok(created)
    }

    async fn update(
        api: &IdentityClient,
        _res: &AdminApiApp,
        id: &str,
        desired: &AdminApiApplication,
        _observed: &AdminApiApplication,
        _secrets_changed: bool,
    ) -> Result<Observed<AdminApiApplication>, Error> {
        let path = format!("{APPLICATIONS}/{}", path_segment(id));
        let body = serde_json::to_value(desired.parms(false)).expect("serializable");
        let resp = api.call(Method::PUT, &path, Some(&body)).await?;
        let updated = observed(resp.decode(&path)?, &path)?;
        remember(api, &updated);
        Ok(updated)
    }

    async fn delete(api: &IdentityClient, _res: &AdminApiApp, id: &str) -> Result<(), Error> {
        let path = format!("{APPLICATIONS}/{}", path_segment(id));
        applications(api).delete(&path, id).await?;
        Ok(())
    }

    fn summary(observed: &AdminApiApplication) -> BTreeMap<String, String> {
        let mut s = BTreeMap::new();
        if let Some(n) = &observed.name {
            s.insert("name".into(), n.clone());
        }
        if let Some(t) = &observed.application_template {
            s.insert("applicationTemplate".into(), t.clone());
        }
        s
    }

    fn watched_secrets(res: &AdminApiApp) -> Vec<String> {
        vec![res.spec.shared_secret_target.name.clone()]
    }

    async fn finish(
        ctx: &Context,
        api: &IdentityClient,
        res: &AdminApiApp,
        app: &Observed<AdminApiApplication>,
        _fresh: bool,
        status: &mut ManagedStatus,
    ) -> Result<(), Error> {
        let observed = serde_json::to_value(&app.remote).expect("serializable");
        let kept = kept_fields(&removed(res), &observed);
        record_applied(status, res.spec.stated(), &kept, res.metadata.generation);
        shared_secret::ensure(ctx, api, res, app, status).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(fields: Value) -> AdminApiAppSpec {
        let mut all = json!({"apiRef": {"name": "entrust"}, "name": "ci", "sharedSecretTarget": {"name": "ci-credentials"}});
        for (k, v) in fields.as_object().unwrap() {
            all[k] = v.clone();
        }
        serde_json::from_value(all).unwrap()
    }

    fn app(body: Value) -> AdminApiApplication {
        serde_json::from_value(body).unwrap()
    }

    /// An answer in the documented shape: the parms plus applicationTemplate, id,
    /// lastAuthnDate and sharedSecret.
    fn answer() -> Value {
        json!({
            "id": "d9d2dc01-0000-4000-8000-000000000001",
            "name": "ci",
            "description": "CI pipeline",
            "allowLongLivedToken": false,
            "applicationTemplateId": "00000000-0000-0000-0000-0000000000a1",
            "applicationTemplate": "Administration API",
            "ipListId": null,
            "logo": null,
            "roleId": "role-1",
            "spRoleId": null,
            "lastAuthnDate": "2026-01-01T00:00:00.000Z",
            "sharedSecret": null
        })
    }

    #[test]
    fn create_body_has_the_template_and_no_empty_role() {
        let desired = spec(json!({
            "roleId": "role-1",
            "description": "CI pipeline",
            "applicationTemplateId": "tpl-1",
            "allowLongLivedToken": true,
        }))
        .to_application();
        assert_eq!(
            serde_json::to_value(desired.parms(true)).unwrap(),
            json!({"name": "ci", "roleId": "role-1", "description": "CI pipeline", "applicationTemplateId": "tpl-1", "allowLongLivedToken": true})
        );
    }

    #[test]
    fn update_body_has_the_name_and_no_template() {
        let desired =
            spec(json!({"roleId": "role-1", "applicationTemplateId": "tpl-1", "ipListId": "ips"}))
                .to_application();
        assert_eq!(
            serde_json::to_value(desired.parms(false)).unwrap(),
            json!({"name": "ci", "roleId": "role-1", "spRoleId": "", "ipListId": "ips"})
        );
        // The opposite switch unsets the site role the same way.
        let sp = spec(json!({"spRoleId": "sp-1"})).to_application();
        assert_eq!(
            serde_json::to_value(sp.parms(false)).unwrap(),
            json!({"name": "ci", "roleId": "", "spRoleId": "sp-1"})
        );
        assert_eq!(
            serde_json::to_value(sp.parms(true)).unwrap(),
            json!({"name": "ci", "spRoleId": "sp-1"})
        );
    }

    #[test]
    fn a_site_role_the_spec_does_not_name_is_drift() {
        let desired = spec(json!({"spRoleId": "sp-1"})).to_application();
        let mut both = answer();
        both["spRoleId"] = json!("sp-1");
        assert_eq!(differences(&desired, &app(both)), vec!["spec.roleId"]);
        let mut only_sp = answer();
        only_sp["roleId"] = Value::Null;
        only_sp["spRoleId"] = json!("sp-1");
        assert!(differences(&desired, &app(only_sp)).is_empty());
    }

    #[test]
    fn removed_fields_are_cleared_or_reported() {
        let mut res = AdminApiApp::new("ci", spec(json!({"roleId": "role-1"})));
        res.status = Some(ManagedStatus {
            applied_fields: ["description", "allowLongLivedToken", "ipListId", "logo"]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        });
        let desired = Entrust::desired(&res, None).unwrap();
        assert_eq!(
            serde_json::to_value(desired.parms(false)).unwrap(),
            json!({"name": "ci", "roleId": "role-1", "spRoleId": "", "description": "",
                   "allowLongLivedToken": false})
        );
        let mut remote = answer();
        remote["allowLongLivedToken"] = json!(true);
        remote["ipListId"] = json!("ips-1");
        assert_eq!(
            Entrust::diff(&desired, &app(remote.clone())),
            vec!["spec.description", "spec.allowLongLivedToken"]
        );
        let kept: Vec<String> = kept_fields(&removed(&res), &remote)
            .into_iter()
            .map(|k| k.path)
            .collect();
        assert_eq!(kept, vec!["ipListId"]);
    }

    #[test]
    fn only_set_fields_are_compared_and_null_is_empty() {
        let desired =
            spec(json!({"roleId": "role-1", "description": "CI pipeline"})).to_application();
        assert!(differences(&desired, &app(answer())).is_empty());
        let desired =
            spec(json!({"roleId": "role-2", "allowLongLivedToken": true, "logo": "aGk="}))
                .to_application();
        assert_eq!(
            differences(&desired, &app(answer())),
            vec!["spec.allowLongLivedToken", "spec.logo", "spec.roleId"]
        );
        // A service-provider role someone added is removed when the spec gives a roleId.
        let mut with_sp = answer();
        with_sp["spRoleId"] = json!("sp-1");
        let desired = spec(json!({"roleId": "role-1"})).to_application();
        assert_eq!(differences(&desired, &app(with_sp)), vec!["spec.spRoleId"]);
    }

    #[test]
    fn the_template_is_never_compared() {
        let desired =
            spec(json!({"roleId": "role-1", "applicationTemplateId": "other"})).to_application();
        assert!(differences(&desired, &app(answer())).is_empty());
    }

    #[test]
    fn the_shared_secret_is_read_but_never_sent_nor_printed() {
        let mut created = answer();
        created["sharedSecret"] = json!("fHpRFX-generated");
        let created = app(created);
        assert_eq!(
            created.shared_secret.as_ref().map(SecretString::expose),
            Some("fHpRFX-generated")
        );
        assert!(!format!("{created:?}").contains("fHpRFX"));
        assert!(!serde_json::to_string(&created).unwrap().contains("fHpRFX"));
        assert!(
            !serde_json::to_string(&created.parms(false))
                .unwrap()
                .contains("fHpRFX")
        );
        assert!(app(answer()).shared_secret.is_none());
    }

    #[test]
    fn status_shows_name_and_template_but_not_the_login_date() {
        let s = Entrust::summary(&app(answer()));
        assert_eq!(
            s,
            BTreeMap::from([
                (
                    "applicationTemplate".to_owned(),
                    "Administration API".to_owned()
                ),
                ("name".to_owned(), "ci".to_owned()),
            ])
        );
    }
}
