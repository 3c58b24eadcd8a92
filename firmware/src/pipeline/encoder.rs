//! The encoding thread and its bounded queue. Every picture sent carries its time in the
//! lesson, and the MP4's sample times come from it ([`VideoRecorder::write_rgb`]), so the
//! video stays in step with `timeline.csv` even when a live source drops frames. For live
//! sources a full queue drops the video frame, never the analysis.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use image::RgbImage;

use crate::mp4::{FragmentSink, PlainFile, VideoError, VideoRecorder};
use crate::seal::SealedSegments;

/// Where the recording goes: `video.mp4` in the clear, or age-encrypted segments in the
/// session folder (no plaintext video on the card).
pub(crate) enum VideoTarget {
    Plain(PathBuf),
    Sealed {
        dir: PathBuf,
        recipients: Vec<age::x25519::Recipient>,
    },
}

impl VideoTarget {
    fn open(self) -> Result<Box<dyn FragmentSink>, VideoError> {
        Ok(match self {
            Self::Plain(path) => Box::new(PlainFile::create(&path)?),
            Self::Sealed { dir, recipients } => Box::new(SealedSegments::new(&dir, recipients)?),
        })
    }
}

/// An annotated picture and its time since the lesson's first frame.
pub(crate) struct TimedImage {
    pub image: RgbImage,
    pub at: Duration,
}

/// The encoder thread, seen from the lesson.
pub(crate) struct EncoderThread {
    sender: Option<SyncSender<TimedImage>>,
    handle: Option<JoinHandle<u64>>,
    note: Arc<Mutex<Option<String>>>,
    live: bool,
}

/// How the recording is made.
pub(crate) struct EncoderSettings {
    pub fps: f64,
    pub keyframe_interval_s: u32,
    pub queue_frames: usize,
    pub live: bool,
}

impl EncoderThread {
    pub fn spawn(target: VideoTarget, settings: &EncoderSettings) -> Self {
        let (sender, receiver) = mpsc::sync_channel::<TimedImage>(settings.queue_frames);
        let note = Arc::new(Mutex::new(None));
        let thread_note = note.clone();
        let fps = settings.fps;
        let keyframe_interval = Duration::from_secs(u64::from(settings.keyframe_interval_s));
        let handle = std::thread::spawn(move || {
            encode_all(target, fps, keyframe_interval, &receiver, &thread_note)
        });
        Self {
            sender: Some(sender),
            handle: Some(handle),
            note,
            live: settings.live,
        }
    }

    pub fn is_running(&self) -> bool {
        self.sender.is_some()
    }

    pub fn send(&mut self, picture: TimedImage) {
        let Some(sender) = &self.sender else { return };
        let result = if self.live {
            match sender.try_send(picture) {
                Err(TrySendError::Full(_)) => Ok(()), // a video frame dropped, analysis goes on
                Err(TrySendError::Disconnected(_)) => Err(()),
                Ok(()) => Ok(()),
            }
        } else {
            sender.send(picture).map_err(|_| ())
        };
        if result.is_err() {
            // The encoder thread ended (it has left its reason in `note`).
            self.sender = None;
        }
    }

    /// Stops recording (analysis goes on), noting why.
    pub fn stop_for(&mut self, reason: &str) {
        if self.sender.take().is_some() {
            if let Ok(mut note) = self.note.lock() {
                note.get_or_insert_with(|| reason.to_owned());
            }
            tracing::warn!(reason, "video recording stopped; analysis goes on");
        }
    }

    /// Why the video stopped early, if it did.
    pub fn note(&self) -> Option<String> {
        self.note.lock().ok().and_then(|n| n.clone())
    }

    /// Closes the queue, waits for the last fragment: (frames written, note).
    pub fn finish(mut self) -> (u64, Option<String>) {
        self.sender = None;
        let frames = self.handle.take().and_then(|h| h.join().ok());
        let note = match frames {
            Some(_) => self.note(),
            None => Some("the encoder thread panicked; the video may end early".to_owned()),
        };
        (frames.unwrap_or(0), note)
    }
}

fn encode_all(
    target: VideoTarget,
    fps: f64,
    keyframe_interval: Duration,
    pictures: &Receiver<TimedImage>,
    note: &Mutex<Option<String>>,
) -> u64 {
    let fail = |message: String| {
        tracing::error!(%message, "video recording failed; analysis goes on");
        if let Ok(mut note) = note.lock() {
            note.get_or_insert(message);
        }
    };
    let mut target = Some(target);
    let mut recorder: Option<VideoRecorder> = None;
    for TimedImage { image, at } in pictures.iter() {
        // H.264 needs even dimensions: drop a last odd row/column.
        let (w, h) = (image.width() as usize & !1, image.height() as usize & !1);
        if let Some(target) = target.take() {
            let created = target
                .open()
                .and_then(|sink| VideoRecorder::create(sink, w, h, fps, keyframe_interval));
            match created {
                Ok(r) => recorder = Some(r),
                Err(e) => {
                    fail(format!("stopped: {e}"));
                    return 0;
                }
            }
        }
        let rgb = if (w, h) == (image.width() as usize, image.height() as usize) {
            image.into_raw()
        } else {
            image::imageops::crop_imm(&image, 0, 0, w as u32, h as u32)
                .to_image()
                .into_raw()
        };
        if let Some(r) = recorder.as_mut() {
            if let Err(e) = r.write_rgb(&rgb, w, h, at) {
                fail(format!("stopped after {} frames: {e}", r.frames()));
                return r.frames();
            }
        }
    }
    match recorder {
        Some(r) => match r.finish() {
            Ok(frames) => frames,
            Err(e) => {
                fail(format!("last fragment lost: {e}"));
                0
            }
        },
        None => 0,
    }
}
