#include "portal.h"

#include <time.h>

#include "clock.h"

namespace dmacopy {

uint8_t wait_for_status(const volatile uint8_t* status, uint64_t timeout_ns) {
  uint8_t s = __atomic_load_n(status, __ATOMIC_ACQUIRE);
  if (s) return s;
  const uint64_t deadline = monotonic_ns() + timeout_ns;
  for (int i = 0; i < 512; ++i) {
    cpu_relax();
    s = __atomic_load_n(status, __ATOMIC_ACQUIRE);
    if (s) return s;
  }
  const bool waitpkg = cpu_features().waitpkg;
  for (;;) {
    uint64_t now = monotonic_ns();
    if (now >= deadline) break;
    if (waitpkg) {
      umonitor(status);
      s = __atomic_load_n(status, __ATOMIC_ACQUIRE);  // a store between check and monitor
      if (s) return s;
      uint64_t slice = deadline - now;
      if (slice > 50000) slice = 50000;  // re-check the wall clock at least every 50 us
      umwait(0, tsc_deadline_after_ns(slice));
    } else {
      timespec ts{0, 20000};  // 20 us: the probe is not latency critical
      nanosleep(&ts, nullptr);
    }
    s = __atomic_load_n(status, __ATOMIC_ACQUIRE);
    if (s) return s;
  }
  return __atomic_load_n(status, __ATOMIC_ACQUIRE);
}

}  // namespace dmacopy
