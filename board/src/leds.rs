//! The kiosk's three status LEDs on the Pi's GPIO header, through `rppal`.
//!
//! rppal's `OutputPin` implements embedded-hal 1's `OutputPin`, so the application drives
//! these exactly as it drives its simulated pins in tests. Pins are BCM numbers; the wiring
//! is in `board/deploy/PINMAP.md`.

use rppal::gpio::{Gpio, OutputPin};

/// BCM numbers of the good, bad and camera-on LEDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinMap {
    pub good: u8,
    pub bad: u8,
    pub camera: u8,
}

/// GPIO failures.
#[derive(Debug, thiserror::Error)]
pub enum LedError {
    #[error("GPIO is not available ({0}); is this a Raspberry Pi, and is the kiosk user in the `gpio` group?")]
    NoGpio(rppal::gpio::Error),
    #[error("GPIO {pin} ({role} LED): {source}")]
    Pin {
        pin: u8,
        role: &'static str,
        source: rppal::gpio::Error,
    },
    #[error("the {0} and {1} LEDs are both on GPIO {2}")]
    SharedPin(&'static str, &'static str, u8),
}

/// The three LED pins, configured as outputs and off.
pub struct LedPins {
    pub good: OutputPin,
    pub bad: OutputPin,
    pub camera: OutputPin,
}

/// Claims the three pins as low outputs. Pins go low again when dropped.
pub fn open(map: PinMap) -> Result<LedPins, LedError> {
    check_distinct(map)?;
    let gpio = Gpio::new().map_err(LedError::NoGpio)?;
    let output = |pin: u8, role: &'static str| {
        gpio.get(pin)
            .map(|p| p.into_output_low())
            .map_err(|source| LedError::Pin { pin, role, source })
    };
    Ok(LedPins {
        good: output(map.good, "good")?,
        bad: output(map.bad, "bad")?,
        camera: output(map.camera, "camera")?,
    })
}

fn check_distinct(map: PinMap) -> Result<(), LedError> {
    let roles = [("good", map.good), ("bad", map.bad), ("camera", map.camera)];
    for (i, (role_a, pin_a)) in roles.iter().enumerate() {
        for (role_b, pin_b) in &roles[i + 1..] {
            if pin_a == pin_b {
                return Err(LedError::SharedPin(role_a, role_b, *pin_a));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_leds_on_one_pin_are_refused_before_touching_gpio() {
        let error = open(PinMap {
            good: 17,
            bad: 17,
            camera: 22,
        })
        .err()
        .expect("shared pin");
        assert!(error.to_string().contains("both on GPIO 17"), "{error}");
    }
}
