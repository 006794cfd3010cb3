//! The `vmmcall` tool (`src/bin/vmmcall.rs`) on the host, without the VMM:
//! every command says so and exits with status 1, usage errors exit with
//! 2, and `--json` gives the documented objects. The guest half (`list`,
//! `call hello 5` under the VMM) is part of the `hello (linux)` run of
//! `cargo xtask test`.

use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vmmcall"))
        .args(args)
        .output()
        .expect("running vmmcall");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn detect_says_not_present() {
    let (code, out, _) = run(&["detect"]);
    assert_eq!(code, Some(1));
    assert!(out.starts_with("present      no"), "{out}");
    let (code, out, _) = run(&["--json", "detect"]);
    assert_eq!(code, Some(1));
    assert_eq!(out, "{\"present\":false}\n");
}

#[test]
fn list_and_call_fail_cleanly() {
    let (code, _, err) = run(&["list"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not present"), "{err}");
    let (code, _, err) = run(&["call", "hello", "5"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not present"), "{err}");
    let (code, out, _) = run(&["--json", "call", "hello", "5"]);
    assert_eq!(code, Some(1));
    assert!(
        out.starts_with("{\"name\":\"hello\",\"error\":\"ENODEV\""),
        "{out}"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["call"][..],
        &["frobnicate"][..],
        &["--frob", "list"][..],
        &["call", "hello", "1", "2", "3", "4", "5", "6"][..],
        &["call", "hello", "five"][..],
    ] {
        let (code, _, _) = run(args);
        assert_eq!(code, Some(2), "{args:?}");
    }
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("call NAME [ARG...]"));
}
