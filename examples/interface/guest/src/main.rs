//! The interface example, bare-metal guest (CPL 0): every hypercall of
//! `demo` through its typed stubs, the seed's `hello` also by name, typed
//! calls in one exit through a `guest_sdk::Batch`, and a guest built
//! against an older declaration (`demo_v1`) refused with
//! `Error::Mismatch`.
//!
//! Each stub is safe Rust, typed as declared: `demo::add(1, 2)` takes two
//! `u32`s and returns `Result<u64, Error>`; a wrong argument type or count
//! does not compile (`tests/tests/ui/interface_*.rs`).
#![no_std]
#![no_main]

use guest_rt::println;
use guest_sdk::{call, Batch, Error};
use interface_api::{demo, demo_v1, BUFFER_MAX};

guest_rt::entry!(main);

/// Print `what: value` when `got == want`, else say what came and fail.
fn check<T: PartialEq + core::fmt::Debug, E: PartialEq + core::fmt::Debug>(
    what: &str,
    got: Result<T, E>,
    want: Result<T, E>,
) -> Result<(), Error> {
    if got == want {
        println!("interface: {what}: {got:?} (as expected)");
        Ok(())
    } else {
        println!("interface: {what}: got {got:?}, expected {want:?}");
        Err(Error::Invalid)
    }
}

/// A page of its own for the buffers, so that they cross no other data.
static mut OUT: [u8; BUFFER_MAX + 1] = [0; BUFFER_MAX + 1];

fn main() -> Result<(), Error> {
    // The seed's call, typed; and by name, BitVisor-style, on the same
    // handler.
    check("demo::hello(5)", demo::hello(5), Ok(10))?;
    check("call!(\"hello\", rbx = 5)", call!("hello", rbx = 5), Ok(10))?;

    check("demo::add(40, 2)", demo::add(40, 2), Ok(42))?;
    check(
        "demo::add(u32::MAX, u32::MAX)",
        demo::add(u32::MAX, u32::MAX),
        Ok(2 * u64::from(u32::MAX)),
    )?;

    // A buffer the VMM reads: a shared reference, never written.
    let data: [u8; 5] = [1, 2, 3, 4, 250];
    check(
        "demo::checksum(&[1, 2, 3, 4, 250])",
        demo::checksum(&data),
        Ok(260),
    )?;

    // A buffer the VMM writes, and one too long for the handler: nothing
    // written then.
    // SAFETY: the only reference to OUT, taken once, on the one vCPU.
    let out = unsafe { &mut *core::ptr::addr_of_mut!(OUT) };
    let (head, tail) = out.split_at_mut(100);
    let wrote = demo::fill(head, 0x5a);
    let ok = head.iter().all(|&b| b == 0x5a) && tail[0] == 0;
    check(
        "demo::fill(&mut [0; 100], 0x5a)",
        wrote.map(|n| (n, ok)),
        Ok((100, true)),
    )?;
    let too_long = demo::fill(out, 1);
    let untouched = out[100..].iter().all(|&b| b == 0);
    check(
        "demo::fill(&mut [_; 4097], 1), nothing written",
        too_long.map(|n| (n, untouched)).map_err(|e| (e, untouched)),
        Err((Error::Vmm(vmmcall::Error::NoSpace), true)),
    )?;

    // Kernel-only calls work at CPL 0.
    check(
        "demo::magnitude(-21, true)",
        demo::magnitude(-21, true),
        Ok(42),
    )?;
    check(
        "demo::magnitude(i32::MIN, false)",
        demo::magnitude(i32::MIN, false),
        Ok(1 << 31),
    )?;
    check("demo::tick()", demo::tick(), Ok(()))?;

    // Several typed calls in one exit (vmmcall_batch): each entry is
    // answered as its stub's call would be, results typed as declared.
    typed_batch()?;

    // Version skew: built against demo v1, whose `add` took one u32.
    check(
        "demo_v1::add(1) (old declaration)",
        demo_v1::add(1),
        Err(Error::Mismatch),
    )?;
    Ok(())
}

/// A typed batch of four calls, then one that stops at its failing entry.
fn typed_batch() -> Result<(), Error> {
    let data = [7u8, 8, 9];
    let mut buf = [0u8; 32];
    // The batch borrows `buf` until its last use, the block's end.
    let got = {
        let mut batch = Batch::<4>::new();
        let add = batch.push(demo::entries::add(1, 2)?)?;
        let sum = batch.push(demo::entries::checksum(&data)?)?;
        let fill = batch.push(demo::entries::fill(&mut buf, 0x33)?)?;
        let mag = batch.push(demo::entries::magnitude(-4, true)?)?;
        (
            batch.run(false),
            batch.result(add),
            batch.result(sum),
            batch.result(fill),
            batch.result(mag),
        )
    };
    let filled = buf.iter().all(|&b| b == 0x33);
    check(
        "typed batch of add, checksum, fill, magnitude",
        Ok::<_, Error>((got, filled)),
        Ok(((Ok(4), Ok(3), Ok(24), Ok(32), Ok(8)), true)),
    )?;

    // Stop on error: the fill is too long (-ENOSPC), the add after it
    // does not run.
    // SAFETY: the only reference to OUT now (main's is no longer used).
    let out = unsafe { &mut *core::ptr::addr_of_mut!(OUT) };
    let mut batch = Batch::<2>::new();
    let fill = batch.push(demo::entries::fill(out, 1)?)?;
    let add = batch.push(demo::entries::add(1, 1)?)?;
    let got = (batch.run(true), batch.result(fill), batch.result(add));
    check(
        "typed batch stopping at fill(&mut [_; 4097], 1)",
        Ok::<_, Error>(got),
        Ok((
            Ok(1),
            Err(Error::Vmm(vmmcall::Error::NoSpace)),
            Err(Error::NotRun),
        )),
    )
}
