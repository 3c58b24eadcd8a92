//! `--realtime`: a recorded clip delivered at its own pace, each frame at its timestamp, as a
//! camera would deliver it — for watching a desk's LEDs follow a clip, and for tests that
//! cut the kiosk at a known moment of the lesson.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::time::{Duration, Instant};

use crate::devices::{Frame, FrameSource, SourceError};

/// The longest wait for one frame: a clip whose timestamps jump by hours is played with
/// that gap shortened rather than hanging the replay.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// Wraps a recorded source and holds each frame back until its time.
pub struct Paced {
    inner: Box<dyn FrameSource>,
    /// When the first frame was delivered, and its timestamp.
    origin: Option<(Instant, Duration)>,
}

impl Paced {
    pub fn new(inner: Box<dyn FrameSource>) -> Self {
        Self {
            inner,
            origin: None,
        }
    }
}

impl FrameSource for Paced {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let Some(frame) = self.inner.next_frame()? else {
            return Ok(None);
        };
        let (wall, first) = *self
            .origin
            .get_or_insert_with(|| (Instant::now(), frame.timestamp()));
        // A time past what an Instant can hold is simply not waited for.
        let due = wall.checked_add(frame.timestamp().saturating_sub(first));
        if let Some(wait) = due.and_then(|due| due.checked_duration_since(Instant::now())) {
            std::thread::sleep(wait.min(MAX_WAIT));
        }
        Ok(Some(frame))
    }

    fn frame_rate(&self) -> f64 {
        self.inner.frame_rate()
    }

    /// Not live: a slow analysis delays the clip rather than dropping its frames.
    fn is_live(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        format!("{} (in real time)", self.inner.describe())
    }

    fn recorded_at(&self) -> Option<std::time::SystemTime> {
        self.inner.recorded_at()
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)] // test inputs
mod tests {
    use std::path::Path;

    use super::*;
    use crate::source::ImageFolderSource;

    #[test]
    fn frames_arrive_at_their_timestamps() {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
        let mut paced = Paced::new(Box::new(ImageFolderSource::open(&demo, 6.0).unwrap()));
        let started = Instant::now();
        for _ in 0..4 {
            paced.next_frame().unwrap().unwrap();
        }
        // Frames 0..3 of a 6 fps clip: the fourth is due 0.5 s after the first.
        assert!(
            started.elapsed() >= Duration::from_millis(490),
            "{:?}",
            started.elapsed()
        );
    }
}
