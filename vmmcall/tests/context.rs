//! The calling vCPU and its VMM (issue 21): the vCPU id and the VMM's state
//! reach handlers through `InVm`; per-VM registries (the allow-list) and
//! what a VM sees of a handler it may not call; call counts sharded per
//! vCPU, exact under threads.

use std::sync::atomic::{AtomicU64, Ordering};
use vmmcall::abi::{DESCRIBE, DESCRIBE_USER, LOOKUP_TYPED};
use vmmcall::mock::MockVcpu;
use vmmcall::{
    dispatch, vmmcall, Caller, Error, Handler, InVm, Registry, RegistryError, COUNTER_SHARDS,
};

/// The VMM's state for one VM.
struct VmState {
    id: u64,
    calls: AtomicU64,
}

/// The VMM's state for one vCPU.
#[derive(Default)]
struct VcpuState {
    calls: u64,
}

/// `whoami()`: the VM's id in the upper half, the vCPU id in the lower;
/// counts in the VM's and the vCPU's state.
#[vmmcall("whoami", user)]
fn whoami(cx: &mut Caller) -> Result<u64, Error> {
    let vcpu = cx.vcpu_id();
    cx.vcpu_state::<VcpuState>().ok_or(Error::Io)?.calls += 1;
    let vm = cx.vm::<VmState>().ok_or(Error::Io)?;
    vm.calls.fetch_add(1, Ordering::Relaxed);
    Ok(vm.id << 32 | u64::from(vcpu))
}

/// `vcpu_id()`: the calling vCPU's id, nothing else.
#[vmmcall("vcpu_id", user)]
fn vcpu_id(cx: &mut Caller) -> u32 {
    cx.vcpu_id()
}

/// Kernel-only, for the policy tests.
#[vmmcall("secret")]
fn secret() -> u32 {
    42
}

#[vmmcall("nop", user)]
fn nop() {}

fn global() -> &'static Registry<'static> {
    Registry::global().expect("registry builds")
}

/// Run function `number` with `args` on `vcpu` through `registry`.
fn call_on(
    registry: &Registry<'static>,
    vcpu: &mut impl vmmcall::Vcpu,
    number: u64,
    args: [u64; 3],
) -> u64 {
    vcpu.set_rax(number);
    for (reg, v) in vmmcall::Gpr::ARGS.into_iter().zip(args) {
        vcpu.set_gpr(reg, v);
    }
    dispatch(registry, vcpu);
    vcpu.rax()
}

fn n(registry: &Registry<'_>, name: &str) -> u64 {
    registry.lookup(name.as_bytes()).map_or(0, |n| n.get())
}

#[test]
fn two_vms_see_their_own_state_and_vcpu_ids_reach_the_handler() {
    let (a, b) = (
        VmState {
            id: 1,
            calls: AtomicU64::new(0),
        },
        VmState {
            id: 2,
            calls: AtomicU64::new(0),
        },
    );
    let mut cpus = [VcpuState::default(), VcpuState::default()];
    let who = n(global(), "whoami");
    let mut raw = MockVcpu::new();
    for (vm, id, want) in [(&a, 0, 1 << 32), (&b, 1, 2 << 32 | 1), (&a, 5, 1 << 32 | 5)] {
        let mut v = InVm::new(&mut raw, id)
            .with_vm(vm)
            .with_vcpu_state(&mut cpus[(id % 2) as usize]);
        assert_eq!(call_on(global(), &mut v, who, [0; 3]), want);
    }
    assert_eq!(a.calls.load(Ordering::Relaxed), 2);
    assert_eq!(b.calls.load(Ordering::Relaxed), 1);
    assert_eq!([cpus[0].calls, cpus[1].calls], [1, 2]);
    // Without the VMM's state (a plain vCPU), the handler says so itself;
    // the vCPU id is 0.
    assert_eq!(
        call_on(global(), &mut MockVcpu::new(), who, [0; 3]),
        Error::Io.to_rax()
    );
    assert_eq!(
        call_on(
            global(),
            &mut MockVcpu::new(),
            n(global(), "vcpu_id"),
            [0; 3]
        ),
        0
    );
    // State of another type is not handed out as this one.
    let wrong = 7u32;
    let mut v = InVm::new(MockVcpu::new(), 3)
        .with_vm(&wrong)
        .with_vcpu_state(&mut cpus[0]);
    assert_eq!(call_on(global(), &mut v, who, [0; 3]), Error::Io.to_rax());
}

/// Put `name` NUL-terminated at 0x1000 and ask `function` (0 or
/// LOOKUP_TYPED with `signature`) for its number.
fn lookup_by_guest(
    registry: &Registry<'static>,
    v: &mut MockVcpu,
    name: &str,
    function: u64,
) -> u64 {
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0);
    v.map(0x1000, true, true).poke(0x1000, &bytes);
    call_on(registry, v, function, [0x1000, 0, 0])
}

#[test]
fn an_allow_list_makes_other_handlers_invisible() {
    let vm = global()
        .allow_only(&["nop", "whoami"])
        .expect("both are registered");
    assert_eq!(vm.len(), 2);
    let mut v = MockVcpu::new();
    // Function 0 and the typed lookup: 0 for a denied name, as for a name
    // no handler has.
    assert_eq!(lookup_by_guest(&vm, &mut v, "secret", 0), 0);
    assert_eq!(lookup_by_guest(&vm, &mut v, "vcpu_id", 0), 0);
    assert_eq!(lookup_by_guest(&vm, &mut v, "vcpu_id", LOOKUP_TYPED), 0);
    let nop = lookup_by_guest(&vm, &mut v, "nop", 0);
    assert_eq!(nop, 1, "numbered among the allowed handlers");
    assert_eq!(lookup_by_guest(&vm, &mut v, "whoami", 0), 2);
    // vmmcall_describe counts the allowed handlers only, and a number past
    // them answers -ENOSYS, like any number no handler has.
    assert_eq!(call_on(&vm, &mut v, DESCRIBE, [0, 0, 0]), 2);
    assert_eq!(call_on(&vm, &mut v, DESCRIBE, [1, 0, 0]), 3 | DESCRIBE_USER);
    assert_eq!(
        call_on(&vm, &mut v, DESCRIBE, [3, 0, 0]),
        Error::NoSys.to_rax()
    );
    // Numbers are the VM's own: the global number of a denied handler is
    // another handler's here, or nothing (-ENOSYS).
    let (secret, vcpu_id) = (n(global(), "secret"), n(global(), "vcpu_id"));
    assert_eq!((secret, vcpu_id), (2, 3), "nop, secret, vcpu_id, whoami");
    assert_eq!(call_on(&vm, &mut v, vcpu_id, [0; 3]), Error::NoSys.to_rax());
    assert_eq!(
        call_on(&vm, &mut v, secret, [0; 3]),
        Error::Io.to_rax(),
        "whoami here"
    );
    // The unrestricted registry still answers for them.
    assert_eq!(call_on(global(), &mut v, secret, [0; 3]), 42);
    // The allowed ones run.
    assert_eq!(call_on(&vm, &mut v, nop, [0; 3]), 0);
}

#[test]
fn an_allow_list_with_an_unknown_name_is_refused() {
    assert_eq!(
        global().allow_only(&["nop", "no_such_call"]).err(),
        Some(RegistryError::Unknown("no_such_call"))
    );
    // An empty allow-list is a VM that may call no handler: the built-in
    // functions still answer.
    let none = global().restricted(|_| false).expect("empty registry");
    let mut v = MockVcpu::new();
    assert_eq!(call_on(&none, &mut v, DESCRIBE, [0; 3]), 0);
    assert_eq!(lookup_by_guest(&none, &mut v, "nop", 0), 0);
    assert_eq!(call_on(&none, &mut v, 1, [0; 3]), Error::NoSys.to_rax());
}

#[test]
fn a_kernel_only_handler_in_an_allow_list_keeps_its_cpl_rule() {
    let vm = global().allow_only(&["secret"]).expect("registered");
    let mut v = MockVcpu::new();
    assert_eq!(call_on(&vm, &mut v, 1, [0; 3]), 42);
    v.cpl = 3;
    assert_eq!(call_on(&vm, &mut v, 1, [0; 3]), Error::Permission.to_rax());
    assert_eq!(
        call_on(&vm, &mut v, DESCRIBE, [1, 0, 0]),
        Error::Permission.to_rax()
    );
    assert_eq!(vm.calls(1), 2, "the refused call counts, in this VM");
}

/// A handler for the hand-made registries below (never called).
fn never(_: &mut Caller<'_>) -> Result<u64, Error> {
    Ok(0)
}

#[test]
fn counts_are_per_registry_and_exact_under_threads() {
    // A registry of its own, so that other tests' calls do not count.
    let handlers: &'static [Handler] = Box::leak(Box::new([
        Handler::new("a", true, never),
        Handler::new("b", true, never),
        Handler::new("c", false, never),
    ]));
    let registry = Registry::new(handlers).expect("valid");
    const THREADS: u32 = 8;
    const CALLS: u64 = 5_000;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let registry = &registry;
            s.spawn(move || {
                let mut raw = MockVcpu::new();
                // vCPU ids 0..8 and 32..40: two threads share each shard.
                let id = if t % 2 == 0 {
                    t
                } else {
                    t + COUNTER_SHARDS as u32
                };
                let mut v = InVm::new(&mut raw, id);
                for i in 0..CALLS {
                    // a, b, a, b, ...; c from CPL 3 is refused but counted.
                    let number = 1 + i % 2;
                    call_on(registry, &mut v, number, [0; 3]);
                }
                v.into_inner().cpl = 3;
                for _ in 0..3 {
                    call_on(registry, &mut InVm::new(&mut raw, id), 3, [0; 3]);
                }
            });
        }
    });
    let per = u64::from(THREADS) * CALLS / 2;
    assert_eq!(
        [registry.calls(1), registry.calls(2), registry.calls(3)],
        [per, per, u64::from(THREADS) * 3]
    );
    assert_eq!(registry.calls(0), 0);
    assert_eq!(registry.calls(4), 0);
    // A VM's registry counts its own calls only.
    let vm = registry.allow_only(&["a"]).expect("registered");
    call_on(&vm, &mut MockVcpu::new(), 1, [0; 3]);
    assert_eq!((vm.calls(1), registry.calls(1)), (1, per));
}
