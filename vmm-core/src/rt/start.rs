//! From boot to guest: find memory, load the guest, pick the backend, run.

use super::smp;
use crate::bootinfo::{self, BootInfo, PhysReader, Region};
use crate::cpu::{self, Vendor};
use crate::guest::{self, GuestStart};
use crate::linux;
use crate::physmem::PhysAlloc;
use crate::smp::VcpuEntry;
use crate::stop::Stop;
use crate::vcpu::GuestRam;
use vmm_shared::{markers, ports};
use vmmcall::GuestRegs;

/// Guest RAM of a bare-metal guest. Small on purpose: the example guests
/// need little, and Bochs must zero it at boot.
pub const GUEST_RAM: u64 = 32 << 20;

/// Guest RAM of a Linux guest when its bundle names no size.
pub const LINUX_GUEST_RAM: u64 = 256 << 20;

/// Physical memory as the boot stub mapped it (identity, first 4 GiB).
struct Identity;

impl PhysReader for Identity {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Option<()> {
        let end = addr.checked_add(buf.len() as u64)?;
        if end > (1 << 32) {
            return None;
        }
        // SAFETY: the boot stub identity-maps [0, 4 GiB) and the range is
        // below 4 GiB; the loader's structures are plain memory.
        unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
        Some(())
    }
}

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

fn boot_info(protocol: u32, info: u64) -> Result<BootInfo, bootinfo::BootInfoError> {
    match protocol {
        1 => bootinfo::parse_pvh(&Identity, info),
        2 => bootinfo::parse_multiboot2(&Identity, info),
        _ => Err(bootinfo::BootInfoError::UnknownProtocol),
    }
}

/// The VMM's main: returns whether the guest finished with status 0.
pub fn main(protocol: u32, info: u64) -> bool {
    crate::say!("vmm: vmm-core {} starting", env!("CARGO_PKG_VERSION"));
    let boot = match boot_info(protocol, info) {
        Ok(b) => b,
        Err(e) => {
            crate::say!("vmm: cannot use the boot information: {e}");
            return false;
        }
    };
    SECRET.call_once(|| boot.verdict);
    log::info!(
        "booted via {:?}; {} usable RAM regions",
        boot.protocol,
        boot.ram().len()
    );
    let Some(module) = boot.module else {
        crate::say!(
            "vmm: no guest image: pass it as the first boot module (QEMU -initrd, GRUB module2)"
        );
        return false;
    };
    // Linker-script symbols: only their addresses are used.
    let (img_start, img_end) = {
        (
            core::ptr::addr_of!(__image_start) as u64,
            core::ptr::addr_of!(__image_end) as u64,
        )
    };
    let reserved = [
        Region {
            start: 0,
            len: 1 << 20,
        },
        Region {
            start: img_start,
            len: img_end.saturating_sub(img_start),
        },
        module,
    ];
    let mut alloc = PhysAlloc::new(boot.ram(), &reserved);
    // The boot stub identity-maps the first 4 GiB only.
    let Some(module_len) = usize::try_from(module.len).ok().filter(|_| {
        module
            .start
            .checked_add(module.len)
            .is_some_and(|end| end <= 1 << 32)
    }) else {
        crate::say!(
            "vmm: the guest module at {:#x} (+{:#x}) is not below 4 GiB",
            module.start,
            module.len
        );
        return false;
    };
    let image: &[u8] = if module_len == 0 {
        &[]
    } else {
        // SAFETY: the module lies in RAM the loader gave us, below 4 GiB
        // (checked just above; identity-mapped by the boot stub), and was
        // reserved from the allocator, so nothing else writes it.
        unsafe { core::slice::from_raw_parts(module.start as *const u8, module_len) }
    };
    let bundle = if linux::Bundle::is_bundle(image) {
        match linux::Bundle::parse(image) {
            Ok(b) => Some(b),
            Err(e) => {
                crate::say!("vmm: cannot use the Linux bundle: {e}");
                return false;
            }
        }
    } else {
        None
    };
    let ram_size = match bundle {
        Some(b) if b.ram != 0 => b.ram,
        Some(_) => LINUX_GUEST_RAM,
        None => GUEST_RAM,
    };
    if ram_size > guest::MAX_RAM || ram_size % (2 << 20) != 0 {
        crate::say!(
            "vmm: guest RAM of {} MiB is not supported (a multiple of 2 MiB, at most {} MiB)",
            ram_size >> 20,
            guest::MAX_RAM >> 20
        );
        return false;
    }
    let Some(ram_base) = alloc.alloc(ram_size, 2 << 20, 1 << 32) else {
        crate::say!(
            "vmm: not enough RAM for {} MiB of guest RAM ({} MiB free below 4 GiB)",
            ram_size >> 20,
            alloc.free_bytes() >> 20
        );
        return false;
    };
    let ram = GuestRam {
        host_base: ram_base,
        size: ram_size,
    };
    // SAFETY: [ram_base, ram_base + ram_size) was just allocated (below
    // 4 GiB, identity-mapped), is owned by this guest alone and does not
    // overlap the module.
    let ram_bytes =
        unsafe { core::slice::from_raw_parts_mut(ram_base as *mut u8, ram_size as usize) };
    let loaded = match bundle {
        Some(b) => linux::prepare(ram_bytes, &b).map_err(|e| {
            crate::say!("vmm: cannot load the Linux guest: {e}");
        }),
        None => guest::prepare(ram_bytes, image).map_err(|e| {
            crate::say!("vmm: cannot load the guest: {e}");
        }),
    };
    let Ok(start) = loaded else {
        return false;
    };
    log::info!(
        "guest: {:?}, {} MiB RAM at host {:#x}, entry {:#x}, module {} bytes",
        start.profile,
        ram_size >> 20,
        ram_base,
        start.rip,
        module.len
    );
    match vmmcall::Registry::global() {
        Ok(r) => log::info!("{} hypercalls registered", r.len()),
        Err(e) => {
            crate::say!("vmm: broken hypercall registry: {e}");
            return false;
        }
    }
    // The CPUs, read before anything is written below 1 MiB (the AP
    // trampoline); without a usable MADT the boot CPU runs alone.
    let found = crate::acpi::cpus(&Identity).unwrap_or_else(|e| {
        log::info!("{e}: running on the boot CPU alone");
        crate::acpi::Cpus::none()
    });
    let cpus = match smp::init(&mut alloc, found) {
        Ok(c) => c,
        Err(e) => {
            crate::say!("vmm: cannot set up the CPUs: {e}");
            return false;
        }
    };
    if bundle.is_some() && cpus.count > 1 {
        // A Linux guest on several vCPUs finds them in ACPI tables
        // (crate::acpi::guest_tables, crate::lapic).
        if let Err(e) = linux::describe_cpus(ram_bytes, cpus.ids()) {
            crate::say!("vmm: cannot describe the CPUs to Linux: {e}");
            return false;
        }
    }
    if cpus.ignored != 0 {
        log::info!(
            "{} more CPUs than the VMM uses ({}) stay in wait-for-SIPI",
            cpus.ignored,
            crate::smp::MAX_CPUS
        );
    }
    let vm = match cpu::vendor() {
        Some(Vendor::Amd) => crate::svm::prepare(ram, &start, &mut alloc).map(Vm::Svm),
        Some(Vendor::Intel) => crate::vmx::prepare(ram, &start, &mut alloc).map(Vm::Vmx),
        None => {
            crate::say!("vmm: unknown CPU vendor: neither SVM nor VMX");
            return false;
        }
    };
    let vm = match vm {
        Ok(vm) => vm,
        Err(stop) => finish(0, Err(stop)),
    };
    SHARED.call_once(|| Shared {
        vm,
        start,
        alloc: spin::Mutex::new(alloc),
    });
    if let Err(e) = smp::start_aps(&cpus) {
        crate::say!("vmm: cannot start the other CPUs: {e}");
        return false;
    }
    if cpus.count > 1 {
        log::info!(
            "{} vCPUs, one per CPU (APIC IDs {:?})",
            cpus.count,
            cpus.ids()
        );
    }
    let result = run_cpu(0, None);
    finish(0, result)
}

/// What every CPU needs to run its vCPU, set once by the boot CPU before
/// any AP starts.
struct Shared {
    vm: Vm,
    start: GuestStart,
    alloc: spin::Mutex<PhysAlloc>,
}

/// The run's verdict secret, kept from the boot information.
static SECRET: spin::Once<Option<bootinfo::VerdictSecret>> = spin::Once::new();

/// The guest's vendor half.
enum Vm {
    Svm(crate::svm::SvmVm),
    Vmx(crate::vmx::VmxVm),
}

static SHARED: spin::Once<Shared> = spin::Once::new();

/// Run vCPU `i` on this CPU: vCPU 0 as the guest image starts, the others
/// where `vmm_vcpu_up` said (RDI = its argument, RSI = the vCPU id).
fn run_cpu(i: usize, entry: Option<VcpuEntry>) -> Result<u32, Stop> {
    let Some(shared) = SHARED.get() else {
        return Err(Stop::NoCpu);
    };
    let mut start = shared.start;
    let mut regs = GuestRegs {
        rsi: start.rsi,
        ..GuestRegs::default()
    };
    if let Some(e) = entry {
        start.rip = e.rip;
        start.rsp = e.rsp;
        start.real_segment = e.real_segment;
        regs.rdi = e.arg;
        regs.rsi = if e.real_segment.is_some() {
            0
        } else {
            i as u64
        };
    }
    match &shared.vm {
        Vm::Svm(vm) => crate::svm::run_vcpu(vm, &start, regs, &shared.alloc, i),
        Vm::Vmx(vm) => crate::vmx::run_vcpu(vm, &start, regs, &shared.alloc, i),
    }
}

/// An AP, set up (`rt::smp`): wait until the guest starts this CPU's vCPU
/// or the run ends.
pub fn ap_main(i: usize) -> ! {
    let Some(slot) = smp::MACHINE.slot(i) else {
        crate::halt_forever()
    };
    smp::MACHINE.ready(i);
    loop {
        let seen = slot.wakes();
        if smp::MACHINE.ending() {
            smp::MACHINE.park(i);
            crate::halt_forever();
        }
        if let Some(entry) = smp::MACHINE.take_start(i) {
            let result = run_cpu(i, Some(entry));
            finish(i, result);
        }
        smp::wait_for_signal(slot, seen);
    }
}

/// Re-send the signal to a CPU that has not parked after this many spins
/// (an NMI can land on VMX just before a VM entry, after the last check).
const RESIGNAL_SPINS: u32 = 1_000_000;
/// Give up waiting after this many signals per CPU.
const MAX_SIGNALS: u32 = 64;

/// vCPU `i` is done with `result`. The first vCPU to finish ends the run:
/// it takes every other vCPU out of the guest, waits until each has
/// parked, prints the verdict and stops the machine. The others park.
fn finish(i: usize, result: Result<u32, Stop>) -> ! {
    let machine = &smp::MACHINE;
    if !machine.end() {
        machine.park(i);
        crate::halt_forever();
    }
    let mut stuck = None;
    for _ in 0..MAX_SIGNALS {
        for (_, slot) in machine.not_parked(i) {
            smp::signal(slot);
        }
        for _ in 0..RESIGNAL_SPINS {
            if machine.parked(i) {
                break;
            }
            core::hint::spin_loop();
        }
        stuck = machine.not_parked(i).map(|(j, _)| j).next();
        if stuck.is_none() {
            break;
        }
    }
    let ok = verdict(i, result, stuck);
    crate::exit_machine(ok)
}

/// Print the verdict of the run that vCPU `i` ended with `result`, every
/// other vCPU parked (or `stuck` names one that did not leave the guest).
fn verdict(i: usize, result: Result<u32, Stop>, stuck: Option<usize>) -> bool {
    // The guest shares COM1 and may have reprogrammed it (baud rate, DLAB,
    // loopback): set it up again so that the verdict is readable. Let the
    // guest's last bytes leave first: the set-up clears the FIFOs (Bochs
    // dropped the newline of a guest's last line there).
    baremetal::Com1::flush();
    crate::console::init();
    let (prints, logs) = (
        crate::console::suppressed_prints(),
        crate::console::suppressed(),
    );
    if prints != 0 || logs != 0 {
        crate::say!(
            "vmm: output budgets kept {prints} handler lines and {logs} log lines off the console"
        );
    }
    let vcpus = smp::MACHINE.vcpus();
    if vcpus > 1 {
        crate::say!(
            "vmm: vCPU {i} ended the run; {} vCPUs, {} exits, {} of them local APIC writes",
            vcpus,
            smp::MACHINE.exits(),
            smp::MACHINE.apic_writes()
        );
    }
    if let Some(j) = stuck {
        crate::say!("vmm: vCPU {j} did not leave the guest after {MAX_SIGNALS} signals");
    }
    // The verdict carries the run's secret (bootinfo::VerdictSecret): the
    // guest shares the console, but cannot know the secret, so only this
    // line can carry it.
    let secret = SECRET.get().copied().flatten();
    let tag = VerdictTag(secret);
    let ok = match result {
        Ok(status) => {
            crate::say!("{}{status}{tag}", markers::EXIT);
            status == 0 && stuck.is_none()
        }
        Err(stop) => {
            crate::say!("{}{stop}{tag}", markers::STOP);
            false
        }
    };
    bochs_verdict(ok, secret);
    ok
}

/// ` [verdict SECRET]` after the verdict, or nothing without a secret.
struct VerdictTag(Option<bootinfo::VerdictSecret>);

impl core::fmt::Display for VerdictTag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.0 {
            Some(s) => write!(f, " {}{}]", markers::TAG, s.as_str()),
            None => Ok(()),
        }
    }
}

/// Tell Bochs's log how the run ended, `vmm: verdict pass SECRET` or
/// `vmm: verdict fail SECRET`, before the Shutdown port stops it: Bochs's
/// exit is the same for both, so this is what tells them apart. The BIOS
/// info port ([`ports::BOCHS_INFO`]) is decoded by nothing on QEMU's PC
/// machine, and a guest never reaches it (no guest profile passes it
/// through, `crate::intercept`).
fn bochs_verdict(ok: bool, secret: Option<bootinfo::VerdictSecret>) {
    let word: &[u8] = if ok { b"pass" } else { b"fail" };
    let secret = secret.as_ref().map_or("", |s| s.as_str());
    for part in [
        markers::BOCHS_VERDICT.as_bytes(),
        word,
        b" ",
        secret.as_bytes(),
        b"\n",
    ] {
        for &b in part {
            // SAFETY: a write to the Bochs BIOS info port, which only logs
            // the byte; elsewhere the port is unused and the write goes
            // nowhere.
            unsafe { baremetal::outb(ports::BOCHS_INFO, b) };
        }
    }
}

// `exit(status)`: the guest is done; the VMM stops the machine and
// reports `status` (0 = success). Callable from any privilege level.
// vmmcall's built-in, which the run loop sees as `Outcome::stop`.
vmmcall::exit_hypercall!();
