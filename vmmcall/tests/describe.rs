//! `vmmcall_describe` (function `abi::DESCRIBE`, docs/ABI.md): the VMM
//! describes its handlers, and a caller at CPL > 0 learns nothing a call
//! from there would not tell it, except the names of the handlers it may
//! call.

use vmmcall::abi::{DESCRIBE, DESCRIBE_NAME, DESCRIBE_NAME_LEN, DESCRIBE_USER, LOOKUP_TYPED};
use vmmcall::mock::MockVcpu;
use vmmcall::{dispatch, vmmcall, Caller, Error, GuestAddr, GuestRegs, MemError, Registry, Vcpu};

#[vmmcall("apple", user)]
fn apple() -> u32 {
    1
}

#[vmmcall("banana")]
fn banana() -> u32 {
    2
}

#[vmmcall("cherry", user)]
fn cherry(cx: &mut Caller, status: u32) {
    cx.request_stop(status);
}

/// A name of exactly 255 bytes, the longest ABI v1 allows: its NUL makes
/// 256 bytes.
#[vmmcall("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")]
fn longest() -> u32 {
    4
}

const NAMES: [&str; 4] = ["apple", "banana", "cherry", LONGEST];
const LONGEST: &str = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
const USER: [bool; 4] = [true, false, true, false];

const BUF: u64 = 0x1000;
const ERR_NOSYS: u64 = (-38_i64) as u64;
const ERR_PERM: u64 = (-1_i64) as u64;
const ERR_FAULT: u64 = (-14_i64) as u64;
const ERR_NOSPC: u64 = (-28_i64) as u64;
const POISON: u8 = 0xA5;

fn reg() -> &'static Registry<'static> {
    Registry::global().expect("registry builds")
}

/// A vCPU at `cpl` with two user pages at 0x1000 filled with POISON, a
/// read-only user page at 0x3000 and a supervisor page at 0x4000.
fn vcpu(cpl: u8) -> MockVcpu {
    let mut v = MockVcpu::new();
    v.map(0x1000, true, true)
        .map(0x2000, true, true)
        .map(0x3000, true, false)
        .map(0x4000, false, true);
    v.poke(0x1000, &[POISON; 8192]);
    v.cpl = cpl;
    v
}

fn describe(v: &mut MockVcpu, n: u64, buf: u64, len: u64) -> u64 {
    describe_in(reg(), v, n, buf, len)
}

/// `describe` through `registry` (a VM's, with its policy).
fn describe_in(registry: &Registry<'static>, v: &mut MockVcpu, n: u64, buf: u64, len: u64) -> u64 {
    v.regs.rax = DESCRIBE;
    v.regs.rbx = n;
    v.regs.rcx = buf;
    v.regs.rdx = len;
    let out = dispatch(registry, v);
    assert_eq!(out.number, DESCRIBE);
    assert_eq!(out.name, None);
    assert_eq!(out.stop, None);
    assert_eq!(
        out.result.unwrap_or_else(Error::to_rax),
        v.regs.rax,
        "the outcome says what RAX holds"
    );
    v.regs.rax
}

fn call(v: &mut MockVcpu, n: u64) -> u64 {
    call_in(reg(), v, n)
}

/// `call` through `registry`.
fn call_in(registry: &Registry<'static>, v: &mut MockVcpu, n: u64) -> u64 {
    v.regs = GuestRegs {
        rax: n,
        ..GuestRegs::default()
    };
    dispatch(registry, v);
    v.regs.rax
}

#[test]
fn the_test_binary_has_these_handlers() {
    let names: Vec<&str> = reg().iter().map(|(_, h)| h.name()).collect();
    assert_eq!(names, NAMES);
}

#[test]
fn count_at_every_cpl() {
    for cpl in 0..4 {
        let mut v = vcpu(cpl);
        assert_eq!(describe(&mut v, 0, 0xdead_0000_0000, u64::MAX), 4);
        assert_eq!(v.peek(BUF, 4096), vec![POISON; 4096], "nothing written");
    }
}

#[test]
fn every_handler_from_ring_0() {
    let mut v = vcpu(0);
    for (i, (name, user)) in NAMES.iter().zip(USER).enumerate() {
        let n = i as u64 + 1;
        let flags = name.len() as u64 | if user { DESCRIBE_USER } else { 0 };
        // Flags only: RDX = 0 writes nothing and RCX is not looked at.
        assert_eq!(describe(&mut v, n, 0xdead_beef_0000_0000, 0), flags);
        assert_eq!(v.peek(BUF, 4096), vec![POISON; 4096]);
        // A buffer of exactly name + NUL, ending just before a read-only
        // page: the name, the NUL, nothing else.
        let at = 0x3000 - (name.len() as u64 + 1);
        assert_eq!(describe(&mut v, n, at, name.len() as u64 + 1), flags);
        assert_eq!(v.peek(at, name.len()), name.as_bytes());
        assert_eq!(v.peek(at + name.len() as u64, 1), [0]);
        assert_eq!(v.peek(at - 1, 1), [POISON]);
        // A big RDX still writes only name + NUL.
        v.poke(BUF, &[POISON; 512]);
        assert_eq!(describe(&mut v, n, BUF, u64::MAX), flags);
        assert_eq!(v.peek(BUF, name.len()), name.as_bytes());
        let end = BUF + name.len() as u64;
        assert_eq!(v.peek(end, 1), [0]);
        assert_eq!(
            v.peek(end + 1, 511 - name.len()),
            vec![POISON; 511 - name.len()]
        );
        assert_eq!(flags & DESCRIBE_NAME_LEN, name.len() as u64);
        v.poke(0x1000, &[POISON; 8192]);
    }
}

#[test]
fn too_small_a_buffer_is_enospc_and_writes_nothing() {
    let mut v = vcpu(0);
    for (i, name) in NAMES.iter().enumerate() {
        let n = i as u64 + 1;
        for len in [1, name.len() as u64] {
            assert_eq!(describe(&mut v, n, BUF, len), ERR_NOSPC);
            assert_eq!(v.peek(BUF, 4096), vec![POISON; 4096]);
        }
    }
    // Even when the buffer is also bad: the size is checked first.
    assert_eq!(describe(&mut v, 1, 0x9000, 3), ERR_NOSPC);
}

#[test]
fn bad_buffers_are_efault_and_write_nothing() {
    let long = NAMES.len() as u64; // the 255-byte name: 256 bytes to write
    for (cpl, buf, n) in [
        (0, 0x9000, 1),                // unmapped
        (0, 0x3000, 1),                // read-only
        (3, 0x4000, 1),                // supervisor page from ring 3
        (0, 0x8000_0000_0000_0000, 1), // non-canonical
        (0, u64::MAX - 2, 1),          // "apple\0" wraps the address space
        (0, 0x2f80, long),             // crosses into the read-only page
        (3, 0x3f80, 1),                // read-only, then supervisor
    ] {
        let mut v = vcpu(cpl);
        let before = (v.peek(0x1000, 0x4000), v.regs);
        assert_eq!(describe(&mut v, n, buf, 4096), ERR_FAULT, "{buf:#x}");
        assert_eq!(v.peek(0x1000, 0x4000), before.0, "{buf:#x}: unchanged");
    }
    // From ring 0, the supervisor page is fine.
    let mut v = vcpu(0);
    assert_eq!(describe(&mut v, 1, 0x4000, 6), 5 | DESCRIBE_USER);
    assert_eq!(v.peek(0x4000, 6), b"apple\0");
}

#[test]
fn ring_3_sees_user_handlers_and_what_a_call_would_tell() {
    for cpl in 1..4 {
        let mut v = vcpu(cpl);
        for (i, (name, user)) in NAMES.iter().zip(USER).enumerate() {
            let n = i as u64 + 1;
            let got = describe(&mut v, n, BUF, 4096);
            if user {
                assert_eq!(got, name.len() as u64 | DESCRIBE_USER);
                assert_eq!(v.peek(BUF, name.len()), name.as_bytes());
            } else {
                assert_eq!(got, ERR_PERM, "{name} at CPL {cpl}");
                assert_eq!(v.peek(BUF, 4096), vec![POISON; 4096]);
                // Flags only is refused too: a kernel-only handler's name
                // length is not for ring 3 either.
                assert_eq!(describe(&mut v, n, 0, 0), ERR_PERM);
            }
            v.poke(BUF, &[POISON; 4096]);
        }
    }
}

#[test]
fn describe_answers_as_a_call_would_for_every_refusal() {
    // For every number and CPL: -EPERM and -ENOSYS exactly where a call of
    // that number gets them. (A call of 0 is a lookup, of DESCRIBE itself
    // a description: neither refuses.)
    let numbers = [
        1,
        2,
        3,
        4,
        5,
        6,
        0xffff_ffff,
        DESCRIBE,
        LOOKUP_TYPED,
        DESCRIBE + 2,
        1 << 63,
        u64::MAX,
    ];
    for cpl in 0..4 {
        for n in numbers {
            let mut v = vcpu(cpl);
            let described = describe(&mut v, n, BUF, 4096);
            let called = call(&mut vcpu(cpl), n);
            let refusal = |rax: u64| (rax == ERR_PERM || rax == ERR_NOSYS).then_some(rax);
            if n == DESCRIBE || n == LOOKUP_TYPED {
                // Built-in functions, not handlers: nothing to describe.
                assert_eq!(described, ERR_NOSYS, "no handler has number {n:#x}");
            } else {
                assert_eq!(refusal(described), refusal(called), "n = {n:#x}, CPL {cpl}");
            }
        }
    }
}

#[test]
fn every_per_vm_policy_describes_what_its_calls_and_lookups_answer() {
    // Every allow-list over the four handlers: describe counts the allowed
    // ones, names exactly those (and function 0 finds exactly those), and
    // refuses (-EPERM / -ENOSYS) exactly where a call in that VM would.
    for mask in 0u32..16 {
        let allowed: Vec<&str> = (0..4)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| NAMES[i])
            .collect();
        let vm = reg()
            .restricted(|h| allowed.contains(&h.name()))
            .expect("a subset");
        for cpl in [0, 3] {
            let mut v = vcpu(cpl);
            let count = describe_in(&vm, &mut v, 0, 0, 0);
            assert_eq!(count, allowed.len() as u64, "{allowed:?}");
            let mut described = Vec::new();
            for n in 1..=6 {
                let d = describe_in(&vm, &mut vcpu(cpl), n, BUF, 4096);
                let c = call_in(&vm, &mut vcpu(cpl), n);
                let refusal = |rax: u64| (rax == ERR_PERM || rax == ERR_NOSYS).then_some(rax);
                assert_eq!(refusal(d), refusal(c), "{allowed:?}, n = {n}, CPL {cpl}");
                if cpl == 0 && d != ERR_NOSYS {
                    let mut v = vcpu(0);
                    describe_in(&vm, &mut v, n, BUF, 4096);
                    let name = v.peek(BUF, (d & 0xffff) as usize);
                    described.push(String::from_utf8(name).expect("UTF-8"));
                }
            }
            if cpl == 0 {
                assert_eq!(described, allowed, "numbers 1..=N are the allowed ones");
            }
            for name in NAMES {
                let mut v = vcpu(cpl);
                v.poke(BUF, name.as_bytes())
                    .poke(BUF + name.len() as u64, &[0]);
                v.regs = GuestRegs {
                    rbx: BUF,
                    ..GuestRegs::default()
                };
                dispatch(&vm, &mut v);
                assert_eq!(
                    v.regs.rax != 0,
                    allowed.contains(&name),
                    "function 0 for {name:?} with {allowed:?}"
                );
            }
        }
    }
}

#[test]
fn numbers_without_a_handler_are_enosys() {
    let mut v = vcpu(0);
    for n in [5, 6, 0xffff_ffff, DESCRIBE, 1 << 63, u64::MAX] {
        assert_eq!(describe(&mut v, n, BUF, 4096), ERR_NOSYS, "{n:#x}");
        assert_eq!(v.peek(BUF, 4096), vec![POISON; 4096]);
    }
}

#[test]
fn only_rax_changes_and_nothing_counts_as_a_call() {
    let mut v = vcpu(0);
    let before = GuestRegs {
        rax: DESCRIBE,
        rbx: 3,
        rcx: BUF,
        rdx: 64,
        rsi: 0x5555,
        rdi: 0x6666,
        rsp: 0x3333,
        rbp: 0x4444,
        r8: 8,
        r9: 9,
        r10: 10,
        r11: 11,
        r12: 12,
        r13: 13,
        r14: 14,
        r15: 15,
    };
    let calls: Vec<u64> = reg().iter().map(|(n, _)| reg().calls(n)).collect();
    for (rbx, rcx, rdx) in [
        (3, BUF, 64),
        (0, 0, 0),
        (2, BUF, 64),
        (9, 0, 0),
        (1, 0x9000, 9),
    ] {
        v.regs = GuestRegs {
            rbx,
            rcx,
            rdx,
            ..before
        };
        let out = dispatch(reg(), &mut v);
        let mut expect = GuestRegs {
            rbx,
            rcx,
            rdx,
            ..before
        };
        expect.rax = v.regs.rax;
        assert_eq!(v.regs, expect);
        assert_eq!(out.stop, None, "describing `cherry` does not run it");
    }
    let after: Vec<u64> = reg().iter().map(|(n, _)| reg().calls(n)).collect();
    assert_eq!(calls, after);
}

#[test]
fn lookup_is_unchanged() {
    // BitVisor-style lookup knows nothing of DESCRIBE: its display name is
    // no handler's, and function 0 still answers 0 for it.
    let mut v = vcpu(0);
    v.poke(BUF, DESCRIBE_NAME.as_bytes()).poke(BUF + 16, b"\0");
    v.regs.rax = 0;
    v.regs.rbx = BUF;
    dispatch(reg(), &mut v);
    assert_eq!(v.regs.rax, 0);
    v.poke(BUF, b"cherry\0");
    v.regs.rax = 0;
    dispatch(reg(), &mut v);
    assert_eq!(v.regs.rax, 3);
}

#[test]
fn the_result_never_reads_as_an_error() {
    let mut v = vcpu(0);
    for n in 0..=4 {
        let r = describe(&mut v, n, 0, 0);
        assert!(!vmmcall::abi::is_error(r), "{n}: {r:#x}");
        assert!(r < 1 << 32);
    }
}

/// A vCPU whose page at `outside` translates but is not guest RAM, as a
/// real VMM's walk sees MMIO: reads of it fail, and a write fails when it
/// reaches it, after storing the bytes before it.
struct PartlyOutsideRam {
    inner: MockVcpu,
    outside: u64,
}

impl PartlyOutsideRam {
    fn touches(&self, addr: u64, len: usize) -> Option<usize> {
        (0..len).find(|&i| (addr + i as u64) & !0xfff == self.outside)
    }
}

impl vmmcall::Registers for PartlyOutsideRam {
    fn gpr(&self, reg: vmmcall::Gpr) -> u64 {
        self.inner.gpr(reg)
    }
    fn set_gpr(&mut self, reg: vmmcall::Gpr, value: u64) {
        self.inner.set_gpr(reg, value);
    }
}

impl Vcpu for PartlyOutsideRam {
    fn cpl(&self) -> u8 {
        self.inner.cpl()
    }
    fn read_linear(&mut self, addr: GuestAddr, buf: &mut [u8]) -> Result<(), MemError> {
        match self.touches(addr.0, buf.len()) {
            Some(_) => Err(MemError::OutsideRam { gpa: self.outside }),
            None => self.inner.read_linear(addr, buf),
        }
    }
    fn write_linear(&mut self, addr: GuestAddr, data: &[u8]) -> Result<(), MemError> {
        match self.touches(addr.0, data.len()) {
            Some(i) => {
                self.inner.write_linear(addr, &data[..i])?;
                Err(MemError::OutsideRam { gpa: self.outside })
            }
            None => self.inner.write_linear(addr, data),
        }
    }
}

#[test]
fn a_buffer_running_out_of_guest_ram_is_efault_and_written_nowhere() {
    let mut inner = vcpu(0);
    inner.map(0x3000, true, true);
    let mut v = PartlyOutsideRam {
        inner,
        outside: 0x3000,
    };
    // "zzz...z\0" (256 bytes) from 0x2f80: 128 bytes in RAM, then MMIO.
    v.inner.regs = GuestRegs {
        rax: DESCRIBE,
        rbx: NAMES.len() as u64,
        rcx: 0x2f80,
        rdx: 256,
        ..GuestRegs::default()
    };
    dispatch(reg(), &mut v);
    assert_eq!(v.inner.regs.rax, ERR_FAULT);
    assert_eq!(
        v.inner.peek(0x2f80, 128),
        vec![POISON; 128],
        "nothing written"
    );
}
