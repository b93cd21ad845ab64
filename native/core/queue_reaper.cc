#include "queue_reaper.h"

#include <sys/mman.h>
#include <unistd.h>

#include "thread_name.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace dmacopy {
namespace {
std::atomic<uint64_t> g_pending{0};

// Releases no thread could be started for (see retire_joinable). Leaked on purpose: usable
// during exit.
struct Owed {
  WorkQueue* q = nullptr;
  std::shared_ptr<void> keep;
  std::shared_ptr<std::atomic<bool>> done;
};
std::mutex& owed_mu() {
  static auto* mu = new std::mutex;
  return *mu;
}
std::vector<Owed>& owed() {
  static auto* v = new std::vector<Owed>;
  return *v;
}
}  // namespace

QueueReaper::Retirement QueueReaper::retire_joinable(std::unique_ptr<WorkQueue> q, std::shared_ptr<void> keep) {
  Retirement r;
  r.done = std::make_shared<std::atomic<bool>>(false);
  if (!q) {
    r.done->store(true);
    return r;
  }
  g_pending.fetch_add(1, std::memory_order_acq_rel);
  WorkQueue* raw = q.release();
  try {
    // The thread gets its own reference to `keep`: if it cannot start, ours still holds it.
    r.thread = std::thread([raw, keep, done = r.done]() mutable {
      name_this_thread("dmacopy-release");
      std::unique_ptr<WorkQueue> owned(raw);
      owned->drain();  // the release: may take as long as the device does
      owned.reset();
      keep.reset();  // only now can nothing write the records
      done->store(true, std::memory_order_release);
      g_pending.fetch_sub(1, std::memory_order_acq_rel);
    });
  } catch (...) {
    // No thread for the release (a task limit). Releasing here could block the caller (the
    // poller) for as long as the device takes, and freeing the records could let it write freed
    // memory: the release is owed instead, queue and records kept, its flag still false. Whoever
    // must wait for it anyway runs it (ReleaseSet::wait_all in a worker's teardown); else both
    // are kept for the life of the process.
    std::lock_guard<std::mutex> lk(owed_mu());
    owed().push_back(Owed{raw, std::move(keep), r.done});
  }
  return r;
}

void QueueReaper::run_owed() {
  for (;;) {
    Owed o;
    {
      std::lock_guard<std::mutex> lk(owed_mu());
      if (owed().empty()) return;
      o = std::move(owed().back());
      owed().pop_back();
    }
    std::unique_ptr<WorkQueue> owned(o.q);
    owned->drain();  // the release, on the caller's thread: as long as the device takes
    owned.reset();
    o.keep.reset();
    o.done->store(true, std::memory_order_release);
    g_pending.fetch_sub(1, std::memory_order_acq_rel);
  }
}

std::shared_ptr<std::atomic<bool>> QueueReaper::retire(std::unique_ptr<WorkQueue> q, std::shared_ptr<void> keep) {
  Retirement r = retire_joinable(std::move(q), std::move(keep));
  if (r.thread.joinable()) r.thread.detach();
  return r.done;
}

void QueueReaper::release_file(int fd, void* portal, size_t portal_size, std::shared_ptr<void> keep) {
  if (fd < 0 && !portal) return;
  g_pending.fetch_add(1, std::memory_order_acq_rel);
  try {
    std::thread([fd, portal, portal_size, keep]() mutable {
      name_this_thread("dmacopy-release");
      if (portal) munmap(portal, portal_size);
      if (fd >= 0) ::close(fd);  // the release: may take as long as the device does
      keep.reset();              // only now can nothing write the record
      g_pending.fetch_sub(1, std::memory_order_acq_rel);
    }).detach();
  } catch (...) {
    // No thread (a task limit): keep the file open and the record for the life of the process
    // rather than block the caller for as long as the device takes.
    static std::mutex mu;
    static auto* kept = new std::vector<std::shared_ptr<void>>();
    std::lock_guard<std::mutex> lk(mu);
    kept->push_back(std::move(keep));
    g_pending.fetch_sub(1, std::memory_order_acq_rel);
  }
}

std::shared_ptr<ReopenJob> QueueReaper::reopen(std::unique_ptr<WorkQueue> q) {
  auto job = std::make_shared<ReopenJob>();
  job->q = std::move(q);
  g_pending.fetch_add(1, std::memory_order_acq_rel);
  try {
    std::thread([job]() mutable {
      name_this_thread("dmacopy-reopen");
      bool ok = job->q->reopen();
      job->state.store(ok ? ReopenJob::kOpened : ReopenJob::kFailed, std::memory_order_release);
      job.reset();  // the last owner (the poller let go): the queue is released here
      g_pending.fetch_sub(1, std::memory_order_acq_rel);
    }).detach();
  } catch (...) {
    // No thread to reopen on: the queue counts as not reopened; the poller quarantines it and
    // retires it (the queue goes back to the caller with the job).
    job->state.store(ReopenJob::kFailed, std::memory_order_release);
    g_pending.fetch_sub(1, std::memory_order_acq_rel);
  }
  return job;
}

void ReleaseSet::add(std::shared_ptr<std::atomic<bool>> done) {
  if (!done || done->load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> lk(mu_);
  // Forget the releases that returned, so that a long-lived owner's list stays short.
  done_.erase(
      std::remove_if(done_.begin(), done_.end(),
                     [](const std::shared_ptr<std::atomic<bool>>& d) { return d->load(std::memory_order_acquire); }),
      done_.end());
  done_.push_back(std::move(done));
}

size_t ReleaseSet::pending() {
  std::lock_guard<std::mutex> lk(mu_);
  size_t n = 0;
  for (auto& d : done_) n += d->load(std::memory_order_acquire) ? 0 : 1;
  return n;
}

bool ReleaseSet::wait_all(uint64_t timeout_ms, bool run_owed) {
  if (run_owed) QueueReaper::run_owed();
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (pending() != 0) {
    if (timeout_ms != kForever && std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

uint64_t QueueReaper::pending() { return g_pending.load(std::memory_order_acquire); }

bool QueueReaper::wait_idle(uint64_t timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (pending() != 0) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace dmacopy
