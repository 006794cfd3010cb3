//! A buffer lent to the VMM stays lent until the call returns: nothing else
//! may use it in the meantime, not even to read its length (take the
//! length first, or name its register first).
use guest_sdk::call;

fn main() {
    let mut buf = [0u8; 16];
    let _ = call!("get_status", rbx = &mut buf, rcx = buf.len());
    let _ = call!("get_status", rbx = &mut buf, rcx = { buf[0] = 1; 16 });
}
