//! LdapSettings: the LDAP settings of a VMware Cloud Director organisation
//! (`/cloudapi/v1/orgSettings/ldap`, a singleton per IdentityApi).
//!
//! The settings always exist: the operator adopts them, never creates or deletes them. The
//! bind password cannot be read back, so it is sent on the first apply and whenever its
//! Secret changes, and left out otherwise (VCD keeps the stored one).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonSpec, ManagedStatus, SecretKeyRef};

/// The LDAP settings of the organisation an IdentityApi logs in to (one per IdentityApi).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "identity.operator.dev",
    version = "v1alpha1",
    kind = "LdapSettings",
    plural = "ldapsettings",
    namespaced,
    status = "ManagedStatus",
    shortname = "ldaps",
    category = "identity",
    doc = "The LDAP settings of a VMware Cloud Director organisation (a singleton per IdentityApi), reconciled against the cloudapi.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"External-ID","type":"string","jsonPath":".status.externalId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!has(self.settingsSource) || self.settingsSource != 'DEFINED' || has(self.definedSettings)").message("settingsSource DEFINED needs definedSettings"))]
#[x_kube(validation = Rule::new("!self.enabled || has(self.settingsSource)").message("enabled LDAP needs a settingsSource (INHERIT_SYSTEM or DEFINED)"))]
#[x_kube(validation = Rule::new("!has(self.deletionPolicy)").message("deletionPolicy does not apply: the LDAP settings of an organisation always exist; set disableOnDelete: true to disable LDAP when this resource is deleted"))]
#[serde(rename_all = "camelCase")]
pub struct LdapSettingsSpec {
    #[serde(flatten)]
    pub common: CommonSpec,
    /// Whether LDAP is enabled for the organisation.
    pub enabled: bool,
    /// Where the organisation's LDAP settings come from: `INHERIT_SYSTEM` (the system LDAP,
    /// optionally with inheritedCustomUsersOu) or `DEFINED` (definedSettings). Required when
    /// enabled. VCD refuses to change it while users or groups imported from LDAP exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_source: Option<SettingsSource>,
    /// Custom users OU when inheriting the system settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited_custom_users_ou: Option<String>,
    /// The organisation's own LDAP settings (with settingsSource DEFINED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defined_settings: Option<DefinedLdapSettings>,
    /// On deletion of this resource, disable LDAP for the organisation (`enabled: false`).
    /// Default false: the settings are left as they are. Only then does the resource carry a
    /// finalizer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_on_delete: bool,
}

impl crate::engine::ManagedSpec for LdapSettingsSpec {
    fn common(&self) -> &CommonSpec {
        &self.common
    }
}

/// Where an organisation's LDAP settings come from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum SettingsSource {
    /// The system (provider) LDAP settings.
    #[serde(rename = "INHERIT_SYSTEM")]
    InheritSystem,
    /// The organisation's own settings, from definedSettings.
    #[serde(rename = "DEFINED")]
    Defined,
}

impl SettingsSource {
    fn as_str(self) -> &'static str {
        match self {
            SettingsSource::InheritSystem => "INHERIT_SYSTEM",
            SettingsSource::Defined => "DEFINED",
        }
    }
}

/// The organisation's own LDAP server and search settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefinedLdapSettings {
    /// LDAP server host name.
    #[schemars(length(min = 1))]
    pub host_name: String,
    /// LDAP server port (1..65535).
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Use LDAPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl: Option<bool>,
    /// Turn off paged searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paged_search_disabled: Option<bool>,
    /// Page size of paged searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub page_size: Option<i32>,
    /// Maximum number of results of a search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_results: Option<i32>,
    /// Maximum number of groups a user may be a member of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_user_groups: Option<i32>,
    /// Base DN of searches.
    #[schemars(length(min = 1))]
    pub search_base: String,
    /// Bind user name (DN).
    #[schemars(length(min = 1))]
    pub user_name: String,
    /// Secret key holding the bind password. The API never returns it: it is sent on the first
    /// apply and whenever the Secret changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// Base DN of group searches (default: searchBase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_search_base: Option<String>,
    /// Label of the LDAP login button in the VCD UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_ui_button_label: Option<String>,
    /// LDAP attributes of users. Attributes never set here keep their current value; one taken
    /// out of the spec is cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_attributes: Option<LdapUserAttributes>,
    /// LDAP attributes of groups. Attributes never set here keep their current value; one taken
    /// out of the spec is cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_attributes: Option<LdapGroupAttributes>,
}

/// LDAP attribute names of users (LdapUserAttributes, as VCD names it [I]). Also the wire type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LdapUserAttributes {
    /// Object class of user entries, e.g. `inetOrgPerson` or `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_class: Option<String>,
    /// Attribute holding the unique identifier, e.g. `objectGuid` or `uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_identifier: Option<String>,
    /// Attribute holding the login name, e.g. `sAMAccountName` or `uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Attribute holding the email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Attribute holding the display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Attribute holding the given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Attribute holding the surname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surname: Option<String>,
    /// Attribute holding the telephone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    /// Attribute identifying the user in group memberships, e.g. `dn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_membership_identifier: Option<String>,
    /// Attribute linking back to the groups of a user, e.g. `tokenGroups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_back_link_identifier: Option<String>,
    /// Attribute holding the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Attribute identifying the manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_identifier: Option<String>,
}

/// LDAP attribute names of groups (LdapGroupAttributes, as VCD names it [I]). Also the wire
/// type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LdapGroupAttributes {
    /// Object class of group entries, e.g. `group` or `groupOfUniqueNames`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_class: Option<String>,
    /// Attribute holding the unique identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_identifier: Option<String>,
    /// Attribute holding the group name, e.g. `cn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    /// Attribute listing the members, e.g. `member`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<String>,
    /// Attribute identifying members, e.g. `dn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_identifier: Option<String>,
    /// Attribute linking back from users, e.g. `objectSid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_link_identifier: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// VCD cloudapi wire format and adapter
// ---------------------------------------------------------------------------------------------

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::Value;

use super::common::{
    Clear, Removable, kept_fields, record_applied, removals, removed_drift, removed_fields,
    stated_fields,
};
use crate::engine::diff::subset_diff;
use crate::engine::export::{Draft, Listed};
use crate::engine::secrets::SecretValues;
use crate::engine::{Adapter, Context, Error, Observed};
use crate::identity::{ApiError, IdentityClient, SecretString};
use crate::kinds::identity_api::Provider;

const PATH: &str = "cloudapi/v1/orgSettings/ldap";

/// OrganizationLdapSettings, as `GET/PUT /cloudapi/v1/orgSettings/ldap` carry it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationLdapSettings {
    /// Required by PUT.
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited_custom_users_ou: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defined_settings: Option<LdapDefinedSettings>,
    /// In desired settings: the fields taken out of the spec since the last sync.
    #[serde(skip)]
    pub removed: Vec<&'static Removable>,
}

/// LdapDefinedSettings: the organisation's own LDAP server (with settingsSource DEFINED).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LdapDefinedSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paged_search_disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_user_groups: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Write-only: GET answers null, and a PUT without it keeps the stored password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_search_base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_ui_button_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_attributes: Option<LdapUserAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_attributes: Option<LdapGroupAttributes>,
}

/// A field the spec and VCD name alike, left out of the PUT once taken out of the spec.
const fn omitted(path: &'static str) -> Removable {
    Removable::same(path, Clear::Omit)
}

/// What taking a field out of the spec does (docs/vendor-choices.md): VCD's PUT replaces the
/// whole object, so the field is left out of the next PUT and VCD clears it or puts its default
/// back. The bind password is the exception: an omitted password means "unchanged".
const REMOVABLE: &[Removable] = &[
    omitted("settingsSource"),
    omitted("inheritedCustomUsersOu"),
    omitted("definedSettings"),
    omitted("definedSettings.ssl"),
    omitted("definedSettings.pagedSearchDisabled"),
    omitted("definedSettings.pageSize"),
    omitted("definedSettings.maxResults"),
    omitted("definedSettings.maxUserGroups"),
    Removable::new(
        "definedSettings.passwordSecretRef",
        "definedSettings.password",
        Clear::Keep {
            why: "VCD keeps the bind password it has: a PUT without one leaves it unchanged",
            observable: false,
        },
    ),
    omitted("definedSettings.groupSearchBase"),
    omitted("definedSettings.customUiButtonLabel"),
    omitted("definedSettings.userAttributes"),
    omitted("definedSettings.userAttributes.objectClass"),
    omitted("definedSettings.userAttributes.objectIdentifier"),
    omitted("definedSettings.userAttributes.userName"),
    omitted("definedSettings.userAttributes.email"),
    omitted("definedSettings.userAttributes.displayName"),
    omitted("definedSettings.userAttributes.givenName"),
    omitted("definedSettings.userAttributes.surname"),
    omitted("definedSettings.userAttributes.telephone"),
    omitted("definedSettings.userAttributes.groupMembershipIdentifier"),
    omitted("definedSettings.userAttributes.groupBackLinkIdentifier"),
    omitted("definedSettings.userAttributes.domain"),
    omitted("definedSettings.userAttributes.managerIdentifier"),
    omitted("definedSettings.groupAttributes"),
    omitted("definedSettings.groupAttributes.objectClass"),
    omitted("definedSettings.groupAttributes.objectIdentifier"),
    omitted("definedSettings.groupAttributes.groupName"),
    omitted("definedSettings.groupAttributes.membership"),
    omitted("definedSettings.groupAttributes.membershipIdentifier"),
    omitted("definedSettings.groupAttributes.backLinkIdentifier"),
];

impl LdapSettingsSpec {
    /// The removable fields this spec sets.
    fn stated(&self) -> Vec<String> {
        let spec = serde_json::to_value(self).expect("serializable");
        let paths: Vec<&str> = REMOVABLE.iter().map(|r| r.spec).collect();
        stated_fields(&spec, &paths)
    }

    fn to_settings(&self, password: Option<SecretString>) -> OrganizationLdapSettings {
        OrganizationLdapSettings {
            enabled: self.enabled,
            settings_source: self.settings_source.map(|s| s.as_str().to_owned()),
            inherited_custom_users_ou: self.inherited_custom_users_ou.clone(),
            defined_settings: self.defined_settings.as_ref().map(|d| LdapDefinedSettings {
                host_name: Some(d.host_name.clone()),
                port: Some(d.port),
                ssl: d.ssl,
                paged_search_disabled: d.paged_search_disabled,
                page_size: d.page_size,
                max_results: d.max_results,
                max_user_groups: d.max_user_groups,
                search_base: Some(d.search_base.clone()),
                user_name: Some(d.user_name.clone()),
                password,
                group_search_base: d.group_search_base.clone(),
                custom_ui_button_label: d.custom_ui_button_label.clone(),
                user_attributes: d.user_attributes.clone(),
                group_attributes: d.group_attributes.clone(),
            }),
            removed: Vec::new(),
        }
    }

    fn password_ref(&self) -> Option<&SecretKeyRef> {
        self.defined_settings
            .as_ref()
            .and_then(|d| d.password_secret_ref.as_ref())
    }
}

/// The body of a PUT: the settings as they are, with every field the spec sets replaced and
/// every field taken out of the spec left out. VCD's PUT replaces the whole object, so sending
/// only the spec would reset what the spec leaves out (server defaults, attributes set by hand)
/// whenever something else changed. The password is sent only when asked for (first apply,
/// rotated Secret).
fn put_body(
    desired: &OrganizationLdapSettings,
    observed: &OrganizationLdapSettings,
    send_password: bool,
) -> Value {
    let mut body = serde_json::to_value(observed).expect("serializable");
    for removed in &desired.removed {
        if removed.clear == Clear::Omit {
            omit(&mut body, removed.wire);
        }
    }
    merge(
        &mut body,
        &serde_json::to_value(desired).expect("serializable"),
    );
    if !send_password
        && let Some(defined) = body
            .get_mut("definedSettings")
            .and_then(Value::as_object_mut)
    {
        defined.remove("password");
    }
    body
}

/// Takes the field at the dotted `path` out of `value`.
fn omit(value: &mut Value, path: &str) {
    let (parents, last) = path.rsplit_once('.').unwrap_or(("", path));
    let parent = parents
        .split('.')
        .filter(|k| !k.is_empty())
        .try_fold(value, |v, key| v.get_mut(key));
    if let Some(Value::Object(fields)) = parent {
        fields.remove(last);
    }
}

/// Overlays `patch` on `base`, object by object.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (k, v) in patch {
                merge(base.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// "Performing this change would strand imported users or groups." is VCD's answer to
/// disabling LDAP, or switching its source, while users or groups imported from it exist.
/// The vendor's message stays; what to do about it is added.
fn explain_strand(err: ApiError) -> Error {
    match err {
        ApiError::Status {
            method,
            path,
            status: 400,
            message,
        } if message.contains("strand imported users or groups") => {
            Error::Rejected(ApiError::Status {
                method,
                path,
                status: 400,
                message: format!(
                    "{message} — the organisation has users or groups imported from LDAP: keep \
                     LDAP enabled with the same settingsSource, or remove those users and \
                     groups in VCD first"
                ),
            })
        }
        other => other.into(),
    }
}

/// The organisation the settings belong to: the remote identity shown in status.externalId.
fn org(api: &IdentityClient) -> String {
    api.organization().unwrap_or("organisation").to_owned()
}

async fn put(
    api: &IdentityClient,
    body: &Value,
) -> Result<Observed<OrganizationLdapSettings>, Error> {
    let resp = api
        .call(Method::PUT, PATH, Some(body))
        .await
        .map_err(explain_strand)?;
    Ok(Observed {
        id: org(api),
        remote: resp.decode(PATH)?,
    })
}

/// Reconciles LdapSettings against the VCD cloudapi.
pub struct Vcd;

/// The organisation's settings: every organisation has them.
async fn read(api: &IdentityClient) -> Result<Observed<OrganizationLdapSettings>, Error> {
    let resp = api.call(Method::GET, PATH, None).await?;
    Ok(Observed {
        id: org(api),
        remote: resp.decode(PATH)?,
    })
}

impl Adapter for Vcd {
    type Resource = LdapSettings;
    type Remote = OrganizationLdapSettings;
    const PROVIDER: Provider = Provider::Vcd;
    const CREATES: bool = false;
    const SINGLETON: bool = true;

    fn secret_refs(res: &LdapSettings) -> Vec<SecretKeyRef> {
        res.spec.password_ref().cloned().into_iter().collect()
    }

    fn desired(
        res: &LdapSettings,
        secrets: Option<&SecretValues>,
    ) -> Result<OrganizationLdapSettings, Error> {
        let password = match (res.spec.password_ref(), secrets) {
            (Some(r), Some(values)) => Some(values.require(r)?),
            _ => None,
        };
        let removed = removed_fields(res.status.as_ref(), &res.spec.stated());
        Ok(OrganizationLdapSettings {
            removed: removals(REMOVABLE, &removed),
            ..res.spec.to_settings(password)
        })
    }

    fn diff(
        desired: &OrganizationLdapSettings,
        observed: &OrganizationLdapSettings,
    ) -> Vec<String> {
        let mut desired = desired.clone();
        if let Some(d) = desired.defined_settings.as_mut() {
            d.password = None;
        }
        let d = serde_json::to_value(&desired).expect("serializable");
        let o = serde_json::to_value(observed).expect("serializable");
        let mut drift: Vec<String> = subset_diff(&d, &o)
            .iter()
            .map(|p| format!("spec.{p}"))
            .collect();
        drift.extend(removed_drift(&desired.removed, &o));
        drift
    }

    async fn find(
        api: &IdentityClient,
        _res: &LdapSettings,
        _id: Option<&str>,
    ) -> Result<Option<Observed<OrganizationLdapSettings>>, Error> {
        read(api).await.map(Some)
    }

    /// The organisation's settings, always there. The bind password is never returned: with
    /// settings of its own, the spec refers to a Secret key for it, to be filled in.
    async fn export(api: &IdentityClient) -> Result<Vec<Listed<OrganizationLdapSettings>>, Error> {
        let settings = read(api).await?;
        let mut spec = serde_json::to_value(&settings.remote).expect("serializable");
        if let Some(defined) = spec
            .get_mut("definedSettings")
            .and_then(Value::as_object_mut)
        {
            defined.remove("password");
        }
        let org = org(api);
        let label = format!("VCD LDAP settings of organization {org:?}");
        let mut draft = Draft::new(format!("{org}-ldap"), label, spec);
        if settings.remote.defined_settings.is_some() {
            draft = draft.write_only(
                "/definedSettings/passwordSecretRef",
                "password",
                "the LDAP bind password (definedSettings.password, which VCD never returns)",
            );
        }
        Ok(vec![Listed {
            observed: settings,
            draft: Ok(draft),
        }])
    }

    async fn create(
        _api: &IdentityClient,
        _res: &LdapSettings,
        _desired: &OrganizationLdapSettings,
    ) -> Result<Observed<OrganizationLdapSettings>, Error> {
        // `find` always finds the settings: every organisation has them.
        Err(Error::RemoteNotFound(
            "the organisation's LDAP settings could not be read".into(),
        ))
    }

    async fn update(
        api: &IdentityClient,
        _res: &LdapSettings,
        _id: &str,
        desired: &OrganizationLdapSettings,
        observed: &OrganizationLdapSettings,
        secrets_changed: bool,
    ) -> Result<Observed<OrganizationLdapSettings>, Error> {
        put(api, &put_body(desired, observed, secrets_changed)).await
    }

    /// With `disableOnDelete`: LDAP is switched off, everything else left as it is.
    async fn delete(api: &IdentityClient, _res: &LdapSettings, _id: &str) -> Result<(), Error> {
        let current: OrganizationLdapSettings =
            api.call(Method::GET, PATH, None).await?.decode(PATH)?;
        if !current.enabled {
            return Ok(());
        }
        let disabled = OrganizationLdapSettings {
            enabled: false,
            ..current.clone()
        };
        put(api, &put_body(&disabled, &current, false)).await?;
        Ok(())
    }

    fn deletes_remote(res: &LdapSettings) -> bool {
        res.spec.disable_on_delete
    }

    async fn finish(
        _ctx: &Context,
        _api: &IdentityClient,
        res: &LdapSettings,
        settings: &Observed<OrganizationLdapSettings>,
        _fresh: bool,
        status: &mut ManagedStatus,
    ) -> Result<(), Error> {
        let observed = serde_json::to_value(&settings.remote).expect("serializable");
        let removed = removed_fields(res.status.as_ref(), &res.spec.stated());
        let kept = kept_fields(&removals(REMOVABLE, &removed), &observed);
        record_applied(status, res.spec.stated(), &kept, res.metadata.generation);
        Ok(())
    }

    fn summary(observed: &OrganizationLdapSettings) -> BTreeMap<String, String> {
        let mut s = BTreeMap::new();
        s.insert("enabled".into(), observed.enabled.to_string());
        if let Some(source) = &observed.settings_source {
            s.insert("settingsSource".into(), source.clone());
        }
        if let Some(host) = observed
            .defined_settings
            .as_ref()
            .and_then(|d| d.host_name.as_ref())
        {
            s.insert("hostName".into(), host.clone());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(extra: Value) -> LdapSettings {
        let mut spec = json!({
            "apiRef": {"name": "vcd"},
            "enabled": true,
            "settingsSource": "DEFINED",
            "definedSettings": {
                "hostName": "ldap.acme.example", "port": 636, "ssl": true,
                "searchBase": "dc=acme,dc=example", "userName": "cn=bind,dc=acme,dc=example",
                "passwordSecretRef": {"name": "ldap-bind", "key": "password"},
                "userAttributes": {"objectClass": "inetOrgPerson", "userName": "uid"},
            },
        });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        LdapSettings::new("acme", serde_json::from_value(spec).unwrap())
    }

    fn secrets(password: &str) -> SecretValues {
        let mut values = SecretValues::default();
        let r = SecretKeyRef {
            name: "ldap-bind".into(),
            key: "password".into(),
        };
        values.insert(r, SecretString::new(password));
        values
    }

    /// What the simulator (and VCD) answer: every field, nulls included, never the password.
    fn observed(host: &str) -> OrganizationLdapSettings {
        serde_json::from_value(json!({
            "enabled": true, "settingsSource": "DEFINED", "inheritedCustomUsersOu": null,
            "definedSettings": {
                "hostName": host, "port": 636, "ssl": true, "pagedSearchDisabled": false,
                "pageSize": 200, "maxResults": 200, "maxUserGroups": 1015,
                "searchBase": "dc=acme,dc=example", "userName": "cn=bind,dc=acme,dc=example",
                "password": null, "groupSearchBase": null, "customUiButtonLabel": "Corporate login",
                "userAttributes": {"objectClass": "inetOrgPerson", "userName": "uid", "email": "mail"},
                "groupAttributes": null,
            },
        }))
        .unwrap()
    }

    #[test]
    fn spec_maps_to_organization_ldap_settings() {
        let res = spec(json!({}));
        let wire = Vcd::desired(&res, Some(&secrets("s3cret"))).unwrap();
        assert_eq!(
            serde_json::to_value(&wire).unwrap(),
            json!({
                "enabled": true,
                "settingsSource": "DEFINED",
                "definedSettings": {
                    "hostName": "ldap.acme.example", "port": 636, "ssl": true,
                    "searchBase": "dc=acme,dc=example", "userName": "cn=bind,dc=acme,dc=example",
                    "password": "s3cret",
                    "userAttributes": {"objectClass": "inetOrgPerson", "userName": "uid"},
                },
            })
        );
        // Without Secrets (comparing only) there is no password at all.
        let view = Vcd::desired(&res, None).unwrap();
        assert!(view.defined_settings.unwrap().password.is_none());
        let inherit = spec(json!({"settingsSource": "INHERIT_SYSTEM",
            "inheritedCustomUsersOu": "ou=acme", "definedSettings": null}));
        assert_eq!(
            serde_json::to_value(Vcd::desired(&inherit, None).unwrap()).unwrap(),
            json!({"enabled": true, "settingsSource": "INHERIT_SYSTEM", "inheritedCustomUsersOu": "ou=acme"})
        );
    }

    #[test]
    fn a_missing_secret_key_is_reported_by_name() {
        let err = Vcd::desired(&spec(json!({})), Some(&SecretValues::default())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key \"password\" not found in Secret \"ldap-bind\""
        );
    }

    #[test]
    fn diff_compares_what_the_spec_states_and_never_the_password() {
        let res = spec(json!({}));
        let desired = Vcd::desired(&res, Some(&secrets("s3cret"))).unwrap();
        assert!(Vcd::diff(&desired, &observed("ldap.acme.example")).is_empty());
        assert_eq!(
            Vcd::diff(&desired, &observed("rogue.example")),
            vec!["spec.definedSettings.hostName"]
        );
        let disabled = spec(json!({"enabled": false}));
        let desired = Vcd::desired(&disabled, None).unwrap();
        assert_eq!(
            Vcd::diff(&desired, &observed("ldap.acme.example")),
            vec!["spec.enabled"]
        );
    }

    #[test]
    fn put_keeps_what_the_spec_leaves_out_and_sends_the_password_only_when_asked() {
        let res = spec(json!({}));
        let desired = Vcd::desired(&res, Some(&secrets("s3cret"))).unwrap();
        let current = observed("old.example");
        let body = put_body(&desired, &current, true);
        assert_eq!(body["definedSettings"]["hostName"], "ldap.acme.example");
        assert_eq!(body["definedSettings"]["password"], "s3cret");
        assert_eq!(body["definedSettings"]["pageSize"], 200);
        assert_eq!(
            body["definedSettings"]["customUiButtonLabel"],
            "Corporate login"
        );
        assert_eq!(
            body["definedSettings"]["userAttributes"],
            json!({"objectClass": "inetOrgPerson", "userName": "uid", "email": "mail"})
        );
        let body = put_body(&desired, &current, false);
        let defined = body["definedSettings"].as_object().unwrap();
        assert!(!defined.contains_key("password"), "{body}");
        assert_eq!(body["enabled"], true);
        // Nulls of the GET answer are never sent back.
        assert!(!defined.contains_key("groupAttributes"), "{body}");
        assert!(
            !body
                .as_object()
                .unwrap()
                .contains_key("inheritedCustomUsersOu")
        );
    }

    #[test]
    fn removed_fields_are_left_out_of_the_put_and_the_password_is_reported() {
        let mut res = spec(json!({}));
        res.status = Some(ManagedStatus {
            applied_fields: [
                "settingsSource",
                "definedSettings",
                "definedSettings.ssl",
                "definedSettings.pageSize",
                "definedSettings.customUiButtonLabel",
                "definedSettings.userAttributes",
                "definedSettings.userAttributes.email",
                "definedSettings.passwordSecretRef",
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        });
        res.spec
            .defined_settings
            .as_mut()
            .unwrap()
            .password_secret_ref = None;
        let desired = Vcd::desired(&res, None).unwrap();
        let current = observed("ldap.acme.example");
        assert_eq!(
            Vcd::diff(&desired, &current),
            vec![
                "spec.definedSettings.pageSize",
                "spec.definedSettings.customUiButtonLabel",
                "spec.definedSettings.userAttributes.email",
            ]
        );
        let body = put_body(&desired, &current, false);
        let defined = body["definedSettings"].as_object().unwrap();
        for gone in ["pageSize", "customUiButtonLabel"] {
            assert!(!defined.contains_key(gone), "{gone} in {body}");
        }
        assert_eq!(
            body["definedSettings"]["userAttributes"],
            json!({"objectClass": "inetOrgPerson", "userName": "uid"})
        );
        // What the spec still states, and what it never stated, stay.
        assert_eq!(body["definedSettings"]["ssl"], true);
        assert_eq!(body["definedSettings"]["maxResults"], 200);
        let remote = serde_json::to_value(&current).unwrap();
        let removed = removed_fields(res.status.as_ref(), &res.spec.stated());
        let kept = kept_fields(&removals(REMOVABLE, &removed), &remote);
        assert_eq!(
            kept.iter().map(|k| k.path.as_str()).collect::<Vec<_>>(),
            vec!["definedSettings.passwordSecretRef"]
        );
    }

    #[test]
    fn stranding_users_is_terminal_and_keeps_the_vendor_message() {
        let err = explain_strand(ApiError::Status {
            method: "PUT".into(),
            path: PATH.into(),
            status: 400,
            message: "Performing this change would strand imported users or groups. [BAD_REQUEST]"
                .into(),
        });
        assert!(err.is_terminal());
        assert_eq!(err.reason().as_str(), "Rejected");
        let msg = err.to_string();
        assert!(
            msg.contains("Performing this change would strand imported users or groups.")
                && msg.contains("imported from LDAP"),
            "{msg}"
        );
        let other = explain_strand(ApiError::Status {
            method: "PUT".into(),
            path: PATH.into(),
            status: 503,
            message: "down".into(),
        });
        assert!(!other.is_terminal());
    }

    #[test]
    fn a_finalizer_only_with_disable_on_delete() {
        assert!(!Vcd::deletes_remote(&spec(json!({}))));
        assert!(Vcd::deletes_remote(&spec(json!({"disableOnDelete": true}))));
        assert_eq!(
            Vcd::secret_refs(&spec(json!({}))),
            vec![SecretKeyRef {
                name: "ldap-bind".into(),
                key: "password".into()
            }]
        );
    }

    #[test]
    fn summary_names_source_and_host() {
        let s = Vcd::summary(&observed("ldap.acme.example"));
        assert_eq!(s["enabled"], "true");
        assert_eq!(s["settingsSource"], "DEFINED");
        assert_eq!(s["hostName"], "ldap.acme.example");
    }

    fn cel_errors(spec: Value) -> Vec<String> {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(LdapSettings::crd()).unwrap();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let object = json!({"apiVersion": "identity.operator.dev/v1alpha1",
            "kind": "LdapSettings", "metadata": {"name": "x"}, "spec": spec});
        match kube::core::cel::Validator::new().validate(schema, &object, None) {
            Ok(()) => vec![],
            Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn cel_rules() {
        assert!(cel_errors(json!({"apiRef": {"name": "a"}, "enabled": false})).is_empty());
        let errs = cel_errors(json!({"apiRef": {"name": "a"}, "enabled": true}));
        assert!(
            errs.iter().any(|e| e.contains("settingsSource")),
            "{errs:?}"
        );
        let errs = cel_errors(
            json!({"apiRef": {"name": "a"}, "enabled": false, "deletionPolicy": "Delete"}),
        );
        assert!(
            errs.iter().any(|e| e.contains("disableOnDelete")),
            "{errs:?}"
        );
    }
}

/// Property tests of the PUT body: VCD's PUT replaces the whole object, so the body must be the
/// settings as they are with exactly the spec's fields overlaid.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::engine::diff::props::json_value;
    use crate::engine::diff::subset_diff;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn merged_body_states_the_spec_and_keeps_the_rest(base in json_value(), patch in json_value()) {
            let mut body = base.clone();
            merge(&mut body, &patch);
            // Everything the spec states is in the body ...
            prop_assert!(subset_diff(&patch, &body).is_empty());
            // ... and whatever the spec leaves out stays as VCD holds it.
            if let (Value::Object(b), Value::Object(p), Value::Object(merged)) = (&base, &patch, &body) {
                for (k, v) in b.iter().filter(|(k, _)| !p.contains_key(*k)) {
                    prop_assert_eq!(merged.get(k), Some(v));
                }
            }
            // Merging the same spec again changes nothing.
            let mut again = body.clone();
            merge(&mut again, &patch);
            prop_assert_eq!(again, body);
        }
    }
}
