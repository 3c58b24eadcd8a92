//! The class during the lesson: desks publish aggregates — never images, never a face — to
//! an MQTT broker, and the teacher watches a live class view.
//!
//! - [`message`]: what a desk publishes every window (counts per second, its model's
//!   calibration), checked on arrival like every file a desk writes.
//! - [`broker`]: the connection to the school's Mosquitto, over TLS (rustls on the `ring`
//!   provider, so the Pi build needs no cmake or aws-lc), with the desk's own password and a
//!   last will.
//! - [`publish`]: `ekspresi publish`, on the desk: follows the running session's
//!   `seconds.csv` and publishes each finished window; it only reads the session's files, so
//!   the lesson is the same with the broker up, down or absent.
//! - [`class`]: the teacher's class state, in memory only, behind the privacy floor.
//! - [`server`]: `ekspresi live`, one self-contained page on 127.0.0.1 updated by server-sent
//!   events.

pub mod broker;
pub mod class;
pub mod message;
pub mod publish;
pub mod server;
