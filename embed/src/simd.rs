//! Which SIMD the kernels use: the best this CPU has, capped by `NEXUS_SIMD`.
//!
//! `NEXUS_SIMD=portable|avx2|avx512|avx512vnni` (read once per process) caps the instruction
//! sets every kernel dispatches to, so that one machine can measure what a CPU with less would
//! do: `avx2` runs the `f32` kernels on AVX2 + FMA and the 8-bit kernel on its AVX2 path, as on
//! a CPU without AVX-512; `portable` runs plain scalar code. Unset (or empty), nothing is
//! capped. An unknown value caps nothing and is reported once on stderr.

use std::sync::OnceLock;

/// An instruction-set level, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// No SIMD intrinsics: plain code (what the compiler makes of it for the base target).
    Portable,
    /// AVX2 + FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F, BW, VL (x86-64-v4), without VNNI.
    Avx512,
    /// AVX-512 with VNNI (`vpdpwssd`).
    Avx512Vnni,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
            Self::Avx512Vnni => "avx512vnni",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Portable, Self::Avx2, Self::Avx512, Self::Avx512Vnni]
            .into_iter()
            .find(|l| l.as_str() == s)
    }

    /// The best level this CPU runs, ignoring `NEXUS_SIMD`.
    pub fn detected() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::quant::V4Vnni::is_available() {
                return Self::Avx512Vnni;
            }
            if pulp::x86::V4::is_available() {
                return Self::Avx512;
            }
            if pulp::x86::V3::is_available() {
                return Self::Avx2;
            }
        }
        Self::Portable
    }

    /// The level the kernels use: [`Level::detected`], capped by `NEXUS_SIMD`.
    pub fn current() -> Self {
        static LEVEL: OnceLock<Level> = OnceLock::new();
        *LEVEL.get_or_init(|| {
            let detected = Self::detected();
            match std::env::var("NEXUS_SIMD").ok().as_deref() {
                None | Some("") => detected,
                Some(s) => match Self::parse(s) {
                    Some(cap) => detected.min(cap),
                    None => {
                        eprintln!(
                            "NEXUS_SIMD={s:?} is not one of portable, avx2, avx512, avx512vnni: ignored"
                        );
                        detected
                    }
                },
            }
        })
    }
}

/// pulp's dispatcher for the `f32` kernels at [`Level::current`].
#[inline]
pub(crate) fn arch() -> pulp::Arch {
    #[cfg(target_arch = "x86_64")]
    {
        match Level::current() {
            Level::Portable => pulp::Arch::Scalar,
            Level::Avx2 => pulp::x86::V3::try_new().map_or(pulp::Arch::Scalar, pulp::Arch::V3),
            Level::Avx512 | Level::Avx512Vnni => pulp::Arch::new(),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        pulp::Arch::new()
    }
}
