//! Giving memory a long-lived pod process no longer uses back to the
//! system. A pod's supervisor and infra process live as long as the pod,
//! so what bring-up left touched (deep calls, large transient data) would
//! otherwise stay resident in every pod.

const PAGE: usize = 4096;
/// Kept below the current frame: no call made from there goes deeper.
const STACK_MARGIN: usize = 16 * 1024;

/// The heap's free pages and the stack's pages below the frames in use.
pub fn release_free_memory() {
    release_unused_stack();
    // SAFETY: malloc_trim only walks and trims this process's own heap.
    unsafe { libc::malloc_trim(0) };
}

/// `[start, end)` of the mapping /proc/self/maps names `name`.
fn mapping(name: &str) -> Option<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let line = maps.lines().find(|l| l.ends_with(name))?;
    let (start, rest) = line.split_once('-')?;
    let end = rest.split(' ').next()?;
    Some((
        usize::from_str_radix(start, 16).ok()?,
        usize::from_str_radix(end, 16).ok()?,
    ))
}

/// Drops the pages of `[start, end)`: touched again, they come back
/// zero-filled.
///
/// # Safety
/// Nothing may live in the range, or be read from it before it is
/// written again.
unsafe fn drop_pages(start: usize, end: usize) {
    if end > start {
        // SAFETY: the caller vouches the range holds nothing live.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// Drops the main stack's pages more than [`STACK_MARGIN`] below this
/// frame: no frame lives there.
pub fn release_unused_stack() {
    // Dropped pages stay mapped, so the mapping's low end (reached during
    // bring-up, the deepest calls) is read once.
    static LOWEST: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let Some(lowest) = *LOWEST.get_or_init(|| mapping("[stack]").map(|(start, _)| start)) else {
        return;
    };
    let marker = 0u8;
    let here = std::ptr::addr_of!(marker) as usize;
    let end = here.saturating_sub(STACK_MARGIN) & !(PAGE - 1);
    // SAFETY: the range lies below every live frame of this (main) thread,
    // past the margin the calls from here use; stack pages below the
    // stack pointer are dead by the ABI.
    unsafe { drop_pages(lowest, end) };
}

/// Drops the whole heap. Only for a process that never allocates again:
/// the infra process, forked from its supervisor, which would otherwise
/// keep a private copy of every heap page the supervisor writes later.
///
/// # Safety
/// The caller must not allocate, free or read heap memory afterwards.
pub unsafe fn discard_heap() {
    let Some((start, end)) = mapping("[heap]") else {
        return;
    };
    // SAFETY: the caller uses no heap memory from here on.
    unsafe { drop_pages(start, end) };
}
