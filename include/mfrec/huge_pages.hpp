// Resident memory: transparent huge pages for the factor matrices, and handing freed heap back.
//
// Transparent huge pages for the factor matrices. The solves read factor rows at random (a
// user's items, an item's users): at 100x the user factors span 2.6 GB, and with 4 KiB pages
// nearly every row read misses the TLB (which maps a few MiB) and walks the page table. With
// 2 MiB pages the same TLB maps gigabytes. Debian's default THP mode, "madvise", gives them only
// to memory that asks, which these calls do.
#pragma once
#include <cstddef>

#include "mfrec/types.hpp"

namespace mfrec {

// Asks for huge pages on the whole 2 MiB pages inside [data, data + bytes): effective for pages
// not touched yet. A no-op for less than 2 MiB, and where the system does not offer THP (the
// request is advice; nothing fails).
void advise_huge_pages(void* data, std::size_t bytes);

// m.resize(rows, cols) with its new storage advised before anything touches it.
inline void resize_huge(FactorMatrix& m, Index rows, Index cols) {
  m.resize(rows, cols);
  advise_huge_pages(m.data(), static_cast<std::size_t>(m.size()) * sizeof(Real));
}

// Returns the heap's free pages to the system (glibc's malloc_trim; a no-op elsewhere). For the
// end of a set-up phase: its temporaries of up to 32 MiB come from the heap (glibc raises its
// mmap threshold after the first large free), and what they leave free would otherwise stay
// resident, and in the peak, for the whole run (30 MiB a rank at 100x on 16 ranks).
void release_free_heap();

}  // namespace mfrec
