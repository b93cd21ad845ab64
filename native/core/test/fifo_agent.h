// A stand-in for a DSA work queue behind a FIFO: a thread reads the 64-byte descriptors that
// UserWorkQueue's write() path sends to the "device node", decodes them with <linux/idxd.h>,
// performs NOOP and MEMMOVE (the addresses are valid: same process) and writes the completion
// records the way the device does (fields first, status last with release semantics).
// Header-only: run-core-tests.js links only native/core/*.cc.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <linux/idxd.h>
#include <poll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dmacopy_test {

struct AgentOptions {
  bool complete = true;               // false: read descriptors but never write a record (timeouts)
  uint8_t status = DSA_COMP_SUCCESS;  // status to report for every descriptor
  size_t read_chunk = 4096;           // bytes per read() (odd values exercise reassembly)
  int pipe_size = 0;                  // F_SETPIPE_SZ on the FIFO (0: leave the default 64 KiB)
  bool start_paused = false;
};

class FifoAgent {
 public:
  FifoAgent(const std::string& path, AgentOptions o = {}) : opt_(o) {
    paused_.store(o.start_paused);
    fd_ = ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);  // RDWR: never sees EOF
    if (fd_ < 0) {
      std::fprintf(stderr, "agent: open %s: %s\n", path.c_str(), std::strerror(errno));
      return;
    }
    if (o.pipe_size > 0 && fcntl(fd_, F_SETPIPE_SZ, o.pipe_size) < 0)
      std::fprintf(stderr, "agent: F_SETPIPE_SZ: %s\n", std::strerror(errno));
    thread_ = std::thread([this] { run(); });
    if (o.start_paused) wait_paused_ack(true);
  }
  ~FifoAgent() { stop(); }

  void stop() {
    if (thread_.joinable()) {
      stop_.store(true);
      thread_.join();
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Pause/resume reading; returns once the agent thread has observed the change.
  void pause() {
    paused_.store(true);
    wait_paused_ack(true);
  }
  void resume() {
    paused_.store(false);
    wait_paused_ack(false);
  }

  size_t descriptors() const { return count_.load(); }
  size_t reads() const { return reads_.load(); }
  size_t misaligned_records() const { return misaligned_.load(); }
  std::vector<dsa_hw_desc> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  bool wait_descriptors(size_t n, int timeout_ms) {
    for (int i = 0; i < timeout_ms * 2; ++i) {
      if (count_.load() >= n) return true;
      sleep_us(500);
    }
    return count_.load() >= n;
  }

  static void sleep_us(long us) {
    timespec ts{us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, nullptr);
  }

 private:
  void wait_paused_ack(bool v) {
    while (thread_.joinable() && paused_ack_.load() != v) sleep_us(100);
  }

  void run() {
    std::vector<uint8_t> buf(opt_.read_chunk ? opt_.read_chunk : 1);
    uint8_t pending[64];
    size_t have = 0;
    while (!stop_.load()) {
      bool p = paused_.load();
      paused_ack_.store(p);
      if (p) {
        sleep_us(200);
        continue;
      }
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 2) <= 0) continue;
      if (paused_.load()) continue;  // re-check: pause() may have raced with the poll
      ssize_t r = ::read(fd_, buf.data(), buf.size());
      if (r <= 0) continue;
      reads_.fetch_add(1);
      for (ssize_t i = 0; i < r; ++i) {
        pending[have++] = buf[static_cast<size_t>(i)];
        if (have == 64) {
          dsa_hw_desc d;
          std::memcpy(&d, pending, 64);
          perform(d);
          have = 0;
        }
      }
    }
  }

  void perform(const dsa_hw_desc& d) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(d);
    }
    uint8_t status = opt_.status;
    if (status == DSA_COMP_SUCCESS) {
      if (d.opcode == DSA_OPCODE_MEMMOVE) {
        std::memmove(reinterpret_cast<void*>(static_cast<uintptr_t>(d.dst_addr)),
                     reinterpret_cast<const void*>(static_cast<uintptr_t>(d.src_addr)), d.xfer_size);
      } else if (d.opcode != DSA_OPCODE_NOOP) {
        status = DSA_COMP_BAD_OPCODE;
      }
    }
    if (opt_.complete && (d.flags & IDXD_OP_FLAG_CRAV) && d.completion_addr &&
        ((d.flags & IDXD_OP_FLAG_RCR) || status != DSA_COMP_SUCCESS)) {
      if (d.completion_addr % 32 != 0) {
        misaligned_.fetch_add(1);  // the device would fail with CRA_ALIGN; the kernel with EINVAL
      } else {
        auto* cr = reinterpret_cast<dsa_completion_record*>(static_cast<uintptr_t>(d.completion_addr));
        cr->bytes_completed = 0;
        cr->result = 0;
        __atomic_store_n(reinterpret_cast<volatile uint8_t*>(cr), status, __ATOMIC_RELEASE);
      }
    }
    count_.fetch_add(1);
  }

  AgentOptions opt_;
  int fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> paused_{false};
  std::atomic<bool> paused_ack_{false};
  std::atomic<size_t> count_{0};
  std::atomic<size_t> reads_{0};
  std::atomic<size_t> misaligned_{0};
  std::mutex mu_;
  std::vector<dsa_hw_desc> seen_;
};

// A private temporary directory, removed (with what the tests put in it) on destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/dmacopy-uq-XXXXXX";
    const char* p = mkdtemp(tmpl);
    path_ = p ? p : "/tmp";
  }
  ~TempDir() {  // the tests only create flat files
    if (path_.rfind("/tmp/dmacopy-uq-", 0) != 0) return;
    if (DIR* d = opendir(path_.c_str())) {
      while (dirent* e = readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") unlink((path_ + "/" + n).c_str());
      }
      closedir(d);
    }
    rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string fifo(const std::string& name) const {
    std::string p = file(name);
    if (mkfifo(p.c_str(), 0600) != 0) std::fprintf(stderr, "mkfifo %s: %s\n", p.c_str(), std::strerror(errno));
    return p;
  }

 private:
  std::string path_;
};

}  // namespace dmacopy_test
