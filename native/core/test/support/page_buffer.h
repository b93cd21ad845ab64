// Test-only: anonymous private memory whose pages a test can drop (MADV_DONTNEED: the page is not
// resident until touched again, and reads back as zeros) and whose residency it can ask for
// (mincore), to give the software device's real_page_faults real page faults to find.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace dmacopy_test {

class PageBuffer {
 public:
  explicit PageBuffer(size_t pages) : ps_(size_t(sysconf(_SC_PAGESIZE))), bytes_(pages * ps_) {
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    p_ = static_cast<uint8_t*>(p);
    // Never merged into a transparent huge page: dropping one 4 KiB page must drop only it.
    madvise(p_, bytes_, MADV_NOHUGEPAGE);
  }
  ~PageBuffer() { munmap(p_, bytes_); }
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;

  uint8_t* data() { return p_; }
  size_t size() const { return bytes_; }
  size_t page_size() const { return ps_; }
  uint8_t* page(size_t i) { return p_ + i * ps_; }

  // The pages [first, first+count) lose their frames (zero-filled when next touched).
  bool drop(size_t first, size_t count) { return madvise(page(first), count * ps_, MADV_DONTNEED) == 0; }

  // One entry per page: resident or not.
  std::vector<bool> resident() {
    std::vector<unsigned char> v(bytes_ / ps_);
    std::vector<bool> r(v.size(), false);
    if (mincore(p_, bytes_, v.data()) != 0) return r;
    for (size_t i = 0; i < v.size(); ++i) r[i] = v[i] & 1;
    return r;
  }

 private:
  size_t ps_;
  size_t bytes_;
  uint8_t* p_ = nullptr;
};

// True when every page of [p, p+n) is resident (mincore).
inline bool all_resident(const void* p, size_t n) {
  const uintptr_t ps = uintptr_t(sysconf(_SC_PAGESIZE));
  uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~(ps - 1);
  uintptr_t e = reinterpret_cast<uintptr_t>(p) + n;
  std::vector<unsigned char> v((e - a + ps - 1) / ps);
  if (mincore(reinterpret_cast<void*>(a), v.size() * ps, v.data()) != 0) return false;
  for (unsigned char c : v)
    if (!(c & 1)) return false;
  return true;
}

}  // namespace dmacopy_test
