//! docs/ABI.md, "What read once means for guest memory", for the example
//! handlers: every handler of toy-vmm and of toy-vmm-handlers, and every
//! built-in function, dispatched with many register values over mock
//! memory that records every read, fetches no guest byte twice in a call.

use toy_vmm_handlers as _;
use vmmcall::abi::{DESCRIBE, LOOKUP_TYPED};
use vmmcall::mock::MockVcpu;
use vmmcall::{dispatch, GuestRegs, Registry};

/// Mock memory: pages at 0x1000..0x5000 (user, writable but 0x4000,
/// supervisor 0x3000), with names and text in them.
fn memory(cpl: u8) -> MockVcpu {
    let mut v = MockVcpu::new();
    v.cpl = cpl;
    v.map(0x1000, true, true)
        .map(0x2000, true, true)
        .map(0x3000, false, true)
        .map(0x4000, true, false);
    v.poke(0x1ff8, b"plugin_hello\0")
        .poke(0x2100, b"print\0")
        .poke(0x3000, b"plugin_secret\0")
        .poke(0x4000, b"exit\0");
    v
}

/// xorshift64: the same sequence on every run.
fn next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[test]
fn no_example_handler_reads_a_guest_byte_twice() {
    let registry = Registry::global().expect("the handlers form a registry");
    let names: Vec<&str> = registry.iter().map(|(_, h)| h.name()).collect();
    for want in [
        "exit",
        "plugin_add",
        "plugin_hello",
        "plugin_secret",
        "print",
    ] {
        assert!(names.contains(&want), "{want} is registered: {names:?}");
    }
    let numbers: Vec<u64> = (0..=registry.len() as u64 + 1)
        .chain([DESCRIBE, LOOKUP_TYPED])
        .collect();
    // Addresses: the names, page edges, unmapped and non-canonical ones.
    let addrs = [
        0x1ff8,
        0x2100,
        0x3000,
        0x4000,
        0x1000,
        0x2ff0,
        0x4ffa,
        0x9000,
        1 << 47,
        u64::MAX - 2,
    ];
    let mut seed = 0x005e_ed0f_u64;
    let (mut calls, mut reading) = (0, 0);
    for round in 0..400 {
        for &n in &numbers {
            let cpl = if round % 2 == 0 { 0 } else { 3 };
            let mut vcpu = memory(cpl);
            let pick = |s: &mut u64| addrs[(next(s) % addrs.len() as u64) as usize];
            vcpu.regs = GuestRegs {
                rax: n,
                rbx: if n == DESCRIBE {
                    next(&mut seed) % 8
                } else {
                    pick(&mut seed)
                },
                rcx: match next(&mut seed) % 3 {
                    0 => pick(&mut seed),
                    1 => next(&mut seed) % 300,
                    _ => next(&mut seed),
                },
                rdx: next(&mut seed) % 300,
                ..GuestRegs::default()
            };
            dispatch(registry, &mut vcpu);
            calls += 1;
            reading += usize::from(!vcpu.read_log().is_empty());
            assert_eq!(
                vcpu.byte_read_twice(),
                None,
                "function {n:#x} at CPL {cpl} read a guest byte twice: {:x?}",
                vcpu.read_log()
            );
        }
    }
    assert!(calls >= 400 * 7);
    // Many calls read guest memory (names, the text to print, buffers).
    assert!(
        reading > calls / 8,
        "{reading} of {calls} calls read memory"
    );
}
