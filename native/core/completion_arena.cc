#include "completion_arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <shared_mutex>

#include "dsa_hw.h"

namespace dmacopy {

namespace {
std::atomic<uint64_t> g_lock_failures{0};
std::atomic<uint64_t> g_reused{0};

// Live arenas by address, for audit_record_write (arenas are few; writes take the lock shared).
// Never destroyed: a device thread of a queue still being released (QueueReaper) may audit a
// record while the process exits.
std::shared_mutex& g_arenas_mu = *new std::shared_mutex();
std::map<uintptr_t, CompletionArena*>& arenas() {
  static auto* m = new std::map<uintptr_t, CompletionArena*>();  // never destroyed
  return *m;
}
}  // namespace

bool CompletionArena::audit_record_write(const void* record, uint64_t dst) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(record);
  std::shared_lock<std::shared_mutex> lk(g_arenas_mu);
  auto& m = arenas();
  auto it = m.upper_bound(a);
  if (it == m.begin()) return true;
  --it;
  CompletionArena* ar = it->second;
  if (a >= it->first + ar->bytes_) return true;  // not an arena's record
  const uint32_t slot = uint32_t((a - it->first) / sizeof(dsa_completion_record));
  if (slot >= ar->capacity_) return true;
  if (ar->owners_[slot].load(std::memory_order_acquire) == dst) return true;
  g_reused.fetch_add(1, std::memory_order_relaxed);
  return false;
}

uint64_t CompletionArena::reused_while_owned() { return g_reused.load(std::memory_order_relaxed); }

uint64_t CompletionArena::lock_failures() { return g_lock_failures.load(std::memory_order_relaxed); }

CompletionArena::CompletionArena(uint32_t capacity) : capacity_(capacity ? capacity : 1) {
  // Whole pages of our own: page-aligned (so 32-byte aligned), never shared with heap objects
  // that malloc could trim or madvise away.
  const size_t ps = size_t(sysconf(_SC_PAGESIZE));
  bytes_ = (sizeof(dsa_completion_record) * capacity_ + ps - 1) & ~(ps - 1);
  void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  // MAP_POPULATE is best effort, and a read-populated anonymous page may be the shared zero page:
  // write every byte, so every page is a private, writable, present frame.
  std::memset(p, 0, bytes_);
  if (mlock(p, bytes_) != 0) {
    lock_errno_ = errno ? errno : EPERM;  // EPERM / ENOMEM / EAGAIN: RLIMIT_MEMLOCK, tolerated
    g_lock_failures.fetch_add(1, std::memory_order_relaxed);
  }
  // Not inherited by a fork() child (Node's spawn forks): otherwise fork() write-protects these
  // pages in this process until the CPU next writes them, and the device's record write would
  // meet a copy-on-write fault. A child never uses them (its queues are disowned at fork).
  madvise(p, bytes_, MADV_DONTFORK);
  records_ = static_cast<dsa_completion_record*>(p);
  owners_.reset(new std::atomic<uint64_t>[capacity_]);
  for (uint32_t i = 0; i < capacity_; ++i) owners_[i].store(0, std::memory_order_relaxed);
  {
    std::unique_lock<std::shared_mutex> lk(g_arenas_mu);
    arenas()[reinterpret_cast<uintptr_t>(p)] = this;
  }
  free_.reserve(capacity_);
  // Hand out low slots first (pushed last): keeps the hot records in few cache lines.
  for (uint32_t i = capacity_; i-- > 0;) free_.push_back(i);
}

CompletionArena::~CompletionArena() {
  {
    std::unique_lock<std::shared_mutex> lk(g_arenas_mu);
    arenas().erase(reinterpret_cast<uintptr_t>(records_));
  }
  munmap(records_, bytes_);  // also unlocks
}

uint32_t CompletionArena::acquire() {
  if (free_.empty()) return kNoSlot;
  uint32_t s = free_.back();
  free_.pop_back();
  prepare_completion(&records_[s]);
  return s;
}

void CompletionArena::release(uint32_t slot) {
  owners_[slot].store(0, std::memory_order_release);
  free_.push_back(slot);
}

}  // namespace dmacopy
