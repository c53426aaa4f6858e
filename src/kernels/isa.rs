//! Which instruction set fovea's own kernels may use: what the CPU has, narrowed by the
//! environment variable `FOVEA_ISA` (`avx512`, `avx2` or `scalar`), so that one AVX-512
//! machine can run and test every narrower path. `scalar` means none of fovea's own SIMD
//! kernels (the convolutions then take im2col + `gemm`, which picks its own kernels).

use std::sync::OnceLock;

/// Instruction sets, narrowest first (so `a <= b` reads "b can run a's code").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    Scalar,
    /// AVX2 + FMA (8 lanes).
    Avx2,
    /// AVX-512 F (16 lanes), with AVX2 + FMA.
    Avx512,
}

impl Isa {
    /// Every value, narrowest first.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// `FOVEA_ISA`'s spelling.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    pub fn parse(s: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.name() == s.trim().to_ascii_lowercase())
    }

    /// The widest instruction set this CPU runs.
    pub fn detected() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(detect)
    }

    /// Whether this CPU runs code written for `self`.
    pub fn supported(self) -> bool {
        self <= Isa::detected()
    }

    /// For tests: the instruction sets this CPU has, after printing one line for each it
    /// lacks, naming `test`.
    pub fn testable(test: &str) -> Vec<Isa> {
        Isa::ALL
            .into_iter()
            .filter(|isa| {
                if !isa.supported() {
                    println!("{test}: skipped {} (this CPU lacks it)", isa.name());
                }
                isa.supported()
            })
            .collect()
    }

    /// What fovea's kernels use: the CPU's widest, or `FOVEA_ISA` if that is narrower. A
    /// value that is not one of the three, or wider than the CPU, is reported once on standard
    /// error and the CPU's widest is used.
    pub fn active() -> Isa {
        static ACTIVE: OnceLock<Isa> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let cpu = Isa::detected();
            let Ok(asked) = std::env::var("FOVEA_ISA") else { return cpu };
            match Isa::parse(&asked) {
                Some(isa) if isa <= cpu => isa,
                Some(isa) => {
                    eprintln!("warning: FOVEA_ISA={asked}: this CPU lacks {}; using {}", isa.name(), cpu.name());
                    cpu
                }
                None => {
                    eprintln!("warning: FOVEA_ISA={asked:?} is not avx512, avx2 or scalar; using {}", cpu.name());
                    cpu
                }
            }
        })
    }
}

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        if avx2 && std::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if avx2 {
            return Isa::Avx2;
        }
    }
    Isa::Scalar
}

/// `fn $name(isa, args) -> ret`: `$body` compiled inside a `#[target_feature]` wrapper for
/// AVX-512 and for AVX2 (so that its loops vectorise at that width), or as the x86-64 baseline
/// for `Isa::Scalar` and CPUs without them. The body is one source: its lanes and rounding
/// are the same on each, so are its bits.
macro_rules! compiled_per_isa {
    ($(#[$doc:meta])* fn $name:ident => $body:ident ($($arg:ident : $ty:ty),*) $(-> $ret:ty)?) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        fn $name(isa: crate::kernels::isa::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                use crate::kernels::isa::Isa;
                #[target_feature(enable = "avx512f,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                // SAFETY: the CPU has the instruction set (checked by `supported`).
                match isa {
                    Isa::Avx512 if isa.supported() => return unsafe { avx512($($arg),*) },
                    Isa::Avx2 if isa.supported() => return unsafe { avx2($($arg),*) },
                    _ => {}
                }
            }
            let _ = isa;
            $body($($arg),*)
        }
    };
}
pub(crate) use compiled_per_isa;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_by_width() {
        for isa in Isa::ALL {
            assert_eq!(Isa::parse(isa.name()), Some(isa));
        }
        assert_eq!(Isa::parse(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(Isa::parse("sse"), None);
        assert!(Isa::Scalar < Isa::Avx2 && Isa::Avx2 < Isa::Avx512);
        assert!(Isa::Scalar.supported());
        assert!(Isa::active() <= Isa::detected());
    }

    /// Under CI's `FOVEA_ISA=avx2` and `=scalar` runs, the narrower set is what runs.
    #[test]
    fn active_follows_fovea_isa() {
        let asked = std::env::var("FOVEA_ISA").ok().and_then(|s| Isa::parse(&s));
        assert_eq!(Isa::active(), asked.map_or(Isa::detected(), |a| a.min(Isa::detected())));
        println!("FOVEA_ISA={:?}: the kernels run {}", std::env::var("FOVEA_ISA").ok(), Isa::active().name());
    }
}
