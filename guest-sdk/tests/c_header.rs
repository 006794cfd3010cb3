//! The C SDK, `include/vmmcall.h`, on the host (no vmmcall VMM here; the
//! machine may well be a VM under another hypervisor):
//!
//! - `examples/hello/c/hello.c`, built as `cargo xtask linux` builds it
//!   for the Linux guest (`gcc -static -O2`, warnings as errors), reports
//!   that the VMM is not present and exits with status 1: detection goes
//!   by the CPUID signature, so no hypercall instruction runs (which would
//!   be SIGILL without a hypervisor, SIGSEGV or garbage under another);
//! - the header compiles as strict C99 for a kernel: freestanding, no
//!   libc headers, no red zone, no SSE, kernel code model.
//!
//! The guest half (the same program under the VMM) is part of the
//! `hello (linux)` run of `cargo xtask test`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("guest-sdk is in the repository")
        .to_path_buf()
}

fn gcc(args: &[&str]) {
    let out = Command::new("gcc")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc ({e}): install gcc and libc6-dev"));
    assert!(
        out.status.success(),
        "gcc {}: {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hello_c_on_the_host_says_not_present() {
    let root = root();
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hello-c");
    let include = root.join("guest-sdk/include");
    let source = root.join("examples/hello/c/hello.c");
    gcc(&[
        "-static",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-std=gnu11",
        "-I",
        include.to_str().unwrap(),
        source.to_str().unwrap(),
        "-o",
        exe.to_str().unwrap(),
    ]);
    let out = Command::new(&exe).output().expect("running hello-c");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "hello-c must exit with status 1, not by a signal: {}\n{stdout}",
        out.status
    );
    assert!(
        stdout.contains("hello.c: the vmmcall VMM is not present"),
        "{stdout}"
    );
    assert!(
        stdout.contains("vmmcall_call without the VMM: ENODEV"),
        "{stdout}"
    );
}

#[test]
fn header_compiles_for_a_kernel() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let source = dir.join("kernel_probe.c");
    std::fs::write(
        &source,
        r#"#include "vmmcall.h"
int probe(void);
int probe(void)
{
    struct vmmcall_vmm vmm;
    char name[VMMCALL_NAME_BUF_LEN];
    vmmcall_u64 r = 0;
    if (!vmmcall_detect(&vmm))
        return -VMMCALL_ENODEV;
    if (vmmcall_is_error(vmmcall_describe(&vmm, 1, name, sizeof name)))
        return -1;
    vmmcall_prefault_read(name, sizeof name);
    if (vmmcall_batch_supported(&vmm)) {
        struct vmmcall_batch_entry e[2] = {{1, {5, 0, 0, 0, 0}}, {2, {0}}};
        vmmcall_u64 results[2];
        typedef char entry_is_48_bytes[sizeof(struct vmmcall_batch_entry) == 48 ? 1 : -1];
        (void)sizeof(entry_is_48_bytes);
        if (vmmcall_batch(&vmm, e, 2, results, VMMCALL_BATCH_STOP_ON_ERROR) != 2)
            return -1;
    }
    return vmmcall_call(&vmm, "hello", 5, 0, 0, 0, 0, &r) ? -1 : (int)r;
}
"#,
    )
    .unwrap();
    let include = root().join("guest-sdk/include");
    gcc(&[
        "-std=c99",
        "-pedantic",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-ffreestanding",
        "-nostdinc",
        "-mno-red-zone",
        "-mgeneral-regs-only",
        "-mcmodel=kernel",
        "-fno-pic",
        "-O2",
        "-c",
        "-I",
        include.to_str().unwrap(),
        source.to_str().unwrap(),
        "-o",
        dir.join("kernel_probe.o").to_str().unwrap(),
    ]);
}
