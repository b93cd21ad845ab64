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
  auto w = new_work(op_id, work, deadline_ns, limit, uint32_t(total), chosen, std::move(on_finished));
  w->regions.reserve(nonempty);
  for (size_t i = 0; i < n; ++i)
    if (regions[i].len) w->regions.push_back(regions[i]);
  w->piece_table = w->regions.data();
  w->piece_count = w->regions.size();
  return hand_over(std::move(w), regions, n);
}

std::unique_ptr<WorkState> DsaChannels::new_work(uint64_t op_id, uint32_t work, uint64_t deadline_ns, uint32_t limit,
                                                 uint32_t total, size_t channel, std::function<void()> on_finished) {
  // Owned by a unique_ptr until the poller takes it: an allocation failure leaks nothing.
  auto w = std::make_unique<WorkState>();
  w->op_id = op_id;
  w->work = work;
  w->deadline_ns = deadline_ns;
  w->limit = limit;
  w->total = total;
  w->channel = channel;
  w->acc.op_id = op_id;
  w->acc.work = work;
  w->on_finished = std::move(on_finished);
  return w;
}

uint32_t DsaChannels::hand_over(std::unique_ptr<WorkState> w, const CopyRegion* regions, size_t n) {
  const uint32_t total = w->total;   // the poller may finish and free the work once it has it
  if (!poller_->enqueue(w.get())) {  // closed
    copy_now(regions, n);
    return 0;
  }
  w.release();  // the poller owns it now
  return total;
}

std::shared_ptr<const PreparedDescriptors> DsaChannels::prepare(std::shared_ptr<const WorkPieces> plan,
                                                                size_t device_works) const {
  const size_t nch = poller_->channels();
  if (!plan || nch == 0 || plan->work_begin.empty()) return nullptr;
  auto pd = std::make_shared<PreparedDescriptors>();
  const size_t k = plan->work_begin.size() - 1;
  pd->works.resize(k);
  for (size_t w = 0; w < k && w < device_works; ++w) {
    const size_t b = plan->work_begin[w], e = plan->work_begin[w + 1];
    // For the channel run_device hands this work to (its index): if that one is unusable when
    // the batch runs, the work goes elsewhere and is submitted the unprepared way.
    const size_t c = w % nch;
    if (!poller_->channel_usable(c)) continue;  // quarantined: every run would go elsewhere
    pd->works[w] = build_prepared_work(plan->pieces.data() + b, e - b, c, poller_->channel_limit(c),
                                       poller_->channel_cache_control(c));
    pd->descriptors += pd->works[w].descs.size();
  }
  pd->plan = std::move(plan);
  return pd;
}

uint32_t DsaChannels::submit_prepared(size_t channel, uint64_t op_id, uint32_t work,
                                      const std::shared_ptr<const PreparedDescriptors>& pd, uint64_t deadline_ns,
                                      std::function<void()> on_finished) {
  const WorkPieces& plan = *pd->plan;
  const CopyRegion* pieces = plan.pieces.data() + plan.work_begin[work];
  const size_t n = plan.work_begin[work + 1] - plan.work_begin[work];
  const PreparedWork& pw = pd->works[work];
  const size_t nch = poller_->channels();
  // Its descriptors serve only on the channel they were built for, while it is usable; else the
  // work is cut and built as any other (same count rule, the chosen channel's limit).
  // (A channel's limit is fixed when it is opened; comparing it keeps this true if that changes.)
  if (pw.descs.empty() || nch == 0 || pw.channel != channel % nch || !poller_->channel_usable(pw.channel) ||
      poller_->channel_limit(pw.channel) != pw.limit)
    return submit_work(channel, op_id, work, pieces, n, deadline_ns, std::move(on_finished));
  auto w = new_work(op_id, work, deadline_ns, pw.limit, static_cast<uint32_t>(pw.descs.size()), pw.channel,
                    std::move(on_finished));
  w->piece_table = pieces;  // non-empty pieces (split_works drops empty ones), read in place
  w->piece_count = n;
  w->prebuilt = pw.descs.data();
  w->keep = pd;
  return hand_over(std::move(w), pieces, n);
}

void DsaChannels::close() { poller_->stop(); }

DsaChannelsStats DsaChannels::stats() const { return poller_->stats(); }

}  // namespace dmacopy
