// The DSA channels the addon talks to: channels over work queues (real or software), one poller.
// submit_work() is non-blocking: it fixes how many descriptors a work has (the caller's pending
// counter) and hands the work to the poller, which reports progress through EventSink.
//
// Guarantees (see completion_poller.h for how):
//  - every descriptor has CRAV|RCR and its own record, counted on its own, in any order;
//  - an event reports only bytes already in memory; the counts of one work sum to the value
//    submit_work returned once, and only once, every byte of the work was copied;
//  - a work past its deadline is finished by the CPU after its queue was drained, so no late
//    device write lands after the work was reported done;
//  - close() returns only when no device or CPU thread can still write.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "completion_event.h"
#include "completion_poller.h"
#include "copy_region.h"
#include "cpu_copier.h"
#include "prepared_descriptors.h"
#include "work_queue.h"

namespace dmacopy {

class DsaChannels {
 public:
  // cpu may be null (fallbacks then copy on the poller thread); sink may not. opts has no
  // default: its policy values come from lib/defaults.ts; invalid ones throw
  // std::invalid_argument (see CompletionPoller).
  DsaChannels(std::vector<std::unique_ptr<WorkQueue>> queues, CpuCopier* cpu, EventSink* sink,
              const DsaChannelOptions& opts);
  ~DsaChannels();  // close()
  DsaChannels(const DsaChannels&) = delete;
  DsaChannels& operator=(const DsaChannels&) = delete;

  size_t channels() const;
  const WqInfo& channel_info(size_t channel) const;
  bool channel_usable(size_t channel) const;  // false once quarantined

  // Splits regions into descriptors (the queue's max_transfer_size, at most UINT32_MAX bytes
  // each; empty regions are skipped) and queues them on `channel` (modulo channels()), or on a
  // healthy channel if that one is quarantined, or on the CPU if none is left. Returns the
  // number of descriptors: the events of this (op_id, work) will have `completed` summing to it.
  // Returns 0 when there was nothing to wait for: no bytes, or the engine is closed / has no
  // channels / the work exceeds 2^32-1 descriptors, in which case the copy was done
  // synchronously on this thread before returning; no event is posted for such a work.
  // Events may be posted (from the poller thread) before this returns.
  // on_finished (may be empty) runs on the poller thread after the work's last event was
  // posted; it is called only when the return value is not 0 (else it is dropped unused).
  uint32_t submit_work(size_t channel, uint64_t op_id, uint32_t work, const CopyRegion* regions, size_t n,
                       uint64_t deadline_ns /* CLOCK_MONOTONIC absolute, 0 = none */,
                       std::function<void()> on_finished = nullptr);

  // A prepared batch's descriptors (prepared_descriptors.h): built once for works [0,
  // device_works) of plan, each for the channel submit_prepared will be asked to use (its work
  // index, as CopyExecutor::run_device does). Null when there is no channel.
  std::shared_ptr<const PreparedDescriptors> prepare(std::shared_ptr<const WorkPieces> plan, size_t device_works) const;

  // submit_work for work `work` of a prepared batch: the same contract and count, but when the
  // work's channel is the one its descriptors were built for and still usable, the poller
  // submits those descriptors (only the completion record is new) and reads the plan's pieces
  // in place. Otherwise exactly submit_work over the work's pieces.
  uint32_t submit_prepared(size_t channel, uint64_t op_id, uint32_t work,
                           const std::shared_ptr<const PreparedDescriptors>& pd, uint64_t deadline_ns,
                           std::function<void()> on_finished = nullptr);

  // Drains every queue (what they held is finished on the CPU and reported), waits for CPU
  // fallbacks, joins the poller. Idempotent. submit_work afterwards copies synchronously.
  void close();

  DsaChannelsStats stats() const;

 private:
  // A work with everything but its pieces set (submit_work, submit_prepared).
  static std::unique_ptr<WorkState> new_work(uint64_t op_id, uint32_t work, uint64_t deadline_ns, uint32_t limit,
                                             uint32_t total, size_t channel, std::function<void()> on_finished);
  // Gives w to the poller and returns its count, or copies regions here and returns 0 if closed.
  uint32_t hand_over(std::unique_ptr<WorkState> w, const CopyRegion* regions, size_t n);

  std::unique_ptr<CompletionPoller> poller_;
};

}  // namespace dmacopy
