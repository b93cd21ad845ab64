// A NOOP probe that fails at open() must not leave the caller waiting for the queue's release.
// On real idxd the last close() drains the queue with no timeout (idxd_file_dev_release ->
// idxd_wq_drain / idxd_device_drain_pasid -> idxd_cmd_exec; idxd-kernel-semantics.md, "Release
// and drain"), and open() runs on the JavaScript thread in openEngine(): a device that did not
// answer the probe kept that thread blocked for as long as the device took (forever if wedged).
// A FIFO's close() returns at once, which hid it, so here close() of the stand-in node is
// interposed (this test binary only) to take RELEASE_MS, as the kernel's drain would.
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "check.h"
#include "clock.h"
#include "fifo_agent.h"
#include "queue_reaper.h"
#include "user_queue.h"

using namespace dmacopy;
using dmacopy_test::TempDir;

static std::atomic<unsigned long> g_node_ino{0};
static std::atomic<int> g_release_ms{0};
static std::atomic<int> g_blocked_releases{0};

// The kernel's release of /dev/dsa/wqD.Q: waits for the device to drain what the queue holds.
extern "C" int close(int fd) {
  struct stat st;
  if (g_node_ino.load() != 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && st.st_ino == g_node_ino.load()) {
    g_blocked_releases.fetch_add(1);
    usleep(static_cast<useconds_t>(g_release_ms.load()) * 1000);
  }
  return static_cast<int>(syscall(SYS_close, fd));
}

TEST("probe timeout: open() returns after the probe timeout; the release and the record are left to a thread") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  struct stat st;
  CHECK(::stat(node.c_str(), &st) == 0);
  g_node_ino = st.st_ino;
  g_release_ms = 3000;  // stands for "as long as the device takes"

  UserQueueConfig c;
  c.device_path = node;
  c.info.name = "wq0.0";
  c.info.mode = WqMode::Shared;
  c.info.size = 32;
  c.info.max_transfer_size = 1u << 21;
  c.submission = SubmissionPath::Write;
  c.probe_timeout_ms = 100;  // nobody answers the NOOP: ProbeTimeout after 100 ms
  UserWorkQueue q(c);
  uint64_t t0 = monotonic_ns();
  OpenResult r = q.open();
  double took_ms = double(monotonic_ns() - t0) / 1e6;
  CHECK(r.code == OpenErrorCode::ProbeTimeout);
  CHECK(took_ms < 1000);  // about the probe timeout, not the 3 s release
  // The release still happens, off the caller's thread, and is waited for like the others.
  CHECK(QueueReaper::pending() >= 1);
  CHECK(QueueReaper::wait_idle(10000));
  CHECK(g_blocked_releases.load() == 1);
  g_node_ino = 0;
}

DMACOPY_TEST_MAIN
