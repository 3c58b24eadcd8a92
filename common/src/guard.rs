//! Calls into code that may panic on hostile input (tract on a malformed graph, a frame
//! source, the detector's rayon workers), turned into errors with no Rust panic text on the
//! terminal: to a teacher or technician a printed panic and backtrace looks like a crash,
//! even when the program goes on to report a clear error.
//!
//! A process-wide panic hook is installed once. A panic is quiet — its message kept for the
//! error, nothing printed — on a thread inside a guarded call, and on a rayon worker while
//! any guarded call runs (the detector's and tract's jobs panic there, on the caller's
//! behalf, and rayon re-raises the panic in the guarded call). Every other panic prints as
//! before: a panic elsewhere (a test's own failure, another thread's bug) is never hidden.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe, PanicHookInfo};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

/// Guarded calls running now, on any thread.
static GUARDED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Guarded calls running on this thread.
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Whether a panic on this thread now belongs to a guarded call.
fn quiet_here() -> bool {
    DEPTH.with(std::cell::Cell::get) > 0
        || (GUARDED.load(Ordering::SeqCst) > 0 && rayon::current_thread_index().is_some())
}
/// The last message a quieted panic carried, with its place (for the error).
static LAST_QUIET: Mutex<Option<String>> = Mutex::new(None);
static INSTALL: Once = Once::new();

fn install_hook() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if !quiet_here() {
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
    DEPTH.with(|depth| depth.set(depth.get() + 1));
    let outcome = catch_unwind(AssertUnwindSafe(job));
    DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
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

    /// The guard's state is process-wide (the count of guarded calls, the last quiet
    /// message): these tests take turns, or one sees the other's guarded call (CI did).
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    fn alone() -> std::sync::MutexGuard<'static, ()> {
        ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[test]
    fn a_panic_becomes_an_error_with_its_message_and_place() {
        let _alone = alone();
        let error = quietly(|| -> u32 { panic!("index out of bounds: the len is 3") }).unwrap_err();
        assert!(
            error.starts_with("index out of bounds: the len is 3 at "),
            "{error}"
        );
        assert!(error.contains("guard.rs"), "{error}");
        assert_eq!(quietly(|| 7), Ok(7));
        // Nested guards and a value after a caught panic.
        assert_eq!(quietly(|| quietly(|| 1).unwrap() + 1), Ok(2));
        // This thread's count (the process-wide one also counts other tests' model loads).
        assert_eq!(DEPTH.with(std::cell::Cell::get), 0);
    }

    #[test]
    fn a_rayon_workers_panic_in_a_guarded_call_is_caught_and_others_stay_loud() {
        let _alone = alone();
        use rayon::prelude::*;
        let error = quietly(|| {
            (0..64).into_par_iter().for_each(|i| {
                assert!(i != 40, "job {i} failed");
            })
        })
        .unwrap_err();
        assert!(error.contains("job 40 failed"), "{error}");
        // Another thread's panic while a guarded call runs is not this call's: not quiet.
        let (entered, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                quietly(|| {
                    entered.wait();
                    release.wait();
                })
            });
            entered.wait();
            assert!(
                !quiet_here(),
                "a plain thread during another's guarded call"
            );
            release.wait();
        });
    }
}
