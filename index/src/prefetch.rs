//! A cache prefetch hint, so batch lookups keep many DRAM loads in flight.

/// Asks the CPU to start loading the cache line at `addr`. Never faults, whatever the address.
#[inline(always)]
pub(crate) fn prefetch<T>(addr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it reads nothing architecturally visible and cannot fault,
    // even on an invalid address; SSE is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}
