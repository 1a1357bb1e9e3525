//! What the kinds share beyond the engine's common spec, status and removal tables: schemas of
//! free-form JSON passed through to a vendor as it is.

pub use crate::engine::removal::*;
pub use crate::engine::spec::*;

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

/// Schema for a list of free-form JSON objects passed through to the identity API as they are.
pub fn free_form_object_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    })
}

/// Schema for a free-form JSON object passed through to the identity API as it is.
pub fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
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
