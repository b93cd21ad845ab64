#include "batch_plan.h"

#include <algorithm>

namespace dmacopy {
namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1, JavaScript's exact range

bool to_index(double v, uint64_t& out) {
  // Rejects NaN (all comparisons false), negatives, fractions and values past 2^53. The round
  // trip through an integer is the fraction test (std::floor is a libm call without SSE4.1).
  if (!(v >= 0.0 && v <= kMaxSafeInteger)) return false;
  out = static_cast<uint64_t>(v);
  return static_cast<double>(out) == v;
}

PlanStatus fail(PlanError e, size_t folio, std::string msg) {
  PlanStatus s;
  s.error = e;
  s.folio = folio;
  s.message = std::move(msg);
  return s;
}

// Resolves (buffer index, offset, length) to a pointer, or explains why it does not fit.
PlanError resolve(const BufferSpan* bufs, size_t nbufs, uint64_t buf, uint64_t off, uint64_t len, uint8_t*& ptr) {
  if (buf >= nbufs) return PlanError::BadBufferIndex;
  const BufferSpan& b = bufs[buf];
  if (off > b.len || len > b.len - off) return PlanError::OutOfBounds;
  ptr = b.base + off;
  return PlanError::None;
}

const char* side_name(int side) { return side == 0 ? "destination" : "source"; }

struct Interval {
  uintptr_t begin;
  uintptr_t end;
  size_t folio;
};

bool sorted_by_begin(const std::vector<Interval>& v) {
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i].begin < v[i - 1].begin) return false;
  }
  return true;
}

}  // namespace

PlanStatus plan_list(const BufferSpan* bufs, size_t nbufs, const double* table, size_t n,
                     std::vector<CopyRegion>& out) {
  out.reserve(out.size() + n);
  for (size_t i = 0; i < n; ++i) {
    const double* f = table + i * kListFields;
    uint64_t v[kListFields];
    for (size_t j = 0; j < kListFields; ++j) {
      if (!to_index(f[j], v[j]))
        return fail(PlanError::BadNumber, i, "folio table holds a value that is not a safe integer");
    }
    uint8_t* dst = nullptr;
    uint8_t* src = nullptr;
    for (int side = 0; side < 2; ++side) {
      uint64_t buf = side == 0 ? v[0] : v[2];
      uint64_t off = side == 0 ? v[1] : v[3];
      PlanError e = resolve(bufs, nbufs, buf, off, v[4], side == 0 ? dst : src);
      if (e != PlanError::None) {
        return fail(
            e, i,
            std::string(side_name(side)) + " of folio " + std::to_string(i) +
                (e == PlanError::BadBufferIndex ? " names an unknown buffer" : " runs past the end of its buffer"));
      }
    }
    out.push_back(CopyRegion{dst, src, static_cast<size_t>(v[4])});
  }
  return {};
}

namespace {

// A region-form table resolved and checked: total bytes from dst and src in folios of `folio`.
struct RegionSpec {
  uint8_t* dst = nullptr;
  uint8_t* src = nullptr;
  uint64_t total = 0;
  uint64_t folio = 0;
  uint64_t folios() const { return total == 0 ? 0 : (total + folio - 1) / folio; }
};

PlanStatus resolve_region(const BufferSpan* bufs, size_t nbufs, const double* table, RegionSpec& r) {
  uint64_t v[kRegionFields];
  for (size_t j = 0; j < kRegionFields; ++j) {
    if (!to_index(table[j], v[j]))
      return fail(PlanError::BadNumber, 0, "region table holds a value that is not a safe integer");
  }
  r.total = v[4];
  r.folio = v[5];
  if (r.folio == 0 && r.total != 0) return fail(PlanError::BadNumber, 0, "folio size must be positive");
  if (resolve(bufs, nbufs, v[0], v[1], r.total, r.dst) != PlanError::None)
    return fail(PlanError::OutOfBounds, 0, "destination region runs past the end of its buffer");
  if (resolve(bufs, nbufs, v[2], v[3], r.total, r.src) != PlanError::None)
    return fail(PlanError::OutOfBounds, 0, "source region runs past the end of its buffer");
  return {};
}

}  // namespace

PlanStatus plan_region(const BufferSpan* bufs, size_t nbufs, const double* table, std::vector<CopyRegion>& out) {
  RegionSpec r;
  PlanStatus st = resolve_region(bufs, nbufs, table, r);
  if (!st.ok() || r.total == 0) return st;
  const uint64_t n = r.folios();
  out.reserve(out.size() + n);
  for (uint64_t i = 0, off = 0; i < n; ++i, off += r.folio) {
    out.push_back(CopyRegion{r.dst + off, r.src + off, static_cast<size_t>(std::min(r.folio, r.total - off))});
  }
  return {};
}

namespace {

// Interval lists of this thread's last overlap check, kept (up to a bound) for the next one:
// allocating them fresh per batch faulted their pages in every time (2 x 24 bytes a folio).
constexpr size_t kKeptIntervals = size_t{1} << 17;

struct IntervalScratch {
  std::vector<Interval> dsts, srcs;
  void trim() {
    if (dsts.capacity() > kKeptIntervals) std::vector<Interval>().swap(dsts);
    if (srcs.capacity() > kKeptIntervals) std::vector<Interval>().swap(srcs);
  }
};

}  // namespace

PlanStatus check_overlaps(const std::vector<CopyRegion>& folios) {
  static thread_local IntervalScratch scratch;
  struct Trim {
    IntervalScratch& s;
    ~Trim() { s.trim(); }
  } trim{scratch};
  std::vector<Interval>& dsts = scratch.dsts;
  std::vector<Interval>& srcs = scratch.srcs;
  dsts.clear();
  srcs.clear();
  dsts.reserve(folios.size());
  srcs.reserve(folios.size());
  for (size_t i = 0; i < folios.size(); ++i) {
    const CopyRegion& r = folios[i];
    if (r.len == 0) continue;
    uintptr_t d = reinterpret_cast<uintptr_t>(r.dst);
    uintptr_t s = reinterpret_cast<uintptr_t>(r.src);
    dsts.push_back({d, d + r.len, i});
    srcs.push_back({s, s + r.len, i});
  }
  auto by_begin = [](const Interval& a, const Interval& b) { return a.begin < b.begin; };
  if (!sorted_by_begin(dsts)) std::sort(dsts.begin(), dsts.end(), by_begin);
  for (size_t i = 1; i < dsts.size(); ++i) {
    if (dsts[i].begin < dsts[i - 1].end) {
      size_t a = std::min(dsts[i].folio, dsts[i - 1].folio), b = std::max(dsts[i].folio, dsts[i - 1].folio);
      return fail(PlanError::DstOverlap, b,
                  "destinations of folios " + std::to_string(a) + " and " + std::to_string(b) + " overlap");
    }
  }
  if (!sorted_by_begin(srcs)) std::sort(srcs.begin(), srcs.end(), by_begin);
  // Destinations are now disjoint and sorted, sources sorted by start: one merge pass finds any
  // source that shares a byte with a destination.
  size_t j = 0;
  for (const Interval& s : srcs) {
    while (j < dsts.size() && dsts[j].end <= s.begin) ++j;
    if (j == dsts.size()) break;
    if (dsts[j].begin < s.end) {
      return fail(PlanError::SrcDstOverlap, dsts[j].folio,
                  "destination of folio " + std::to_string(dsts[j].folio) + " overlaps the source of folio " +
                      std::to_string(s.folio));
    }
  }
  return {};
}

PlanStatus check_region_overlap(const std::vector<CopyRegion>& folios) {
  if (folios.empty()) return {};
  const uintptr_t d0 = reinterpret_cast<uintptr_t>(folios.front().dst);
  const uintptr_t s0 = reinterpret_cast<uintptr_t>(folios.front().src);
  const uintptr_t d1 = reinterpret_cast<uintptr_t>(folios.back().dst) + folios.back().len;
  const uintptr_t s1 = reinterpret_cast<uintptr_t>(folios.back().src) + folios.back().len;
  if (d0 < s1 && s0 < d1) return fail(PlanError::SrcDstOverlap, 0, "the destination region overlaps the source region");
  return {};
}

namespace {

// Walks the k+1 work boundaries (folio index, byte offset in that folio) of a batch of n folios
// whose lengths len_of(f) gives, checking each, and calls span(w, from_f, from_o, to_f, to_o)
// for every work w once its end is known. One walker for both plan shapes, so a coalesced plan
// accepts and rejects exactly what the per-folio one does.
template <typename LenOf, typename Span>
PlanStatus walk_bounds(uint64_t n, LenOf len_of, const double* bounds, size_t k, Span span) {
  uint64_t prev_f = 0, prev_o = 0;
  for (size_t w = 0; w <= k; ++w) {
    uint64_t f, o;
    if (!to_index(bounds[2 * w], f) || !to_index(bounds[2 * w + 1], o))
      return fail(PlanError::BadBounds, w, "work boundary is not a safe integer");
    bool valid = f < n ? o < len_of(f) || (o == 0) : (f == n && o == 0);
    if (w == 0) valid = valid && f == 0 && o == 0;
    if (w == k) valid = valid && f == n && o == 0;
    if (w > 0) valid = valid && (f > prev_f || (f == prev_f && o >= prev_o));
    if (!valid) return fail(PlanError::BadBounds, w, "work boundaries must increase from the first byte to the last");
    if (w > 0) span(w - 1, prev_f, prev_o, f, o);
    prev_f = f;
    prev_o = o;
  }
  return {};
}

}  // namespace

PlanStatus split_works(const std::vector<CopyRegion>& folios, const double* bounds, size_t k, WorkPieces& out) {
  const size_t n = folios.size();
  out.pieces.clear();
  out.work_regions.clear();
  out.work_begin.assign(k + 1, 0);
  out.pieces.reserve(n + k);
  return walk_bounds(
      n, [&](uint64_t f) { return folios[f].len; }, bounds, k,
      [&](size_t w, uint64_t cf, uint64_t co, uint64_t f, uint64_t o) {
        // Pieces of work w: from (cf, co) up to (f, o).
        while (cf < f || (cf == f && co < o)) {
          const CopyRegion& r = folios[cf];
          uint64_t end = (cf == f) ? o : r.len;
          if (end > co) out.pieces.push_back(CopyRegion{r.dst + co, r.src + co, static_cast<size_t>(end - co)});
          ++cf;
          co = 0;
          if (cf > f) break;
        }
        out.work_begin[w + 1] = out.pieces.size();
      });
}

namespace {

// The region form, coalesced: work w is the one byte range between its boundaries.
PlanStatus plan_region_coalesced(const RegionSpec& r, const double* bounds, size_t k, WorkPieces& out) {
  const uint64_t n = r.folios();
  out.pieces.clear();
  out.work_begin.assign(k + 1, 0);
  out.work_regions.assign(k, 0);
  out.pieces.reserve(k);
  size_t too_many = SIZE_MAX;
  PlanStatus st = walk_bounds(
      n, [&](uint64_t f) { return std::min(r.folio, r.total - f * r.folio); }, bounds, k,
      [&](size_t w, uint64_t pf, uint64_t po, uint64_t f, uint64_t o) {
        const uint64_t from = pf * r.folio + po;
        const uint64_t to = f == n ? r.total : f * r.folio + o;
        if (to > from) {
          // The folio pieces split_works would cut: every folio from pf up to f, and f's head.
          // Counted in 32 bits (lib/ too): a work of more is refused, never wrapped to a count
          // that would let its batch settle early.
          const uint64_t regions = (f - pf) + (o > 0 ? 1 : 0);
          if (regions > UINT32_MAX) {
            too_many = w;
            return;
          }
          out.pieces.push_back(CopyRegion{r.dst + from, r.src + from, static_cast<size_t>(to - from)});
          out.work_regions[w] = static_cast<uint32_t>(regions);
        }
        out.work_begin[w + 1] = out.pieces.size();
      });
  if (st.ok() && too_many != SIZE_MAX)
    return fail(PlanError::BadNumber, too_many, "a work of more than 4294967295 folios: use a larger folio size");
  return st;
}

}  // namespace

PlanStatus plan_works(TableForm form, const BufferSpan* bufs, size_t nbufs, const double* table, size_t table_len,
                      const double* bounds, size_t k, WorkPieces& out, std::vector<CopyRegion>& folios, bool coalesce) {
  folios.clear();
  PlanStatus st;
  if (form == TableForm::List) {
    if (table_len % kListFields != 0) return fail(PlanError::BadNumber, 0, "list table length must be a multiple of 5");
    st = plan_list(bufs, nbufs, table, table_len / kListFields, folios);
    if (st.ok()) st = check_overlaps(folios);
  } else if (form == TableForm::Region) {
    if (table_len != kRegionFields) return fail(PlanError::BadNumber, 0, "region table must hold 6 numbers");
    if (coalesce) {
      RegionSpec r;
      st = resolve_region(bufs, nbufs, table, r);
      if (!st.ok()) return st;
      const uintptr_t d = reinterpret_cast<uintptr_t>(r.dst), s = reinterpret_cast<uintptr_t>(r.src);
      if (r.total != 0 && d < s + r.total && s < d + r.total)
        return fail(PlanError::SrcDstOverlap, 0, "the destination region overlaps the source region");
      return plan_region_coalesced(r, bounds, k, out);
    }
    st = plan_region(bufs, nbufs, table, folios);
    if (st.ok()) st = check_region_overlap(folios);
  } else {
    return fail(PlanError::BadNumber, 0, "unknown table form");
  }
  if (!st.ok()) return st;
  return split_works(folios, bounds, k, out);
}

std::shared_ptr<WorkPieces> WorkPiecesPool::take() {
  std::unique_ptr<WorkPieces> w;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!free_.empty()) {
      w = std::move(free_.back());
      free_.pop_back();
    }
  }
  if (!w) w = std::make_unique<WorkPieces>();
  std::shared_ptr<WorkPiecesPool> self = shared_from_this();
  // If building the shared_ptr throws, it deletes w with the deleter: back to the pool.
  return std::shared_ptr<WorkPieces>(w.release(), [self](WorkPieces* p) { self->give(p); });
}

void WorkPiecesPool::give(WorkPieces* w) {
  std::unique_ptr<WorkPieces> owned(w);
  if (owned->pieces.capacity() > kMaxKeptPieces) return;  // freed: a rare huge plan is not kept
  owned->pieces.clear();
  owned->work_begin.clear();
  owned->work_regions.clear();
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.size() >= kKeep) return;
  try {
    free_.push_back(std::move(owned));
  } catch (...) {  // out of memory growing the list: the plan is freed instead
  }
}

size_t WorkPiecesPool::kept() const {
  std::lock_guard<std::mutex> lock(mu_);
  return free_.size();
}

size_t first_changed_span(const BufferSpan* planned, const BufferSpan* now, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (planned[i].base != now[i].base || planned[i].len != now[i].len) return i;
  return n;
}

}  // namespace dmacopy
