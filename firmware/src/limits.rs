//! The stated bounds on what a lesson can be, in one place. Every length, count and time
//! read from outside data (a recording's sample times, a clip's frame rate, a summary's span)
//! is checked against these before it sizes anything, and every structure that grows with
//! lesson time (the per-second timeline, the per-second log) is sized from them, never from
//! a number in a file.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::time::Duration;

/// The longest lesson: a session is closed and the next one opened when this much video
/// time has passed, whatever the config says (`lesson_minutes` is bounded by it too).
pub const MAX_LESSON: Duration = Duration::from_secs(MAX_LESSON_SECONDS);

/// [`MAX_LESSON`] in whole seconds: the per-second timeline never holds more rows.
pub const MAX_LESSON_SECONDS: u64 = 12 * 60 * 60;

/// [`MAX_LESSON`] in minutes, the largest `lesson_minutes` accepted.
pub const MAX_LESSON_MINUTES: f64 = (MAX_LESSON_SECONDS / 60) as f64;

/// The most frames one second of a lesson can hold: sources run at up to 240 fps, so this
/// leaves room for uneven timestamps while a corrupt per-second row cannot claim billions.
pub const MAX_FRAMES_IN_A_SECOND: u64 = 1000;

/// The largest `seconds.csv` read back (a 12-hour lesson's log is about 2.6 MB).
pub const MAX_SECONDS_CSV_BYTES: u64 = 16 * 1024 * 1024;

/// The latest time a recorded frame may carry, from the recording's start: a replayed clip
/// is at most one lesson long (a longer recording is refused at that frame, with the reason).
pub fn frame_time_in_bounds(seconds: f64) -> Option<Duration> {
    (seconds.is_finite() && (0.0..=MAX_LESSON_SECONDS as f64).contains(&seconds))
        .then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)] // test inputs
mod tests {
    use super::*;

    #[test]
    fn frame_times_are_finite_non_negative_and_within_a_lesson() {
        assert_eq!(frame_time_in_bounds(0.0), Some(Duration::ZERO));
        assert_eq!(frame_time_in_bounds(1.5), Some(Duration::from_millis(1500)));
        assert_eq!(frame_time_in_bounds(43_200.0), Some(MAX_LESSON));
        for bad in [
            43_200.001,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            4_294_967_295.0 * 30.0,
        ] {
            assert_eq!(frame_time_in_bounds(bad), None, "{bad}");
        }
    }
}
