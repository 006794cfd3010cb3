//! The seed example, guest side: look `hello` up by name, call it with 5,
//! print what it returned. Also checks the two ways a call can miss: an
//! unknown name (`Error::NotFound`) and a number nobody registered
//! (`-ENOSYS`).
#![no_std]
#![no_main]

use guest_rt::println;
use guest_sdk::{call, Error};

guest_rt::entry!(main);

fn main() -> Result<(), Error> {
    let ret = call!("hello", rbx = 5)?;
    println!("hello returned {ret}");

    match call!("no-such-hypercall") {
        Err(Error::NotFound) => println!("unknown name: NotFound (as expected)"),
        other => {
            println!("unknown name: expected NotFound, got {other:?}");
            return Err(Error::Invalid);
        }
    }
    // SAFETY: no arguments; an unregistered number touches no memory.
    match unsafe { guest_sdk::call_number(0xdead_beef, [0; 5]) } {
        Err(Error::NoSys) => println!("unknown number: -ENOSYS (as expected)"),
        other => {
            println!("unknown number: expected NoSys, got {other:?}");
            return Err(Error::Invalid);
        }
    }
    Ok(())
}
