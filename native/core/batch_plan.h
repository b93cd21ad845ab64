// Turns what the Node-API layer unpacked (real buffer spans plus a numeric folio table that came
// from JavaScript) into validated copy regions and per-work pieces. Every index, offset and
// length from JavaScript is re-checked here against the real buffer sizes: JavaScript never
// supplies an address, only (buffer index, offset, length) triples that must fit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "copy_region.h"

namespace dmacopy {

// One JavaScript ArrayBuffer (or SharedArrayBuffer) as the native layer saw it.
struct BufferSpan {
  uint8_t* base;
  size_t len;
};

enum class PlanError : uint8_t {
  None,
  BadNumber,       // not a finite non-negative integer below 2^53
  BadBufferIndex,  // names a buffer that was not passed
  OutOfBounds,     // offset + length past the end of the buffer
  DstOverlap,      // two destinations share bytes
  SrcDstOverlap,   // a destination shares bytes with a source
  BadBounds,       // the work boundaries are not increasing or do not cover the batch
};

struct PlanStatus {
  PlanError error = PlanError::None;
  size_t folio = 0;  // the folio (or work) the error is about
  std::string message;
  bool ok() const { return error == PlanError::None; }
};

// Doubles per folio in the list-form table: dst buffer, dst offset, src buffer, src offset, length.
constexpr size_t kListFields = 5;
// Doubles in the region-form table: dst buffer, dst offset, src buffer, src offset, total bytes,
// folio size. Folio i covers [i*folio, min((i+1)*folio, total)).
constexpr size_t kRegionFields = 6;

// Validates a list-form table of n folios and appends one region per folio to out.
PlanStatus plan_list(const BufferSpan* bufs, size_t nbufs, const double* table, size_t n, std::vector<CopyRegion>& out);

// Validates a region-form table and appends one region per folio to out.
PlanStatus plan_region(const BufferSpan* bufs, size_t nbufs, const double* table, std::vector<CopyRegion>& out);

// Rejects destinations that overlap each other or any source. Completion order is not defined
// (threads and DSA engines run in parallel), so such batches would give nondeterministic bytes.
// Linear when folios are laid out in increasing address order (the common case), else sorts.
PlanStatus check_overlaps(const std::vector<CopyRegion>& folios);

// The region form's folios are consecutive slices of one destination and one source range, so
// they overlap only if those two ranges do: an O(1) check instead of the per-folio one.
PlanStatus check_region_overlap(const std::vector<CopyRegion>& folios);

// The pieces of one batch, split into works: pieces[work_begin[w], work_begin[w+1]) belong to work w.
struct WorkPieces {
  std::vector<CopyRegion> pieces;
  std::vector<size_t> work_begin;
  // Empty: every piece is one folio piece. Otherwise (a coalesced plan) work w covers
  // work_regions[w] folio pieces in fewer, longer pieces: what its pending counter counts and
  // what a batch reports as its regions, whatever the plan's shape.
  std::vector<uint32_t> work_regions;
  // The folio pieces of work w: what its completion events must add up to.
  uint32_t regions_of(size_t w) const {
    return work_regions.empty() ? static_cast<uint32_t>(work_begin[w + 1] - work_begin[w]) : work_regions[w];
  }
};

// Cuts folios at the work boundaries. bounds holds k+1 (folio index, byte offset in that folio)
// pairs as doubles: work w runs from bounds[w] to bounds[w+1]; the first must be (0, 0) and the
// last (n, 0). Zero-length pieces are dropped (a zero-length folio is a no-op).
PlanStatus split_works(const std::vector<CopyRegion>& folios, const double* bounds, size_t k, WorkPieces& out);

// The two table forms JavaScript sends (lib/native/abi.ts TableForm).
enum class TableForm : uint32_t { List = 0, Region = 1 };

// The whole plan of one batch that is not a chunk of a larger one: validates the table of either
// form against bufs (a list table holds a multiple of kListFields numbers, a region table exactly
// kRegionFields), rejects overlap within the batch, and cuts it into k works at bounds (see
// split_works). `folios` is scratch (cleared first; pass the same vector again to reuse its
// memory). A prepared batch keeps `out` and runs it again and again.
//
// `coalesce` (engines with no device: the CPU copies each work as one stream anyway): a region
// form's work becomes one piece, planned in O(works) instead of O(folios), with work_regions
// saying how many folio pieces it stands for. The list form is planned as without it. Device
// engines never coalesce: each folio piece is one descriptor with its own completion.
PlanStatus plan_works(TableForm form, const BufferSpan* bufs, size_t nbufs, const double* table, size_t table_len,
                      const double* bounds, size_t k, WorkPieces& out, std::vector<CopyRegion>& folios,
                      bool coalesce = false);

// Recycles WorkPieces between batches. A plan of 65,536 folios holds 1.5 MiB of pieces; freeing
// it after every batch hands the pages back to the system, and the next batch faults them in
// again (on some VMs each fault costs tens of microseconds: 65,536 folios lost a third of their
// throughput to it). take() returns a plan that goes back to the pool when its last owner (a
// queued job, the request) drops it, from any thread; the pool outlives every plan it gave out.
class WorkPiecesPool : public std::enable_shared_from_this<WorkPiecesPool> {
 public:
  // Plans kept for reuse, and the largest one kept (in pieces); bigger ones are freed.
  static constexpr size_t kKeep = 4;
  static constexpr size_t kMaxKeptPieces = size_t{1} << 20;

  static std::shared_ptr<WorkPiecesPool> create() { return std::shared_ptr<WorkPiecesPool>(new WorkPiecesPool()); }
  std::shared_ptr<WorkPieces> take();
  size_t kept() const;

 private:
  WorkPiecesPool() = default;
  void give(WorkPieces* w);
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<WorkPieces>> free_;
};

// A prepared batch is re-run only over the very memory it was planned on: the index of the
// first span of `now` whose base or length differs from `planned` (a detached buffer reads as
// length 0), n when all n match.
size_t first_changed_span(const BufferSpan* planned, const BufferSpan* now, size_t n);

}  // namespace dmacopy
