//! Two hypercalls with one name must fail the build.
//!
//! `#[vmmcall("hello")]` exports a `#[used]` symbol derived from the name
//! (`__vmmcall_duplicate_hypercall_name__hello`). This test builds the
//! fixture crates in `fixtures/` (their own workspace, outside the main one)
//! with `cargo build` into a target directory of its own under
//! `CARGO_TARGET_TMPDIR`, so it never waits on the outer build's lock:
//!
//! - `distinct` (control): the same shapes with distinct names, in two
//!   modules and across two crates, builds and runs, and its registry holds
//!   all four handlers. Without it, the failures below could have any cause.
//! - `one_crate`: "hello" in two modules of one crate. rustc itself refuses
//!   it at code generation ("symbol ... is already defined"), so `cargo
//!   check` and trybuild cannot see it.
//! - `two_crates`: two library crates that each register "hello", linked
//!   into one binary. Only the linker can see it ("duplicate symbol").

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SYMBOL: &str = "__vmmcall_duplicate_hypercall_name__hello";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("vmmcall-duplicate-name")
}

/// `cargo build -p <package>` in the fixture workspace.
fn build(package: &str) -> Output {
    let out = Command::new(env!("CARGO"))
        .current_dir(fixtures())
        .args([
            "build",
            "--offline",
            "--quiet",
            "--package",
            package,
            "--target-dir",
        ])
        .arg(target_dir())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("run cargo");
    eprintln!(
        "cargo build -p {package}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Which tool refused the duplicate, from the build's stderr.
fn who_refused(stderr: &str) -> &'static str {
    if stderr.contains(&format!("symbol `{SYMBOL}` is already defined")) {
        "rustc (symbol already defined)"
    } else if stderr.contains(&format!("duplicate symbol: {SYMBOL}"))
        || stderr.contains(&format!("multiple definition of `{SYMBOL}'"))
    {
        "the linker (duplicate symbol)"
    } else {
        "unknown"
    }
}

/// Builds `package`, which registers "hello" twice, and checks that the
/// build fails on the duplicate symbol; returns which tool refused it.
fn assert_duplicate_refused(package: &str) -> &'static str {
    let out = build(package);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{package} built although it registers \"hello\" twice"
    );
    assert!(
        stderr.contains(SYMBOL),
        "{package}: the failure does not name {SYMBOL}:\n{stderr}"
    );
    let who = who_refused(&stderr);
    eprintln!("{package}: the duplicate \"hello\" was refused by {who}");
    assert_ne!(
        who, "unknown",
        "{package}: not a duplicate-symbol error:\n{stderr}"
    );
    who
}

#[test]
fn duplicate_hypercall_names_fail_to_build() {
    // Control first: it also builds the shared dependencies once.
    let out = build("distinct");
    assert!(out.status.success(), "the control fixture must build");
    let exe = target_dir()
        .join("debug")
        .join(format!("distinct{}", std::env::consts::EXE_SUFFIX));
    let run = Command::new(&exe)
        .output()
        .expect("run the control fixture");
    let stdout = String::from_utf8_lossy(&run.stdout);
    eprintln!("distinct: {}: {}", run.status, stdout.trim());
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "handlers: hello,hello_first,hello_second,world"
    );

    // Within one crate rustc sees both definitions (rustc 1.95, debug and
    // release); printed rather than asserted, as only the failure matters.
    assert_duplicate_refused("one_crate");
    // Across crates only the linker can see them.
    assert_eq!(
        assert_duplicate_refused("two_crates"),
        "the linker (duplicate symbol)"
    );
}
