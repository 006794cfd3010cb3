//! Escape attempt: a guest reaches for the host through I/O ports and MSRs.
//!
//! Documented outcome (docs/VMM-CORE.md, "Guest profiles" and "MSRs for both profiles"): only COM1
//! and the guest-state MSRs are the guest's. The guest here tries:
//! - PCI configuration space (`0xCF8`/`0xCFC`), the way to a DMA-capable
//!   device: reads all ones, as if there were no PCI bus;
//! - the emulator's exit port (`0xF4`, QEMU `isa-debug-exit`) with the
//!   "success" value: dropped, the run goes on;
//! - `INSB` from a port: `#GP(0)`;
//! - `RDMSR VM_HSAVE_PA`, `WRMSR IA32_APIC_BASE`: `#GP(0)`;
//! - EFER: the guest's own copy (`LME|LMA|NXE`, never the host's SVME);
//!   setting SVME or a reserved bit raises `#GP(0)`;
//! - `IA32_FEATURE_CONTROL` and AMD `VM_CR` say "virtualization off";
//! - `RDMSR TSC` and `WRMSR`/`RDMSR LSTAR`: allowed, they are the guest's;
//! - the shared UART in loopback (MCR.LOOP): a VMM line printed meanwhile
//!   still goes out on the wire (expect.txt has it), none of it lands in
//!   the guest's receive FIFO, and the guest's MCR is given back.
#![no_std]
#![no_main]

use guest_rt::arch::{self, Fault};
use guest_rt::println;
use guest_sdk::{call, Error};

guest_rt::entry!(main);

const GP: u8 = 13;

fn outl(port: u16, v: u32) {
    // SAFETY: port I/O at CPL 0; the VMM intercepts every port but COM1.
    unsafe { core::arch::asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack)) }
}

fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as in outl.
    unsafe { core::arch::asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack)) }
    v
}

fn outb(port: u16, v: u8) {
    // SAFETY: as in outl.
    unsafe { core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack)) }
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as in outl.
    unsafe { core::arch::asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack)) }
    v
}

/// COM1's receive buffer, line status and modem control registers.
const COM1_RBR: u16 = 0x3F8;
const COM1_LSR: u16 = 0x3FD;
const COM1_MCR: u16 = 0x3FC;
/// MCR.LOOP (16550: bit 4), LSR.DR (data ready, bit 0).
const MCR_LOOP: u8 = 1 << 4;
const LSR_DR: u8 = 1;
/// LSR.TEMT: the transmitter is empty.
const LSR_TEMT: u8 = 1 << 6;

/// With COM1 in loopback, the VMM prints a line (`say`): the bytes the
/// guest can then read back from its receive FIFO, and the MCR it reads
/// after the call. Nothing is printed while loopback is on.
fn vmm_line_in_loopback() -> Result<(usize, u8), Error> {
    // Let the guest's own last line leave the UART before loopback.
    for _ in 0..1_000_000 {
        if inb(COM1_LSR) & LSR_TEMT != 0 {
            break;
        }
    }
    let mcr = inb(COM1_MCR);
    outb(COM1_MCR, mcr | MCR_LOOP);
    // Whatever the receive FIFO held before.
    while inb(COM1_LSR) & LSR_DR != 0 {
        inb(COM1_RBR);
    }
    call!("say")?;
    let mut caught = 0;
    while inb(COM1_LSR) & LSR_DR != 0 && caught < 4096 {
        inb(COM1_RBR);
        caught += 1;
    }
    let after = inb(COM1_MCR);
    outb(COM1_MCR, mcr);
    Ok((caught, after))
}

/// RDMSR, catching #GP. RDMSR is 2 bytes (0F 32).
fn rdmsr(msr: u32) -> Result<u64, Fault> {
    let (v, fault) = arch::catch(2, || {
        let (lo, hi): (u32, u32);
        // SAFETY: CPL 0; a #GP is caught by the IDT handler (catch), which
        // resumes after the instruction; RAX/RDX are outputs. The red zone
        // is skipped because the exception frame is pushed on this stack.
        unsafe {
            core::arch::asm!(
                "sub rsp, 128", "rdmsr", "add rsp, 128",
                in("ecx") msr, out("eax") lo, out("edx") hi,
            )
        };
        (u64::from(hi) << 32) | u64::from(lo)
    });
    fault.map_or(Ok(v), Err)
}

/// WRMSR, catching #GP. WRMSR is 2 bytes (0F 30).
fn wrmsr(msr: u32, v: u64) -> Result<(), Fault> {
    let ((), fault) = arch::catch(2, || {
        // SAFETY: as in rdmsr; the MSRs written here are either the guest's
        // own (LSTAR) or refused by the VMM.
        unsafe {
            core::arch::asm!(
                "sub rsp, 128", "wrmsr", "add rsp, 128",
                in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32,
            )
        };
    });
    fault.map_or(Ok(()), Err)
}

fn check(what: &str, ok: bool) -> bool {
    println!("escape-io: {what}: {}", if ok { "ok" } else { "FAILED" });
    ok
}

fn gp(r: Result<u64, Fault>) -> bool {
    matches!(
        r,
        Err(Fault {
            vector: GP,
            error: 0,
            ..
        })
    )
}

fn main() -> Result<(), Error> {
    arch::install_idt();
    let mut ok = true;

    outl(0xCF8, 0x8000_0000); // bus 0, device 0, function 0, register 0
    let id = inl(0xCFC);
    ok &= check("PCI config space reads all ones", id == 0xFFFF_FFFF);

    outb(0xF4, 0x10); // isa-debug-exit "success": must not end the run
    ok &= check(
        "the emulator's exit port is not the guest's",
        call!("alive")? == 42,
    );

    let mut buf = [0u8; 4];
    let ((), fault) = arch::catch(1, || {
        // SAFETY: INSB writes at most one byte to `buf` (RDI), if the VMM
        // let it through; a #GP is caught (catch). Red zone skipped.
        unsafe {
            core::arch::asm!(
                "sub rsp, 128", "insb", "add rsp, 128",
                in("dx") 0x60u16, inout("rdi") buf.as_mut_ptr() => _,
            )
        }
    });
    ok &= check(
        "INSB from a denied port raises #GP",
        matches!(fault, Some(Fault { vector: GP, .. })) && buf == [0; 4],
    );

    ok &= check("RDMSR VM_HSAVE_PA raises #GP", gp(rdmsr(0xC001_0117)));
    ok &= check(
        "WRMSR IA32_APIC_BASE raises #GP",
        gp(wrmsr(0x1B, 0).map(|()| 0)),
    );
    let efer = rdmsr(0xC000_0080);
    ok &= check("EFER is the guest's own (LME|LMA|NXE)", efer == Ok(0xD00));
    ok &= check(
        "WRMSR EFER.SVME raises #GP",
        gp(wrmsr(0xC000_0080, 0xD00 | (1 << 12)).map(|()| 0)),
    );
    ok &= check(
        "WRMSR EFER reserved bit raises #GP",
        gp(wrmsr(0xC000_0080, 0xD00 | (1 << 20)).map(|()| 0)),
    );
    ok &= check(
        "EFER write of its own bits works",
        wrmsr(0xC000_0080, 0xD01).is_ok() && rdmsr(0xC000_0080) == Ok(0xD01),
    );
    ok &= check(
        "FEATURE_CONTROL and VM_CR say virtualization is off",
        rdmsr(0x3A) == Ok(1) && rdmsr(0xC001_0114) == Ok(0x18),
    );

    let t0 = rdmsr(0x10);
    let t1 = rdmsr(0x10);
    ok &= check(
        "RDMSR TSC works",
        matches!((t0, t1), (Ok(a), Ok(b)) if b >= a),
    );
    ok &= check("WRMSR TSC raises #GP", gp(wrmsr(0x10, 0).map(|()| 0)));
    let lstar = 0xFFFF_8000_1234_5000;
    ok &= check(
        "LSTAR is the guest's",
        wrmsr(0xC000_0082, lstar).is_ok() && rdmsr(0xC000_0082) == Ok(lstar),
    );

    let (caught, mcr) = vmm_line_in_loopback()?;
    ok &= check(
        "MCR.LOOP catches none of the VMM's bytes and is given back",
        caught == 0 && mcr & MCR_LOOP != 0,
    );
    if caught != 0 {
        println!("escape-io: the guest's receive FIFO caught {caught} bytes of the VMM's line");
    }

    ok &= check("the VMM still answers", call!("alive")? == 42);
    if ok {
        println!("escape-io: every port and MSR outside the allow-list refused");
        Ok(())
    } else {
        Err(Error::Invalid)
    }
}
