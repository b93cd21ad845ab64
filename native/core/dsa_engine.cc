#include "dsa_engine.h"

#include <cstring>

#include "dsa_hw.h"

namespace dmacopy {
namespace {

void copy_now(const CopyRegion* regions, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (regions[i].len) std::memmove(regions[i].dst, regions[i].src, regions[i].len);
}

}  // namespace

DsaEngine::DsaEngine(std::vector<std::unique_ptr<WorkQueue>> queues, CpuCopier* cpu, EventSink* sink,
                     DsaEngineOptions opts)
    : poller_(std::make_unique<CompletionEngine>(std::move(queues), cpu, sink, opts)) {}

DsaEngine::~DsaEngine() { close(); }

size_t DsaEngine::channels() const { return poller_->channels(); }
const WqInfo& DsaEngine::channel_info(size_t c) const { return poller_->channel_info(c); }
bool DsaEngine::channel_usable(size_t c) const { return poller_->channel_usable(c); }

uint32_t DsaEngine::submit_work(size_t channel, uint64_t op_id, uint32_t work, const CopyRegion* regions, size_t n,
                                uint64_t deadline_ns) {
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
  auto* w = new WorkState();
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
  if (!poller_->enqueue(w)) {  // closed
    delete w;
    copy_now(regions, n);
    return 0;
  }
  return uint32_t(total);
}

void DsaEngine::close() { poller_->stop(); }

DsaEngineStats DsaEngine::stats() const { return poller_->stats(); }

}  // namespace dmacopy
