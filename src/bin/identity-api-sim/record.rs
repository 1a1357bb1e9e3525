//! What the simulator received: call counts per API/method/status and a bounded log.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Value, json};

use crate::wire::{Api, Locked, SimRequest, parse_form};

/// Bodies larger than this are logged as a size only, so the ring buffer stays small.
const MAX_LOGGED_BODY: usize = 16 * 1024;
const REDACTED: &str = "[redacted]";
/// Keys whose (non-null) values are never logged, at any depth of any body: credentials of the
/// auth flows, and the passwords the vendor APIs take in their write bodies.
const SECRET_KEYS: &[&str] = &[
    "client_secret",
    "password",
    "sharedSecret",
    "refresh_token",
    "client_assertion",
    "ldap_master_password",
    "smtp_password",
];

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub seq: u64,
    pub timestamp_ms: u64,
    pub duration_ms: u64,
    pub api: &'static str,
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    pub body: Value,
    pub client: Option<String>,
}

#[derive(Default)]
struct Inner {
    calls: BTreeMap<&'static str, BTreeMap<String, BTreeMap<String, u64>>>,
    log: VecDeque<LogEntry>,
    last_seq: u64,
}

pub struct Recorder {
    inner: Mutex<Inner>,
    capacity: usize,
}

/// Everything about one finished call that goes into the log.
pub struct Call<'a> {
    pub api: Api,
    pub request: &'a SimRequest,
    pub raw_query: &'a str,
    pub status: u16,
    pub started_ms: u64,
    pub finished_ms: u64,
}

impl Recorder {
    pub fn new(capacity: usize) -> Self {
        Recorder {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    pub fn record(&self, call: Call<'_>) {
        // Parsing and redaction happen before taking the lock.
        let body = logged_body(call.api, call.request);
        let client = call
            .request
            .header("x-sim-client")
            .or_else(|| call.request.header("user-agent"))
            .map(str::to_string);
        let mut entry = LogEntry {
            seq: 0,
            timestamp_ms: call.started_ms,
            duration_ms: call.finished_ms.saturating_sub(call.started_ms),
            api: call.api.name(),
            method: call.request.method.to_string(),
            path: format!("/{}{}", call.api.name(), call.request.path),
            query: call.raw_query.to_string(),
            status: call.status,
            body,
            client,
        };
        let mut inner = self.inner.locked();
        *inner
            .calls
            .entry(entry.api)
            .or_default()
            .entry(entry.method.clone())
            .or_default()
            .entry(call.status.to_string())
            .or_default() += 1;
        inner.last_seq += 1;
        entry.seq = inner.last_seq;
        if inner.log.len() >= self.capacity {
            inner.log.pop_front();
        }
        inner.log.push_back(entry);
    }

    pub fn calls(&self) -> Value {
        let inner = self.inner.locked();
        serde_json::to_value(&inner.calls).unwrap_or_default()
    }

    /// Entries with `seq > since`, optionally of one API, at most `limit` of them (oldest
    /// first), and the last sequence number handed out so far.
    pub fn log(&self, api: Option<&str>, since: u64, limit: usize) -> Value {
        let inner = self.inner.locked();
        let entries: Vec<&LogEntry> = inner
            .log
            .iter()
            .filter(|e| e.seq > since && api.is_none_or(|a| a == e.api))
            .take(limit)
            .collect();
        json!({"lastSeq": inner.last_seq, "entries": entries})
    }

    pub fn clear(&self) {
        let mut inner = self.inner.locked();
        inner.calls.clear();
        inner.log.clear();
    }
}

fn logged_body(api: Api, request: &SimRequest) -> Value {
    if request.body.is_empty() {
        return Value::Null;
    }
    if request.body.len() > MAX_LOGGED_BODY {
        return json!({"truncatedBytes": request.body.len()});
    }
    let mut body = if request.is_form() {
        let text = String::from_utf8_lossy(&request.body);
        Value::Object(
            parse_form(&text)
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    } else {
        serde_json::from_slice(&request.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&request.body).into()))
    };
    // Xelion's renew body is the bare renewal token as a JSON string.
    if api.is_auth_path(&request.path)
        && let Value::String(token) = &mut body
    {
        *token = REDACTED.into();
    }
    redact(&mut body);
    body
}

/// Replaces every secret value with `[redacted]`: a test still sees that a password was sent
/// (and compares the value the vendor stored through `/_sim/state`), the log never shows it.
fn redact(body: &mut Value) {
    match body {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if SECRET_KEYS.contains(&key.as_str()) && !value.is_null() {
                    *value = Value::String(REDACTED.into());
                } else {
                    redact(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}
