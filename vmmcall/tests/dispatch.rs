//! End-to-end tests of the ABI on the host: `#[vmmcall]` handlers in the
//! linker-section slice, dispatched on a mock vCPU.

use vmmcall::mock::MockVcpu;
use vmmcall::{dispatch, vmmcall, Caller, Error, GuestAddr, GuestRegs, Registry, HANDLERS};

#[vmmcall("hello", user)]
fn hello(arg1: u64) -> u64 {
    log::info!("Hello BitVisor!, arg1 = {arg1}");
    arg1 * 2
}

#[vmmcall("kernel_only")]
fn kernel_only() -> u32 {
    7
}

#[vmmcall("narrow", user)]
fn narrow(a: u8, b: i16, c: bool, d: u32, e: i8) -> u64 {
    u64::from(a)
        .wrapping_add(b as i64 as u64)
        .wrapping_add(u64::from(c))
        .wrapping_add(u64::from(d))
        .wrapping_add(e as i64 as u64)
}

#[vmmcall("fails", user)]
fn fails(which: u8) -> Result<u16, Error> {
    match which {
        0 => Ok(3),
        1 => Err(Error::Fault),
        _ => Err(Error::Busy),
    }
}

#[vmmcall("huge", user)]
fn huge(v: u64) -> u64 {
    v
}

#[vmmcall("unit")]
fn unit() {}

#[vmmcall("stopper")]
fn stopper(cx: &mut Caller, status: u32) {
    cx.request_stop(status);
}

#[vmmcall("echo", user)]
fn echo(cx: &mut Caller, src: GuestAddr, dst: GuestAddr, len: u8) -> Result<u64, Error> {
    let mut buf = [0u8; 255];
    let buf = &mut buf[..usize::from(len)];
    cx.read(src, buf)?;
    cx.write(dst, buf)?;
    Ok(u64::from(len))
}

/// A name of exactly 255 bytes, the longest ABI v1 allows.
#[vmmcall("nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn", user)]
fn longest_name() -> u8 {
    255
}

#[vmmcall("argh.strange-name/ü", user)]
fn strange() -> u8 {
    1
}

fn reg() -> &'static Registry<'static> {
    Registry::global().expect("registry builds")
}

fn number(name: &str) -> u64 {
    reg().lookup(name.as_bytes()).expect("registered").get()
}

/// Put `name` NUL-terminated at `addr` and run get_vmmcall_number.
fn lookup_via_guest(vcpu: &mut MockVcpu, addr: u64, name: &[u8]) -> u64 {
    vcpu.poke(addr, name);
    vcpu.regs.rax = 0;
    vcpu.regs.rbx = addr;
    dispatch(reg(), vcpu);
    vcpu.regs.rax
}

fn call(vcpu: &mut MockVcpu, name: &str, args: [u64; 5]) -> u64 {
    vcpu.regs.rax = number(name);
    [
        vcpu.regs.rbx,
        vcpu.regs.rcx,
        vcpu.regs.rdx,
        vcpu.regs.rsi,
        vcpu.regs.rdi,
    ] = args;
    dispatch(reg(), vcpu);
    vcpu.regs.rax
}

#[test]
fn numbering_is_sorted_by_name_and_stable() {
    let r = reg();
    let names: Vec<&str> = r.iter().map(|(_, h)| h.name()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "numbers follow byte order of names");
    for (n, h) in r.iter() {
        assert_eq!(r.lookup(h.name().as_bytes()).map(|x| x.get()), Some(n));
        assert_eq!(r.get(n).map(|h| h.name()), Some(h.name()));
    }
    // A second registry over the same slice numbers identically.
    let again = Registry::new(&HANDLERS).unwrap();
    assert_eq!(
        again.iter().map(|(n, h)| (n, h.name())).collect::<Vec<_>>(),
        r.iter().map(|(n, h)| (n, h.name())).collect::<Vec<_>>()
    );
    assert_eq!(r.len(), HANDLERS.len());
    assert_eq!(number("argh.strange-name/ü"), 1);
}

#[test]
fn lookup_found() {
    let mut v = MockVcpu::new();
    v.map(0x5000, true, true);
    assert_eq!(
        lookup_via_guest(&mut v, 0x5000, b"hello\0"),
        number("hello")
    );
    assert_ne!(number("hello"), 0);
}

#[test]
fn lookup_unknown_is_zero() {
    let mut v = MockVcpu::new();
    v.map(0x5000, true, true);
    assert_eq!(lookup_via_guest(&mut v, 0x5000, b"goodbye\0"), 0);
    assert_eq!(lookup_via_guest(&mut v, 0x5000, b"\0"), 0);
    assert_eq!(lookup_via_guest(&mut v, 0x5000, b"get_vmmcall_number\0"), 0);
    // Prefixes and extensions of real names are different names.
    assert_eq!(lookup_via_guest(&mut v, 0x5000, b"hell\0"), 0);
    assert_eq!(lookup_via_guest(&mut v, 0x5000, b"hello!\0"), 0);
}

#[test]
fn lookup_unterminated_within_256_is_zero() {
    let mut v = MockVcpu::new();
    v.map(0x5000, true, true).map(0x6000, true, true);
    // 256 non-NUL bytes, NUL at offset 256: too long (the limit is 255 + NUL).
    let mut name = vec![b'a'; 256];
    name.push(0);
    assert_eq!(lookup_via_guest(&mut v, 0x5000, &name), 0);
    // Exactly 255 bytes + NUL is a valid (if unknown) name: read, not found.
    let mut ok = vec![b'b'; 255];
    ok.push(0);
    assert_eq!(lookup_via_guest(&mut v, 0x5100, &ok), 0);
}

#[test]
fn lookup_stops_at_256_bytes_without_touching_the_next_page() {
    let mut v = MockVcpu::new();
    v.map(0x5000, true, true);
    // Fill the page with non-NUL; the next page is unmapped. Starting 256
    // bytes before the end, the read must end at the page end, not fault.
    let junk = vec![b'x'; 4096];
    v.poke(0x5000, &junk);
    v.regs.rax = 0;
    v.regs.rbx = 0x5000 + 4096 - 256;
    dispatch(reg(), &mut v);
    assert_eq!(v.regs.rax, 0);
    // One read of exactly the 256 bytes up to the page end: a reader that
    // went on would have asked for (and faulted on) the unmapped page.
    assert_eq!(v.reads, 1);
}

#[test]
fn lookup_honours_the_255_byte_limit_exactly() {
    let mut v = MockVcpu::new();
    v.map(0x5000, true, true);
    let longest = "n".repeat(255);
    let n = number(&longest);
    // 255 bytes + NUL: found.
    let mut name = longest.clone().into_bytes();
    name.push(0);
    assert_eq!(lookup_via_guest(&mut v, 0x5000, &name), n);
    // 256 bytes whose first 255 are that name: not terminated within 256,
    // so 0 (a reader that truncated at 255 would wrongly find it).
    let mut longer = "n".repeat(256).into_bytes();
    longer.push(0);
    assert_eq!(lookup_via_guest(&mut v, 0x5000, &longer), 0);
}

#[test]
fn lookup_name_ending_at_page_end_before_unmapped_page() {
    let mut v = MockVcpu::new();
    v.map(0x5000, true, true);
    let at = 0x6000 - 6;
    assert_eq!(lookup_via_guest(&mut v, at, b"hello\0"), number("hello"));
}

#[test]
fn lookup_unreadable_is_zero() {
    let mut v = MockVcpu::new();
    v.regs.rax = 0;
    v.regs.rbx = 0x9000; // unmapped
    dispatch(reg(), &mut v);
    assert_eq!(v.regs.rax, 0);
    // Crossing into an unmapped page before the NUL.
    v.map(0x5000, true, true);
    v.poke(0x6000 - 3, b"hel");
    v.regs.rax = 0;
    v.regs.rbx = 0x6000 - 3;
    dispatch(reg(), &mut v);
    assert_eq!(v.regs.rax, 0);
    // Non-canonical and wrapping addresses.
    for bad in [0x0000_8000_0000_0000, u64::MAX, u64::MAX - 2] {
        v.regs.rax = 0;
        v.regs.rbx = bad;
        dispatch(reg(), &mut v);
        assert_eq!(v.regs.rax, 0, "address {bad:#x}");
    }
}

#[test]
fn lookup_from_ring3_cannot_read_supervisor_pages() {
    let mut v = MockVcpu::new();
    v.map(0x5000, false, true); // supervisor page
    v.cpl = 3;
    assert_eq!(lookup_via_guest(&mut v, 0x5000, b"hello\0"), 0);
    v.cpl = 0;
    assert_eq!(
        lookup_via_guest(&mut v, 0x5000, b"hello\0"),
        number("hello")
    );
}

#[test]
fn unknown_number_is_enosys() {
    let mut v = MockVcpu::new();
    let past_end = reg().len() as u64 + 1;
    for n in [past_end, past_end + 1, 1 << 32, u64::MAX, u64::MAX - 4094] {
        v.regs.rax = n;
        let out = dispatch(reg(), &mut v);
        assert_eq!(v.regs.rax, (-38_i64) as u64, "number {n:#x}");
        assert_eq!(out.result, Err(Error::NoSys));
    }
}

#[test]
fn user_caller_of_cpl0_handler_is_eperm() {
    let mut v = MockVcpu::new();
    v.cpl = 3;
    assert_eq!(call(&mut v, "kernel_only", [0; 5]), (-1_i64) as u64);
    v.cpl = 1;
    assert_eq!(call(&mut v, "kernel_only", [0; 5]), (-1_i64) as u64);
    v.cpl = 0;
    assert_eq!(call(&mut v, "kernel_only", [0; 5]), 7);
    v.cpl = 3;
    assert_eq!(call(&mut v, "hello", [5, 0, 0, 0, 0]), 10);
}

#[test]
fn out_of_range_narrow_argument_is_einval() {
    let mut v = MockVcpu::new();
    let einval = (-22_i64) as u64;
    let ok = [1, (-2_i64) as u64, 1, 4, (-1_i64) as u64];
    assert_eq!(
        call(&mut v, "narrow", ok),
        1u64.wrapping_sub(2).wrapping_add(1 + 4).wrapping_sub(1)
    );
    for (i, bad) in [256, 0x8000, 2, 1 << 32, 0x80].into_iter().enumerate() {
        let mut args = ok;
        args[i] = bad;
        assert_eq!(
            call(&mut v, "narrow", args),
            einval,
            "argument {i} = {bad:#x}"
        );
    }
}

#[test]
fn registers_not_returned_in_are_unchanged() {
    let mut v = MockVcpu::new();
    let before = GuestRegs {
        rax: number("hello"),
        rcx: 0x1111,
        rdx: 0x2222,
        rbx: 5,
        rsp: 0x3333,
        rbp: 0x4444,
        rsi: 0x5555,
        rdi: 0x6666,
        r8: 8,
        r9: 9,
        r10: 10,
        r11: 11,
        r12: 12,
        r13: 13,
        r14: 14,
        r15: 15,
    };
    for rax in [number("hello"), 0, u64::MAX, number("fails")] {
        v.regs = GuestRegs { rax, ..before };
        v.map(0x0, true, true);
        dispatch(reg(), &mut v);
        let mut expect = before;
        expect.rax = v.regs.rax;
        assert_eq!(v.regs, expect, "rax in = {rax:#x}");
    }
}

#[test]
fn handler_errors_and_result_collisions() {
    let mut v = MockVcpu::new();
    assert_eq!(call(&mut v, "fails", [0; 5]), 3);
    assert_eq!(call(&mut v, "fails", [1, 0, 0, 0, 0]), (-14_i64) as u64);
    assert_eq!(call(&mut v, "fails", [2, 0, 0, 0, 0]), (-16_i64) as u64);
    assert_eq!(
        call(&mut v, "huge", [(-4096_i64) as u64, 0, 0, 0, 0]),
        (-4096_i64) as u64
    );
    assert_eq!(
        call(&mut v, "huge", [(-1_i64) as u64, 0, 0, 0, 0]),
        (-75_i64) as u64
    );
    assert_eq!(call(&mut v, "unit", [9; 5]), 0);
}

#[test]
fn handler_can_stop_the_guest() {
    let mut v = MockVcpu::new();
    v.regs.rax = number("stopper");
    v.regs.rbx = 3;
    let out = dispatch(reg(), &mut v);
    assert_eq!(out.stop, Some(3));
    assert_eq!(out.name, Some("stopper"));
    v.regs.rax = number("hello");
    assert_eq!(dispatch(reg(), &mut v).stop, None);
}

#[test]
fn handler_memory_access_honours_permissions() {
    let mut v = MockVcpu::new();
    v.map(0x1000, true, true)
        .map(0x2000, true, false)
        .map(0x3000, false, true);
    v.poke(0x1000, b"abcdef");
    assert_eq!(call(&mut v, "echo", [0x1000, 0x1800, 6, 0, 0]), 6);
    assert_eq!(v.peek(0x1800, 6), b"abcdef");
    // Read-only destination.
    assert_eq!(
        call(&mut v, "echo", [0x1000, 0x2000, 6, 0, 0]),
        (-14_i64) as u64
    );
    // Supervisor source from ring 3, fine from ring 0.
    v.cpl = 3;
    assert_eq!(
        call(&mut v, "echo", [0x3000, 0x1800, 6, 0, 0]),
        (-14_i64) as u64
    );
    v.cpl = 0;
    assert_eq!(call(&mut v, "echo", [0x3000, 0x1800, 6, 0, 0]), 6);
    // Crossing from a mapped page into an unmapped one.
    assert_eq!(
        call(&mut v, "echo", [0x3ffe, 0x1800, 6, 0, 0]),
        (-14_i64) as u64
    );
    // Crossing between two mapped pages works.
    assert_eq!(call(&mut v, "echo", [0x1ffe, 0x1800, 6, 0, 0]), 6);
}

#[test]
fn call_counts_are_kept_per_handler() {
    let mut v = MockVcpu::new();
    let n = number("unit");
    let before = reg().calls(n);
    call(&mut v, "unit", [0; 5]);
    call(&mut v, "unit", [0; 5]);
    assert!(reg().calls(n) >= before + 2);
}

#[test]
fn numbers_outside_the_handlers_find_none() {
    let registry = Registry::global().unwrap();
    let len = registry.len() as u64;
    assert!(registry.get(1).is_some() && registry.get(len).is_some());
    for number in [0, len + 1, 1 << 32, 1 << 40, u64::MAX, u64::MAX - 1] {
        assert!(registry.get(number).is_none(), "{number:#x}");
    }
}

#[test]
fn lazy_vcpu_reads_the_cpl_only_for_kernel_only_handlers() {
    use std::cell::Cell;
    use vmmcall::paging::{GuestPhysMemory, PagingMode};
    use vmmcall::{GuestVcpu, MemError, VcpuState};

    struct NoRam;
    impl GuestPhysMemory for NoRam {
        fn read_phys(&self, gpa: u64, _: &mut [u8]) -> Result<(), MemError> {
            Err(MemError::OutsideRam { gpa })
        }
        fn write_phys(&mut self, gpa: u64, _: &[u8]) -> Result<(), MemError> {
            Err(MemError::OutsideRam { gpa })
        }
    }
    struct State {
        cpl: u8,
        reads: Cell<u32>,
    }
    impl VcpuState for State {
        fn cpl(&self) -> u8 {
            self.reads.set(self.reads.get() + 1);
            self.cpl
        }
        fn paging(&self) -> PagingMode {
            self.reads.set(self.reads.get() + 1);
            PagingMode::disabled()
        }
    }
    let registry = Registry::global().unwrap();
    let number = |name: &str| registry.lookup(name.as_bytes()).unwrap().get();
    for cpl in [0u8, 3] {
        let state = State {
            cpl,
            reads: Cell::new(0),
        };
        // A user handler with register arguments: nothing read.
        let mut regs = GuestRegs {
            rax: number("hello"),
            rbx: 21,
            ..GuestRegs::default()
        };
        dispatch(registry, &mut GuestVcpu::lazy(&mut regs, NoRam, &state));
        assert_eq!((regs.rax, state.reads.get()), (42, 0), "CPL {cpl}");
        // A kernel-only handler: the CPL is read, and still decides.
        regs.rax = number("kernel_only");
        dispatch(registry, &mut GuestVcpu::lazy(&mut regs, NoRam, &state));
        let expect = if cpl == 0 {
            7
        } else {
            Error::Permission.to_rax()
        };
        assert_eq!((regs.rax, state.reads.get()), (expect, 1), "CPL {cpl}");
        // get_vmmcall_number reads guest memory: CPL and paging mode.
        regs.rax = 0;
        regs.rbx = 0x1000;
        dispatch(registry, &mut GuestVcpu::lazy(&mut regs, NoRam, &state));
        assert_eq!((regs.rax, state.reads.get()), (0, 3), "CPL {cpl}");
    }
}
