// What the poller reports: per (op, work), coalesced over one poll sweep, never per descriptor.
// An event is posted only after every byte it reports is in memory.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dmacopy {

struct CompletionEvent {
  uint64_t op_id = 0;
  uint32_t work = 0;
  uint32_t completed = 0;         // descriptors that reached their final state (device or CPU)
  uint64_t device_bytes = 0;      // bytes the device copied (incl. the done part of page faults)
  uint64_t cpu_bytes = 0;         // bytes the CPU fallback copied
  uint32_t fallback_timeout = 0;  // descriptors finished by the CPU, by reason
  uint32_t fallback_error = 0;
  uint32_t fallback_page_fault = 0;
  uint32_t fallback_submit = 0;
  uint32_t out_of_order = 0;        // completions seen while an earlier descriptor of the queue was outstanding
  uint32_t page_fault_retries = 0;  // page faults continued on the device
  uint32_t wedged = 0;              // of `completed`: finished by the CPU while the device may still write them
                                    // (a Drain did not complete in time; see completion_poller.h)
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Called from the poller thread (never concurrently with itself). ev is valid only during the call.
  virtual void post(const CompletionEvent* ev, size_t n) = 0;
};

}  // namespace dmacopy
