//! From boot to guest: find memory, load the guest, pick the backend, run.

use crate::bootinfo::{self, BootInfo, PhysReader, Region};
use crate::cpu::{self, Vendor};
use crate::guest;
use crate::linux;
use crate::physmem::PhysAlloc;
use crate::vcpu::GuestRam;

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
    let result = match cpu::vendor() {
        Vendor::Amd => crate::svm::run(ram, start, &mut alloc),
        Vendor::Intel => crate::vmx::run(ram, start, &mut alloc),
        Vendor::Other => {
            crate::say!("vmm: unknown CPU vendor: neither SVM nor VMX");
            return false;
        }
    };
    // The guest shares COM1 and may have reprogrammed it (baud rate, DLAB,
    // loopback): set it up again so that the verdict is readable. Let the
    // guest's last bytes leave first: the set-up clears the FIFOs (Bochs
    // dropped the newline of a guest's last line there).
    vmmcall::baremetal::Com1::flush();
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
    // The verdict carries the run's secret (bootinfo::VerdictSecret): the
    // guest shares the console, but cannot know the secret, so only this
    // line can carry it.
    let tag = VerdictTag(boot.verdict);
    let ok = match result {
        Ok(status) => {
            crate::say!("vmm: guest exited with status {status}{tag}");
            status == 0
        }
        Err(stop) => {
            crate::say!("vmm: guest stopped: {stop}{tag}");
            false
        }
    };
    bochs_verdict(ok, boot.verdict);
    ok
}

/// ` [verdict SECRET]` after the verdict, or nothing without a secret.
struct VerdictTag(Option<bootinfo::VerdictSecret>);

impl core::fmt::Display for VerdictTag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.0 {
            Some(s) => write!(f, " [verdict {}]", s.as_str()),
            None => Ok(()),
        }
    }
}

/// The Bochs BIOS info port (Bochs `iodev/biosdev.cc`): Bochs writes each
/// line sent here into its log as `[BIOS  ] text`. Nothing decodes it on
/// QEMU's PC machine, and a guest never reaches it (no guest profile
/// passes it through, `crate::intercept`).
const BOCHS_INFO_PORT: u16 = 0x402;

/// Tell Bochs's log how the run ended, `vmm: verdict pass SECRET` or
/// `vmm: verdict fail SECRET`, before the Shutdown port stops it: Bochs's
/// exit is the same for both, so this is what tells them apart.
fn bochs_verdict(ok: bool, secret: Option<bootinfo::VerdictSecret>) {
    let word: &[u8] = if ok { b"pass" } else { b"fail" };
    let secret = secret.as_ref().map_or("", |s| s.as_str());
    for part in [b"vmm: verdict ", word, b" ", secret.as_bytes(), b"\n"] {
        for &b in part {
            // SAFETY: a write to the Bochs BIOS info port, which only logs
            // the byte; elsewhere the port is unused and the write goes
            // nowhere.
            unsafe { vmmcall::baremetal::outb(BOCHS_INFO_PORT, b) };
        }
    }
}

// `exit(status)`: the guest is done; the VMM stops the machine and
// reports `status` (0 = success). Callable from any privilege level.
// vmmcall's built-in, which the run loop sees as `Outcome::stop`.
vmmcall::exit_hypercall!();
