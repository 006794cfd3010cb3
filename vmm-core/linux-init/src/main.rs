//! `vmmcall-init`: the `/init` of the Linux guests `cargo xtask linux`
//! boots.
//!
//! It runs the programs listed in `/etc/vmmcall-init` one after the other,
//! then hands the VMM an exit status through the Linux profile's exit port
//! (a 4-byte `OUT` to `0xF4`, which it may use after `iopl(3)`), so that
//! the emulator run ends with it (`vmm: guest exited with status N`). The
//! `exit` hypercall is CPL 0 only, and the programs run without the
//! capabilities that would let them end the run themselves
//! ([`DROPPED_CAPS`]): only /init reports a status (docs/ABI.md, "Who may
//! end the run"). xtask
//! writes that file into the initramfs: one command per line, its
//! arguments separated by NUL; a program name without `/` is looked up in
//! `/bin`. A command whose first word is `!` must fail (exit non-zero), as
//! in a shell. The status handed on is 0 if every command did what it
//! should, else the first failing command's status (1 for a `!` command
//! that succeeded).
//!
//! It prints the lines xtask reads: `vmmcall-init: running ...` just before
//! each program starts (the boot-time measurement ends at the first
//! program line after the first of them), `vmmcall-init: ... exited with
//! status N` after each, and, after several, `vmmcall-init: N programs
//! exited with status S` with the status handed on.
//!
//! Without the VMM (`cargo xtask linux --compare` boots the same kernel
//! bare), `guest_sdk::detect` finds none and init stops the emulator
//! itself through its exit ports (QEMU `isa-debug-exit` at 0xF4, the Bochs
//! shutdown port 0x8900).

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;
use vmm_shared::markers::{INIT, INIT_EXITED, INIT_RUNNING};
use vmm_shared::ports;

/// The capabilities the programs do not get (Linux
/// `include/uapi/linux/capability.h` numbers), dropped from their bounding
/// set before `execve`: each is a way to end the run or to make /init end
/// it. `CAP_SYS_RAWIO` (17) grants `iopl`/`ioperm`, hence the exit port,
/// and `/dev/port`; `CAP_SYS_BOOT` (22) power-off, reboot and kexec;
/// `CAP_SYS_MODULE` (16) kernel code, which runs at CPL 0 and may call the
/// `exit` hypercall; `CAP_SYS_PTRACE` (19) tracing /init itself (without
/// it, Linux refuses to trace a process with more capabilities).
const DROPPED_CAPS: [u64; 4] = [16, 17, 19, 22];

/// Where xtask puts the commands.
const ARGV_FILE: &str = "/etc/vmmcall-init";

/// One command: its argv, and whether it must fail.
struct Cmd {
    argv: Vec<String>,
    must_fail: bool,
}

fn commands() -> Result<Vec<Cmd>, String> {
    let raw = std::fs::read(ARGV_FILE).map_err(|e| format!("cannot read {ARGV_FILE}: {e}"))?;
    let mut cmds = Vec::new();
    for line in raw.split(|&b| b == b'\n') {
        let mut argv: Vec<String> = line
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let must_fail = argv.first().is_some_and(|a| a == "!");
        if must_fail {
            argv.remove(0);
        }
        if !argv.is_empty() {
            cmds.push(Cmd { argv, must_fail });
        }
    }
    if cmds.is_empty() {
        return Err(format!("{ARGV_FILE} names no program"));
    }
    Ok(cmds)
}

/// Run one command; its exit status (128 + N for signal N, 127 if it
/// cannot be started).
fn run_one(argv: &[String]) -> i32 {
    println!("{INIT_RUNNING}{}", argv.join(" "));
    drain_console();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).env("PATH", "/bin");
    let drop_caps = || {
        const SYS_PRCTL: u64 = 157;
        const PR_CAPBSET_DROP: u64 = 24;
        for cap in DROPPED_CAPS {
            // SAFETY: prctl(PR_CAPBSET_DROP, cap) only removes a capability
            // from this child's bounding set.
            let r = unsafe { syscall3(SYS_PRCTL, PR_CAPBSET_DROP, cap, 0) };
            if r < 0 {
                return Err(std::io::Error::from_raw_os_error(-r as i32));
            }
        }
        Ok(())
    };
    // SAFETY: the closure runs in the child between fork and execve and
    // only makes prctl system calls, which are async-signal-safe.
    unsafe { cmd.pre_exec(drop_caps) };
    let status = cmd.status();
    let code = match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(e) => {
            eprintln!("vmmcall-init: cannot run {}: {e}", argv[0]);
            127
        }
    };
    drain_console();
    code
}

fn run() -> i32 {
    let cmds = match commands() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vmmcall-init: {e}");
            return 127;
        }
    };
    let mut handed_on = 0;
    for cmd in &cmds {
        let code = run_one(&cmd.argv);
        let (ok, note) = match (cmd.must_fail, code) {
            (false, 0) => (true, ""),
            (false, _) => (false, ""),
            (true, 0) => (false, " (expected to fail)"),
            (true, _) => (true, " (expected to fail)"),
        };
        let bang = if cmd.must_fail { "! " } else { "" };
        println!(
            "{INIT}{bang}{}{INIT_EXITED}{code}{note}",
            cmd.argv.join(" ")
        );
        if !ok && handed_on == 0 {
            handed_on = if code == 0 { 1 } else { code };
        }
    }
    if cmds.len() > 1 {
        println!("{INIT}{} programs{INIT_EXITED}{handed_on}", cmds.len());
    }
    handed_on
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
        let qemu = if code == 0 {
            ports::QEMU_SUCCESS
        } else {
            ports::QEMU_FAILURE
        };
        let out = |port: u16, value: u8| {
            // SAFETY: the emulators' exit ports: QEMU isa-debug-exit (exit
            // code (v << 1) | 1), Bochs "Shutdown" on 0x8900. On a machine
            // without them the writes go nowhere; iopl(3) allows them.
            unsafe {
                core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack))
            }
        };
        out(ports::QEMU_DEBUG_EXIT, qemu);
        for &b in ports::BOCHS_SHUTDOWN_WORD {
            out(ports::BOCHS_SHUTDOWN, b);
        }
    }
    // SAFETY: reboot(LINUX_REBOOT_MAGIC1, MAGIC2, POWER_OFF) ends the
    // system, which is what init wants now.
    unsafe { syscall3(SYS_REBOOT, 0xfee1_dead, 0x2812_1969, 0x4321_fedc) };
    loop {
        std::thread::park();
    }
}

/// Hand `status` to the VMM through its exit port; returns only if that
/// failed (iopl refused).
fn exit_through_vmm(status: u32) {
    const SYS_IOPL: u64 = 172;
    // SAFETY: iopl(3) only lets this process (PID 1, with CAP_SYS_RAWIO)
    // use I/O ports.
    let r = unsafe { syscall3(SYS_IOPL, 3, 0, 0) };
    if r != 0 {
        eprintln!("vmmcall-init: iopl(3) failed ({r}): cannot reach the VMM's exit port");
        return;
    }
    // SAFETY: under the vmmcall VMM's Linux profile this port is its exit
    // port: the VMM ends the run with EAX as the status.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") ports::LINUX_EXIT_PORT, in("eax") status,
                         options(nomem, nostack))
    };
    eprintln!("vmmcall-init: the VMM's exit port returned");
}

fn main() {
    let code = run();
    drain_console();
    // Negative statuses cannot happen; a status above u32 range neither.
    let status = u32::try_from(code).unwrap_or(u32::MAX);
    if guest_sdk::detect().is_some() {
        exit_through_vmm(status);
    } else {
        println!("vmmcall-init: no vmmcall VMM; stopping the machine directly");
        drain_console();
    }
    stop_without_vmm(code)
}
