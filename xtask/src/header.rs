//! `cargo xtask header`: write the C headers generated from the interface
//! declarations (`vmmcall::interface!`'s `C_HEADER`) into the repository,
//! and check (`--check`, and the unit test below, which `cargo xtask test`
//! runs) that the committed files are what the declarations generate.
//!
//! The headers are committed so that a C program builds with nothing but
//! gcc; the test keeps them from going stale when a declaration changes.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::paths::Layout;

/// Every generated header: its path in the repository and its text.
pub fn headers(layout: &Layout) -> Vec<(PathBuf, &'static str)> {
    let c = layout.examples_dir().join("interface").join("c");
    vec![
        (c.join("demo.h"), interface_api::demo::C_HEADER),
        (c.join("demo_v1.h"), interface_api::demo_v1::C_HEADER),
    ]
}

/// The headers that differ from what the declarations generate.
pub fn stale(layout: &Layout) -> Vec<PathBuf> {
    headers(layout)
        .into_iter()
        .filter(|(path, text)| std::fs::read_to_string(path).ok().as_deref() != Some(*text))
        .map(|(path, _)| path)
        .collect()
}

/// Write every header (or with `check`, only compare). Returns whether
/// everything is up to date afterwards.
pub fn header(layout: &Layout, check: bool) -> Result<bool> {
    let stale = stale(layout);
    for (path, text) in headers(layout) {
        let name = path
            .strip_prefix(&layout.root)
            .unwrap_or(&path)
            .display()
            .to_string();
        if !stale.contains(&path) {
            println!("{name}: up to date");
        } else if check {
            println!("{name}: OUT OF DATE: run `cargo xtask header`");
        } else {
            std::fs::write(&path, text).with_context(|| format!("writing {name}"))?;
            println!("{name}: written ({} bytes)", text.len());
        }
    }
    if check && !stale.is_empty() {
        bail!("{} generated header(s) out of date", stale.len());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_headers_are_what_the_declarations_generate() {
        let layout = Layout::current();
        let stale = stale(&layout);
        assert!(
            stale.is_empty(),
            "out of date (run `cargo xtask header`): {stale:?}"
        );
    }
}
