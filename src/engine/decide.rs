//! The reconcile's decision: a pure function of what the reconcile found, so that the
//! reconcile and `plan` take the same decision and tests can state it as a table.
//!
//! Nothing here reads or writes: the reconcile gathers [`Facts`] (dereference, observe), asks
//! [`decide`] for a [`Step`], and acts on it; `plan` asks the same question and prints the
//! answer instead of acting.

use super::spec::{DeletionPolicy, ManagementPolicy};

/// Writes in a row that left the remote object exactly as it was before them (for the same
/// spec, Secrets and remote state) before the operator stops writing: two chances for a slow or
/// eventually consistent API, then a condition instead of a write at every reconcile.
pub const MAX_UNCONVERGED_WRITES: u32 = 3;

/// What the reconcile found about one resource and its remote object.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub policy: ManagementPolicy,
    /// The remote object, when it exists.
    pub remote: Option<Remote<'a>>,
    /// A referenced Secret changed since its value was last sent (or was never sent).
    pub secrets_changed: bool,
    /// The remote id the spec names for adoption.
    pub spec_id: Option<&'a str>,
    /// The remote id the status records: the object the resource is linked to.
    pub linked_id: Option<&'a str>,
    /// Writes already made in a row from exactly this spec, Secrets and remote state.
    pub unconverged_writes: u32,
}

/// The remote object as observed.
#[derive(Clone, Copy, Debug)]
pub struct Remote<'a> {
    pub id: &'a str,
    /// Spec paths where it differs from the spec (write-only fields excluded).
    pub drift: &'a [String],
}

/// What the reconcile does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create the remote object; `again` when the one the resource was linked to is gone.
    Create { again: bool },
    /// The remote object exists: link it (`adopt`: it was not linked yet) and make it match.
    Sync { adopt: bool, write: Write },
    /// `Observe`: report the drift, write nothing.
    Observe { drift: Vec<String> },
    /// Nothing can be done until something changes.
    Blocked(Blocked),
}

/// Whether a linked remote object is written, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// It matches the spec and the Secrets were sent.
    Nothing,
    /// These spec paths differ, and/or a Secret's value has to be sent again.
    Fields {
        drift: Vec<String>,
        secrets_changed: bool,
    },
}

/// Why nothing can be done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// `Observe`, and the remote object does not exist (Observe never creates).
    NothingToObserve,
    /// The remote object the spec names for adoption does not exist.
    NothingToAdopt { id: String },
    /// Writes did not make the remote object match: the same paths still differ.
    WriteNotConverging { drift: Vec<String> },
}

impl Write {
    pub fn is_nothing(&self) -> bool {
        matches!(self, Write::Nothing)
    }

    /// What the write changes, in words for an Event and a log line.
    pub fn describe(&self) -> String {
        match self {
            Write::Nothing => "nothing".to_owned(),
            Write::Fields {
                drift,
                secrets_changed: false,
            } => drift.join(", "),
            Write::Fields {
                drift,
                secrets_changed: true,
            } if drift.is_empty() => "credentials from Secrets".to_owned(),
            Write::Fields { drift, .. } => {
                format!("{} and credentials from Secrets", drift.join(", "))
            }
        }
    }
}

/// The step for a resource that is not being deleted.
pub fn decide(facts: &Facts) -> Step {
    let Some(remote) = facts.remote else {
        return match (facts.policy, facts.spec_id) {
            (ManagementPolicy::Observe, _) => Step::Blocked(Blocked::NothingToObserve),
            (ManagementPolicy::Apply, Some(id)) => {
                Step::Blocked(Blocked::NothingToAdopt { id: id.to_owned() })
            }
            (ManagementPolicy::Apply, None) => Step::Create {
                again: facts.linked_id.is_some(),
            },
        };
    };
    if facts.policy == ManagementPolicy::Observe {
        return Step::Observe {
            drift: remote.drift.to_vec(),
        };
    }
    let adopt = facts.linked_id != Some(remote.id);
    if remote.drift.is_empty() && !facts.secrets_changed {
        return Step::Sync {
            adopt,
            write: Write::Nothing,
        };
    }
    if facts.unconverged_writes >= MAX_UNCONVERGED_WRITES {
        return Step::Blocked(Blocked::WriteNotConverging {
            drift: remote.drift.to_vec(),
        });
    }
    Step::Sync {
        adopt,
        write: Write::Fields {
            drift: remote.drift.to_vec(),
            secrets_changed: facts.secrets_changed,
        },
    }
}

/// What the reconcile found about a resource being deleted.
#[derive(Clone, Copy, Debug)]
pub struct DeletionFacts<'a> {
    /// `spec.deletionPolicy`, when set.
    pub policy: Option<DeletionPolicy>,
    /// The kind creates and deletes its remote objects (false for settings singletons).
    pub creates: bool,
    /// Deleting this resource may mean deleting or changing something remote.
    pub deletes_remote: bool,
    /// The operator created the remote object (`status.created`).
    pub created: Option<bool>,
    /// The remote object the resource is linked to.
    pub linked_id: Option<&'a str>,
    /// The operator recorded, before a create call, that it creates the remote object.
    pub creation_recorded: bool,
    /// The paused annotation is set.
    pub paused: bool,
}

/// What happens to the remote object of a resource being deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// Nothing remote was ever linked: only the finalizer goes.
    Release,
    /// Delete (or, for a settings singleton, disable) the remote object.
    Delete { id: String },
    /// A create whose answer was lost (the operator died, the call timed out) left no id in
    /// the status, but the object may exist all the same: find it by its natural key and
    /// delete it.
    DeleteUnlinked,
    /// Leave the remote object in place.
    Orphan { id: String, why: OrphanBecause },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrphanBecause {
    /// `deletionPolicy: Orphan`, written or by default for an adopted object.
    Policy,
    /// The paused annotation stops all writes, deletions included.
    Paused,
}

/// The deletion policy in effect: the spec's, else Delete for what the operator created (and
/// for settings singletons whose spec asks for a change on deletion), else Orphan: it never
/// destroys what it did not make unless told to.
pub fn deletion_policy(facts: &DeletionFacts) -> DeletionPolicy {
    match facts.policy {
        Some(policy) => policy,
        None if !facts.creates && facts.deletes_remote => DeletionPolicy::Delete,
        None if facts.creates && facts.created == Some(true) => DeletionPolicy::Delete,
        None => DeletionPolicy::Orphan,
    }
}

/// Whether a resource that holds the cleanup finalizer may still need its connection: its
/// deletion would delete (or, for a settings singleton, change) the remote object. `creating`:
/// the operator recorded a create it is making, whose answer may not be in the status yet; such
/// a resource counts as linked to an object it created. While this holds, the connection and
/// its credential Secrets carry the in-use finalizer.
pub fn needs_connection(facts: &DeletionFacts, creating: bool) -> bool {
    if facts.paused || (facts.linked_id.is_none() && !creating) {
        return false;
    }
    let created = facts.created.or(creating.then_some(true));
    deletion_policy(&DeletionFacts { created, ..*facts }) == DeletionPolicy::Delete
}

pub fn decide_deletion(facts: &DeletionFacts) -> Deletion {
    let Some(id) = facts.linked_id else {
        let lost_create = facts.creates && facts.creation_recorded && !facts.paused;
        return match facts.policy {
            Some(DeletionPolicy::Orphan) => Deletion::Release,
            _ if lost_create => Deletion::DeleteUnlinked,
            _ => Deletion::Release,
        };
    };
    let id = id.to_owned();
    match deletion_policy(facts) {
        DeletionPolicy::Delete if facts.paused => Deletion::Orphan {
            id,
            why: OrphanBecause::Paused,
        },
        DeletionPolicy::Delete => Deletion::Delete { id },
        DeletionPolicy::Orphan => Deletion::Orphan {
            id,
            why: OrphanBecause::Policy,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ManagementPolicy::{Apply, Observe};

    fn facts<'a>(policy: ManagementPolicy, remote: Option<Remote<'a>>) -> Facts<'a> {
        Facts {
            policy,
            remote,
            secrets_changed: false,
            spec_id: None,
            linked_id: None,
            unconverged_writes: 0,
        }
    }

    fn remote<'a>(id: &'a str, drift: &'a [String]) -> Option<Remote<'a>> {
        Some(Remote { id, drift })
    }

    fn fields(drift: &[&str], secrets_changed: bool) -> Write {
        Write::Fields {
            drift: drift.iter().map(|s| s.to_string()).collect(),
            secrets_changed,
        }
    }

    fn linked(f: Facts<'_>) -> Facts<'_> {
        Facts {
            linked_id: Some("r1"),
            ..f
        }
    }

    fn check(cases: Vec<(&str, Facts, Step)>) {
        for (what, facts, want) in cases {
            assert_eq!(decide(&facts), want, "{what}");
        }
    }

    #[test]
    fn without_a_remote_object_or_observing() {
        let port = vec!["spec.port".to_owned()];
        check(vec![
            (
                "nothing remote: create",
                facts(Apply, None),
                Step::Create { again: false },
            ),
            (
                "linked object gone: create again",
                linked(facts(Apply, None)),
                Step::Create { again: true },
            ),
            (
                "explicit id that does not exist: blocked, never created",
                Facts {
                    spec_id: Some("r9"),
                    ..facts(Apply, None)
                },
                Step::Blocked(Blocked::NothingToAdopt { id: "r9".into() }),
            ),
            (
                "observe, nothing remote",
                facts(Observe, None),
                Step::Blocked(Blocked::NothingToObserve),
            ),
            (
                "observe reports drift, writes nothing",
                Facts {
                    secrets_changed: true,
                    ..facts(Observe, remote("r1", &port))
                },
                Step::Observe {
                    drift: port.clone(),
                },
            ),
        ]);
    }

    #[test]
    fn a_remote_object_is_adopted_or_updated() {
        let none: Vec<String> = Vec::new();
        let port = vec!["spec.port".to_owned()];
        check(vec![
            (
                "found by name, matching: adopt without a write",
                facts(Apply, remote("r1", &none)),
                Step::Sync {
                    adopt: true,
                    write: Write::Nothing,
                },
            ),
            (
                "found by name, differing: adopt and write",
                facts(Apply, remote("r1", &port)),
                Step::Sync {
                    adopt: true,
                    write: fields(&["spec.port"], false),
                },
            ),
            (
                "linked and matching: no-op",
                linked(facts(Apply, remote("r1", &none))),
                Step::Sync {
                    adopt: false,
                    write: Write::Nothing,
                },
            ),
            (
                "linked, only a Secret changed: write",
                Facts {
                    secrets_changed: true,
                    ..linked(facts(Apply, remote("r1", &none)))
                },
                Step::Sync {
                    adopt: false,
                    write: fields(&[], true),
                },
            ),
            (
                "linked, drift: update",
                linked(facts(Apply, remote("r1", &port))),
                Step::Sync {
                    adopt: false,
                    write: fields(&["spec.port"], false),
                },
            ),
        ]);
    }

    #[test]
    fn writes_that_change_nothing_stop() {
        let none: Vec<String> = Vec::new();
        let port = vec!["spec.port".to_owned()];
        check(vec![
            (
                "writes that changed nothing: stop",
                Facts {
                    unconverged_writes: MAX_UNCONVERGED_WRITES,
                    ..linked(facts(Apply, remote("r1", &port)))
                },
                Step::Blocked(Blocked::WriteNotConverging {
                    drift: port.clone(),
                }),
            ),
            (
                "one write short of the limit: write again",
                Facts {
                    unconverged_writes: MAX_UNCONVERGED_WRITES - 1,
                    ..linked(facts(Apply, remote("r1", &port)))
                },
                Step::Sync {
                    adopt: false,
                    write: fields(&["spec.port"], false),
                },
            ),
            (
                "the streak does not matter once in sync",
                Facts {
                    unconverged_writes: 9,
                    ..linked(facts(Apply, remote("r1", &none)))
                },
                Step::Sync {
                    adopt: false,
                    write: Write::Nothing,
                },
            ),
        ]);
    }

    const BASE: DeletionFacts<'static> = DeletionFacts {
        policy: None,
        creates: true,
        deletes_remote: true,
        created: None,
        linked_id: Some("r1"),
        creation_recorded: false,
        paused: false,
    };

    fn check_deletion(cases: &[(&str, DeletionFacts, Deletion)]) {
        for (what, facts, want) in cases {
            assert_eq!(&decide_deletion(facts), want, "{what}");
        }
    }

    fn orphan(why: OrphanBecause) -> Deletion {
        Deletion::Orphan {
            id: "r1".into(),
            why,
        }
    }

    #[test]
    fn deletion_follows_the_policy_and_who_created_it() {
        let delete = Deletion::Delete { id: "r1".into() };
        check_deletion(&[
            (
                "adopted, no policy: orphan",
                BASE,
                orphan(OrphanBecause::Policy),
            ),
            (
                "created, no policy: delete",
                DeletionFacts {
                    created: Some(true),
                    ..BASE
                },
                delete.clone(),
            ),
            (
                "adopted, Delete written: delete",
                DeletionFacts {
                    policy: Some(DeletionPolicy::Delete),
                    ..BASE
                },
                delete.clone(),
            ),
            (
                "created, Orphan written: orphan",
                DeletionFacts {
                    policy: Some(DeletionPolicy::Orphan),
                    created: Some(true),
                    ..BASE
                },
                orphan(OrphanBecause::Policy),
            ),
        ]);
    }

    #[test]
    fn deletion_of_paused_singletons_and_unlinked_resources() {
        check_deletion(&[
            (
                "paused: never deleted",
                DeletionFacts {
                    created: Some(true),
                    paused: true,
                    ..BASE
                },
                orphan(OrphanBecause::Paused),
            ),
            (
                "singleton whose spec asks for a change on deletion",
                DeletionFacts {
                    creates: false,
                    ..BASE
                },
                Deletion::Delete { id: "r1".into() },
            ),
            (
                "singleton left as it is",
                DeletionFacts {
                    creates: false,
                    deletes_remote: false,
                    ..BASE
                },
                orphan(OrphanBecause::Policy),
            ),
            (
                "nothing linked: release",
                DeletionFacts {
                    linked_id: None,
                    ..BASE
                },
                Deletion::Release,
            ),
            (
                "a create whose answer was lost: find it and delete it",
                DeletionFacts {
                    linked_id: None,
                    creation_recorded: true,
                    ..BASE
                },
                Deletion::DeleteUnlinked,
            ),
            (
                "a lost create, but Orphan written: release",
                DeletionFacts {
                    linked_id: None,
                    creation_recorded: true,
                    policy: Some(DeletionPolicy::Orphan),
                    ..BASE
                },
                Deletion::Release,
            ),
        ]);
    }

    fn check_needs_connection(cases: &[(&str, DeletionFacts, bool, bool)]) {
        for &(what, facts, creating, want) in cases {
            assert_eq!(needs_connection(&facts, creating), want, "{what}");
            // Never needed where the deletion itself would not delete.
            if !creating && want {
                assert!(matches!(decide_deletion(&facts), Deletion::Delete { .. }));
            }
        }
    }

    #[test]
    fn the_connection_is_needed_exactly_while_a_deletion_would_delete() {
        check_needs_connection(&[
            ("adopted, no policy: orphaned", BASE, false, false),
            (
                "created: deleted",
                DeletionFacts {
                    created: Some(true),
                    ..BASE
                },
                false,
                true,
            ),
            (
                "created, Orphan written",
                DeletionFacts {
                    policy: Some(DeletionPolicy::Orphan),
                    created: Some(true),
                    ..BASE
                },
                true,
                false,
            ),
            (
                "paused: orphaned whatever the policy",
                DeletionFacts {
                    policy: Some(DeletionPolicy::Delete),
                    paused: true,
                    ..BASE
                },
                false,
                false,
            ),
            (
                "singleton disabled on deletion",
                DeletionFacts {
                    creates: false,
                    ..BASE
                },
                false,
                true,
            ),
            (
                "singleton left as it is",
                DeletionFacts {
                    creates: false,
                    deletes_remote: false,
                    ..BASE
                },
                false,
                false,
            ),
        ]);
    }

    #[test]
    fn an_unlinked_resource_needs_the_connection_only_while_creating() {
        check_needs_connection(&[
            (
                "create under way, answer not recorded yet",
                DeletionFacts {
                    linked_id: None,
                    ..BASE
                },
                true,
                true,
            ),
            (
                "nothing linked, nothing being created",
                DeletionFacts {
                    linked_id: None,
                    created: Some(true),
                    ..BASE
                },
                false,
                false,
            ),
        ]);
    }

    #[test]
    fn writes_are_described_in_words() {
        assert_eq!(
            fields(&["spec.a", "spec.b"], false).describe(),
            "spec.a, spec.b"
        );
        assert_eq!(fields(&[], true).describe(), "credentials from Secrets");
        assert_eq!(
            fields(&["spec.a"], true).describe(),
            "spec.a and credentials from Secrets"
        );
    }
}
