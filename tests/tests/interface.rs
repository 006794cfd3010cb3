//! `vmmcall::interface!` end to end on the host: one declaration, its VMM
//! side implemented with `#[vmmcall] impl`, dispatched on the mock vCPU
//! through the typed lookup; its digests against the library's reference;
//! and its generated C header compiled with gcc.

use vmmcall::abi::{self, LOOKUP_TYPED};
use vmmcall::mock::MockVcpu;
use vmmcall::{dispatch, Caller, Error, GuestBuf, GuestBufMut, Registry};

vmmcall::interface! {
    /// The test interface.
    pub mod demo {
        /// The seed's call.
        #[user]
        fn hello(arg1: u64) -> u64;
        /// Fill `out` with `byte`; returns the length.
        #[user]
        fn fill(out: &mut [u8], byte: u8) -> u64;
        /// Sum of the bytes (kernel only).
        fn checksum(data: &[u8]) -> u32;
        /// Narrow and signed parameters.
        fn flags(a: i8, b: bool, c: u16) -> bool;
        /// No parameters, no result.
        #[user]
        fn nothing();
        /// The calling VM's id (upper half) and vCPU id (lower half).
        #[user]
        fn whoami() -> u64;
    }
}

struct Demo;

/// The VMM's state for one VM, which `whoami` reads.
struct DemoVm {
    id: u32,
}

#[vmmcall::vmmcall]
impl demo::Handlers for Demo {
    fn hello(_cx: &mut Caller<'_>, arg1: u64) -> Result<u64, Error> {
        arg1.checked_mul(2).ok_or(Error::Range)
    }

    fn fill(cx: &mut Caller<'_>, out: GuestBufMut, byte: u8) -> Result<u64, Error> {
        // One write: all or nothing, as docs/ABI.md asks of -EFAULT.
        let len = usize::try_from(out.len())
            .ok()
            .filter(|&l| l <= 1 << 20)
            .ok_or(Error::NoSpace)?;
        out.write_at(cx, 0, &vec![byte; len])?;
        Ok(out.len())
    }

    fn checksum(cx: &mut Caller<'_>, data: GuestBuf) -> Result<u32, Error> {
        let mut buf = [0u8; 256];
        let bytes = data.copy_in(cx, &mut buf)?;
        Ok(bytes.iter().map(|&b| u32::from(b)).sum())
    }

    fn flags(_cx: &mut Caller<'_>, a: i8, b: bool, c: u16) -> Result<bool, Error> {
        Ok(a < 0 && b && c == 7)
    }

    fn nothing(_cx: &mut Caller<'_>) -> Result<(), Error> {
        Ok(())
    }

    fn whoami(cx: &mut Caller<'_>) -> Result<u64, Error> {
        let vm = cx.vm::<DemoVm>().ok_or(Error::Io)?;
        Ok(u64::from(vm.id) << 32 | u64::from(cx.vcpu_id()))
    }
}

/// A mock vCPU with the name `name` NUL-terminated at 0x1000.
fn vcpu_with_name(name: &str) -> MockVcpu {
    let mut vcpu = MockVcpu::new();
    vcpu.map(0x1000, true, true).map(0x2000, true, true);
    vcpu.poke(0x1000, name.as_bytes())
        .poke(0x1000 + name.len() as u64, &[0]);
    vcpu
}

fn typed_lookup(vcpu: &mut MockVcpu, signature: u64) -> u64 {
    let registry = Registry::global().unwrap();
    vcpu.regs.rax = LOOKUP_TYPED;
    vcpu.regs.rbx = 0x1000;
    vcpu.regs.rcx = signature;
    dispatch_read_once(registry, vcpu);
    vcpu.regs.rax
}

/// Dispatch, and check that the call fetched no guest byte twice
/// (docs/ABI.md, "What read once means for guest memory").
fn dispatch_read_once(registry: &Registry<'static>, vcpu: &mut MockVcpu) {
    vcpu.clear_reads();
    dispatch(registry, vcpu);
    assert_eq!(
        vcpu.byte_read_twice(),
        None,
        "a call read a guest byte twice: {:x?}",
        vcpu.read_log()
    );
}

fn call(vcpu: &mut MockVcpu, number: u64, args: [u64; 5]) -> u64 {
    let registry = Registry::global().unwrap();
    vcpu.regs.rax = number;
    [
        vcpu.regs.rbx,
        vcpu.regs.rcx,
        vcpu.regs.rdx,
        vcpu.regs.rsi,
        vcpu.regs.rdi,
    ] = args;
    dispatch_read_once(registry, vcpu);
    vcpu.regs.rax
}

#[test]
fn every_handler_is_registered_with_its_declared_signature() {
    let registry = Registry::global().unwrap();
    assert_eq!(registry.len(), demo::DECLARATIONS.len());
    for d in demo::DECLARATIONS {
        let n = registry.lookup(d.name.as_bytes()).expect(d.name).get();
        let h = registry.get(n).unwrap();
        assert_eq!(h.signature(), Some(d.signature), "{}", d.name);
        assert_eq!(h.user(), d.user, "{}", d.name);
        // vmmcall_describe flags it as declared (bit 17), at CPL 0.
        let mut vcpu = MockVcpu::new();
        vcpu.regs.rax = abi::DESCRIBE;
        vcpu.regs.rbx = n;
        dispatch(registry, &mut vcpu);
        let want =
            d.name.len() as u64 | if d.user { abi::DESCRIBE_USER } else { 0 } | abi::DESCRIBE_TYPED;
        assert_eq!(vcpu.regs.rax, want, "{}", d.name);
    }
    assert_eq!(
        demo::DECLARATIONS[1].canonical,
        "vmmcall-signature-v1 fill(out,u8)->u64 user"
    );
}

#[test]
fn typed_lookup_finds_only_the_declared_signature() {
    let mut vcpu = vcpu_with_name("hello");
    let n = typed_lookup(&mut vcpu, demo::signatures::hello);
    assert!((1..=5).contains(&n), "{n:#x}");
    // What a guest built against another declaration passes: -EPROTO.
    assert_eq!(
        typed_lookup(&mut vcpu, demo::signatures::hello ^ 1),
        Error::Mismatch.to_rax()
    );
    assert_eq!(typed_lookup(&mut vcpu, 0), Error::Mismatch.to_rax());
    // The plain lookup keeps working, BitVisor-style.
    let registry = Registry::global().unwrap();
    vcpu.regs.rax = 0;
    dispatch(registry, &mut vcpu);
    assert_eq!(vcpu.regs.rax, n);
    // An unknown name answers 0, as function 0 does; so does an unreadable one.
    let mut other = vcpu_with_name("nope");
    assert_eq!(typed_lookup(&mut other, demo::signatures::hello), 0);
    other.unmap(0x1000);
    assert_eq!(typed_lookup(&mut other, demo::signatures::hello), 0);
}

#[test]
fn typed_handlers_run_with_typed_parameters() {
    let mut vcpu = vcpu_with_name("hello");
    let hello = typed_lookup(&mut vcpu, demo::signatures::hello);
    assert_eq!(call(&mut vcpu, hello, [5, 0, 0, 0, 0]), 10);
    assert_eq!(
        call(&mut vcpu, hello, [u64::MAX, 0, 0, 0, 0]),
        Error::Range.to_rax()
    );

    let mut vcpu = vcpu_with_name("fill");
    let fill = typed_lookup(&mut vcpu, demo::signatures::fill);
    assert_eq!(call(&mut vcpu, fill, [0x2010, 100, 0x5a, 0, 0]), 100);
    let mut want = vec![0x5a; 102];
    (want[0], want[101]) = (0, 0);
    assert_eq!(vcpu.peek(0x200f, 102), want);
    // A u8 parameter refuses 256; a buffer past guest memory faults.
    assert_eq!(
        call(&mut vcpu, fill, [0x2010, 1, 256, 0, 0]),
        Error::Invalid.to_rax()
    );
    assert_eq!(
        call(&mut vcpu, fill, [0x2ff0, 100, 1, 0, 0]),
        Error::Fault.to_rax()
    );

    let mut vcpu = vcpu_with_name("checksum");
    let checksum = typed_lookup(&mut vcpu, demo::signatures::checksum);
    vcpu.poke(0x2000, &[1, 2, 3, 250]);
    assert_eq!(call(&mut vcpu, checksum, [0x2000, 4, 0, 0, 0]), 256);
    // Longer than the handler's buffer: its own -ENOSPC.
    assert_eq!(
        call(&mut vcpu, checksum, [0x2000, 257, 0, 0, 0]),
        Error::NoSpace.to_rax()
    );
    // Kernel only.
    vcpu.cpl = 3;
    assert_eq!(
        call(&mut vcpu, checksum, [0x2000, 4, 0, 0, 0]),
        Error::Permission.to_rax()
    );
    // From ring 3 its typed lookup answers the number whatever the digest,
    // as function 0 would: the call is -EPERM anyway, and ring 3 learns
    // nothing of its signature. From CPL 0 a wrong digest is -EPROTO.
    assert_eq!(
        typed_lookup(&mut vcpu, demo::signatures::checksum),
        checksum
    );
    assert_eq!(typed_lookup(&mut vcpu, 12345), checksum);
    vcpu.cpl = 0;
    assert_eq!(typed_lookup(&mut vcpu, 12345), Error::Mismatch.to_rax());

    let mut vcpu = vcpu_with_name("flags");
    let flags = typed_lookup(&mut vcpu, demo::signatures::flags);
    let minus_one = -1_i64 as u64;
    assert_eq!(call(&mut vcpu, flags, [minus_one, 1, 7, 0, 0]), 1);
    assert_eq!(call(&mut vcpu, flags, [1, 1, 7, 0, 0]), 0);
    // -1 as a zero-extended byte is not an i8; 2 is not a bool.
    assert_eq!(
        call(&mut vcpu, flags, [0xff, 1, 7, 0, 0]),
        Error::Invalid.to_rax()
    );
    assert_eq!(
        call(&mut vcpu, flags, [minus_one, 2, 7, 0, 0]),
        Error::Invalid.to_rax()
    );

    let mut vcpu = vcpu_with_name("nothing");
    let nothing = typed_lookup(&mut vcpu, demo::signatures::nothing);
    vcpu.cpl = 3;
    assert_eq!(call(&mut vcpu, nothing, [9, 9, 9, 9, 9]), 0);
}

#[test]
fn guest_stubs_without_a_vmm_say_not_present() {
    // This machine runs no vmmcall VMM: the stubs detect that by CPUID and
    // execute no hypercall instruction.
    if guest_sdk::detect().is_some() {
        return;
    }
    assert_eq!(demo::hello(5), Err(guest_sdk::Error::NotPresent));
    let mut out = [0u8; 8];
    assert_eq!(demo::fill(&mut out, 1), Err(guest_sdk::Error::NotPresent));
    assert_eq!(demo::checksum(&[1, 2]), Err(guest_sdk::Error::NotPresent));
    assert_eq!(demo::flags(-1, true, 7), Err(guest_sdk::Error::NotPresent));
    assert_eq!(demo::nothing(), Err(guest_sdk::Error::NotPresent));
}

/// Compile `program` (C, including the generated `demo.h`) with gcc,
/// `-Wall -Wextra -Werror`; run it when `run`. Panics with gcc's or the
/// program's output on failure.
fn c_program(name: &str, program: &str, run: bool) {
    let dir = std::env::temp_dir().join(format!("vmmcall-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("demo.h"), demo::C_HEADER).unwrap();
    std::fs::write(dir.join("use.c"), program).unwrap();
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk/include");
    let exe = dir.join("use");
    let mut gcc = std::process::Command::new("gcc");
    gcc.args(["-Wall", "-Wextra", "-Werror", "-std=gnu11", "-I", include]);
    if run {
        gcc.arg("-o").arg(&exe);
    } else {
        gcc.arg("-fsyntax-only");
    }
    // No C compiler on this machine is a failure: the Linux-guest C
    // programs need one anyway, and `cargo xtask test` installs it.
    let built = gcc.arg(dir.join("use.c")).output().expect("gcc");
    let ran = (built.status.success() && run).then(|| std::process::Command::new(&exe).output());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        built.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    if let Some(ran) = ran {
        let ran = ran.expect("running the C program");
        assert!(
            ran.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&ran.stdout),
            String::from_utf8_lossy(&ran.stderr)
        );
    }
}

#[test]
fn generated_c_header_compiles_warning_free() {
    c_program(
        "interface",
        "#include \"demo.h\"\n\
         int f(const struct vmmcall_vmm *vmm);\n\
         int f(const struct vmmcall_vmm *vmm) {\n\
             vmmcall_u64 r; unsigned char out[4]; vmmcall_u32 sum; _Bool b;\n\
             struct vmmcall_batch_entry e[5]; vmmcall_u64 results[5];\n\
             return demo_hello(vmm, 5, &r) + demo_fill(vmm, out, sizeof out, 1, &r)\n\
                 + demo_checksum(vmm, out, sizeof out, &sum) + demo_flags(vmm, -1, 1, 7, &b)\n\
                 + demo_nothing(vmm)\n\
                 + demo_hello_entry(vmm, 5, &e[0]) + demo_fill_entry(vmm, out, sizeof out, 1, &e[1])\n\
                 + demo_checksum_entry(vmm, out, sizeof out, &e[2])\n\
                 + demo_flags_entry(vmm, -1, 1, 7, &e[3]) + demo_nothing_entry(vmm, &e[4])\n\
                 + (int)vmmcall_batch(vmm, e, 5, results, 0)\n\
                 + demo_hello_result(results[0], &r) + demo_checksum_result(results[2], &sum)\n\
                 + demo_flags_result(results[3], &b) + demo_nothing_result(results[4]);\n\
         }\n",
        false,
    );
}

/// The header's C helpers without a VMM: each `_result` decodes an answer
/// as its declared type (errno, out-of-range value, value), `_number` and
/// `_entry` answer the lookup's ENODEV and leave the entry alone, and a
/// call does the same.
#[test]
fn generated_c_helpers_decode_and_refuse_without_a_vmm() {
    c_program(
        "interface-run",
        r#"#include "demo.h"
#include <stdio.h>
#include <string.h>

static int failures;
#define CHECK(cond) do { if (!(cond)) { printf("failed: %s\n", #cond); failures++; } } while (0)

int main(void)
{
    struct vmmcall_vmm none;
    struct vmmcall_batch_entry e;
    vmmcall_u64 r = 7, n = 7;
    vmmcall_u32 sum = 7;
    vmmcall_bool b = 0;
    unsigned char out[4];

    /* _result: -errno, a value outside the declared type, a value. */
    CHECK(demo_hello_result((vmmcall_u64)0 - VMMCALL_EPERM, &r) == VMMCALL_EPERM && r == 7);
    CHECK(demo_hello_result(0xffffffffffull, &r) == 0 && r == 0xffffffffffull);
    CHECK(demo_checksum_result(0x100000000ull, &sum) == VMMCALL_EINVAL && sum == 7);
    CHECK(demo_checksum_result(945, &sum) == 0 && sum == 945);
    CHECK(demo_flags_result(2, &b) == VMMCALL_EINVAL);
    CHECK(demo_flags_result(1, &b) == 0 && b);
    CHECK(demo_nothing_result(1) == VMMCALL_EINVAL);
    CHECK(demo_nothing_result(0) == 0);
    CHECK(demo_hello_result(0, NULL) == 0);

    /* No VMM: the lookup says so, nothing is written or called. */
    memset(&none, 0, sizeof none);
    memset(&e, 0xab, sizeof e);
    CHECK(demo_hello_number(&none, &n) == VMMCALL_ENODEV && n == 7);
    CHECK(demo_fill_entry(&none, out, sizeof out, 1, &e) == VMMCALL_ENODEV);
    CHECK(e.nr == 0xababababababababull && e.args[4] == 0xababababababababull);
    CHECK(demo_hello(&none, 5, &r) == VMMCALL_ENODEV);
    CHECK(sizeof e == 48);
    return failures != 0;
}
"#,
        true,
    );
}

#[test]
fn interface_handlers_see_the_calling_vm_and_vcpu() {
    let registry = Registry::global().unwrap();
    let number = registry.lookup(b"whoami").unwrap().get();
    let (a, b) = (DemoVm { id: 1 }, DemoVm { id: 2 });
    let mut answers = Vec::new();
    for (vm, vcpu_id) in [(&a, 0), (&b, 0), (&a, 3)] {
        let mut raw = MockVcpu::new();
        raw.regs.rax = number;
        let mut vcpu = vmmcall::InVm::new(&mut raw, vcpu_id).with_vm(vm);
        answers.push(dispatch(registry, &mut vcpu).result);
    }
    assert_eq!(answers, [Ok(1 << 32), Ok(2 << 32), Ok(1 << 32 | 3)]);
    assert_eq!(
        call(&mut MockVcpu::new(), number, [0; 5]),
        Error::Io.to_rax()
    );
}
