//! `toy-vmm`: a VMM-shaped program that is not `vmm-core`, integrating
//! vmmcall with nothing but the public API, step by step as
//! `docs/INTEGRATING.md` says. `tests/guide.rs` runs guests on it.
//!
//! Only the CPU is simulated: [`Vm::execute`] plays the guest executing one
//! instruction and returns the AMD SVM exit it causes (VMMCALL exits;
//! VMCALL and UD2 raise an intercepted `#UD`; CPUID and HLT exit).
//! Everything from there on, [`Vm::handle_exit`], is what a real VMM's exit
//! loop does.
//!
//! The VMM has a register layout of its own, as many do: the guest's RAX,
//! RSP and RIP are in its "VMCB" ([`Vmcb`], as on SVM), the other fourteen
//! in a [`SaveArea`] in the order its entry stub pushes them (R15 first,
//! RCX last). vmmcall reads and writes them where they are, through
//! [`Regs`]: no copy per exit.
//!
//! The VMM runs several VMs that share no state ([`VmState`]: an id, the
//! VM's own registry, which is its allow-list, and a count), each with
//! vCPUs of their own ids ([`Vm::vcpu_of`]). Handlers reach both through
//! their `Caller` ([`whoami`]): the VMM wraps the vCPU at each exit in an
//! [`InVm`] (step 6).
//!
//! The glue (what `docs/INTEGRATING.md` asks a VMM to write) is the code
//! between the `glue` markers below and the lines marked `glue` in
//! [`Vm::cpuid`]: 115 lines with their comments, 103 without (rustfmt's
//! layout, blank lines not counted).

use std::cell::RefCell;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use vmexit::{Exit, SvmExitFields};
use vmmcall::abi::{VMCALL_BYTES, VMMCALL_BYTES};
use vmmcall::budget::{Budget, Spend};
use vmmcall::cpuid::{HypervisorCpuid, Leaf, CPUID1_ECX_HYPERVISOR};
use vmmcall::paging::{GuestPhysMemory, PagingMode};
use vmmcall::{Caller, Error, Gpr, GuestAddr, GuestVcpu, InVm, MemError, Registers};
use vmmcall::{Registry, RegistryError};

/// The guest's general-purpose registers but RAX and RSP, in the order the
/// VMM's entry stub pushes them: R15 first, RCX last.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SaveArea(pub [u64; 14]);

/// What the VMM keeps of the guest in its VMCB.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Vmcb {
    /// RAX (on SVM, the VMCB holds it).
    pub rax: u64,
    /// RSP (likewise).
    pub rsp: u64,
    /// RIP.
    pub rip: u64,
    /// The current privilege level.
    pub cpl: u8,
    /// CR0.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER.
    pub efer: u64,
    /// CS.base.
    pub cs_base: u64,
    /// EFER.LMA and CS.L: the guest runs 64-bit code.
    pub long_mode: bool,
}

/// An instruction the simulated guest executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insn {
    /// AMD's hypercall instruction: exits as such.
    Vmmcall,
    /// Intel's: `#UD` on this AMD-style VMM.
    Vmcall,
    /// `UD2`: the guest's own `#UD`.
    Ud2,
    /// `CPUID`.
    Cpuid,
    /// `HLT`.
    Hlt,
}

/// What [`Vm::handle_exit`] did with the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// The guest goes on.
    Resume,
    /// The guest called `exit(status)`.
    Exit(u32),
    /// The guest halted.
    Halt,
}

/// The VMM's own signature at `0x4000_0000`, "ToyVmmToyVmm", as EBX, ECX
/// and EDX.
const OWN: [u32; 3] = [
    u32::from_le_bytes(*b"ToyV"),
    u32::from_le_bytes(*b"mmTo"),
    u32::from_le_bytes(*b"yVmm"),
];

/// The guest's MAXPHYADDR: CPUID `0x8000_0008` EAX of a 48-bit CPU.
const LEAF_8000_0008_EAX: u32 = 0x3030;

/// One vCPU of a VM, and its guest RAM (guest-physical 0 up; this toy
/// gives each vCPU RAM of its own).
pub struct Vm {
    /// General-purpose registers but RAX and RSP.
    pub gprs: SaveArea,
    /// RAX, RSP, RIP, CPL, control registers.
    pub vmcb: Vmcb,
    /// Guest RAM.
    pub ram: Vec<u8>,
    /// Exceptions the VMM injected into the guest, by vector.
    pub injected: Vec<u8>,
    /// This vCPU's id in its VM.
    pub vcpu_id: u32,
    /// The VMM's state for this vCPU.
    pub stats: VcpuStats,
    vm: Arc<VmState>,
}

/// The VMM's state for one VM, shared by its vCPUs (so `Sync`: atomics).
pub struct VmState {
    /// The VM's id.
    pub id: u32,
    /// Hypercalls this VM's vCPUs made through [`whoami`].
    pub whoami_calls: AtomicU64,
    /// The hypercalls this VM may call: its own registry.
    registry: Registry<'static>,
}

impl VmState {
    /// VM `id`, which may call every hypercall (`allow` = `None`) or only
    /// those named (the VM's allow-list; an unknown name is an error).
    pub fn new(id: u32, allow: Option<&[&'static str]>) -> Result<Arc<VmState>, RegistryError> {
        let all = Registry::global()?;
        let registry = match allow {
            None => all.restricted(|_| true)?,
            Some(names) => all.allow_only(names)?,
        };
        Ok(Arc::new(VmState {
            id,
            whoami_calls: AtomicU64::new(0),
            registry,
        }))
    }

    /// The VM's registry (its call counts are this VM's).
    pub fn registry(&self) -> &Registry<'static> {
        &self.registry
    }
}

/// The VMM's state for one vCPU, which only its own calls touch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VcpuStats {
    /// Hypercalls this vCPU made through [`whoami`].
    pub whoami_calls: u64,
}

// ---------------------------------------------------------------- glue --

// Step 1: handler crates reach vmmcall through the VMM:
// `#[vmmcall("name", crate = toy_vmm::hypercall)]`.
pub use vmmcall as hypercall;

// Step 7: the `exit` hypercall guests finish with.
vmmcall::exit_hypercall!();

/// Step 5: vmmcall's hypervisor leaves, above the VMM's own.
pub const VMMCALL_LEAVES: HypervisorCpuid = match HypervisorCpuid::new()
    .with_signature(*b"toy-vmm\0\0\0\0\0")
    .with_base(0x4000_0100)
{
    Ok(leaves) => leaves,
    Err(_) => panic!("not a CPUID block"),
};

/// Step 2: the guest's registers, where the VMM keeps them.
pub struct Regs<'a>(&'a mut SaveArea, &'a mut Vmcb);

/// A register's slot in the [`SaveArea`] (`None`: RAX and RSP).
fn slot(reg: Gpr) -> Option<usize> {
    match reg.encoding() {
        0 | 4 => None,
        e @ 5..=15 => Some(15 - usize::from(e)),
        e => Some(14 - usize::from(e)),
    }
}

impl Registers for Regs<'_> {
    fn gpr(&self, reg: Gpr) -> u64 {
        match slot(reg) {
            Some(i) => self.0 .0[i],
            None if reg == Gpr::Rax => self.1.rax,
            None => self.1.rsp,
        }
    }
    fn set_gpr(&mut self, reg: Gpr, value: u64) {
        match slot(reg) {
            Some(i) => self.0 .0[i] = value,
            None if reg == Gpr::Rax => self.1.rax = value,
            None => self.1.rsp = value,
        }
    }
}

/// Step 3: guest-physical memory (here: RAM at 0, nothing else).
pub struct Ram<'a>(&'a mut [u8]);

fn range(gpa: u64, len: usize) -> Option<Range<usize>> {
    let start = usize::try_from(gpa).ok()?;
    Some(start..start.checked_add(len)?)
}

impl GuestPhysMemory for Ram<'_> {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let src = range(gpa, buf.len()).and_then(|r| self.0.get(r));
        buf.copy_from_slice(src.ok_or(MemError::OutsideRam { gpa })?);
        Ok(())
    }
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let dst = range(gpa, data.len()).and_then(|r| self.0.get_mut(r));
        dst.ok_or(MemError::OutsideRam { gpa })?
            .copy_from_slice(data);
        Ok(())
    }
}

/// Step 4: the vCPU at this exit, for vmmcall.
fn vcpu<'a>(
    gprs: &'a mut SaveArea,
    v: &'a mut Vmcb,
    ram: &'a mut [u8],
) -> GuestVcpu<Regs<'a>, Ram<'a>> {
    let paging = PagingMode {
        cr0: v.cr0,
        cr3: v.cr3,
        cr4: v.cr4,
        efer: v.efer,
        maxphyaddr: vmmcall::cpuid::maxphyaddr(LEAF_8000_0008_EAX),
    };
    let cpl = v.cpl;
    GuestVcpu::new(Regs(gprs, v), Ram(ram), cpl, paging)
}

impl Vm {
    /// Step 6: a hypercall exit (VMMCALL, or VMCALL's `#UD` with `ud`),
    /// dispatched with the calling VM's registry (its allow-list), the
    /// vCPU wrapped with its id and the VMM's state for the VM and vCPU.
    fn hypercall(&mut self, ud: bool) -> After {
        let rip = self.vmcb.rip;
        let at = vmexit::code_address(rip, self.vmcb.cs_base, self.vmcb.long_mode);
        let Vm {
            gprs,
            vmcb,
            ram,
            vm,
            vcpu_id,
            stats,
            ..
        } = self;
        let registry = &vm.registry;
        let mut vcpu = InVm::new(vcpu(gprs, vmcb, ram), *vcpu_id)
            .with_vm(&**vm)
            .with_vcpu_state(stats);
        let done = if ud {
            match vmexit::handle_ud(registry, &mut vcpu, at) {
                Some(done) => done,
                None => {
                    self.injected.push(6); // the guest's own #UD
                    return After::Resume;
                }
            }
        } else {
            let len = vmexit::svm_insn_len(rip, 0, false);
            vmexit::handle_hypercall(registry, &mut vcpu, len)
        };
        self.vmcb.rip = done.next_rip(rip);
        done.stop().map_or(After::Resume, After::Exit)
    }
}

// ------------------------------------------------------------ end glue --

impl Vm {
    /// The exit loop's answer to one exit: the VMM's own code, with the
    /// two calls into the glue.
    pub fn handle_exit(&mut self, exit: SvmExitFields) -> After {
        match Exit::from_svm(&exit) {
            Exit::Hypercall => self.hypercall(false),
            Exit::Exception { vector: 6, .. } => self.hypercall(true),
            Exit::Cpuid => {
                let mut r = self.regs();
                let leaf = Self::cpuid(r.rax() as u32);
                for (reg, value) in [Gpr::Rax, Gpr::Rbx, Gpr::Rcx, Gpr::Rdx]
                    .into_iter()
                    .zip([leaf.eax, leaf.ebx, leaf.ecx, leaf.edx])
                {
                    r.set_gpr(reg, u64::from(value));
                }
                self.vmcb.rip = self.vmcb.rip.wrapping_add(2);
                After::Resume
            }
            _ => After::Halt,
        }
    }

    /// The VMM's CPUID policy, with vmmcall's leaves above its own.
    pub fn cpuid(leaf: u32) -> Leaf {
        // Step 5 (glue): vmmcall's leaves first, and the hypervisor bit.
        if let Some(answer) = VMMCALL_LEAVES.answer(leaf) {
            return answer;
        }
        let zero = Leaf::default();
        match leaf {
            1 => Leaf {
                ecx: CPUID1_ECX_HYPERVISOR, // glue
                ..zero
            },
            // The VMM's own block ("ToyVmmToyVmm" and its own features).
            0x4000_0000 => Leaf {
                eax: 0x4000_0001,
                ebx: OWN[0],
                ecx: OWN[1],
                edx: OWN[2],
            },
            0x4000_0001 => Leaf {
                eax: 0x1234,
                ..zero
            },
            _ => zero,
        }
    }

    /// vCPU 0 of a VM of its own (id 0, every hypercall allowed), at
    /// CPL 0, paging off, RIP 0x1000, with `ram` bytes of RAM.
    pub fn new(ram: usize) -> Result<Vm, RegistryError> {
        Ok(Vm::vcpu_of(&VmState::new(0, None)?, 0, ram))
    }

    /// vCPU `vcpu_id` of the VM `vm`, in the state [`Vm::new`] gives.
    pub fn vcpu_of(vm: &Arc<VmState>, vcpu_id: u32, ram: usize) -> Vm {
        Vm {
            gprs: SaveArea::default(),
            vmcb: Vmcb {
                rip: 0x1000,
                cr0: 0x11,
                ..Vmcb::default()
            },
            ram: vec![0; ram],
            injected: Vec::new(),
            vcpu_id,
            stats: VcpuStats::default(),
            vm: Arc::clone(vm),
        }
    }

    /// The VM this vCPU belongs to.
    pub fn vm(&self) -> &VmState {
        &self.vm
    }

    /// The registers as vmmcall sees them (for the guest side of tests).
    pub fn regs(&mut self) -> Regs<'_> {
        Regs(&mut self.gprs, &mut self.vmcb)
    }

    /// The simulated CPU: the guest executes `insn` at RIP (its bytes are
    /// put there first) and the exit it causes comes back.
    pub fn execute(&mut self, insn: Insn) -> SvmExitFields {
        let (bytes, exitcode): (&[u8], u64) = match insn {
            Insn::Vmmcall => (&VMMCALL_BYTES, 0x81),
            Insn::Vmcall => (&VMCALL_BYTES, 0x46),
            Insn::Ud2 => (&[0x0F, 0x0B], 0x46),
            Insn::Cpuid => (&[0x0F, 0xA2], 0x72),
            Insn::Hlt => (&[0xF4], 0x78),
        };
        let at = vmexit::code_address(self.vmcb.rip, self.vmcb.cs_base, self.vmcb.long_mode);
        let at = usize::try_from(at).expect("RIP in guest RAM");
        self.ram[at..at + bytes.len()].copy_from_slice(bytes);
        SvmExitFields {
            exitcode,
            ..SvmExitFields::default()
        }
    }

    /// One instruction, exit and answer.
    pub fn step(&mut self, insn: Insn) -> After {
        let exit = self.execute(insn);
        self.handle_exit(exit)
    }
}

thread_local! {
    /// What handlers printed (one console per test thread).
    static CONSOLE: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// Guests decide how often handlers print: 4 lines, then counting.
    static PRINTS: Budget = const { Budget::new(4) };
}

/// Print a line on the VMM console for a handler, within its budget.
pub fn println(line: String) {
    let line = match PRINTS.with(Budget::spend) {
        Spend::Print => line,
        Spend::Exhausted => "toy-vmm: handlers printed 4 lines: further ones are counted".into(),
        Spend::Suppressed => return,
    };
    CONSOLE.with(|c| c.borrow_mut().push(line));
}

/// The lines printed so far, and how many the budget kept back.
pub fn console() -> (Vec<String>, u64) {
    (
        CONSOLE.with(|c| c.borrow().clone()),
        PRINTS.with(Budget::suppressed),
    )
}

/// `print(buf, len)`: print the guest's `len` bytes at `buf` (at most 80).
#[vmmcall::vmmcall("print", user)]
fn print(caller: &mut Caller, buf: GuestAddr, len: u8) -> Result<(), Error> {
    let mut bytes = vec![0; usize::from(len.min(80))];
    caller.read(buf, &mut bytes)?;
    println(String::from_utf8_lossy(&bytes).into_owned());
    Ok(())
}

/// `whoami()`: the calling VM's id (upper 32 bits) and vCPU id (lower 32),
/// counted in the VM's and the vCPU's state: the VMM's own state, reached
/// without statics.
#[vmmcall::vmmcall("whoami", user)]
pub fn whoami(cx: &mut Caller) -> Result<u64, Error> {
    let vcpu_id = cx.vcpu_id();
    // Every vCPU this VMM runs has both; a VMM bug otherwise (-EIO).
    cx.vcpu_state::<VcpuStats>().ok_or(Error::Io)?.whoami_calls += 1;
    let vm = cx.vm::<VmState>().ok_or(Error::Io)?;
    vm.whoami_calls.fetch_add(1, Ordering::Relaxed);
    Ok(u64::from(vm.id) << 32 | u64::from(vcpu_id))
}
