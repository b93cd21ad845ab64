// Run-time CPU feature detection for the DSA submission and waiting instructions, and a TSC
// clock for UMWAIT deadlines. Every caller of an instruction in portal.h checks cpu_features()
// first: nothing here or there ever executes an instruction the CPU lacks.
//
// CPUID leaf 7, subleaf 0, ECX (kernel cpufeatures.h word 16): WAITPKG bit 5, MOVDIRI bit 27,
// MOVDIR64B bit 28, ENQCMD bit 29. Note the CPUID bit alone does not prove the kernel supports
// ENQCMD (it needs CONFIG_INTEL_IOMMU_SVM and a PASID); user_queue.cc probes with a NOOP.
//
// DMACOPY_CPU_FEATURES_MASK (read at first use and by cpu_features_reload()) can only REMOVE
// features: "none" keeps nothing, "all" (or unset/empty) keeps what CPUID reports, otherwise a
// comma/space/plus separated list of names to keep ("movdir64b", "enqcmd", "waitpkg",
// "movdiri"). A name the CPU lacks stays off. Unknown names are ignored (and reported by
// cpu_features_mask_error()).
#pragma once

#include <cstdint>
#include <string>

#include "clock.h"  // monotonic_ns(), for the TSC calibration's callers

namespace dmacopy {

enum CpuFeatureBit : uint32_t {
  kCpuMovdir64b = 1u << 0,
  kCpuEnqcmd = 1u << 1,
  kCpuWaitpkg = 1u << 2,
  kCpuMovdiri = 1u << 3,
};

struct CpuFeatures {
  bool movdir64b = false;
  bool enqcmd = false;
  bool waitpkg = false;
  bool movdiri = false;

  uint32_t bits() const;
  static CpuFeatures from_bits(uint32_t bits);
  std::string describe() const;  // "movdir64b enqcmd" or "none"
};

// What CPUID says (x86-64 only; all false elsewhere). Not cached, no mask.
CpuFeatures cpu_features_hardware();

// The effective features: CPUID AND the DMACOPY_CPU_FEATURES_MASK override. Cached; cheap.
CpuFeatures cpu_features();

// Whether the running kernel lists "enqcmd" in /proc/cpuinfo (it clears the flag when it
// cannot fix up IA32_PASID, e.g. without CONFIG_INTEL_IOMMU_SVM; ENQCMD would then #GP and the
// process would get SIGSEGV). Read once and cached. Always false off x86.
bool kernel_enables_enqcmd();

// Parses a mask specification into the feature bits it keeps (pure; for tests and `info`).
// Returns false (and sets *error) when the spec has unknown names; the known names still count.
bool parse_cpu_feature_mask(const char* spec, uint32_t* keep_bits, std::string* error);

// Re-reads DMACOPY_CPU_FEATURES_MASK (tests set the variable, then call this). Not meant to be
// raced with submissions: a queue decides its instruction when it opens.
void cpu_features_reload();

// Error text from the last parse of the environment variable, empty if it was fine.
std::string cpu_features_mask_error();

// ---- Time -------------------------------------------------------------------------------

// Raw time-stamp counter (0 on non-x86).
uint64_t read_tsc();

// TSC ticks per microsecond, calibrated once against CLOCK_MONOTONIC_RAW (about 2 ms of
// sampling on first call; thread-safe). 0 when there is no usable TSC.
uint64_t tsc_ticks_per_us();

// TSC value `ns` nanoseconds from now (for UMWAIT deadlines). Saturates; 0 without a TSC.
uint64_t tsc_deadline_after_ns(uint64_t ns);

}  // namespace dmacopy
