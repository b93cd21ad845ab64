#include "dsa_channels.h"

#include <cstring>
#include <memory>
#include <utility>

#include "dsa_hw.h"

namespace dmacopy {
namespace {

void copy_now(const CopyRegion* regions, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (regions[i].len) std::memmove(regions[i].dst, regions[i].src, regions[i].len);
}

}  // namespace

DsaChannels::DsaChannels(std::vector<std::unique_ptr<WorkQueue>> queues, CpuCopier* cpu, EventSink* sink,
                         const DsaChannelOptions& opts)
    : poller_(std::make_unique<CompletionPoller>(std::move(queues), cpu, sink, opts)) {}

DsaChannels::~DsaChannels() { close(); }

size_t DsaChannels::channels() const { return poller_->channels(); }
const WqInfo& DsaChannels::channel_info(size_t c) const { return poller_->channel_info(c); }
bool DsaChannels::channel_usable(size_t c) const { return poller_->channel_usable(c); }

uint32_t DsaChannels::submit_work(size_t channel, uint64_t op_id, uint32_t work, const CopyRegion* regions, size_t n,
                                  uint64_t deadline_ns, std::function<void()> on_finished) {
  const size_t nch = poller_->channels();
  if (nch == 0) {
    copy_now(regions, n);
    return 0;
  }
  size_t c = channel % nch;
  // The count is fixed now, with this channel's limit; if the poller later reroutes the work,
  // pieces keep this size (a smaller-limit queue sends oversize pieces to the CPU).
  size_t chosen = SIZE_MAX;
  for (size_t k = 0; k < nch; ++k) {
    size_t cc = (c + k) % nch;
    if (poller_->channel_usable(cc)) {
      chosen = cc;
      break;
    }
  }
  uint32_t limit = poller_->channel_limit(chosen == SIZE_MAX ? c : chosen);
  uint64_t total = 0;
  size_t nonempty = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!regions[i].len) continue;
    ++nonempty;
    total += descriptors_for(regions[i].len, limit);
  }
  if (total == 0) return 0;
  if (total > UINT32_MAX) {
    copy_now(regions, n);
    return 0;
  }
  // Owned by a unique_ptr until the poller takes it: an allocation failure below leaks nothing.
  auto w = std::make_unique<WorkState>();
  w->op_id = op_id;
  w->work = work;
  w->deadline_ns = deadline_ns;
  w->limit = limit;
  w->total = uint32_t(total);
  w->channel = chosen;
  w->acc.op_id = op_id;
  w->acc.work = work;
  w->regions.reserve(nonempty);
  for (size_t i = 0; i < n; ++i)
    if (regions[i].len) w->regions.push_back(regions[i]);
  w->on_finished = std::move(on_finished);
  if (!poller_->enqueue(w.get())) {  // closed
    copy_now(regions, n);
    return 0;
  }
  w.release();  // the poller owns it now
  return uint32_t(total);
}

void DsaChannels::close() { poller_->stop(); }

DsaChannelsStats DsaChannels::stats() const { return poller_->stats(); }

}  // namespace dmacopy
