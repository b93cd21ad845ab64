// Overlap checking for a batch that arrives in chunks (large list-form batches are validated
// and submitted chunk by chunk, so copying starts before the last view was read). Each chunk is
// checked against itself and every earlier chunk of the same batch.
#pragma once

#include <cstdint>
#include <vector>

#include "batch_plan.h"

namespace dmacopy {

class OverlapTracker {
 public:
  OverlapTracker() = default;
  // Starts with `storage`'s memory (emptied): a caller that tracks batch after batch hands the
  // memory of the last one back in (take_storage), so a long list does not grow it from nothing.
  explicit OverlapTracker(std::vector<CopyRegion> storage) : all_(std::move(storage)) { all_.clear(); }
  std::vector<CopyRegion> take_storage() { return std::move(all_); }

  // Adds the folios of the next chunk. On failure the chunk is not added, and the status names
  // batch-wide folio numbers.
  PlanStatus add(const std::vector<CopyRegion>& chunk);

  size_t folios() const { return all_.size(); }

 private:
  // The fast path holds when destinations keep ascending without overlap and the hull of all
  // destinations stays clear of the hull of all sources: then no check against history is needed.
  bool ascending_ = true;
  uintptr_t last_dst_end_ = 0;
  uintptr_t dst_lo_ = UINTPTR_MAX, dst_hi_ = 0, src_lo_ = UINTPTR_MAX, src_hi_ = 0;
  std::vector<CopyRegion> all_;  // every folio so far, for the exact check when the fast path fails
};

}  // namespace dmacopy
