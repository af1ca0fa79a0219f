//! Tells the kernels' tests which SIMD paths the build machine's CPU runs
//! (`nexus_cpu_avx2`, `nexus_cpu_avx512vnni`), so a test of a path the CPU lacks is reported
//! as ignored with the reason, never as passed. Only for native builds (target = host).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(nexus_cpu_avx2)");
    println!("cargo::rustc-check-cfg=cfg(nexus_cpu_avx512vnni)");
    println!("cargo::rerun-if-changed=build.rs");
    let native = std::env::var("TARGET").ok() == std::env::var("HOST").ok();
    #[cfg(target_arch = "x86_64")]
    if native {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            println!("cargo::rustc-cfg=nexus_cpu_avx2");
        }
        if ["avx512f", "avx512bw", "avx512vl", "avx512vnni"]
            .iter()
            .all(|f| std_detect(f))
        {
            println!("cargo::rustc-cfg=nexus_cpu_avx512vnni");
        }
    }
    let _ = native;
}

#[cfg(target_arch = "x86_64")]
fn std_detect(feature: &str) -> bool {
    match feature {
        "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
        "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
        "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
        "avx512vnni" => std::arch::is_x86_feature_detected!("avx512vnni"),
        _ => false,
    }
}
