// Test-only: the typical shapes core tests, bench-style loops and regression tests build on, so
// each construction site says what it relies on. They mirror the values the library ships, whose
// one home is lib/defaults.ts (EMULATOR_DEFAULTS, PAGE_FAULT_RETRIES, QUARANTINE_AFTER): the core
// structs carry no policy default, and the addon sets every field from what lib/ passes down.
// Nothing here is compiled into the addon (binding.gyp compiles native/core/*.cc only).
#pragma once

#include "completion_poller.h"
#include "soft_device.h"

namespace dmacopy {

// An SPR-like software queue: EMULATOR_DEFAULTS of lib/defaults.ts.
inline SoftDeviceConfig typical_soft_device() {
  SoftDeviceConfig c;
  c.engines = 2;
  c.wq_size = 128;
  c.max_transfer_size = 2u << 20;
  c.seed = 1;
  c.latency_us = 0;
  c.jitter_us = 0;
  c.faults.late_ms = 20;
  return c;
}

// PAGE_FAULT_RETRIES, QUARANTINE_AFTER and DRAIN_TIMEOUT_MS of lib/defaults.ts.
inline DsaChannelOptions typical_channel_options() {
  DsaChannelOptions o;
  o.page_fault_retries = 2;
  o.quarantine_after = 3;
  o.drain_timeout_ms = 1000;
  return o;
}

}  // namespace dmacopy
