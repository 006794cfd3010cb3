//! A buffer lent to the VMM stays lent until the call returns: nothing else
//! may use it in the meantime.
use guest_sdk::call;

fn main() {
    let mut buf = [0u8; 16];
    let _ = call!("get_status", (rbx, rcx) = &mut buf, rdx = buf.len());
    let _ = call!("get_status", (rbx, rcx) = &mut buf, rdx = { buf[0] = 1; 16 });
}
