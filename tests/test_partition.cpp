#include <gtest/gtest.h>

#include "mfrec/partition.hpp"

using namespace mfrec;

TEST(Partition, EvenCoversAllRows) {
  auto b = partition_even(10, 4);
  EXPECT_EQ(b, (Bounds{0, 3, 6, 8, 10}));
  EXPECT_EQ(partition_even(2, 4), (Bounds{0, 1, 2, 2, 2}));  // parts with no rows
}

TEST(Partition, ByNnzBalancesHeavyRows) {
  // Row 0 holds most of the non-zeros: it gets a part of its own.
  std::vector<std::int64_t> indptr{0, 100, 101, 102, 103, 104, 105, 106, 107};
  auto b = partition_by_nnz(indptr, 2, 0.0);
  EXPECT_EQ(b.front(), 0);
  EXPECT_EQ(b.back(), 8);
  EXPECT_EQ(b[1], 1);
  // Uniform rows split evenly.
  std::vector<std::int64_t> uni{0, 2, 4, 6, 8, 10, 12};
  EXPECT_EQ(partition_by_nnz(uni, 3), (Bounds{0, 2, 4, 6}));
}

TEST(Partition, OwnerOf) {
  Bounds b{0, 3, 3, 7};
  EXPECT_EQ(owner_of(b, 0), 0);
  EXPECT_EQ(owner_of(b, 2), 0);
  EXPECT_EQ(owner_of(b, 3), 2);  // the empty part 1 owns nothing
  EXPECT_EQ(owner_of(b, 6), 2);
  EXPECT_EQ(part_sizes(b), (std::vector<std::int64_t>{3, 0, 4}));
}
