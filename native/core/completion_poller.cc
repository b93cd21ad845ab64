#include "completion_poller.h"

#include <sys/mman.h>

#include <cerrno>

#ifndef MADV_POPULATE_READ  // Linux 5.14; older C libraries lack the names
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#include "cpu_features.h"
#include "portal.h"
#include "prepared_descriptors.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include <unistd.h>

#include "clock.h"
#include "dsa_hw.h"
#include "thread_name.h"

namespace dmacopy {
namespace {

constexpr uint32_t kFeedChunk = 16;           // descriptors per submit_many
constexpr uint64_t kDeadlineCheckNs = 20000;  // deadline scan period per channel
constexpr uint64_t kHealthCheckNs = 100000;   // healthy() period while descriptors are outstanding
constexpr uint64_t kPublishNs = 1000000;      // stats snapshot period while busy
// The yield stage of an idle poller ends after 32 yields or this long, whichever comes first. On a
// quiet core 32 yields take a few microseconds; on a loaded one each may give the core away for a
// whole time slice, and a poller that kept yielding would stay runnable for as long as its
// descriptors take, taking its share of a core from the threads it waits beside.
constexpr uint64_t kYieldStageNs = 100000;

// Next piece of a work, from its cursor (regions are non-empty: submit_work filtered them).
bool next_piece_of(WorkState* w, uint8_t** dst, const uint8_t** src, uint32_t* len) {
  if (w->next_region >= w->piece_count) return false;
  const CopyRegion& r = w->piece_table[w->next_region];
  uint64_t left = r.len - w->next_offset;
  uint32_t n = left < w->limit ? uint32_t(left) : w->limit;
  *dst = r.dst + w->next_offset;
  *src = r.src + w->next_offset;
  *len = n;
  w->next_offset += n;
  if (w->next_offset == r.len) {
    ++w->next_region;
    w->next_offset = 0;
  }
  return true;
}

uintptr_t page_size() {
  static const uintptr_t ps = uintptr_t(sysconf(_SC_PAGESIZE));
  return ps;
}

bool exhausted(const WorkState* w) { return w->next_region >= w->piece_count; }

bool expired(const WorkState* w, uint64_t now) { return w->expired || (w->deadline_ns && now >= w->deadline_ns); }

// Before anything is built or started: the policy values have no default in the core.
const DsaChannelOptions& validated(const DsaChannelOptions& o) {
  if (o.quarantine_after == 0)
    throw std::invalid_argument(
        "DsaChannelOptions.quarantine_after must be at least 1 (lib/defaults.ts QUARANTINE_AFTER)");
  if (o.page_fault_retries > UINT8_MAX)
    throw std::invalid_argument("DsaChannelOptions.page_fault_retries must be at most 255");
  if (o.drain_timeout_ms == 0)
    throw std::invalid_argument(
        "DsaChannelOptions.drain_timeout_ms must be at least 1 (lib/defaults.ts DRAIN_TIMEOUT_MS)");
  return o;
}

}  // namespace

CompletionPoller::CompletionPoller(std::vector<std::unique_ptr<WorkQueue>> queues, CpuCopier* cpu, EventSink* sink,
                                   const DsaChannelOptions& opts)
    : cpu_(cpu), sink_(sink), opts_(validated(opts)) {
  for (auto& q : queues) {
    if (!q) continue;
    auto ch = std::make_unique<Channel>();
    ch->info = q->info();
    // Never more in flight than the queue holds, less the entry a Drain descriptor needs (a
    // dedicated queue drops what overflows it). A queue of one entry cannot keep one free: its
    // fence waits until the entry is free (see try_submit_fence).
    uint32_t win = ch->info.size > 1 ? ch->info.size - 1 : 1;
    if (opts_.max_window && win > opts_.max_window) win = opts_.max_window;
    ch->window = win;
    ch->limit = piece_limit(ch->info.max_transfer_size);
    ch->cc = opts_.cache_control && ch->info.cache_control;
    ch->arena = std::make_shared<CompletionArena>(win);
    ch->fence_record = std::make_shared<CompletionArena>(1);
    ch->by_slot.resize(win);
    ch->active.reserve(win);
    ch->st.name = ch->info.name;
    ch->q = std::move(q);
    channels_.push_back(std::move(ch));
  }
  events_.reserve(64);
  dirty_.reserve(64);
  published_.channels.resize(channels_.size());
  for (size_t i = 0; i < channels_.size(); ++i) published_.channels[i].name = channels_[i]->st.name;
  thread_ = std::thread([this] {
    name_this_thread("dmacopy-poll");
    run();
  });
}

CompletionPoller::~CompletionPoller() { stop(); }

const WqInfo& CompletionPoller::channel_info(size_t c) const { return channels_[c]->info; }
uint32_t CompletionPoller::channel_limit(size_t c) const { return channels_[c]->limit; }
bool CompletionPoller::channel_cache_control(size_t c) const { return channels_[c]->cc; }
bool CompletionPoller::channel_usable(size_t c) const {
  return !channels_[c]->quarantined.load(std::memory_order_acquire);
}

bool CompletionPoller::usable(const Channel& ch) const {
  return !ch.quarantined.load(std::memory_order_relaxed) && (ch.mode == Mode::Running || ch.mode == Mode::Fencing);
}

bool CompletionPoller::enqueue(WorkState* w) {
  std::lock_guard<std::mutex> lk(mu_);
  if (stopping_) return false;
  inbox_.push_back(w);
  has_news_.store(true, std::memory_order_release);
  if (sleeping_) cv_.notify_one();
  return true;
}

void CompletionPoller::stop() {
  std::call_once(stop_once_, [this] {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
      has_news_.store(true, std::memory_order_release);
    }
    cv_.notify_all();
    thread_.join();
  });
}

DsaChannelsStats CompletionPoller::stats() const {
  std::lock_guard<std::mutex> lk(stats_mu_);
  return published_;
}

// ---- poller thread ---------------------------------------------------------------------------

void CompletionPoller::run() {
  uint32_t idle = 0;
  uint64_t last_publish = 0;
  uint64_t yield_stage_ends = 0;
  for (;;) {
    uint64_t now = monotonic_ns();
    bool progress = sweep(now);
    bool stopping;
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping = stopping_;
    }
    if (stopping) break;
    if (progress) {
      idle = 0;
      if (now - last_publish >= kPublishNs) {
        publish_stats();
        last_publish = now;
      }
      continue;
    }
    // Idle: pause → yield → short sleep. Never a hot spin on an idle engine; submissions and
    // CPU completions wake us through cv_.
    ++idle;
    if (idle < 64) {
      cpu_relax();
      continue;
    }
    if (idle == 64) yield_stage_ends = now + kYieldStageNs;
    if (idle < 96 && now < yield_stage_ends) {
      if (wait_on_a_record()) {
        ++totals_.idle_umwaits;
      } else {
        std::this_thread::yield();
        ++totals_.idle_yields;
      }
      continue;
    }
    publish_stats();
    last_publish = now;
    std::unique_lock<std::mutex> lk(mu_);
    if (has_news_.load(std::memory_order_acquire) || stopping_) continue;
    sleeping_ = true;
    ++totals_.idle_sleeps;
    // Device completions do not wake us: while descriptors are outstanding, sleep briefly.
    auto d = busy() ? std::chrono::microseconds(opts_.idle_sleep_us) : std::chrono::microseconds(10000);
    cv_.wait_for(lk, d, [this] { return has_news_.load(std::memory_order_acquire) || stopping_; });
    sleeping_ = false;
    idle = 90;  // a few yields again before the next sleep
    yield_stage_ends = monotonic_ns() + kYieldStageNs;
  }

  // Shutdown: what was never submitted goes to the CPU; what the queues hold is fenced (bounded
  // by drain_timeout_ms: a wedged channel ends its works marked wedged), so every work still
  // reaches its final count; then wait for the CPU before the thread ends.
  take_news();
  shutting_down_ = true;
  for (auto& chp : channels_) {
    Channel& ch = *chp;
    Piece p;
    while (next_piece(ch, &p)) to_cpu(p, kSubmit);
    if (ch.mode == Mode::Running && !ch.active.empty()) start_fence(ch, FenceWhy::Shutdown, monotonic_ns());
  }
  for (;;) {
    bool fencing = false;
    uint64_t now = monotonic_ns();
    for (auto& chp : channels_) {
      Channel& ch = *chp;
      if (ch.mode != Mode::Fencing) continue;
      scan(ch);
      advance_fence(ch, now);
      if (ch.mode == Mode::Fencing) fencing = true;
    }
    flush_cpu();
    post_events();
    if (!fencing) break;
    std::this_thread::sleep_for(std::chrono::microseconds(opts_.idle_sleep_us));
  }
  // Nothing may be left queued on a channel: no sweep will submit it now.
  for (auto& chp : channels_) {
    Piece p;
    while (next_piece(*chp, &p)) to_cpu(p, kSubmit);
  }
  flush_cpu();
  post_events();
  while (cpu_outstanding_ > 0) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      sleeping_ = true;
      cv_.wait_for(lk, std::chrono::milliseconds(1), [this] { return !cpu_done_.empty(); });
      sleeping_ = false;
    }
    take_news();
    flush_cpu();
    post_events();
  }
  // Release the queues now, not when the engine object is collected, and off this thread: the
  // records go only once a release returned. Every channel left here is quiet (its Drain
  // completed, or it is disabled), so these releases are quick; a wedged one was retired
  // already and is not waited for. Reopens still running finish (and release) on their own.
  std::vector<QueueReaper::Retirement> releases;
  // Reserved first: a push_back that threw would destroy a joinable thread (std::terminate).
  releases.reserve(channels_.size());
  for (auto& chp : channels_) {
    Channel& ch = *chp;
    if (ch.reopening && ch.reopening->state.load(std::memory_order_acquire) != ReopenJob::kRunning)
      ch.q = std::move(ch.reopening->q);
    ch.reopening.reset();
    if (ch.q) releases.push_back(QueueReaper::retire_joinable(std::move(ch.q), ch.arena));
    ch.arena.reset();
    ch.fence_record.reset();
  }
  const uint64_t until = monotonic_ns() + uint64_t(opts_.drain_timeout_ms) * 1000000ull;
  for (auto& r : releases) {
    while (!r.done->load(std::memory_order_acquire) && monotonic_ns() < until)
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    // Released: its thread is ending, join it so that close() leaves no thread behind. Still
    // releasing after the Drain timeout (a device that never finishes): let it go on alone.
    // Not joinable: nothing to release, or a release no thread could be started for (owed).
    const bool done = r.done->load(std::memory_order_acquire);
    if (r.thread.joinable()) {
      if (done) r.thread.join();
      else r.thread.detach();
    }
    if (!done && opts_.releases) opts_.releases->add(r.done);
  }
  publish_stats();
}

bool CompletionPoller::take_news() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    inbox_local_.swap(inbox_);
    cpu_done_local_.swap(cpu_done_);
    has_news_.store(false, std::memory_order_release);
  }
  bool any = !inbox_local_.empty() || !cpu_done_local_.empty();
  for (WorkState* w : inbox_local_) {
    ++live_works_;
    ++totals_.works;
    totals_.descriptors += w->total;
    route(w);
  }
  inbox_local_.clear();
  for (auto* jobs : cpu_done_local_) {
    account_cpu(*jobs);
    delete jobs;
  }
  cpu_done_local_.clear();
  return any;
}

bool CompletionPoller::sweep(uint64_t now) {
  bool progress = false;
  if (has_news_.load(std::memory_order_acquire)) progress |= take_news();
  for (auto& chp : channels_) {
    Channel& ch = *chp;
    if (ch.mode == Mode::Gone) {
      if (!ch.retry.empty() || !ch.backlog.empty()) reroute_queued(ch);  // (never expected)
      continue;
    }
    if (ch.mode == Mode::Reopening) {
      check_reopen(ch);
      continue;
    }
    if (!ch.active.empty()) progress |= scan(ch);
    if (now - ch.last_health_ns >= kHealthCheckNs) {
      ch.last_health_ns = now;
      uint64_t before = ch.generation;
      check_health(ch, now);
      progress |= ch.generation != before;
    }
    if (ch.mode == Mode::Fencing) progress |= advance_fence(ch, now);
    if (ch.mode == Mode::Gone || ch.mode == Mode::Reopening) continue;
    if (now - ch.last_deadline_ns >= kDeadlineCheckNs) {
      ch.last_deadline_ns = now;
      progress |= check_deadlines(ch, now);
    }
    progress |= feed(ch);
  }
  flush_cpu();
  post_events();
  return progress;
}

void CompletionPoller::route(WorkState* w) {
  size_t n = channels_.size();
  size_t chosen = SIZE_MAX;
  if (w->channel != SIZE_MAX && n) {
    for (size_t k = 0; k < n; ++k) {
      size_t c = (w->channel + k) % n;
      if (usable(*channels_[c])) {
        chosen = c;
        break;
      }
    }
  }
  w->channel = chosen;
  if (chosen != SIZE_MAX) {
    channels_[chosen]->backlog.push_back(w);
    return;
  }
  Piece p{w, nullptr, nullptr, 0, 0};
  while (next_piece_of(w, &p.dst, &p.src, &p.len)) to_cpu(p, kSubmit);  // no channel left
}

bool CompletionPoller::next_piece(Channel& ch, Piece* out) {
  if (!ch.retry.empty()) {
    *out = ch.retry.front();
    ch.retry.pop_front();
    return true;
  }
  while (!ch.backlog.empty()) {
    WorkState* w = ch.backlog.front();
    bool got = next_piece_of(w, &out->dst, &out->src, &out->len);
    if (exhausted(w)) ch.backlog.pop_front();
    if (got) {
      out->w = w;
      out->pf_retries = 0;
      out->tmpl = w->prebuilt ? &w->prebuilt[w->next_prebuilt++] : nullptr;
      return true;
    }
  }
  return false;
}

void CompletionPoller::add_outstanding(Channel& ch, uint32_t slot, const Piece& p) {
  Outstanding& o = ch.by_slot[slot];
  o.p = p;
  o.seq = ch.next_seq++;
  o.pos = uint32_t(ch.active.size());
  ch.active.push_back(slot);
  if (ch.active.size() > ch.st.max_in_flight) ch.st.max_in_flight = ch.active.size();
}

void CompletionPoller::remove_outstanding(Channel& ch, uint32_t slot) {
  uint32_t pos = ch.by_slot[slot].pos;
  uint32_t last = ch.active.back();
  ch.active[pos] = last;
  ch.by_slot[last].pos = pos;
  ch.active.pop_back();
}

bool CompletionPoller::feed(Channel& ch) {
  if (ch.quarantined.load(std::memory_order_relaxed) || ch.mode != Mode::Running) return false;
  alignas(64) dsa_hw_desc descs[kFeedChunk];
  Piece pieces[kFeedChunk];
  uint32_t slots[kFeedChunk];
  bool progress = false;
  while (ch.active.size() < ch.window) {
    uint32_t k = 0;
    while (k < kFeedChunk && ch.active.size() + k < ch.window && next_piece(ch, &pieces[k])) {
      if (pieces[k].len > ch.limit) {  // rerouted from a channel with a larger limit
        to_cpu(pieces[k], kSubmit);
        continue;
      }
      uint32_t slot = ch.arena->acquire();     // zeroed record
      if (slot == CompletionArena::kNoSlot) {  // cannot happen: arena capacity == window
        ch.retry.push_front(pieces[k]);
        break;
      }
      slots[k] = slot;
      ch.arena->set_owner(slot, reinterpret_cast<uintptr_t>(pieces[k].dst));
      const Piece& p = pieces[k];
      if (p.tmpl && template_matches(*p.tmpl, p.dst, p.src, p.len, ch.cc)) {
        // Prepared: the descriptor as built at prepare(), pointed at this submission's record.
        std::memcpy(static_cast<void*>(&descs[k]), p.tmpl, sizeof(dsa_hw_desc));
        descs[k].completion_addr = reinterpret_cast<uintptr_t>(ch.arena->record(slot));
        ++ch.st.prebuilt;
      } else {
        build_memmove(&descs[k], p.dst, p.src, p.len, ch.arena->record(slot), ch.cc);
      }
      ++k;
    }
    if (k == 0) break;
    submission_fence();
    SubmitStatus why = SubmitStatus::Accepted;
    size_t acc = ch.q->submit_many(descs, k, &why);
    for (size_t i = 0; i < acc; ++i) add_outstanding(ch, slots[i], pieces[i]);
    ch.st.submitted += acc;
    progress = true;
    if (acc == k) continue;

    size_t i = acc;
    bool stop_feeding = true;
    if (why == SubmitStatus::Retry) {
      // Shared queue at its threshold: bounded backoff on this one, then the CPU does it.
      ++ch.st.retries;
      bool ok = false;
      for (uint32_t r = 0; r < opts_.retry_spins && !ok; ++r) {
        uint32_t spins = 16u << (r < 4 ? r : 4);
        for (uint32_t s = 0; s < spins; ++s) cpu_relax();
        submission_fence();
        SubmitStatus s2 = ch.q->submit(descs[i]);
        if (s2 == SubmitStatus::Accepted) {
          ok = true;
        } else if (s2 == SubmitStatus::Retry) {
          ++ch.st.retries;
        } else {
          why = s2;
          break;
        }
      }
      if (ok) {
        add_outstanding(ch, slots[i], pieces[i]);
        ++ch.st.submitted;
        ++i;
        stop_feeding = false;
      } else if (why == SubmitStatus::Retry) {
        ch.arena->release(slots[i]);
        to_cpu(pieces[i], kSubmit);
        ++i;
      }
    }
    if (why == SubmitStatus::Error && i < k) {
      ch.arena->release(slots[i]);
      to_cpu(pieces[i], kSubmit);
      ++i;
    }
    // What was not taken goes back, in order, to the front of the line.
    for (size_t j = k; j-- > i;) {
      ch.arena->release(slots[j]);
      ch.retry.push_front(pieces[j]);
    }
    if (why == SubmitStatus::Disabled) {  // a disabled queue completes nothing more it held
      ++ch.st.unhealthy;
      settle_disabled(ch);
      return true;
    }
    if (why == SubmitStatus::Error) note_bad(ch);
    if (stop_feeding) break;
  }
  return progress;
}

bool CompletionPoller::scan(Channel& ch) {
  // Pass 1: which records are final, and the oldest one still outstanding (for out_of_order).
  done_.clear();
  uint64_t oldest_pending = UINT64_MAX;
  for (uint32_t slot : ch.active) {
    if (load_status(ch.arena->record(slot)) != 0) {
      done_.push_back(slot);
    } else if (ch.by_slot[slot].seq < oldest_pending) {
      oldest_pending = ch.by_slot[slot].seq;
    }
  }
  if (done_.empty()) return false;
  // Pass 2: account. Stop if the channel was reset meanwhile (reset handled the rest).
  uint64_t gen = ch.generation;
  for (uint32_t slot : done_) {
    on_complete(ch, slot, ch.by_slot[slot].seq > oldest_pending);
    if (ch.generation != gen) break;
  }
  return true;
}

void CompletionPoller::account_device_success(Channel& ch, WorkState* w, uint32_t len) {
  ++ch.st.completed;
  ch.st.device_bytes += len;
  w->acc.device_bytes += len;
  ++w->acc.completed;
  ++w->finished;
  mark(w);
}

void CompletionPoller::on_complete(Channel& ch, uint32_t slot, bool out_of_order) {
  Outstanding o = ch.by_slot[slot];
  CompletionInfo c = decode_completion(ch.arena->record(slot));
  remove_outstanding(ch, slot);
  ch.arena->release(slot);
  WorkState* w = o.p.w;
  if (out_of_order) {
    ++ch.st.out_of_order;
    ++w->acc.out_of_order;
    mark(w);
  }
  const CompletionClass cls = classify_memmove_status(c.raw_status);
  if (cls == CompletionClass::Success) {
    ch.consecutive_bad = 0;
    account_device_success(ch, w, o.p.len);
    return;
  }
  if (cls == CompletionClass::PageFault) {
    ++ch.st.page_faults;
    uint32_t done = c.bytes_completed < o.p.len ? c.bytes_completed : o.p.len;
    ch.st.device_bytes += done;
    w->acc.device_bytes += done;
    mark(w);
    MemmoveRemainder rem =
        memmove_remainder(reinterpret_cast<uintptr_t>(o.p.src), reinterpret_cast<uintptr_t>(o.p.dst), o.p.len, c);
    if (rem.len == 0) {
      ++ch.st.completed;
      ++w->acc.completed;
      ++w->finished;
      return;
    }
    touch_fault_page(o.p, c);
    populate_remainder(rem, c);
    // The retry bound counts faults that made no progress: a fresh destination (pages not yet
    // present: Buffer.alloc) faults page after page, and each fault that completed bytes moves
    // on. Before, three faults of any kind sent the rest of a 2 MiB piece to the CPU: a fresh
    // destination was 99.6% copied by the CPU on a device with real page faults.
    Piece next{w, reinterpret_cast<uint8_t*>(static_cast<uintptr_t>(rem.dst)),
               reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(rem.src)), rem.len,
               static_cast<uint8_t>(done > 0 ? 0 : o.p.pf_retries)};
    if (next.pf_retries < opts_.page_fault_retries && !shutting_down_) {
      ++next.pf_retries;
      ++ch.st.page_fault_retries;
      ++w->acc.page_fault_retries;
      ch.retry.push_front(next);
    } else {
      to_cpu(next, kPageFault);
    }
    return;
  }
  // Any other status, known or not (CompletionClass::Error): the device may have left anything
  // in the destination; redo it all.
  ++ch.st.errors;
  to_cpu(o.p, kError);
  note_bad(ch);
}

// Faults in, from the CPU, the page that holds fault_addr, so the continuation does not fault
// there again. Page granularity, like accel-config (which touches fault_addr unconditionally):
// the device may report an address before the piece's first byte (the start of the faulting
// page), and the page is what has to become present, not the byte. But only the piece's own
// bytes are ever accessed (fault_touch_address, dsa_hw.h): the first byte of the piece's
// destination (write fault) or source (read fault) on that page; a fault_addr whose page holds
// none of them is bogus and nothing is touched (the continuation then faults again, bounded by
// page_fault_retries, and the CPU finishes the piece).
// The write touch is an atomic fetch-or of 0: a locked read-modify-write takes a write fault
// (so the kernel maps the page writable, not the shared zero page a read would map) and stores
// back the value it read in the same indivisible step, so it changes no data even if another
// writer raced on that byte (none should: the device finished this descriptor, and the piece
// owns its bytes). A plain `*p = *p` is two accesses, and without volatile the compiler may drop
// it altogether.
void CompletionPoller::touch_fault_page(const Piece& p, const CompletionInfo& c) {
  const uint64_t at = fault_touch_address(reinterpret_cast<uintptr_t>(p.src), reinterpret_cast<uintptr_t>(p.dst), p.len,
                                          c, page_size());
  if (at == 0) return;
  if (c.fault_on_write) {
    __atomic_fetch_or(reinterpret_cast<volatile uint8_t*>(static_cast<uintptr_t>(at)), uint8_t(0), __ATOMIC_RELAXED);
  } else {
    (void)*reinterpret_cast<const volatile uint8_t*>(static_cast<uintptr_t>(at));
  }
}

// The continuation would fault again on the next page not present, one device round trip per
// page: make the rest of the faulting side present at once. MADV_POPULATE_WRITE (READ for the
// source) faults the pages in as a write (read) would, without changing a byte; only whole pages
// that hold bytes of the remainder are named. Linux 5.14+; on an older kernel (EINVAL) the
// continuations fault page by page as before.
void CompletionPoller::populate_remainder(const MemmoveRemainder& rem, const CompletionInfo& c) {
  static std::atomic<bool> unsupported{false};
  if (rem.len == 0 || unsupported.load(std::memory_order_relaxed)) return;
  const uintptr_t ps = page_size();
  const uintptr_t at = c.fault_on_write ? uintptr_t(rem.dst) : uintptr_t(rem.src);
  const uintptr_t begin = at & ~(ps - 1);
  const uintptr_t end = (at + rem.len + ps - 1) & ~(ps - 1);
  if (madvise(reinterpret_cast<void*>(begin), end - begin,
              c.fault_on_write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) != 0 &&
      errno == EINVAL)
    unsupported.store(true, std::memory_order_relaxed);
}

bool CompletionPoller::check_deadlines(Channel& ch, uint64_t now) {
  bool progress = false;
  bool need_drain = false;
  for (uint32_t slot : ch.active) {
    WorkState* w = ch.by_slot[slot].p.w;
    if (expired(w, now)) {
      w->expired = true;
      need_drain = true;
    }
  }
  if (need_drain && ch.mode == Mode::Running) {
    // The device cannot be stopped: learn when it is done with these pieces (a Drain), and
    // until then report none of them done.
    ++ch.st.timeouts;
    start_fence(ch, FenceWhy::Deadline, now);
    progress = true;
  }
  if (!ch.retry.empty()) {
    size_t n = ch.retry.size();
    for (size_t i = 0; i < n; ++i) {
      Piece p = ch.retry.front();
      ch.retry.pop_front();
      if (expired(p.w, now)) {
        p.w->expired = true;
        to_cpu(p, kTimeout);
        progress = true;
      } else {
        ch.retry.push_back(p);
      }
    }
  }
  if (!ch.backlog.empty()) {
    size_t n = ch.backlog.size();
    for (size_t i = 0; i < n; ++i) {
      WorkState* w = ch.backlog.front();
      ch.backlog.pop_front();
      if (expired(w, now)) {
        w->expired = true;
        Piece p{w, nullptr, nullptr, 0, 0};
        while (next_piece_of(w, &p.dst, &p.src, &p.len)) to_cpu(p, kTimeout);
        progress = true;
      } else {
        ch.backlog.push_back(w);
      }
    }
  }
  return progress;
}

void CompletionPoller::check_health(Channel& ch, uint64_t now) {
  if (!ch.q) return;
  if (!ch.q->healthy()) {  // disabled or halted, or unusable: see settle_disabled
    ++ch.st.unhealthy;
    settle_disabled(ch);
    return;
  }
  if (ch.q->take_device_error()) {
    // Device-wide: maybe ours, maybe another client's. With nothing outstanding it cannot be
    // ours (a dropped descriptor of ours stays outstanding until the Drain settles it).
    if (ch.active.empty() || ch.mode != Mode::Running) {
      if (ch.active.empty()) ++ch.st.foreign_errors;
      return;
    }
    start_fence(ch, FenceWhy::DeviceError, now);
  }
}

void CompletionPoller::start_fence(Channel& ch, FenceWhy why, uint64_t now) {
  if (ch.mode != Mode::Running || !ch.q || ch.settling) return;
  ch.mode = Mode::Fencing;
  ch.fence_why = why;
  ch.fence_submitted = false;
  ch.fence_deadline_ns = now + uint64_t(opts_.drain_timeout_ms) * 1000000ull;
  ++ch.st.drains;
  try_submit_fence(ch);
}

void CompletionPoller::try_submit_fence(Channel& ch) {
  // A one-entry queue has no spare entry: give what it holds half the Drain's time to complete;
  // after that submit anyway (its record may be lost while the entry is free; if the entry is
  // still taken, a dedicated queue drops the Drain and the deadline calls the channel wedged).
  const uint64_t half = uint64_t(opts_.drain_timeout_ms) * 500000ull;
  if (ch.info.size <= 1 && !ch.active.empty() && monotonic_ns() + half < ch.fence_deadline_ns) return;
  ch.fence_record->release(0);
  uint32_t slot = ch.fence_record->acquire();  // zeroed
  alignas(64) dsa_hw_desc d;
  build_drain(&d, ch.fence_record->record(slot));
  submission_fence();
  SubmitStatus st = ch.q->submit(d);
  if (st == SubmitStatus::Accepted) {
    ch.fence_submitted = true;
  } else if (st == SubmitStatus::Disabled) {
    ++ch.st.unhealthy;
    settle_disabled(ch);
  }
  // Retry (a full shared queue) or Error: tried again on the next sweep, until the deadline.
}

bool CompletionPoller::advance_fence(Channel& ch, uint64_t now) {
  if (ch.mode != Mode::Fencing) return false;
  if (!ch.fence_submitted) try_submit_fence(ch);
  if (ch.mode != Mode::Fencing) return true;
  if (ch.fence_submitted && load_status(ch.fence_record->record(0)) != 0) {
    settle_after_drain(ch);
    return true;
  }
  if (now >= ch.fence_deadline_ns) {
    wedge(ch);
    return true;
  }
  return false;
}

uint64_t CompletionPoller::settle_outstanding(Channel& ch, Reason why, bool wedged) {
  // Re-entry guard: on_complete may quarantine; quarantine() then only marks and reroutes, and
  // the caller of this retires the queue afterwards. scan() stops early on the generation bump.
  ch.settling = true;
  ++ch.generation;
  settle_scratch_.assign(ch.active.begin(), ch.active.end());
  for (uint32_t slot : settle_scratch_)
    if (load_status(ch.arena->record(slot)) != 0) on_complete(ch, slot, false);
  uint64_t blank = ch.active.size();
  for (uint32_t slot : ch.active) {
    const Piece& p = ch.by_slot[slot].p;
    if (wedged) {  // the device may still write it: its record is never reused (QueueReaper keeps it)
      ++p.w->acc.wedged;
      ++totals_.wedged_pieces;
    } else {
      ch.arena->release(slot);
    }
    to_cpu(p, why);
  }
  ch.active.clear();
  ch.settling = false;
  return blank;
}

void CompletionPoller::settle_after_drain(Channel& ch) {
  // The Drain's record was read with acquire: every record written before it is visible now,
  // and a record still blank will never be written (the descriptor was dropped or its record
  // lost): the CPU copies those pieces.
  const Reason why = ch.fence_why == FenceWhy::Deadline ? kTimeout : kError;
  uint64_t lost = settle_outstanding(ch, why, false);
  ch.st.lost_records += lost;
  ch.mode = Mode::Running;
  switch (ch.fence_why) {
    case FenceWhy::DeviceError:
      if (lost) note_bad(ch);  // one of ours never completed: the error was ours
      else ++ch.st.foreign_errors;
      break;
    case FenceWhy::Deadline: note_bad(ch); break;
    case FenceWhy::Trouble:
    case FenceWhy::Shutdown: break;
  }
  if (ch.quarantined.load(std::memory_order_relaxed)) retire_queue(ch);
}

void CompletionPoller::settle_disabled(Channel& ch) {
  // Unusable in a way that does not prove the device quiet (WorkQueue::quiet()): what it holds
  // may still run, so settle as for a Drain that never completed, never as done.
  if (ch.q && !ch.q->quiet() && !ch.active.empty()) {
    wedge(ch);
    return;
  }
  // Disabled (sysfs state, or submit said so) or halted: the device completes nothing more it
  // held. What completed counts; the rest is the CPU's.
  if (ch.mode == Mode::Fencing && ch.fence_submitted && load_status(ch.fence_record->record(0)) == 0) {
    ch.stale_fences.push_back(std::move(ch.fence_record));
    ch.fence_record = std::make_shared<CompletionArena>(1);
  }
  ch.fence_submitted = false;
  settle_outstanding(ch, kError, false);
  ch.mode = Mode::Running;
  note_bad(ch);
  if (ch.quarantined.load(std::memory_order_relaxed)) {
    retire_queue(ch);
    return;
  }
  // Reopen off this thread (a release and a probe); its works go elsewhere meanwhile.
  ch.mode = Mode::Reopening;
  ch.reopening = QueueReaper::reopen(std::move(ch.q));
  reroute_queued(ch);
}

void CompletionPoller::check_reopen(Channel& ch) {
  int st = ch.reopening ? ch.reopening->state.load(std::memory_order_acquire) : int(ReopenJob::kFailed);
  if (st == ReopenJob::kRunning) return;
  if (ch.reopening) ch.q = std::move(ch.reopening->q);
  ch.reopening.reset();
  ch.mode = Mode::Running;
  if (ch.quarantined.load(std::memory_order_relaxed)) retire_queue(ch);
  else if (st == ReopenJob::kFailed || !ch.q) quarantine(ch);
}

void CompletionPoller::wedge(Channel& ch) {
  // The Drain did not complete in time: any outstanding descriptor may still write its
  // destination (the same source bytes) and its record. The CPU copies the pieces now; their
  // works end marked wedged; the records stay allocated (QueueReaper keeps them).
  settle_outstanding(ch, kTimeout, true);
  ch.st.wedged = true;
  ++totals_.wedged;
  ch.mode = Mode::Running;
  quarantine(ch);
  if (ch.mode != Mode::Gone) retire_queue(ch);
}

void CompletionPoller::retire_queue(Channel& ch) {
  ch.mode = Mode::Gone;
  // Nothing may stay behind on a channel that is never swept again: a page-fault continuation
  // queued while its last records were settled, or a work routed here while it was fencing.
  reroute_queued(ch);
  if (ch.q) {
    // The Drain record must outlive the release too: a wedged device may still complete it.
    auto keep = std::make_shared<std::pair<std::shared_ptr<CompletionArena>, std::shared_ptr<CompletionArena>>>(
        ch.arena, ch.fence_record);
    auto done = QueueReaper::retire(std::move(ch.q), std::move(keep));
    if (opts_.releases) opts_.releases->add(std::move(done));
  }
  ch.arena.reset();
  ch.fence_record.reset();
}

void CompletionPoller::reroute_queued(Channel& ch) {
  while (!ch.retry.empty()) {
    to_cpu(ch.retry.front(), kSubmit);
    ch.retry.pop_front();
  }
  std::deque<WorkState*> works;
  works.swap(ch.backlog);
  for (WorkState* w : works) route(w);
}

void CompletionPoller::note_bad(Channel& ch) {
  if (++ch.consecutive_bad >= opts_.quarantine_after) quarantine(ch);
}

void CompletionPoller::quarantine(Channel& ch) {
  if (ch.quarantined.load(std::memory_order_relaxed)) return;
  ch.quarantined.store(true, std::memory_order_release);
  ch.st.quarantined = true;
  ++totals_.quarantines;
  // Its queued work goes elsewhere: pieces already cut go to the CPU, whole works are rerouted.
  reroute_queued(ch);
  // What it still holds is the device's until a Drain says otherwise; then the queue goes.
  if (ch.settling || ch.mode != Mode::Running) return;  // the settle / fence / reopen retires it
  if (!ch.active.empty()) {
    start_fence(ch, FenceWhy::Trouble, monotonic_ns());
    if (ch.mode == Mode::Fencing) return;
  }
  if (ch.mode == Mode::Running) retire_queue(ch);
}

void CompletionPoller::to_cpu(const Piece& p, Reason why) {
  cpu_pending_.push_back(FallbackPiece{p, why});
  ++cpu_outstanding_;
}

void CompletionPoller::flush_cpu() {
  if (cpu_pending_.empty()) return;
  auto* jobs = new std::vector<FallbackPiece>();
  jobs->swap(cpu_pending_);
  if (!cpu_) {  // no CPU copy pool: copy here, synchronously
    for (const FallbackPiece& j : *jobs) std::memmove(j.p.dst, j.p.src, j.p.len);
    account_cpu(*jobs);
    delete jobs;
    return;
  }
  std::vector<CopyRegion> regions;
  regions.reserve(jobs->size());
  for (const FallbackPiece& j : *jobs) regions.push_back(CopyRegion{j.p.dst, j.p.src, j.p.len});
  cpu_->copy_async(std::move(regions), [this, jobs] {
    std::lock_guard<std::mutex> lk(mu_);
    cpu_done_.push_back(jobs);
    has_news_.store(true, std::memory_order_release);
    if (sleeping_) cv_.notify_one();
  });
}

void CompletionPoller::account_cpu(const std::vector<FallbackPiece>& jobs) {
  for (const FallbackPiece& j : jobs) {
    WorkState* w = j.p.w;
    Channel* ch = w->channel < channels_.size() ? channels_[w->channel].get() : nullptr;
    ++w->acc.completed;
    w->acc.cpu_bytes += j.p.len;
    totals_.cpu_bytes += j.p.len;
    if (ch) ch->st.cpu_bytes += j.p.len;
    switch (j.why) {
      case kTimeout:
        ++w->acc.fallback_timeout;
        ++totals_.fallback_timeout;
        if (ch) ++ch->st.fallback_timeout;
        break;
      case kError:
        ++w->acc.fallback_error;
        ++totals_.fallback_error;
        if (ch) ++ch->st.fallback_error;
        break;
      case kPageFault:
        ++w->acc.fallback_page_fault;
        ++totals_.fallback_page_fault;
        if (ch) ++ch->st.fallback_page_fault;
        break;
      case kSubmit:
        ++w->acc.fallback_submit;
        ++totals_.fallback_submit;
        if (ch) ++ch->st.fallback_submit;
        break;
    }
    ++w->finished;
    mark(w);
    --cpu_outstanding_;
  }
}

void CompletionPoller::mark(WorkState* w) {
  if (!w->dirty) {
    w->dirty = true;
    dirty_.push_back(w);
  }
}

void CompletionPoller::post_events() {
  if (dirty_.empty()) return;
  events_.clear();
  bool any_final = false;
  for (WorkState* w : dirty_) {
    events_.push_back(w->acc);
    totals_.completed += w->acc.completed;
    CompletionEvent fresh;
    fresh.op_id = w->op_id;
    fresh.work = w->work;
    w->acc = fresh;
    w->dirty = false;
    if (w->finished == w->total) any_final = true;
  }
  totals_.events_posted += events_.size();
  ++totals_.event_batches;
  // Stats first, so a caller that saw a work's last event also sees it in stats().
  if (any_final) publish_stats();
  if (sink_) sink_->post(events_.data(), events_.size());
  for (WorkState* w : dirty_) {
    if (w->finished == w->total) {
      --live_works_;
      if (w->on_finished) w->on_finished();
      delete w;
    }
  }
  dirty_.clear();
}

// Where the CPU has WAITPKG, the middle stage of the idle backoff waits on an outstanding
// completion record instead of yielding: UMONITOR arms its cache line and UMWAIT (C0.1, the
// lighter state, for a quick wake) sleeps until the device writes it or a short TSC deadline
// passes. Only one record can be watched, so the deadline bounds the wait for the others.
bool CompletionPoller::wait_on_a_record() {
  if (!waitpkg_) return false;
  for (auto& ch : channels_) {
    if (ch->active.empty()) continue;
    const dsa_completion_record* cr = ch->arena->record(ch->active.front());
    const volatile uint8_t* status = &cr->status;
    umonitor(status);
    if (*status == 0) umwait(1, tsc_deadline_after_ns(kUmwaitNs));  // re-checked after arming
    return true;
  }
  return false;
}

bool CompletionPoller::busy() const {
  if (cpu_outstanding_ || live_works_) return true;
  for (auto& ch : channels_)
    if (!ch->active.empty() || !ch->retry.empty() || !ch->backlog.empty()) return true;
  return false;
}

void CompletionPoller::publish_stats() {
  std::lock_guard<std::mutex> lk(stats_mu_);
  std::vector<ChannelStats> chs;
  chs.swap(published_.channels);
  published_ = totals_;
  published_.submitted = published_.device_completed = published_.device_bytes = 0;
  published_.page_faults = published_.page_fault_retries = published_.errors = 0;
  published_.retries = published_.timeouts = published_.unhealthy = published_.out_of_order = 0;
  published_.prebuilt = 0;
  published_.drains = published_.lost_records = published_.foreign_errors = 0;
  chs.resize(channels_.size());
  for (size_t i = 0; i < channels_.size(); ++i) {
    const ChannelStats& s = channels_[i]->st;
    chs[i] = s;
    published_.submitted += s.submitted;
    published_.device_completed += s.completed;
    published_.device_bytes += s.device_bytes;
    published_.page_faults += s.page_faults;
    published_.page_fault_retries += s.page_fault_retries;
    published_.errors += s.errors;
    published_.retries += s.retries;
    published_.timeouts += s.timeouts;
    published_.unhealthy += s.unhealthy;
    published_.out_of_order += s.out_of_order;
    published_.prebuilt += s.prebuilt;
    published_.drains += s.drains;
    published_.lost_records += s.lost_records;
    published_.foreign_errors += s.foreign_errors;
  }
  published_.channels.swap(chs);
}

}  // namespace dmacopy
