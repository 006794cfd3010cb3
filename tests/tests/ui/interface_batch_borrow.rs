//! A buffer lent to a batch entry stays borrowed as long as the batch:
//! reading it, or lending it again, before the batch is gone does not
//! compile (the VMM may write it when the batch runs).
vmmcall::interface! {
    /// A test interface.
    pub mod demo {
        /// Fills.
        #[user]
        fn fill(out: &mut [u8], byte: u8) -> u64;
    }
}

fn main() -> Result<(), guest_sdk::Error> {
    let mut buf = [0u8; 16];
    let mut batch = guest_sdk::Batch::<2>::new();
    let first = batch.push(demo::entries::fill(&mut buf, 1)?)?;
    let peek = buf[0];
    let _ = batch.push(demo::entries::fill(&mut buf, 2)?)?;
    batch.run(false)?;
    let _ = (batch.result(first), peek);
    Ok(())
}
