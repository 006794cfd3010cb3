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

/// Build `source` into `exe` for the host against `include/vmmcall.h`,
/// as `cargo xtask linux` builds hello.c (warnings as errors), plus `extra`.
fn build_c(source: &Path, exe: &Path, extra: &[&str]) {
    let include = root().join("guest-sdk/include");
    let mut args = vec![
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
    ];
    args.extend_from_slice(extra);
    gcc(&args);
}

#[test]
fn hello_c_on_the_host_says_not_present() {
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hello-c");
    let source = root().join("examples/hello/c/hello.c");
    build_c(&source, &exe, &["-static"]);
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

/// Compile `main` (a C file body after `#include "vmmcall.h"`) for the host
/// with the warnings `hello.c` gets, run it, and return its stdout; the
/// program must exit with status 0.
fn run_c(name: &str, body: &str, extra: &[&str]) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let source = dir.join(format!("{name}.c"));
    let exe = dir.join(name);
    std::fs::write(&source, format!("#include \"vmmcall.h\"\n{body}")).unwrap();
    build_c(&source, &exe, extra);
    let out = Command::new(&exe).output().expect("running the C probe");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} must exit with status 0, not {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Every `#define VMMCALL_...` of the header whose name starts with
/// `prefix` (the header's own list, so a constant added there without a
/// Rust counterpart fails the test below).
fn header_defines(prefix: &str) -> Vec<String> {
    let header = std::fs::read_to_string(root().join("guest-sdk/include/vmmcall.h")).unwrap();
    header
        .lines()
        .filter_map(|l| l.strip_prefix("#define "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix) && !n.contains('('))
        .map(str::to_owned)
        .collect()
}

/// Finding 9 of issue 24: the header's ABI constants are written by hand.
/// The C compiler evaluates each one and this test compares it with
/// `vmmcall::abi` and `vmmcall::Error`: function numbers, describe bits,
/// name limits, CPUID leaves and signature, and every errno (number, name
/// and text) the VMM answers with.
#[test]
fn header_constants_match_vmmcall_abi() {
    use vmmcall::abi;
    let (sig_ebx, sig_ecx, sig_edx) = abi::cpuid_signature_words();
    let expected: Vec<(&str, u64)> = vec![
        ("VMMCALL_ABI_VERSION", abi::ABI_VERSION.into()),
        (
            "VMMCALL_CPUID_LEAF_SIGNATURE",
            abi::CPUID_LEAF_SIGNATURE.into(),
        ),
        (
            "VMMCALL_CPUID_LEAF_INTERFACE",
            abi::CPUID_LEAF_INTERFACE.into(),
        ),
        ("VMMCALL_SIGNATURE_EBX", sig_ebx.into()),
        ("VMMCALL_SIGNATURE_ECX", sig_ecx.into()),
        ("VMMCALL_SIGNATURE_EDX", sig_edx.into()),
        ("VMMCALL_INTERFACE_MAGIC", abi::CPUID_INTERFACE_MAGIC.into()),
        ("VMMCALL_GET_VMMCALL_NUMBER", abi::GET_VMMCALL_NUMBER),
        ("VMMCALL_DESCRIBE", abi::DESCRIBE),
        ("VMMCALL_LOOKUP_TYPED", abi::LOOKUP_TYPED),
        ("VMMCALL_DESCRIBE_NAME_LEN", abi::DESCRIBE_NAME_LEN),
        ("VMMCALL_DESCRIBE_USER", abi::DESCRIBE_USER),
        ("VMMCALL_DESCRIBE_TYPED", abi::DESCRIBE_TYPED),
        ("VMMCALL_MAX_NAME_LEN", abi::MAX_NAME_LEN as u64),
        ("VMMCALL_NAME_BUF_LEN", abi::NAME_BUF_LEN as u64),
        ("VMMCALL_PAGE_SIZE", 4096),
    ];
    // The header's errnos: the VMM's (vmmcall::Error) and the two it
    // answers itself without a hypercall.
    let own = [("VMMCALL_ENOENT", 2u64), ("VMMCALL_ENODEV", 19)];
    let errnos = header_defines("VMMCALL_E");
    let mut body = String::from("#include <stdio.h>\nint main(void)\n{\n");
    for (name, _) in &expected {
        body += &format!("    printf(\"{name} %llu\\n\", (unsigned long long)({name}));\n");
    }
    for name in &errnos {
        body += &format!(
            "    printf(\"{name} %llu %s %s\\n\", (unsigned long long)({name}), \
             vmmcall_errno_name({name}), vmmcall_strerror({name}));\n"
        );
    }
    body += "    return 0;\n}\n";
    let out = run_c("abi_constants", &body, &[]);
    let value = |name: &str| -> (u64, String) {
        let line = out
            .lines()
            .find(|l| l.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not printed:\n{out}"));
        let mut words = line.splitn(3, ' ').skip(1);
        let v = words.next().unwrap().parse().unwrap();
        (v, words.next().unwrap_or("").to_owned())
    };
    for (name, want) in &expected {
        assert_eq!(value(name).0, *want, "{name}: the header says otherwise");
    }
    let mut vmm_errnos = 0;
    for name in &errnos {
        let (n, rest) = value(name);
        if let Some((_, want)) = own.iter().find(|(o, _)| o == name) {
            assert_eq!(n, *want, "{name}");
            assert!(vmmcall::Error::from_errno(n as u16).is_none(), "{name}");
            continue;
        }
        let e = vmmcall::Error::from_errno(n as u16)
            .unwrap_or_else(|| panic!("{name} = {n} is no vmmcall::Error"));
        vmm_errnos += 1;
        assert_eq!(
            name.as_str(),
            format!("VMMCALL_{}", e.name()),
            "{name} = {n}"
        );
        // "EFAULT bad guest address"; Display is "EFAULT (14): bad guest address".
        let (c_name, c_text) = rest.split_once(' ').unwrap();
        assert_eq!(c_name, e.name(), "vmmcall_errno_name({n})");
        assert_eq!(
            format!("{} ({}): {c_text}", e.name(), e.errno()),
            e.to_string(),
            "vmmcall_strerror({n})"
        );
    }
    assert_eq!(
        vmm_errnos,
        vmmcall::Error::ALL.len(),
        "every vmmcall::Error has its VMMCALL_E* in the header: {errnos:?}"
    );
}

/// Finding 8 of issue 24: without a VMM (`vmm` NULL, or one that
/// `vmmcall_detect` said no to) every function of the header answers
/// ENODEV without executing a hypercall instruction, which here (a host
/// without this VMM) would raise SIGILL or SIGSEGV, or return another
/// hypervisor's answer. Covers the typed functions' cached path too: after
/// the lookup they reach the VMM only through `vmmcall_raw`.
#[test]
fn no_vmm_means_enodev_and_no_hypercall() {
    let demo = root().join("examples/interface/c");
    let out = run_c(
        "no_vmm",
        r#"#include <stdio.h>
int main(void)
{
    struct vmmcall_vmm absent[2] = {{1, 1, 0}, {1, 0, 0}};
    const struct vmmcall_vmm *vmms[3] = {0, &absent[0], &absent[1]};
    const vmmcall_u64 enodev = (vmmcall_u64)0 - VMMCALL_ENODEV;
    for (int i = 0; i < 3; i++) {
        const struct vmmcall_vmm *vmm = vmms[i];
        char buf[VMMCALL_NAME_BUF_LEN] = "untouched";
        vmmcall_u64 r = 7;
        if (vmmcall_raw(vmm, 1, 0, 0, 0, 0, 0) != enodev)
            return 10 + i;
        if (vmmcall_lookup(vmm, "hello") != 0)
            return 20 + i;
        if (vmmcall_handler_count(vmm) != enodev)
            return 30 + i;
        if (vmmcall_describe(vmm, 1, buf, sizeof buf) != enodev || buf[0] != 'u')
            return 40 + i;
        if (vmmcall_call(vmm, "hello", 5, 0, 0, 0, 0, &r) != VMMCALL_ENODEV || r != 7)
            return 50 + i;
        if (demo_hello(vmm, 5, &r) != VMMCALL_ENODEV || r != 7)
            return 60 + i;
        printf("vmm %d: ENODEV\n", i);
    }
    return 0;
}
"#
        .replace(
            "#include <stdio.h>",
            "#include <stdio.h>\n#include \"demo.h\"",
        )
        .as_str(),
        &["-I", demo.to_str().unwrap()],
    );
    assert_eq!(out.lines().count(), 3, "{out}");
}

/// Finding 8 of issue 24: `vmmcall_prefault_write` makes a page writable
/// by writing a byte back. A plain read and write would undo a concurrent
/// writer's update of that byte in between; an atomic compare-exchange of
/// the byte with itself cannot. One thread adds 1 to a byte a million
/// times with atomic increments while another prefaults it: the byte must
/// end at exactly 1,000,000 mod 256.
#[test]
fn prefault_write_loses_no_concurrent_update() {
    let out = run_c(
        "prefault_race",
        r#"#include <pthread.h>
#include <stdio.h>
static unsigned char page[VMMCALL_PAGE_SIZE] __attribute__((aligned(4096)));
static volatile int done;
static void *adder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000000; i++)
        __atomic_fetch_add(&page[0], 1, __ATOMIC_RELAXED);
    done = 1;
    return 0;
}
int main(void)
{
    pthread_t t;
    unsigned long rounds = 0;
    pthread_create(&t, 0, adder, 0);
    while (!done) {
        vmmcall_prefault_write(page, 1);
        rounds++;
    }
    pthread_join(t, 0);
    printf("%u %lu\n", page[0], rounds);
    return 0;
}
"#,
        &["-pthread"],
    );
    let value: u32 = out.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(value, 1_000_000 % 256, "byte and prefault rounds: {out}");
}
