//! TLS to the identity API: verification is on by default, a CA from a Secret makes a private
//! CA trusted, and an untrusted certificate is a readable condition, not a raw error dump.
//! The simulator serves HTTPS (`--tls-cert`, `--tls-key`) with a CA and server certificate
//! generated here, at test time.

mod support;

use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::{Value, json};
use support::cluster::{TestNamespace, ensure_cluster};
use support::kinds::identity_backend;
use support::operator::{Operator, apply, condition, wait_condition};
use support::sim::{SimOptions, SimProcess};

const READY: Duration = Duration::from_secs(45);

/// A fresh CA, returned with the PEM of its certificate.
fn ca(name: &str) -> (CertifiedIssuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let pem = ca.pem();
    (ca, pem)
}

fn ca_secret(pem: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-ca"},
           "stringData": {"ca.crt": pem}})
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_verification_follows_the_configured_ca() {
    // The simulator's certificate, for 127.0.0.1, signed by a CA of this test.
    let dir = tempfile::tempdir().unwrap();
    let (issuer, issuer_pem) = ca("identity-operator test CA");
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let sim = SimProcess::start(SimOptions {
        extra_args: vec![
            "--tls-cert".into(),
            cert_path.to_string_lossy().into(),
            "--tls-key".into(),
            key_path.to_string_lossy().into(),
        ],
        ..SimOptions::default()
    });
    assert!(sim.base_url().starts_with("https://"), "{}", sim.base_url());

    let cluster = ensure_cluster();

    // The CRDs before the first apply: on a fresh cluster, no operator has installed them yet.

    support::operator::install_crds(cluster);
    let ns = TestNamespace::new(cluster, "tls");
    // The Boruta connection of the kind suites: its client Secret and IdentityApi.
    let [secret, mut api] = identity_backend::connection(&sim).try_into().unwrap();
    apply(cluster, &ns, &secret.to_string());
    apply(cluster, &ns, &api.to_string());
    let op = Operator::start(cluster, &ns, &[]);
    let boruta_ready = |status: &'static str, reason: &'static str| {
        let what = "identityapi/boruta";
        wait_condition(cluster, &ns, what, "Ready", status, Some(reason), READY)
    };

    // 1. No CA configured: the system roots do not know the test CA.
    let untrusted = |obj: &Value| {
        let (_, _, message) = condition(obj, "Ready").unwrap();
        assert!(
            message.contains("is not trusted") && message.contains("spec.tls.caSecretRef"),
            "{message}"
        );
        // Readable: no Debug dump of the error chain.
        assert!(!message.contains("InvalidCertificate("), "{message}");
        assert!(!message.contains("Custom {"), "{message}");
        message
    };
    let obj = boruta_ready("False", "CertificateNotTrusted").await;
    let message = untrusted(&obj);
    assert!(
        message.contains(sim.base_url()),
        "names the server: {message}"
    );

    // 2. The right CA in a Secret.
    apply(cluster, &ns, &ca_secret(&issuer_pem).to_string());
    api["spec"]["tls"] = json!({"caSecretRef": {"name": "api-ca", "key": "ca.crt"}});
    apply(cluster, &ns, &api.to_string());
    boruta_ready("True", "Authenticated").await;

    // 3. The Secret now holds another CA: not trusted again, without any spec change.
    let (_, wrong_pem) = ca("some other CA");
    apply(cluster, &ns, &ca_secret(&wrong_pem).to_string());
    let obj = boruta_ready("False", "CertificateNotTrusted").await;
    untrusted(&obj);
    let events = ns.kubectl_ok(&["get", "events", "-o", "json"]);
    assert!(
        events.contains("CertificateNotTrusted"),
        "an Event: {events}"
    );

    // The client secret travelled only inside TLS and is never shown.
    assert!(!op.log().contains(&sim.options.client_secret));
    assert!(!events.contains(&sim.options.client_secret));
}
