//! docs/INTEGRATING.md, proved: guests run on `toy-vmm`, a VMM with its own
//! register layout and its own exit loop, with handlers in two crates (the
//! VMM's and `toy-vmm-handlers`). The tests play the guest: they set its
//! registers, execute one instruction, and read what the VMM answered,
//! exactly as `guest_sdk` would on a real CPU.

use toy_vmm::hypercall::cpuid::{self, Leaf};
use toy_vmm::hypercall::{Error, Gpr, Registers};
use toy_vmm::{After, Insn, SaveArea, VcpuStats, Vm, VmState};
// Step 8 of the guide: the image names every crate with handlers.
use toy_vmm_handlers as _;

/// Where the guest keeps strings it passes.
const SCRATCH: u64 = 0x3000;

fn vm() -> Vm {
    Vm::new(0x10_0000).expect("the handlers form a registry")
}

/// The guest executes VMMCALL with RAX = `number` and the five arguments.
fn call(vm: &mut Vm, number: u64, args: [u64; 5]) -> u64 {
    let mut regs = vm.regs();
    regs.set_rax(number);
    for (reg, value) in Gpr::ARGS.into_iter().zip(args) {
        regs.set_gpr(reg, value);
    }
    assert_eq!(vm.step(Insn::Vmmcall), After::Resume);
    vm.regs().rax()
}

/// `get_vmmcall_number(name)`, as `guest_sdk::call!` does it first.
fn lookup(vm: &mut Vm, name: &str) -> u64 {
    let at = SCRATCH as usize;
    vm.ram[at..at + name.len()].copy_from_slice(name.as_bytes());
    vm.ram[at + name.len()] = 0;
    call(vm, 0, [SCRATCH, 0, 0, 0, 0])
}

/// The guest executes CPUID for `leaf`.
fn cpuid(vm: &mut Vm, leaf: u32) -> Leaf {
    let mut regs = vm.regs();
    regs.set_rax(u64::from(leaf));
    regs.set_gpr(Gpr::Rcx, 0);
    assert_eq!(vm.step(Insn::Cpuid), After::Resume);
    let r = vm.regs();
    let w = |g| r.gpr(g) as u32;
    Leaf {
        eax: w(Gpr::Rax),
        ebx: w(Gpr::Rbx),
        ecx: w(Gpr::Rcx),
        edx: w(Gpr::Rdx),
    }
}

#[test]
fn the_guest_finds_vmmcall_above_the_vmms_own_leaves() {
    let mut vm = vm();
    assert_ne!(cpuid(&mut vm, 1).ecx & cpuid::CPUID1_ECX_HYPERVISOR, 0);
    // What guest_sdk::detect() does, through real exits of this VMM.
    let found = cpuid::find(|leaf| cpuid(&mut vm, leaf)).expect("vmmcall's leaves");
    assert_eq!(found.base, 0x4000_0100);
    assert_eq!(&found.signature, b"toy-vmm\0\0\0\0\0");
    assert_eq!(found.abi_version, toy_vmm::hypercall::abi::ABI_VERSION);
    let own = cpuid(&mut vm, 0x4000_0000);
    assert_eq!(
        own.ebx.to_le_bytes(),
        *b"ToyV",
        "the VMM keeps its own signature"
    );
}

#[test]
fn handlers_of_both_crates_answer_by_name() {
    let mut vm = vm();
    // Numbers follow the name order, across crates.
    let names = [
        "exit",
        "plugin_add",
        "plugin_hello",
        "plugin_secret",
        "print",
        "whoami",
    ];
    for (n, name) in (1..).zip(names) {
        assert_eq!(lookup(&mut vm, name), n, "{name}");
    }
    assert_eq!(lookup(&mut vm, "no_such_call"), 0);
    let add = lookup(&mut vm, "plugin_add");
    assert_eq!(call(&mut vm, add, [2, 3, 0, 0, 0]), 5);
    assert_eq!(
        call(&mut vm, add, [1 << 32, 0, 0, 0, 0]),
        Error::Invalid.to_rax(),
        "a u32 parameter refuses a wider value"
    );
    let hello = lookup(&mut vm, "plugin_hello");
    assert_eq!(call(&mut vm, hello, [0x5000, 64, 0, 0, 0]), 19);
    assert_eq!(&vm.ram[0x5000..0x5013], toy_vmm_handlers::HELLO);
    assert_eq!(
        call(&mut vm, hello, [0x5000, 3, 0, 0, 0]),
        Error::NoSpace.to_rax()
    );
    let print = lookup(&mut vm, "print");
    vm.ram[0x6000..0x6002].copy_from_slice(b"hi");
    assert_eq!(call(&mut vm, print, [0x6000, 2, 0, 0, 0]), 0);
    assert_eq!(
        toy_vmm::console().0,
        ["plugin: wrote 19 bytes", "hi"],
        "one console for the VMM's handlers and the plugin's"
    );
    assert_eq!(call(&mut vm, 0xdead, [0; 5]), Error::NoSys.to_rax());
}

#[test]
fn only_rax_and_rip_change_in_the_vmms_own_layout() {
    let mut vm = vm();
    let add = lookup(&mut vm, "plugin_add");
    vm.gprs = SaveArea(std::array::from_fn(|i| 0x100 + i as u64));
    vm.vmcb.rsp = 0x7ff0;
    let (gprs, rsp, rip) = (vm.gprs, vm.vmcb.rsp, vm.vmcb.rip);
    // plugin_add(RBX, RCX): slots 11 and 13 of the save area.
    assert_eq!(vm.regs().args()[..2], [0x10b, 0x10d]);
    vm.vmcb.rax = add;
    assert_eq!(vm.step(Insn::Vmmcall), After::Resume);
    assert_eq!(vm.vmcb.rax, 0x10b + 0x10d);
    assert_eq!((vm.gprs, vm.vmcb.rsp), (gprs, rsp), "nothing else moved");
    assert_eq!(vm.vmcb.rip, rip + 3, "past the 3-byte instruction");
}

#[test]
fn the_other_vendors_instruction_is_a_hypercall_and_ud2_is_the_guests() {
    let mut vm = vm();
    let add = lookup(&mut vm, "plugin_add");
    let rip = vm.vmcb.rip;
    let mut regs = vm.regs();
    regs.set_rax(add);
    regs.set_gpr(Gpr::Rbx, 40);
    regs.set_gpr(Gpr::Rcx, 2);
    assert_eq!(vm.step(Insn::Vmcall), After::Resume);
    assert_eq!((vm.vmcb.rax, vm.vmcb.rip), (42, rip + 3));
    assert!(vm.injected.is_empty());
    assert_eq!(vm.step(Insn::Ud2), After::Resume);
    assert_eq!(vm.injected, [6], "#UD back to the guest");
    assert_eq!((vm.vmcb.rax, vm.vmcb.rip), (42, rip + 3), "untouched");
}

#[test]
fn ring_3_gets_the_abis_answers() {
    let mut vm = vm();
    let (secret, add, hello) = (
        lookup(&mut vm, "plugin_secret"),
        lookup(&mut vm, "plugin_add"),
        lookup(&mut vm, "plugin_hello"),
    );
    assert_eq!(call(&mut vm, secret, [0; 5]), 42);
    vm.vmcb.cpl = 3;
    assert_eq!(call(&mut vm, secret, [0; 5]), Error::Permission.to_rax());
    assert_eq!(call(&mut vm, add, [1, 1, 0, 0, 0]), 2);
    // Paging off: ring 3 can name no memory at all.
    assert_eq!(
        call(&mut vm, hello, [0x5000, 64, 0, 0, 0]),
        Error::Fault.to_rax()
    );
    // 4-level paging with a user page at linear 0x40_0000 (physical
    // 0x8000): the write goes through the guest's own tables.
    for (table, entry) in [
        (0x1_0000, 0x1_1007u64),
        (0x1_1000, 0x1_2007),
        (0x1_2000 + 2 * 8, 0x1_3007),
    ] {
        vm.ram[table..table + 8].copy_from_slice(&entry.to_le_bytes());
    }
    vm.ram[0x1_3000..0x1_3008].copy_from_slice(&0x8007u64.to_le_bytes());
    (vm.vmcb.cr0, vm.vmcb.cr3, vm.vmcb.cr4) = (0x8001_0011, 0x1_0000, 1 << 5);
    (vm.vmcb.efer, vm.vmcb.long_mode) = (0xD00, true);
    assert_eq!(call(&mut vm, hello, [0x40_0000, 64, 0, 0, 0]), 19);
    assert_eq!(&vm.ram[0x8000..0x8013], toy_vmm_handlers::HELLO);
    assert_eq!(
        call(&mut vm, hello, [0x40_1000, 64, 0, 0, 0]),
        Error::Fault.to_rax(),
        "not mapped"
    );
}

#[test]
fn a_flood_of_prints_stays_within_the_budget() {
    let mut vm = vm();
    let print = lookup(&mut vm, "print");
    vm.ram[0x6000] = b'x';
    for _ in 0..10 {
        assert_eq!(call(&mut vm, print, [0x6000, 1, 0, 0, 0]), 0);
    }
    let (lines, suppressed) = toy_vmm::console();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines[4].contains("counted"), "{lines:?}");
    assert_eq!(suppressed, 6);
}

#[test]
fn exit_stops_the_guest_with_its_status() {
    let mut vm = vm();
    let exit = lookup(&mut vm, "exit");
    vm.vmcb.rax = exit;
    vm.regs().set_gpr(Gpr::Rbx, 7);
    assert_eq!(vm.step(Insn::Vmmcall), After::Exit(7));
    assert_eq!(vm.step(Insn::Hlt), After::Halt);
}

#[test]
fn two_vms_that_share_nothing_get_their_own_answers_from_one_handler() {
    let (a, b) = (
        VmState::new(1, None).expect("registry"),
        VmState::new(2, None).expect("registry"),
    );
    let mut vcpus = [
        Vm::vcpu_of(&a, 0, 0x10_0000),
        Vm::vcpu_of(&a, 1, 0x10_0000),
        Vm::vcpu_of(&b, 0, 0x10_0000),
    ];
    let whoami = lookup(&mut vcpus[0], "whoami");
    let mut answers = Vec::new();
    for round in 0..2 {
        for vm in &mut vcpus {
            answers.push(call(vm, whoami, [round; 5]));
        }
    }
    // VM id in the upper half, the calling vCPU's id in the lower.
    assert_eq!(answers, [1 << 32, 1 << 32 | 1, 2 << 32].repeat(2));
    assert_eq!(a.whoami_calls.load(std::sync::atomic::Ordering::Relaxed), 4);
    assert_eq!(b.whoami_calls.load(std::sync::atomic::Ordering::Relaxed), 2);
    let stats: Vec<VcpuStats> = vcpus.iter().map(|v| v.stats).collect();
    assert_eq!(stats, [VcpuStats { whoami_calls: 2 }; 3]);
    // Each VM's registry counts its own calls.
    let n = a.registry().lookup(b"whoami").unwrap().get();
    assert_eq!((a.registry().calls(n), b.registry().calls(n)), (4, 2));
}

#[test]
fn a_vm_sees_only_the_hypercalls_its_allow_list_names() {
    let vm = VmState::new(3, Some(&["exit", "plugin_add", "whoami"])).expect("all registered");
    let mut cpu = Vm::vcpu_of(&vm, 0, 0x10_0000);
    // Numbered among themselves; the others are not there at all.
    for (n, name) in (1..).zip(["exit", "plugin_add", "whoami"]) {
        assert_eq!(lookup(&mut cpu, name), n, "{name}");
    }
    for denied in ["plugin_hello", "plugin_secret", "print"] {
        assert_eq!(lookup(&mut cpu, denied), 0, "{denied}");
    }
    assert_eq!(call(&mut cpu, 2, [20, 22, 0, 0, 0]), 42);
    assert_eq!(call(&mut cpu, 3, [0; 5]), 3 << 32);
    assert_eq!(call(&mut cpu, 4, [0; 5]), Error::NoSys.to_rax());
    assert_eq!(
        call(&mut cpu, toy_vmm::hypercall::abi::DESCRIBE, [0; 5]),
        3,
        "vmmcall_describe counts what the VM may call"
    );
    // A policy naming a hypercall the VMM does not have is refused.
    assert!(VmState::new(4, Some(&["plugin_add", "plugn_hello"])).is_err());
}

#[test]
fn vcpus_of_two_vms_call_at_once_and_every_count_is_exact() {
    let vms = [
        VmState::new(1, None).expect("registry"),
        VmState::new(2, Some(&["whoami"])).expect("registered"),
    ];
    const CALLS: u64 = 2_000;
    // Two vCPUs per VM, each on a thread of its own.
    let cpus: Vec<Vm> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let vm = &vms[i % 2];
                s.spawn(move || {
                    let mut cpu = Vm::vcpu_of(vm, (i / 2) as u32, 0x10_0000);
                    let whoami = lookup(&mut cpu, "whoami");
                    for _ in 0..CALLS {
                        let want = u64::from(vm.id) << 32 | (i / 2) as u64;
                        assert_eq!(call(&mut cpu, whoami, [0; 5]), want);
                    }
                    cpu
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for cpu in &cpus {
        assert_eq!(cpu.stats.whoami_calls, CALLS);
    }
    for vm in &vms {
        let n = vm.registry().lookup(b"whoami").unwrap().get();
        assert_eq!(vm.registry().calls(n), 2 * CALLS, "VM {}", vm.id);
        assert_eq!(
            vm.whoami_calls.load(std::sync::atomic::Ordering::Relaxed),
            2 * CALLS
        );
    }
}
