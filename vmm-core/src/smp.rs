//! One vCPU per CPU: how the CPUs of the machine share one guest.
//!
//! The boot CPU runs vCPU 0. Every other CPU the firmware's MADT lists
//! ([`crate::acpi`], at most [`MAX_CPUS`]) is started by the VMM at boot
//! (INIT-SIPI-SIPI, in `rt::smp`), sets up its own host state and its own
//! VMCS or VMCB, and **waits** in the VMM for the guest to start its vCPU
//! with the `vmm_vcpu_up` hypercall (docs/ABI.md, "Several vCPUs"). The
//! guest's own INIT and SIPI never reach a CPU: the guest has no local APIC
//! (CPUID hides it, and its page is not mapped).
//!
//! [`Machine`] is the state they share, one [`Slot`] per CPU, each on
//! cache lines of its own: nothing on a vCPU's per-exit path writes a line
//! another CPU reads (only [`Machine::ending`] is read by all, and written
//! once).
//!
//! **How the run ends.** The first vCPU whose guest exits, stops or faults
//! wins [`Machine::end`]; it signals every other CPU (an NMI, which forces
//! a VM exit on both vendors: VMX "NMI exiting", SVM's NMI intercept),
//! waits until each has left the guest and parked ([`Machine::parked`]),
//! and only then prints the verdict. A CPU checks [`Machine::ending`]
//! before every VM entry, so none enters the guest after the verdict.
//!
//! Portable (atomics only): the host tests run the protocol on threads.

use crate::idt::NmiLatch;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

pub use crate::acpi::MAX_CPUS;

/// Where a CPU's vCPU is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum VcpuState {
    /// No CPU behind this slot (yet).
    Offline = 0,
    /// The CPU is ready; the guest has not started this vCPU.
    Waiting = 1,
    /// A `vmm_vcpu_up` call is writing the start parameters.
    Claimed = 2,
    /// Start parameters posted, the CPU has not taken them yet.
    Starting = 3,
    /// The vCPU runs the guest (or the VMM on its behalf).
    Running = 4,
    /// The CPU stopped for good (the machine is ending).
    Parked = 5,
}

impl VcpuState {
    fn from_u8(v: u8) -> VcpuState {
        match v {
            1 => VcpuState::Waiting,
            2 => VcpuState::Claimed,
            3 => VcpuState::Starting,
            4 => VcpuState::Running,
            5 => VcpuState::Parked,
            _ => VcpuState::Offline,
        }
    }
}

/// Where a started vCPU begins (docs/ABI.md, `vmm_vcpu_up`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuEntry {
    /// RIP.
    pub rip: u64,
    /// RSP.
    pub rsp: u64,
    /// RDI, for the guest's own use.
    pub arg: u64,
    /// `Some(segment)`: real mode at `segment:0` instead (a Linux AP's
    /// STARTUP IPI, crate::lapic); `rip`, `rsp`, `arg` are then 0.
    pub real_segment: Option<u16>,
}

/// Why `vmm_vcpu_up` refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpError {
    /// No such vCPU (`id` >= the vCPU count), or a non-canonical RIP/RSP.
    Invalid,
    /// The vCPU already runs (vCPU 0 always does), or another call is
    /// starting it.
    Busy,
}

/// One CPU's shared state: 128 bytes, two cache lines of its own (the
/// adjacent-line prefetcher pairs lines).
#[repr(C, align(128))]
pub struct Slot {
    state: AtomicU8,
    /// The local APIC ID of the CPU behind this slot.
    apic_id: AtomicU32,
    rip: AtomicU64,
    rsp: AtomicU64,
    arg: AtomicU64,
    /// The real-mode segment plus one, or 0 (VcpuEntry::real_segment).
    real: AtomicU32,
    /// NMIs the VMM sent to this CPU (kicks and wake-ups) not yet seen:
    /// an NMI that finds this above 0 is the VMM's and is not forwarded
    /// to the guest ([`Slot::nmi_arrived`]).
    signals: AtomicU32,
    /// An NMI for the guest ([`NmiLatch`]).
    pub nmi: NmiLatch,
    /// NMIs that reached this CPU: what a waiting CPU watches.
    wakes: AtomicU32,
    /// VM exits this CPU handled.
    exits: AtomicU64,
    /// Of those, guest writes to the local APIC (crate::lapic).
    apic_writes: AtomicU64,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            state: AtomicU8::new(VcpuState::Offline as u8),
            apic_id: AtomicU32::new(0),
            rip: AtomicU64::new(0),
            rsp: AtomicU64::new(0),
            arg: AtomicU64::new(0),
            real: AtomicU32::new(0),
            signals: AtomicU32::new(0),
            nmi: NmiLatch::new(),
            wakes: AtomicU32::new(0),
            exits: AtomicU64::new(0),
            apic_writes: AtomicU64::new(0),
        }
    }

    /// The vCPU's state.
    pub fn state(&self) -> VcpuState {
        VcpuState::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// The CPU's local APIC ID.
    pub fn apic_id(&self) -> u32 {
        self.apic_id.load(Ordering::Relaxed)
    }

    /// Count a VMM signal about to be sent to this CPU as an NMI.
    pub fn signal(&self) {
        self.signals.fetch_add(1, Ordering::SeqCst);
    }

    /// An NMI reached this CPU (the host NMI handler, or a VM exit for an
    /// NMI): the VMM's own signal if one is outstanding, else one for the
    /// guest, latched. Two NMIs sent while one is pending arrive as one
    /// (the CPU holds at most one NMI pending, SDM Vol. 3A §6.7.1): a signal
    /// can then stay outstanding and hide the next real NMI from the guest.
    /// Only the VMM sends NMIs on the emulated machines; real hardware's
    /// are watchdogs and errors, which the VMM does not rely on.
    pub fn nmi_arrived(&self) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        let mine = self
            .signals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| s.checked_sub(1))
            .is_ok();
        if !mine {
            self.nmi.raise();
        }
    }

    /// How many NMIs reached this CPU: read it before checking what to
    /// wait for, then wait only while it has not moved.
    pub fn wakes(&self) -> u32 {
        self.wakes.load(Ordering::SeqCst)
    }

    /// The wake count's address, for the compare-and-halt (`rt::smp`).
    pub fn wakes_ptr(&self) -> *const u32 {
        self.wakes.as_ptr()
    }

    /// Count one emulated local APIC write (this CPU's line only).
    pub fn count_apic_write(&self) {
        let n = self.apic_writes.load(Ordering::Relaxed);
        self.apic_writes.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    /// Count one VM exit (this CPU's line only).
    #[inline(always)]
    pub fn count_exit(&self) {
        // A load and a store, not a locked add: only this CPU writes it.
        let n = self.exits.load(Ordering::Relaxed);
        self.exits.store(n.wrapping_add(1), Ordering::Relaxed);
    }
}

/// The machine: one slot per CPU and the end-of-run flag.
#[repr(C, align(128))]
pub struct Machine {
    ending: AtomicBool,
    cpus: AtomicUsize,
    /// Bit `i`: a guest LVT or IPI named a vector in `32 * i ..= 32 * i +
    /// 31`, so IRR word `i` of a local APIC may request it
    /// ([`Machine::note_vector`]).
    vectors: AtomicU8,
    slots: [Slot; MAX_CPUS],
}

impl Default for Machine {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `a` is a canonical 48-bit address.
const fn canonical(a: u64) -> bool {
    let top = (a as i64) >> 47;
    top == 0 || top == -1
}

impl Machine {
    /// No CPUs yet.
    pub const fn new() -> Machine {
        Machine {
            ending: AtomicBool::new(false),
            cpus: AtomicUsize::new(1),
            vectors: AtomicU8::new(0),
            slots: [const { Slot::new() }; MAX_CPUS],
        }
    }

    /// How many vCPUs the guest has: the CPUs the VMM found (set once at
    /// boot, before any AP starts), 1 ..= [`MAX_CPUS`].
    pub fn vcpus(&self) -> usize {
        self.cpus.load(Ordering::SeqCst)
    }

    /// Set the vCPU count and the APIC IDs (`ids[0]` is the boot CPU's,
    /// whose vCPU 0 is running).
    pub fn set_cpus(&self, ids: &[u32]) {
        let n = ids.len().clamp(1, MAX_CPUS);
        for (slot, &id) in self.slots.iter().zip(ids) {
            slot.apic_id.store(id, Ordering::Relaxed);
        }
        self.slots[0]
            .state
            .store(VcpuState::Running as u8, Ordering::SeqCst);
        self.cpus.store(n, Ordering::SeqCst);
    }

    /// A guest programmed `vector` into an LVT entry or sent it in a
    /// fixed IPI: some local APIC may hold it in its IRR from now on. The
    /// set only grows; a word already known costs a load, no store, so
    /// the vCPUs share the line read-only after the guest's first IPIs.
    pub fn note_vector(&self, vector: u8) {
        let bit = 1u8 << (vector >> 5);
        if self.vectors.load(Ordering::Relaxed) & bit == 0 {
            self.vectors.fetch_or(bit, Ordering::Relaxed);
        }
    }

    /// The IRR words a guest's interrupts can be in ([`Machine::note_vector`]):
    /// a local APIC's other words hold nothing the guest asked for. A
    /// guest has no other source of fixed interrupts: no I/O APIC, no
    /// device that sends MSIs (docs/VMM-CORE.md).
    pub fn vector_words(&self) -> u8 {
        self.vectors.load(Ordering::Relaxed)
    }

    /// The slot of vCPU `i`.
    pub fn slot(&self, i: usize) -> Option<&Slot> {
        self.slots.get(..self.vcpus()).and_then(|s| s.get(i))
    }

    /// CPU `i` is set up and waits for its vCPU to be started.
    pub fn ready(&self, i: usize) {
        if let Some(s) = self.slot(i) {
            let _ = s.state.compare_exchange(
                VcpuState::Offline as u8,
                VcpuState::Waiting as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }

    /// `vmm_vcpu_up(id, rip, rsp, arg)`: post the start of vCPU `id`. The
    /// caller then wakes the CPU (a signal NMI) if it returns `Ok`.
    pub fn vcpu_up(&self, id: usize, entry: VcpuEntry) -> Result<&Slot, UpError> {
        let slot = self.slot(id).ok_or(UpError::Invalid)?;
        if !canonical(entry.rip) || !canonical(entry.rsp) {
            return Err(UpError::Invalid);
        }
        // A CPU still setting up (Offline) is started as soon as it waits.
        let claimed = [VcpuState::Waiting, VcpuState::Offline]
            .into_iter()
            .any(|from| {
                slot.state
                    .compare_exchange(
                        from as u8,
                        VcpuState::Claimed as u8,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    )
                    .is_ok()
            });
        if !claimed {
            return Err(UpError::Busy);
        }
        slot.rip.store(entry.rip, Ordering::Relaxed);
        slot.rsp.store(entry.rsp, Ordering::Relaxed);
        slot.arg.store(entry.arg, Ordering::Relaxed);
        slot.real.store(
            entry.real_segment.map_or(0, |s| u32::from(s) + 1),
            Ordering::Relaxed,
        );
        slot.state
            .store(VcpuState::Starting as u8, Ordering::SeqCst);
        Ok(slot)
    }

    /// For CPU `i` in its wait loop: the posted start, if any (the vCPU is
    /// then running).
    pub fn take_start(&self, i: usize) -> Option<VcpuEntry> {
        let slot = self.slot(i)?;
        slot.state
            .compare_exchange(
                VcpuState::Starting as u8,
                VcpuState::Running as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .ok()?;
        Some(VcpuEntry {
            rip: slot.rip.load(Ordering::Relaxed),
            rsp: slot.rsp.load(Ordering::Relaxed),
            arg: slot.arg.load(Ordering::Relaxed),
            real_segment: slot
                .real
                .load(Ordering::Relaxed)
                .checked_sub(1)
                .and_then(|s| u16::try_from(s).ok()),
        })
    }

    /// The vCPU whose CPU has local APIC ID `apic_id`.
    pub fn by_apic_id(&self, apic_id: u32) -> Option<usize> {
        self.slots
            .iter()
            .take(self.vcpus())
            .position(|s| s.apic_id() == apic_id)
    }

    /// The run is ending: no CPU may enter the guest again.
    #[inline(always)]
    pub fn ending(&self) -> bool {
        self.ending.load(Ordering::SeqCst)
    }

    /// Claim the end of the run: `true` for the first caller, which
    /// signals the others and prints the verdict.
    pub fn end(&self) -> bool {
        !self.ending.swap(true, Ordering::SeqCst)
    }

    /// CPU `i` has left the guest for good.
    pub fn park(&self, i: usize) {
        if let Some(s) = self.slot(i) {
            s.state.store(VcpuState::Parked as u8, Ordering::SeqCst);
        }
    }

    /// The CPUs other than `me` that may still run guest code, with their
    /// slots: everyone not parked. Call after [`Machine::end`].
    pub fn not_parked(&self, me: usize) -> impl Iterator<Item = (usize, &Slot)> + '_ {
        self.slots
            .iter()
            .take(self.vcpus())
            .enumerate()
            .filter(move |&(i, s)| i != me && s.state() != VcpuState::Parked)
    }

    /// Whether every CPU but `me` has parked.
    pub fn parked(&self, me: usize) -> bool {
        self.not_parked(me).next().is_none()
    }

    /// Guest writes to the local APIC emulated on all CPUs.
    pub fn apic_writes(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.apic_writes.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    /// VM exits handled by all CPUs.
    pub fn exits(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.exits.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }
}

/// The layout of one CPU's area: [`AREA`](layout::AREA) bytes, eight of them in one
/// 2 MiB region that the VMM maps with 4 KiB pages, the guard pages not
/// present (`rt::smp`). Stacks grow down; each has a guard page below it,
/// so an overflow faults (`#PF`, then `#DF` on its own stack) instead of
/// writing into the next thing. The IST stacks are 16 KiB-aligned: their
/// lowest word holds the address of the CPU's [`Slot`], which the NMI
/// handler finds by rounding its stack pointer down.
pub mod layout {
    /// One CPU's area.
    pub const AREA: u64 = 0x4_0000;
    /// An IST stack's size and alignment.
    pub const IST_SIZE: u64 = 0x4000;
    /// The CPU's main stack (an AP's; the boot CPU keeps its boot stack):
    /// `[STACK, STACK_TOP)`.
    pub const STACK: u64 = 0x4000;
    /// Top of the main stack.
    pub const STACK_TOP: u64 = 0x2_0000;
    /// The NMI stack (IST2).
    pub const NMI_STACK: u64 = 0x2_4000;
    /// The machine-check stack (IST3).
    pub const MC_STACK: u64 = 0x2_C000;
    /// The double-fault stack (IST1).
    pub const DF_STACK: u64 = 0x3_4000;
    /// The CPU's GDT (one page).
    pub const GDT: u64 = 0x3_8000;
    /// The CPU's TSS.
    pub const TSS: u64 = 0x3_9000;
    /// The pages left not present: one below each stack.
    pub const GUARDS: [u64; 4] = [0x3000, 0x2_3000, 0x2_B000, 0x3_3000];
    /// Whether the page at `offset` is a guard (everything else in the
    /// area is mapped; the pages no stack or table uses stay unused).
    pub const fn is_guard(offset: u64) -> bool {
        let page = offset & !0xFFF;
        let mut i = 0;
        while i < GUARDS.len() {
            if GUARDS[i] == page {
                return true;
            }
            i += 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::sync::Arc;
    use std::vec::Vec;

    fn machine(n: usize) -> Machine {
        let m = Machine::new();
        let ids: Vec<u32> = (0..n as u32).collect();
        m.set_cpus(&ids);
        m
    }

    const E: VcpuEntry = VcpuEntry {
        rip: 0x20_0000,
        rsp: 0x30_0000,
        arg: 7,
        real_segment: None,
    };

    #[test]
    fn a_vcpu_starts_once_and_only_a_real_one() {
        let m = machine(3);
        assert_eq!(m.vcpus(), 3);
        assert_eq!(m.vcpu_up(0, E).err(), Some(UpError::Busy), "vCPU 0 runs");
        assert_eq!(m.vcpu_up(3, E).err(), Some(UpError::Invalid));
        assert_eq!(m.vcpu_up(usize::MAX, E).err(), Some(UpError::Invalid));
        let bad = VcpuEntry {
            rip: 0x8000_0000_0000,
            ..E
        };
        assert_eq!(m.vcpu_up(1, bad).err(), Some(UpError::Invalid));
        assert_eq!(m.take_start(1), None, "nothing posted");
        m.ready(1);
        assert!(m.vcpu_up(1, E).is_ok());
        assert_eq!(m.vcpu_up(1, E).err(), Some(UpError::Busy), "posted");
        assert_eq!(m.take_start(1), Some(E));
        assert_eq!(m.take_start(1), None, "taken once");
        assert_eq!(m.slot(1).unwrap().state(), VcpuState::Running);
        assert_eq!(m.vcpu_up(1, E).err(), Some(UpError::Busy), "running");
        // A CPU not yet waiting can be started: it takes it when ready;
        // a real-mode start (a Linux AP's STARTUP) keeps its segment.
        let real = VcpuEntry {
            rip: 0,
            rsp: 0,
            arg: 0,
            real_segment: Some(0x9900),
        };
        assert!(m.vcpu_up(2, real).is_ok());
        m.ready(2);
        assert_eq!(m.take_start(2), Some(real));
        assert_eq!(m.by_apic_id(2), Some(2));
        assert_eq!(m.by_apic_id(9), None);
    }

    #[test]
    fn racing_starters_start_a_vcpu_once() {
        let m = Arc::new(machine(2));
        m.ready(1);
        let ok: usize = (0..4)
            .map(|k| {
                let m = m.clone();
                std::thread::spawn(move || {
                    let e = VcpuEntry { arg: k, ..E };
                    usize::from(m.vcpu_up(1, e).is_ok())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(ok, 1);
        assert!(m.take_start(1).is_some());
    }

    #[test]
    fn one_winner_and_the_verdict_waits_for_every_cpu() {
        let m = Arc::new(machine(4));
        for i in 1..4 {
            m.ready(i);
        }
        assert!(m.vcpu_up(1, E).is_ok() && m.take_start(1).is_some());
        // CPUs 1..3 "run" until they see the end, then park.
        let threads: Vec<_> = (1..4)
            .map(|i| {
                let m = m.clone();
                std::thread::spawn(move || {
                    while !m.ending() {
                        std::hint::spin_loop();
                    }
                    m.park(i);
                    m.end()
                })
            })
            .collect();
        assert!(!m.parked(0));
        assert!(m.end(), "the first to end wins");
        while !m.parked(0) {
            std::hint::spin_loop();
        }
        let later: Vec<bool> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(later, [false, false, false]);
        assert_eq!(m.not_parked(0).count(), 0);
    }

    #[test]
    fn signals_are_not_forwarded_but_real_nmis_are() {
        let m = machine(2);
        let s = m.slot(1).unwrap();
        let w = s.wakes();
        s.signal();
        s.nmi_arrived();
        assert!(!s.nmi.pending(), "the VMM's own NMI");
        assert_eq!(s.wakes(), w + 1, "a waiting CPU sees it");
        s.nmi_arrived();
        assert!(s.nmi.pending(), "no signal outstanding: the guest's");
    }

    #[test]
    fn exits_are_counted_per_cpu() {
        let m = machine(2);
        for _ in 0..3 {
            m.slot(0).unwrap().count_exit();
        }
        m.slot(1).unwrap().count_exit();
        assert_eq!(m.exits(), 4);
        assert_eq!(core::mem::size_of::<Slot>() % 128, 0);
        assert_eq!(core::mem::align_of::<Slot>(), 128);
    }

    #[test]
    fn the_area_layout_keeps_stacks_apart() {
        use layout::*;
        let stacks = [
            (STACK, STACK_TOP),
            (NMI_STACK, NMI_STACK + IST_SIZE),
            (MC_STACK, MC_STACK + IST_SIZE),
            (DF_STACK, DF_STACK + IST_SIZE),
        ];
        for (base, top) in stacks {
            assert!(is_guard(base - 0x1000), "a guard below {base:#x}");
            assert!(!is_guard(base) && !is_guard(top - 1));
            assert!(top <= AREA && base < top);
        }
        for ist in [NMI_STACK, MC_STACK, DF_STACK] {
            assert_eq!(ist % IST_SIZE, 0, "aligned: the Slot pointer at the base");
        }
        assert!(!is_guard(GDT) && !is_guard(TSS) && TSS + 0x1000 <= AREA);
        assert_eq!(2 * 1024 * 1024 / AREA, MAX_CPUS as u64, "8 areas per 2 MiB");
    }
}
