//! OrgConnection: a connection enabled for an Auth0 organization
//! (`/api/v2/organizations/{id}/connections/{connection_id}`).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonSpec, ManagedStatus};

/// An Auth0 connection enabled for an organization, with its per-organization settings.
/// Settings left unset are left as they are in Auth0.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "identity.operator.dev",
    version = "v1alpha1",
    kind = "OrgConnection",
    namespaced,
    status = "ManagedStatus",
    shortname = "orgconn",
    category = "identity",
    doc = "An Auth0 connection enabled for an organization, reconciled against the Auth0 Management API v2.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"External-ID","type":"string","jsonPath":".status.externalId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OrgConnectionSpec {
    #[serde(flatten)]
    pub common: CommonSpec,
    /// Auth0 organization id (`org_...`). Immutable.
    #[schemars(length(min = 1, max = 50))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("organizationId is immutable"))]
    pub organization_id: String,
    /// Auth0 connection id (`con_...`) of a connection that exists in the tenant. Immutable.
    #[schemars(length(min = 1, max = 50))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("connectionId is immutable"))]
    pub connection_id: String,
    /// Name of the connection shown for this organization (1..50 characters, no spaces: the
    /// pattern `^[^ ]*$` of Auth0's document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 50), regex(pattern = r"^[^ ]*$"))]
    pub organization_connection_name: Option<String>,
    /// Give users who log in through this connection membership of the organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign_membership_on_login: Option<bool>,
    /// Show a login button for this connection (enterprise connections; Auth0's default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_as_button: Option<bool>,
    /// Allow sign-up through this connection (database connections; Auth0's default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_signup_enabled: Option<bool>,
    /// What members of the organization may do with this connection: none, readonly, limited
    /// or full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_access_level: Option<OrganizationAccessLevel>,
    /// Whether the connection is enabled for the organization (Auth0's default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_enabled: Option<bool>,
}

impl crate::engine::ManagedSpec for OrgConnectionSpec {
    fn common(&self) -> &CommonSpec {
        &self.common
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrganizationAccessLevel {
    None,
    Readonly,
    Limited,
    Full,
}

impl OrganizationAccessLevel {
    fn as_str(self) -> &'static str {
        match self {
            OrganizationAccessLevel::None => "none",
            OrganizationAccessLevel::Readonly => "readonly",
            OrganizationAccessLevel::Limited => "limited",
            OrganizationAccessLevel::Full => "full",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Auth0 Management API v2 wire format and adapter
// ---------------------------------------------------------------------------------------------

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Map, Value};

use super::collection::Collection;
use super::common::{
    Blank, Clear, Removable, SecretKeyRef, record_applied, removals, removed_fields, stated_fields,
};
use crate::engine::diff::camel_case;
use crate::engine::export::{Draft, Listed};
use crate::engine::finalizer::creation_recorded;
use crate::engine::secrets::SecretValues;
use crate::engine::{Adapter, Context, Error, Observed};
use crate::identity::lists::Items;
use crate::identity::{ApiError, IdentityClient, path_segment};
use crate::kinds::identity_api::Provider;

/// A connection enabled for an organization, as the Management API names it (the answer of
/// GET, POST and PATCH `/api/v2/organizations/{id}/connections[/{connection_id}]`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct OrganizationConnection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_connection_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign_membership_on_login: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_as_button: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_signup_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_access_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_enabled: Option<bool>,
    /// The tenant's connection; read-only.
    #[serde(default, skip_serializing)]
    pub connection: Option<OrganizationConnectionDetails>,
    /// In a desired connection: the settings taken out of the spec since the last sync.
    #[serde(skip)]
    pub removed: Vec<&'static Removable>,
}

/// `connection` in an OrganizationConnection answer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct OrganizationConnectionDetails {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub strategy: Option<String>,
}

/// What Auth0 holds for a field its answer leaves out. show_as_button and is_signup_enabled
/// are documented [C]; the rest is inferred [I]. Above all, Auth0 accepts a `null` access
/// level on PATCH but never returns one: an absent level is "none", never a difference to
/// repair again and again.
fn auth0_default(field: &str) -> Option<Value> {
    match field {
        "assign_membership_on_login" | "is_signup_enabled" => Some(Value::Bool(false)),
        "show_as_button" | "is_enabled" => Some(Value::Bool(true)),
        "organization_access_level" => Some(Value::from("none")),
        _ => None,
    }
}

impl OrganizationConnection {
    /// The settable fields this object states, in Auth0's names (never `null`: a field the
    /// spec leaves unset is left as it is in Auth0).
    fn settable(&self) -> Map<String, Value> {
        let Value::Object(mut fields) = serde_json::to_value(self).expect("serializable") else {
            unreachable!("a struct serializes to an object")
        };
        fields.remove("connection_id");
        fields.retain(|_, v| !v.is_null());
        fields
    }
}

/// What taking a setting out of the spec does (docs/vendor-choices.md): the PATCH resets it,
/// with `null` where Auth0's document allows it (the name is cleared; the access level and the
/// enabled flag fall back to Auth0's defaults), else with Auth0's documented default.
const REMOVABLE: &[Removable] = &[
    Removable::new(
        "organizationConnectionName",
        "organization_connection_name",
        Clear::To(Blank::Null),
    ),
    Removable::new(
        "assignMembershipOnLogin",
        "assign_membership_on_login",
        Clear::To(Blank::Bool(false)),
    ),
    Removable::new(
        "showAsButton",
        "show_as_button",
        Clear::To(Blank::Bool(true)),
    ),
    Removable::new(
        "isSignupEnabled",
        "is_signup_enabled",
        Clear::To(Blank::Bool(false)),
    ),
    Removable::new(
        "organizationAccessLevel",
        "organization_access_level",
        Clear::To(Blank::Null),
    ),
    Removable::new("isEnabled", "is_enabled", Clear::To(Blank::Null)),
];

/// The fields of `desired` that `observed` does not match: exactly the body of one PATCH.
/// A removed setting is reset when Auth0 holds anything but its default.
pub fn changes(
    desired: &OrganizationConnection,
    observed: &OrganizationConnection,
) -> Map<String, Value> {
    let have = observed.settable();
    let current = |field: &str| have.get(field).cloned().or_else(|| auth0_default(field));
    let mut body: Map<String, Value> = desired
        .settable()
        .into_iter()
        .filter(|(field, want)| current(field).as_ref() != Some(want))
        .collect();
    for removed in &desired.removed {
        if let Clear::To(blank) = removed.clear
            && current(removed.wire) != auth0_default(removed.wire)
        {
            body.insert(removed.wire.to_owned(), blank.value());
        }
    }
    body
}

impl OrgConnectionSpec {
    fn to_organization_connection(&self) -> OrganizationConnection {
        OrganizationConnection {
            connection_id: Some(self.connection_id.clone()),
            organization_connection_name: self.organization_connection_name.clone(),
            assign_membership_on_login: self.assign_membership_on_login,
            show_as_button: self.show_as_button,
            is_signup_enabled: self.is_signup_enabled,
            organization_access_level: self
                .organization_access_level
                .map(|l| l.as_str().to_owned()),
            is_enabled: self.is_enabled,
            connection: None,
            removed: Vec::new(),
        }
    }

    /// The removable settings this spec sets.
    fn stated(&self) -> Vec<String> {
        let spec = serde_json::to_value(self).expect("serializable");
        let paths: Vec<&str> = REMOVABLE.iter().map(|r| r.spec).collect();
        stated_fields(&spec, &paths)
    }

    fn connections_path(&self) -> String {
        format!(
            "api/v2/organizations/{}/connections",
            path_segment(&self.organization_id)
        )
    }

    fn connection_path(&self) -> String {
        format!(
            "{}/{}",
            self.connections_path(),
            path_segment(&self.connection_id)
        )
    }

    /// The remote identity: the pair (organization, connection).
    fn external_id(&self) -> String {
        external_id(&self.organization_id, &self.connection_id)
    }
}

/// Reconciles OrgConnections against the Auth0 Management API v2.
pub struct Auth0;

/// The id an OrgConnection records in `status.externalId`: `<organization>/<connection>`.
fn external_id(organization: &str, connection: &str) -> String {
    format!("{organization}/{connection}")
}

/// Connections per page of an organization's list. Auth0 documents a default of 50 [C] and
/// refuses more than 100 per page [I].
const PER_PAGE: usize = 100;

impl crate::identity::lists::Item for OrganizationConnection {
    fn id(&self) -> Option<&str> {
        self.connection_id.as_deref()
    }
    fn key(&self) -> Option<&str> {
        self.connection_id.as_deref()
    }
}

/// The connections enabled for the organization whose list is at `path`.
fn connections<'a>(
    api: &'a IdentityClient,
    path: &'a str,
) -> Collection<'a, OrganizationConnection> {
    Collection::new(api, path, "Auth0 organization connections", "connectionId")
}

/// Overlays a connection the operator just wrote on its organization's list snapshot.
fn remember(
    api: &IdentityClient,
    res: &OrgConnection,
    written: OrganizationConnection,
) -> Observed<OrganizationConnection> {
    let path = res.spec.connections_path();
    connections(api, &path).remember(&res.spec.connection_id, written.clone());
    Observed {
        id: res.spec.external_id(),
        remote: written,
    }
}

/// Every connection enabled for the organization at `path`, page by page (`[]` when Auth0
/// knows no such organization: the create then says which of the two is missing).
async fn list_connections(
    api: &IdentityClient,
    path: &str,
) -> Result<Items<OrganizationConnection>, ApiError> {
    #[derive(Deserialize)]
    struct Page {
        connections: Items<OrganizationConnection>,
        #[serde(default)]
        total: Option<usize>,
    }
    let mut all = Items::default();
    for page in 0.. {
        let query = format!("{path}?page={page}&per_page={PER_PAGE}&include_totals=true");
        let page: Page = match api.call(Method::GET, &query, None).await {
            Ok(resp) => resp.decode(path)?,
            Err(e) if e.is_not_found() => return Ok(Items::default()),
            Err(e) => return Err(e),
        };
        let short = page.connections.len() < PER_PAGE;
        all.append(page.connections);
        if short || page.total.is_some_and(|total| all.len() >= total) {
            break;
        }
    }
    Ok(all)
}

/// The organization's connection, read by itself: `None` when Auth0 says it is not enabled.
async fn read_connection(
    api: &IdentityClient,
    res: &OrgConnection,
) -> Result<Option<OrganizationConnection>, Error> {
    let path = res.spec.connection_path();
    match api.call(Method::GET, &path, None).await {
        Ok(resp) => Ok(Some(resp.decode(&path)?)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// An organization as `GET /api/v2/organizations` answers it.
#[derive(Deserialize)]
struct Organization {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

const ORGANIZATIONS: &str = "api/v2/organizations";

/// Every organization of the tenant, page by page.
async fn list_organizations(api: &IdentityClient) -> Result<Vec<Organization>, ApiError> {
    #[derive(Deserialize)]
    struct Page {
        organizations: Vec<Organization>,
        #[serde(default)]
        total: Option<usize>,
    }
    let mut all = Vec::new();
    for page in 0.. {
        let query = format!("{ORGANIZATIONS}?page={page}&per_page={PER_PAGE}&include_totals=true");
        let page: Page = api
            .call(Method::GET, &query, None)
            .await?
            .decode(ORGANIZATIONS)?;
        let short = page.organizations.len() < PER_PAGE;
        all.extend(page.organizations);
        if short || page.total.is_some_and(|total| all.len() >= total) {
            break;
        }
    }
    Ok(all)
}

/// For `export`: the spec that manages `connection` of `org` as it is, stating only what
/// differs from Auth0's defaults.
fn draft(org: &Organization, connection: &OrganizationConnection) -> Result<Draft, String> {
    let connection_id = connection
        .connection_id
        .clone()
        .ok_or("Auth0 answered it without a connection_id")?;
    let mut fields = connection.settable();
    fields.remove("connection");
    fields.retain(|field, value| auth0_default(field).as_ref() != Some(value));
    let mut spec = crate::engine::export::camel_keys(Value::Object(fields));
    spec["organizationId"] = org.id.clone().into();
    spec["connectionId"] = connection_id.clone().into();
    let org_name = org.name.clone().unwrap_or_else(|| org.id.clone());
    let details = connection.connection.as_ref();
    let name = details
        .and_then(|c| c.name.clone())
        .unwrap_or_else(|| connection_id.clone());
    let strategy = details.and_then(|c| c.strategy.as_deref()).unwrap_or("?");
    let label = format!(
        "Auth0 connection {name:?} ({connection_id}, {strategy}) of organization {org_name:?} ({})",
        org.id
    );
    Ok(Draft::new(format!("{org_name}-{name}"), label, spec))
}

impl Adapter for Auth0 {
    type Resource = OrgConnection;
    type Remote = OrganizationConnection;
    const PROVIDER: Provider = Provider::Auth0;
    const CREATES: bool = true;

    fn secret_refs(_res: &OrgConnection) -> Vec<SecretKeyRef> {
        Vec::new()
    }

    fn desired(
        res: &OrgConnection,
        _secrets: Option<&SecretValues>,
    ) -> Result<OrganizationConnection, Error> {
        let removed = removed_fields(res.status.as_ref(), &res.spec.stated());
        Ok(OrganizationConnection {
            removed: removals(REMOVABLE, &removed),
            ..res.spec.to_organization_connection()
        })
    }

    async fn export(api: &IdentityClient) -> Result<Vec<Listed<OrganizationConnection>>, Error> {
        let mut listed = Vec::new();
        for org in list_organizations(api).await? {
            let path = format!("{ORGANIZATIONS}/{}/connections", path_segment(&org.id));
            for connection in list_connections(api, &path).await?.to_vec() {
                let draft = draft(&org, &connection);
                let connection_id = connection.connection_id.as_deref().unwrap_or_default();
                let id = external_id(&org.id, connection_id);
                listed.push(Listed {
                    observed: Observed {
                        id,
                        remote: connection,
                    },
                    draft,
                });
            }
        }
        Ok(listed)
    }

    fn diff(desired: &OrganizationConnection, observed: &OrganizationConnection) -> Vec<String> {
        changes(desired, observed)
            .keys()
            .map(|field| format!("spec.{}", camel_case(field)))
            .collect()
    }

    /// Always by the natural key (organization, connection) from the spec, which is immutable,
    /// in the organization's list: one list call serves every connection of the organization
    /// looked up within a short window (a burst of creations, a resync).
    async fn find(
        api: &IdentityClient,
        res: &OrgConnection,
        _id: Option<&str>,
    ) -> Result<Option<Observed<OrganizationConnection>>, Error> {
        let path = res.spec.connections_path();
        let listed = connections(api, &path)
            .listed(|| list_connections(api, &path))
            .await?;
        let remote = match listed.get(&res.spec.connection_id) {
            Some(remote) => Some(remote),
            // An earlier enable may have worked though its answer was lost: the connection
            // itself is read, not only a list (which may lag behind the write).
            None if creation_recorded(res) => read_connection(api, res).await?,
            None => None,
        };
        Ok(remote.map(|remote| Observed {
            id: res.spec.external_id(),
            remote,
        }))
    }

    async fn create(
        api: &IdentityClient,
        res: &OrgConnection,
        desired: &OrganizationConnection,
    ) -> Result<Observed<OrganizationConnection>, Error> {
        let path = res.spec.connections_path();
        let mut body = desired.settable();
        body.insert(
            "connection_id".into(),
            Value::from(res.spec.connection_id.clone()),
        );
        match api
            .call(Method::POST, &path, Some(&Value::Object(body)))
            .await
        {
            Ok(resp) => Ok(remember(api, res, resp.decode(&path)?)),
            // No such organization or connection in the tenant: nothing the spec can fix by
            // retrying at once, but it may appear.
            Err(e) if e.is_not_found() => Err(Error::RemoteNotFound(e.to_string())),
            // `connection_already_enabled`.
            Err(e) if e.status() == Some(409) => Err(Error::AlreadyExists(format!(
                "Auth0 says connection {:?} is already enabled for organization {:?}",
                res.spec.connection_id, res.spec.organization_id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn update(
        api: &IdentityClient,
        res: &OrgConnection,
        id: &str,
        desired: &OrganizationConnection,
        observed: &OrganizationConnection,
        _secrets_changed: bool,
    ) -> Result<Observed<OrganizationConnection>, Error> {
        let body = changes(desired, observed);
        // Auth0 refuses a PATCH without properties.
        if body.is_empty() {
            return Ok(Observed {
                id: id.to_owned(),
                remote: observed.clone(),
            });
        }
        let path = res.spec.connection_path();
        let resp = api
            .call(Method::PATCH, &path, Some(&Value::Object(body)))
            .await?;
        Ok(remember(api, res, resp.decode(&path)?))
    }

    /// Both ids are immutable, so the spec names the pair recorded in status.
    async fn delete(api: &IdentityClient, res: &OrgConnection, _id: &str) -> Result<(), Error> {
        let list = res.spec.connections_path();
        connections(api, &list)
            .delete(&res.spec.connection_path(), &res.spec.connection_id)
            .await?;
        Ok(())
    }

    /// Every removed setting Auth0 can reset, so none is ever kept.
    async fn finish(
        _ctx: &Context,
        _api: &IdentityClient,
        res: &OrgConnection,
        _observed: &Observed<OrganizationConnection>,
        _fresh: bool,
        status: &mut ManagedStatus,
    ) -> Result<(), Error> {
        record_applied(status, res.spec.stated(), &[], res.metadata.generation);
        Ok(())
    }

    fn summary(observed: &OrganizationConnection) -> BTreeMap<String, String> {
        let mut s = BTreeMap::new();
        if let Some(c) = &observed.connection {
            if let Some(name) = &c.name {
                s.insert("connectionName".into(), name.clone());
            }
            if let Some(strategy) = &c.strategy {
                s.insert("strategy".into(), strategy.clone());
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(fields: Value) -> OrgConnectionSpec {
        let mut all = json!({"apiRef": {"name": "auth0"}, "organizationId": "org_acme", "connectionId": "con_saml"});
        for (k, v) in fields.as_object().unwrap() {
            all[k] = v.clone();
        }
        serde_json::from_value(all).unwrap()
    }

    fn answer(body: Value) -> OrganizationConnection {
        serde_json::from_value(body).unwrap()
    }

    /// The answer documented for PATCH: connection_id, the fields, connection{name,strategy}.
    fn full_answer() -> Value {
        json!({
            "connection_id": "con_saml",
            "organization_connection_name": "corp-sso",
            "assign_membership_on_login": true,
            "show_as_button": true,
            "is_signup_enabled": false,
            "organization_access_level": "readonly",
            "is_enabled": true,
            "connection": {"name": "corp-saml", "strategy": "samlp"}
        })
    }

    #[test]
    fn create_body_carries_the_connection_id_and_only_the_set_fields() {
        let spec =
            spec(json!({"assignMembershipOnLogin": true, "organizationAccessLevel": "limited"}));
        let mut body = spec.to_organization_connection().settable();
        body.insert("connection_id".into(), json!("con_saml"));
        assert_eq!(
            Value::Object(body),
            json!({"connection_id": "con_saml", "assign_membership_on_login": true, "organization_access_level": "limited"})
        );
        assert_eq!(
            spec.connection_path(),
            "api/v2/organizations/org_acme/connections/con_saml"
        );
    }

    #[test]
    fn patch_carries_only_the_set_fields_that_differ() {
        let desired = spec(json!({
            "organizationConnectionName": "corp-sso",
            "showAsButton": false,
            "organizationAccessLevel": "full",
            "isEnabled": true,
        }))
        .to_organization_connection();
        let observed = answer(full_answer());
        assert_eq!(
            Value::Object(changes(&desired, &observed)),
            json!({"show_as_button": false, "organization_access_level": "full"})
        );
        assert_eq!(
            Auth0::diff(&desired, &observed),
            vec!["spec.organizationAccessLevel", "spec.showAsButton"]
        );
    }

    #[test]
    fn nothing_to_patch_when_the_set_fields_match() {
        let desired = spec(
            json!({"assignMembershipOnLogin": true, "organizationConnectionName": "corp-sso"}),
        )
        .to_organization_connection();
        assert!(changes(&desired, &answer(full_answer())).is_empty());
        // Unset fields are never compared nor sent as null.
        let bare = spec(json!({})).to_organization_connection();
        assert!(changes(&bare, &answer(json!({"connection_id": "con_saml"}))).is_empty());
    }

    #[test]
    fn an_access_level_auth0_does_not_return_is_none_not_drift() {
        let none = spec(json!({"organizationAccessLevel": "none", "showAsButton": true, "isSignupEnabled": false}))
            .to_organization_connection();
        for observed in [
            json!({"connection_id": "con_saml"}),
            json!({"connection_id": "con_saml", "organization_access_level": null, "show_as_button": null}),
        ] {
            assert!(
                changes(&none, &answer(observed.clone())).is_empty(),
                "{observed}"
            );
        }
        let full = spec(json!({"organizationAccessLevel": "full"})).to_organization_connection();
        assert_eq!(
            Value::Object(changes(
                &full,
                &answer(json!({"connection_id": "con_saml"}))
            )),
            json!({"organization_access_level": "full"})
        );
    }

    #[test]
    fn removed_settings_are_reset_unless_auth0_holds_its_default() {
        let mut res = OrgConnection::new("c", spec(json!({"showAsButton": false})));
        res.status = Some(ManagedStatus {
            applied_fields: [
                "organizationConnectionName",
                "assignMembershipOnLogin",
                "showAsButton",
                "isSignupEnabled",
                "organizationAccessLevel",
                "isEnabled",
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        });
        let desired = Auth0::desired(&res, None).unwrap();
        let mut remote = full_answer();
        remote["show_as_button"] = json!(false);
        remote["is_signup_enabled"] = json!(true);
        assert_eq!(
            Value::Object(changes(&desired, &answer(remote))),
            json!({"organization_connection_name": null, "assign_membership_on_login": false,
                   "is_signup_enabled": false, "organization_access_level": null})
        );
        // Auth0's defaults, or an answer that leaves them out: nothing left to reset.
        let defaults = json!({"connection_id": "con_saml", "show_as_button": false,
            "assign_membership_on_login": false, "organization_access_level": "none"});
        assert!(changes(&desired, &answer(defaults)).is_empty());
    }

    #[test]
    fn status_shows_the_connection_name_and_strategy() {
        let summary = Auth0::summary(&answer(full_answer()));
        assert_eq!(summary["connectionName"], "corp-saml");
        assert_eq!(summary["strategy"], "samlp");
        assert_eq!(summary.len(), 2);
    }

    #[test]
    fn ids_are_escaped_in_paths() {
        let spec = spec(json!({"organizationId": "org/../x", "connectionId": "con 1"}));
        assert_eq!(
            spec.connection_path(),
            "api/v2/organizations/org%2F..%2Fx/connections/con%201"
        );
    }
}

/// Property tests of the minimal PATCH body against Auth0's PATCH semantics.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    fn flag() -> impl Strategy<Value = Option<bool>> {
        prop::option::of(any::<bool>())
    }

    fn connection() -> impl Strategy<Value = OrganizationConnection> {
        (
            prop::option::of("[a-c]{1,3}"),
            (flag(), flag(), flag(), flag()),
            prop::option::of(prop::sample::select(vec![
                "none", "readonly", "limited", "full",
            ])),
        )
            .prop_map(|(name, (assign, button, signup, enabled), level)| {
                OrganizationConnection {
                    connection_id: Some("con_1".into()),
                    organization_connection_name: name,
                    assign_membership_on_login: assign,
                    show_as_button: button,
                    is_signup_enabled: signup,
                    organization_access_level: level.map(str::to_owned),
                    is_enabled: enabled,
                    connection: None,
                    removed: Vec::new(),
                }
            })
    }

    /// What Auth0 holds after a PATCH: the sent fields replaced, the rest as they were.
    fn patched(
        observed: &OrganizationConnection,
        body: &Map<String, Value>,
    ) -> OrganizationConnection {
        let mut value = serde_json::to_value(observed).unwrap();
        for (k, v) in body {
            value[k] = v.clone();
        }
        serde_json::from_value(value).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn patching_converges(desired in connection(), observed in connection()) {
            let body = changes(&desired, &observed);
            let after = patched(&observed, &body);
            prop_assert!(changes(&desired, &after).is_empty());
            prop_assert!(Auth0::diff(&desired, &after).is_empty());
            // The body never carries a null, the read-only id or a field the spec leaves unset.
            let stated = desired.settable();
            for (k, v) in &body {
                prop_assert!(!v.is_null());
                prop_assert_eq!(Some(v), stated.get(k));
            }
            prop_assert_eq!(body.len(), Auth0::diff(&desired, &observed).len());
        }

        #[test]
        fn no_patch_when_equal(desired in connection()) {
            prop_assert!(changes(&desired, &desired).is_empty());
        }

        #[test]
        fn absent_remote_fields_read_as_auth0_defaults(desired in connection()) {
            // An answer that leaves out what equals Auth0's default is no difference.
            let mut answer = serde_json::to_value(&desired).unwrap();
            let fields = answer.as_object_mut().unwrap();
            fields.retain(|k, v| auth0_default(k).as_ref() != Some(v));
            let observed: OrganizationConnection = serde_json::from_value(answer).unwrap();
            prop_assert!(changes(&desired, &observed).is_empty());
        }
    }
}
