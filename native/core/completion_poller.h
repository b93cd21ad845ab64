// The poller: one native thread that owns every channel's submission and completion state.
// It feeds descriptors to the queues within their in-flight window, scans EVERY outstanding
// completion record each sweep (completion order is never assumed), counts per descriptor and
// per work, continues page faults, sends failures / timeouts / unhealthy queues to the CPU,
// and posts coalesced events. Only this thread touches channel state, so the hot path has no
// locks and no per-descriptor allocation: fixed slot arrays, a dense list of outstanding slots.
//
// A device has no abort, and releasing a queue drains only on the last reference, with no
// timeout. So after a deadline (or a device-wide software error) the poller FENCES the channel:
// it stops feeding it and submits an in-band Drain descriptor (one queue entry is kept free for
// it), which completes once everything before it did. Until then every outstanding record and
// destination stays owned by the device: nothing is recycled and no work that has a piece there
// finishes. When the Drain completes, records still blank were lost (dropped or never written):
// the CPU copies those pieces, and only then is the channel blamed (a software error with no
// lost descriptor of ours was another client's). If the Drain does not complete within
// drain_timeout_ms the device is wedged: the CPU copies what was outstanding, the works end
// marked `wedged` (the device may still write those destinations, with the same bytes), the
// channel is quarantined, and its queue and records go to QueueReaper, which releases the queue
// off this thread and frees the records only if the release ever returns.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "completion_arena.h"
#include "completion_event.h"
#include "copy_region.h"
#include "cpu_copier.h"
#include "cpu_features.h"
#include "dsa_hw.h"
#include "queue_reaper.h"
#include "work_queue.h"

namespace dmacopy {

// Shared-queue Retry (ENQCMD ZF=1): re-submissions of one descriptor before the CPU takes it.
// Not a policy lib/ sets but a core tuning constant: the backoff doubles from 16 pause
// instructions up to 256, so 8 attempts spin about 1,300 pauses (tens of microseconds on Xeons
// with DSA, where PAUSE takes ~140 cycles), about the time a few in-flight descriptors need to
// complete and free queue entries. A queue still at its threshold after that is saturated, and
// the CPU copying the piece beats waiting longer. A reasoned bound, not a measured optimum.
constexpr uint32_t kSharedQueueRetrySpins = 8;

// The policy fields (page_fault_retries, quarantine_after) carry no default here: their one home
// is lib/defaults.ts (PAGE_FAULT_RETRIES, QUARANTINE_AFTER), which the addon passes down. A
// CompletionPoller (and so DsaChannels) throws std::invalid_argument when they are out of range.
struct DsaChannelOptions {
  bool cache_control = false;                     // set IDXD_OP_FLAG_CC (only if the queue reports cache_control)
  uint32_t page_fault_retries = 0;                // device continuations of one descriptor before the CPU finishes it
                                                  // (0 = none: the CPU finishes at the first page fault; at most 255)
  uint32_t retry_spins = kSharedQueueRetrySpins;  // see kSharedQueueRetrySpins (0: the CPU at the first Retry)
  uint32_t quarantine_after = 0;                  // consecutive bad events (timeout drains, errors, unhealthy) on a
                                                  // channel before it is quarantined; must be at least 1
  uint32_t max_window = 4096;     // cap on descriptors in flight per channel (also capped by queue size)
  uint32_t idle_sleep_us = 50;    // poller sleep while descriptors are outstanding but quiet
  uint32_t drain_timeout_ms = 0;  // how long a Drain descriptor may take before the channel counts
                                  // as wedged (lib/defaults.ts DRAIN_TIMEOUT_MS); at least 1
  // Where the queue releases that outlive this poller are registered (a wedged queue's, one still
  // releasing at shutdown), for an owner that must wait for them; null: nobody waits.
  std::shared_ptr<ReleaseSet> releases;
};

struct ChannelStats {
  std::string name;
  uint64_t submitted = 0;  // descriptors accepted by the queue (incl. page-fault continuations)
  uint64_t completed = 0;  // descriptors completed successfully by the device
  uint64_t device_bytes = 0, cpu_bytes = 0;
  uint64_t fallback_timeout = 0, fallback_error = 0, fallback_page_fault = 0, fallback_submit = 0;
  uint64_t page_faults = 0;         // PAGE_FAULT_NOBOF records seen
  uint64_t page_fault_retries = 0;  // ... continued on the device
  uint64_t errors = 0;              // error statuses seen
  uint64_t retries = 0;             // Retry answers from a shared queue
  uint64_t timeouts = 0;            // deadline drains
  uint64_t unhealthy = 0;           // drains because healthy() was false or submit said Disabled
  uint64_t drains = 0;              // fences: Drain descriptors submitted (timeouts, errors, shutdown)
  uint64_t lost_records = 0;        // descriptors whose record never came although the Drain completed
  uint64_t foreign_errors = 0;      // device software errors that no descriptor of ours caused
  uint64_t out_of_order = 0;
  uint64_t prebuilt = 0;       // descriptors submitted as a prepared batch built them (not filled again)
  uint64_t max_in_flight = 0;  // highest number of descriptors outstanding at once
  bool quarantined = false;
  bool wedged = false;  // a Drain did not complete in time: the device may still write
};

struct DsaChannelsStats {
  uint64_t works = 0;        // works accepted by submit_work
  uint64_t descriptors = 0;  // descriptors (pieces) those works were split into
  uint64_t completed = 0;    // pieces that reached their final state
  uint64_t submitted = 0, device_completed = 0, device_bytes = 0, cpu_bytes = 0;
  uint64_t fallback_timeout = 0, fallback_error = 0, fallback_page_fault = 0, fallback_submit = 0;
  uint64_t page_faults = 0, page_fault_retries = 0, errors = 0, retries = 0, timeouts = 0, unhealthy = 0;
  uint64_t out_of_order = 0, quarantines = 0, events_posted = 0, event_batches = 0;
  uint64_t prebuilt = 0;  // descriptors submitted as a prepared batch built them
  uint64_t drains = 0, lost_records = 0, foreign_errors = 0, wedged = 0;  // wedged: channels
  uint64_t wedged_pieces = 0;  // pieces the CPU finished while the device might still write them
  // Which idle wait ran, so a test (and `stats()`) can tell: UMWAIT on a record, yield, or sleep.
  uint64_t idle_umwaits = 0, idle_yields = 0, idle_sleeps = 0;
  std::vector<ChannelStats> channels;
};

// One work as the poller tracks it. Created by DsaChannels::submit_work, owned by the poller after.
struct WorkState {
  uint64_t op_id = 0;
  uint32_t work = 0;
  uint64_t deadline_ns = 0;         // CLOCK_MONOTONIC, 0 = none
  uint32_t limit = 0;               // bytes per descriptor, fixed when the count was returned
  uint32_t total = 0;               // descriptors the caller waits for
  uint32_t finished = 0;            // reached their final state
  size_t channel = 0;               // SIZE_MAX: no healthy channel, the CPU does everything
  std::vector<CopyRegion> regions;  // the work's own copy of its pieces (an unprepared work)
  // What pieces are generated from: `regions`, or a prepared batch's pieces in place.
  const CopyRegion* piece_table = nullptr;
  size_t piece_count = 0;
  size_t next_region = 0;  // lazy piece generation cursor
  // A prepared work: the descriptor built for each piece, in generation order (or null), and
  // what keeps them and piece_table alive (prepared_descriptors.h).
  const dsa_hw_desc* prebuilt = nullptr;
  size_t next_prebuilt = 0;
  std::shared_ptr<const void> keep;
  uint64_t next_offset = 0;
  bool expired = false;
  bool dirty = false;  // acc holds counts not yet posted
  CompletionEvent acc;
  // Called on the poller thread right after the work's last event was posted (may be empty):
  // lets a submitter that has to unwind wait for exactly the works it queued.
  std::function<void()> on_finished;
};

class CompletionPoller {
 public:
  // Throws std::invalid_argument (naming the field) when opts.quarantine_after or
  // opts.drain_timeout_ms is 0, or opts.page_fault_retries exceeds 255 (a piece counts its
  // continuations in 8 bits).
  CompletionPoller(std::vector<std::unique_ptr<WorkQueue>> queues, CpuCopier* cpu, EventSink* sink,
                   const DsaChannelOptions& opts);
  ~CompletionPoller();  // stop()
  CompletionPoller(const CompletionPoller&) = delete;
  CompletionPoller& operator=(const CompletionPoller&) = delete;

  size_t channels() const { return channels_.size(); }
  const WqInfo& channel_info(size_t c) const;
  uint32_t channel_limit(size_t c) const;
  bool channel_cache_control(size_t c) const;
  bool channel_usable(size_t c) const;
  // Hands a work to the poller (any thread) and wakes it. False once stop() began: the caller
  // keeps ownership of w then.
  bool enqueue(WorkState* w);
  // Fences every channel (bounded by drain_timeout_ms), finishes what they held on the CPU,
  // waits for the CPU, posts the last events, hands the queues to QueueReaper and joins the
  // poller. Returns within about drain_timeout_ms plus the CPU copies even on a wedged device.
  // Idempotent.
  void stop();
  DsaChannelsStats stats() const;

 private:
  struct Piece {
    WorkState* w;
    uint8_t* dst;
    const uint8_t* src;
    uint32_t len;
    uint8_t pf_retries;
    const dsa_hw_desc* tmpl = nullptr;  // its descriptor as a prepared batch built it, if any
  };
  struct Outstanding {
    Piece p;
    uint64_t seq;  // submission order on this channel
    uint32_t pos;  // index in Channel::active
  };
  enum Reason : uint8_t { kTimeout, kError, kPageFault, kSubmit };
  // Why a channel is fenced: a work's deadline, a device-wide software error (blame only if one
  // of ours was lost), the queue's own trouble (errors, quarantine), or the engine closing.
  enum class FenceWhy : uint8_t { Deadline, DeviceError, Trouble, Shutdown };
  enum class Mode : uint8_t { Running, Fencing, Reopening, Gone };
  struct FallbackPiece {
    Piece p;
    Reason why;
  };
  struct Channel {
    std::unique_ptr<WorkQueue> q;  // null once Gone (given to QueueReaper) or while Reopening
    Mode mode = Mode::Running;
    FenceWhy fence_why = FenceWhy::Deadline;
    bool fence_submitted = false;
    uint64_t fence_deadline_ns = 0;
    std::shared_ptr<CompletionArena> fence_record;  // one record for the Drain descriptor
    // Records of Drains cut short by a disable: never reused for a later Drain (kept until the
    // poller goes), so a late write into one cannot complete a fence that is not its own.
    std::vector<std::shared_ptr<CompletionArena>> stale_fences;
    std::shared_ptr<ReopenJob> reopening;
    bool settling = false;  // inside settle_outstanding (see there)
    WqInfo info;
    uint32_t window = 0;
    uint32_t limit = 0;
    bool cc = false;
    std::shared_ptr<CompletionArena> arena;  // shared: QueueReaper keeps it while a release runs
    std::vector<Outstanding> by_slot;        // indexed by arena slot
    std::vector<uint32_t> active;            // outstanding slots, dense
    std::deque<Piece> retry;                 // pieces to (re)submit before new ones
    std::deque<WorkState*> backlog;          // works with pieces not generated yet
    uint64_t next_seq = 0;
    uint32_t consecutive_bad = 0;
    uint64_t last_health_ns = 0;
    uint64_t last_deadline_ns = 0;
    uint64_t generation = 0;  // bumped whenever outstanding pieces are settled at once
    std::atomic<bool> quarantined{false};
    ChannelStats st;
  };

  void run();
  bool sweep(uint64_t now);
  bool take_news();          // inbox works and CPU completions
  void route(WorkState* w);  // to its channel's backlog, another healthy one, or the CPU
  bool next_piece(Channel& ch, Piece* out);
  void add_outstanding(Channel& ch, uint32_t slot, const Piece& p);
  void remove_outstanding(Channel& ch, uint32_t slot);
  bool feed(Channel& ch);  // backlog → queue, within the window
  bool scan(Channel& ch);  // every outstanding record, any order
  bool check_deadlines(Channel& ch, uint64_t now);
  void on_complete(Channel& ch, uint32_t slot, bool out_of_order);
  void account_device_success(Channel& ch, WorkState* w, uint32_t len);
  // Page-fault continuation: makes the page holding c.fault_addr present (see the .cc).
  static void touch_fault_page(const Piece& p, const CompletionInfo& c);
  static void populate_remainder(const MemmoveRemainder& rem, const CompletionInfo& c);
  // Fencing (see the top of this file).
  void start_fence(Channel& ch, FenceWhy why, uint64_t now);
  void try_submit_fence(Channel& ch);
  bool advance_fence(Channel& ch, uint64_t now);  // Drain done / deadline / queue disabled
  // Every outstanding piece at once: written records count as usual, blank ones go to the CPU
  // (why), with their records released, or kept and their works marked wedged. Returns blanks.
  uint64_t settle_outstanding(Channel& ch, Reason why, bool wedged);
  void settle_after_drain(Channel& ch);  // the Drain completed: blanks were lost
  void settle_disabled(Channel& ch);     // the queue is disabled: it completes nothing more
  void wedge(Channel& ch);               // the Drain did not complete in time
  void retire_queue(Channel& ch);        // hand queue and records to QueueReaper
  void reroute_queued(Channel& ch);      // retry pieces to the CPU, backlog works elsewhere
  void check_reopen(Channel& ch);
  void check_health(Channel& ch, uint64_t now);
  bool usable(const Channel& ch) const;
  void quarantine(Channel& ch);
  void note_bad(Channel& ch);
  void to_cpu(const Piece& p, Reason why);
  void flush_cpu();
  void account_cpu(const std::vector<FallbackPiece>& jobs);
  void mark(WorkState* w);  // w has counts to post this sweep
  void post_events();
  void publish_stats();
  bool busy() const;
  // Idle backoff with UMONITOR/UMWAIT on one outstanding record; false when not possible.
  bool wait_on_a_record();
  const bool waitpkg_ = cpu_features().waitpkg;
  static constexpr uint64_t kUmwaitNs = 5000;

  std::vector<std::unique_ptr<Channel>> channels_;
  CpuCopier* cpu_;
  EventSink* sink_;
  DsaChannelOptions opts_;

  // Cross-thread: inbox (submit_work) and CPU completions, both wake the poller.
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WorkState*> inbox_;
  std::vector<std::vector<FallbackPiece>*> cpu_done_;
  bool sleeping_ = false;
  bool stopping_ = false;
  // Poller thread only: set once the shutdown fences begin. Nothing is submitted after that, so a
  // page-fault continuation found then goes to the CPU instead of the retry queue.
  bool shutting_down_ = false;
  std::atomic<bool> has_news_{false};
  std::once_flag stop_once_;
  std::thread thread_;

  // Poller-only state.
  std::vector<FallbackPiece> cpu_pending_;  // collected this sweep, sent as one copy_async
  uint64_t cpu_outstanding_ = 0;            // pieces at the CPU
  std::vector<WorkState*> dirty_;
  std::vector<CompletionEvent> events_;
  std::vector<uint32_t> done_;            // scan scratch
  std::vector<uint32_t> settle_scratch_;  // settle_outstanding scratch
  std::vector<WorkState*> inbox_local_;
  std::vector<std::vector<FallbackPiece>*> cpu_done_local_;
  uint64_t live_works_ = 0;
  DsaChannelsStats totals_;  // poller-owned running totals (channels filled on publish)

  mutable std::mutex stats_mu_;
  DsaChannelsStats published_;
};

}  // namespace dmacopy
