"""``/proc/cpuinfo`` texts of three CPUs (first processor in full, then a second one), for
the tests of ``common.cpu`` and ``benchmarks.machine``."""

COMMON = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush "
          "mmx fxsr sse sse2 ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl "
          "xtopology nonstop_tsc cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid "
          "sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm "
          "abm 3dnowprefetch fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid rdseed "
          "adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 xsaves arat umip pku "
          "ospke vaes vpclmulqdq rdpid fsrm")


def cpuinfo(vendor, family, model_number, model, flags, mhz):
    block = (f"processor\t: {{n}}\nvendor_id\t: {vendor}\ncpu family\t: {family}\n"
             f"model\t\t: {model_number}\nmodel name\t: {model}\nstepping\t: 1\n"
             f"cpu MHz\t\t: {mhz}\ncache size\t: 512 KB\nflags\t\t: {COMMON} {flags}\n"
             "bogomips\t: 4890.80\n\n")
    return block.format(n=0) + block.format(n=1)


# Zen 3 (a cloud VM as the project's figures were measured on): AVX2 and FMA only.
ZEN3 = cpuinfo("AuthenticAMD", 25, 1, "AMD EPYC 7B13", "mmxext fxsr_opt topoext clzero "
               "xsaveerptr wbnoinvd", "2445.406")
# Zen 4: AVX-512 (run on 256-bit units) with VNNI and BF16, no AMX.
ZEN4 = cpuinfo("AuthenticAMD", 25, 17, "AMD EPYC 9B14", "avx512f avx512dq avx512ifma "
               "avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vbmi2 gfni "
               "avx512_vnni avx512_bitalg avx512_vpopcntdq", "2599.998")
# Sapphire Rapids: AVX-512 with VNNI and BF16, AVX_VNNI, and AMX tiles.
SAPPHIRE_RAPIDS = cpuinfo("GenuineIntel", 6, 143, "Intel(R) Xeon(R) Platinum 8481C CPU @ "
                          "2.70GHz", "avx512f avx512dq avx512ifma avx512cd avx512bw "
                          "avx512vl avx_vnni avx512_bf16 avx512vbmi avx512_vbmi2 gfni "
                          "avx512_vnni avx512_bitalg avx512_vpopcntdq amx_bf16 amx_tile "
                          "amx_int8 avx512_fp16", "2699.998")
