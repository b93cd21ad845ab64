// The CPU copy engine: a fixed pool of native threads (not libuv's pool, which fs, crypto and
// zlib share) that copy lists of regions. Each thread has its own job queue. A job is either a
// range of one work's pieces (the CPU share beside a device, fallbacks, one-thread engines) or a
// taker of a shared batch (cpu_slices.h), which every thread given one copies slice by slice.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "copy_kernels.h"
#include "copy_region.h"
#include "cpu_copier.h"
#include "cpu_slices.h"

namespace dmacopy {

// Receives progress of CPU jobs. Called on engine threads; `regions` and `bytes` are deltas
// since the last call for the same job, and every byte they count is already in memory.
class CpuProgressSink {
 public:
  virtual ~CpuProgressSink() = default;
  virtual void job_progress(uint64_t op_id, uint32_t work, uint32_t regions, uint64_t bytes) = 0;
};

// One share of a batch: regions [begin, end) of a table the job co-owns.
struct CpuCopyJob {
  std::shared_ptr<const std::vector<CopyRegion>> table;
  size_t begin = 0;
  size_t end = 0;
  uint64_t op_id = 0;
  uint32_t work = 0;
  StoreKind store = StoreKind::Cached;
  // 0: every table entry is one region (reported as they are copied). Otherwise the entries are
  // coalesced runs standing for this many folio regions, all reported with the job's last bytes.
  uint32_t regions = 0;
  CpuProgressSink* sink = nullptr;  // progress reports (may be null)
  std::function<void()> done;       // called after the last byte (may be empty)
  // Set: instead of [begin, end) of table, the job takes slices of a shared batch until none is
  // left (several jobs share one queue; each work's report comes from the queue, not `sink`).
  std::shared_ptr<SliceQueue> slices;
};

struct CpuCopyPoolStats {
  uint64_t jobs = 0;
  uint64_t regions = 0;
  uint64_t bytes = 0;
  // Calls of the copy kernel by whole-work jobs: adjacent regions merged into one run take one.
  uint64_t copies = 0;
  // Threads whose nice value or SCHED_IDLE policy could not be set (the errno of the last
  // failure, 0 if none).
  uint32_t nice_failures = 0;
  int nice_errno = 0;
  uint32_t pin_failures = 0;  // copy threads that could not be bound to their CPU
};

class CpuCopyPool final : public CpuCopier {
 public:
  // `nice` (0..19) lowers each copy thread's scheduling priority (Linux: nice values are per
  // thread), so a thread that serves requests in the same process, the event loop, gets a core
  // back as soon as it wakes; the copy keeps whatever CPU nobody else wants. A thread already
  // nicer than that (an inherited nice) keeps its own; 0 leaves them alone.
  //
  // `idle` puts the copy threads in SCHED_IDLE instead: the scheduler runs them only on a core
  // nothing else wants, and any other thread that wakes (a request for the event loop) preempts
  // them at once, where a niced thread may keep the core until its slice ends. Work sharing
  // (cpu_slices.h) lets the thread that still runs take the preempted one's slices.
  //
  // `pin_cpus` (may be empty: no pinning) binds each copy thread to one of these CPUs, so that a
  // batch's threads wake on different cores. Where the kernel knows no last-level cache shared
  // by the CPUs (a Firecracker guest exposes no cache topology), it places a woken thread on the
  // waker's CPU or on the thread's previous one, never on another idle CPU: both copy threads
  // then often queue on one core while the other idles, and a batch copies at one thread's speed
  // until the load balancer moves one (milliseconds). Thread i gets pin_cpus[(k + i) % n], k
  // advancing with every pinned pool of the process (from pid x threads), so engines in one
  // process, and processes started one after another, start on different CPUs. lib/ decides
  // when to pin (lib/host/cpu-topology.ts).
  explicit CpuCopyPool(unsigned threads, int nice = 0, bool idle = false, std::vector<int> pin_cpus = {});
  ~CpuCopyPool() override;
  CpuCopyPool(const CpuCopyPool&) = delete;
  CpuCopyPool& operator=(const CpuCopyPool&) = delete;

  unsigned threads() const { return static_cast<unsigned>(workers_.size()); }
  int nice() const { return nice_; }
  bool idle() const { return idle_; }
  // The CPU each copy thread is bound to, in thread order; empty when the pool does not pin.
  // A thread whose binding failed (a seccomp filter, a CPU outside the cpuset) stays unbound and
  // is counted in stats().pin_failures; its entry is -1.
  std::vector<int> pinned_cpus() const;

  // The n-th (0-based) thread a caller that copies a share itself should hand the rest to: with
  // bound threads, the ones bound to the CPU the caller runs on come last, so a synchronous batch
  // does not wake its helper onto the caller's own core (where it would wait for the caller).
  unsigned helper(unsigned n) const;

  // Queues a job on channel (thread) `channel % threads()`. Never blocks on the copy. If it
  // throws (bad_alloc), the job was not queued and none of its callbacks will run.
  void submit(unsigned channel, CpuCopyJob job);

  // Test seam: called at the start of every submit(); a throw from it fails that submit as an
  // allocation failure would. Set before submitting from other threads; empty in production.
  void set_submit_fault_for_test(std::function<void()> fault) { submit_fault_ = std::move(fault); }

  // CpuCopier: used by the DSA channels to finish descriptors the device did not.
  void copy_async(std::vector<CopyRegion> regions, std::function<void()> done) override;

  // Copies on the calling thread (the inline path for small batches and the caller's own share
  // of a synchronous batch). Reports to job.sink and calls job.done like a queued job.
  void run_here(CpuCopyJob& job);

  // Jobs queued or running.
  uint64_t in_flight() const { return in_flight_.load(std::memory_order_acquire); }

  // Lets queued jobs finish, then joins the threads. Idempotent; later submits run inline.
  void shutdown();

  CpuCopyPoolStats stats() const;

 private:
  struct Worker {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<CpuCopyJob> jobs;
    bool stopping = false;  // guarded by mu: a job is either queued before it or run inline
    int cpu = -1;           // the CPU it is to be bound to (-1: none)
    std::atomic<bool> bound{false};
    std::thread thread;
  };

  void worker_loop(Worker* w);
  void lower_priority();
  void bind(Worker* w);
  void execute(CpuCopyJob& job);
  void execute_slices(CpuCopyJob& job);

  const int nice_;
  const bool idle_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<uint32_t> nice_failures_{0};
  std::atomic<uint32_t> pin_failures_{0};
  unsigned started_ = 0;  // threads past lower_priority() and bind(); guarded by started_mu_
  std::mutex started_mu_;
  std::condition_variable started_cv_;
  std::atomic<int> nice_errno_{0};
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<unsigned> next_fallback_{0};
  std::atomic<uint64_t> stat_jobs_{0}, stat_regions_{0}, stat_bytes_{0}, stat_copies_{0};
  std::function<void()> submit_fault_;
  std::mutex shutdown_mu_;
  bool joined_ = false;
};

// How many bytes a job copies between two progress reports: large enough that reports cost
// nothing next to the copy, small enough that a big work shows progress.
constexpr uint64_t kProgressReportBytes = 16ull << 20;

}  // namespace dmacopy
