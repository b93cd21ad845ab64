#include "cpu_copy_pool.h"

#include "thread_name.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace dmacopy {

namespace {

// Where the next pinned pool of the process starts in its CPU list (see the constructor's
// comment). The first one starts at pid x threads: processes started one after another (pids in
// a row) begin on different CPUs instead of all on the first ones.
unsigned next_pin_start(unsigned threads) {
  static std::atomic<unsigned> next{static_cast<unsigned>(getpid()) * threads};
  return next.fetch_add(threads, std::memory_order_relaxed);
}

}  // namespace

CpuCopyPool::CpuCopyPool(unsigned threads, int nice, bool idle, std::vector<int> pin_cpus)
    : nice_(nice < 0    ? 0
            : nice > 19 ? 19
                        : nice),
      idle_(idle) {
  if (threads == 0) threads = 1;
  workers_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) workers_.push_back(std::make_unique<Worker>());
  if (!pin_cpus.empty()) {
    const unsigned k = next_pin_start(threads);
    for (unsigned i = 0; i < threads; ++i) workers_[i]->cpu = pin_cpus[(k + i) % pin_cpus.size()];
  }
  try {
    for (unsigned i = 0; i < workers_.size(); ++i) {
      Worker* raw = workers_[i].get();
      workers_[i]->thread = std::thread([this, raw, i] {
        name_this_thread("dmacopy-cpu", i);
        worker_loop(raw);
      });
    }
  } catch (...) {
    // A thread the system would not start (EAGAIN at a task limit): stop and join the ones that
    // did before the constructor throws. A joinable std::thread destroyed with the pool would
    // terminate the process.
    shutdown();
    throw;
  }
  // Every thread has its priority and binding before the pool is used: stats() and the first
  // batch see the pool as it will stay.
  std::unique_lock<std::mutex> lock(started_mu_);
  started_cv_.wait(lock, [&] { return started_ == workers_.size(); });
}

CpuCopyPool::~CpuCopyPool() { shutdown(); }

void CpuCopyPool::submit(unsigned channel, CpuCopyJob job) {
  if (submit_fault_) submit_fault_();  // test seam: may throw, before anything is queued
  Worker& w = *workers_[channel % workers_.size()];
  {
    std::unique_lock<std::mutex> lock(w.mu);
    in_flight_.fetch_add(1, std::memory_order_acq_rel);
    if (w.stopping) {
      // After shutdown there is no thread left: finish on the caller rather than drop the copy.
      lock.unlock();
      execute(job);
      return;
    }
    try {
      w.jobs.push_back(std::move(job));
    } catch (...) {  // not queued (bad_alloc): the caller still owns the job and its done()
      in_flight_.fetch_sub(1, std::memory_order_acq_rel);
      throw;
    }
  }
  w.cv.notify_one();
}

void CpuCopyPool::copy_async(std::vector<CopyRegion> regions, std::function<void()> done) {
  CpuCopyJob job;
  auto table = std::make_shared<std::vector<CopyRegion>>(std::move(regions));
  job.begin = 0;
  job.end = table->size();
  job.table = std::move(table);
  job.done = std::move(done);
  submit(next_fallback_.fetch_add(1, std::memory_order_relaxed), std::move(job));
}

void CpuCopyPool::run_here(CpuCopyJob& job) {
  in_flight_.fetch_add(1, std::memory_order_acq_rel);
  execute(job);
}

void CpuCopyPool::execute_slices(CpuCopyJob& job) {
  uint64_t bytes = 0, regions = 0;
  while (const CpuSlice* s = job.slices->take()) {
    uint32_t done = 0;
    bytes += job.slices->copy(*s, &done);
    regions += done;
  }
  stat_jobs_.fetch_add(1, std::memory_order_relaxed);
  stat_regions_.fetch_add(regions, std::memory_order_relaxed);
  stat_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  job.slices.reset();
  job.table.reset();
  if (job.done) job.done();
  in_flight_.fetch_sub(1, std::memory_order_acq_rel);
}

void CpuCopyPool::execute(CpuCopyJob& job) {
  if (job.slices) return execute_slices(job);
  const std::vector<CopyRegion>& t = *job.table;
  const bool coalesced = job.regions != 0;
  uint32_t regions_since = 0;
  uint64_t bytes_since = 0;
  uint64_t total_bytes = 0;
  // Reports the bytes copied since the last report (and, per-entry jobs, their regions) while
  // more of the job is left: a big work shows progress, and every byte reported is in memory.
  uint64_t copies = 0;
  auto report_progress = [&] {
    if (job.store == StoreKind::NonTemporal) store_fence();
    if (job.sink) job.sink->job_progress(job.op_id, job.work, regions_since, bytes_since);
    total_bytes += bytes_since;
    regions_since = 0;
    bytes_since = 0;
  };
  for (size_t i = job.begin; i < job.end; ++i) {
    // Neighbouring regions that continue each other in both source and destination (a region
    // form, or folios cut from one buffer in order) are copied as one: fewer calls, and no
    // partial lines between them.
    CopyRegion r = t[i];
    uint32_t merged = 1;
    // (Bounded by a report's worth only where progress is reported: without a sink bytes_since
    // is never reset, and merging stopped for good after the first 16 MiB of a job.)
    while (i + 1 < job.end && t[i + 1].src == r.src + r.len && t[i + 1].dst == r.dst + r.len &&
           (!job.sink || bytes_since + r.len < kProgressReportBytes)) {
      r.len += t[++i].len;
      ++merged;
    }
    // A run longer than a report's worth (a coalesced work) is copied in slices of that size.
    size_t done = 0;
    while (job.sink && r.len - done > kProgressReportBytes - std::min(bytes_since, kProgressReportBytes)) {
      const size_t slice = static_cast<size_t>(kProgressReportBytes - bytes_since);
      copy_bytes(r.dst + done, r.src + done, slice, job.store);
      ++copies;
      done += slice;
      bytes_since += slice;
      report_progress();
    }
    copy_bytes(r.dst + done, r.src + done, r.len - done, job.store);
    ++copies;
    if (!coalesced) regions_since += merged;
    bytes_since += r.len - done;
    if (bytes_since >= kProgressReportBytes && i + 1 < job.end && job.sink) report_progress();
  }
  // Streaming stores must be globally visible before anyone is told the bytes are there.
  if (job.store == StoreKind::NonTemporal) store_fence();
  if (coalesced) regions_since = job.regions;
  total_bytes += bytes_since;
  stat_jobs_.fetch_add(1, std::memory_order_relaxed);
  stat_regions_.fetch_add(coalesced ? job.regions : job.end - job.begin, std::memory_order_relaxed);
  stat_bytes_.fetch_add(total_bytes, std::memory_order_relaxed);
  stat_copies_.fetch_add(copies, std::memory_order_relaxed);
  // Drop our share of the plan before the last report, so that it is back in its pool when the
  // batch settles. (The plan holds no caller memory: this is about reuse, not safety.)
  job.table.reset();
  if (job.sink) job.sink->job_progress(job.op_id, job.work, regions_since, bytes_since);
  if (job.done) job.done();
  in_flight_.fetch_sub(1, std::memory_order_acq_rel);
}

void CpuCopyPool::lower_priority() {
  if (idle_) {
    // SCHED_IDLE needs no privilege to enter (only to leave), and applies to this thread alone.
    sched_param none{};
    none.sched_priority = 0;
    const int err = pthread_setschedparam(pthread_self(), SCHED_IDLE, &none);
    if (err != 0) {
      nice_errno_.store(err, std::memory_order_relaxed);
      nice_failures_.fetch_add(1, std::memory_order_relaxed);
    }
    return;
  }
  if (nice_ == 0) return;
  // PRIO_PROCESS with a thread id sets that one thread on Linux (nice is per task): the event
  // loop and every other thread of the process keep their priority. Raising nice needs no
  // privilege; a failure (a seccomp filter, say) leaves the thread at its priority and is counted.
  const auto tid = static_cast<id_t>(syscall(SYS_gettid));
  // Only ever lower the priority: a process already running nicer than asked keeps its nice
  // (going back up would need CAP_SYS_NICE, and is not what the caller meant).
  errno = 0;
  const int current = getpriority(PRIO_PROCESS, tid);
  if (errno == 0 && current >= nice_) return;
  if (setpriority(PRIO_PROCESS, tid, nice_) != 0) {
    nice_errno_.store(errno, std::memory_order_relaxed);
    nice_failures_.fetch_add(1, std::memory_order_relaxed);
  }
}

void CpuCopyPool::bind(Worker* w) {
  if (w->cpu < 0) return;
  if (w->cpu >= CPU_SETSIZE) {
    pin_failures_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(w->cpu, &set);
  if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0) w->bound.store(true, std::memory_order_release);
  else pin_failures_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<int> CpuCopyPool::pinned_cpus() const {
  std::vector<int> out;
  if (workers_.empty() || workers_[0]->cpu < 0) return out;
  for (const auto& w : workers_) out.push_back(w->bound.load(std::memory_order_acquire) ? w->cpu : -1);
  return out;
}

unsigned CpuCopyPool::helper(unsigned n) const {
  const unsigned t = threads();
  if (workers_[0]->cpu < 0) return n % t;
  const int here = sched_getcpu();
  // The threads bound elsewhere first (in thread order), then those bound to this CPU.
  unsigned seen = 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (unsigned i = 0; i < t; ++i) {
      const bool mine = workers_[i]->bound.load(std::memory_order_relaxed) && workers_[i]->cpu == here;
      if (mine != (pass == 1)) continue;
      if (seen++ == n % t) return i;
    }
  }
  return n % t;
}

void CpuCopyPool::worker_loop(Worker* w) {
  lower_priority();
  bind(w);
  {
    std::lock_guard<std::mutex> lock(started_mu_);
    ++started_;
  }
  started_cv_.notify_all();
  for (;;) {
    CpuCopyJob job;
    {
      std::unique_lock<std::mutex> lock(w->mu);
      w->cv.wait(lock, [&] { return !w->jobs.empty() || w->stopping; });
      if (w->jobs.empty()) return;  // stopping, and nothing left to copy
      job = std::move(w->jobs.front());
      w->jobs.pop_front();
    }
    execute(job);
  }
}

void CpuCopyPool::shutdown() {
  std::lock_guard<std::mutex> guard(shutdown_mu_);
  if (joined_) return;
  for (auto& w : workers_) {
    {
      std::lock_guard<std::mutex> lock(w->mu);
      w->stopping = true;
    }
    w->cv.notify_all();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  joined_ = true;
}

CpuCopyPoolStats CpuCopyPool::stats() const {
  CpuCopyPoolStats s;
  s.jobs = stat_jobs_.load(std::memory_order_relaxed);
  s.regions = stat_regions_.load(std::memory_order_relaxed);
  s.bytes = stat_bytes_.load(std::memory_order_relaxed);
  s.copies = stat_copies_.load(std::memory_order_relaxed);
  s.nice_failures = nice_failures_.load(std::memory_order_relaxed);
  s.nice_errno = nice_errno_.load(std::memory_order_relaxed);
  s.pin_failures = pin_failures_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace dmacopy
