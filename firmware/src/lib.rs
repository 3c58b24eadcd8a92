//! The Ekspresi kiosk firmware as a library; `kiosk` (src/main.rs) is its thin front.
//!
//! The application sees hardware only through small traits ([`hal`]), so the whole pipeline
//! runs on a laptop against recorded frames and simulated LEDs. Modules: [`detect`] finds
//! faces, [`classify`] reads their expression, [`aggregate`] counts and judges, [`pipeline`]
//! runs a lesson, [`record`] writes the video and summaries, [`config`] reads settings,
//! [`source`] gives frames (camera, recorded clips), [`imageio`] reads stills, [`service`]
//! is the all-day `kiosk run` loop and [`check`] the technician's self-test.

pub mod aggregate;
pub mod check;
pub mod classify;
pub mod config;
pub mod detect;
pub mod hal;
pub mod imageio;
pub mod models;
pub mod pipeline;
pub mod record;
pub mod service;
pub mod source;
