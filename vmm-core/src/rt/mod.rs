//! The bare-metal runtime (feature `rt`): boot stub, Rust entry, console,
//! heap, panic handler, the host IDT's stubs, the VMM's page frames,
//! `start` (from boot to a running guest), and stopping the machine.
//!
//! Only the example images enable this; host builds of `vmm-core` (unit
//! tests) never see it. The vendor backends are bare-metal too, as the
//! `rt` children of `svm` and `vmx` (see the crate docs).

mod boot;
pub mod console;
pub(crate) mod frames;
pub(crate) mod idt;
pub(crate) mod smp;
mod start;

use baremetal::{outb, outw, Com1};
use core::alloc::{GlobalAlloc, Layout};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicUsize, Ordering};
use vmm_shared::ports;

/// How the machine stops: the QEMU `isa-debug-exit` device (port `0xf4`;
/// QEMU exits with `(value << 1) | 1`) and the Bochs shutdown port
/// (`0x8900`, "Shutdown"), see [`vmm_shared::ports`]. Whichever is absent
/// ignores the write.
pub fn exit_machine(success: bool) -> ! {
    Com1::flush();
    // SAFETY: writes to the emulators' exit ports; on a machine without
    // them the writes go nowhere.
    unsafe {
        let qemu = if success {
            ports::QEMU_SUCCESS
        } else {
            ports::QEMU_FAILURE
        };
        outb(ports::QEMU_DEBUG_EXIT, qemu);
        for b in ports::BOCHS_SHUTDOWN_WORD {
            outb(ports::BOCHS_SHUTDOWN, *b);
        }
        // ACPI S5 on QEMU's PIIX4 PM block, as a last resort.
        outw(ports::ACPI_PM1A_CNT, ports::ACPI_S5);
    }
    halt_forever()
}

/// How many VM exits the VMM has handled since boot, on all CPUs: the
/// guest's "uptime" in the only clock every platform shares.
pub fn exit_count() -> u64 {
    smp::MACHINE.exits()
}

/// Stop this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: cli; hlt only stops this CPU.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// Called by the boot stub in long mode with the boot protocol (1 = PVH,
/// 2 = Multiboot2, 0 = unknown) and the loader's info pointer.
#[no_mangle]
extern "C" fn vmm_core_rust_entry(protocol: u32, info: u32) -> ! {
    console::init();
    idt::load();
    let ok = start::main(protocol, u64::from(info));
    exit_machine(ok)
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    console::print_always(format_args!("{}: {info}\n", vmm_shared::markers::PANIC));
    exit_machine(false)
}

/// The VMM heap: a bump allocator over a static arena. The VMM allocates
/// at boot (the registry's index) and never frees; `dealloc` is a no-op.
struct BumpHeap;

const HEAP_SIZE: usize = 1 << 20;

#[repr(C, align(4096))]
struct Arena([u8; HEAP_SIZE]);

static mut ARENA: Arena = Arena([0; HEAP_SIZE]);
static NEXT: AtomicUsize = AtomicUsize::new(0);

// SAFETY: alloc hands out disjoint, aligned ranges of ARENA (the bump index
// only grows, by compare-exchange) or null when full.
unsafe impl GlobalAlloc for BumpHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = core::ptr::addr_of_mut!(ARENA) as usize;
        let mut cur = NEXT.load(Ordering::Relaxed);
        loop {
            let start = match base
                .checked_add(cur)
                .and_then(|p| p.checked_next_multiple_of(layout.align()))
            {
                Some(p) => p.wrapping_sub(base),
                None => return core::ptr::null_mut(),
            };
            let Some(end) = start.checked_add(layout.size()) else {
                return core::ptr::null_mut();
            };
            if end > HEAP_SIZE {
                return core::ptr::null_mut();
            }
            match NEXT.compare_exchange(cur, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return base.wrapping_add(start) as *mut u8,
                Err(now) => cur = now,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static HEAP: BumpHeap = BumpHeap;
