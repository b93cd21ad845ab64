#include "copy_executor.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include "clock.h"

namespace dmacopy {
namespace {

// Counts the jobs and works one run() queued that have not finished yet. Shared by the run and
// by every job/work callback, so a callback never touches a frame an exception unwound.
class InFlight {
 public:
  void add() {
    std::lock_guard<std::mutex> lock(mu_);
    ++n_;
  }
  void done() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--n_ == 0) cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return n_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t n_ = 0;
};

// The callback a queued unit calls when it finished (after its last event was posted).
std::function<void()> done_callback(const std::shared_ptr<InFlight>& f) {
  return [f] { f->done(); };
}

// Queues one unit with the in-flight count raised first; if queueing throws, the count is
// lowered again (the unit was not queued, so it never calls done()).
template <typename Submit>
auto queue_unit(InFlight& f, Submit&& submit) -> decltype(submit()) {
  f.add();
  try {
    return submit();
  } catch (...) {
    f.done();
    throw;
  }
}

CpuCopyJob make_job(const CopyRequest& req, size_t w) {
  CpuCopyJob job;
  // An aliasing pointer: the job co-owns the whole plan through its piece table.
  job.table = std::shared_ptr<const std::vector<CopyRegion>>(req.plan, &req.plan->pieces);
  job.begin = req.plan->work_begin[w];
  job.end = req.plan->work_begin[w + 1];
  job.op_id = req.op_id;
  job.work = static_cast<uint32_t>(w);
  if (!req.plan->work_regions.empty()) job.regions = req.plan->work_regions[w];
  job.store = req.store;
  return job;
}

size_t works_of(const CopyRequest& req) { return req.plan->work_begin.size() - 1; }

}  // namespace

uint64_t CopyExecutor::work_deadline(uint64_t now_ns, double timeout_ms, uint64_t work_bytes) {
  const double ns = (timeout_ms + static_cast<double>(work_bytes) / (1024.0 * 1024.0)) * 1e6;
  // A deadline beyond the clock's range never comes: saturate. Converting a double past 2^64 to
  // uint64_t is undefined (on x86 it gave 0, and every descriptor timed out at once), and the sum
  // must not wrap either.
  if (!(ns < 9.0e18)) return UINT64_MAX;
  const auto add = static_cast<uint64_t>(ns);
  return add > UINT64_MAX - now_ns ? UINT64_MAX : now_ns + add;
}

void CopyExecutor::run(const CopyRequest& req, uint32_t* counts, EventRouter* events, EventRecord* sync_totals) {
  if (!req.plan || req.plan->work_begin.empty()) throw std::invalid_argument("CopyExecutor: no plan");
  const size_t k = works_of(req);
  for (size_t w = 0; w < k; ++w) counts[w] = req.plan->regions_of(w);
  if (req.mode == CopyMode::Inline) return run_inline(req, counts);
  if (req.mode == CopyMode::Async && !events) throw std::invalid_argument("CopyExecutor: async copy without events");
  if (device_) {
    if (!events) throw std::invalid_argument("CopyExecutor: device copy without events");
    return run_device(req, counts, events, sync_totals);
  }
  run_cpu(req, counts, events);
}

void CopyExecutor::run_inline(const CopyRequest& req, uint32_t* counts) {
  for (size_t w = 0; w < works_of(req); ++w) {
    if (counts[w] == 0) continue;
    CpuCopyJob job = make_job(req, w);
    cpu_.run_here(job);
  }
}

void CopyExecutor::run_shared(const CopyRequest& req, EventRouter* events) {
  const WorkPieces& plan = *req.plan;
  const size_t k = works_of(req);
  uint64_t bytes = req.bytes;
  if (bytes == 0)
    for (const CopyRegion& r : plan.pieces) bytes += r.len;
  std::vector<uint32_t> regions(k);
  for (size_t w = 0; w < k; ++w) regions[w] = plan.regions_of(w);
  const unsigned threads = cpu_.threads();
  const bool sync = req.mode == CopyMode::Sync;
  // Sync: no events (the caller is the one who waits); the queue counts, nobody reports.
  auto queue = std::make_shared<SliceQueue>(std::shared_ptr<const std::vector<CopyRegion>>(req.plan, &plan.pieces),
                                            plan.work_begin, regions, SliceQueue::grain_for(bytes, threads), req.op_id,
                                            req.store, sync ? nullptr : events, threads, bytes);
  const size_t takers = std::min<size_t>(threads, queue->slices());
  auto taker = [&] {
    CpuCopyJob job;
    job.op_id = req.op_id;
    job.store = req.store;
    job.slices = queue;
    return job;
  };
  auto in_flight = std::make_shared<InFlight>();
  try {
    // Sync: the calling thread is one of the takers instead of idling while it waits.
    for (size_t j = sync ? 1 : 0; j < takers; ++j) {
      CpuCopyJob job = taker();
      job.done = done_callback(in_flight);
      // Sync: helpers bound to other CPUs than the caller's first (CpuCopyPool::helper).
      const unsigned channel = sync ? cpu_.helper(static_cast<unsigned>(j - 1)) : static_cast<unsigned>(j);
      queue_unit(*in_flight, [&] { cpu_.submit(channel, std::move(job)); });
    }
  } catch (...) {
    in_flight->wait();  // what was queued still writes into the caller's buffers
    throw;
  }
  if (!sync) return;
  if (takers > 0) {
    CpuCopyJob job = taker();
    cpu_.run_here(job);
  }
  // Every byte, not every job: a queued job that has not started finds nothing left to take.
  queue->wait_all_copied();
}

void CopyExecutor::run_cpu(const CopyRequest& req, uint32_t* counts, EventRouter* events) {
  const size_t k = works_of(req);
  // Several threads: they share the batch slice by slice (cpu_slices.h).
  if (cpu_.threads() > 1 && k > 1) return run_shared(req, events);
  auto in_flight = std::make_shared<InFlight>();
  const bool sync = req.mode == CopyMode::Sync;
  // Sync: the calling thread copies the first busy work itself instead of idling while it
  // waits; the pool's jobs only count down (no events: the caller is the one who waits).
  size_t own = SIZE_MAX;
  try {
    for (size_t w = 0; w < k; ++w) {
      if (counts[w] == 0) continue;
      if (sync && own == SIZE_MAX) {
        own = w;
        continue;
      }
      CpuCopyJob job = make_job(req, w);
      job.done = done_callback(in_flight);
      if (!sync) job.sink = events;
      queue_unit(*in_flight, [&] { cpu_.submit(static_cast<unsigned>(w), std::move(job)); });
    }
  } catch (...) {
    in_flight->wait();  // what was queued still writes into the caller's buffers
    throw;
  }
  if (!sync) return;
  if (own != SIZE_MAX) {
    CpuCopyJob job = make_job(req, own);
    cpu_.run_here(job);
  }
  in_flight->wait();
}

void CopyExecutor::run_device(const CopyRequest& req, uint32_t* counts, EventRouter* events, EventRecord* sync_totals) {
  const size_t k = works_of(req);
  const WorkPieces& plan = *req.plan;
  auto in_flight = std::make_shared<InFlight>();
  // A synchronous call waits here for its own events instead of returning to JavaScript. The
  // registration is undone on every exit path, after the waits below.
  std::unique_ptr<SyncRegistration> reg;
  if (req.mode == CopyMode::Sync) reg = std::make_unique<SyncRegistration>(*events, req.op_id);
  uint64_t expected = 0;
  try {
    for (size_t w = 0; w < k; ++w) {
      const size_t b = plan.work_begin[w], e = plan.work_begin[w + 1];
      if (b == e) continue;
      if (w >= req.cpu_works_from) {
        // The CPU's share, beside the device (DTO's split): one pool thread per work.
        CpuCopyJob job = make_job(req, w);
        job.sink = events;
        job.done = done_callback(in_flight);
        queue_unit(*in_flight, [&] { cpu_.submit(static_cast<unsigned>(w - req.cpu_works_from), std::move(job)); });
        expected += e - b;
        continue;
      }
      // One submit_work per work; its return value is that work's pending count. A device work
      // is one descriptor per folio piece: a coalesced plan is a CPU engine's only.
      if (!plan.work_regions.empty()) throw std::invalid_argument("CopyExecutor: a coalesced plan on a device");
      uint64_t work_bytes = 0;
      for (size_t i = b; i < e; ++i) work_bytes += plan.pieces[i].len;
      const uint64_t deadline = work_deadline(monotonic_ns(), timeout_ms_, work_bytes);
      uint32_t n = queue_unit(*in_flight, [&] {
        uint32_t got = req.prebuilt && req.prebuilt->plan == req.plan && w < req.prebuilt->works.size()
                           ? device_->submit_prepared(w, req.op_id, static_cast<uint32_t>(w), req.prebuilt, deadline,
                                                      done_callback(in_flight))
                           : device_->submit_work(w, req.op_id, static_cast<uint32_t>(w), plan.pieces.data() + b, e - b,
                                                  deadline, done_callback(in_flight));
        // 0: copied synchronously, no event and no callback will come.
        if (got == 0) in_flight->done();
        return got;
      });
      counts[w] = n;
      expected += n;
    }
  } catch (...) {
    // Every job and work queued so far finishes, and posts its last event, before unwinding:
    // no device or CPU write may land after the caller's buffers are released, and no event
    // may reach a waiter after its registration is gone.
    in_flight->wait();
    throw;
  }
  if (reg) {
    EventRecord totals = reg->waiter().wait_for(expected);
    if (sync_totals) *sync_totals = totals;
  }
}

}  // namespace dmacopy
