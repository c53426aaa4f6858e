//! Learning-rate schedules, as a function of the step (0-based) and the total number of steps.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Multiply by `gamma` every `every` steps (PyTorch's `StepLR`).
    Step { every: usize, gamma: f32 },
    /// Half a cosine from the base rate down to 0 over the whole run (`CosineAnnealingLR`
    /// with `T_max` = total steps).
    Cosine,
}

impl Schedule {
    /// Parses `constant`, `cosine`, or `step:EVERY:GAMMA` (EVERY in steps).
    pub fn parse(s: &str) -> Result<Self> {
        match s.split(':').collect::<Vec<_>>().as_slice() {
            ["constant"] => Ok(Schedule::Constant),
            ["cosine"] => Ok(Schedule::Cosine),
            ["step", every, gamma] => {
                let every: usize = every.parse().map_err(|_| Error::Invalid(format!("schedule {s:?}: {every:?} is not a step count")))?;
                let gamma: f32 = gamma.parse().map_err(|_| Error::Invalid(format!("schedule {s:?}: {gamma:?} is not a number")))?;
                if every == 0 {
                    return Err(Error::Invalid(format!("schedule {s:?}: the step count must be at least 1")));
                }
                if !(gamma.is_finite() && gamma > 0.0) {
                    return Err(Error::Invalid(format!("schedule {s:?}: the factor must be a number above 0")));
                }
                Ok(Schedule::Step { every, gamma })
            }
            _ => Err(Error::Invalid(format!("unknown schedule {s:?}: use constant, cosine or step:EVERY:GAMMA"))),
        }
    }

    /// The learning rate at `step` of `total` steps for base rate `base`.
    pub fn lr(&self, base: f32, step: usize, total: usize) -> f32 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powi((step / every) as i32),
            Schedule::Cosine => {
                let t = step.min(total) as f64 / total.max(1) as f64;
                (base as f64 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Schedule::Constant => "constant".into(),
            Schedule::Cosine => "cosine".into(),
            Schedule::Step { every, gamma } => format!("step:{every}:{gamma}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(Schedule::parse("constant").unwrap().lr(0.1, 500, 1000), 0.1);
        let s = Schedule::parse("step:100:0.5").unwrap();
        assert_eq!((s.lr(1.0, 99, 0), s.lr(1.0, 100, 0), s.lr(1.0, 250, 0)), (1.0, 0.5, 0.25));
        let c = Schedule::Cosine;
        assert_eq!(c.lr(1.0, 0, 100), 1.0);
        assert!((c.lr(1.0, 50, 100) - 0.5).abs() < 1e-6);
        assert!(c.lr(1.0, 100, 100).abs() < 1e-6);
        assert!(Schedule::parse("step:0:0.1").is_err() && Schedule::parse("linear").is_err());
    }
}
