//! ARCHITECTURE.md stays true: every file path it names exists, and every type, function or
//! `Type::method` it names is defined in the code (so a rename that forgets the map fails).

use std::path::Path;

use ekspresi_tests::workspace;

/// The `backticked` spans of the map.
fn named_things(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| !span.contains('\n'))
        .map(str::to_owned)
        .collect()
}

fn rust_sources(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && name != ".git" {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

fn is_defined(code: &str, name: &str) -> bool {
    ["fn", "struct", "enum", "trait", "type"]
        .iter()
        .any(|keyword| code.contains(&format!("{keyword} {name}")))
}

#[test]
fn every_file_and_function_named_in_architecture_md_exists() {
    let root = workspace();
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut code = String::new();
    for dir in ["common", "model-quant", "firmware", "board", "tests"] {
        rust_sources(&root.join(dir), &mut code);
    }
    let mut checked = 0;
    let mut missing = Vec::new();
    for thing in named_things(&map) {
        if thing.contains('/') {
            checked += 1;
            if !root.join(&thing).exists() {
                missing.push(thing);
            }
        } else if let Some((owner, method)) = thing.split_once("::") {
            checked += 1;
            if !is_defined(&code, owner) || !code.contains(&format!("fn {method}")) {
                missing.push(thing);
            }
        } else if thing.chars().any(char::is_lowercase)
            && !thing.contains('.')
            && (thing.chars().next().is_some_and(char::is_uppercase) || thing.contains('_'))
        {
            // A type (`Tally`) or a function (`spawn_capture`); crate names, file names
            // (`MANIFEST`, `video.mp4`) and commands are not code.
            checked += 1;
            if !is_defined(&code, &thing) {
                missing.push(thing);
            }
        }
    }
    assert!(
        checked >= 30,
        "only {checked} names checked: is the map empty?"
    );
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names what does not exist: {missing:?}"
    );
}
