//! A list-backed collection: the remote objects of a kind behind one list endpoint (Boruta's
//! backends, Entrust's admin API applications, the connections of one Auth0 organization).
//! Lookups are served by the shared list snapshots (`identity::lists`), found by id or by
//! name; what the operator writes or deletes is overlaid on them at once.

use std::future::Future;
use std::marker::PhantomData;

use reqwest::Method;

use crate::engine::Error;
use crate::identity::lists::{Item, Items, Listed, Lookup};
use crate::identity::{ApiError, IdentityClient};

/// The remote objects of one kind behind the list endpoint `path`.
pub struct Collection<'a, T> {
    api: &'a IdentityClient,
    path: &'a str,
    /// Its objects in a message, in the vendor's words: `Boruta backends`.
    plural: &'static str,
    /// The spec field that picks one of them by id: `backendId`.
    id_field: &'static str,
    item: PhantomData<fn() -> T>,
}

impl<'a, T: Item> Collection<'a, T> {
    pub fn new(
        api: &'a IdentityClient,
        path: &'a str,
        plural: &'static str,
        id_field: &'static str,
    ) -> Self {
        Self {
            api,
            path,
            plural,
            id_field,
            item: PhantomData,
        }
    }

    /// The list, from a recent snapshot or from one call to `fetch`: one call serves every
    /// resource of the IdentityApi looked up within a short window (a burst of creations, a
    /// resync) instead of one call each.
    pub async fn listed<Fut>(&self, fetch: impl FnOnce() -> Fut) -> Result<Listed<T>, ApiError>
    where
        Fut: Future<Output = Result<Items<T>, ApiError>>,
    {
        self.api.lists().get(self.path, fetch).await
    }

    /// Whether a lookup by id should read its one object rather than the list (see
    /// `Lists::alone`): it is then under way until the `Lookup` is dropped.
    pub fn alone(&self) -> Option<Lookup> {
        self.api.lists().alone::<T>(self.path)
    }

    /// The one object named `name` in `listed`. Several are a conflict that names them all:
    /// the user picks one by its id, the operator never does.
    pub fn only_named(&self, listed: &Listed<T>, name: &str) -> Result<Option<T>, Error> {
        let mut named = listed.named(name);
        if named.len() > 1 {
            return Err(Error::Conflict(format!(
                "several {} are named {name:?} ({}); set spec.{} to the one to manage",
                self.plural,
                candidates(named.iter().filter_map(T::id)),
                self.id_field,
            )));
        }
        Ok(named.pop())
    }

    /// Overlays an object the operator just wrote (`id` in the list) on the list's snapshots.
    pub fn remember(&self, id: &str, written: T) {
        self.api.lists().record(self.path, id, Some(written));
    }

    /// Deletes the object at `path` (`id` in the list). Once it is gone, deleted now or before,
    /// the list's snapshots no longer show it.
    pub async fn delete(&self, path: &str, id: &str) -> Result<(), ApiError> {
        let result = self.api.call(Method::DELETE, path, None).await;
        if result.is_ok() || result.as_ref().is_err_and(|e| e.is_not_found()) {
            self.api.lists().record::<T>(self.path, id, None);
        }
        result.map(drop)
    }
}

/// The ids of several remote objects that all match a resource, for its condition message: the
/// user picks one, the operator never does.
pub fn candidates<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    const SHOWN: usize = 10;
    let ids: Vec<&str> = ids.into_iter().collect();
    let mut text = ids
        .iter()
        .take(SHOWN)
        .map(|id| format!("{id:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        text.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    format!("ids {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_candidate_is_named_up_to_ten() {
        assert_eq!(candidates(["a", "b"]), r#"ids "a", "b""#);
        let many: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        let text = candidates(many.iter().map(String::as_str));
        assert!(
            text.starts_with(r#"ids "0", "1""#) && text.ends_with(r#""9" and 2 more"#),
            "{text}"
        );
    }
}
