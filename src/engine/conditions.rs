//! Conditions as types: the condition types the managed kinds report, and every reason
//! the operator sets them with. Troubleshooting documents each reason (`Reason::ALL`), so a
//! reason can only be added here, where the documentation test finds it.

use super::spec::Condition;
use super::status::now;

/// The condition types of every kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    /// The remote object exists and matches the spec (IdentityApi: the operator can
    /// authenticate).
    Ready,
    /// The last reconcile succeeded.
    Synced,
    /// A connection being deleted waits for the resources that still need it (`InUse`).
    Deleting,
    /// Fields taken out of the spec that the identity API cannot clear keep their remote
    /// value (`True` while there are any, with reason `CannotClear`).
    FieldsKept,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Synced => "Synced",
            ConditionType::Deleting => "Deleting",
            ConditionType::FieldsKept => "FieldsKept",
        }
    }
}

/// What a reason tells the person looking at a resource (and Argo CD's health check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meaning {
    /// All is well: the condition is `True`.
    Success,
    /// A failure the operator retries by itself; it clears without anyone acting.
    Transient,
    /// A failure that lasts until someone changes something: the spec, a Secret, the
    /// connection or the identity system.
    NeedsChange,
    /// Writes are stopped on purpose (the pause annotation).
    Paused,
}

macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $name:ident: $meaning:ident,)*) => {
        /// Why a condition has its status: the `reason` of `Ready`, `Synced` and `Deleting`,
        /// and of the Warning Events of failures.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[doc = $doc])* $name,)*
        }

        impl Reason {
            /// Every reason, in the order of their declaration.
            pub const ALL: &'static [Reason] = &[$(Reason::$name,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)*
                }
            }

            pub fn meaning(self) -> Meaning {
                match self {
                    $(Reason::$name => Meaning::$meaning,)*
                }
            }
        }
    };
}

reasons! {
    /// Ready=True: the remote object matches the spec.
    Synced: Success,
    /// Synced=True: the last reconcile succeeded.
    ReconcileSuccess: Success,
    /// Synced=True under `Observe`: the remote object was read and compared, nothing written.
    Observed: Success,
    /// IdentityApi Ready=True: the operator authenticated with the identity API.
    Authenticated: Success,
    /// Ready=False under `Observe`: the remote object differs from the spec (`status.drift`).
    Drifted: NeedsChange,
    /// Synced=False: the `identity.operator.dev/paused` annotation stops all writes.
    Paused: Paused,
    /// The IdentityApi named by `spec.apiRef` does not exist.
    IdentityApiNotFound: NeedsChange,
    /// The IdentityApi is of another provider than the kind needs.
    WrongProvider: NeedsChange,
    /// A referenced Secret does not exist.
    SecretNotFound: NeedsChange,
    /// A referenced Secret exists but lacks the key, or the key's value is empty.
    SecretKeyNotFound: NeedsChange,
    /// A referenced Secret key holds bytes that are not UTF-8 text.
    SecretNotText: NeedsChange,
    /// A referenced ConfigMap does not exist.
    ConfigMapNotFound: NeedsChange,
    /// A referenced ConfigMap exists but lacks the key.
    ConfigMapKeyNotFound: NeedsChange,
    /// The spec cannot be turned into a request (checked before anything is sent).
    InvalidSpec: NeedsChange,
    /// The remote object to observe or adopt does not exist.
    RemoteNotFound: NeedsChange,
    /// Another object stands in the way (a second settings resource, several remote objects
    /// with the same name).
    Conflict: NeedsChange,
    /// The identity API refused the spec (400/409/422): not retried until something changes.
    Rejected: NeedsChange,
    /// The remote object still differed right after several writes: the operator stopped
    /// writing until the spec, a Secret or the remote object changes.
    WriteNotConverging: NeedsChange,
    /// The identity API asked the operator to slow down (429).
    RateLimited: Transient,
    /// Logging in to the identity API failed.
    AuthenticationFailed: NeedsChange,
    /// The identity API's TLS certificate is not trusted.
    CertificateNotTrusted: NeedsChange,
    /// The identity API refused the operator's credentials for a call (401/403).
    Unauthorized: NeedsChange,
    /// The identity API failed (5xx, timeout, connection refused, an unreadable answer).
    IdentityApiError: Transient,
    /// The connection backs off after failures: every resource using it waits for its next
    /// attempt instead of trying on its own.
    IdentityApiUnavailable: Transient,
    /// The connection (a ClusterIdentityApi) does not allow this namespace, kind or policy.
    ConnectionNotAllowed: NeedsChange,
    /// A connection or credential Secret being deleted is held while resources still need it.
    InUse: NeedsChange,
    /// FieldsKept=True: fields taken out of the spec keep their remote value, as the identity
    /// API cannot clear them; stated again in the spec, or cleared by hand, they stop being
    /// reported.
    CannotClear: NeedsChange,
    /// The Kubernetes API failed.
    KubernetesError: Transient,
}

impl Reason {
    /// The reason called `name`, if the operator can set it.
    pub fn find(name: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.as_str() == name)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sets a condition, keeping its transition time when the status did not flip.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: ConditionType,
    ok: bool,
    reason: Reason,
    message: impl Into<String>,
    generation: Option<i64>,
) {
    let status = if ok { "True" } else { "False" };
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_.as_str()) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now();
            }
            c.status = status.into();
            c.reason = reason.as_str().into();
            c.message = message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.as_str().into(),
            status: status.into(),
            reason: reason.as_str().into(),
            message,
            last_transition_time: now(),
            observed_generation: generation,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_a_flip() {
        use ConditionType::Ready;
        let mut conds = Vec::new();
        set_condition(
            &mut conds,
            Ready,
            false,
            Reason::SecretNotFound,
            "x",
            Some(1),
        );
        let first = conds[0].last_transition_time.clone();
        conds[0].last_transition_time = "2000-01-01T00:00:00Z".into();
        set_condition(&mut conds, Ready, false, Reason::Rejected, "y", Some(2));
        assert_eq!(conds[0].last_transition_time, "2000-01-01T00:00:00Z");
        assert_eq!(conds[0].reason, "Rejected");
        set_condition(&mut conds, Ready, true, Reason::Synced, "", Some(2));
        assert_ne!(conds[0].last_transition_time, "2000-01-01T00:00:00Z");
        assert!(!first.is_empty());
    }

    #[test]
    fn reasons_are_unique_camel_case_words() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "{r} twice");
            assert!(r.as_str().chars().next().unwrap().is_ascii_uppercase());
            assert!(r.as_str().chars().all(|c| c.is_ascii_alphanumeric()));
        }
    }
}
