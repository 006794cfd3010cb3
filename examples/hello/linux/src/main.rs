//! The seed example, Linux side: the program the seed article runs in the
//! guest OS (`./hello`), as a static Rust program in an unmodified Linux
//! guest, calling the VMM from ring 3.
//!
//! `cargo xtask linux hello` puts it in the initramfs and boots it. It
//! checks, from ring 3 of a real OS:
//! - the seed's call: `call!("hello", rbx = 5)` returns 10 (the VMM prints
//!   `Hello BitVisor!, arg1 = 5`);
//! - misses and errors: an unknown name is `NotFound`, a handler for CPL 0
//!   only is `Permission`, a bad pointer is `Fault`;
//! - memory Linux has not faulted in: a fresh `mmap` buffer that the VMM
//!   writes, and a name in a file mapping no one has read yet (the SDK
//!   touches those pages before the call);
//! - the x87/SSE state survives VM exits: XMM0-15, MXCSR, the x87 control
//!   word and ST(0) are loaded with patterns, a hypercall and a CPUID exit
//!   run, and every register is compared ([`vector_state`]).
//!
//! - who may end the run (docs/ABI.md, "Who may end the run"): the `exit`
//!   hypercall is `Permission` from ring 3 (the run goes on); the VMM's
//!   exit port faults (SIGSEGV) in a process the kernel has not given it;
//!   and `iopl(3)` is refused, since /init runs its programs without
//!   `CAP_SYS_RAWIO` ([`who_ends_the_run`]).
//!
//! - every CPU at once ([`smp`]): one thread per online CPU, pinned to it,
//!   each filling its own buffer 2,000 times through `hello_fill` and
//!   checking every byte, its CPU and its vector registers after each call;
//!   the number of CPUs Linux brought online must be the VMM's vCPU count.
//! - a long call and a batch from ring 3 (docs/ABI.md, "Long calls",
//!   "vmmcall_batch"): `hello_long_fill` writes 16 MiB in steps while an
//!   interval timer sends SIGALRM every 2 ms; the handler counts the
//!   signals and reads CLOCK_MONOTONIC, so the signals it takes while the
//!   call is in progress show that the kernel's timer interrupts ran (and
//!   the clock advanced) between the call's steps ([`long_and_batch`]).
//!   Then a batch of four entries, each answered as it would be alone.
//!
//! Without the VMM it says so and exits 1, never by SIGILL.

use guest_sdk::{call, Error, Instruction};
use std::io::Write;
use std::process::ExitCode;

/// Exits (one hypercall and one CPUID each round) in the vector check.
const ROUNDS: usize = 1000;

/// Wait until everything written to the console has left the UART: the
/// VMM prints on the same UART, so its lines would otherwise land in the
/// middle of ours.
fn drain_console() {
    let _ = std::io::stdout().flush();
    // SAFETY: TCSBRK with a non-zero argument is tcdrain(): it only waits.
    unsafe { libc::ioctl(1, libc::TCSBRK, 1) };
}

/// Run `call` with the console drained first, so that whatever the VMM
/// prints during the call starts on a line of its own.
fn drained(call: impl FnOnce() -> Result<u64, Error>) -> Result<u64, Error> {
    drain_console();
    call()
}

fn expect(what: &str, got: Result<u64, Error>, want: Error) -> bool {
    match got {
        Err(e) if e == want => {
            println!("{what}: {want:?} (as expected)");
            true
        }
        other => {
            println!("{what}: got {other:?}, expected Err({want:?})");
            false
        }
    }
}

/// An anonymous mapping of `len` bytes that nothing has touched yet.
fn fresh_mapping(len: usize) -> &'static mut [u8] {
    // SAFETY: a new private anonymous mapping; on success the kernel hands
    // out `len` readable and writable bytes that nothing else refers to.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap failed");
    // SAFETY: see above; the mapping is never unmapped.
    unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) }
}

/// The VMM writes a buffer in pages Linux has not faulted in.
fn fresh_buffer() -> bool {
    let map = fresh_mapping(3 * 4096);
    // Straddle two untouched pages.
    let buf = &mut map[4096 - 100..4096 + 200];
    let r = drained(|| call!("hello_fill", (rbx, rcx) = &mut *buf, rdx = 0x5Au8));
    let ok = r == Ok(300) && buf.iter().all(|&b| b == 0x5A) && map[4096 - 101] == 0;
    println!(
        "fresh mmap buffer: {} ({r:?})",
        if ok {
            "written by the VMM (as expected)"
        } else {
            "NOT written as expected"
        }
    );
    ok
}

/// A name in a file mapping whose page Linux has not faulted in.
fn lazy_name() -> bool {
    let path = "/tmp-hello-name";
    if std::fs::write(path, b"hello\0").is_err() {
        println!("name in a page not faulted in: cannot write {path}");
        return false;
    }
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            println!("name in a page not faulted in: cannot open {path}: {e}");
            return false;
        }
    };
    use std::os::fd::AsRawFd;
    // SAFETY: maps 6 bytes of a file we own read-only; nothing writes the
    // file while mapped, and the mapping is never unmapped.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        println!("name in a page not faulted in: mmap failed");
        return false;
    }
    // SAFETY: the mapping holds the 6 bytes just written.
    let name = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), 6) };
    let number = guest_sdk::lookup(name);
    let ok = number.is_ok() && number == guest_sdk::lookup(b"hello\0");
    println!(
        "name in a page not faulted in: {} ({number:?})",
        if ok {
            "found (as expected)"
        } else {
            "NOT found"
        }
    );
    ok
}

/// One round: load the patterns into XMM0-15, MXCSR, FCW and ST(0), run
/// the hypercall instruction (function 0 with a name, a lookup) and a
/// CPUID exit, and store everything back. Returns the registers as the
/// program saw them afterwards.
fn vector_round(
    insn: Instruction,
    xmm_in: &[[u8; 16]; 16],
    mxcsr: u32,
    fcw: u16,
    st0: f64,
) -> ([[u8; 16]; 16], u32, u16, f64) {
    let mut xmm_out = [[0u8; 16]; 16];
    let (mut mxcsr_out, mut fcw_out, mut st0_out) = (0u32, 0u16, 0f64);
    let name = b"hello\0";
    let vmcall = u64::from(insn == Instruction::Vmcall);
    // SAFETY: loads and stores only the buffers named here; the hypercall
    // is function 0 (reads the NUL-terminated name, changes only RAX), the
    // VMM is present (checked by the caller); CPUID changes RAX..RDX. RBX
    // is swapped through a scratch register. MXCSR and the x87 state are
    // restored to the defaults before the block ends.
    unsafe {
        std::arch::asm!(
            "fninit",
            "fldcw [{fcw_in}]",
            "fld qword ptr [{st0_in}]",
            "ldmxcsr [{mx_in}]",
            "movdqu xmm0, [{x} + 0]",
            "movdqu xmm1, [{x} + 16]",
            "movdqu xmm2, [{x} + 32]",
            "movdqu xmm3, [{x} + 48]",
            "movdqu xmm4, [{x} + 64]",
            "movdqu xmm5, [{x} + 80]",
            "movdqu xmm6, [{x} + 96]",
            "movdqu xmm7, [{x} + 112]",
            "movdqu xmm8, [{x} + 128]",
            "movdqu xmm9, [{x} + 144]",
            "movdqu xmm10, [{x} + 160]",
            "movdqu xmm11, [{x} + 176]",
            "movdqu xmm12, [{x} + 192]",
            "movdqu xmm13, [{x} + 208]",
            "movdqu xmm14, [{x} + 224]",
            "movdqu xmm15, [{x} + 240]",
            "xchg {name}, rbx",
            "xor eax, eax",
            "test {vmcall}, {vmcall}",
            "jz 2f",
            "vmcall",
            "jmp 3f",
            "2:",
            "vmmcall",
            "3:",
            "xchg {name}, rbx",
            "mov {name}, rbx",
            "mov eax, 0x40000000",
            "xor ecx, ecx",
            "cpuid",
            "mov rbx, {name}",
            "movdqu [{y} + 0], xmm0",
            "movdqu [{y} + 16], xmm1",
            "movdqu [{y} + 32], xmm2",
            "movdqu [{y} + 48], xmm3",
            "movdqu [{y} + 64], xmm4",
            "movdqu [{y} + 80], xmm5",
            "movdqu [{y} + 96], xmm6",
            "movdqu [{y} + 112], xmm7",
            "movdqu [{y} + 128], xmm8",
            "movdqu [{y} + 144], xmm9",
            "movdqu [{y} + 160], xmm10",
            "movdqu [{y} + 176], xmm11",
            "movdqu [{y} + 192], xmm12",
            "movdqu [{y} + 208], xmm13",
            "movdqu [{y} + 224], xmm14",
            "movdqu [{y} + 240], xmm15",
            "stmxcsr [{mx_out}]",
            "fnstcw [{fcw_out}]",
            "fstp qword ptr [{st0_out}]",
            "fninit",
            "push 0x1F80",
            "ldmxcsr [rsp]",
            "add rsp, 8",
            x = in(reg) xmm_in.as_ptr(),
            y = in(reg) xmm_out.as_mut_ptr(),
            mx_in = in(reg) &mxcsr,
            mx_out = in(reg) &mut mxcsr_out,
            fcw_in = in(reg) &fcw,
            fcw_out = in(reg) &mut fcw_out,
            st0_in = in(reg) &st0,
            st0_out = in(reg) &mut st0_out,
            name = inout(reg) name.as_ptr() => _,
            vmcall = in(reg) vmcall,
            out("rax") _, out("rcx") _, out("rdx") _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
        );
    }
    (xmm_out, mxcsr_out, fcw_out, st0_out)
}

/// Fill the x87/SSE registers with patterns, make hypercall and CPUID
/// exits in a loop, and check every register after each round.
fn vector_state(insn: Instruction) -> bool {
    let mut changed = 0usize;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..ROUNDS {
        let mut xmm = [[0u8; 16]; 16];
        for reg in xmm.iter_mut() {
            for b in reg.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
        }
        // Round toward zero, DAZ, FZ, exceptions masked: not the default.
        let mxcsr = 0x1F80 | (3 << 13) | (1 << 6) | (1 << 15);
        // Single precision, round up, all exceptions masked (bit 6 is
        // reserved and reads as 1).
        let fcw = 0x007F | (2 << 10);
        let st0 = round as f64 + 0.25;
        let (x, m, c, s) = vector_round(insn, &xmm, mxcsr, fcw, st0);
        let bad = usize::from(x != xmm)
            + usize::from(m != mxcsr)
            + usize::from(c != fcw)
            + usize::from(s.to_bits() != st0.to_bits());
        if bad != 0 && changed == 0 {
            println!("vector state: round {round}: MXCSR {m:#x} (want {mxcsr:#x}), FCW {c:#x} (want {fcw:#x}), ST0 {s} (want {st0}), XMM equal: {}", x == xmm);
        }
        changed += bad;
    }
    println!(
        "vector state: {} exits, {changed} changed (XMM0-15, MXCSR, x87 FCW and ST0; no AVX: CPUID hides it)",
        2 * ROUNDS
    );
    changed == 0
}

/// `hello_fill` calls per thread in [`smp`].
const SMP_CALLS: usize = 2000;

/// One thread per online CPU, each pinned there with `sched_setaffinity`,
/// checking with `sched_getcpu` that it runs there; each makes
/// [`SMP_CALLS`] calls of `hello_fill` into its own buffer with its own
/// lengths and bytes, checks every byte of the buffer (the filled part and
/// the rest) and its vector registers ([`vector_round`]) after each call.
/// Prints `smp: T threads on N CPUs, C calls, W wrong, R calls/s`: T threads, N the
/// VMM's vCPU count (`vmm_vcpu_count`), W wrong bytes, registers, CPUs or
/// results. Passes when T = N and W = 0.
fn smp(insn: Instruction) -> bool {
    // SAFETY: sysconf only reads a system value.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    let vcpus = call!("vmm_vcpu_count").unwrap_or(1) as usize;
    let start = std::time::Instant::now();
    let threads: Vec<_> = (0..online)
        .map(|cpu| {
            std::thread::spawn(move || -> (u64, u64) {
                // SAFETY: a zeroed cpu_set_t with one bit set, for this
                // thread (pid 0); sched_getcpu only reads.
                let pinned = unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
                };
                let mut wrong = u64::from(!pinned);
                let mut buf = vec![0u8; 4096 + 64];
                let mut seed = 0x51ED_2701_u64 ^ (cpu as u64) << 32;
                let xmm = [[cpu as u8; 16]; 16];
                for i in 0..SMP_CALLS {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let len = 1 + (seed % 4096) as usize;
                    let byte = (seed >> 16) as u8 | 1;
                    let before = buf.clone();
                    let r = call!("hello_fill", (rbx, rcx) = &mut buf[..len], rdx = byte);
                    let filled = buf[..len].iter().all(|&b| b == byte);
                    let rest = buf[len..] == before[len..];
                    // SAFETY: sched_getcpu only reads.
                    let here = unsafe { libc::sched_getcpu() };
                    let (x, m, c, _) = vector_round(insn, &xmm, 0x1F80, 0x037F, i as f64);
                    let vector_ok = x == xmm && m == 0x1F80 && c == 0x037F;
                    if r != Ok(len as u64) || !filled || !rest || here != cpu as i32 || !vector_ok {
                        if wrong < 3 {
                            println!(
                                "smp: CPU {cpu}, call {i}: result {r:?}, filled {filled}, rest kept {rest}, on CPU {here}, vector state kept {vector_ok}"
                            );
                        }
                        wrong += 1;
                    }
                }
                (SMP_CALLS as u64, wrong)
            })
        })
        .collect();
    let (mut calls, mut wrong, mut threads_done) = (0u64, 0u64, 0usize);
    for t in threads {
        match t.join() {
            Ok((c, w)) => {
                calls += c;
                wrong += w;
                threads_done += 1;
            }
            Err(_) => wrong += 1,
        }
    }
    // Each call is a hello_fill and a vector round (a lookup and a CPUID
    // exit): three exits; the rate counts the hello_fill calls.
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    println!(
        "smp: {threads_done} threads on {vcpus} CPUs, {calls} calls, {wrong} wrong, {:.0} calls/s",
        calls as f64 / secs
    );
    threads_done == vcpus && wrong == 0
}

/// The argument with which this program, run again as a child, writes the
/// VMM's exit port.
const POKE_EXIT_PORT: &str = "--poke-exit-port";

/// Ring 3 cannot end the run: `exit` answers `Permission`, the exit port
/// (a 4-byte OUT to 0xF4) faults in a child process that Linux has not
/// given the port, and `iopl(3)` fails with EPERM for lack of
/// `CAP_SYS_RAWIO`. Each of these, had it worked, would have ended the run
/// with status 0 here, before the lines that expect.txt requires below.
fn who_ends_the_run() -> bool {
    let mut ok = expect(
        "exit from ring 3",
        drained(|| call!("exit", rbx = 0u32)),
        Error::Permission,
    );
    let me = std::env::args().next().unwrap_or_default();
    let child = std::process::Command::new(&me).arg(POKE_EXIT_PORT).status();
    use std::os::unix::process::ExitStatusExt;
    match child.map(|s| s.signal()) {
        Ok(Some(libc::SIGSEGV)) => println!("exit port without ioperm: SIGSEGV (as expected)"),
        other => {
            println!("exit port without ioperm: got {other:?}, expected SIGSEGV");
            ok = false;
        }
    }
    // SAFETY: iopl(3) changes only this process's I/O privilege, if it
    // succeeds at all.
    let r = unsafe { libc::iopl(3) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    if r == -1 && errno == Some(libc::EPERM) {
        println!("iopl(3) without CAP_SYS_RAWIO: EPERM (as expected)");
    } else {
        println!("iopl(3) without CAP_SYS_RAWIO: got {r} ({errno:?}), expected EPERM");
        ok = false;
    }
    ok
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(POKE_EXIT_PORT) {
        // SAFETY: without I/O permission this OUT raises #GP (SIGSEGV)
        // before any VM exit; with it, the VMM would end the run.
        unsafe {
            core::arch::asm!("out dx, eax", in("dx") 0xF4u16, in("eax") 0u32, options(nomem, nostack))
        };
        return ExitCode::SUCCESS;
    }
    let Some(vmm) = guest_sdk::detect() else {
        println!("hello: the vmmcall VMM is not present (CPUID has no vmmcall-rs signature)");
        return ExitCode::FAILURE;
    };
    println!(
        "hello: vmmcall VMM present, ABI v{}, {:?}",
        vmm.abi_version, vmm.instruction
    );
    let mut ok = true;
    match drained(|| call!("hello", rbx = 5)) {
        Ok(r) => {
            println!("hello returned {r}");
            ok &= r == 10;
        }
        Err(e) => {
            println!("hello failed: {e}");
            ok = false;
        }
    }
    ok &= expect(
        "unknown name",
        drained(|| call!("no_such_hypercall")),
        Error::NotFound,
    );
    ok &= expect(
        "kernel-only call from ring 3",
        drained(|| call!("hello_kernel")),
        Error::Permission,
    );
    ok &= expect(
        "bad pointer",
        drained(|| call!("hello_fill", rbx = 0x10u64, rcx = 16u64, rdx = 1u8)),
        Error::Fault,
    );
    ok &= fresh_buffer();
    ok &= lazy_name();
    ok &= vector_state(vmm.instruction);
    ok &= smp(vmm.instruction);
    ok &= who_ends_the_run();
    ok &= long_and_batch();
    drain_console();
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// SIGALRMs taken since the long call started.
static ALARMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// CLOCK_MONOTONIC (ns) at the first and the last of them.
static FIRST_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static LAST_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// CLOCK_MONOTONIC in nanoseconds (async-signal-safe).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

extern "C" fn on_alarm(_: libc::c_int) {
    use std::sync::atomic::Ordering::Relaxed;
    let now = monotonic_ns();
    if ALARMS.fetch_add(1, Relaxed) == 0 {
        FIRST_NS.store(now, Relaxed);
    }
    LAST_NS.store(now, Relaxed);
}

/// Arm (2 ms) or disarm the interval timer.
fn interval_timer(on: bool) {
    let usec = if on { 2000 } else { 0 };
    let it = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: usec,
        },
        it_value: libc::timeval {
            tv_sec: 0,
            tv_usec: usec,
        },
    };
    // SAFETY: setitimer reads the itimerval we own.
    unsafe { libc::setitimer(libc::ITIMER_REAL, &it, core::ptr::null_mut()) };
}

/// One long call and one batch from ring 3; see the module docs.
fn long_and_batch() -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    const LEN: usize = 16 << 20;
    // SAFETY: a fresh private anonymous mapping, populated so that every
    // page is present when the VMM walks the page tables.
    let buf = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if buf == libc::MAP_FAILED {
        println!("long call from ring 3: mmap failed");
        return false;
    }
    // SAFETY: installs a handler that only touches atomics and reads the
    // clock (async-signal-safe).
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_alarm as *const () as usize;
        libc::sigaction(libc::SIGALRM, &sa, core::ptr::null_mut());
    }
    ALARMS.store(0, Relaxed);
    interval_timer(true);
    let t0 = monotonic_ns();
    let r = call!(
        "hello_long_fill",
        rbx = buf as u64,
        rcx = LEN as u64,
        rdx = 0x5Au8
    );
    let t1 = monotonic_ns();
    interval_timer(false);
    let alarms = ALARMS.load(Relaxed);
    let inside_ms = LAST_NS.load(Relaxed).saturating_sub(FIRST_NS.load(Relaxed)) / 1_000_000;
    // SAFETY: the mapping is LEN bytes, ours, and the call is done.
    let bytes = unsafe { core::slice::from_raw_parts(buf as *const u8, LEN) };
    let wrong = bytes.iter().filter(|&&b| b != 0x5A).count();
    // SAFETY: unmapping what we mapped; `bytes` is not used after.
    unsafe { libc::munmap(buf, LEN) };
    // Without steps, at most one signal could arrive, after the call.
    let long_ok = r == Ok(LEN as u64) && wrong == 0 && alarms >= 2 && inside_ms > 0;
    println!(
        "long call from ring 3: {} MiB in {} ms, {alarms} timer signals during it, \
         CLOCK_MONOTONIC advanced {inside_ms} ms between them, {wrong} wrong bytes{}",
        LEN >> 20,
        (t1 - t0) / 1_000_000,
        if long_ok {
            " (as expected)"
        } else {
            ": FAILED"
        }
    );
    drain_console();

    // A batch: two fills, a kernel-only handler (EPERM from ring 3, as
    // alone) and an unknown number (ENOSYS), each against the call alone.
    let fill = guest_sdk::lookup(b"hello_fill\0");
    let kernel = guest_sdk::lookup(b"hello_kernel\0");
    let (Ok(fill), Ok(kernel)) = (fill, kernel) else {
        println!("batch from ring 3: lookup failed");
        return false;
    };
    let mut small = [0u8; 64];
    let at = small.as_mut_ptr() as u64;
    let entries = [
        guest_sdk::BatchEntry::new(fill, [at, 32, 7, 0, 0]),
        guest_sdk::BatchEntry::new(kernel, [0; 5]),
        guest_sdk::BatchEntry::new(0xDEAD_BEEF, [0; 5]),
        guest_sdk::BatchEntry::new(fill, [at + 32, 32, 9, 0, 0]),
    ];
    let mut results = [0u64; 4];
    // SAFETY: the fills name `small`, ours.
    let n = unsafe { guest_sdk::batch(&entries, &mut results, false) };
    let got: Vec<_> = results.iter().map(|&r| Error::check(r)).collect();
    let want = [Ok(32), Err(Error::Permission), Err(Error::NoSys), Ok(32)];
    let batch_ok = n == Ok(4) && got == want && small[..32] == [7; 32] && small[32..] == [9; 32];
    println!(
        "batch from ring 3: {} entries, {:?}{}",
        entries.len(),
        got,
        if batch_ok {
            ", each answered as alone (as expected)"
        } else {
            ": FAILED"
        }
    );
    long_ok && batch_ok
}
