//! What the kinds share beyond the engine's common spec, status and removal tables: schemas of
//! free-form JSON passed through to a vendor as it is.

pub use crate::engine::removal::*;
pub use crate::engine::spec::*;

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
