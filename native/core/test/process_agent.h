// A stand-in DSA device that runs in ANOTHER process, behind a FIFO "device node": the real
// UserWorkQueue path (open, write() submission, poll(), release) talks to something outside the
// process and asynchronous to it, that reaches the client's memory the way shared virtual
// addressing does: through the client's page tables, here process_vm_readv/process_vm_writev on
// the client's pid. What that gives, like the device:
//  - an address the client has not mapped (or mapped PROT_NONE) fails with EFAULT partway:
//    reported as PAGE_FAULT_NOBOF with bytes_completed and the faulting page in fault_addr
//    (bit 7 of the status for a write);
//  - with pagemap_faults, a page the client has mapped but that is not resident (never touched,
//    or dropped with MADV_DONTNEED; /proc/<pid>/pagemap bit 63) faults too, before any access, as
//    an IOMMU translation would: touching it from the client makes the continuation go further;
//  - records are written fields first, status byte last, in a separate write;
//  - one engine, in order: a Drain completes once everything before it did; with `wedge`, the
//    agent takes descriptors and never completes any (a wedged device), Drains included;
//  - a dedicated queue of wq_size entries: with latency_us per descriptor, what arrives while
//    wq_size are held is dropped silently, and the software error is raised the way the client
//    can see it, by a change of the device 'errors' file (errors_path); write() gives no
//    feedback, as the kernel's unchecked MOVDIR64B on the write() path does.
// The child is forked at construction and killed at destruction; it uses no locks and no heap.
// Header-only: run-core-tests.js links only native/core/*.cc.
#pragma once

#include <fcntl.h>
#include <linux/idxd.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace dmacopy_test {

struct ProcessAgentOptions {
  bool pagemap_faults = false;  // fault on mapped pages that are not resident
  bool wedge = false;           // accept descriptors, complete none (after wedge_after of them)
  uint64_t wedge_after = 0;     // with wedge: descriptors completed before the device wedges
  uint32_t fail_every = 0;      // every Nth MEMMOVE fails with a hardware error, nothing copied
  uint32_t wq_size = 0;         // dedicated queue entries (0: unbounded)
  uint32_t latency_us = 0;      // per descriptor, in order
  std::string errors_path;      // the device 'errors' file the agent bumps on a drop
};

class ProcessAgent {
 public:
  ProcessAgent(const std::string& fifo, ProcessAgentOptions o = {}) : opt_(o) {
    client_ = getpid();
    int ready[2];
    if (pipe(ready) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      int fd = ::open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);  // RDWR: never sees EOF
      char pm[64];
      std::snprintf(pm, sizeof pm, "/proc/%d/pagemap", int(client_));
      pagemap_ = ::open(pm, O_RDONLY | O_CLOEXEC);
      char ok = fd >= 0 ? 1 : 0;
      (void)!::write(ready[1], &ok, 1);
      ::close(ready[1]);
      if (fd < 0) _exit(2);
      serve(fd);
      _exit(0);
    }
    ::close(ready[1]);
    // Yama (ptrace_scope 1) lets only an ancestor trace a process unless it names its tracer:
    // process_vm_* and pagemap need that access from the child to us.
    prctl(PR_SET_PTRACER, pid_, 0, 0, 0);
    char ok = 0;
    ok_ = ::read(ready[0], &ok, 1) == 1 && ok == 1;
    ::close(ready[0]);
  }
  ~ProcessAgent() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  ProcessAgent(const ProcessAgent&) = delete;
  ProcessAgent& operator=(const ProcessAgent&) = delete;

  bool ok() const { return ok_ && pid_ > 0; }
  pid_t pid() const { return pid_; }

  // A standalone agent (dsa_agent.cc, for tests that run the library in a Node process): serves
  // the FIFO open on fd for `client`, another process, on this thread, until killed.
  [[noreturn]] static void serve_for(int fd, pid_t client, ProcessAgentOptions o) {
    ProcessAgent a(o, client);
    a.serve(fd);
    _exit(0);
  }

 private:
  ProcessAgent(ProcessAgentOptions o, pid_t client) : opt_(o), client_(client) {
    char pm[64];
    std::snprintf(pm, sizeof pm, "/proc/%d/pagemap", int(client_));
    pagemap_ = ::open(pm, O_RDONLY | O_CLOEXEC);
  }

  static constexpr size_t kChunk = 64 * 1024;
  static constexpr size_t kMaxHeld = 4096;
  static constexpr uint64_t kPage = 4096;

  static uint64_t now_us() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000u + uint64_t(ts.tv_nsec) / 1000u;
  }

  [[noreturn]] void serve(int fd) {
    static uint8_t in[4096];
    static dsa_hw_desc held[kMaxHeld];  // the queue: a ring, in order
    uint8_t desc[64];
    size_t have = 0, head = 0, count = 0;
    uint64_t due = 0, drops = 0, performed = 0;
    const size_t cap = opt_.wq_size ? opt_.wq_size : kMaxHeld;
    for (;;) {
      const bool wedged = opt_.wedge && performed >= opt_.wedge_after;
      pollfd p{fd, POLLIN, 0};
      int wait_ms = count && !wedged ? 0 : 100;
      if (::poll(&p, 1, wait_ms) > 0) {
        ssize_t r = ::read(fd, in, sizeof in);
        for (ssize_t i = 0; i < r; ++i) {
          desc[have++] = in[i];
          if (have < 64) continue;
          have = 0;
          if (count == cap) {  // a full dedicated queue drops it and raises SWERR
            ++drops;
            raise_swerr(drops);
            continue;
          }
          std::memcpy(&held[(head + count) % kMaxHeld], desc, 64);
          if (count++ == 0) due = now_us() + opt_.latency_us;
        }
      }
      if (wedged || count == 0 || now_us() < due) continue;
      perform(held[head]);
      ++performed;
      head = (head + 1) % kMaxHeld;
      if (--count) due = now_us() + opt_.latency_us;
    }
  }

  void raise_swerr(uint64_t n) const {
    if (opt_.errors_path.empty()) return;
    int f = ::open(opt_.errors_path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (f < 0) return;
    char line[96];
    int k = std::snprintf(line, sizeof line, "0x%016llx,0x0000000000000000,0x0000000000000000,0x0000000000000000\n",
                          (unsigned long long)(0x8000000000000000ull | n));
    (void)!::write(f, line, size_t(k));
    ::close(f);
  }

  // 0: present (or cannot tell); 1: mapped but not resident.
  bool not_resident(uint64_t addr) const {
    if (!opt_.pagemap_faults || pagemap_ < 0) return false;
    uint64_t e = 0;
    if (pread(pagemap_, &e, 8, off_t((addr / kPage) * 8)) != 8) return false;
    return (e >> 63) == 0 && ((e >> 62) & 1) == 0;  // neither present nor swapped
  }

  void perform(const dsa_hw_desc& d) {
    uint8_t status = DSA_COMP_SUCCESS;
    uint32_t done = 0;
    uint64_t fault_addr = 0;
    if (d.opcode == DSA_OPCODE_MEMMOVE && opt_.fail_every && ++memmoves_ % opt_.fail_every == 0) {
      status = DSA_COMP_HW_ERR1;
    } else if (d.opcode == DSA_OPCODE_MEMMOVE) {
      status = copy(d, &done, &fault_addr);
    } else if (d.opcode != DSA_OPCODE_NOOP && d.opcode != DSA_OPCODE_DRAIN) {
      status = DSA_COMP_BAD_OPCODE;
    }
    if (!(d.flags & IDXD_OP_FLAG_CRAV) || d.completion_addr == 0) return;
    if (status == DSA_COMP_SUCCESS && !(d.flags & IDXD_OP_FLAG_RCR)) return;
    dsa_completion_record cr;
    std::memset(&cr, 0, sizeof cr);
    cr.bytes_completed = done;
    cr.fault_addr = fault_addr;
    // Fields first, then the status byte on its own: the client polls the status.
    write_remote(d.completion_addr + 1, reinterpret_cast<const uint8_t*>(&cr) + 1, sizeof cr - 1);
    write_remote(d.completion_addr, &status, 1);
  }

  uint8_t copy(const dsa_hw_desc& d, uint32_t* done, uint64_t* fault_addr) {
    static uint8_t buf[kChunk];
    uint64_t off = 0;
    const uint64_t len = d.xfer_size;
    while (off < len) {
      uint64_t n = len - off < kChunk ? len - off : kChunk;
      // Pages the IOMMU would find missing: copy up to the first one, then fault there (on a
      // tie the source, read first, faults).
      uint64_t stop = n, fpage = 0;
      bool fwrite = false;
      for (uint64_t a = (d.src_addr + off) & ~(kPage - 1); a < d.src_addr + off + n; a += kPage)
        if (not_resident(a)) {
          stop = a > d.src_addr + off ? a - (d.src_addr + off) : 0;
          fpage = a;
          break;
        }
      for (uint64_t a = (d.dst_addr + off) & ~(kPage - 1); a < d.dst_addr + off + n; a += kPage)
        if (not_resident(a)) {
          uint64_t b = a > d.dst_addr + off ? a - (d.dst_addr + off) : 0;
          if (b < stop) {
            stop = b;
            fpage = a;
            fwrite = true;
          }
          break;
        }
      if (stop == 0) return fault(done, fault_addr, off, fpage, fwrite);
      n = stop;
      ssize_t got = read_remote(d.src_addr + off, buf, n);
      if (got < 0) got = 0;
      if (uint64_t(got) < n) {
        uint64_t at = d.src_addr + off + uint64_t(got);
        uint64_t w = write_remote(d.dst_addr + off, buf, size_t(got));
        if (w < uint64_t(got)) return fault(done, fault_addr, off + w, (d.dst_addr + off + w) & ~(kPage - 1), true);
        return fault(done, fault_addr, off + uint64_t(got), at & ~(kPage - 1), false);
      }
      uint64_t w = write_remote(d.dst_addr + off, buf, size_t(n));
      if (w < n) return fault(done, fault_addr, off + w, (d.dst_addr + off + w) & ~(kPage - 1), true);
      off += n;
    }
    *done = uint32_t(len);
    return DSA_COMP_SUCCESS;
  }

  static uint8_t fault(uint32_t* done, uint64_t* fault_addr, uint64_t bytes, uint64_t page, bool write) {
    *done = uint32_t(bytes);
    *fault_addr = page;
    return uint8_t(DSA_COMP_PAGE_FAULT_NOBOF | (write ? DSA_COMP_STATUS_WRITE : 0));
  }

  // Bytes transferred before the first failure (EFAULT on an unmapped or inaccessible page).
  ssize_t read_remote(uint64_t addr, void* to, size_t n) const {
    size_t total = 0;
    while (total < n) {
      iovec l{static_cast<uint8_t*>(to) + total, n - total};
      iovec r{reinterpret_cast<void*>(static_cast<uintptr_t>(addr + total)), n - total};
      ssize_t k = process_vm_readv(client_, &l, 1, &r, 1, 0);
      if (k <= 0) break;
      total += size_t(k);
    }
    return ssize_t(total);
  }
  uint64_t write_remote(uint64_t addr, const void* from, size_t n) const {
    size_t total = 0;
    while (total < n) {
      iovec l{const_cast<uint8_t*>(static_cast<const uint8_t*>(from)) + total, n - total};
      iovec r{reinterpret_cast<void*>(static_cast<uintptr_t>(addr + total)), n - total};
      ssize_t k = process_vm_writev(client_, &l, 1, &r, 1, 0);
      if (k <= 0) break;
      total += size_t(k);
    }
    return total;
  }

  ProcessAgentOptions opt_;
  uint64_t memmoves_ = 0;
  pid_t client_ = 0;
  pid_t pid_ = -1;
  int pagemap_ = -1;
  bool ok_ = false;
};

}  // namespace dmacopy_test
