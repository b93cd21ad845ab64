#include "soft_device.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <stdexcept>

#include <sys/mman.h>
#include <unistd.h>

#include "clock.h"
#include "completion_arena.h"
#include "dsa_hw.h"
#include "thread_name.h"

namespace dmacopy {
namespace {

enum CtrIdx {
  kSubmitted,
  kAccepted,
  kCompleted,
  kSucceeded,
  kDropped,
  kRetryFull,
  kRetryInjected,
  kRejectedDisabled,
  kPageFaults,
  kBackward,
  kErrors,
  kHangs,
  kLates,
  kDisables,
  kLostRecords,
  kDrains,
  kReopens,
  kInvalid,
  kUnreportable,
  kReordered,
  kRealPageFaults,
  kDrainDescs,
  kDeferred,
  kCtrCount
};

uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A uniform draw in [0,1) that depends only on (seed, seq, member, what): replayable.
double draw(uint64_t seed, uint64_t seq, uint32_t member, uint32_t what) {
  uint64_t h = mix(seed ^ mix(seq * 0x100000001b3ull + member) ^ (uint64_t(what) << 56));
  return double(h >> 11) * (1.0 / 9007199254740992.0);
}
uint64_t draw_u64(uint64_t seed, uint64_t seq, uint32_t member, uint32_t what) {
  return mix(seed ^ mix(seq * 0x100000001b3ull + member) ^ (uint64_t(what) << 56) ^ 0x5bd1e995ull);
}

enum What : uint32_t {
  kWDisable = 1,
  kWHang,
  kWError,
  kWFault,
  kWLate,
  kWJitter,
  kWRetry,
  kWFaultBytes,
  kWFaultDir,
  kWFaultWrite,
  kWErrCode,
  kWLostRecord,
  kWFaultHead
};

bool all_zero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i]) return false;
  return true;
}

uintptr_t page_size() {
  static const uintptr_t ps = uintptr_t(sysconf(_SC_PAGESIZE));
  return ps;
}

// Offset (from p) of the first byte of [p, p+n) on a page that is not resident, or n when all
// are. mincore(2) wants a page-aligned start; one call covers up to 64 pages. A range it cannot
// answer for (ENOMEM: not mapped) counts as present: inventing a fault there would make the
// poller touch an unmapped page, which the copy itself is about to do anyway.
uint64_t first_unpopulated(uintptr_t p, uint64_t n, bool from_end) {
  if (n == 0) return n;
  const uintptr_t ps = page_size();
  const uintptr_t first = p & ~(ps - 1);
  const uintptr_t last = (p + n - 1) & ~(ps - 1);
  const uint64_t pages = (last - first) / ps + 1;
  unsigned char vec[64];
  uint64_t found = UINT64_MAX;  // page index
  for (uint64_t i = 0; i < pages; i += 64) {
    uint64_t k = pages - i < 64 ? pages - i : 64;
    if (mincore(reinterpret_cast<void*>(first + i * ps), k * ps, vec) != 0) continue;
    for (uint64_t j = 0; j < k; ++j) {
      if (vec[j] & 1) continue;
      found = i + j;
      if (!from_end) break;
    }
    if (found != UINT64_MAX && !from_end) break;
  }
  if (found == UINT64_MAX) return n;
  uintptr_t page = first + found * ps;
  return page > p ? page - p : 0;
}

const uint8_t kErrorStatuses[] = {DSA_COMP_HW_ERR1, DSA_COMP_TRANSLATION_FAIL, DSA_COMP_HW_ERR_DRB};

// Before any thread starts: the core holds no default for these (lib/defaults.ts does).
const SoftDeviceConfig& validated(const SoftDeviceConfig& c) {
  if (c.engines < 1) throw std::invalid_argument("SoftDeviceConfig.engines must be at least 1");
  if (c.wq_size < 1) throw std::invalid_argument("SoftDeviceConfig.wq_size must be at least 1");
  if (c.max_transfer_size < 64) throw std::invalid_argument("SoftDeviceConfig.max_transfer_size must be at least 64");
  if (c.faults.late > 0 && c.faults.late_ms < 1)
    throw std::invalid_argument("SoftDeviceConfig.faults.late_ms must be at least 1 when faults.late > 0");
  return c;
}

std::mutex& g_latches_mu = *new std::mutex();  // never destroyed, like the map it guards
std::map<std::string, std::weak_ptr<SoftErrorLatch>>& latches() {
  static auto* m = new std::map<std::string, std::weak_ptr<SoftErrorLatch>>();  // never destroyed
  return *m;
}

}  // namespace

std::shared_ptr<SoftErrorLatch> soft_error_latch(const std::string& device) {
  std::lock_guard<std::mutex> lk(g_latches_mu);
  auto& m = latches();
  for (auto it = m.begin(); it != m.end();) it = it->second.expired() ? m.erase(it) : std::next(it);
  std::shared_ptr<SoftErrorLatch> l = m[device].lock();
  if (!l) {
    l = std::make_shared<SoftErrorLatch>();
    m[device] = l;
  }
  return l;
}

SoftDevice::SoftDevice(const SoftDeviceConfig& cfg)
    : cfg_(validated(cfg)), errors_(cfg.errors ? cfg.errors : std::make_shared<SoftErrorLatch>()) {
  errors_seen_ = errors_->count.load(std::memory_order_acquire);
  static_assert(sizeof(ctr_.v) / sizeof(ctr_.v[0]) == kCtrCount, "counter table size");
  for (auto& c : ctr_.v) c.store(0, std::memory_order_relaxed);
  for (uint32_t i = 0; i < cfg_.engines; ++i) {
    auto e = std::make_unique<ExecUnit>();
    // Nothing above wq_size is ever held, so these never reallocate on the hot path.
    e->incoming.reserve(cfg_.wq_size);
    e->local.reserve(cfg_.wq_size);
    engines_.push_back(std::move(e));
  }
  try {
    for (auto& e : engines_) {
      ExecUnit* ep = e.get();
      ep->thread = std::thread([this, ep] {
        name_this_thread("dmacopy-sdev");
        unit_main(*ep);
      });
    }
  } catch (...) {
    stop_engines();  // as in CpuCopyPool: no joinable thread may outlive a failed constructor
    throw;
  }
}

// Destruction is the device's reset (the process lets go of it): what it still holds is
// discarded without a write. Not a release: a release waits, and a wedged descriptor would keep
// it waiting forever.
SoftDevice::~SoftDevice() { stop_engines(); }

void SoftDevice::stop_engines() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
  }
  for (auto& e : engines_) e->cv.notify_all();
  for (auto& e : engines_)
    if (e->thread.joinable()) e->thread.join();
}

SoftDevice::Fate SoftDevice::decide(uint64_t seq, uint32_t member) const {
  const SoftFaults& f = cfg_.faults;
  uint64_t s = cfg_.seed;
  if (f.disable > 0 && draw(s, seq, member, kWDisable) < f.disable) return Fate::Disable;
  if (f.hang > 0 && draw(s, seq, member, kWHang) < f.hang) return f.hang_ms ? Fate::Hang : Fate::Wedged;
  if (f.lost_record > 0 && draw(s, seq, member, kWLostRecord) < f.lost_record) return Fate::LostRecord;
  if (f.error > 0 && draw(s, seq, member, kWError) < f.error) return Fate::Error;
  if (f.page_fault > 0 && draw(s, seq, member, kWFault) < f.page_fault) return Fate::PageFault;
  if (f.late > 0 && draw(s, seq, member, kWLate) < f.late) return Fate::Late;
  return Fate::Normal;
}

SubmitStatus SoftDevice::submit(const dsa_hw_desc* descs, size_t n, size_t* accepted) {
  size_t ok = 0;
  SubmitStatus st = SubmitStatus::Accepted;
  uint64_t woke = 0;  // bitmask of engines to wake (first 64)
  bool wake_all = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    uint64_t now =
        (cfg_.latency_us || cfg_.jitter_us || cfg_.faults.late > 0 || cfg_.faults.hang > 0) ? monotonic_ns() : 0;
    for (; ok < n; ++ok) {
      bump(kSubmitted);
      if (state_.load(std::memory_order_relaxed) != kEnabled) {
        bump(kRejectedDisabled);
        st = SubmitStatus::Disabled;  // reported only once the queue is quiet (see below)
        break;
      }
      uint64_t attempt = submit_attempts_++;
      if (cfg_.mode == WqMode::Shared && cfg_.faults.retry > 0 &&
          draw(cfg_.seed, attempt, 0xffffffffu, kWRetry) < cfg_.faults.retry) {
        bump(kRetryInjected);
        st = SubmitStatus::Retry;
        break;
      }
      if (in_flight_.load(std::memory_order_acquire) >= cfg_.wq_size) {
        if (cfg_.mode == WqMode::Shared) {
          bump(kRetryFull);
          st = SubmitStatus::Retry;
          break;
        }
        // Dedicated queue: MOVDIR64B is a posted write; the device drops it and raises SWERR.
        bump(kDropped);
        errors_->raise();
        continue;
      }
      uint64_t seq = next_seq_++;
      if (is_plain_drain(descs[ok])) {
        // In-band Drain: takes a queue entry and completes once nothing accepted before it is
        // held (it waits; it aborts nothing). It never reaches an engine.
        in_flight_.fetch_add(1, std::memory_order_acq_rel);
        bump(kAccepted);
        std::lock_guard<std::mutex> ol(order_mu_);
        PendingDrain pd;
        std::memcpy(static_cast<void*>(&pd.desc), &descs[ok], sizeof(dsa_hw_desc));
        pd.seq = seq;
        drains_.push_back(pd);
        complete_ready_drains();
        continue;
      }
      {
        std::lock_guard<std::mutex> ol(order_mu_);
        held_seqs_.insert(seq);
      }
      Held h;
      std::memcpy(static_cast<void*>(&h.desc), &descs[ok], sizeof(dsa_hw_desc));
      h.seq = seq;
      h.fate = decide(seq, 0);
      uint64_t lat = uint64_t(cfg_.latency_us) * 1000;
      if (cfg_.jitter_us) lat += draw_u64(cfg_.seed, seq, 0, kWJitter) % (uint64_t(cfg_.jitter_us) * 1000 + 1);
      h.due_ns = now + lat;
      if (h.fate == Fate::Wedged) {  // never runs: counted when decided
        h.due_ns = UINT64_MAX;
        bump(kHangs);
      }
      if (h.fate == Fate::Hang) {  // runs, but only after hang_ms
        h.due_ns = now + uint64_t(cfg_.faults.hang_ms) * 1000000ull;
        bump(kHangs);
      }
      if (h.fate == Fate::Late) {
        h.due_ns = now + uint64_t(cfg_.faults.late_ms) * 1000000ull;
        bump(kLates);
      }
      size_t ei = seq % engines_.size();
      ExecUnit& e = *engines_[ei];
      e.incoming.push_back(h);
      e.pending.store(uint32_t(e.incoming.size()), std::memory_order_release);
      in_flight_.fetch_add(1, std::memory_order_acq_rel);
      bump(kAccepted);
      if (e.sleeping) {
        if (ei < 64) woke |= 1ull << ei;
        else wake_all = true;
      }
    }
  }
  for (size_t i = 0; i < engines_.size(); ++i)
    if (wake_all || (i < 64 && (woke >> i) & 1)) engines_[i]->cv.notify_one();
  if (st == SubmitStatus::Disabled) await_disabled();
  if (accepted) *accepted = ok;
  return st;
}

bool SoftDevice::healthy() const {
  await_disabled();
  return state_.load(std::memory_order_acquire) == kEnabled;
}

void SoftDevice::await_disabled() const {
  while (state_.load(std::memory_order_acquire) == kDisabling) std::this_thread::yield();
}

void SoftDevice::end_execution() {
  if (executing_.fetch_sub(1, std::memory_order_seq_cst) != 1) return;
  uint8_t s = kDisabling;
  if (!state_.compare_exchange_strong(s, kDisabled, std::memory_order_seq_cst)) return;
  // Disabled: Drain descriptors it held end without a record, like everything else it held.
  std::lock_guard<std::mutex> ol(order_mu_);
  complete_ready_drains();
  if (held_seqs_.empty()) quiet_cv_.notify_all();
}

bool SoftDevice::take_device_error() {
  uint64_t c = errors_->count.load(std::memory_order_acquire);
  std::lock_guard<std::mutex> lk(mu_);
  if (c == errors_seen_) return false;
  errors_seen_ = c;
  return true;
}

bool SoftDevice::is_plain_drain(const dsa_hw_desc& d) const {
  return d.opcode == DSA_OPCODE_DRAIN && invalid_flags(d) == 0 && d.rsvd == 0 && d.rsvd1 == 0 && d.priv == 0 &&
         all_zero(d.op_specific, sizeof d.op_specific) && d.src_addr == 0 && d.dst_addr == 0 && d.xfer_size == 0;
}

void SoftDevice::retire(uint64_t seq) {
  std::lock_guard<std::mutex> ol(order_mu_);
  held_seqs_.erase(seq);
  complete_ready_drains();
  if (held_seqs_.empty()) quiet_cv_.notify_all();
}

void SoftDevice::complete_ready_drains() {
  const uint8_t s = state_.load(std::memory_order_seq_cst);
  if (s == kDisabled || s == kDisabling) {
    in_flight_.fetch_sub(uint32_t(drains_.size()), std::memory_order_acq_rel);
    drains_.clear();
    return;
  }
  const uint64_t oldest = held_seqs_.empty() ? UINT64_MAX : *held_seqs_.begin();
  size_t keep = 0;
  for (size_t i = 0; i < drains_.size(); ++i) {
    if (drains_[i].seq < oldest) {
      bump(kDrainDescs);
      bump(kCompleted);
      bump(kSucceeded);
      write_record(drains_[i].desc, DSA_COMP_SUCCESS, 0, 0, 0, true);
    } else {
      drains_[keep++] = drains_[i];
    }
  }
  drains_.resize(keep);
}

void SoftDevice::hold_file() { file_refs_.fetch_add(1, std::memory_order_acq_rel); }
void SoftDevice::drop_file() { file_refs_.fetch_sub(1, std::memory_order_acq_rel); }

void SoftDevice::drain() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (state_.load(std::memory_order_relaxed) == kEnabled) state_.store(kDrained, std::memory_order_release);
  }
  bump(kDrains);
  if (file_refs_.load(std::memory_order_acquire) > 1) {  // not the last reference: no drain at all
    bump(kDeferred);
    return;
  }
  // The kernel's release drain: wait for the device, with no timeout.
  std::unique_lock<std::mutex> ol(order_mu_);
  quiet_cv_.wait(ol, [this] { return held_seqs_.empty() && drains_.empty(); });
}

bool SoftDevice::reopen() {
  await_disabled();
  if (state_.load(std::memory_order_acquire) == kEnabled) drain();
  {  // the queue is not reusable until the device let go of what it held
    std::unique_lock<std::mutex> ol(order_mu_);
    quiet_cv_.wait(ol, [this] { return held_seqs_.empty() && drains_.empty(); });
  }
  std::lock_guard<std::mutex> lk(mu_);
  state_.store(kEnabled, std::memory_order_release);  // the device's error latch stays as it is
  bump(kReopens);
  return true;
}

SoftDeviceCounters SoftDevice::counters() const {
  auto g = [this](int i) { return ctr_.v[i].load(std::memory_order_relaxed); };
  SoftDeviceCounters c;
  c.submitted = g(kSubmitted);
  c.accepted = g(kAccepted);
  c.completed = g(kCompleted);
  c.succeeded = g(kSucceeded);
  c.dropped = g(kDropped);
  c.retry_full = g(kRetryFull);
  c.retry_injected = g(kRetryInjected);
  c.rejected_disabled = g(kRejectedDisabled);
  c.page_faults = g(kPageFaults);
  c.backward_faults = g(kBackward);
  c.errors = g(kErrors);
  c.hangs = g(kHangs);
  c.lates = g(kLates);
  c.disables = g(kDisables);
  c.lost_records = g(kLostRecords);
  c.drains = g(kDrains);
  c.drain_descriptors = g(kDrainDescs);
  c.deferred_releases = g(kDeferred);
  c.reopens = g(kReopens);
  c.invalid = g(kInvalid);
  c.unreportable = g(kUnreportable);
  c.reordered = g(kReordered);
  c.real_page_faults = g(kRealPageFaults);
  return c;
}

void SoftDevice::unit_main(ExecUnit& e) {
  auto later = [](const Held& a, const Held& b) { return a.due_ns != b.due_ns ? a.due_ns > b.due_ns : a.seq > b.seq; };
  uint32_t idle = 0;
  while (!stop_.load(std::memory_order_acquire)) {
    bool did = false;
    uint64_t next_due = UINT64_MAX;
    {
      std::lock_guard<std::mutex> ex(e.exec);
      if (e.pending.load(std::memory_order_acquire) != 0) {
        std::lock_guard<std::mutex> lk(mu_);
        for (const Held& h : e.incoming) {
          e.local.push_back(h);
          std::push_heap(e.local.begin(), e.local.end(), later);
        }
        e.incoming.clear();
        e.pending.store(0, std::memory_order_release);
      }
      if (!e.local.empty() && !executable()) {
        // A disabled queue completes nothing it held: those descriptors end without a record.
        for (const Held& h : e.local) {
          in_flight_.fetch_sub(1, std::memory_order_acq_rel);
          retire(h.seq);
        }
        e.local.clear();
        did = true;
      }
      if (!e.local.empty()) {
        uint64_t now = e.local.front().due_ns == 0 ? 0 : monotonic_ns();
        for (int k = 0; k < 64 && !e.local.empty() && e.local.front().due_ns <= now; ++k) {
          // Counted before the state is read (and the state set before the count is read by the
          // one disabling it): either this execution is seen, or the disable is.
          executing_.fetch_add(1, std::memory_order_seq_cst);
          if (!executable()) {  // disabled mid-stream
            end_execution();
            break;
          }
          std::pop_heap(e.local.begin(), e.local.end(), later);
          Held h = e.local.back();
          e.local.pop_back();
          execute(h);
          end_execution();
          did = true;
        }
      }
      if (!e.local.empty()) next_due = e.local.front().due_ns;
    }
    if (did) {
      idle = 0;
      continue;
    }
    // Idle: pause → yield → sleep until new work or the next due time.
    ++idle;
    if (idle < 256) {
      cpu_relax();
      continue;
    }
    uint64_t now = monotonic_ns();
    if (next_due != UINT64_MAX && next_due <= now + 20000) {  // due within 20 us: stay awake
      std::this_thread::yield();
      continue;
    }
    if (idle < 512) {
      std::this_thread::yield();
      continue;
    }
    std::unique_lock<std::mutex> lk(mu_);
    if (!e.incoming.empty() || stop_.load()) continue;
    e.sleeping = true;
    uint64_t wait_ns = next_due == UINT64_MAX ? 10000000ull : std::min<uint64_t>(next_due - now, 10000000ull);
    bool woken =
        e.cv.wait_for(lk, std::chrono::nanoseconds(wait_ns), [&] { return !e.incoming.empty() || stop_.load(); });
    e.sleeping = false;
    // Woken by work: spin a little before sleeping again. Timed out: go straight back to sleep
    // (after checking due descriptors), so an idle device costs nothing.
    idle = woken ? 200 : 511;
  }
}

void SoftDevice::note_completion_order(uint64_t seq) {
  // "reordered": this descriptor completes after one accepted later than it already did.
  if (any_completed_.load(std::memory_order_relaxed)) {
    uint64_t m = max_completed_seq_.load(std::memory_order_relaxed);
    if (seq < m) bump(kReordered);
    while (seq > m && !max_completed_seq_.compare_exchange_weak(m, seq, std::memory_order_relaxed)) {
    }
  } else {
    uint64_t m = max_completed_seq_.load(std::memory_order_relaxed);
    while (seq > m && !max_completed_seq_.compare_exchange_weak(m, seq, std::memory_order_relaxed)) {
    }
    any_completed_.store(true, std::memory_order_relaxed);
  }
}

void SoftDevice::write_record(const dsa_hw_desc& d, uint8_t status, uint8_t result, uint32_t bytes, uint64_t fault_addr,
                              bool top_level, uint32_t invalid_flags) {
  const uint8_t code = status & DSA_COMP_STATUS_MASK;
  const bool success = code == DSA_COMP_SUCCESS;
  const bool crav = d.flags & IDXD_OP_FLAG_CRAV;
  const bool rcr = d.flags & IDXD_OP_FLAG_RCR;
  // Free the queue slot before publishing: a submitter that saw the record may submit again.
  if (top_level) in_flight_.fetch_sub(1, std::memory_order_acq_rel);
  if (!crav) {
    if (!success) bump(kUnreportable);  // a failure nobody will ever see
    return;
  }
  if (success && !rcr) return;  // CRAV without RCR: a record only on failure
  auto* cr = reinterpret_cast<dsa_completion_record*>(static_cast<uintptr_t>(d.completion_addr));
  // Instrumentation, not device behaviour: counts a record the engine gave up while we could
  // still write it (CompletionArena::reused_while_owned).
  CompletionArena::audit_record_write(cr, d.opcode == DSA_OPCODE_MEMMOVE ? d.dst_addr : 0);
  if (code == DSA_COMP_CRA_ALIGN) {  // misaligned record: the status is all it can say
    store_status(cr, status);
    return;
  }
  cr->result = result;
  cr->bytes_completed = bytes;
  cr->fault_addr = fault_addr;
  cr->invalid_flags = invalid_flags & 0xffffffu;
  store_status(cr, status);  // last, with release: data and fields are visible before it
}

uint32_t SoftDevice::invalid_flags(const dsa_hw_desc& d) const {
  // What a user-space descriptor may set on DSA 1.0: ordering, record, traffic-class and
  // ordering hints. Not RCI (user space has no interrupt handle), not BOF (block_on_fault is off
  // on the queues the engine uses; the engine never sets it, so refusing it is the strict side),
  // and CC only where the device honours it. Reserved bits (6, and above the defined ones) are
  // refused like on hardware: INVALID_FLAGS, the offending bits named in the record.
  uint32_t ok = IDXD_OP_FLAG_FENCE | IDXD_OP_FLAG_CRAV | IDXD_OP_FLAG_RCR | IDXD_OP_FLAG_ADDR1_TCS |
                IDXD_OP_FLAG_ADDR2_TCS | IDXD_OP_FLAG_ADDR3_TCS | IDXD_OP_FLAG_CR_TCS | IDXD_OP_FLAG_STORD |
                IDXD_OP_FLAG_DRDBK;
  if (d.opcode == DSA_OPCODE_MEMMOVE && cfg_.cache_control) ok |= IDXD_OP_FLAG_CC;
  return d.flags & ~ok;
}

uint8_t SoftDevice::run_op(const dsa_hw_desc& d, Fate fate, uint64_t seq, uint32_t member, bool top_level) {
  const bool crav = d.flags & IDXD_OP_FLAG_CRAV;
  if (crav && d.completion_addr % kCompletionAlign != 0) {
    bump(kInvalid);
    write_record(d, DSA_COMP_CRA_ALIGN, 0, 0, 0, top_level);
    return DSA_COMP_CRA_ALIGN;
  }
  if (const uint32_t bad = invalid_flags(d)) {
    bump(kInvalid);
    write_record(d, DSA_COMP_INVALID_FLAGS, 0, 0, 0, top_level, bad);
    return DSA_COMP_INVALID_FLAGS;
  }
  if (d.rsvd != 0 || d.rsvd1 != 0 || d.priv != 0 || !all_zero(d.op_specific, sizeof d.op_specific)) {
    bump(kInvalid);
    write_record(d, DSA_COMP_NOZERO_RESERVE, 0, 0, 0, top_level);
    return DSA_COMP_NOZERO_RESERVE;
  }
  if (d.opcode == DSA_OPCODE_NOOP) {
    bump(kSucceeded);
    write_record(d, DSA_COMP_SUCCESS, 0, 0, 0, top_level);
    return DSA_COMP_SUCCESS;
  }
  if (d.opcode != DSA_OPCODE_MEMMOVE) {
    bump(kInvalid);
    write_record(d, DSA_COMP_BAD_OPCODE, 0, 0, 0, top_level);
    return DSA_COMP_BAD_OPCODE;
  }
  const uint32_t len = d.xfer_size;
  if (len > cfg_.max_transfer_size) {
    bump(kInvalid);
    write_record(d, DSA_COMP_XFER_ERANGE, 0, 0, 0, top_level);
    return DSA_COMP_XFER_ERANGE;
  }
  auto* dst = reinterpret_cast<uint8_t*>(static_cast<uintptr_t>(d.dst_addr));
  auto* src = reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(d.src_addr));
  if (fate == Fate::Error) {
    bump(kErrors);
    // A transfer that broke half way leaves a destination head the caller must not trust.
    if (len) std::memset(dst, 0xEE, len < 64 ? len : 64);
    uint8_t st = kErrorStatuses[draw_u64(cfg_.seed, seq, member, kWErrCode) % 3];
    write_record(d, st, 0, 0, 0, top_level);
    return st;
  }
  if (fate == Fate::PageFault && len > 0) {
    bump(kPageFaults);
    // A quarter of the faults hit the first page, with nothing done (as on a device, where the
    // first page not present is often the first page); the rest stop somewhere inside.
    uint32_t done = draw(cfg_.seed, seq, member, kWFaultHead) < 0.25
                        ? 0
                        : uint32_t(draw_u64(cfg_.seed, seq, member, kWFaultBytes) % len);  // < len
    bool backward = draw(cfg_.seed, seq, member, kWFaultDir) < cfg_.faults.backward;
    bool on_write = draw(cfg_.seed, seq, member, kWFaultWrite) < 0.5;
    uint64_t first_unfinished;
    if (backward) {  // the tail [len-done, len) is done, the head is not
      bump(kBackward);
      std::memmove(dst + (len - done), src + (len - done), done);
      first_unfinished = len - done - 1;
    } else {
      std::memmove(dst, src, done);
      first_unfinished = done;
    }
    uint64_t fa = (on_write ? d.dst_addr : d.src_addr) + first_unfinished;
    uint8_t st = DSA_COMP_PAGE_FAULT_NOBOF | (on_write ? DSA_COMP_STATUS_WRITE : 0);
    write_record(d, st, backward ? 1 : 0, done, fa, top_level);
    return DSA_COMP_PAGE_FAULT_NOBOF;
  }
  if (cfg_.faults.real_page_faults && fault_on_unpopulated(d, top_level)) return DSA_COMP_PAGE_FAULT_NOBOF;
  std::memmove(dst, src, len);
  bump(kSucceeded);
  write_record(d, DSA_COMP_SUCCESS, 0, len, 0, top_level);
  return DSA_COMP_SUCCESS;
}

bool SoftDevice::fault_on_unpopulated(const dsa_hw_desc& d, bool top_level) {
  const uint64_t len = d.xfer_size;
  if (len == 0) return false;
  auto* dst = reinterpret_cast<uint8_t*>(static_cast<uintptr_t>(d.dst_addr));
  auto* src = reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(d.src_addr));
  const uintptr_t ps = page_size();
  // Overlapping with the destination above the source: the device copies backward (result 1),
  // so the fault it meets first is the highest missing page, and what it completed is the tail.
  const bool backward = d.dst_addr > d.src_addr && d.dst_addr < d.src_addr + len;
  if (!backward) {
    uint64_t fs = first_unpopulated(d.src_addr, len, false);
    uint64_t fd = first_unpopulated(d.dst_addr, len, false);
    if (fs == len && fd == len) return false;
    // The source is read before the destination is written: on a tie the read faults first.
    const bool on_write = fd < fs;
    const uint64_t done = on_write ? fd : fs;
    const uint64_t base = on_write ? d.dst_addr : d.src_addr;
    std::memmove(dst, src, done);
    bump(kPageFaults);
    bump(kRealPageFaults);
    // The address is the faulting page's, which may lie before this descriptor's first byte.
    write_record(d, DSA_COMP_PAGE_FAULT_NOBOF | (on_write ? DSA_COMP_STATUS_WRITE : 0), 0, uint32_t(done),
                 (base + done) & ~uint64_t(ps - 1), top_level);
    return true;
  }
  // Backward: the last missing page of either buffer, as an offset one past its last byte here.
  auto end_of_last = [&](uintptr_t p) -> uint64_t {
    uint64_t off = first_unpopulated(p, len, true);
    if (off == len) return 0;
    uint64_t page_end = ((p + off) & ~uint64_t(ps - 1)) + ps - p;
    return page_end < len ? page_end : len;
  };
  uint64_t es = end_of_last(d.src_addr), ed = end_of_last(d.dst_addr);
  if (es == 0 && ed == 0) return false;
  const bool on_write = ed > es;  // a tie: the read of the source faults first
  const uint64_t stop = on_write ? ed : es;
  const uint64_t done = len - stop;
  const uint64_t base = on_write ? d.dst_addr : d.src_addr;
  std::memmove(dst + stop, src + stop, done);
  bump(kPageFaults);
  bump(kRealPageFaults);
  bump(kBackward);
  write_record(d, DSA_COMP_PAGE_FAULT_NOBOF | (on_write ? DSA_COMP_STATUS_WRITE : 0), 1, uint32_t(done),
               (base + stop - 1) & ~uint64_t(ps - 1), top_level);
  return true;
}

void SoftDevice::execute(const Held& h) {
  note_completion_order(h.seq);
  bump(kCompleted);
  if (h.fate == Fate::Disable) {
    // The queue goes down with this descriptor: it and everything still held never complete.
    bump(kDisables);
    state_.store(kDisabling, std::memory_order_seq_cst);  // kDisabled once executions in progress end
    in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    retire(h.seq);
    return;
  }
  if (h.fate == Fate::LostRecord) {
    // The data moves, then the record write faults: DSA 1.0 loses the record and raises SWERR.
    const dsa_hw_desc& d = h.desc;
    if (d.opcode == DSA_OPCODE_MEMMOVE && d.xfer_size <= cfg_.max_transfer_size)
      std::memmove(reinterpret_cast<void*>(static_cast<uintptr_t>(d.dst_addr)),
                   reinterpret_cast<const void*>(static_cast<uintptr_t>(d.src_addr)), d.xfer_size);
    bump(kLostRecords);
    in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    errors_->raise();
    retire(h.seq);
    return;
  }
  // Only MEMMOVE, NOOP and DRAIN are implemented (what the engine submits); anything else, BATCH
  // included, completes with BAD_OPCODE.
  const Fate run = (h.fate == Fate::Late || h.fate == Fate::Hang) ? Fate::Normal : h.fate;
  run_op(h.desc, run, h.seq, 0, true);
  retire(h.seq);
}

SoftWorkQueue::SoftWorkQueue(const SoftDeviceConfig& cfg) : dev_(cfg) {
  info_.name = cfg.name;
  info_.mode = cfg.mode;
  info_.size = dev_.config().wq_size;
  info_.max_transfer_size = cfg.max_transfer_size;
  info_.cache_control = cfg.cache_control;
}

SubmitStatus SoftWorkQueue::submit(const dsa_hw_desc& desc) {
  size_t n = 0;
  return dev_.submit(&desc, 1, &n);
}

size_t SoftWorkQueue::submit_many(const dsa_hw_desc* descs, size_t n, SubmitStatus* stopped) {
  size_t ok = 0;
  SubmitStatus st = dev_.submit(descs, n, &ok);
  if (stopped) *stopped = st;
  return ok;
}

}  // namespace dmacopy
