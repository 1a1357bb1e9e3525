//! AuthenticationSettings: the Xelion server authentication settings of a tenant
//! (`/api/v1/{tenant}/server/authentication`, a singleton per IdentityApi).
//!
//! The settings always exist: the operator adopts them and changes them with one PATCH
//! carrying the minimal list of operations (and a second one for the fields of OpenID
//! connections the first one linked, which can be read only once linked); it never deletes
//! them.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonSpec, ManagedStatus};

/// The authentication settings of a Xelion tenant (one per IdentityApi).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "identity.operator.dev",
    version = "v1alpha1",
    kind = "AuthenticationSettings",
    plural = "authenticationsettings",
    namespaced,
    status = "ManagedStatus",
    shortname = "authsettings",
    category = "identity",
    doc = "The server authentication settings of a Xelion tenant (a singleton per IdentityApi), reconciled with minimal PATCH operation lists.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"External-ID","type":"string","jsonPath":".status.externalId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!has(self.deletionPolicy)").message("deletionPolicy does not apply: the authentication settings of a tenant always exist and are left in place when this resource is deleted"))]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationSettingsSpec {
    #[serde(flatten)]
    pub common: CommonSpec,
    /// Code of the authentication settings object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub code: Option<String>,
    /// Windows security domain of users who log in with their domain account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub security_domain: Option<String>,
    /// First domain controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub domain_server1: Option<String>,
    /// Second domain controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub domain_server2: Option<String>,
    /// Synchronise the time with the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronize_domain_time: Option<bool>,
    /// Days an authentication token is kept (Xelion's integers are 32-bit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub token_retention_days: Option<i64>,
    /// Minimum length of user passwords.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub minimum_password_length: Option<i64>,
    /// Failed logins after which an account is locked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub max_number_of_false_logins: Option<i64>,
    /// OpenID connections linked to the tenant's authentication, by the OID of existing Xelion
    /// OpenID connection objects, in any order. When set, the list is authoritative: links
    /// missing here are removed (the OpenID connection objects themselves stay). Leave it out
    /// to leave the links alone; taking it out of a spec that had it unlinks them all.
    /// Each OID may appear once (the API server rejects a duplicate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["oid"]))]
    pub open_id_connections: Option<Vec<OpenIdConnectionLink>>,
}

impl crate::engine::ManagedSpec for AuthenticationSettingsSpec {
    fn common(&self) -> &CommonSpec {
        &self.common
    }
}

/// A link to an existing Xelion OpenID connection object, with the values to give it. Fields
/// never set here keep their current value; one taken out of the spec is blanked.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenIdConnectionLink {
    /// OID of an existing Xelion OpenID connection object.
    #[schemars(length(min = 1, max = 4000))]
    pub oid: String,
    /// Id of the tenant at the OpenID provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub open_id_id: Option<String>,
    /// Provider, e.g. MICROSOFT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub open_id_provider: Option<String>,
    /// Keep users synchronised with the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_sync_on: Option<bool>,
    /// Group at the provider whose members may log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub open_id_group_id: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Xelion REST API wire format, the PATCH operation list, and the adapter
// ---------------------------------------------------------------------------------------------

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::engine::export::{Draft, Listed};
use crate::engine::secrets::SecretValues;
use crate::engine::{Adapter, Context, Error, Observed};
use crate::identity::{ApiError, IdentityClient};
use crate::kinds::common::{
    Blank, Clear, Removable, SecretKeyRef, kept_fields, record_applied, removals, removed_fields,
    stated_fields,
};
use crate::kinds::identity_api::Provider;

/// The authentication settings object (`objectType: "Authentication"`), as GET answers it
/// inside `{"object": …}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_oid"
    )]
    pub oid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_server1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_server2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronize_domain_time: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_retention_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_password_length: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_number_of_false_logins: Option<i64>,
    /// The linked OpenID connections. In a desired object, `None` leaves the links alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_id_connections: Option<Vec<OpenIdConnection>>,
}

/// An OpenID connection object (`objectType: "OpenIdConnection"`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OpenIdConnection {
    #[serde(deserialize_with = "oid")]
    pub oid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_id_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_id_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_sync_on: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_id_group_id: Option<String>,
}

/// OIDs are strings in the documented answers; a number is accepted too [I].
fn oid<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "an OID must be a string, not {other}"
        ))),
    }
}

fn optional_oid<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        other => oid(other).map(Some).map_err(serde::de::Error::custom),
    }
}

/// One operation of a PATCH `{"operations": [...]}`.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Operation {
    pub op: &'static str,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl Operation {
    fn replace(path: String, value: Value) -> Operation {
        Operation {
            op: "replace",
            path,
            value: Some(value),
        }
    }
}

/// What one PATCH must carry to make the observed settings match the desired ones.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub operations: Vec<Operation>,
    /// The differences, as spec paths (status.drift and Events).
    pub drift: Vec<String>,
}

/// The scalar fields in the documented order, with the values `a` states.
fn scalar_fields(a: &Authentication) -> [(&'static str, Option<Value>); 8] {
    [
        ("code", a.code.clone().map(Value::from)),
        ("securityDomain", a.security_domain.clone().map(Value::from)),
        ("domainServer1", a.domain_server1.clone().map(Value::from)),
        ("domainServer2", a.domain_server2.clone().map(Value::from)),
        (
            "synchronizeDomainTime",
            a.synchronize_domain_time.map(Value::from),
        ),
        (
            "tokenRetentionDays",
            a.token_retention_days.map(Value::from),
        ),
        (
            "minimumPasswordLength",
            a.minimum_password_length.map(Value::from),
        ),
        (
            "maxNumberOfFalseLogins",
            a.max_number_of_false_logins.map(Value::from),
        ),
    ]
}

/// The fields of a linked OpenID connection that a PATCH may replace, in the order of the
/// document's example.
fn member_fields(c: &OpenIdConnection) -> [(&'static str, Option<Value>); 4] {
    [
        ("openIdId", c.open_id_id.clone().map(Value::from)),
        (
            "openIdProvider",
            c.open_id_provider.clone().map(Value::from),
        ),
        ("openIdGroupId", c.open_id_group_id.clone().map(Value::from)),
        ("liveSyncOn", c.live_sync_on.map(Value::from)),
    ]
}

/// The stated values of `desired` that differ from `observed`.
fn changed<const N: usize>(
    desired: [(&'static str, Option<Value>); N],
    observed: [(&'static str, Option<Value>); N],
) -> impl Iterator<Item = (&'static str, Value)> {
    desired
        .into_iter()
        .zip(observed)
        .filter_map(|((name, want), (_, have))| match want {
            Some(want) if have.as_ref() != Some(&want) => Some((name, want)),
            _ => None,
        })
}

/// The minimal operation list, in a stable order: scalar replaces (documented field order),
/// removes of links the spec does not list (remote order), then per link of the spec (spec
/// order) either the replaces of its fields that differ, by OID, or an add under a numeric
/// virtual id (as in the document: '1', with the OID as the value).
///
/// A connection that is not linked yet cannot be read, so its fields are compared, and only
/// those that differ replaced, by the next plan, once the add has made it a linked one.
pub fn plan(desired: &Authentication, observed: &Authentication) -> Plan {
    let mut plan = Plan::default();
    for (name, value) in changed(scalar_fields(desired), scalar_fields(observed)) {
        plan.operations
            .push(Operation::replace(format!("/{name}"), value));
        plan.drift.push(format!("spec.{name}"));
    }
    let Some(links) = &desired.open_id_connections else {
        return plan;
    };
    let linked = observed.open_id_connections.as_deref().unwrap_or_default();
    for gone in linked
        .iter()
        .filter(|c| !links.iter().any(|l| l.oid == c.oid))
    {
        plan.operations.push(Operation {
            op: "remove",
            path: format!("/openIdConnections/{}", gone.oid),
            value: None,
        });
        plan.drift
            .push(format!("spec.openIdConnections[{}]", gone.oid));
    }
    let mut added = 0;
    for link in links {
        if let Some(current) = linked.iter().find(|c| c.oid == link.oid) {
            for (field, value) in changed(member_fields(link), member_fields(current)) {
                let path = format!("/openIdConnections/{}/{field}", link.oid);
                plan.operations.push(Operation::replace(path, value));
                plan.drift
                    .push(format!("spec.openIdConnections[{}].{field}", link.oid));
            }
            continue;
        }
        added += 1;
        plan.operations.push(Operation {
            op: "add",
            path: format!("/openIdConnections/{added}"),
            value: Some(Value::from(link.oid.clone())),
        });
        plan.drift
            .push(format!("spec.openIdConnections[{}]", link.oid));
    }
    plan
}

impl AuthenticationSettingsSpec {
    fn to_authentication(&self) -> Result<Authentication, Error> {
        let links = self.open_id_connections.as_deref().unwrap_or_default();
        if let Some(twice) = links
            .iter()
            .enumerate()
            .find(|(i, l)| links[..*i].iter().any(|m| m.oid == l.oid))
        {
            return Err(Error::InvalidSpec(format!(
                "openIdConnections lists OID {:?} more than once",
                twice.1.oid
            )));
        }
        Ok(Authentication {
            oid: None,
            object_type: None,
            code: self.code.clone(),
            security_domain: self.security_domain.clone(),
            domain_server1: self.domain_server1.clone(),
            domain_server2: self.domain_server2.clone(),
            synchronize_domain_time: self.synchronize_domain_time,
            token_retention_days: self.token_retention_days,
            minimum_password_length: self.minimum_password_length,
            max_number_of_false_logins: self.max_number_of_false_logins,
            open_id_connections: self.open_id_connections.as_ref().map(|links| {
                links
                    .iter()
                    .map(|l| OpenIdConnection {
                        oid: l.oid.clone(),
                        object_type: None,
                        open_id_id: l.open_id_id.clone(),
                        open_id_provider: l.open_id_provider.clone(),
                        live_sync_on: l.live_sync_on,
                        open_id_group_id: l.open_id_group_id.clone(),
                    })
                    .collect()
            }),
        })
    }
}

/// What taking a field out of the spec does to the settings (docs/vendor-choices.md): a string
/// is replaced by "" and a flag by false, as on a fresh tenant; a number has no empty value. A
/// link list taken out unlinks every connection; a link's field taken out is blanked the same
/// way (see [`blank_removed`]).
const REMOVABLE: &[Removable] = &[
    Removable::same("code", Clear::To(Blank::Str(""))),
    Removable::same("securityDomain", Clear::To(Blank::Str(""))),
    Removable::same("domainServer1", Clear::To(Blank::Str(""))),
    Removable::same("domainServer2", Clear::To(Blank::Str(""))),
    Removable::same("synchronizeDomainTime", Clear::To(Blank::Bool(false))),
    Removable::same(
        "tokenRetentionDays",
        Clear::Keep {
            why: NO_EMPTY_NUMBER,
            observable: true,
        },
    ),
    Removable::same(
        "minimumPasswordLength",
        Clear::Keep {
            why: NO_EMPTY_NUMBER,
            observable: true,
        },
    ),
    Removable::same(
        "maxNumberOfFalseLogins",
        Clear::Keep {
            why: NO_EMPTY_NUMBER,
            observable: true,
        },
    ),
    Removable::same("openIdConnections", Clear::To(Blank::List)),
];

const NO_EMPTY_NUMBER: &str =
    "Xelion has no empty value for a number: it keeps this one until the spec states another";

impl AuthenticationSettingsSpec {
    /// The removable fields this spec sets, its links and their fields included
    /// (`openIdConnections[1001].liveSyncOn`).
    fn stated(&self) -> Vec<String> {
        let spec = serde_json::to_value(self).expect("serializable");
        let paths: Vec<&str> = REMOVABLE.iter().map(|r| r.spec).collect();
        let mut stated = stated_fields(&spec, &paths);
        for link in self.open_id_connections.iter().flatten() {
            let fields = serde_json::to_value(link).expect("serializable");
            let fields = fields.as_object().expect("an object");
            stated.push(format!("openIdConnections[{}]", link.oid));
            stated.extend(
                fields
                    .keys()
                    .filter(|k| *k != "oid")
                    .map(|k| format!("openIdConnections[{}].{k}", link.oid)),
            );
        }
        stated
    }
}

/// `desired` with the blank of every removed field Xelion can clear, so that the plan replaces
/// it like any stated value.
fn blank_removed(desired: Authentication, removed: &[String]) -> Result<Authentication, Error> {
    let mut value = serde_json::to_value(&desired).expect("serializable");
    for r in removals(REMOVABLE, removed) {
        if let Clear::To(blank) = r.clear {
            value[r.wire] = blank.value();
        }
    }
    for path in removed {
        let Some((oid, field)) = path
            .strip_prefix("openIdConnections[")
            .and_then(|rest| rest.split_once("]."))
        else {
            continue;
        };
        let links = value["openIdConnections"].as_array_mut();
        if let Some(link) = links.into_iter().flatten().find(|l| l["oid"] == oid) {
            link[field] = if field == "liveSyncOn" {
                Value::Bool(false)
            } else {
                Value::from("")
            };
        }
    }
    serde_json::from_value(value).map_err(|e| Error::InvalidSpec(e.to_string()))
}

fn removed(res: &AuthenticationSettings) -> Vec<String> {
    removed_fields(res.status.as_ref(), &res.spec.stated())
}

fn path(api: &IdentityClient) -> String {
    format!("api/v1/{}/server/authentication", api.tenant())
}

async fn read(api: &IdentityClient) -> Result<Observed<Authentication>, Error> {
    let path = path(api);
    let resp = api.call(Method::GET, &path, None).await?;
    let object = resp.body().get("object").cloned().unwrap_or(Value::Null);
    let remote = serde_json::from_value(object).map_err(|e| {
        Error::Api(ApiError::Decode {
            path: path.clone(),
            message: format!("no authentication object: {e}"),
        })
    })?;
    Ok(Observed {
        id: api.tenant().to_owned(),
        remote,
    })
}

async fn patch(api: &IdentityClient, operations: Vec<Operation>) -> Result<(), Error> {
    let body = json!({ "operations": operations });
    match api.call(Method::PATCH, &path(api), Some(&body)).await {
        Ok(_) => Ok(()),
        // The settings exist (they were just read): a 404 (10006) means an operation named
        // an OID that is no OpenID connection, which only a spec change can fix.
        Err(e) if e.is_not_found() => Err(Error::Rejected(e)),
        Err(e) => Err(e.into()),
    }
}

/// Reconciles AuthenticationSettings against the Xelion REST API.
pub struct Xelion;

impl Adapter for Xelion {
    type Resource = AuthenticationSettings;
    type Remote = Authentication;
    const PROVIDER: Provider = Provider::Xelion;
    const CREATES: bool = false;
    const SINGLETON: bool = true;

    fn secret_refs(_res: &AuthenticationSettings) -> Vec<SecretKeyRef> {
        Vec::new()
    }

    fn desired(
        res: &AuthenticationSettings,
        _secrets: Option<&SecretValues>,
    ) -> Result<Authentication, Error> {
        blank_removed(res.spec.to_authentication()?, &removed(res))
    }

    fn diff(desired: &Authentication, observed: &Authentication) -> Vec<String> {
        plan(desired, observed).drift
    }

    async fn find(
        api: &IdentityClient,
        _res: &AuthenticationSettings,
        _id: Option<&str>,
    ) -> Result<Option<Observed<Authentication>>, Error> {
        read(api).await.map(Some)
    }

    /// The tenant's settings, always there.
    async fn export(api: &IdentityClient) -> Result<Vec<Listed<Authentication>>, Error> {
        let settings = read(api).await?;
        let observed = serde_json::to_value(&settings.remote).expect("serializable");
        let mut spec = observed.clone();
        let fields = spec.as_object_mut().expect("an object");
        fields.remove("oid");
        fields.remove("objectType");
        for link in fields
            .get_mut("openIdConnections")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(link) = link.as_object_mut() {
                link.remove("objectType");
            }
        }
        crate::engine::removal::leave_out_defaults(&mut spec, REMOVABLE, &observed);
        let tenant = api.tenant();
        let label = format!("Xelion authentication settings of tenant {tenant:?}");
        let draft = Draft::new(format!("{tenant}-authentication"), label, spec);
        Ok(vec![Listed {
            observed: settings,
            draft: Ok(draft),
        }])
    }

    async fn create(
        _api: &IdentityClient,
        _res: &AuthenticationSettings,
        _desired: &Authentication,
    ) -> Result<Observed<Authentication>, Error> {
        // `find` always finds the settings: every tenant has them.
        Err(Error::RemoteNotFound(
            "the tenant's authentication settings could not be read".into(),
        ))
    }

    async fn update(
        api: &IdentityClient,
        _res: &AuthenticationSettings,
        id: &str,
        desired: &Authentication,
        observed: &Authentication,
        _secrets_changed: bool,
    ) -> Result<Observed<Authentication>, Error> {
        let operations = plan(desired, observed).operations;
        if operations.is_empty() {
            return Ok(Observed {
                id: id.to_owned(),
                remote: observed.clone(),
            });
        }
        let added: Vec<String> = operations
            .iter()
            .filter(|o| o.op == "add")
            .filter_map(|o| o.value.as_ref()?.as_str().map(str::to_owned))
            .collect();
        patch(api, operations).await?;
        // PATCH answers without a body.
        let linked = read(api).await?;
        // The connections just linked can be read now: a second PATCH replaces those of their
        // fields that differ, and nothing else.
        let members = plan(desired, &linked.remote)
            .operations
            .into_iter()
            .filter(|o| {
                added
                    .iter()
                    .any(|oid| o.path.starts_with(&format!("/openIdConnections/{oid}/")))
            })
            .collect::<Vec<_>>();
        if members.is_empty() {
            return Ok(linked);
        }
        patch(api, members).await?;
        read(api).await
    }

    async fn delete(
        _api: &IdentityClient,
        _res: &AuthenticationSettings,
        _id: &str,
    ) -> Result<(), Error> {
        // Never called: the settings are always left in place.
        Ok(())
    }

    async fn finish(
        _ctx: &Context,
        _api: &IdentityClient,
        res: &AuthenticationSettings,
        settings: &Observed<Authentication>,
        _fresh: bool,
        status: &mut ManagedStatus,
    ) -> Result<(), Error> {
        let observed = serde_json::to_value(&settings.remote).expect("serializable");
        let kept = kept_fields(&removals(REMOVABLE, &removed(res)), &observed);
        record_applied(status, res.spec.stated(), &kept, res.metadata.generation);
        Ok(())
    }

    fn summary(observed: &Authentication) -> BTreeMap<String, String> {
        let mut s = BTreeMap::new();
        if let Some(domain) = observed.security_domain.as_ref().filter(|d| !d.is_empty()) {
            s.insert("securityDomain".into(), domain.clone());
        }
        let links = observed.open_id_connections.as_deref().unwrap_or_default();
        s.insert("openIdConnections".into(), links.len().to_string());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(oid: &str, fields: Value) -> OpenIdConnection {
        let mut v = json!({"oid": oid});
        for (k, f) in fields.as_object().unwrap() {
            v[k] = f.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    /// The remote object as GET answers it: every scalar, two linked connections.
    fn observed() -> Authentication {
        serde_json::from_value(json!({
            "oid": 5550001, "objectType": "Authentication", "code": null,
            "securityDomain": "corp", "domainServer1": "dc1.corp", "domainServer2": "",
            "synchronizeDomainTime": false, "tokenRetentionDays": 30,
            "minimumPasswordLength": 8, "maxNumberOfFalseLogins": 5,
            "openIdConnections": [
                {"oid": "1001", "objectType": "OpenIdConnection", "openIdId": "tenant-a",
                 "openIdProvider": "MICROSOFT", "liveSyncOn": false, "openIdGroupId": null},
                {"oid": 1002, "objectType": "OpenIdConnection", "openIdId": "tenant-b",
                 "openIdProvider": "MICROSOFT", "liveSyncOn": true, "openIdGroupId": "g-b"},
            ],
        }))
        .unwrap()
    }

    fn ops(list: Value) -> Vec<Operation> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|o| Operation {
                op: match o["op"].as_str().unwrap() {
                    "add" => "add",
                    "remove" => "remove",
                    _ => "replace",
                },
                path: o["path"].as_str().unwrap().to_owned(),
                value: o.get("value").cloned(),
            })
            .collect()
    }

    #[test]
    fn get_answer_decodes_with_numeric_or_string_oids() {
        let a = observed();
        assert_eq!(a.oid.as_deref(), Some("5550001"));
        let links = a.open_id_connections.unwrap();
        assert_eq!(links[0].oid, "1001");
        assert_eq!(links[1].oid, "1002");
        assert_eq!(links[1].open_id_group_id.as_deref(), Some("g-b"));
    }

    #[test]
    fn operation_lists_for_every_kind_of_change() {
        let cases: Vec<(&str, Authentication, Value)> = vec![
            ("nothing stated", Authentication::default(), json!([])),
            (
                "stated values equal to the remote ones",
                Authentication {
                    security_domain: Some("corp".into()),
                    token_retention_days: Some(30),
                    synchronize_domain_time: Some(false),
                    open_id_connections: Some(vec![
                        link("1001", json!({"openIdId": "tenant-a", "liveSyncOn": false})),
                        link("1002", json!({"openIdGroupId": "g-b"})),
                    ]),
                    ..Default::default()
                },
                json!([]),
            ),
            (
                "code (null remotely)",
                Authentication {
                    code: Some("AUTH".into()),
                    ..Default::default()
                },
                json!([{"op": "replace", "path": "/code", "value": "AUTH"}]),
            ),
            (
                "securityDomain",
                Authentication {
                    security_domain: Some("example".into()),
                    ..Default::default()
                },
                json!([{"op": "replace", "path": "/securityDomain", "value": "example"}]),
            ),
            (
                "domainServer1",
                Authentication {
                    domain_server1: Some("dc9.corp".into()),
                    ..Default::default()
                },
                json!([{"op": "replace", "path": "/domainServer1", "value": "dc9.corp"}]),
            ),
            (
                "domainServer2 (empty remotely)",
                Authentication {
                    domain_server2: Some("dc2.corp".into()),
                    ..Default::default()
                },
                json!([{"op": "replace", "path": "/domainServer2", "value": "dc2.corp"}]),
            ),
            (
                "synchronizeDomainTime",
                Authentication {
                    synchronize_domain_time: Some(true),
                    ..Default::default()
                },
                json!([{"op": "replace", "path": "/synchronizeDomainTime", "value": true}]),
            ),
            (
                "tokenRetentionDays",
                Authentication {
                    token_retention_days: Some(90),
                    ..Default::default()
                },
                json!([{"op": "replace", "path": "/tokenRetentionDays", "value": 90}]),
            ),
            (
                "minimumPasswordLength",
                Authentication {
                    minimum_password_length: Some(12),
                    ..Default::default()
                },
                json!([{"op": "replace", "path": "/minimumPasswordLength", "value": 12}]),
            ),
            (
                "maxNumberOfFalseLogins",
                Authentication {
                    max_number_of_false_logins: Some(3),
                    ..Default::default()
                },
                json!([{"op": "replace", "path": "/maxNumberOfFalseLogins", "value": 3}]),
            ),
            (
                "links left alone when the spec does not list them",
                Authentication {
                    open_id_connections: None,
                    ..Default::default()
                },
                json!([]),
            ),
            (
                "add a link without fields",
                Authentication {
                    open_id_connections: Some(vec![
                        link("1001", json!({})),
                        link("1002", json!({})),
                        link("1003", json!({})),
                    ]),
                    ..Default::default()
                },
                json!([{"op": "add", "path": "/openIdConnections/1", "value": "1003"}]),
            ),
            (
                // Its fields are compared once it is linked (the next plan).
                "add a link with its fields",
                Authentication {
                    open_id_connections: Some(vec![
                        link("1001", json!({})),
                        link("1002", json!({})),
                        link(
                            "1003",
                            json!({"openIdId": "tenant-c", "openIdProvider": "MICROSOFT", "liveSyncOn": true, "openIdGroupId": "g-c"}),
                        ),
                    ]),
                    ..Default::default()
                },
                json!([{"op": "add", "path": "/openIdConnections/1", "value": "1003"}]),
            ),
            (
                "remove a link",
                Authentication {
                    open_id_connections: Some(vec![link("1002", json!({}))]),
                    ..Default::default()
                },
                json!([{"op": "remove", "path": "/openIdConnections/1001"}]),
            ),
            (
                "remove every link",
                Authentication {
                    open_id_connections: Some(vec![]),
                    ..Default::default()
                },
                json!([
                    {"op": "remove", "path": "/openIdConnections/1001"},
                    {"op": "remove", "path": "/openIdConnections/1002"},
                ]),
            ),
            (
                "edit members",
                Authentication {
                    open_id_connections: Some(vec![
                        link(
                            "1001",
                            json!({"openIdId": "tenant-a", "liveSyncOn": true, "openIdGroupId": "g-a"}),
                        ),
                        link("1002", json!({"openIdProvider": "GOOGLE"})),
                    ]),
                    ..Default::default()
                },
                json!([
                    {"op": "replace", "path": "/openIdConnections/1001/openIdGroupId", "value": "g-a"},
                    {"op": "replace", "path": "/openIdConnections/1001/liveSyncOn", "value": true},
                    {"op": "replace", "path": "/openIdConnections/1002/openIdProvider", "value": "GOOGLE"},
                ]),
            ),
            (
                "order of the links in the spec does not matter",
                Authentication {
                    open_id_connections: Some(vec![
                        link("1002", json!({})),
                        link("1001", json!({})),
                    ]),
                    ..Default::default()
                },
                json!([]),
            ),
            (
                "everything at once, in a stable order",
                Authentication {
                    max_number_of_false_logins: Some(10),
                    security_domain: Some("example".into()),
                    open_id_connections: Some(vec![
                        link("1004", json!({"liveSyncOn": true})),
                        link("1002", json!({"liveSyncOn": false})),
                        link("1003", json!({})),
                    ]),
                    ..Default::default()
                },
                json!([
                    {"op": "replace", "path": "/securityDomain", "value": "example"},
                    {"op": "replace", "path": "/maxNumberOfFalseLogins", "value": 10},
                    {"op": "remove", "path": "/openIdConnections/1001"},
                    {"op": "add", "path": "/openIdConnections/1", "value": "1004"},
                    {"op": "replace", "path": "/openIdConnections/1002/liveSyncOn", "value": false},
                    {"op": "add", "path": "/openIdConnections/2", "value": "1003"},
                ]),
            ),
        ];
        for (name, desired, want) in cases {
            let got = plan(&desired, &observed());
            assert_eq!(got.operations, ops(want.clone()), "case {name:?}");
            assert_eq!(
                serde_json::to_value(&got.operations).unwrap(),
                want,
                "wire JSON of case {name:?}"
            );
            assert_eq!(
                got.drift.is_empty(),
                got.operations.is_empty(),
                "case {name:?}"
            );
            // The same inputs give the same list, every time.
            assert_eq!(plan(&desired, &observed()), got, "case {name:?}");
        }
    }

    #[test]
    fn drift_names_spec_paths() {
        let desired = Authentication {
            security_domain: Some("example".into()),
            open_id_connections: Some(vec![
                link("1002", json!({"liveSyncOn": false})),
                link("1003", json!({"openIdId": "c"})),
            ]),
            ..Default::default()
        };
        assert_eq!(
            Xelion::diff(&desired, &observed()),
            vec![
                "spec.securityDomain",
                "spec.openIdConnections[1001]",
                "spec.openIdConnections[1002].liveSyncOn",
                "spec.openIdConnections[1003]",
            ]
        );
    }

    #[test]
    fn the_patch_body_is_one_operations_list() {
        let desired = Authentication {
            minimum_password_length: Some(12),
            ..Default::default()
        };
        let body = json!({"operations": plan(&desired, &observed()).operations});
        assert_eq!(
            body.to_string(),
            r#"{"operations":[{"op":"replace","path":"/minimumPasswordLength","value":12}]}"#
        );
    }

    fn spec(extra: Value) -> AuthenticationSettings {
        let mut spec = json!({"apiRef": {"name": "xelion"}});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        AuthenticationSettings::new("auth", serde_json::from_value(spec).unwrap())
    }

    #[test]
    fn spec_maps_to_the_authentication_object() {
        let res = spec(json!({
            "securityDomain": "corp", "tokenRetentionDays": 14,
            "openIdConnections": [{"oid": "1001", "liveSyncOn": true}],
        }));
        assert_eq!(
            serde_json::to_value(Xelion::desired(&res, None).unwrap()).unwrap(),
            json!({"securityDomain": "corp", "tokenRetentionDays": 14,
                   "openIdConnections": [{"oid": "1001", "liveSyncOn": true}]})
        );
        let twice = spec(json!({"openIdConnections": [{"oid": "1001"}, {"oid": "1001"}]}));
        let err = Xelion::desired(&twice, None).unwrap_err();
        assert!(
            err.is_terminal() && err.to_string().contains("1001"),
            "{err}"
        );
        assert!(!Xelion::deletes_remote(&res));
    }

    #[test]
    fn summary_counts_links() {
        let s = Xelion::summary(&observed());
        assert_eq!(s["securityDomain"], "corp");
        assert_eq!(s["openIdConnections"], "2");
    }

    #[test]
    fn links_are_compared_by_oid_in_any_order() {
        let desired = Authentication {
            open_id_connections: Some(vec![
                link("1001", json!({"openIdId": "tenant-a"})),
                link("1002", json!({"liveSyncOn": true})),
            ]),
            ..Default::default()
        };
        let mut reversed = observed();
        reversed.open_id_connections.as_mut().unwrap().reverse();
        assert_eq!(plan(&desired, &reversed), Plan::default());
    }

    #[test]
    fn removed_fields_are_blanked_or_reported() {
        let mut res = spec(json!({
            "openIdConnections": [{"oid": "1001", "openIdId": "tenant-a"}, {"oid": "1002"}],
        }));
        res.status = Some(ManagedStatus {
            applied_fields: [
                "securityDomain",
                "synchronizeDomainTime",
                "tokenRetentionDays",
                "openIdConnections",
                "openIdConnections[1001]",
                "openIdConnections[1001].openIdId",
                "openIdConnections[1002]",
                "openIdConnections[1002].liveSyncOn",
                "openIdConnections[1002].openIdGroupId",
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        });
        let desired = Xelion::desired(&res, None).unwrap();
        assert_eq!(
            serde_json::to_value(&plan(&desired, &observed()).operations).unwrap(),
            json!([
                {"op": "replace", "path": "/securityDomain", "value": ""},
                {"op": "replace", "path": "/openIdConnections/1002/openIdGroupId", "value": ""},
                {"op": "replace", "path": "/openIdConnections/1002/liveSyncOn", "value": false},
            ])
        );
        let remote = serde_json::to_value(observed()).unwrap();
        let kept = kept_fields(&removals(REMOVABLE, &removed(&res)), &remote);
        assert_eq!(
            kept.iter().map(|k| k.path.as_str()).collect::<Vec<_>>(),
            vec!["tokenRetentionDays"]
        );
        // The whole list taken out unlinks every connection.
        let mut bare = spec(json!({}));
        bare.status = res.status.clone();
        let desired = Xelion::desired(&bare, None).unwrap();
        assert_eq!(
            plan(&desired, &observed()).drift,
            vec![
                "spec.securityDomain",
                "spec.openIdConnections[1001]",
                "spec.openIdConnections[1002]"
            ]
        );
    }
}

/// Property tests of the planner against a model of how Xelion applies an operation list.
#[cfg(test)]
mod props {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    fn text() -> impl Strategy<Value = Option<String>> {
        prop::option::of("[a-c]{0,2}")
    }

    fn number() -> impl Strategy<Value = Option<i64>> {
        prop::option::of(0i64..4)
    }

    fn connection(oid: String) -> impl Strategy<Value = OpenIdConnection> {
        (text(), text(), prop::option::of(any::<bool>()), text()).prop_map(
            move |(id, provider, live, group)| OpenIdConnection {
                oid: oid.clone(),
                object_type: None,
                open_id_id: id,
                open_id_provider: provider,
                live_sync_on: live,
                open_id_group_id: group,
            },
        )
    }

    /// Links with distinct OIDs from a small pool (so desired and observed overlap), in any order.
    fn links() -> impl Strategy<Value = Vec<OpenIdConnection>> {
        prop::collection::btree_set(1001u32..1007, 0..5)
            .prop_flat_map(|oids: BTreeSet<u32>| {
                oids.into_iter()
                    .map(|o| connection(o.to_string()))
                    .collect::<Vec<_>>()
            })
            .prop_shuffle()
    }

    fn authentication() -> impl Strategy<Value = Authentication> {
        (
            (text(), text(), text(), text()),
            (
                prop::option::of(any::<bool>()),
                number(),
                number(),
                number(),
            ),
            prop::option::of(links()),
        )
            .prop_map(
                |((code, domain, dc1, dc2), (sync, days, len, falses), links)| Authentication {
                    oid: None,
                    object_type: None,
                    code,
                    security_domain: domain,
                    domain_server1: dc1,
                    domain_server2: dc2,
                    synchronize_domain_time: sync,
                    token_retention_days: days,
                    minimum_password_length: len,
                    max_number_of_false_logins: falses,
                    open_id_connections: links,
                },
            )
    }

    fn set_scalar(a: &mut Authentication, field: &str, v: &Value) {
        let s = || v.as_str().map(str::to_owned);
        match field {
            "code" => a.code = s(),
            "securityDomain" => a.security_domain = s(),
            "domainServer1" => a.domain_server1 = s(),
            "domainServer2" => a.domain_server2 = s(),
            "synchronizeDomainTime" => a.synchronize_domain_time = v.as_bool(),
            "tokenRetentionDays" => a.token_retention_days = v.as_i64(),
            "minimumPasswordLength" => a.minimum_password_length = v.as_i64(),
            "maxNumberOfFalseLogins" => a.max_number_of_false_logins = v.as_i64(),
            other => panic!("replace of unknown field /{other}"),
        }
    }

    fn set_member(c: &mut OpenIdConnection, field: &str, v: &Value) {
        let s = || v.as_str().map(str::to_owned);
        match field {
            "openIdId" => c.open_id_id = s(),
            "openIdProvider" => c.open_id_provider = s(),
            "liveSyncOn" => c.live_sync_on = v.as_bool(),
            "openIdGroupId" => c.open_id_group_id = s(),
            other => panic!("replace of unknown member field {other}"),
        }
    }

    /// Xelion's PATCH as documented: replace a field, remove a link by OID, add a link (the
    /// OID as value) under a virtual id that later operations of the same list may use.
    /// `objects` holds the values of the OpenID connection objects a new link starts with.
    fn apply(
        observed: &Authentication,
        ops: &[Operation],
        objects: &BTreeMap<String, OpenIdConnection>,
    ) -> Authentication {
        let mut a = observed.clone();
        let mut virtual_ids = BTreeMap::new();
        for op in ops {
            let segs: Vec<&str> = op.path.trim_start_matches('/').split('/').collect();
            let value = op.value.clone().unwrap_or(Value::Null);
            let links = a.open_id_connections.get_or_insert_with(Vec::new);
            match (op.op, segs.as_slice()) {
                ("replace", [field]) => set_scalar(&mut a, field, &value),
                ("remove", ["openIdConnections", oid]) => {
                    let before = links.len();
                    links.retain(|c| c.oid != *oid);
                    assert_eq!(before, links.len() + 1, "remove of an unlinked OID {oid}");
                }
                ("add", ["openIdConnections", id]) => {
                    assert!(id.parse::<u32>().is_ok(), "virtual id {id} is a number");
                    let oid = value.as_str().expect("add carries an OID").to_owned();
                    assert!(
                        !links.iter().any(|c| c.oid == oid),
                        "add of a linked OID {oid}"
                    );
                    let start = objects.get(&oid).cloned().unwrap_or(OpenIdConnection {
                        oid: oid.clone(),
                        ..Default::default()
                    });
                    links.push(start);
                    virtual_ids.insert(id.to_string(), oid);
                }
                ("replace", ["openIdConnections", id, field]) => {
                    assert!(
                        !virtual_ids.contains_key(*id),
                        "replace through virtual id {id}"
                    );
                    let oid = id.to_string();
                    let link = links
                        .iter_mut()
                        .find(|c| c.oid == oid)
                        .unwrap_or_else(|| panic!("replace on an unlinked OID {oid}"));
                    set_member(link, field, &value);
                }
                other => panic!("unexpected operation {other:?}"),
            }
        }
        a
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn applying_the_plan_converges(
            desired in authentication(),
            observed in authentication(),
            objects in links(),
        ) {
            let objects = objects.into_iter().map(|c| (c.oid.clone(), c)).collect();
            let first = plan(&desired, &observed);
            let linked = apply(&observed, &first.operations, &objects);
            // The second round replaces fields of the connections the first one linked, and
            // only those that differ from the connection objects.
            let second = plan(&desired, &linked);
            for op in &second.operations {
                prop_assert_eq!(op.op, "replace");
                prop_assert!(
                    first.operations.iter().any(|a| a.op == "add"
                        && op.path.starts_with(&format!("/openIdConnections/{}/", a.value.as_ref().and_then(Value::as_str).unwrap_or_default()))),
                    "{:?} is not a field of a connection just linked", op
                );
            }
            let applied = apply(&linked, &second.operations, &objects);
            let third = plan(&desired, &applied);
            prop_assert!(third.operations.is_empty(), "left over: {:?}", third.operations);
            // The linked set is exactly the desired one (when the spec lists links).
            if let Some(want) = &desired.open_id_connections {
                let mut want: Vec<&str> = want.iter().map(|c| c.oid.as_str()).collect();
                let mut have: Vec<&str> = applied.open_id_connections.as_deref().unwrap_or_default()
                    .iter().map(|c| c.oid.as_str()).collect();
                want.sort();
                have.sort();
                prop_assert_eq!(want, have);
            }
        }

        #[test]
        fn no_operation_when_equal(desired in authentication()) {
            prop_assert_eq!(plan(&desired, &desired), Plan::default());
        }

        #[test]
        fn only_differing_stated_fields_are_sent(desired in authentication(), observed in authentication()) {
            let p = plan(&desired, &observed);
            let scalars: Vec<&Operation> = p.operations.iter()
                .filter(|o| o.path.matches('/').count() == 1)
                .collect();
            let differing = scalar_fields(&desired).into_iter().zip(scalar_fields(&observed))
                .filter(|((_, want), (_, have))| want.is_some() && want != have)
                .count();
            prop_assert_eq!(scalars.len(), differing);
            // Every operation is reported as drift, and nothing is sent twice.
            prop_assert_eq!(p.drift.is_empty(), p.operations.is_empty());
            let mut paths: Vec<&str> = p.operations.iter().map(|o| o.path.as_str()).collect();
            paths.sort();
            let all = paths.len();
            paths.dedup();
            prop_assert_eq!(all, paths.len());
            // Without a link list in the spec, links are left alone.
            if desired.open_id_connections.is_none() {
                prop_assert!(p.operations.iter().all(|o| !o.path.starts_with("/openIdConnections")));
            }
        }
    }
}
