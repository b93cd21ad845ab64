#include "prepared_descriptors.h"

namespace dmacopy {

PreparedWork build_prepared_work(const CopyRegion* pieces, size_t n, size_t channel, uint32_t limit,
                                 bool cache_control) {
  PreparedWork w;
  w.channel = channel;
  w.limit = limit;
  w.cache_control = cache_control;
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) total += descriptors_for(pieces[i].len, limit);
  if (total == 0 || total > UINT32_MAX) return w;
  w.descs.resize(static_cast<size_t>(total));
  size_t d = 0;
  for (size_t i = 0; i < n; ++i) {
    const CopyRegion& r = pieces[i];
    // The poller's cut (next_piece_of): full limits, then the remainder.
    for (size_t off = 0; off < r.len;) {
      const size_t len = r.len - off < limit ? r.len - off : limit;
      build_memmove(&w.descs[d++], r.dst + off, r.src + off, static_cast<uint32_t>(len), nullptr, cache_control);
      off += len;
    }
  }
  return w;
}

bool template_matches(const dsa_hw_desc& t, const uint8_t* dst, const uint8_t* src, uint32_t len, bool cache_control) {
  return t.opcode == DSA_OPCODE_MEMMOVE && t.flags == (kMemmoveFlags | (cache_control ? IDXD_OP_FLAG_CC : 0)) &&
         t.dst_addr == reinterpret_cast<uintptr_t>(dst) && t.src_addr == reinterpret_cast<uintptr_t>(src) &&
         t.xfer_size == len;
}

}  // namespace dmacopy
