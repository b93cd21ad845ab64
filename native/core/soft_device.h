// The software DSA device: engine threads that execute the same 64-byte descriptors the
// hardware would, validate them like the hardware, and write completion records the same way.
// It stands in for /dev/dsa on every machine without DSA, so every DSA code path runs in tests.
//
// What it models (all decisions come from seed + descriptor sequence number, so an order or a
// fault pattern that broke something replays exactly):
//  - out-of-order completion: descriptors are spread over engines and each gets a latency plus
//    seeded jitter; an engine completes whatever is due first, not what came first;
//  - the copy happens only when a descriptor completes, so a caller that returns early reads
//    missing bytes (exactly the dcbm bug);
//  - dedicated queue overflow: descriptors beyond wq_size in flight are dropped silently and a
//    software-error flag is raised (healthy() == false), like SWERR on real hardware;
//  - shared queue: full → SubmitStatus::Retry (ENQCMD ZF=1), plus injected spurious retries;
//  - faults: partial completion (PAGE_FAULT_NOBOF), hardware error statuses (with a scribbled
//    destination head, as a half-done transfer would leave it), hangs, late completions, lost
//    completion records, and a queue disabled mid-stream (held descriptors never complete,
//    further submits: Disabled).
// And what the kernel and the hardware do that an idealized device would not
// (Linux drivers/dma/idxd/cdev.c release and poll, device.c drain; the DSA specification):
//  - no abort: release (drain()) waits for every descriptor held, however long; a wedged
//    descriptor (hang with hang_ms 0) never completes, so its release never returns;
//  - release is deferred while another reference to the file exists (hold_file(): a fork()
//    child, a dup()); drain() then returns at once and the device goes on writing;
//  - the in-band Drain descriptor (DSA_OPCODE_DRAIN) completes only after every descriptor
//    accepted before it completed;
//  - software errors latch device-wide (SoftErrorLatch, shared by every queue of one device and
//    never cleared by reopen): another queue's error shows on this one too.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "work_queue.h"

namespace dmacopy {

struct SoftFaults {
  double page_fault = 0;   // probability a memmove completes partially with PAGE_FAULT_NOBOF
  double backward = 0;     // of those, the fraction reported as a backward copy (result = 1)
  double error = 0;        // probability of a hardware error status (HW_ERR1, ...)
  double hang = 0;         // probability a descriptor is wedged: it completes only after hang_ms
  uint32_t hang_ms = 0;    // 0: never (a wedged device; the release of its queue never returns)
  double lost_record = 0;  // probability the data is copied but the record is never written (a
                           // fault on the record on DSA 1.0): SWERR is raised instead
  double late = 0;         // probability a descriptor completes only after late_ms
  uint32_t late_ms = 0;    // must be at least 1 when late > 0
  double retry = 0;        // shared queue: probability a submission gets a spurious Retry
  double disable = 0;      // probability per descriptor that the queue gets disabled when it runs
  // Page faults from real memory state instead of dice: before copying, the device asks the
  // kernel (mincore(2)) whether every source and destination page of the memmove is resident;
  // at the first one that is not, it completes partially as the hardware does with BOF off
  // (PAGE_FAULT_NOBOF, bytes_completed = bytes before that page, fault_addr = that page's
  // address, bit 7 for a destination page), copying only those bytes. Touching the page from
  // the CPU (what the poller does) makes it resident, so the continuation gets further.
  // Limits: mincore sees residency, not permissions (a read-only zero page counts as present
  // for a destination), and a range mincore cannot answer for (not mapped) is treated as present.
  bool real_page_faults = false;
};

// The software-error register of one device: every queue of the device reports it (poll()
// POLLIN, the 'errors' file), whoever caused it, and reopening a queue does not clear it.
struct SoftErrorLatch {
  std::atomic<uint64_t> count{0};  // errors raised so far (the 'errors' file changing)
  void raise() { count.fetch_add(1, std::memory_order_acq_rel); }
};
// The latch of the emulated device called `device` (shared by every queue opened on it in this
// process: two engines given the same emulator device share one). Kept while any queue uses it.
std::shared_ptr<SoftErrorLatch> soft_error_latch(const std::string& device);

// The device's shape has no default here: its one home is lib/defaults.ts (EMULATOR_DEFAULTS),
// which the addon passes down field by field. SoftDevice throws std::invalid_argument (naming
// the field) for engines, wq_size, max_transfer_size or faults.late_ms left unset.
struct SoftDeviceConfig {
  std::string name = "soft0.0";
  uint32_t engines = 0;  // engine threads, at least 1
  uint32_t wq_size = 0;  // descriptors the queue holds in flight, at least 1
  WqMode mode = WqMode::Dedicated;
  uint64_t max_transfer_size = 0;          // bytes per descriptor, at least 64
  uint64_t seed = 0;                       // any value: the fault and reordering draws replay from it
  std::shared_ptr<SoftErrorLatch> errors;  // the device-wide SWERR register (null: its own)
  uint32_t latency_us = 0;                 // base latency of every descriptor
  uint32_t jitter_us = 0;                  // + uniform [0, jitter_us] per descriptor
  // The device honours IDXD_OP_FLAG_CC (gen_cap bit 2). Without it CC is a reserved flag bit and a
  // memmove that sets it completes with INVALID_FLAGS, as on such hardware.
  bool cache_control = true;
  SoftFaults faults;
};

// Everything the device did or injected, so tests can check each fault is visible.
struct SoftDeviceCounters {
  uint64_t submitted = 0;          // submission attempts
  uint64_t accepted = 0;           // descriptors taken into the queue
  uint64_t completed = 0;          // top-level descriptors whose record was written
  uint64_t succeeded = 0;          // memmove/noop completed with SUCCESS
  uint64_t dropped = 0;            // dedicated queue overflow: silently dropped
  uint64_t retry_full = 0;         // shared queue full
  uint64_t retry_injected = 0;     // spurious Retry
  uint64_t rejected_disabled = 0;  // submit while disabled/drained
  uint64_t page_faults = 0;
  uint64_t backward_faults = 0;
  uint64_t errors = 0;
  uint64_t hangs = 0;
  uint64_t lates = 0;
  uint64_t disables = 0;
  uint64_t lost_records = 0;       // records never written (lost_record)
  uint64_t drains = 0;             // releases (drain())
  uint64_t drain_descriptors = 0;  // in-band Drain descriptors completed
  uint64_t deferred_releases = 0;  // releases that returned at once: another reference held the file
  uint64_t reopens = 0;
  uint64_t invalid = 0;           // validation failures (NOZERO_RESERVE, BAD_OPCODE, ...)
  uint64_t unreportable = 0;      // failures the device could not report (no CRAV)
  uint64_t reordered = 0;         // completed after a later-accepted descriptor completed
  uint64_t real_page_faults = 0;  // of page_faults: found by real_page_faults (a page not resident)
};

class SoftDevice {
 public:
  // Throws std::invalid_argument (naming the field) for a config SoftDeviceConfig rejects.
  explicit SoftDevice(const SoftDeviceConfig& cfg);
  ~SoftDevice();  // drains, then stops the engines
  SoftDevice(const SoftDevice&) = delete;
  SoftDevice& operator=(const SoftDevice&) = delete;

  const SoftDeviceConfig& config() const { return cfg_; }

  // Takes up to n descriptors (copied, like MOVDIR64B/ENQCMD); *accepted says how many.
  // A dropped descriptor (dedicated overflow) counts as accepted: the hardware gives no feedback.
  SubmitStatus submit(const dsa_hw_desc* descs, size_t n, size_t* accepted);
  bool healthy() const;  // false once disabled or released
  // True once for every software error latched on the device since the last call (any queue's).
  bool take_device_error();
  // The file's release: if another reference holds the file (hold_file()), returns at once and
  // the device goes on; else waits, without a deadline, until every held descriptor completed
  // (forever for a wedged one). Afterwards submits get Disabled until reopen().
  void drain();
  bool reopen();
  // Test seam: another reference to the queue's file (a fork() child that has not closed its
  // copy, a dup()). While held, drain() does not wait for the device.
  void hold_file();
  void drop_file();

  SoftDeviceCounters counters() const;
  uint32_t in_flight() const { return in_flight_.load(std::memory_order_acquire); }

 private:
  enum class Fate : uint8_t { Normal, PageFault, Error, Hang, Late, Disable, LostRecord, Wedged };
  // kDisabling: a Disable fate ran; descriptors already executing finish first, and only then is
  // the queue kDisabled, as the hardware's Disable WQ waits for in-progress work. Nobody outside
  // sees kDisabling: healthy() and submit() wait it out, so "disabled" always means "quiet".
  enum State : uint8_t { kEnabled, kDisabled, kDrained, kDisabling };
  struct Held {
    dsa_hw_desc desc;
    uint64_t seq;
    uint64_t due_ns;
    Fate fate;
  };
  struct ExecUnit {
    std::mutex exec;                   // held while the engine executes; drain() waits on it
    std::vector<Held> incoming;        // guarded by SoftDevice::mu_
    std::vector<Held> local;           // min-heap by due time; guarded by exec
    std::condition_variable cv;        // waits with SoftDevice::mu_
    std::atomic<uint32_t> pending{0};  // incoming.size(), readable without the lock
    bool sleeping = false;             // guarded by mu_
    std::thread thread;
  };
  struct Ctr {  // atomics behind SoftDeviceCounters
    std::atomic<uint64_t> v[23];
  };
  struct PendingDrain {  // an accepted Drain descriptor: completes when nothing before it is held
    dsa_hw_desc desc;
    uint64_t seq;
  };

  Fate decide(uint64_t seq, uint32_t member) const;
  void unit_main(ExecUnit& e);
  // Executes a top-level descriptor (its record is written last, status with release).
  void execute(const Held& h);
  // Runs one memmove/noop. Returns the status it reported.
  uint8_t run_op(const dsa_hw_desc& d, Fate fate, uint64_t seq, uint32_t member, bool top_level);
  void write_record(const dsa_hw_desc& d, uint8_t status, uint8_t result, uint32_t bytes, uint64_t fault_addr,
                    bool top_level, uint32_t invalid_flags = 0);
  // The flag bits of d this device does not accept for its opcode (0: none).
  uint32_t invalid_flags(const dsa_hw_desc& d) const;
  void note_completion_order(uint64_t seq);
  // real_page_faults: reports a partial completion and returns true when a page of the memmove
  // is not resident (it copied the bytes before that page and wrote the record).
  bool fault_on_unpopulated(const dsa_hw_desc& d, bool top_level);
  void bump(int idx, uint64_t n = 1) { ctr_.v[idx].fetch_add(n, std::memory_order_relaxed); }
  // A descriptor accepted with sequence seq reached its end (record written, lost or dropped by a
  // disable): Drain descriptors waiting only on earlier ones complete now.
  void retire(uint64_t seq);
  void complete_ready_drains();  // with order_mu_ held
  bool is_plain_drain(const dsa_hw_desc& d) const;
  void stop_engines();
  bool executable() const {
    uint8_t s = state_.load(std::memory_order_seq_cst);
    return s == kEnabled || s == kDrained;
  }
  void await_disabled() const;
  void end_execution();  // the last execution of a disabling queue makes it kDisabled
  std::atomic<uint32_t> executing_{0};

  SoftDeviceConfig cfg_;
  std::mutex mu_;  // submission side: state changes, incoming lists, sleeping flags
  std::atomic<uint8_t> state_{kEnabled};
  std::shared_ptr<SoftErrorLatch> errors_;
  uint64_t errors_seen_ = 0;  // errors_->count at the last take_device_error()
  std::mutex order_mu_;       // what is still held, for Drain descriptors and release
  std::condition_variable quiet_cv_;
  std::set<uint64_t> held_seqs_;        // accepted, not yet ended (guarded by order_mu_)
  std::vector<PendingDrain> drains_;    // guarded by order_mu_
  std::atomic<uint32_t> file_refs_{1};  // the queue's own reference plus hold_file()s
  std::atomic<bool> stop_{false};
  std::atomic<uint32_t> in_flight_{0};
  uint64_t next_seq_ = 0;         // guarded by mu_
  uint64_t submit_attempts_ = 0;  // guarded by mu_
  std::atomic<uint64_t> max_completed_seq_{0};
  std::atomic<bool> any_completed_{false};
  std::vector<std::unique_ptr<ExecUnit>> engines_;
  Ctr ctr_;
};

class SoftWorkQueue : public WorkQueue {
 public:
  explicit SoftWorkQueue(const SoftDeviceConfig& cfg);  // throws like SoftDevice
  const WqInfo& info() const override { return info_; }
  SubmitStatus submit(const dsa_hw_desc& desc) override;
  size_t submit_many(const dsa_hw_desc* descs, size_t n, SubmitStatus* stopped) override;
  bool healthy() override { return dev_.healthy(); }
  bool take_device_error() override { return dev_.take_device_error(); }
  void drain() override { dev_.drain(); }
  bool reopen() override { return dev_.reopen(); }
  SoftDevice& device() { return dev_; }

 private:
  WqInfo info_;
  SoftDevice dev_;
};

}  // namespace dmacopy
