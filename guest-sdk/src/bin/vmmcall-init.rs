//! `vmmcall-init`: the `/init` of the Linux guests `cargo xtask linux`
//! boots.
//!
//! It runs one program, then hands the program's exit status to the VMM
//! through the `exit` hypercall, so that the emulator run ends with the
//! program's status (`vmm: guest exited with status N`). The program and
//! its arguments come from `/etc/vmmcall-init`, NUL-separated (xtask writes
//! it into the initramfs); a name without `/` is looked up in `/bin`.
//!
//! It prints two lines xtask reads: `vmmcall-init: running ...` just before
//! the program starts (the boot-time measurement ends at the program's
//! first line after it) and `vmmcall-init: ... exited with status N`.
//!
//! Without the VMM (`cargo xtask linux --compare` boots the same kernel
//! bare), the `exit` hypercall reports `NotPresent` and init stops the
//! emulator itself through its exit ports (QEMU `isa-debug-exit` at 0xF4,
//! the Bochs shutdown port 0x8900), which only a guest without this VMM
//! can reach.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

/// Where xtask puts the command line.
const ARGV_FILE: &str = "/etc/vmmcall-init";

fn argv() -> Result<Vec<String>, String> {
    let raw = std::fs::read(ARGV_FILE).map_err(|e| format!("cannot read {ARGV_FILE}: {e}"))?;
    let argv: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if argv.is_empty() {
        return Err(format!("{ARGV_FILE} names no program"));
    }
    Ok(argv)
}

fn run() -> i32 {
    let argv = match argv() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vmmcall-init: {e}");
            return 127;
        }
    };
    println!("vmmcall-init: running {}", argv.join(" "));
    let status = Command::new(&argv[0])
        .args(&argv[1..])
        .env("PATH", "/bin")
        .status();
    let code = match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(e) => {
            eprintln!("vmmcall-init: cannot run {}: {e}", argv[0]);
            127
        }
    };
    println!("vmmcall-init: {} exited with status {code}", argv[0]);
    code
}

/// Raw `syscall` with up to three arguments (the static binary has no
/// libc wrappers for `iopl` and `reboot` that std exposes).
///
/// # Safety
/// The system call must be one whose effects the caller accepts.
unsafe fn syscall3(nr: u64, a: u64, b: u64, c: u64) -> i64 {
    let ret: i64;
    // SAFETY: the caller vouches for the call; `syscall` clobbers RCX and
    // R11 and nothing else but RAX.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") nr as i64 => ret, in("rdi") a, in("rsi") b,
                         in("rdx") c, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// Wait until the console has sent everything written to it: the VMM (or
/// the emulator's exit) would otherwise cut off the last lines, which
/// still sit in the kernel's tty buffer.
fn drain_console() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    const SYS_IOCTL: u64 = 16;
    const TCSBRK: u64 = 0x5409;
    // SAFETY: ioctl(1, TCSBRK, 1) is tcdrain(1): it only waits.
    unsafe { syscall3(SYS_IOCTL, 1, TCSBRK, 1) };
}

/// No VMM: stop the emulator through its exit ports, then power off.
fn stop_without_vmm(code: i32) -> ! {
    const SYS_IOPL: u64 = 172;
    const SYS_REBOOT: u64 = 169;
    // SAFETY: iopl(3) only lets this process (PID 1, root) use I/O ports.
    if unsafe { syscall3(SYS_IOPL, 3, 0, 0) } == 0 {
        let qemu = if code == 0 { 0x10u8 } else { 0x11 };
        let out = |port: u16, value: u8| {
            // SAFETY: the emulators' exit ports: QEMU isa-debug-exit (exit
            // code (v << 1) | 1), Bochs "Shutdown" on 0x8900. On a machine
            // without them the writes go nowhere; iopl(3) allows them.
            unsafe {
                core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack))
            }
        };
        out(0xF4, qemu);
        for b in *b"Shutdown" {
            out(0x8900, b);
        }
    }
    // SAFETY: reboot(LINUX_REBOOT_MAGIC1, MAGIC2, POWER_OFF) ends the
    // system, which is what init wants now.
    unsafe { syscall3(SYS_REBOOT, 0xfee1_dead, 0x2812_1969, 0x4321_fedc) };
    loop {
        std::thread::park();
    }
}

fn main() {
    let code = run();
    drain_console();
    // Negative statuses cannot happen; a status above u32 range neither.
    let status = u32::try_from(code).unwrap_or(u32::MAX);
    match guest_sdk::call!("exit", rbx = status) {
        // `exit` does not return: the VMM stops the machine.
        Ok(_) => eprintln!("vmmcall-init: the VMM's exit hypercall returned"),
        Err(guest_sdk::Error::NotPresent) => {
            println!("vmmcall-init: no vmmcall VMM; stopping the machine directly");
            drain_console();
        }
        Err(e) => eprintln!("vmmcall-init: exit hypercall failed: {e}"),
    }
    stop_without_vmm(code)
}
