//! Kubernetes Events, published without kube's `Recorder`. The recorder keeps every Event it
//! sent, whole, for six minutes to count repeats, and scans them all on every publish: at
//! 10,000 resources that was megabytes of memory and a quadratic cost. Here a repeat is known by
//! a hash of what makes two Events the same, and only its name, count and time are kept.
//!
//! Reconciles do not wait for their Events: they queue them (a bounded queue of small records),
//! and one task publishes them, a few at a time. When more than `QUEUED` wait, as client-go's
//! broadcaster does, the newest is dropped and counted
//! (`identity_operator_events_dropped_total`): an Event is a report, never state.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, Client, Resource};
use serde_json::json;

/// How long a repeat of an Event counts in the series of the first, as kube's recorder does.
const SERIES_TTL: Duration = Duration::from_secs(6 * 60);
/// How often the record of sent Events is swept of expired entries.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Events in flight at once: the kube client speaks HTTP/1.1, so each is a connection to the
/// API server.
const IN_FLIGHT: usize = 8;
/// Events waiting to be published.
const QUEUED: usize = 4096;

/// Queues Events for the publishing task.
pub struct Events {
    publisher: Arc<Publisher>,
    queue: tokio::sync::mpsc::Sender<Queued>,
    dropped: prometheus_client::metrics::counter::Counter,
}

/// An Event waiting to be published.
struct Queued {
    type_: EventType,
    reason: String,
    action: String,
    note: String,
    regarding: ObjectReference,
}

/// Publishes Events, counting repeats in series.
pub struct Publisher {
    client: Client,
    controller: String,
    instance: String,
    sent: Mutex<Sent>,
}

struct Sent {
    by_key: HashMap<u64, Series>,
    hasher: RandomState,
    swept: Instant,
}

struct Series {
    name: Box<str>,
    count: i32,
    last: Instant,
}

/// One Event to publish about `regarding`.
#[derive(Clone, Copy)]
pub struct Report<'a> {
    pub type_: EventType,
    pub reason: &'a str,
    pub action: &'a str,
    pub note: &'a str,
}

impl Events {
    /// Starts the publishing task (it ends when `Events` is dropped); `dropped` counts the
    /// Events a full queue refused.
    pub fn new(
        client: Client,
        controller: &str,
        instance: &str,
        dropped: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        let publisher = Arc::new(Publisher {
            client,
            controller: controller.to_owned(),
            instance: instance.to_owned(),
            sent: Mutex::new(Sent {
                by_key: HashMap::new(),
                hasher: RandomState::new(),
                swept: Instant::now(),
            }),
        });
        let (queue, rx) = tokio::sync::mpsc::channel::<Queued>(QUEUED);
        let worker = publisher.clone();
        tokio::spawn(
            tokio_stream::wrappers::ReceiverStream::new(rx)
                .map(move |q| {
                    let worker = worker.clone();
                    async move {
                        let report = Report {
                            type_: q.type_,
                            reason: &q.reason,
                            action: &q.action,
                            note: &q.note,
                        };
                        if let Err(e) = worker.publish(&report, &q.regarding).await {
                            tracing::warn!(
                                error = %e,
                                namespace = q.regarding.namespace.as_deref().unwrap_or_default(),
                                name = q.regarding.name.as_deref().unwrap_or_default(),
                                "could not publish an Event"
                            );
                        }
                    }
                })
                .buffer_unordered(IN_FLIGHT)
                .for_each(|()| futures::future::ready(())),
        );
        Self {
            publisher,
            queue,
            dropped,
        }
    }

    /// Queues an Event about `res`: the reconcile (its remote write, its status) does not wait
    /// for one more round trip to the API server. Notes are cut to the API server's 1 kB.
    pub fn emit<K: Resource<DynamicType = ()>>(
        &self,
        res: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) {
        let note = truncate_note(note.into());
        let report = Report {
            type_,
            reason,
            action,
            note: &note,
        };
        self.send(&report, res.object_ref(&()));
    }

    /// Queues the Event; the caller never waits for the API server.
    pub fn send(&self, report: &Report<'_>, regarding: ObjectReference) {
        let queued = Queued {
            type_: report.type_,
            reason: report.reason.to_owned(),
            action: report.action.to_owned(),
            note: report.note.to_owned(),
            regarding,
        };
        if self.queue.try_send(queued).is_err() {
            self.dropped.inc();
            tracing::debug!(reason = report.reason, "Event dropped: too many waiting");
        }
    }

    /// Publishes the Event now.
    pub async fn publish(
        &self,
        report: &Report<'_>,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        self.publisher.publish(report, regarding).await
    }
}

/// Events notes are limited to 1 kB by the API server.
fn truncate_note(mut note: String) -> String {
    if note.len() > 1000 {
        let mut end = 997;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}

/// Where the Events about `regarding` go: its namespace, and `kube-system` for a cluster-scoped
/// object. Kubernetes 1.20 refuses an events.k8s.io Event about one in `default` ("does not
/// match event.namespace"); every version accepts `kube-system`.
fn namespace_of(regarding: &ObjectReference) -> &str {
    regarding
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .unwrap_or("kube-system")
}

impl Publisher {
    /// Creates the Event, or, when the same one was sent within the last six minutes, counts
    /// it in that Event's series.
    pub async fn publish(
        &self,
        report: &Report<'_>,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace_of(regarding));
        let (key, repeat) = self.repeat_of(report, regarding);
        if let Some((name, count)) = repeat {
            let series = json!({"series": EventSeries {
                count,
                last_observed_time: MicroTime(k8s_openapi::jiff::Timestamp::now()),
            }});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                .await
            {
                Err(kube::Error::Api(e)) if e.code == 404 => {} // gone: start a new one
                other => return other.map(|_| ()),
            }
        }
        let event = self.event(report, regarding);
        let name = event.metadata.name.clone().unwrap_or_default();
        api.create(&PostParams::default(), &event).await?;
        let mut sent = self.sent.lock().expect("lock");
        sent.by_key.insert(
            key,
            Series {
                name: name.into(),
                count: 1,
                last: Instant::now(),
            },
        );
        Ok(())
    }

    /// The key of this Event, and the name and new count of the series it repeats, if any.
    fn repeat_of(
        &self,
        report: &Report<'_>,
        regarding: &ObjectReference,
    ) -> (u64, Option<(String, i32)>) {
        let mut sent = self.sent.lock().expect("lock");
        if sent.swept.elapsed() > SWEEP_EVERY {
            sent.by_key.retain(|_, s| s.last.elapsed() < SERIES_TTL);
            sent.swept = Instant::now();
        }
        let key = sent.hasher.hash_one((
            matches!(report.type_, EventType::Warning),
            report.reason,
            report.action,
            report.note,
            &regarding.uid,
            &regarding.kind,
            &regarding.namespace,
            &regarding.name,
        ));
        let repeat = sent
            .by_key
            .get_mut(&key)
            .filter(|s| s.last.elapsed() < SERIES_TTL)
            .map(|s| {
                s.count += 1;
                s.last = Instant::now();
                (s.name.to_string(), s.count)
            });
        (key, repeat)
    }

    fn event(&self, report: &Report<'_>, regarding: &ObjectReference) -> Event {
        let now = k8s_openapi::jiff::Timestamp::now();
        Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.as_nanosecond()
                )),
                namespace: Some(namespace_of(regarding).to_owned()),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(
                match report.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            reason: Some(report.reason.into()),
            action: Some(report.action.into()),
            note: Some(report.note.into()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        }
    }
}
