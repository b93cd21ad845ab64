// The device descriptors of a prepared batch (engine.prepare on a device backend), built once
// when the batch is prepared: a re-run copies each 64-byte descriptor into the submission and
// points it at a freshly zeroed completion record, instead of cutting the pieces at the queue's
// transfer limit and filling every descriptor again.
//
// The completion records are not part of it: they stay the channel's (completion_poller.h). A
// record the device may still write is never handed out again, and a channel that wedged keeps
// its records until its queue is released. Records owned by the prepared batch would all have to
// be given up after one wedged run; a channel record is zeroed when it is taken, which is the
// reset a re-run needs anyway.
//
// A descriptor is only used as built while it still says exactly what the piece in hand is, with
// the cache-control flag of the channel that submits it (template_matches); otherwise the piece's
// descriptor is filled as an unprepared work's would be. So a page-fault continuation always gets
// a new one; a work the poller moves to another channel mid-run keeps using its descriptors where
// that channel's flag is the same (they are then byte for byte what it would build); a work whose
// channel was quarantined before the run is submitted the unprepared way (submit_prepared).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "batch_plan.h"
#include "copy_region.h"
#include "dsa_hw.h"

namespace dmacopy {

// The descriptors of one device work, for the channel they were built for.
struct PreparedWork {
  size_t channel = 0;          // the channel whose limit and cache-control flag they carry
  uint32_t limit = 0;          // that channel's piece limit (bytes per descriptor)
  bool cache_control = false;  // IDXD_OP_FLAG_CC set in every descriptor
  // One per piece, in the order the poller submits them; completion_addr is 0 (set per run).
  std::vector<dsa_hw_desc> descs;
};

struct PreparedDescriptors {
  // The plan the descriptors point into: held here, so a work running from them keeps alive
  // both its descriptors and the pieces they were cut from.
  std::shared_ptr<const WorkPieces> plan;
  // One per work of the plan; a work with no descriptors (CPU share, or too many for one
  // work's 32-bit count) is submitted the unprepared way.
  std::vector<PreparedWork> works;
  uint64_t descriptors = 0;  // across all works: 64 bytes each, held as long as the batch is prepared
};

// Memmove descriptors for pieces [0, n), cut at `limit` bytes as the poller cuts them (every
// piece non-empty). Empty when they would be more than UINT32_MAX (a work's count is 32-bit).
PreparedWork build_prepared_work(const CopyRegion* pieces, size_t n, size_t channel, uint32_t limit,
                                 bool cache_control);

// True when t, as built, is the descriptor of this piece on a channel with this cache-control
// setting: same operation, flags, addresses and length.
bool template_matches(const dsa_hw_desc& t, const uint8_t* dst, const uint8_t* src, uint32_t len, bool cache_control);

}  // namespace dmacopy
