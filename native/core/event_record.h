// One progress event in the layout JavaScript receives (a Float64Array of kEventFields doubles
// per event; lib/native/abi.ts mirrors the field order), and the one conversion from the poller's
// CompletionEvent into it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "completion_event.h"

namespace dmacopy {

enum EventField : size_t {
  kEvOp,
  kEvWork,
  kEvCompleted,
  kEvDeviceBytes,
  kEvCpuBytes,
  kEvFallbackTimeout,
  kEvFallbackError,
  kEvFallbackPageFault,
  kEvFallbackSubmit,
  kEvOutOfOrder,
  kEvPageFaultRetries,
  kEvWedged,
  kEventFields
};

struct EventRecord {
  double f[kEventFields];
};

inline EventRecord to_record(const CompletionEvent& e) {
  EventRecord r;
  r.f[kEvOp] = static_cast<double>(e.op_id);
  r.f[kEvWork] = e.work;
  r.f[kEvCompleted] = e.completed;
  r.f[kEvDeviceBytes] = static_cast<double>(e.device_bytes);
  r.f[kEvCpuBytes] = static_cast<double>(e.cpu_bytes);
  r.f[kEvFallbackTimeout] = e.fallback_timeout;
  r.f[kEvFallbackError] = e.fallback_error;
  r.f[kEvFallbackPageFault] = e.fallback_page_fault;
  r.f[kEvFallbackSubmit] = e.fallback_submit;
  r.f[kEvOutOfOrder] = e.out_of_order;
  r.f[kEvPageFaultRetries] = e.page_fault_retries;
  r.f[kEvWedged] = e.wedged;
  return r;
}

// A CPU job's progress (regions and bytes copied since its last report) as an event.
inline EventRecord cpu_progress_record(uint64_t op_id, uint32_t work, uint32_t regions, uint64_t bytes) {
  EventRecord r{};
  r.f[kEvOp] = static_cast<double>(op_id);
  r.f[kEvWork] = work;
  r.f[kEvCompleted] = regions;
  r.f[kEvCpuBytes] = static_cast<double>(bytes);
  return r;
}

}  // namespace dmacopy
