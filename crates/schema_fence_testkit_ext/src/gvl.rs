//! Starting, stopping and waiting on servers without Ruby's global VM lock, so the suite's other
//! threads (fault injectors, pumps, samplers) run meanwhile. Panics are caught here and never
//! unwind into Ruby's C frames. No unblocking function: every call here is bounded by pg_ctl's
//! own timeouts.

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
    // SAFETY: the trampoline only runs Rust code.
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
        Some(Err(panic)) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(super::errors::raise(
                ruby,
                "ClusterError",
                format!("the testkit panicked ({detail})"),
            ))
        }
        None => Err(super::errors::raise(
            ruby,
            "ClusterError",
            "the testkit call did not run".into(),
        )),
    }
}
