//! The manifests `plan` reads: files, directories (their `.yaml`, `.yml` and `.json` files, as
//! `kubectl apply -f DIR` takes them) and `-` for standard input, each a stream of YAML or JSON
//! documents, `List`s unwrapped. Documents of kinds `plan` does not use (a Deployment in a
//! Helm chart's output) are counted, not refused.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// One document and where it came from (for messages).
#[derive(Clone, Debug)]
pub struct Document {
    pub source: String,
    pub value: Value,
}

impl Document {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }
}

/// Why the input could not be read.
#[derive(thiserror::Error, Debug)]
pub enum InputError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: document {index} is not valid YAML or JSON: {message}")]
    Parse {
        path: String,
        index: usize,
        message: String,
    },
}

/// Reads every document of `paths` (`-` is standard input), in the order given; a
/// directory's files in name order.
pub fn read(paths: &[PathBuf]) -> Result<Vec<Document>, InputError> {
    let mut docs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| InputError::Read {
                    path: "-".into(),
                    source,
                })?;
            docs.extend(parse("(stdin)", &text)?);
        } else if path.is_dir() {
            for file in manifest_files(path)? {
                docs.extend(parse_file(&file)?);
            }
        } else {
            docs.extend(parse_file(path)?);
        }
    }
    Ok(docs)
}

fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, InputError> {
    let read_err = |source| InputError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn parse_file(path: &Path) -> Result<Vec<Document>, InputError> {
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&path.display().to_string(), &text)
}

/// The documents of one YAML (or JSON) stream; empty documents are skipped and `List`s
/// unwrapped.
pub fn parse(source: &str, text: &str) -> Result<Vec<Document>, InputError> {
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| InputError::Parse {
            path: source.to_owned(),
            index: index + 1,
            message: e.to_string(),
        })?;
        match value {
            Value::Null => {}
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                let items = map.get("items").and_then(Value::as_array);
                out.extend(items.into_iter().flatten().map(|item| Document {
                    source: source.to_owned(),
                    value: item.clone(),
                }));
            }
            value => out.push(Document {
                source: source.to_owned(),
                value,
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_lists_and_empty_documents() {
        let text = "---\n# only a comment\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: a}\n---\n{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [{\"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"b\", \"namespace\": \"x\"}}]}\n";
        let docs = parse("t", text).unwrap();
        let names: Vec<_> = docs
            .iter()
            .map(|d| (d.kind(), d.name(), d.namespace()))
            .collect();
        assert_eq!(
            names,
            vec![("Secret", "a", None), ("ConfigMap", "b", Some("x"))]
        );
    }

    #[test]
    fn a_broken_document_names_its_place() {
        let err = parse("f.yaml", "a: 1\n---\nb: [\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f.yaml: document 2 is not valid"), "{err}");
    }

    #[test]
    fn a_directory_gives_its_manifests_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yaml"), "kind: B\nmetadata: {name: b}\n").unwrap();
        std::fs::write(dir.path().join("a.json"), "{\"kind\": \"A\"}").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "kind: C").unwrap();
        let docs = read(&[dir.path().to_path_buf()]).unwrap();
        let kinds: Vec<_> = docs.iter().map(Document::kind).collect();
        assert_eq!(kinds, vec!["A", "B"]);
    }
}
