//! Hypercall handlers in a crate of their own, as a VMM's plugin would
//! write them: it depends on the VMM (`toy-vmm`) alone and names vmmcall
//! through the VMM's re-export, `crate = toy_vmm::hypercall`.
//!
//! Nothing else in this crate is referenced by the VMM: the final binary
//! must name the crate (`use toy_vmm_handlers as _;`), or the linker drops
//! its handlers with it.

use toy_vmm::hypercall::{vmmcall, Caller, Error, GuestAddr};

/// `plugin_add(a, b)`: `a + b`, from any CPL.
#[vmmcall("plugin_add", user, crate = toy_vmm::hypercall)]
fn add(a: u32, b: u32) -> u64 {
    u64::from(a) + u64::from(b)
}

/// The text `hello` writes.
pub const HELLO: &[u8] = b"hello from a plugin";

/// `plugin_hello(buf, len)`: write [`HELLO`] to the guest's buffer; returns
/// its length, or `-ENOSPC` if `len` is too small.
#[vmmcall("plugin_hello", user, crate = toy_vmm::hypercall)]
fn hello(caller: &mut Caller, buf: GuestAddr, len: u64) -> Result<u64, Error> {
    if len < HELLO.len() as u64 {
        return Err(Error::NoSpace);
    }
    caller.write(buf, HELLO)?;
    toy_vmm::println(format!("plugin: wrote {} bytes", HELLO.len()));
    Ok(HELLO.len() as u64)
}

/// `plugin_secret()`: 42, for CPL 0 only.
#[vmmcall("plugin_secret", crate = toy_vmm::hypercall)]
fn secret() -> u32 {
    42
}
