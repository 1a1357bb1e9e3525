//! The JSON schemas boruta-server checks its JSON columns against (`Backend.changeset/2` in
//! `boruta_identity/identity_providers/backend.ex`): federated servers, metadata fields, the
//! password hashing options of each algorithm, verifiable credentials and presentations.
//!
//! Boruta validates them with ExJsonSchema and adds each failure to the field as
//! `"<message> at <path>"`; the messages here follow ExJsonSchema's wording. Patterns are
//! checked by hand (the simulator has no regex engine): each is one of Boruta's few fixed ones.

use serde_json::{Map, Value};

#[derive(Clone, Copy)]
enum Type {
    String,
    Number,
    Boolean,
    Array,
    Object,
    /// No type constraint (`default_value: %{}`).
    Any,
}

impl Type {
    fn accepts(self, value: &Value) -> bool {
        match self {
            Type::String => value.is_string(),
            Type::Number => value.is_number(),
            Type::Boolean => value.is_boolean(),
            Type::Array => value.is_array(),
            Type::Object => value.is_object(),
            Type::Any => true,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Type::String => "String",
            Type::Number => "Number",
            Type::Boolean => "Boolean",
            Type::Array => "Array",
            Type::Object => "Object",
            Type::Any => "Any",
        }
    }
}

/// ExJsonSchema's name of a JSON value's type.
fn found(value: &Value) -> &'static str {
    match value {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "Integer",
        Value::Number(_) => "Number",
        Value::String(_) => "String",
        Value::Array(_) => "Array",
        Value::Object(_) => "Object",
    }
}

/// A further rule on a value of the right type, with the message of its failure.
type Rule = (fn(&Value) -> bool, &'static str);

struct Prop {
    name: &'static str,
    ty: Type,
    rule: Option<Rule>,
    /// The schema of every element, for arrays of objects.
    items: Option<&'static Schema>,
    /// The type of every element, for arrays of scalars.
    item_type: Option<Type>,
}

const fn prop(name: &'static str, ty: Type) -> Prop {
    Prop {
        name,
        ty,
        rule: None,
        items: None,
        item_type: None,
    }
}

const fn ruled(name: &'static str, ty: Type, rule: Rule) -> Prop {
    Prop {
        rule: Some(rule),
        ..prop(name, ty)
    }
}

const fn objects(name: &'static str, items: &'static Schema) -> Prop {
    Prop {
        items: Some(items),
        ..prop(name, Type::Array)
    }
}

const fn strings(name: &'static str) -> Prop {
    Prop {
        item_type: Some(Type::String),
        ..prop(name, Type::Array)
    }
}

pub struct Schema {
    props: &'static [Prop],
    required: &'static [&'static str],
    /// `"additionalProperties" => false`
    closed: bool,
}

fn one_of(value: &Value, allowed: &[&str]) -> bool {
    value.as_str().is_some_and(|s| allowed.contains(&s))
}

fn between(value: &Value, min: f64, max: f64) -> bool {
    value.as_f64().is_some_and(|n| (min..=max).contains(&n))
}

/// `"name" => %{"type" => "string", "pattern" => "^[^\s]+$"}`: in an Elixir string `\s` is a
/// space, so the pattern refuses an empty name and a name with a space.
const NAME_WITHOUT_SPACE: Rule = (
    |v| {
        v.as_str()
            .is_some_and(|s| !s.is_empty() && !s.contains(' '))
    },
    "Does not match pattern \"^[^ ]+$\".",
);

const METADATA_ENDPOINT: Schema = Schema {
    props: &[prop("endpoint", Type::String), prop("claims", Type::String)],
    required: &["endpoint", "claims"],
    closed: false,
};

pub const FEDERATED_SERVER: Schema = Schema {
    props: &[
        ruled("name", Type::String, NAME_WITHOUT_SPACE),
        prop("client_id", Type::String),
        prop("client_secret", Type::String),
        prop("base_url", Type::String),
        prop("discovery_path", Type::String),
        prop("userinfo_path", Type::String),
        prop("authorize_path", Type::String),
        prop("token_path", Type::String),
        prop("scope", Type::String),
        prop("federated_attributes", Type::String),
        objects("metadata_endpoints", &METADATA_ENDPOINT),
    ],
    required: &["name", "client_id", "client_secret", "base_url"],
    closed: true,
};

pub const METADATA_FIELD: Schema = Schema {
    props: &[
        prop("attribute_name", Type::String),
        prop("user_editable", Type::Boolean),
        strings("scopes"),
        prop("default_value", Type::Any),
    ],
    required: &["attribute_name"],
    closed: true,
};

const ARGON2: Schema = Schema {
    props: &[
        prop("salt_len", Type::Number),
        prop("t_cost", Type::Number),
        prop("m_cost", Type::Number),
        prop("parallelism", Type::Number),
        ruled(
            "format",
            Type::String,
            (
                |v| one_of(v, &["encoded", "raw_hash", "report"]),
                "Does not match pattern \"^(encoded|raw_hash|report)$\".",
            ),
        ),
        ruled(
            "hashlen",
            Type::Number,
            (
                |v| between(v, 1.0, 128.0),
                "Expected the value to be between 1 and 128.",
            ),
        ),
        ruled(
            "argon2_type",
            Type::Number,
            (
                |v| between(v, 0.0, 2.0),
                "Expected the value to be between 0 and 2.",
            ),
        ),
    ],
    required: &[],
    closed: true,
};

const BCRYPT: Schema = Schema {
    props: &[
        prop("log_rounds", Type::Number),
        prop("legacy", Type::Boolean),
    ],
    required: &[],
    closed: true,
};

const PBKDF2: Schema = Schema {
    props: &[
        prop("salt_len", Type::Number),
        ruled(
            "format",
            Type::String,
            (
                |v| one_of(v, &["modular", "django", "hex"]),
                "Does not match pattern \"^(modular|django|hex)$\".",
            ),
        ),
        ruled(
            "digest",
            Type::String,
            (
                |v| one_of(v, &["sha224", "sha256", "sha384", "sha512"]),
                "Does not match pattern \"^(sha224|sha256|sha384|sha512)$\".",
            ),
        ),
        ruled(
            "length",
            Type::Number,
            (
                |v| between(v, 1.0, 64.0),
                "Expected the value to be between 1 and 64.",
            ),
        ),
    ],
    required: &[],
    closed: true,
};

/// The options schema of a hashing algorithm (`None`: not an algorithm Boruta knows).
pub fn password_hashing_opts(algorithm: &str) -> Option<&'static Schema> {
    match algorithm {
        "argon2" => Some(&ARGON2),
        "bcrypt" => Some(&BCRYPT),
        "pbkdf2" => Some(&PBKDF2),
        _ => None,
    }
}

pub const VERIFIABLE_CREDENTIAL: Schema = Schema {
    props: &[
        prop("version", Type::String),
        prop("credential_identifier", Type::String),
        prop("vct", Type::String),
        prop("time_to_live", Type::Number),
        prop("types", Type::String),
        ruled(
            "format",
            Type::String,
            (
                |v| {
                    v.as_str().is_some_and(|s| {
                        ["jwt_vc", "jwt_vc_json", "vc+sd-jwt"]
                            .iter()
                            .any(|f| s.contains(f))
                    })
                },
                "Does not match pattern \"jwt_vc|jwt_vc_json|vc\\+sd\\-jwt\".",
            ),
        ),
        prop("defered", Type::Boolean),
        prop("claims", Type::Array),
        prop("display", Type::Object),
        strings("scopes"),
    ],
    required: &[
        "version",
        "credential_identifier",
        "format",
        "types",
        "claims",
        "display",
    ],
    closed: true,
};

pub const VERIFIABLE_PRESENTATION: Schema = Schema {
    props: &[
        prop("presentation_identifier", Type::String),
        prop("presentation_definition", Type::String),
    ],
    required: &["presentation_identifier", "presentation_definition"],
    closed: true,
};

/// Every failure of `value` against `schema`, as `"<message> at <path>"` (`path` is `#` for
/// the value itself).
pub fn validate(schema: &Schema, value: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, value, path, &mut out);
    out
}

fn check(schema: &Schema, value: &Value, path: &str, out: &mut Vec<String>) {
    let Some(object) = value.as_object() else {
        out.push(format!(
            "Type mismatch. Expected Object but got {}. at {path}",
            found(value)
        ));
        return;
    };
    let missing: Vec<&str> = schema
        .required
        .iter()
        .copied()
        .filter(|k| !object.contains_key(*k))
        .collect();
    match missing.as_slice() {
        [] => {}
        [one] => out.push(format!(
            "Required property {one} was not present. at {path}"
        )),
        many => out.push(format!(
            "Required properties {} were not present. at {path}",
            many.join(", ")
        )),
    }
    for (key, v) in object {
        let here = format!("{path}/{key}");
        match schema.props.iter().find(|p| p.name == key) {
            Some(p) => check_prop(p, v, &here, out),
            None if schema.closed => out.push(format!(
                "Schema does not allow additional properties. at {here}"
            )),
            None => {}
        }
    }
}

fn check_prop(p: &Prop, value: &Value, path: &str, out: &mut Vec<String>) {
    if !p.ty.accepts(value) {
        out.push(format!(
            "Type mismatch. Expected {} but got {}. at {path}",
            p.ty.name(),
            found(value)
        ));
        return;
    }
    if let Some((rule, message)) = p.rule
        && !rule(value)
    {
        out.push(format!("{message} at {path}"));
    }
    for (i, item) in value.as_array().into_iter().flatten().enumerate() {
        let here = format!("{path}/{i}");
        if let Some(schema) = p.items {
            check(schema, item, &here, out);
        } else if let Some(ty) = p.item_type
            && !ty.accepts(item)
        {
            out.push(format!(
                "Type mismatch. Expected {} but got {}. at {here}",
                ty.name(),
                found(item)
            ));
        }
    }
}

/// `validate` over every element of a list column, each element at `#/<index>` (Boruta
/// validates metadata fields as one array; federated servers and credentials one by one, which
/// gives the same messages).
pub fn validate_list(schema: &Schema, items: &[Value]) -> Vec<String> {
    items
        .iter()
        .enumerate()
        .flat_map(|(i, item)| validate(schema, item, &format!("#/{i}")))
        .collect()
}

/// The options of `algorithm`, each failure at `#/<key>`.
pub fn validate_opts(schema: &Schema, opts: &Map<String, Value>) -> Vec<String> {
    validate(schema, &Value::Object(opts.clone()), "#")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn federated_servers_need_their_keys_and_nothing_else() {
        let ok = json!({"name": "google", "client_id": "c", "client_secret": "s",
            "base_url": "https://accounts.google.com",
            "metadata_endpoints": [{"endpoint": "/me", "claims": "email"}]});
        assert!(validate(&FEDERATED_SERVER, &ok, "#").is_empty());
        let bad = json!({"name": "my server", "client_id": 5, "colour": "blue",
            "metadata_endpoints": [{"endpoint": "/me"}]});
        assert_eq!(
            validate(&FEDERATED_SERVER, &bad, "#/0"),
            vec![
                "Required properties client_secret, base_url were not present. at #/0",
                "Type mismatch. Expected String but got Integer. at #/0/client_id",
                "Schema does not allow additional properties. at #/0/colour",
                "Required property claims was not present. at #/0/metadata_endpoints/0",
                "Does not match pattern \"^[^ ]+$\". at #/0/name",
            ]
        );
    }

    #[test]
    fn hashing_options_per_algorithm() {
        let argon2 = password_hashing_opts("argon2").unwrap();
        let opts = |v: Value| v.as_object().cloned().unwrap();
        assert!(validate_opts(argon2, &opts(json!({"t_cost": 3, "format": "encoded"}))).is_empty());
        assert_eq!(
            validate_opts(argon2, &opts(json!({"log_rounds": 12, "hashlen": 129}))),
            vec![
                "Expected the value to be between 1 and 128. at #/hashlen",
                "Schema does not allow additional properties. at #/log_rounds",
            ]
        );
        let pbkdf2 = password_hashing_opts("pbkdf2").unwrap();
        assert_eq!(
            validate_opts(pbkdf2, &opts(json!({"digest": "md5"}))),
            vec!["Does not match pattern \"^(sha224|sha256|sha384|sha512)$\". at #/digest"]
        );
        assert!(password_hashing_opts("md5").is_none());
    }

    #[test]
    fn metadata_fields_and_presentations() {
        let fields = [
            json!({"attribute_name": "dept", "scopes": ["a", 1]}),
            json!({"user_editable": true}),
        ];
        assert_eq!(
            validate_list(&METADATA_FIELD, &fields),
            vec![
                "Type mismatch. Expected String but got Integer. at #/0/scopes/1",
                "Required property attribute_name was not present. at #/1",
            ]
        );
        let presentation = json!({"presentation_identifier": "p"});
        assert_eq!(
            validate(&VERIFIABLE_PRESENTATION, &presentation, "#"),
            vec!["Required property presentation_definition was not present. at #"]
        );
    }
}
