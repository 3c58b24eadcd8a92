//! The Ekspresi kiosk firmware as a library, with no hardware dependency; its thin fronts
//! are `ekspresi` (src/main.rs, any machine) and the `board` crate's `kiosk` (the Pi).
//!
//! The application sees hardware only through small traits ([`devices`] for frames and LED
//! pins, [`board::Board`] for opening them), so the whole pipeline runs on a laptop against
//! recorded frames and simulated LEDs; [`cli`] is the command line both binaries share. Modules: [`detect`] finds
//! faces, [`classify`] reads their expression, [`aggregate`] counts and judges, [`pipeline`]
//! runs a lesson, [`record`] writes the video and summaries, [`seal`] encrypts the video at rest, [`config`] reads settings,
//! [`source`] gives frames (camera, recorded clips), [`imageio`] reads stills, [`limits`] states the bounds on a lesson, [`service`]
//! is the all-day `kiosk run` loop and [`check`] the technician's self-test.

pub mod aggregate;
pub mod board;
pub mod check;
pub mod classify;
pub mod cli;
pub mod config;
pub mod detect;
pub mod devices;
pub mod imageio;
pub mod limits;
pub mod live;
pub mod models;
pub mod mp4;
pub mod pipeline;
pub mod record;
pub mod report;
pub mod seal;
pub mod service;
pub mod source;
pub mod timetable;
pub mod upload;
