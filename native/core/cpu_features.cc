#include "cpu_features.h"

#include <time.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <x86intrin.h>
#define DMACOPY_X86 1
#else
#define DMACOPY_X86 0
#endif

namespace dmacopy {

namespace {

constexpr uint32_t kAllBits = kCpuMovdir64b | kCpuEnqcmd | kCpuWaitpkg | kCpuMovdiri;
constexpr uint32_t kInitialized = 1u << 31;

std::atomic<uint32_t> g_effective{0};
std::mutex g_error_mu;
std::string g_mask_error;

uint32_t compute_effective() {
  uint32_t hw = cpu_features_hardware().bits();
  uint32_t keep = kAllBits;
  std::string error;
  parse_cpu_feature_mask(std::getenv("DMACOPY_CPU_FEATURES_MASK"), &keep, &error);
  {
    std::lock_guard<std::mutex> lock(g_error_mu);
    g_mask_error = error;
  }
  return (hw & keep) | kInitialized;
}

}  // namespace

uint32_t CpuFeatures::bits() const {
  return (movdir64b ? kCpuMovdir64b : 0u) | (enqcmd ? kCpuEnqcmd : 0u) | (waitpkg ? kCpuWaitpkg : 0u) |
         (movdiri ? kCpuMovdiri : 0u);
}

CpuFeatures CpuFeatures::from_bits(uint32_t b) {
  CpuFeatures f;
  f.movdir64b = (b & kCpuMovdir64b) != 0;
  f.enqcmd = (b & kCpuEnqcmd) != 0;
  f.waitpkg = (b & kCpuWaitpkg) != 0;
  f.movdiri = (b & kCpuMovdiri) != 0;
  return f;
}

std::string CpuFeatures::describe() const {
  std::string s;
  auto add = [&s](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(movdir64b, "movdir64b");
  add(enqcmd, "enqcmd");
  add(waitpkg, "waitpkg");
  add(movdiri, "movdiri");
  return s.empty() ? "none" : s;
}

CpuFeatures cpu_features_hardware() {
  CpuFeatures f;
#if DMACOPY_X86
  unsigned int a = 0, b = 0, c = 0, d = 0;
  // __get_cpuid_count checks the maximum basic leaf first, so leaf 7 is never read where absent.
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.waitpkg = (c >> 5) & 1;
    f.movdiri = (c >> 27) & 1;
    f.movdir64b = (c >> 28) & 1;
    f.enqcmd = (c >> 29) & 1;
  }
#endif
  return f;
}

bool parse_cpu_feature_mask(const char* spec, uint32_t* keep_bits, std::string* error) {
  if (error) error->clear();
  if (spec == nullptr) {
    *keep_bits = kAllBits;
    return true;
  }
  uint32_t keep = 0;
  bool any_token = false;
  bool ok = true;
  std::string token;
  auto flush = [&]() {
    if (token.empty()) return;
    any_token = true;
    std::string t;
    for (char ch : token) t += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (t == "all") keep |= kAllBits;
    else if (t == "none") keep |= 0;
    else if (t == "movdir64b") keep |= kCpuMovdir64b;
    else if (t == "enqcmd") keep |= kCpuEnqcmd;
    else if (t == "waitpkg") keep |= kCpuWaitpkg;
    else if (t == "movdiri") keep |= kCpuMovdiri;
    else {
      ok = false;
      if (error) {
        if (!error->empty()) *error += "; ";
        *error += "unknown CPU feature '" + token + "' in DMACOPY_CPU_FEATURES_MASK (ignored)";
      }
    }
    token.clear();
  };
  for (const char* p = spec; *p; ++p) {
    if (*p == ',' || *p == ' ' || *p == '+' || *p == '\t') flush();
    else token += *p;
  }
  flush();
  *keep_bits = any_token ? keep : kAllBits;  // empty string: no override
  return ok;
}

CpuFeatures cpu_features() {
  uint32_t v = g_effective.load(std::memory_order_acquire);
  if (!(v & kInitialized)) {
    v = compute_effective();
    g_effective.store(v, std::memory_order_release);
  }
  return CpuFeatures::from_bits(v & ~kInitialized);
}

void cpu_features_reload() { g_effective.store(compute_effective(), std::memory_order_release); }

std::string cpu_features_mask_error() {
  cpu_features();
  std::lock_guard<std::mutex> lock(g_error_mu);
  return g_mask_error;
}

bool kernel_enables_enqcmd() {
#if DMACOPY_X86
  static const bool enabled = [] {
    FILE* f = std::fopen("/proc/cpuinfo", "re");
    if (!f) return false;
    char* line = nullptr;
    size_t cap = 0;
    bool found = false;
    while (getline(&line, &cap, f) > 0) {
      if (std::strncmp(line, "flags", 5) != 0) continue;
      // Tokens are space separated; match " enqcmd" followed by a space or the end of line.
      for (const char* p = std::strstr(line, " enqcmd"); p; p = std::strstr(p + 1, " enqcmd")) {
        char after = p[7];
        if (after == ' ' || after == '\n' || after == '\0') found = true;
      }
      break;  // the first CPU's flags are enough
    }
    std::free(line);
    std::fclose(f);
    return found;
  }();
  return enabled;
#else
  return false;
#endif
}

uint64_t read_tsc() {
#if DMACOPY_X86
  return __rdtsc();
#else
  return 0;
#endif
}

uint64_t tsc_ticks_per_us() {
#if DMACOPY_X86
  static const uint64_t ticks = [] {
    auto raw_ns = [] {
      timespec ts;
      clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
      return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
    };
    // Two samples of ~1 ms each; keep the larger estimate (a preemption between a clock read
    // and its rdtsc can only make a sample look slower). Invariant TSC assumed (constant_tsc).
    uint64_t best = 0;
    for (int i = 0; i < 2; ++i) {
      uint64_t n0 = raw_ns(), t0 = __rdtsc();
      uint64_t n1;
      do {
        n1 = raw_ns();
      } while (n1 - n0 < 1000000);
      uint64_t t1 = __rdtsc();
      if (t1 <= t0) continue;
      uint64_t per_us = (t1 - t0) * 1000 / (n1 - n0);
      if (per_us > best) best = per_us;
    }
    return best;
  }();
  return ticks;
#else
  return 0;
#endif
}

uint64_t tsc_deadline_after_ns(uint64_t ns) {
  uint64_t per_us = tsc_ticks_per_us();
  if (per_us == 0) return 0;
  uint64_t now = read_tsc();
  uint64_t us = ns / 1000 + 1;
  if (us > (UINT64_MAX - now) / per_us) return UINT64_MAX;
  return now + us * per_us;
}

}  // namespace dmacopy
