// Queue teardown off the poller thread. Releasing a queue's file may block as long as the device
// takes: the kernel drains on the last release with no timeout, forever on a wedged device (see
// work_queue.h drain()). Reopening runs a probe that can take its full timeout. Either would
// stall every channel if the poller did it, so both run here, each on its own detached thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "work_queue.h"

namespace dmacopy {

// A reopen in progress. The job owns the queue until the poller takes it back; if the poller
// lets go first (engine closing), the job's thread releases the queue when the reopen ends.
struct ReopenJob {
  enum State : int { kRunning = 0, kOpened = 1, kFailed = 2 };
  std::unique_ptr<WorkQueue> q;
  std::atomic<int> state{kRunning};
};

// The releases one owner started (an environment: the main thread or a worker), so that it can
// wait for them before the memory they protect goes: a wedged queue's batch keeps its buffers
// referenced from JavaScript, and a worker's buffers are freed with the worker.
class ReleaseSet {
 public:
  void add(std::shared_ptr<std::atomic<bool>> done);
  static constexpr uint64_t kForever = ~uint64_t(0);
  // Waits until every release added so far returned, at most timeout_ms (kForever: as long as
  // the device takes, forever on a wedged device, as the kernel's own release waits); true if
  // they all did. run_owed: first run, on this thread, the releases no thread could be started
  // for (QueueReaper::run_owed), so that they are not waited for in vain.
  bool wait_all(uint64_t timeout_ms, bool run_owed);
  size_t pending();

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<std::atomic<bool>>> done_;
};

class QueueReaper {
 public:
  // Releases q, then frees `keep` (memory the device may write until the release returned:
  // completion records). The memory is never freed if the release never returns.
  // Returns a flag that becomes true when the release returned.
  static std::shared_ptr<std::atomic<bool>> retire(std::unique_ptr<WorkQueue> q, std::shared_ptr<void> keep);
  // The same, for a caller that waits for the release (an engine closing): the thread is handed
  // back joinable, so that once the flag is true the caller can join it and no thread of ours
  // outlives close(). A caller that stops waiting (the release never returns) detaches it.
  struct Retirement {
    std::shared_ptr<std::atomic<bool>> done;
    std::thread thread;  // not joinable when there was nothing to release
  };
  static Retirement retire_joinable(std::unique_ptr<WorkQueue> q, std::shared_ptr<void> keep);
  // Releases a queue's file that never became a WorkQueue (a probe that failed at open): unmaps
  // the portal (if any), closes fd, then frees `keep` (the probe's record), on a thread of its
  // own. Kept for the life of the process if no thread can be started.
  static void release_file(int fd, void* portal, size_t portal_size, std::shared_ptr<void> keep);
  // Starts q->reopen() on its own thread.
  static std::shared_ptr<ReopenJob> reopen(std::unique_ptr<WorkQueue> q);
  // Runs, on the calling thread, the releases retire_joinable() could start no thread for.
  static void run_owed();
  // Releases and reopens still running or owed in this process (tests, stats).
  static uint64_t pending();
  // Waits up to timeout_ms for pending() to reach 0; true if it did.
  static bool wait_idle(uint64_t timeout_ms);
};

}  // namespace dmacopy
