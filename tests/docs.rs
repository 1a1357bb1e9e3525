//! The documentation against the code: the API reference in `docs/reference/` is what the
//! binary generates from the CRDs, every condition reason the operator can set has its section
//! in the troubleshooting page, every kind has its guide, the README stays short and starts
//! with the quick start, and every link in the README and `docs/` resolves (files and anchors).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use identity_operator::engine::conditions::Reason;
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The README and every Markdown file under `docs/`.
fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut files = vec![Path::new(ROOT).join("README.md")];
    walk(&Path::new(ROOT).join("docs"), &mut files);
    files.sort();
    files
}

/// A heading, with the anchor GitHub gives it.
struct Heading {
    level: HeadingLevel,
    text: String,
    anchor: String,
}

/// What the tests read of a Markdown file: its headings and link targets.
struct Page {
    headings: Vec<Heading>,
    links: Vec<String>,
}

fn parse(markdown: &str) -> Page {
    let mut page = Page {
        headings: vec![],
        links: vec![],
    };
    let mut open: Option<(HeadingLevel, String)> = None;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for event in Parser::new_ext(markdown, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => open = Some((level, String::new())),
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, text)) = open.as_mut() {
                    text.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let (level, text) = open.take().expect("a heading was open");
                let base = github_anchor(&text);
                let n = seen.entry(base.clone()).or_default();
                let anchor = if *n == 0 { base } else { format!("{base}-{n}") };
                *n += 1;
                page.headings.push(Heading {
                    level,
                    text,
                    anchor,
                });
            }
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                page.links.push(dest_url.into_string());
            }
            _ => {}
        }
    }
    page
}

/// GitHub's heading anchors: lower case, punctuation dropped (but `-` and `_`), spaces as `-`.
fn github_anchor(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(path: &Path) -> BTreeSet<String> {
    parse(&read(path))
        .headings
        .into_iter()
        .map(|h| h.anchor)
        .collect()
}

#[test]
fn every_link_in_the_readme_and_docs_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let dir = file.parent().unwrap();
        for link in parse(&read(&file)).links {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (target, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if target.is_empty() {
                file.clone()
            } else {
                dir.join(target)
            };
            let shown = file.strip_prefix(ROOT).unwrap().display().to_string();
            if !target.exists() {
                broken.push(format!("{shown}: {link} (no such file)"));
            } else if !fragment.is_empty()
                && target.extension().is_some_and(|e| e == "md")
                && !anchors(&target).contains(fragment)
            {
                broken.push(format!("{shown}: {link} (no such heading)"));
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} links found: is the parser reading the files?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_anchors_follow_github() {
    let page = parse("# Title\n## `SecretNotFound`\n### RBAC, and what it cannot say\n## Title\n");
    let anchors: Vec<&str> = page.headings.iter().map(|h| h.anchor.as_str()).collect();
    assert_eq!(
        anchors,
        [
            "title",
            "secretnotfound",
            "rbac-and-what-it-cannot-say",
            "title-1"
        ]
    );
    let page =
        parse("[a](x.md#y) and ![b](img.png), `[not](a-link.md)`\n\n```\n[nor](this.md)\n```\n");
    assert_eq!(page.links, ["x.md#y", "img.png"]);
}

/// The troubleshooting page has a section for every reason of the operator's list, which a
/// unit test of `engine::reasons` proves complete: none can be added without its section.
#[test]
fn every_condition_reason_has_a_troubleshooting_section() {
    let page = parse(&read(&Path::new(ROOT).join("docs/troubleshooting.md")));
    let under = |parent: &str| -> BTreeSet<String> {
        let mut inside = false;
        let mut found = BTreeSet::new();
        for h in &page.headings {
            match h.level {
                HeadingLevel::H2 => inside = h.text == parent,
                HeadingLevel::H3 if inside => {
                    found.insert(h.text.clone());
                }
                _ => {}
            }
        }
        found
    };
    let documented = under("Condition reasons");
    let listed: BTreeSet<String> = Reason::ALL.iter().map(|r| r.as_str().to_owned()).collect();
    let missing: Vec<_> = listed.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "docs/troubleshooting.md lacks sections for {missing:?}"
    );
    let unknown: Vec<_> = documented.difference(&listed).collect();
    assert!(
        unknown.is_empty(),
        "docs/troubleshooting.md documents reasons the operator never sets: {unknown:?}"
    );
    // The alerts' runbook links land on these anchors: a reason's name, lower case.
    let anchors: BTreeSet<&str> = page.headings.iter().map(|h| h.anchor.as_str()).collect();
    for r in Reason::ALL {
        assert!(
            anchors.contains(r.as_str().to_lowercase().as_str()),
            "{}",
            r.as_str()
        );
    }
}

#[test]
fn the_reference_is_what_the_binary_generates() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_identity-operator"))
        .arg("reference")
        .arg(dir.path())
        .output()
        .expect("identity-operator reference runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = |d: &Path| -> BTreeSet<String> {
        std::fs::read_dir(d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let committed = Path::new(ROOT).join("docs/reference");
    let stale = "docs/reference/ is stale: run `cargo run -- reference docs/reference`";
    assert_eq!(listing(&committed), listing(dir.path()), "{stale}");
    for file in listing(dir.path()) {
        assert!(
            read(&committed.join(&file)) == read(&dir.path().join(&file)),
            "{file}: {stale}"
        );
    }
}

/// A guide per kind, with the parts every guide promises.
#[test]
fn every_kind_has_a_guide() {
    for crd in identity_operator::kinds::crds() {
        let kind = &crd.spec.names.kind;
        let file: String = kind
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let dash = (i > 0 && c.is_ascii_uppercase()).then_some('-');
                dash.into_iter().chain(Some(c.to_ascii_lowercase()))
            })
            .collect();
        let path = Path::new(ROOT).join(format!("docs/kinds/{file}.md"));
        let text = read(&path);
        let page = parse(&text);
        let sections: Vec<&str> = page.headings.iter().map(|h| h.text.as_str()).collect();
        for section in ["A complete example", "Deletion"] {
            assert!(
                sections.contains(&section),
                "{}: no {section:?} section",
                path.display()
            );
        }
        assert!(
            text.contains(&format!("kind: {kind}\n")),
            "{}: the example has no {kind}",
            path.display()
        );
        for link in [
            format!("../reference/{}.md", kind.to_lowercase()),
            "../vendor-choices.md".to_owned(),
        ] {
            assert!(
                page.links.contains(&link),
                "{}: no link to {link}",
                path.display()
            );
        }
    }
}

#[test]
fn the_readme_is_short_and_starts_with_the_quick_start() {
    let readme = read(&Path::new(ROOT).join("README.md"));
    assert!(
        readme.len() <= 15 * 1024,
        "README.md is {} bytes",
        readme.len()
    );
    let page = parse(&readme);
    assert_eq!(page.headings[1].text, "Quick start", "the first section");
    let quick_start = &readme[readme.find("## Quick start").unwrap()..];
    let block = &quick_start[quick_start.find("```sh\n").unwrap() + 6..];
    let block = &block[..block.find("```").unwrap()];
    let commands: Vec<&str> = block
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .collect();
    assert_eq!(commands, ["scripts/quickstart.sh", "scripts/test.sh"]);
    // Every page of docs/ is reachable from the README or the docs index.
    let index = parse(&read(&Path::new(ROOT).join("docs/README.md")));
    let reachable: BTreeSet<String> = page
        .links
        .iter()
        .filter_map(|l| l.strip_prefix("docs/"))
        .chain(index.links.iter().map(String::as_str))
        .map(|l| l.split('#').next().unwrap().to_owned())
        .collect();
    for file in markdown_files() {
        let Ok(relative) = file.strip_prefix(Path::new(ROOT).join("docs")) else {
            continue;
        };
        let relative = relative.to_string_lossy().into_owned();
        let in_reference = relative.starts_with("reference/") && relative != "reference/README.md";
        if relative != "README.md" && !in_reference {
            assert!(
                reachable.contains(&relative),
                "docs/{relative} is linked from neither README.md nor docs/README.md"
            );
        }
    }
}
