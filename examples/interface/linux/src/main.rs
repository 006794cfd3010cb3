//! The interface example, Linux side: a ring-3 program in an unmodified
//! Linux guest calls the `demo` interface through the same typed stubs as
//! the bare-metal guest.
//!
//! From ring 3, the `user` calls work (integers, a buffer the VMM reads, a
//! buffer the VMM writes into a fresh `mmap` that Linux has not faulted
//! in), the CPL-0-only calls answer `Permission`, a typed batch of three
//! calls answers each as alone, and a call built against the older
//! declaration (`demo_v1`) answers `Mismatch`. Without the VMM it says so
//! and exits 1.

use guest_sdk::Error;
use interface_api::{demo, demo_v1};
use std::fmt::Debug;
use std::io::Write;
use std::process::ExitCode;

/// Let the console drain before the VMM prints on it.
fn drain_console() {
    let _ = std::io::stdout().flush();
    // SAFETY: TCSBRK with a non-zero argument is tcdrain(): it only waits.
    unsafe { libc::ioctl(1, libc::TCSBRK, 1) };
}

fn check<T: PartialEq + Debug, E: PartialEq + Debug>(
    what: &str,
    got: Result<T, E>,
    want: Result<T, E>,
) -> bool {
    let ok = got == want;
    if ok {
        println!("interface-linux: {what}: {got:?} (as expected)");
    } else {
        println!("interface-linux: {what}: got {got:?}, expected {want:?}");
    }
    ok
}

/// `len` bytes of a new anonymous mapping that nothing has touched.
fn fresh_mapping(len: usize) -> Option<&'static mut [u8]> {
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
    if p == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: see above; the mapping is never unmapped, so 'static holds.
    Some(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) })
}

/// What the typed batch answered: (add, fill, magnitude, the buffer filled).
type BatchAnswers = (
    Result<u64, Error>,
    Result<u64, Error>,
    Result<u64, Error>,
    bool,
);

/// `add`, `fill` into a fresh mapping and the kernel-only `magnitude`, in
/// one `vmmcall_batch`.
fn typed_batch() -> Result<BatchAnswers, Error> {
    let buf = fresh_mapping(64).ok_or(Error::Invalid)?;
    let got = {
        let mut batch = guest_sdk::Batch::<3>::new();
        let add = batch.push(demo::entries::add(1, 2)?)?;
        let fill = batch.push(demo::entries::fill(&mut buf[..], 0x77)?)?;
        let mag = batch.push(demo::entries::magnitude(-1, false)?)?;
        batch.run(false)?;
        (batch.result(add), batch.result(fill), batch.result(mag))
    };
    Ok((got.0, got.1, got.2, buf.iter().all(|&b| b == 0x77)))
}

fn main() -> ExitCode {
    if guest_sdk::detect().is_none() {
        println!("interface-linux: the vmmcall VMM is not present");
        return ExitCode::from(1);
    }
    let mut ok = true;
    drain_console();
    ok &= check("demo::hello(5)", demo::hello(5), Ok(10));
    ok &= check("demo::add(40, 2)", demo::add(40, 2), Ok(42));
    let data = b"interface";
    let sum: u32 = data.iter().map(|&b| u32::from(b)).sum();
    ok &= check(
        "demo::checksum(b\"interface\")",
        demo::checksum(data),
        Ok(sum),
    );
    match fresh_mapping(3 * 4096) {
        Some(map) => {
            // 300 bytes across a page boundary of pages Linux has not
            // faulted in: the stub makes them present first.
            let buf = &mut map[4096 - 100..4096 + 200];
            let n = demo::fill(buf, 0x5a);
            let written = buf.iter().all(|&b| b == 0x5a);
            ok &= check(
                "demo::fill(fresh mmap, 0x5a)",
                n.map(|n| (n, written)),
                Ok((300, true)),
            );
        }
        None => {
            println!("interface-linux: mmap failed");
            ok = false;
        }
    }
    let mut big = vec![0u8; interface_api::BUFFER_MAX + 1];
    ok &= check(
        "demo::fill(&mut [_; 4097], 1)",
        demo::fill(&mut big, 1),
        Err(Error::Vmm(vmmcall::Error::NoSpace)),
    );
    ok &= check(
        "demo::magnitude(-21, true) from ring 3",
        demo::magnitude(-21, true),
        Err(Error::Permission),
    );
    ok &= check(
        "demo::tick() from ring 3",
        demo::tick(),
        Err(Error::Permission),
    );
    // Typed calls in one exit from ring 3: each entry answered as its
    // stub's call would be, the kernel-only one with Permission.
    ok &= check(
        "typed batch of add, fill (fresh mmap), magnitude from ring 3",
        typed_batch(),
        Ok((Ok(3), Ok(64), Err(Error::Permission), true)),
    );
    // The VMM logs the mismatch on the console it shares with us: let our
    // lines leave first.
    drain_console();
    ok &= check(
        "demo_v1::add(1) (old declaration)",
        demo_v1::add(1),
        Err(Error::Mismatch),
    );
    if ok {
        println!("interface-linux: all checks passed");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
