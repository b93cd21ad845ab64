#include "naive_strategy.h"

#include <cstdlib>
#include <new>
#include <thread>

#include "clock.h"
#include "dsa_hw.h"

namespace dmacopy {
NaiveLastDescriptorCopy::NaiveLastDescriptorCopy(WorkQueue& q, size_t max_regions)
    : q_(q), cap_(max_regions ? max_regions : 1) {
  void* p = std::aligned_alloc(64, ((cap_ * sizeof(dsa_completion_record)) + 63) & ~size_t{63});
  if (!p) throw std::bad_alloc();
  records_ = static_cast<dsa_completion_record*>(p);
}

NaiveLastDescriptorCopy::~NaiveLastDescriptorCopy() {
  q_.drain();
  std::free(records_);
}

bool NaiveLastDescriptorCopy::copy(const CopyRegion* regions, size_t n, uint64_t timeout_ns) {
  if (n == 0 || n > cap_) return false;
  for (size_t i = 0; i < n; ++i) {
    prepare_completion(&records_[i]);
    dsa_hw_desc d;
    build_memmove(&d, regions[i].dst, regions[i].src, uint32_t(regions[i].len), &records_[i], false);
    submission_fence();
    if (q_.submit(d) != SubmitStatus::Accepted) return false;
  }
  // The bug: only the last record is watched.
  const dsa_completion_record* last = &records_[n - 1];
  uint64_t end = monotonic_ns() + timeout_ns;
  while (load_status(last) == 0) {
    if (monotonic_ns() > end) return false;
    std::this_thread::yield();
  }
  return (load_status(last) & DSA_COMP_STATUS_MASK) == DSA_COMP_SUCCESS;
}

}  // namespace dmacopy
