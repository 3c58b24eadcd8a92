//! The one font the project draws text with (charts, video overlay), embedded so nothing is
//! looked up on the device at run time. DejaVu Sans; licence in `assets/fonts/DejaVu-LICENSE.txt`.

/// DejaVu Sans, TrueType.
pub static DEJAVU_SANS: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
