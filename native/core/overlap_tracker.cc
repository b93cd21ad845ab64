#include "overlap_tracker.h"

#include <algorithm>

namespace dmacopy {

PlanStatus OverlapTracker::add(const std::vector<CopyRegion>& chunk) {
  bool ascending = ascending_;
  uintptr_t last_end = last_dst_end_;
  uintptr_t dlo = dst_lo_, dhi = dst_hi_, slo = src_lo_, shi = src_hi_;
  for (const CopyRegion& r : chunk) {
    if (r.len == 0) continue;
    const uintptr_t d = reinterpret_cast<uintptr_t>(r.dst), s = reinterpret_cast<uintptr_t>(r.src);
    if (d < last_end) ascending = false;
    last_end = d + r.len;
    dlo = std::min(dlo, d);
    dhi = std::max(dhi, d + r.len);
    slo = std::min(slo, s);
    shi = std::max(shi, s + r.len);
  }
  const bool hulls_apart = dhi <= slo || shi <= dlo;
  all_.insert(all_.end(), chunk.begin(), chunk.end());
  if (!(ascending && hulls_apart)) {
    PlanStatus st = check_overlaps(all_);
    if (!st.ok()) {
      all_.resize(all_.size() - chunk.size());
      return st;  // folio numbers are batch-wide: all_ holds every folio from the first
    }
  }
  ascending_ = ascending;
  last_dst_end_ = last_end;
  dst_lo_ = dlo;
  dst_hi_ = dhi;
  src_lo_ = slo;
  src_hi_ = shi;
  return {};
}

}  // namespace dmacopy
