//! Ask the VMM for its status text (BitVisor's `get_status`), first into a
//! buffer that is too small (the VMM truncates and returns the full
//! length), then into one that fits, and print it.
#![no_std]
#![no_main]

use guest_rt::println;
use guest_sdk::{call, Error};

guest_rt::entry!(main);

fn main() -> Result<(), Error> {
    for _ in 0..3 {
        call!("ping")?;
    }
    let mut small = [0u8; 8];
    // The buffer goes with its length: RBX = address, RCX = 8.
    let full = call!("get_status", (rbx, rcx) = &mut small)? as usize;
    println!(
        "status: {full} bytes, first {} = {:?}",
        small.len(),
        core::str::from_utf8(&small).unwrap_or("?")
    );
    if full <= small.len() {
        println!("status: expected truncation");
        return Err(Error::Invalid);
    }
    let mut buf = [0u8; 1024];
    let n = call!("get_status", (rbx, rcx) = &mut buf)? as usize;
    let text = core::str::from_utf8(buf.get(..n.min(buf.len())).unwrap_or(&[]))
        .map_err(|_| Error::Invalid)?;
    println!("{text}");
    if !text.contains("ping") || !text.contains(" 3\n") {
        println!("status: expected ping to have been called 3 times");
        return Err(Error::Invalid);
    }
    // A buffer the VMM cannot write: a non-canonical address.
    match call!("get_status", rbx = 0x8000_0000_0000_0000u64, rcx = 16) {
        Err(Error::Fault) => println!("status: bad buffer -> EFAULT (as expected)"),
        other => {
            println!("status: bad buffer: expected EFAULT, got {other:?}");
            return Err(Error::Invalid);
        }
    }
    Ok(())
}
