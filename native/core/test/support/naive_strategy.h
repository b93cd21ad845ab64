// DELIBERATELY WRONG: the strategy of the Linux dcbm / migrate_offload patches, kept only so a
// regression test can show the bug against the software device. It submits one memmove per
// region and waits for the LAST descriptor's completion record only, as if completion were in
// submission order. DSA completes out of order, so it can return while earlier descriptors
// have not copied yet. Never use it for real copies; DsaChannels is the correct path.
// Test-only: it lives in native/core/test/support, which binding.gyp never compiles.
#pragma once

#include <cstddef>
#include <cstdint>

#include "copy_region.h"
#include "work_queue.h"

namespace dmacopy {

class NaiveLastDescriptorCopy {
 public:
  // Records for up to max_regions descriptors (each region must fit one descriptor).
  NaiveLastDescriptorCopy(WorkQueue& q, size_t max_regions);
  // Drains the queue: the records must outlive every device write, even for this strategy.
  ~NaiveLastDescriptorCopy();
  NaiveLastDescriptorCopy(const NaiveLastDescriptorCopy&) = delete;
  NaiveLastDescriptorCopy& operator=(const NaiveLastDescriptorCopy&) = delete;

  // Returns true when the last descriptor's record said SUCCESS (the bug: that proves nothing
  // about the others), false on submit failure, error status or timeout.
  bool copy(const CopyRegion* regions, size_t n, uint64_t timeout_ns);

 private:
  WorkQueue& q_;
  size_t cap_;
  struct dsa_completion_record* records_;
};

}  // namespace dmacopy
