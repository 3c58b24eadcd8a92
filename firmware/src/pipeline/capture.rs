//! The capture side: the frame source runs on its own thread into a bounded queue, so a live
//! camera never waits for analysis. The queue's fill is counted ([`Feed::waiting`]): when
//! frames wait behind the one taken, the lesson records that frame without analysing it and
//! analyses the newest (see `Lesson::record_only`); only when even that cannot keep up is
//! the queue full, and a frame is dropped and counted. File sources are read without drops
//! or skips (the queue blocks), as fast as analysis goes.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use ekspresi_common::guard::quietly;

use crate::devices::{Frame, FrameSource, SourceError};

/// What the frame source is, for every lesson it feeds.
pub(crate) struct Feed {
    pub live: bool,
    pub fps: f64,
    pub description: String,
    /// When the recording began, for a recording that says so ([`FrameSource::recorded_at`]).
    pub recorded_at: Option<std::time::SystemTime>,
    /// Frames a live source had to drop (queue full), over all lessons.
    pub dropped: Arc<AtomicU64>,
    /// Frames in the queue, not yet taken by the lesson.
    pub queued: Arc<AtomicUsize>,
}

impl Feed {
    pub fn of(source: &dyn FrameSource) -> Self {
        Self {
            live: source.is_live(),
            fps: source.frame_rate(),
            description: source.describe(),
            recorded_at: source.recorded_at(),
            dropped: Arc::new(AtomicU64::new(0)),
            queued: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The lesson took a frame from the queue.
    pub fn took_one(&self) {
        // Never below zero: the capture thread counts a frame before it is sent.
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Frames waiting behind the one just taken: the analysis is behind a live source.
    pub fn waiting(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    pub fn dropped_so_far(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// One message from the capture thread: a frame, or why the source stopped.
pub(crate) type Captured = Result<Frame, SourceError>;

/// Starts reading `source` on its own thread into a queue of `capacity` frames; it stops at
/// the source's end or first error (which it sends on), or when `stop` is set.
pub(crate) fn spawn_capture(
    mut source: Box<dyn FrameSource>,
    capacity: usize,
    stop: Arc<AtomicBool>,
    feed: &Feed,
) -> (Receiver<Captured>, JoinHandle<()>) {
    let (dropped, queued) = (feed.dropped.clone(), feed.queued.clone());
    let (sender, receiver) = mpsc::sync_channel(capacity);
    let live = source.is_live();
    let handle = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            // A panicking source ends the lesson as a failed one ("ended early"), never as
            // a quiet end of stream that would mark it complete.
            let message = match quietly(|| source.next_frame()) {
                Ok(Ok(Some(frame))) => Ok(frame),
                Ok(Ok(None)) => break,
                Ok(Err(error)) => Err(error),
                Err(panic) => Err(SourceError::Device(
                    format!("the frame source panicked: {panic}").into(),
                )),
            };
            let failed = message.is_err();
            // Counted before it is sent, so the lesson never takes an uncounted frame.
            queued.fetch_add(1, Ordering::AcqRel);
            if live && !failed {
                match sender.try_send(message) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        queued.fetch_sub(1, Ordering::AcqRel);
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                }
            } else if sender.send(message).is_err() {
                break;
            }
            if failed {
                break;
            }
        }
    });
    (receiver, handle)
}
