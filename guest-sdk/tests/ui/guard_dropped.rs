//! The lock that gives access to a buffer must be held until the VMM has
//! written it: a temporary guard, or one dropped while the buffer is lent,
//! would let another thread in during the write.
use guest_sdk::call;
use std::sync::Mutex;

fn main() {
    let m = Mutex::new([0u8; 16]);
    let _ = call!("get_status", (rbx, rcx) = &mut *m.lock().unwrap());
    let mut guard = m.lock().unwrap();
    let _ = call!("get_status", (rbx, rcx) = &mut *guard, rdx = { drop(guard); 16 });
}
