//! Lessons from the school's timetable (issue 31): `kiosk run`'s service loop on a simulated
//! camera (the demo clip's frames, looped at the camera's pace) with a timetable of three
//! short lessons and gaps between them. Three sessions, each with its lesson id; no frame is
//! captured in a gap, and the camera is closed there.

mod support;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use firmware::board::{Board, BoardError};
use firmware::config::{CameraConfig, GpioConfig, KioskConfig};
use firmware::devices::{simulated_leds, Frame, FrameSource, SimPin, SourceError, StatusLeds};
use firmware::source::ImageFolderSource;
use firmware::timetable::TimetableEntry;
use image::RgbImage;
use support::{manifest_dir, scratch};

/// When the camera was opened and closed, and when each frame was captured.
#[derive(Default)]
struct CameraLog {
    opened: Vec<Instant>,
    closed: Vec<Instant>,
    frames: Vec<Instant>,
}

/// A board whose camera is the demo clip looped at 6 frames a second.
struct SimulatedBoard {
    frames: Arc<Vec<RgbImage>>,
    log: Arc<Mutex<CameraLog>>,
}

struct LoopingCamera {
    frames: Arc<Vec<RgbImage>>,
    log: Arc<Mutex<CameraLog>>,
    opened: Instant,
    next: u64,
}

impl FrameSource for LoopingCamera {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let at = Duration::from_secs_f64(self.next as f64 / 6.0);
        if let Some(wait) = at.checked_sub(self.opened.elapsed()) {
            std::thread::sleep(wait);
        }
        let image = self.frames[self.next as usize % self.frames.len()].clone();
        self.next += 1;
        self.log.lock().unwrap().frames.push(Instant::now());
        Ok(Some(Frame::from_image(image, at)))
    }
    fn frame_rate(&self) -> f64 {
        6.0
    }
    fn is_live(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        "simulated camera".into()
    }
}

impl Drop for LoopingCamera {
    fn drop(&mut self) {
        self.log.lock().unwrap().closed.push(Instant::now());
    }
}

impl Board for SimulatedBoard {
    type Pin = SimPin;

    fn open_camera(&self, _: &CameraConfig) -> Result<Box<dyn FrameSource>, SourceError> {
        self.log.lock().unwrap().opened.push(Instant::now());
        Ok(Box::new(LoopingCamera {
            frames: self.frames.clone(),
            log: self.log.clone(),
            opened: Instant::now(),
            next: 0,
        }))
    }
    fn open_leds(&self, _: &GpioConfig) -> Result<StatusLeds<SimPin>, BoardError> {
        Ok(simulated_leds().0)
    }
    fn describe(&self) -> String {
        "simulated".into()
    }
    fn libcamera_compat_to_load(&self) -> Result<Option<PathBuf>, BoardError> {
        Ok(None)
    }
}

/// `HH:MM:SS` of the local time `ahead` from now, and today's weekday.
fn local(ahead: Duration) -> (String, String) {
    let at = chrono::Local::now() + chrono::Duration::from_std(ahead).unwrap();
    (
        at.format("%H:%M:%S").to_string(),
        at.format("%a").to_string().to_lowercase(),
    )
}

#[test]
fn three_timetabled_lessons_are_three_sessions_and_nothing_is_captured_between_them() {
    use chrono::Timelike;
    // Lessons that straddle midnight are not a timetable's: start after it if it is near.
    while chrono::Local::now().num_seconds_from_midnight() > 24 * 3600 - 30 {
        std::thread::sleep(Duration::from_secs(1));
    }
    let out = scratch("timetable");
    let mut demo = ImageFolderSource::open(&manifest_dir().join("assets/demo"), 6.0).unwrap();
    let mut frames = Vec::new();
    while let Some(frame) = demo.next_frame().unwrap() {
        frames.push(frame.into_image());
    }
    // Whole seconds: the timetable's resolution.
    let start = Instant::now();
    let to_next_second = Duration::from_nanos(
        1_000_000_000 - u64::from(chrono::Local::now().nanosecond() % 1_000_000_000),
    );
    let lessons = [("first", 2, 5), ("second", 7, 10), ("third", 12, 15)];
    let timetable: Vec<TimetableEntry> = lessons
        .iter()
        .map(|&(id, from, to)| {
            let (start, day) = local(to_next_second + Duration::from_secs(from));
            let (end, _) = local(to_next_second + Duration::from_secs(to));
            TimetableEntry {
                days: vec![day],
                start,
                end,
                lesson_id: id.into(),
            }
        })
        .collect();
    let config = KioskConfig {
        data_dir: out.join("data"),
        timetable,
        ..KioskConfig::default()
    };
    let log = Arc::new(Mutex::new(CameraLog::default()));
    let board = SimulatedBoard {
        frames: Arc::new(frames),
        log: log.clone(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = stop.clone();
    let stop_after = to_next_second + Duration::from_secs(17);
    std::thread::spawn(move || {
        std::thread::sleep(stop_after);
        stopper.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let model = manifest_dir().join("models/lenet5-int8.onnx");
    firmware::service::run(&board, config, model, simulated_leds().0, stop).unwrap();

    // Three sessions, each carrying its lesson's id.
    let sessions = firmware::record::session::session_dirs(&out.join("data")).unwrap();
    let ids: Vec<String> = sessions
        .iter()
        .map(|dir| {
            let summary: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
                    .unwrap();
            summary["lesson_id"].as_str().unwrap_or("none").to_owned()
        })
        .collect();
    assert_eq!(ids, ["first", "second", "third"]);

    // The camera was open three times, and every frame was captured inside a lesson.
    let log = log.lock().unwrap();
    assert_eq!((log.opened.len(), log.closed.len()), (3, 3));
    let lesson_at = |from: u64, to: u64| {
        let base = start + to_next_second;
        (
            base + Duration::from_secs(from),
            base + Duration::from_secs(to),
        )
    };
    let slack = Duration::from_millis(300);
    for frame in &log.frames {
        let inside = lessons.iter().any(|&(_, from, to)| {
            let (begin, end) = lesson_at(from, to);
            *frame + slack >= begin && *frame <= end + slack
        });
        assert!(
            inside,
            "a frame captured {:?} after the start, between lessons",
            *frame - start
        );
    }
    for (i, &(_, from, to)) in lessons.iter().enumerate() {
        let (begin, end) = lesson_at(from, to);
        let in_lesson = log
            .frames
            .iter()
            .filter(|&&f| f >= begin && f <= end)
            .count();
        assert!(
            in_lesson >= 12,
            "lesson {i}: only {in_lesson} frames in 3 s"
        );
        assert!(
            log.closed[i] <= end + slack,
            "lesson {i}: the camera stayed open"
        );
    }
}
