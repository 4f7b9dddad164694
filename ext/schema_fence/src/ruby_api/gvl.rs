//! Running blocking work (file and network I/O) without Ruby's global VM lock, so other Ruby
//! threads run meanwhile. Every call has an unblocking function: when Ruby interrupts the thread
//! (Thread#raise, Timeout, Ctrl-C, Sidekiq's shutdown) it fires the call's [`Interrupt`], which
//! ends waits and sleeps and cancels the running query on the server. The interrupt Ruby then
//! raises is caught (`rb_protect`) and returned as an error, so it never unwinds through Rust
//! frames; panics are caught here too and never cross into Ruby's C frames.

use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use magnus::{Error, Ruby};
use schema_fence::interrupt::Interrupt;

struct Call<F, R> {
    work: Option<F>,
    result: Option<std::thread::Result<R>>,
}

unsafe extern "C" fn trampoline<F: FnOnce() -> R, R>(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `Call` that `interruptible` keeps alive for the whole call.
    let call = unsafe { &mut *(data as *mut Call<F, R>) };
    if let Some(work) = call.work.take() {
        call.result = Some(catch_unwind(AssertUnwindSafe(work)));
    }
    std::ptr::null_mut()
}

/// The unblocking function: Ruby calls it (possibly from another thread) to interrupt the call.
unsafe extern "C" fn unblock(data: *mut c_void) {
    // SAFETY: `data` is the `Interrupt` that `interruptible` borrows for the whole call.
    let interrupt = unsafe { &*(data as *const Interrupt) };
    let _ = catch_unwind(AssertUnwindSafe(|| interrupt.fire()));
}

/// Runs `work` with the GVL released; an interrupt fires a fresh [`Interrupt`] nobody waits on
/// (for bounded work: file reads, starting a throwaway cluster).
pub(crate) fn without_gvl<F: FnOnce() -> R, R>(ruby: &Ruby, work: F) -> Result<R, Error> {
    interruptible(ruby, &Interrupt::new(), work)
}

/// Runs `work` with the GVL released; Ruby's interrupts fire `interrupt`, which `work` watches
/// (its waits and its registered connections). `work` must not touch any Ruby object.
pub(crate) fn interruptible<F: FnOnce() -> R, R>(
    ruby: &Ruby,
    interrupt: &Interrupt,
    work: F,
) -> Result<R, Error> {
    let mut call = Call {
        work: Some(work),
        result: None,
    };
    interrupt.arm();
    // Ruby checks for interrupts right after the call and raises a pending one (the exception of
    // Thread#raise): protect catches it so it does not jump over this frame.
    let protected = magnus::rb_sys::protect(|| {
        // SAFETY: the trampoline only runs Rust code; `call` and `interrupt` outlive the call.
        unsafe {
            rb_sys::rb_thread_call_without_gvl(
                Some(trampoline::<F, R>),
                &mut call as *mut Call<F, R> as *mut c_void,
                Some(unblock),
                interrupt as *const Interrupt as *mut c_void,
            );
        }
        rb_sys::Qnil as rb_sys::VALUE
    });
    interrupt.disarm();
    protected?;
    match call.result {
        Some(Ok(value)) => Ok(value),
        Some(Err(panic)) => Err(panic_error(ruby, panic)),
        None => Err(super::errors::raise(
            ruby,
            "InterruptedError",
            "interrupted before the native call started".into(),
        )),
    }
}

fn panic_error(ruby: &Ruby, panic: Box<dyn Any + Send>) -> Error {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    super::errors::raise(
        ruby,
        "Error",
        format!("schema_fence bug: a native call panicked ({detail}); please report it"),
    )
}
