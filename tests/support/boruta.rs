//! A Boruta connection and IdentityBackends, for tests that need resources in a few known
//! states but are about something else (Argo CD health, metrics, the kubectl plugin).

use std::time::Duration;

use serde_json::{Value, json};

use super::chart::merge;
use super::cluster::{Cluster, TestNamespace};
use super::kinds::identity_backend::identity_api;
use super::kinds::secret;
use super::operator::{apply, wait_condition};
use super::sim::{SimOptions, SimProcess};

/// The Secret and the IdentityApi `boruta` of the simulator's Boruta, `extra` merged into the
/// IdentityApi's spec.
pub fn connection(sim: &SimProcess, extra: Value) -> [Value; 2] {
    let secret = secret(
        "boruta-client",
        json!({"secret": sim.options.client_secret}),
    );
    let mut api = identity_api(sim, "boruta");
    merge(&mut api["spec"], &extra);
    [secret, api]
}

/// An IdentityBackend `name` of the IdentityApi `boruta`, `extra` merged into its spec.
pub fn backend(name: &str, extra: Value) -> Value {
    let mut spec =
        json!({"apiRef": {"name": "boruta"}, "name": name, "passwordHashingAlg": "argon2"});
    merge(&mut spec, &extra);
    json!({
        "apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityBackend",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// An LDAP IdentityBackend whose bind password Secret does not exist: `SecretNotFound`.
pub fn backend_without_its_secret(name: &str) -> Value {
    backend(
        name,
        json!({"type": "Ldap", "ldapHost": "ldap.example.com", "ldapUserRdnAttribute": "uid",
               "ldapBaseDn": "dc=example", "ldapMasterDn": "cn=admin,dc=example",
               "ldapMasterPasswordSecretRef": {"name": "absent", "key": "password"}}),
    )
}

/// The simulator (Boruta's OAuth rate limit off), its connection `boruta` (`extra` merged into
/// the IdentityApi's spec) and two IdentityBackends, applied in `ns`: `good`, which becomes
/// Ready, and `broken`, whose bind password Secret is missing (`SecretNotFound`).
pub fn good_and_broken(cluster: &Cluster, ns: &TestNamespace, extra: Value) -> SimProcess {
    let sim = SimProcess::start(SimOptions {
        extra_args: vec!["--boruta-oauth-rate-limit".into(), "0".into()],
        ..SimOptions::default()
    });
    let [secret, api] = connection(&sim, extra);
    let backends = [
        backend("good", json!({})),
        backend_without_its_secret("broken"),
    ];
    for doc in [secret, api].iter().chain(&backends) {
        apply(cluster, ns, &doc.to_string());
    }
    sim
}

/// Waits until an operator has reconciled both of [`good_and_broken`]'s backends.
pub async fn wait_good_and_broken(cluster: &Cluster, ns: &TestNamespace) {
    let timeout = Duration::from_secs(45);
    let good = "identitybackend/good";
    wait_condition(cluster, ns, good, "Ready", "True", None, timeout).await;
    let broken = "identitybackend/broken";
    let missing = Some("SecretNotFound");
    wait_condition(cluster, ns, broken, "Ready", "False", missing, timeout).await;
}
