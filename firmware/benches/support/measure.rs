//! What the benches measure per frame: wall time, the process's CPU time (every thread,
//! encoder threads included) and heap allocations (a counting global allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The system allocator, counting allocations.
pub struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout (through `alloc` above).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// CPU time of this process so far, user + system, over all its threads.
pub fn process_cpu() -> Duration {
    rusage_cpu(libc::RUSAGE_SELF)
}

fn rusage_cpu(who: libc::c_int) -> Duration {
    let usage = rusage(who);
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: getrusage fills the zeroed struct it is given; a valid `who` cannot fail.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    }
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// A child process's wall time, CPU time and peak resident memory.
#[derive(Clone, Copy)]
pub struct ChildRun {
    pub wall: Duration,
    pub cpu: Duration,
    pub peak_rss_mib: f64,
    pub success: bool,
}

/// Runs `command` to its end and measures it (wait4 gives the child's own rusage).
pub fn run_child(command: &mut std::process::Command) -> ChildRun {
    run_child_observed(command, |_| {})
}

/// [`run_child`], telling `started` the child's pid once it runs (to stop it from elsewhere).
pub fn run_child_observed(
    command: &mut std::process::Command,
    started: impl FnOnce(u32),
) -> ChildRun {
    let started_at = Instant::now();
    let child = command.spawn().expect("spawn child");
    started(child.id());
    let started = started_at;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: waits for our own child and fills the zeroed rusage; `child` is not waited on
    // again (it is forgotten below, so its Drop does nothing to the reaped pid).
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::wait4(pid, &mut status, 0, &mut usage);
        usage
    };
    let wall = started.elapsed();
    std::mem::forget(child);
    ChildRun {
        wall,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        // ru_maxrss is in KiB on Linux.
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}

/// One row of a table: per frame, wall and CPU milliseconds and heap allocations.
#[derive(Clone, Copy)]
pub struct Stage {
    pub wall_ms: f64,
    pub cpu_ms: f64,
    pub allocations: Option<f64>,
}

impl Stage {
    /// A row derived from others (a difference): no allocation count of its own.
    pub fn derived(wall_ms: f64, cpu_ms: f64) -> Self {
        Self {
            wall_ms: wall_ms.max(0.0),
            cpu_ms: cpu_ms.max(0.0),
            allocations: None,
        }
    }
}

/// Best of `rounds` of the per-frame means (the least disturbed by other load), and the
/// fewest allocations per frame of a round. `round` does the work for `frames` frames.
pub fn per_frame(rounds: usize, frames: usize, mut round: impl FnMut()) -> Stage {
    let mut best = Stage {
        wall_ms: f64::INFINITY,
        cpu_ms: f64::INFINITY,
        allocations: Some(f64::INFINITY),
    };
    let frames = frames.max(1) as f64;
    for _ in 0..rounds {
        let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
        let cpu_before = process_cpu();
        let started = Instant::now();
        round();
        let wall = started.elapsed();
        let cpu = process_cpu().saturating_sub(cpu_before);
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
        best.wall_ms = best.wall_ms.min(wall.as_secs_f64() * 1e3 / frames);
        best.cpu_ms = best.cpu_ms.min(cpu.as_secs_f64() * 1e3 / frames);
        best.allocations = best.allocations.map(|a| a.min(allocations as f64 / frames));
    }
    best
}

/// The `ekspresi` binaries a bench compares: this build, and with
/// `EKSPRESI_BENCH_BASELINE=/path/to/ekspresi` (an earlier commit's release build) that one
/// too, run in turns so that a change is compared side by side in one run.
pub fn compared_binaries() -> Vec<(String, std::path::PathBuf)> {
    let mut binaries = vec![(
        "this build".to_owned(),
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_ekspresi")),
    )];
    if let Ok(baseline) = std::env::var("EKSPRESI_BENCH_BASELINE") {
        binaries.push(("baseline".to_owned(), std::path::PathBuf::from(baseline)));
    }
    binaries
}
