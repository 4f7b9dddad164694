//! Running blocking work (file and network I/O) without Ruby's global VM lock, so other Ruby
//! threads run meanwhile. Panics are caught here and never unwind into Ruby's C frames.

use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use magnus::{Error, Ruby};

struct Call<F, R> {
    work: Option<F>,
    result: Option<std::thread::Result<R>>,
}

unsafe extern "C" fn trampoline<F: FnOnce() -> R, R>(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `Call` that `without_gvl` keeps alive for the whole call.
    let call = unsafe { &mut *(data as *mut Call<F, R>) };
    if let Some(work) = call.work.take() {
        call.result = Some(catch_unwind(AssertUnwindSafe(work)));
    }
    std::ptr::null_mut()
}

/// Runs `work` with the GVL released. `work` must not touch any Ruby object.
pub(crate) fn without_gvl<F: FnOnce() -> R, R>(ruby: &Ruby, work: F) -> Result<R, Error> {
    let mut call = Call {
        work: Some(work),
        result: None,
    };
    // SAFETY: the trampoline only runs Rust code; no unblocking function is needed because the
    // work is bounded (file reads, or database calls with their own timeouts).
    unsafe {
        rb_sys::rb_thread_call_without_gvl(
            Some(trampoline::<F, R>),
            &mut call as *mut Call<F, R> as *mut c_void,
            None,
            std::ptr::null_mut(),
        );
    }
    match call.result {
        Some(Ok(value)) => Ok(value),
        Some(Err(panic)) => Err(panic_error(ruby, panic)),
        None => Err(super::errors::raise(
            ruby,
            "Error",
            "native call did not run".into(),
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
