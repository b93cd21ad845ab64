#include "completion_arena.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "dsa_hw.h"

namespace dmacopy {

CompletionArena::CompletionArena(uint32_t capacity) : capacity_(capacity ? capacity : 1) {
  // Round the allocation to a multiple of the alignment, as aligned_alloc requires.
  size_t bytes = sizeof(dsa_completion_record) * capacity_;
  void* p = std::aligned_alloc(64, (bytes + 63) & ~size_t{63});
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  records_ = static_cast<dsa_completion_record*>(p);
  free_.reserve(capacity_);
  graveyard_.reserve(capacity_);
  // Hand out low slots first (pushed last): keeps the hot records in few cache lines.
  for (uint32_t i = capacity_; i-- > 0;) free_.push_back(i);
}

CompletionArena::~CompletionArena() { std::free(records_); }

uint32_t CompletionArena::acquire() {
  if (free_.empty()) return kNoSlot;
  uint32_t s = free_.back();
  free_.pop_back();
  prepare_completion(&records_[s]);
  return s;
}

void CompletionArena::release(uint32_t slot) { free_.push_back(slot); }

void CompletionArena::abandon(uint32_t slot) { graveyard_.push_back(slot); }

void CompletionArena::recycle_graveyard() {
  for (uint32_t s : graveyard_) free_.push_back(s);
  graveyard_.clear();
}

}  // namespace dmacopy
