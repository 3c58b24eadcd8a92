//! Calls into code that may panic on hostile input (tract on a malformed graph, a frame
//! source, the detector's rayon workers), turned into errors with no Rust panic text on the
//! terminal: to a teacher or technician a printed panic and backtrace looks like a crash,
//! even when the program goes on to report a clear error.
//!
//! A process-wide panic hook is installed once; while any guarded call runs, it keeps the
//! panic's message for the error and prints nothing (a worker thread of a guarded call — a
//! rayon job — panics on another thread, so the switch cannot be per thread). Outside
//! guarded calls, panics print as before.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe, PanicHookInfo};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

/// Guarded calls running now, on any thread.
static GUARDED: AtomicUsize = AtomicUsize::new(0);
/// The last message a quieted panic carried, with its place (for the error).
static LAST_QUIET: Mutex<Option<String>> = Mutex::new(None);
static INSTALL: Once = Once::new();

fn install_hook() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if GUARDED.load(Ordering::SeqCst) == 0 {
                previous(info);
                return;
            }
            let place = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            if let Ok(mut last) = LAST_QUIET.lock() {
                *last = Some(format!("{}{place}", payload_text(info.payload())));
            }
        }));
    });
}

/// Runs `job`; a panic in it (or in a thread it waits on that re-raises it) is returned as
/// `Err` with the panic's message, and nothing is printed.
pub fn quietly<T>(job: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    GUARDED.fetch_add(1, Ordering::SeqCst);
    let outcome = catch_unwind(AssertUnwindSafe(job));
    GUARDED.fetch_sub(1, Ordering::SeqCst);
    outcome.map_err(|payload| {
        let kept = LAST_QUIET.lock().ok().and_then(|mut last| last.take());
        kept.unwrap_or_else(|| payload_text(payload.as_ref()).to_owned())
    })
}

/// The message of a panic payload (a `&str` or `String`, as `panic!` makes them).
pub fn payload_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message_and_place() {
        let error = quietly(|| -> u32 { panic!("index out of bounds: the len is 3") }).unwrap_err();
        assert!(
            error.starts_with("index out of bounds: the len is 3 at "),
            "{error}"
        );
        assert!(error.contains("guard.rs"), "{error}");
        assert_eq!(quietly(|| 7), Ok(7));
        // Nested guards and a value after a caught panic.
        assert_eq!(quietly(|| quietly(|| 1).unwrap() + 1), Ok(2));
        assert_eq!(GUARDED.load(Ordering::SeqCst), 0);
    }
}
